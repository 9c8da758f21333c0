//! What the dispatcher tests run against: real HTTP receivers on 127.0.0.1, a real SQLite
//! store seeded through the `Store` trait and the real evaluator, and the real service.

#![allow(dead_code)]

pub mod receiver;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald_core::Timestamp;
use herald_core::automation::{ActionSpec, AutomationSpec, EventSpec, RunMetricEvent, ThresholdFilter};
use herald_core::ids::{AutomationId, ExecutionId};
use herald_core::metric::{Aggregation, Comparison};
use herald_core::model::ExecutionState;
use herald_core::template::PayloadTemplate;
use herald_dispatch::DispatchSettings;
use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_store::{
    Attempt, Bootstrap, BootstrapOutcome, Entity, Execution, FileStreamBatch, HistoryLine, Integration, NewAutomation,
    NewIntegration, Page, RunUpsert, Store, User,
};
use herald_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A payload template whose rendering contains quotes, a backslash, non-ASCII text and a float,
/// so that any re-serialisation between the store and the wire would change the bytes.
const PAYLOAD: &str =
    r#"{"text": "${run_name} crossed ${metric_name} = ${metric_value}", "note": "✓ \"quoted\" \\ done", "n": 1.50}"#;

/// A SQLite store in a temporary directory with an admin, a team and the server key.
pub struct Fixture {
    pub store: Arc<SqliteStore>,
    pub key: SecretKey,
    pub team: Entity,
    pub admin: User,
    counter: AtomicUsize,
    _dir: tempfile::TempDir,
}

