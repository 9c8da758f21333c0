//! Runs, file_stream requests, history and run files.

use std::sync::Arc;

use herald_core::Timestamp;
use herald_core::ids::RunId;
use herald_core::model::RunState;
use herald_store::{EventKind, FileStreamBatch, HistoryLine, RunFile, RunUpsert, Store};
use serde_json::{Value, json};

use super::expect_not_found;
use crate::fixtures::{drain_events, history_batch, loss_lines, run, world};

/// Checks that the first upsert creates a running run. Later ones change only the fields they
/// set.
pub async fn runs_upsert_creates_then_updates(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let config = json!({"lr": {"value": 0.1}, "batch": {"value": 32}});
    let first = RunUpsert {
        name: "r1".into(),
        user_id: Some(world.admin.id),
        display_name: None,
        config: Some(config.clone()),
        tags: Some(vec!["a".into(), "b".into()]),
        notes: Some("first try".into()),
        group: Some("sweep".into()),
        job_type: Some("train".into()),
        host: Some("gpu-1".into()),
    };
    let (created, was_created) = store.upsert_run(world.project.id, first).await.unwrap();
    assert!(was_created);
    assert_eq!(created.state, RunState::Running);
    assert_eq!(created.display_name, "r1", "a new run without a display name is not named after its id");
    assert_eq!(created.config, Some(config.clone()));
    assert_eq!(created.tags, ["a", "b"]);
    assert_eq!(created.history_line_count, 0);

    let rename = RunUpsert { name: "r1".into(), display_name: Some("exp-1".into()), ..RunUpsert::default() };
    let (renamed, was_created) = store.upsert_run(world.project.id, rename).await.unwrap();
    assert!(!was_created);
    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.display_name, "exp-1");
    assert_eq!(renamed.config, Some(config), "an upsert without a config changed the config");
    assert_eq!(renamed.tags, ["a", "b"]);
    assert_eq!(renamed.notes.as_deref(), Some("first try"));
    assert_eq!(renamed.group.as_deref(), Some("sweep"));
    assert_eq!(renamed.job_type.as_deref(), Some("train"));
    assert_eq!(renamed.host.as_deref(), Some("gpu-1"));
    assert_eq!(renamed.created_at, created.created_at);

    let retag = RunUpsert { name: "r1".into(), tags: Some(vec![]), ..RunUpsert::default() };
    let (retagged, _) = store.upsert_run(world.project.id, retag).await.unwrap();
    assert!(retagged.tags.is_empty(), "an empty tag list did not replace the tags");
    assert_eq!(store.run_by_name(world.project.id, "r1").await.unwrap(), Some(retagged));

    // A new run needs the user who logs it, so without one nothing is created.
    let orphan = RunUpsert { name: "r2".into(), ..RunUpsert::default() };
    assert!(store.upsert_run(world.project.id, orphan).await.is_err());
    assert_eq!(store.run_by_name(world.project.id, "r2").await.unwrap(), None);
    assert!(drain_events(&*store).await.is_empty(), "creating or updating a running run recorded an event");
}

