//! Builders for the data that scenarios start from, and evaluators for tests.
//!
//! Everything here goes through the `Store` trait, so a fixture exercises the backend as
//! much as the scenario that uses it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, ExecutionId, IntegrationId, RunId};
use herald_core::model::ExecutionState;
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_store::{
    Automation, BatchEvaluator, Bootstrap, BootstrapOutcome, Entity, EvaluationReport, EvaluationTx, FileStreamBatch,
    HistoryLine, Integration, NewAutomation, NewExecution, NewIntegration, Project, Run, RunUpsert, Store, StoreResult,
    StoredEvent, User,
};
use serde_json::{Value, json};

/// The public URL the evaluator puts into `${run_url}`.
pub const PUBLIC_URL: &str = "http://herald.test";

/// The payload template of [`threshold_spec`]'s webhook.
pub const PAYLOAD_TEMPLATE: &str = r#"{"text": "${run_name}: ${metric_name}=${metric_value}", "step": "${step}"}"#;

/// Returns a fake API key hash, distinct for each `seed`.
pub fn key_hash(seed: u8) -> [u8; 32] {
    [seed; 32]
}

/// An organization with an admin, a team, a project and a webhook integration.
pub struct World {
    /// The organization admin, who created the team.
    pub admin: User,
    /// The team `ml`.
    pub team: Entity,
    /// The project `ml/demo`.
    pub project: Project,
    /// The webhook integration `hook` of the team.
    pub integration: Integration,
}

/// Creates a [`World`] in an empty store.
pub async fn world(store: &dyn Store) -> World {
    let bootstrap =
        Bootstrap { organization: "acme".into(), admin_name: "admin".into(), admin_api_key_hash: key_hash(1) };
    let BootstrapOutcome::Created(admin) = store.bootstrap(bootstrap).await.expect("bootstrap") else {
        panic!("a fresh store was already initialized");
    };
    let team = store.create_team("ml", admin.id).await.expect("create team");
    let project = store.create_project(team.id, "demo").await.expect("create project");
    let integration = store
        .create_integration(NewIntegration {
            entity_id: team.id,
            name: "hook".into(),
            url: "http://127.0.0.1:9/hook".into(),
            access_token_secret_id: None,
            signing_secret_id: None,
        })
        .await
        .expect("create integration");
    World { admin, team, project, integration }
}

/// Creates a user with a key hash derived from `seed`.
pub async fn user(store: &dyn Store, name: &str, seed: u8) -> User {
    let user = herald_store::NewUser { name: name.into(), is_org_admin: false, api_key_hash: key_hash(seed) };
    store.create_user(user).await.expect("create user")
}

/// Returns the automation document of the brief's example: the AVERAGE of the last 3
/// `loss` values below 0.2, no cooldown, and a webhook to `integration` with
/// [`PAYLOAD_TEMPLATE`], or a no-op when `integration` is `None`.
pub fn threshold_spec(name: &str, integration: Option<IntegrationId>) -> AutomationSpec {
    spec_from(json!({
        "name": name,
        "event": {
            "type": "RUN_METRIC",
            "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$lt", "threshold": 0.2}
        },
        "action": action(integration),
        "cooldown_seconds": 0
    }))
}

/// Returns the action document for [`threshold_spec`].
pub fn action(integration: Option<IntegrationId>) -> Value {
    match integration {
        Some(id) => json!({
            "type": "GENERIC_WEBHOOK",
            "integration_id": id.to_string(),
            "request_payload": serde_json::from_str::<Value>(PAYLOAD_TEMPLATE).expect("the template is JSON"),
        }),
        None => json!({"type": "NO_OP"}),
    }
}

/// Parses an automation in the stored form.
pub fn spec_from(stored: Value) -> AutomationSpec {
    AutomationSpec::from_stored(&stored).unwrap_or_else(|error| panic!("invalid test automation {stored}: {error}"))
}

/// Creates an enabled automation in the world's project.
pub async fn automation(store: &dyn Store, world: &World, spec: AutomationSpec) -> Automation {
    let new = NewAutomation { project_id: world.project.id, spec, enabled: true, created_by: world.admin.id };
    store.create_automation(new).await.expect("create automation")
}

/// Creates a running run in the world's project.
pub async fn run(store: &dyn Store, world: &World, name: &str) -> Run {
    let upsert = RunUpsert { name: name.into(), user_id: Some(world.admin.id), ..RunUpsert::default() };
    let (run, created) = store.upsert_run(world.project.id, upsert).await.expect("upsert run");
    assert!(created, "run {name} already existed");
    run
}

/// Returns history lines from `first_line` on, one per value, each `{"_step": line,
/// "loss": value}`.
pub fn loss_lines(first_line: i64, values: &[Value]) -> Vec<HistoryLine> {
    values
        .iter()
        .zip(first_line..)
        .map(|(value, line)| HistoryLine { line, step: line, data: json!({"_step": line, "loss": value}).to_string() })
        .collect()
}