/// An execution that the evaluator recorded for a fresh automation and run.
pub struct Fired {
    pub execution: ExecutionId,
    pub automation: AutomationId,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("herald.db"))).expect("store"));
        let outcome = store
            .bootstrap(Bootstrap {
                organization: "herald".into(),
                admin_name: "admin".into(),
                admin_api_key_hash: [7; 32],
            })
            .await
            .expect("bootstrap");
        let BootstrapOutcome::Created(admin) = outcome else {
            panic!("a new store was already initialised");
        };
        let team = store.create_team("ml", admin.id).await.expect("team");
        Self { store, key: SecretKey::generate(), team, admin, counter: AtomicUsize::new(0), _dir: dir }
    }

    pub fn dyn_store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Stores a secret sealed with the fixture's key.
    pub async fn secret(&self, name: &str, value: &str) -> herald_core::ids::SecretId {
        self.sealed_secret(name, self.key.seal(value.as_bytes())).await
    }

    /// Stores a sealed value as it is.
    pub async fn sealed_secret(&self, name: &str, sealed: Vec<u8>) -> herald_core::ids::SecretId {
        let (meta, _) = self.store.put_secret(self.team.id, name, sealed).await.expect("secret");
        meta.id
    }

    /// Creates a webhook integration with optional access-token and signing secrets.
    pub async fn integration(&self, url: &str, token: Option<&str>, signing: Option<&str>) -> Integration {
        let n = self.next();
        let access_token_secret_id = match token {
            Some(token) => Some(self.secret(&format!("token-{n}"), token).await),
            None => None,
        };
        let signing_secret_id = match signing {
            Some(signing) => Some(self.secret(&format!("signing-{n}"), signing).await),
            None => None,
        };
        self.store
            .create_integration(NewIntegration {
                entity_id: self.team.id,
                name: format!("hook-{n}"),
                url: url.to_owned(),
                access_token_secret_id,
                signing_secret_id,
            })
            .await
            .expect("integration")
    }

    /// Creates an automation in a new project and a run whose first row crosses its
    /// threshold, evaluates the events, and returns the one execution recorded.
    pub async fn fire(&self, integration: &Integration) -> Fired {
        let n = self.next();
        let store = &self.store;
        let project = store.create_project(self.team.id, &format!("project-{n}")).await.expect("project");
        let spec = AutomationSpec {
            name: format!("loss-low-{n}"),
            description: None,
            event: EventSpec::RunMetric(RunMetricEvent {
                run_filter: None,
                threshold: ThresholdFilter {
                    metric: "loss".into(),
                    aggregation: Aggregation::Latest,
                    window_size: 1,
                    comparison: Comparison::Lt,
                    threshold: 0.5,
                },
            }),
            action: ActionSpec::GenericWebhook {
                integration_id: integration.id,
                payload: Some(PayloadTemplate::parse_text(PAYLOAD, "request_payload").expect("template")),
            },
            cooldown_seconds: 0,
        };
        let automation = store
            .create_automation(NewAutomation { project_id: project.id, spec, enabled: true, created_by: self.admin.id })
            .await
            .expect("automation");

        let upsert = RunUpsert {
            name: format!("run{n}"),
            user_id: Some(self.admin.id),
            display_name: Some(format!("exp \"{n}\" ✓")),
            ..RunUpsert::default()
        };
        let (run, _) = store.upsert_run(project.id, upsert).await.expect("run");
        let batch = FileStreamBatch {
            history: vec![HistoryLine { line: 0, step: 0, data: r#"{"_step":0,"loss":0.125}"#.into() }],
            received_at: Timestamp::now(),
            ..FileStreamBatch::default()
        };
        store.apply_file_stream(run.id, batch).await.expect("file stream");

        let evaluator = Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: "http://herald.test".into() }));
        store.evaluate_events(10_000, evaluator).await.expect("evaluation");
        let executions =
            store.list_executions(automation.id, Page { before: None, limit: 10 }).await.expect("executions");
        assert_eq!(executions.len(), 1, "the automation should fire once");
        assert_eq!(executions[0].state, ExecutionState::Pending);
        Fired { execution: executions[0].id, automation: automation.id }
    }

    pub async fn execution(&self, id: ExecutionId) -> Execution {
        self.store.execution(id).await.expect("read execution").expect("execution exists")
    }

    pub async fn attempts(&self, id: ExecutionId) -> Vec<Attempt> {
        self.store.list_attempts(id).await.expect("attempts")
    }

    /// Polls until the execution reaches `state`, and fails the test after `within`.
    pub async fn wait_for_state(&self, id: ExecutionId, state: ExecutionState, within: Duration) -> Execution {
        let deadline = Instant::now() + within;
        loop {
            let execution = self.execution(id).await;
            if execution.state == state {
                return execution;
            }
            assert!(
                !execution.state.is_final(),
                "execution ended {}, expected {state}; last error {:?}",
                execution.state,
                execution.last_error
            );
            assert!(
                Instant::now() < deadline,
                "execution still {} after {within:?}, expected {state}; last error {:?}",
                execution.state,
                execution.last_error
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls until the execution has `count` attempts recorded.
    pub async fn wait_for_attempts(&self, id: ExecutionId, count: usize, within: Duration) -> Vec<Attempt> {
        let deadline = Instant::now() + within;
        loop {
            let attempts = self.attempts(id).await;
            if attempts.len() >= count {
                return attempts;
            }
            assert!(Instant::now() < deadline, "{} attempts after {within:?}, expected {count}", attempts.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// Returns a policy that allows loopback, where the test receivers listen.
pub fn loopback() -> NetworkPolicy {
    NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").expect("networks"))
}

/// Settings with short timeouts and the given retry schedule in milliseconds.
pub fn fast_settings(schedule_ms: &[u64]) -> DispatchSettings {
    let timeout = Duration::from_secs(2);
    DispatchSettings {
        timeout,
        connect_timeout: Duration::from_secs(1),
        retry_schedule: schedule_ms.iter().copied().map(Duration::from_millis).collect(),
        concurrency: 8,
        per_integration_concurrency: 8,
        batch_size: 8,
        lease: timeout + Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(3),
    }
}

/// A running dispatcher service.
pub struct Service {
    pub wake: Arc<Notify>,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Service {
    pub fn start(fixture: &Fixture, settings: DispatchSettings, network: NetworkPolicy) -> Self {
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(herald_dispatch::run(
            fixture.dyn_store(),
            settings,
            fixture.key.clone(),
            network,
            wake.clone(),
            shutdown.clone(),
        ));
        Self { wake, shutdown, handle }
    }

    /// Cancels the service and waits until it has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the service stops within its shutdown grace")
            .expect("the service task ends without panicking");
    }
}