/// Checks that history lines are upserted by line index: identical lines are not written again
/// and record no event, changed lines are rewritten.
pub async fn runs_upsert_by_line(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    let lines = loss_lines(0, &[json!(1.0), json!(0.5), json!(0.3)]);

    let outcome = store.apply_file_stream(run.id, history_batch(lines.clone(), Timestamp(1_000))).await.unwrap();
    assert_eq!((outcome.history_lines_written, outcome.events_recorded), (3, 1));
    assert_eq!(history_data(&*store, run.id).await, lines);

    let repeat = store.apply_file_stream(run.id, history_batch(lines.clone(), Timestamp(2_000))).await.unwrap();
    assert_eq!((repeat.history_lines_written, repeat.events_recorded), (0, 0), "identical lines were written again");

    let changed = HistoryLine { line: 1, step: 1, data: json!({"_step": 1, "loss": 0.45}).to_string() };
    let appended = loss_lines(3, &[json!(0.2)]);
    let batch = history_batch(vec![changed.clone(), lines[2].clone(), appended[0].clone()], Timestamp(3_000));
    let outcome = store.apply_file_stream(run.id, batch).await.unwrap();
    assert_eq!((outcome.history_lines_written, outcome.events_recorded), (2, 1));

    let expected = vec![lines[0].clone(), changed, lines[2].clone(), appended[0].clone()];
    assert_eq!(history_data(&*store, run.id).await, expected);
    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.history_line_count, 4);
    assert_eq!(stored.heartbeat_at, Timestamp(3_000));

    let events = drain_events(&*store).await;
    let ranges: Vec<(EventKind, Value)> = events.iter().map(|event| (event.kind, event.data.clone())).collect();
    let expected_ranges = vec![
        (EventKind::RunHistory, json!({"first_line": 0, "last_line": 2, "lines": 3, "run_state": "RUNNING"})),
        (EventKind::RunHistory, json!({"first_line": 1, "last_line": 3, "lines": 2, "run_state": "RUNNING"})),
    ];
    assert_eq!(ranges, expected_ranges, "the events do not match the lines actually written");
    assert!(events.iter().all(|event| event.run_id == Some(run.id) && event.project_id == world.project.id));
    assert_eq!(events[1].created_at, Timestamp(3_000), "the event time is not the request's time");
}

/// Checks that a line index past the end grows the line count to one past it, and a repeated
/// line in one request keeps the content that comes last.
pub async fn runs_history_line_count_follows_highest_line(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    let first = HistoryLine { line: 10, step: 10, data: r#"{"loss":1}"#.into() };
    let last = HistoryLine { line: 10, step: 10, data: r#"{"loss":2}"#.into() };
    store.apply_file_stream(run.id, history_batch(vec![first, last.clone()], Timestamp(1))).await.unwrap();

    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.history_line_count, 11);
    assert_eq!(history_data(&*store, run.id).await, vec![last]);

    // An older line sent late does not shrink the count.
    store.apply_file_stream(run.id, history_batch(loss_lines(2, &[json!(0.5)]), Timestamp(2))).await.unwrap();
    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.history_line_count, 11);
}

/// Checks that the summary of a request replaces the stored one. A request without one keeps
/// it.
pub async fn runs_summary_replaced(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    let summary =
        |value: Value| FileStreamBatch { summary: Some(value), received_at: Timestamp(5), ..Default::default() };

    store.apply_file_stream(run.id, summary(json!({"loss": 0.1, "acc": 0.9}))).await.unwrap();
    store.apply_file_stream(run.id, FileStreamBatch { received_at: Timestamp(6), ..Default::default() }).await.unwrap();
    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.summary, Some(json!({"loss": 0.1, "acc": 0.9})), "a request without a summary changed it");
    assert_eq!(stored.heartbeat_at, Timestamp(6));

    let outcome = store.apply_file_stream(run.id, summary(json!({"acc": 0.95}))).await.unwrap();
    assert_eq!(outcome.events_recorded, 0, "a summary change recorded an event");
    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.summary, Some(json!({"acc": 0.95})), "the summary was merged instead of replaced");
}

/// Checks that exit code 0 finishes a run and any other code fails it. A repeated final request
/// changes nothing.
pub async fn runs_exit_code_ends_run(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let good = run(&*store, &world, "good").await;
    let bad = run(&*store, &world, "bad").await;
    let finish = |exit_code: i64| FileStreamBatch {
        history: loss_lines(0, &[json!(0.5)]),
        exit_code: Some(exit_code),
        received_at: Timestamp(10),
        ..Default::default()
    };

    let outcome = store.apply_file_stream(good.id, finish(0)).await.unwrap();
    assert_eq!(outcome.ended_as, Some(RunState::Finished));
    assert_eq!(outcome.events_recorded, 2, "expected one history event and one state event");
    let stored = store.run_by_name(world.project.id, "good").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.exit_code), (RunState::Finished, Some(0)));

    let repeat = store.apply_file_stream(good.id, finish(1)).await.unwrap();
    assert_eq!((repeat.ended_as, repeat.events_recorded, repeat.history_lines_written), (None, 0, 0));
    let stored = store.run_by_name(world.project.id, "good").await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.exit_code),
        (RunState::Finished, Some(0)),
        "a repeated final request changed the run"
    );

    let outcome = store.apply_file_stream(bad.id, finish(137)).await.unwrap();
    assert_eq!(outcome.ended_as, Some(RunState::Failed));
    let stored = store.run_by_name(world.project.id, "bad").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.exit_code), (RunState::Failed, Some(137)));

    let states: Vec<Value> =
        drain_events(&*store).await.into_iter().filter(|e| e.kind == EventKind::RunState).map(|e| e.data).collect();
    let expected = vec![
        json!({"state": "FINISHED", "previous": "RUNNING", "exit_code": 0}),
        json!({"state": "FAILED", "previous": "RUNNING", "exit_code": 137}),
    ];
    assert_eq!(states, expected);
}