/// Returns the loss values of the brief's example, which cross an average of 0.2 once.
pub fn falling_loss() -> Vec<Value> {
    [1.0, 0.5, 0.3, 0.1, 0.05, 0.02, 0.01].into_iter().map(Value::from).collect()
}

/// Returns a file_stream request with `history`, received at `received_at`.
pub fn history_batch(history: Vec<HistoryLine>, received_at: Timestamp) -> FileStreamBatch {
    FileStreamBatch { history, summary: None, exit_code: None, received_at }
}

/// Returns Herald's evaluator.
pub fn evaluator() -> Arc<dyn BatchEvaluator> {
    Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: PUBLIC_URL.into() }))
}

/// Runs evaluation passes of up to `batch` events until one finds no events, and adds up what
/// they did.
pub async fn evaluate_all(store: &dyn Store, evaluator: Arc<dyn BatchEvaluator>, batch: usize) -> EvaluationReport {
    let mut total = EvaluationReport::default();
    loop {
        let report = store.evaluate_events(batch, evaluator.clone()).await.expect("evaluate events");
        if report.events == 0 {
            return total;
        }
        total.events += report.events;
        total.executions += report.executions;
        total.deliveries += report.deliveries;
    }
}

/// An evaluator that records the events it is given and creates nothing.
#[derive(Default)]
pub struct RecordingEvaluator {
    events: Mutex<Vec<StoredEvent>>,
}

impl RecordingEvaluator {
    /// Returns the events seen so far, in the order they were given.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.events.lock().expect("recording evaluator lock").clone()
    }
}

#[async_trait]
impl BatchEvaluator for RecordingEvaluator {
    async fn evaluate(&self, _tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport> {
        self.events.lock().expect("recording evaluator lock").extend_from_slice(events);
        Ok(EvaluationReport { events: events.len(), ..EvaluationReport::default() })
    }
}

/// Drains every event into a fresh [`RecordingEvaluator`] and returns the events.
pub async fn drain_events(store: &dyn Store) -> Vec<StoredEvent> {
    let recorder = Arc::new(RecordingEvaluator::default());
    evaluate_all(store, recorder.clone(), 1_000).await;
    recorder.events()
}

/// An evaluator that inserts prepared executions for the first event it is given, so that
/// delivery scenarios can set up executions with exact states and times.
pub struct InsertingEvaluator {
    executions: Mutex<Vec<NewExecution>>,
}

#[async_trait]
impl BatchEvaluator for InsertingEvaluator {
    async fn evaluate(&self, tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport> {
        let executions = std::mem::take(&mut *self.executions.lock().expect("inserting evaluator lock"));
        let Some(event) = events.first() else {
            return Ok(EvaluationReport::default());
        };
        for execution in &executions {
            tx.insert_execution(&NewExecution { event_seq: event.seq, ..execution.clone() }).await?;
        }
        Ok(EvaluationReport { events: events.len(), executions: executions.len(), deliveries: executions.len() })
    }
}

/// Returns a pending webhook execution of `automation`, created at `created_at`, which is
/// also when it is first due.
pub fn pending_execution(automation: &Automation, run: RunId, created_at: Timestamp, line: i64) -> NewExecution {
    NewExecution {
        id: ExecutionId::new(),
        automation_id: automation.id,
        automation_name: automation.spec.name.clone(),
        revision: automation.revision,
        event_seq: 0,
        event_line: Some(line),
        event_type: "RUN_METRIC".into(),
        run_id: Some(run),
        state: ExecutionState::Pending,
        action_type: "GENERIC_WEBHOOK".into(),
        integration_id: automation.spec.action.integration_id(),
        request_body: Some(format!(r#"{{"line": {line}}}"#)),
        event_data: json!({"step": line.to_string()}),
        skip_reason: None,
        error: None,
        created_at,
    }
}

/// Stores `executions` through an evaluation pass: logs one history line to `run` so that there
/// is an event, then lets an [`InsertingEvaluator`] record them.
pub async fn insert_executions(store: &dyn Store, run: RunId, executions: Vec<NewExecution>) {
    let line = store.history(run, 0, usize::MAX).await.expect("read history").len() as i64;
    let batch = history_batch(loss_lines(line, &[Value::from(1.0)]), Timestamp::now());
    store.apply_file_stream(run, batch).await.expect("apply file stream");

    let count = executions.len();
    let inserter = Arc::new(InsertingEvaluator { executions: Mutex::new(executions) });
    let report = evaluate_all(store, inserter, 1_000).await;
    assert_eq!(report.executions, count, "the evaluation pass did not insert every prepared execution");
}

/// Returns the automation ids of `automations`, in order.
pub fn ids(automations: &[Automation]) -> Vec<AutomationId> {
    automations.iter().map(|automation| automation.id).collect()
}
