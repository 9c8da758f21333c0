//! Evaluation end to end: history written through the store, Herald's real evaluator run
//! inside `evaluate_events`, and the executions it stores.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::metric::format_number;
use herald_core::model::ExecutionState;
use herald_store::{
    Automation, BatchEvaluator, EvaluationReport, EvaluationTx, Execution, NewAutomation, Page, RunUpsert, Store,
    StoreError, StoreResult, StoredEvent,
};
use serde_json::{Value, json};

use crate::Reopen;
use crate::fixtures::{
    automation, evaluate_all, evaluator, falling_loss, history_batch, loss_lines, pending_execution, run, spec_from,
    threshold_spec, world,
};

/// Checks that the example automation fires exactly once for the example loss curve, with its
/// payload rendered. Evaluating again, or re-sending the same lines, adds nothing.
pub async fn metric_threshold_fires_once(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(&*store, &world, "r1").await;
    let lines = loss_lines(0, &falling_loss());
    store.apply_file_stream(run.id, history_batch(lines.clone(), Timestamp(50_000))).await.unwrap();

    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!(report, EvaluationReport { events: 1, executions: 1, deliveries: 1 });

    let executions = all_executions(&*store, &watcher).await;
    assert_eq!(executions.len(), 1);
    let execution = &executions[0];
    assert_eq!(execution.state, ExecutionState::Pending);
    assert_eq!((execution.event_type.as_str(), execution.action_type.as_str()), ("RUN_METRIC", "GENERIC_WEBHOOK"));
    assert_eq!((execution.automation_name.as_str(), execution.revision), ("loss-low", 1));
    assert_eq!(execution.run_id, Some(run.id));
    assert_eq!(execution.integration_id, Some(world.integration.id));
    assert_eq!(execution.attempt_count, 0);
    assert_eq!(execution.created_at, Timestamp(50_000), "the execution does not carry the event's time");
    assert_eq!(execution.next_attempt_at, Some(Timestamp(50_000)));

    // The window that crossed is lines 2 to 4: 0.3, 0.1 and 0.05.
    let average = format_number((0.3 + 0.1 + 0.05) / 3.0);
    let body: Value = serde_json::from_str(execution.request_body.as_deref().expect("a rendered body")).unwrap();
    assert_eq!(body, json!({"text": format!("r1: loss={average}"), "step": "4"}));
    assert_eq!(execution.event_data["metric_value"], json!(average));
    assert_eq!(execution.event_data["run_url"], json!("http://herald.test/ml/demo/runs/r1"));

    assert_eq!(evaluate_all(&*store, evaluator(), 100).await.events, 0, "the cursor did not advance");
    let resent = store.apply_file_stream(run.id, history_batch(lines, Timestamp(60_000))).await.unwrap();
    assert_eq!(resent.events_recorded, 0);
    assert_eq!(evaluate_all(&*store, evaluator(), 100).await, EvaluationReport::default());
    assert_eq!(all_executions(&*store, &watcher).await.len(), 1);
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(50_000)));
}

