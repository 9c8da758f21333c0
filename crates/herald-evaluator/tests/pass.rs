//! The evaluation pass against a real SQLite store: which rows reach an automation.

use std::sync::Arc;

use herald_core::Timestamp;
use herald_core::automation::{ActionSpec, AutomationDraft, AutomationSpec, EventSpec};
use herald_core::ids::RunId;
use herald_core::model::ExecutionState;
use herald_core::template::{MAX_RENDERED_BYTES, PayloadTemplate};
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_store::{
    Automation, Bootstrap, BootstrapOutcome, FileStreamBatch, HistoryLine, NewAutomation, NewIntegration, Page,
    RunUpsert, Store,
};
use herald_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};

struct Fixture {
    store: Arc<dyn Store>,
    evaluator: Arc<EventEvaluator>,
    run: RunId,
    next_line: i64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Creates a store with team `ml`, project `ml/demo`, a run, and a NO_OP automation made from
    /// `event` (the `event` part of an automation document).
    async fn new(event: Value) -> (Self, Automation) {
        Self::with_action(event, None).await
    }

    /// Like [`Fixture::new`], with a webhook action rendering `payload` when it is given.
    async fn with_action(event: Value, payload: Option<Value>) -> (Self, Automation) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("h.db"))).unwrap());
        let BootstrapOutcome::Created(admin) = store
            .bootstrap(Bootstrap { organization: "o".into(), admin_name: "admin".into(), admin_api_key_hash: [7; 32] })
            .await
            .unwrap()
        else {
            panic!("bootstrap");
        };
        let team = store.create_team("ml", admin.id).await.unwrap();
        let project = store.ensure_project(team.id, "demo").await.unwrap();

        let document = json!({
            "name": "watch", "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
            "event": event, "action": {"type": "NO_OP"}, "cooldown_seconds": 0
        });
        let draft = AutomationDraft::parse(&document).unwrap();
        let action = match payload {
            None => ActionSpec::NoOp,
            Some(payload) => {
                let integration = store
                    .create_integration(NewIntegration {
                        entity_id: team.id,
                        name: "ci".into(),
                        url: "http://127.0.0.1:9/hook".into(),
                        access_token_secret_id: None,
                        signing_secret_id: None,
                    })
                    .await
                    .unwrap();
                let template = PayloadTemplate::from_document(payload, "request_payload").unwrap();
                ActionSpec::GenericWebhook { integration_id: integration.id, payload: Some(template) }
            }
        };
        let spec = AutomationSpec {
            name: draft.name,
            description: None,
            event: draft.event,
            action,
            cooldown_seconds: draft.cooldown_seconds,
        };
        let automation = store
            .create_automation(NewAutomation { project_id: project.id, spec, enabled: true, created_by: admin.id })
            .await
            .unwrap();

        let upsert = RunUpsert { name: "r1".into(), user_id: Some(admin.id), ..RunUpsert::default() };
        let (run, _) = store.upsert_run(project.id, upsert).await.unwrap();
        let evaluator = Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: "http://127.0.0.1:1".into() }));
        (Self { store, evaluator, run: run.id, next_line: 0, _dir: dir }, automation)
    }

    /// Logs `loss` values as the next history lines, ending the run with `exit_code` in the
    /// same request when given, and runs an evaluation pass.
    async fn log(&mut self, losses: &[f64], exit_code: Option<i64>) {
        let history = losses
            .iter()
            .map(|loss| {
                let line = self.next_line;
                self.next_line += 1;
                HistoryLine { line, step: line, data: json!({"_step": line, "loss": loss}).to_string() }
            })
            .collect();
        let batch = FileStreamBatch { history, summary: None, exit_code, received_at: Timestamp::now() };
        self.store.apply_file_stream(self.run, batch).await.unwrap();
        self.store.evaluate_events(512, self.evaluator.clone()).await.unwrap();
    }

    /// Returns the `metric_value` of each execution, oldest first.
    async fn fired_values(&self, automation: &Automation) -> Vec<String> {
        let page = Page { before: None, limit: 100 };
        let mut executions = self.store.list_executions(automation.id, page).await.unwrap();
        executions.reverse();
        executions.iter().map(|execution| execution.event_data["metric_value"].as_str().unwrap().to_owned()).collect()
    }
}