/// Checks that an upsert of an ended run resumes it and records the state change.
pub async fn runs_upsert_resumes_ended_run(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    let finish = FileStreamBatch { exit_code: Some(0), received_at: Timestamp(10), ..Default::default() };
    store.apply_file_stream(run.id, finish).await.unwrap();
    drain_events(&*store).await;

    let resume = RunUpsert { name: "r1".into(), ..RunUpsert::default() };
    let (resumed, created) = store.upsert_run(world.project.id, resume.clone()).await.unwrap();
    assert!(!created);
    assert_eq!((resumed.id, resumed.state, resumed.exit_code), (run.id, RunState::Running, None));

    let events = drain_events(&*store).await;
    assert_eq!(events.len(), 1, "resuming recorded {} events", events.len());
    assert_eq!(events[0].kind, EventKind::RunState);
    assert_eq!(events[0].data, json!({"state": "RUNNING", "previous": "FINISHED", "exit_code": null}));

    store.upsert_run(world.project.id, resume).await.unwrap();
    assert!(drain_events(&*store).await.is_empty(), "an upsert of a running run recorded an event");
}

/// Checks that history is read in pages by line, and that run files are replaced and listed by
/// name.
pub async fn runs_history_paging_and_files(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    let values: Vec<Value> = (0..10).map(|index| json!(index)).collect();
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &values), Timestamp(1))).await.unwrap();

    let lines = |rows: Vec<herald_store::HistoryRow>| rows.into_iter().map(|row| row.line).collect::<Vec<_>>();
    assert_eq!(lines(store.history(run.id, 3, 4).await.unwrap()), [3, 4, 5, 6]);
    assert_eq!(lines(store.history(run.id, 8, 100).await.unwrap()), [8, 9]);
    assert!(store.history(run.id, 20, 5).await.unwrap().is_empty());
    assert!(store.history(RunId::new(), 0, 5).await.unwrap().is_empty());

    let file = |name: &str, digest: &str, size: i64| RunFile {
        name: name.into(),
        digest: digest.into(),
        size,
        uploaded_at: Timestamp(size),
    };
    store.put_run_file(run.id, file("output.log", "aa", 10)).await.unwrap();
    store.put_run_file(run.id, file("config.yaml", "bb", 20)).await.unwrap();
    store.put_run_file(run.id, file("config.yaml", "cc", 30)).await.unwrap();
    let files = store.list_run_files(run.id).await.unwrap();
    assert_eq!(files, vec![file("config.yaml", "cc", 30), file("output.log", "aa", 10)]);
}

/// Checks that a request for a run that does not exist fails and records nothing.
pub async fn file_stream_unknown_run_not_found(store: Arc<dyn Store>) {
    world(&*store).await;
    let batch = history_batch(loss_lines(0, &[json!(1.0)]), Timestamp(1));
    expect_not_found(store.apply_file_stream(RunId::new(), batch).await);
    assert!(drain_events(&*store).await.is_empty());
}

async fn history_data(store: &dyn Store, run: RunId) -> Vec<HistoryLine> {
    let rows = store.history(run, 0, 1_000).await.unwrap();
    rows.into_iter().map(|row| HistoryLine { line: row.line, step: row.step, data: row.data }).collect()
}