/// Checks that NaN, infinities and rows without the metric never count in an average: the
/// window crosses only where its finite values do.
pub async fn non_finite_values_skipped(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(&*store, &world, "r1").await;

    // Counting -Infinity would fire at step 2, and letting NaN poison the mean would never fire.
    let rows = [
        json!({"_step": 0, "loss": 0.5}),
        json!({"_step": 1, "loss": "NaN"}),
        json!({"_step": 2, "loss": "-Infinity"}),
        json!({"_step": 3, "acc": 0.9}),
        json!({"_step": 4, "loss": "Infinity"}),
        json!({"_step": 5, "loss": 0.1}),
    ];
    let lines = rows
        .iter()
        .zip(0..)
        .map(|(row, line)| herald_store::HistoryLine { line, step: line, data: row.to_string() })
        .collect();
    store.apply_file_stream(run.id, history_batch(lines, Timestamp(1_000))).await.unwrap();
    evaluate_all(&*store, evaluator(), 100).await;

    let executions = all_executions(&*store, &watcher).await;
    assert_eq!(executions.len(), 1, "expected one crossing, got {executions:#?}");
    assert_eq!(executions[0].event_data["step"], json!("5"));
    assert_eq!(executions[0].event_data["metric_value"], json!("0.1"));

    let stored = store.history(run.id, 1, 1).await.unwrap();
    assert_eq!(stored[0].data, r#"{"_step":1,"loss":"NaN"}"#, "a non-finite value was not stored verbatim");
}

/// Checks that the evaluator's window and crossing state survive a restart: after a new store
/// handle on the same database, a condition that stays true does not fire again.
pub async fn window_state_survives_restart(store: Arc<dyn Store>, reopen: Reopen) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(&*store, &world, "r1").await;
    let loss = falling_loss();
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &loss[..5]), Timestamp(1_000))).await.unwrap();
    assert_eq!(evaluate_all(&*store, evaluator(), 100).await.executions, 1);
    drop(store);

    let store = reopen().await;
    store.apply_file_stream(run.id, history_batch(loss_lines(5, &loss[5..]), Timestamp(2_000))).await.unwrap();
    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!((report.events, report.executions), (1, 0), "the condition fired again after a restart");

    // The state still tracks crossings: the loss rises, then falls below again.
    let rising = loss_lines(7, &[json!(0.9), json!(0.9), json!(0.9)]);
    store.apply_file_stream(run.id, history_batch(rising, Timestamp(3_000))).await.unwrap();
    let falling = loss_lines(10, &[json!(0.01), json!(0.01), json!(0.01)]);
    store.apply_file_stream(run.id, history_batch(falling, Timestamp(4_000))).await.unwrap();
    assert_eq!(evaluate_all(&*store, evaluator(), 100).await.executions, 1);

    let steps: Vec<Value> =
        all_executions(&*store, &watcher).await.iter().map(|e| e.event_data["step"].clone()).collect();
    assert_eq!(steps, [json!("12"), json!("4")]);
}

/// Checks that a disabled automation does not fire, whether it was created disabled or disabled
/// later, and its events are still consumed.
pub async fn disabled_automation_does_not_fire(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let created_disabled = NewAutomation {
        project_id: world.project.id,
        spec: threshold_spec("off-from-start", Some(world.integration.id)),
        enabled: false,
        created_by: world.admin.id,
    };
    let created_disabled = store.create_automation(created_disabled).await.unwrap();
    let switched_off = automation(&*store, &world, threshold_spec("switched-off", Some(world.integration.id))).await;
    store.set_automation_enabled(switched_off.id, false).await.unwrap();

    let run = run(&*store, &world, "r1").await;
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &falling_loss()), Timestamp(1))).await.unwrap();
    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!(report, EvaluationReport { events: 1, executions: 0, deliveries: 0 });
    assert!(all_executions(&*store, &created_disabled).await.is_empty());
    assert!(all_executions(&*store, &switched_off).await.is_empty());
}

/// Checks that an automation whose run filter does not match a run ignores that run.
pub async fn run_filter_mismatch_does_not_fire(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let mut stored = threshold_spec("experiments", Some(world.integration.id)).to_stored();
    stored["event"]["run_filter"] = json!({"display_name": {"$regex": "^exp-"}});
    let watcher = automation(&*store, &world, spec_from(stored)).await;

    for (name, display_name) in [("r1", "baseline"), ("r2", "exp-2")] {
        let upsert = RunUpsert {
            name: name.into(),
            user_id: Some(world.admin.id),
            display_name: Some(display_name.into()),
            ..RunUpsert::default()
        };
        let (run, _) = store.upsert_run(world.project.id, upsert).await.unwrap();
        store.apply_file_stream(run.id, history_batch(loss_lines(0, &falling_loss()), Timestamp(1))).await.unwrap();
    }
    evaluate_all(&*store, evaluator(), 100).await;

    let executions = all_executions(&*store, &watcher).await;
    assert_eq!(executions.len(), 1, "expected a firing for exp-2 only, got {executions:#?}");
    assert_eq!(executions[0].event_data["run_name"], json!("exp-2"));
}

