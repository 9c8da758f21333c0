//! Concurrent callers on two store handles, as two Herald processes sharing a database.
//!
//! SQLite serializes writers, so these scenarios mostly guard PostgreSQL, where each
//! method's transaction runs alongside others and must lock what it reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use herald_core::Timestamp;
use herald_core::ids::RunId;
use herald_core::model::Role;
use herald_store::{Bootstrap, BootstrapOutcome, EventKind, RunUpsert, Store, StoreError};
use serde_json::json;

use crate::Reopen;
use crate::fixtures::{
    RecordingEvaluator, automation, drain_events, evaluate_all, history_batch, insert_executions, key_hash, loss_lines,
    pending_execution, run, threshold_spec, user, world,
};

/// Returns `count` handles: `store` and `count - 1` more on the same database.
async fn handles(store: Arc<dyn Store>, reopen: &Reopen, count: usize) -> Vec<Arc<dyn Store>> {
    let mut handles = vec![store];
    for _ in 1..count {
        handles.push(reopen().await);
    }
    handles
}

/// Checks that concurrent bootstraps create exactly one organization admin.
pub async fn concurrent_bootstraps_create_one_admin(store: Arc<dyn Store>, reopen: Reopen) {
    let handles = handles(store, &reopen, 2).await;
    let attempts = (0..6u8).map(|index| {
        let store = handles[usize::from(index) % 2].clone();
        let bootstrap = Bootstrap {
            organization: format!("org-{index}"),
            admin_name: format!("admin-{index}"),
            admin_api_key_hash: key_hash(index + 1),
        };
        tokio::spawn(async move { store.bootstrap(bootstrap).await })
    });
    let outcomes: Vec<BootstrapOutcome> =
        join_all(attempts).await.into_iter().map(|joined| joined.unwrap().unwrap()).collect();

    let created = outcomes.iter().filter(|outcome| matches!(outcome, BootstrapOutcome::Created(_))).count();
    assert_eq!(created, 1, "outcomes: {outcomes:?}");
    assert_eq!(handles[0].list_users().await.unwrap().len(), 1);
}

/// Checks that concurrent upserts of one new run create it once and all return it.
pub async fn concurrent_run_upserts_create_one_run(store: Arc<dyn Store>, reopen: Reopen) {
    let world = world(&*store).await;
    let handles = handles(store, &reopen, 2).await;
    let upserts = (0..8).map(|index| {
        let store = handles[index % 2].clone();
        let upsert = RunUpsert { name: "r1".into(), user_id: Some(world.admin.id), ..RunUpsert::default() };
        let project = world.project.id;
        tokio::spawn(async move { store.upsert_run(project, upsert).await })
    });
    let results: Vec<_> = join_all(upserts).await.into_iter().map(|joined| joined.unwrap().unwrap()).collect();

    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "the run was created more than once");
    let ids: HashSet<RunId> = results.iter().map(|(run, _)| run.id).collect();
    assert_eq!(ids.len(), 1, "the upserts returned different runs");
}

/// Checks that two admins demoting each other at the same time never leave the team without
/// one.
pub async fn concurrent_demotions_keep_an_admin(store: Arc<dyn Store>, reopen: Reopen) {
    let alice = user(&*store, "alice", 10).await;
    let bob = user(&*store, "bob", 11).await;
    let team = store.create_team("ml", alice.id).await.unwrap();
    let handles = handles(store, &reopen, 2).await;

    for round in 0..10 {
        handles[0].set_membership(team.id, alice.id, Role::Admin).await.unwrap();
        handles[0].set_membership(team.id, bob.id, Role::Admin).await.unwrap();
        let demotions = [(0, alice.id), (1, bob.id)].map(|(handle, user)| {
            let store = handles[handle].clone();
            tokio::spawn(async move { store.set_membership(team.id, user, Role::Member).await })
        });
        let results: Vec<_> = join_all(demotions).await.into_iter().map(|joined| joined.unwrap()).collect();

        let refused = results.iter().filter(|result| matches!(result, Err(StoreError::Conflict { .. }))).count();
        assert_eq!(refused, 1, "round {round}: expected exactly one refused demotion, got {results:?}");
        let members = handles[1].list_members(team.id).await.unwrap();
        let admins = members.iter().filter(|member| member.role == Role::Admin).count();
        assert_eq!(admins, 1, "round {round}: the team has {admins} admins");
    }
}

