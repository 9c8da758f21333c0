//! SQLite's group commit: the writer thread commits queued writes together, and one
//! failing write must not take the others down with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use herald_core::Timestamp;
use herald_store::{BatchEvaluator, EvaluationReport, EvaluationTx, StoreError, StoreResult, StoredEvent};
use herald_store_tests::fixtures::{history_batch, loss_lines, run, world};
use herald_store_tests::sqlite::TestFile;
use serde_json::json;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_all_commit() {
    let file = TestFile::create();
    let store = file.open();
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;

    let projects = (0..100).map(|index| {
        let store = store.clone();
        tokio::spawn(async move { store.create_project(world.team.id, &format!("p{index:03}")).await })
    });
    let lines = (0..100).map(|line| {
        let store = store.clone();
        tokio::spawn(async move {
            store.apply_file_stream(run.id, history_batch(loss_lines(line, &[json!(line)]), Timestamp(line))).await
        })
    });
    for joined in join_all(projects).await {
        joined.unwrap().unwrap();
    }
    for joined in join_all(lines).await {
        assert_eq!(joined.unwrap().unwrap().history_lines_written, 1);
    }

    assert_eq!(store.list_projects(Some(world.team.id)).await.unwrap().len(), 101);
    assert_eq!(store.history(run.id, 0, 1_000).await.unwrap().len(), 100);
    let stored = store.run_by_name(world.project.id, "r1").await.unwrap().unwrap();
    assert_eq!(stored.history_line_count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_write_rolls_back_alone() {
    let file = TestFile::create();
    let store = file.open();
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &[json!(1.0)]), Timestamp(1))).await.unwrap();

    // The evaluator runs on the writer thread, so holding it there makes the writes sent
    // meanwhile queue up and share the next commit.
    let (started, writer_busy) = oneshot::channel();
    let blocker = Arc::new(WriterBlocker { started: Mutex::new(Some(started)), hold: Duration::from_millis(300) });
    let evaluation = {
        let store = store.clone();
        tokio::spawn(async move { store.evaluate_events(100, blocker).await })
    };
    writer_busy.await.unwrap();

    let mut writes = Vec::new();
    for index in 0..50 {
        let store = store.clone();
        let name = if index == 25 { "demo".to_owned() } else { format!("p{index:02}") };
        writes.push(tokio::spawn(async move { store.create_project(world.team.id, &name).await }));
    }
    let results: Vec<_> = join_all(writes).await.into_iter().map(|joined| joined.unwrap()).collect();
    evaluation.await.unwrap().unwrap();

    for (index, result) in results.iter().enumerate() {
        if index == 25 {
            assert!(matches!(result, Err(StoreError::Conflict { code: "already_exists", .. })), "{result:?}");
        } else {
            assert!(result.is_ok(), "write {index} failed with its batch: {result:?}");
        }
    }
    let names: Vec<String> =
        store.list_projects(Some(world.team.id)).await.unwrap().into_iter().map(|project| project.name).collect();
    assert_eq!(names.len(), 50, "expected demo and 49 new projects, got {names:?}");
    assert!(names.iter().filter(|name| *name == "demo").count() == 1);
}

/// Reports that it started, then blocks the thread it runs on for `hold`.
struct WriterBlocker {
    started: Mutex<Option<oneshot::Sender<()>>>,
    hold: Duration,
}

#[async_trait]
impl BatchEvaluator for WriterBlocker {
    async fn evaluate(&self, _tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport> {
        if let Some(started) = self.started.lock().unwrap().take() {
            let _ = started.send(());
        }
        std::thread::sleep(self.hold);
        Ok(EvaluationReport { events: events.len(), ..EvaluationReport::default() })
    }
}