fn threshold(window_size: usize, agg_op: &str, threshold: f64) -> Value {
    json!({"name": "loss", "agg_op": agg_op, "window_size": window_size, "cmp_op": "$lt", "threshold": threshold})
}

#[tokio::test]
async fn final_rows_match_running_filter() {
    let event = json!({"type": "RUN_METRIC", "run_filter": {"state": "RUNNING"},
                       "threshold_filter": threshold(1, "MIN", 0.2)});
    let (mut fixture, automation) = Fixture::new(event).await;

    fixture.log(&[0.9, 0.8], None).await;
    fixture.log(&[0.1], Some(0)).await;

    assert_eq!(fixture.fired_values(&automation).await, vec!["0.1"]);
    let executions = fixture.store.list_executions(automation.id, Page { before: None, limit: 10 }).await.unwrap();
    assert_eq!(executions[0].event_data["run_status"], "RUNNING");
}

#[tokio::test]
async fn rows_logged_while_disabled_fill_the_window() {
    let (mut fixture, automation) =
        Fixture::new(json!({"type": "RUN_METRIC", "threshold_filter": threshold(3, "AVERAGE", 0.5)})).await;

    fixture.log(&[1.0, 1.0, 1.0], None).await;
    fixture.store.set_automation_enabled(automation.id, false).await.unwrap();
    fixture.log(&[0.1, 0.1, 0.1], None).await;
    fixture.store.set_automation_enabled(automation.id, true).await.unwrap();
    fixture.log(&[0.1], None).await;

    // The window is [0.1, 0.1, 0.1] at the first row after enabling, not [1.0, 1.0, 0.1].
    let average = format!("{:?}", (0.1_f64 + 0.1 + 0.1) / 3.0);
    assert_eq!(fixture.fired_values(&automation).await, vec![average]);
}

#[tokio::test]
async fn edit_to_another_metric_can_fire() {
    let (mut fixture, automation) =
        Fixture::new(json!({"type": "RUN_METRIC", "threshold_filter": threshold(1, "MIN", 0.5)})).await;
    fixture.log(&[0.1], None).await;
    assert_eq!(fixture.fired_values(&automation).await.len(), 1);

    let mut spec = automation.spec.clone();
    let EventSpec::RunMetric(event) = &mut spec.event;
    event.threshold.metric = "acc".into();
    let edited = fixture
        .store
        .update_automation(automation.id, automation.project_id, spec, true, automation.created_by)
        .await
        .unwrap();
    assert_eq!(edited.revision, 2);

    let line = fixture.next_line;
    let history = vec![HistoryLine { line, step: line, data: json!({"_step": line, "acc": 0.1}).to_string() }];
    let batch = FileStreamBatch { history, summary: None, exit_code: None, received_at: Timestamp::now() };
    fixture.store.apply_file_stream(fixture.run, batch).await.unwrap();
    fixture.store.evaluate_events(512, fixture.evaluator.clone()).await.unwrap();

    assert_eq!(fixture.fired_values(&automation).await.len(), 2, "the new metric's crossing fires");
}

#[tokio::test]
async fn oversized_rendered_body_fails_the_execution() {
    let references: serde_json::Map<String, Value> =
        (0..100).map(|index| (format!("v{index}"), json!("${metric_values}"))).collect();
    let event = json!({"type": "RUN_METRIC",
                       "threshold_filter": {"name": "loss", "window_size": 1000, "cmp_op": "$gt", "threshold": 0.0}});
    let (mut fixture, automation) = Fixture::with_action(event, Some(Value::Object(references))).await;

    // 1,000 values of 24 characters each make every ${metric_values} about 25 KB.
    fixture.log(&[-1.234_567_890_123_456_7e-300; 999], None).await;
    fixture.log(&[1.0], None).await;

    let executions = fixture.store.list_executions(automation.id, Page { before: None, limit: 10 }).await.unwrap();
    assert_eq!(executions.len(), 1);
    let execution = &executions[0];
    assert_eq!(execution.state, ExecutionState::Failed);
    assert_eq!(execution.request_body, None);
    let error = execution.last_error.as_deref().unwrap();
    assert!(error.contains(&MAX_RENDERED_BYTES.to_string()), "{error}");
}