/// Checks that dispatchers claiming at the same time from two handles never get the same
/// execution, and together they get every due one.
pub async fn concurrent_claims_never_overlap(store: Arc<dyn Store>, reopen: Reopen) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(&*store, &world, "r1").await;
    let executions: Vec<_> = (0..60).map(|line| pending_execution(&watcher, run.id, Timestamp(1_000), line)).collect();
    let expected: HashSet<_> = executions.iter().map(|execution| execution.id).collect();
    insert_executions(&*store, run.id, executions).await;
    let handles = handles(store, &reopen, 2).await;

    let dispatchers = (0..6).map(|index| {
        let store = handles[index % 2].clone();
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch =
                    store.claim_due_executions(Timestamp(2_000), 4, Duration::from_secs(600), &[]).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|execution| execution.id));
            }
        })
    });
    let claimed: Vec<_> = join_all(dispatchers).await.into_iter().flat_map(|joined| joined.unwrap()).collect();

    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        claimed.len(),
        "{} claims returned an execution already claimed",
        claimed.len() - unique.len()
    );
    assert_eq!(unique, expected, "some due executions were never claimed");
}

/// Checks that, while many writers record events and two handles evaluate, every event is
/// evaluated exactly once, in increasing `seq`, and each run's events in the order they were
/// written.
pub async fn concurrent_writers_never_skip_events(store: Arc<dyn Store>, reopen: Reopen) {
    const RUNS: usize = 6;
    const REQUESTS_PER_RUN: i64 = 20;

    let world = world(&*store).await;
    let mut runs = Vec::new();
    for index in 0..RUNS {
        runs.push(run(&*store, &world, &format!("r{index}")).await.id);
    }
    let handles = handles(store, &reopen, 2).await;
    let recorder = Arc::new(RecordingEvaluator::default());
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));

    let evaluators: Vec<_> = (0..2)
        .map(|index| {
            let (store, recorder, writing) = (handles[index].clone(), recorder.clone(), writing.clone());
            tokio::spawn(async move {
                while writing.load(std::sync::atomic::Ordering::SeqCst) {
                    store.evaluate_events(7, recorder.clone()).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let writers = runs.iter().enumerate().map(|(index, run)| {
        let (store, run) = (handles[index % 2].clone(), *run);
        tokio::spawn(async move {
            for request in 0..REQUESTS_PER_RUN {
                let lines = loss_lines(request * 2, &[json!(1.0), json!(0.5)]);
                store.apply_file_stream(run, history_batch(lines, Timestamp(request))).await.unwrap();
            }
        })
    });
    join_all(writers).await.into_iter().for_each(|joined| joined.unwrap());
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    join_all(evaluators).await.into_iter().for_each(|joined| joined.unwrap());
    evaluate_all(&*handles[0], recorder.clone(), 7).await;

    let events = recorder.events();
    assert_eq!(events.len(), RUNS * REQUESTS_PER_RUN as usize, "events were skipped or evaluated twice");
    assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq), "events were not evaluated in seq order");
    let mut next_line: HashMap<RunId, i64> = HashMap::new();
    for event in &events {
        assert_eq!(event.kind, EventKind::RunHistory);
        let run = event.run_id.expect("a history event names its run");
        let expected = next_line.entry(run).or_insert(0);
        assert_eq!(event.data["first_line"], json!(*expected), "run {run}: events out of order");
        *expected += 2;
    }
    assert!(drain_events(&*handles[1]).await.is_empty());
}
