//! PostgreSQL behaviour that the shared scenarios cannot reach through the `Store` trait:
//! transactions held open beside the store, and the harness's own failure message.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Timestamp;
use herald_store::StoredEvent;
use herald_store_tests::fixtures::{RecordingEvaluator, evaluate_all, history_batch, loss_lines, run, world};
use herald_store_tests::postgres::{TestDatabase, connect_to_server};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// An event whose transaction took its id first but commits after a later event has been
/// evaluated is still evaluated, after that event. With `seq` taken from the identity
/// column, the cursor would already be past it and the event would be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_committing_event_not_skipped() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let world = world(&*store).await;
    let early = run(&*store, &world, "early").await;
    let late = run(&*store, &world, "late").await;

    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    let mut open = connection.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (kind, project_id, run_id, data, created_at) VALUES ('run_history', $1, $2, $3, 0)",
    )
    .bind(world.project.id.0)
    .bind(late.id.0)
    .bind(json!({"first_line": 0, "last_line": 0, "lines": 1}).to_string())
    .execute(&mut *open)
    .await
    .unwrap();

    store.apply_file_stream(early.id, history_batch(loss_lines(0, &[json!(1.0)]), Timestamp(1))).await.unwrap();
    let recorder = Arc::new(RecordingEvaluator::default());
    evaluate_all(&*store, recorder.clone(), 100).await;
    assert_eq!(run_ids(&recorder.events()), [early.id.0], "an uncommitted event was evaluated");

    open.commit().await.unwrap();
    evaluate_all(&*store, recorder.clone(), 100).await;
    let events = recorder.events();
    assert_eq!(run_ids(&events), [early.id.0, late.id.0], "the late event was skipped");
    assert!(events[0].seq < events[1].seq, "the late event was placed before the cursor");

    connection.close().await.unwrap();
    database.drop_database().await;
}

/// An evaluation pass waits while another transaction has the evaluator cursor locked, so
/// two processes never evaluate the same events at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_waits_for_cursor_lock() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let world = world(&*store).await;
    let run = run(&*store, &world, "r1").await;
    store.apply_file_stream(run.id, history_batch(loss_lines(0, &[json!(1.0)]), Timestamp(1))).await.unwrap();

    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    let mut holder = connection.begin().await.unwrap();
    sqlx::query("SELECT last_seq FROM evaluator_cursor WHERE shard = 0 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();

    let recorder = Arc::new(RecordingEvaluator::default());
    let pass = {
        let (store, recorder) = (store.clone(), recorder.clone());
        tokio::spawn(async move { store.evaluate_events(100, recorder).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pass.is_finished(), "a pass ran while another held the cursor");
    assert!(recorder.events().is_empty());

    holder.rollback().await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), pass).await.unwrap().unwrap().unwrap();
    assert_eq!(report.events, 1);

    connection.close().await.unwrap();
    database.drop_database().await;
}

/// Without a server the harness fails, naming the server and how to start one, rather
/// than letting PostgreSQL tests pass without PostgreSQL.
#[tokio::test]
async fn unreachable_server_fails_with_instructions() {
    // Port 1 on the loopback address has no PostgreSQL server.
    let attempt = tokio::spawn(async { connect_to_server("postgres://postgres:hunter2@127.0.0.1:1/postgres").await });
    let error = attempt.await.expect_err("connecting to a closed port succeeded");
    let panic = error.into_panic();
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("PostgreSQL is required"), "{message}");
    assert!(message.contains("HERALD_TEST_DATABASE_URL"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "the password leaked into the message: {message}");
}

fn run_ids(events: &[StoredEvent]) -> Vec<uuid::Uuid> {
    events.iter().filter_map(|event| event.run_id.map(|id| id.0)).collect()
}