/// Checks that a no-op action records a succeeded execution that nothing delivers.
pub async fn no_op_action_records_succeeded(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("note-it", None)).await;
    let run = run(&*store, &world, "r1").await;
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &falling_loss()), Timestamp(1))).await.unwrap();

    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!((report.executions, report.deliveries), (1, 0));
    let executions = all_executions(&*store, &watcher).await;
    assert_eq!(executions[0].state, ExecutionState::Succeeded);
    assert_eq!(executions[0].action_type, "NO_OP");
    assert_eq!((executions[0].request_body.as_deref(), executions[0].integration_id), (None, None));
    assert_eq!(executions[0].next_attempt_at, None);
    assert_eq!(store.next_due_at().await.unwrap(), None);
    assert!(
        store
            .claim_due_executions(Timestamp(i64::MAX / 2), 10, std::time::Duration::from_secs(60), &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Checks that a second crossing inside the cooldown is recorded as skipped, with the reason.
pub async fn cooldown_records_skipped(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let mut spec = threshold_spec("loss-low", Some(world.integration.id));
    spec.cooldown_seconds = 3_600;
    let watcher = automation(&*store, &world, spec).await;
    let run = run(&*store, &world, "r1").await;

    let batches = [
        (loss_lines(0, &falling_loss()[..5]), Timestamp(1_000_000)),
        (loss_lines(5, &[json!(0.9), json!(0.9), json!(0.9)]), Timestamp(1_001_000)),
        (loss_lines(8, &[json!(0.01), json!(0.01), json!(0.01)]), Timestamp(1_002_000)),
    ];
    for (lines, received_at) in batches {
        store.apply_file_stream(run.id, history_batch(lines, received_at)).await.unwrap();
    }
    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!((report.executions, report.deliveries), (2, 1));

    let executions = all_executions(&*store, &watcher).await;
    let skipped = &executions[0];
    assert_eq!(skipped.state, ExecutionState::Skipped);
    assert_eq!(skipped.event_data["step"], json!("10"));
    assert!(skipped.skip_reason.as_deref().is_some_and(|reason| reason.contains("cooldown")), "{skipped:#?}");
    assert_eq!((skipped.request_body.as_deref(), skipped.next_attempt_at), (None, None));
    assert_eq!(executions[1].state, ExecutionState::Pending);
}

/// Checks that a failing evaluator rolls back its executions together with the cursor, so the
/// events are evaluated again by the next pass.
pub async fn evaluation_failure_rolls_back(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(&*store, &world, "r1").await;
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &falling_loss()), Timestamp(1))).await.unwrap();

    let failing = Arc::new(FailingEvaluator { automation: watcher.clone(), run: run.id });
    let result = store.evaluate_events(100, failing).await;
    assert!(matches!(result, Err(StoreError::Backend(ref detail)) if detail.contains("injected")), "{result:?}");
    assert!(all_executions(&*store, &watcher).await.is_empty(), "a failed pass kept its execution");

    let report = evaluate_all(&*store, evaluator(), 100).await;
    assert_eq!((report.events, report.executions), (1, 1), "the failed pass advanced the cursor");
}

/// Inserts an execution for the first event, then fails.
struct FailingEvaluator {
    automation: Automation,
    run: herald_core::ids::RunId,
}

#[async_trait]
impl BatchEvaluator for FailingEvaluator {
    async fn evaluate(&self, tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport> {
        let mut execution = pending_execution(&self.automation, self.run, Timestamp(1), 0);
        execution.event_seq = events.first().map_or(0, |event| event.seq);
        tx.insert_execution(&execution).await?;
        Err(StoreError::Backend("injected evaluator failure".into()))
    }
}

/// Lists an automation's executions, newest first.
pub(crate) async fn all_executions(store: &dyn Store, automation: &Automation) -> Vec<Execution> {
    store.list_executions(automation.id, Page { before: None, limit: 1_000 }).await.unwrap()
}
