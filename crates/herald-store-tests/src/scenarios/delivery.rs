//! Delivery: claims, leases, attempts and the execution history.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Timestamp;
use herald_core::ids::{AutomationId, ExecutionId, IntegrationId};
use herald_core::model::ExecutionState;
use herald_store::{Attempt, AttemptNext, AttemptRecord, Automation, ClaimedExecution, NewIntegration, Page, Store};

use super::evaluation::all_executions;
use super::expect_not_found;
use crate::fixtures::{automation, insert_executions, pending_execution, run, threshold_spec, world};

/// A minute, the lease most scenarios claim with.
const LEASE: Duration = Duration::from_secs(60);

/// Stores pending executions first due at each of `due_times`, and returns the automation
/// and the execution ids in the same order.
async fn pending(store: &dyn Store, due_times: &[i64]) -> (Automation, Vec<ExecutionId>) {
    let world = world(store).await;
    let watcher = automation(store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    let run = run(store, &world, "r1").await;
    let executions: Vec<_> = due_times
        .iter()
        .zip(0..)
        .map(|(due, line)| pending_execution(&watcher, run.id, Timestamp(*due), line))
        .collect();
    let ids = executions.iter().map(|execution| execution.id).collect();
    insert_executions(store, run.id, executions).await;
    (watcher, ids)
}

fn claimed_ids(claimed: &[ClaimedExecution]) -> Vec<ExecutionId> {
    claimed.iter().map(|execution| execution.id).collect()
}

fn attempt(started_at: i64, status_code: Option<i64>, error: Option<&str>) -> Attempt {
    Attempt {
        number: 0,
        started_at: Timestamp(started_at),
        duration_ms: 12,
        status_code,
        response_body: status_code.map(|code| format!("status {code}")),
        error: error.map(str::to_owned),
        succeeded: status_code.is_some_and(|code| (200..300).contains(&code)),
    }
}

async fn state_of(store: &dyn Store, id: ExecutionId) -> herald_store::Execution {
    store.execution(id).await.unwrap().expect("the execution exists")
}

/// Checks that due executions are claimed once, earliest first, up to the limit. A second claim
/// gets nothing while the lease lasts.
pub async fn claim_due_executions_once(store: Arc<dyn Store>) {
    let (_, ids) = pending(&*store, &[3_000, 1_000, 2_000, 9_000]).await;
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(1_000)));

    let claimed = store.claim_due_executions(Timestamp(2_500), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&claimed), [ids[1], ids[2]], "not the due executions, earliest first");
    assert_eq!(claimed[0].claim_token, claimed[1].claim_token, "one claim has one token");
    assert_eq!(claimed[0].request_body.as_deref(), Some(r#"{"line": 1}"#));
    assert!(claimed[0].integration_id.is_some());
    assert_eq!(claimed[0].attempt_count, 0);

    assert!(store.claim_due_executions(Timestamp(2_500), 10, LEASE, &[]).await.unwrap().is_empty(), "claimed twice");
    let delivering = state_of(&*store, ids[1]).await;
    assert_eq!(delivering.state, ExecutionState::Delivering);
    assert_eq!(delivering.next_attempt_at, None, "a lease end is shown as a due time");
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(3_000)));

    let limited = store.claim_due_executions(Timestamp(10_000), 1, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&limited), [ids[0]], "the limit was not respected");
    let rest = store.claim_due_executions(Timestamp(10_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&rest), [ids[3]]);
    assert_ne!(limited[0].claim_token, rest[0].claim_token, "two claims share a token");
}

/// Checks that a claim passes over the executions of excluded integrations, including one
/// whose lease ran out, and leaves them due. Among the rest the earliest due are claimed
/// first, and executions without an integration are never excluded.
pub async fn claim_passes_over_excluded_integrations(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let slow = world.integration.id;
    let fast = store
        .create_integration(NewIntegration {
            entity_id: world.team.id,
            name: "fast".into(),
            url: "http://127.0.0.1:9/fast".into(),
            access_token_secret_id: None,
            signing_secret_id: None,
        })
        .await
        .unwrap()
        .id;
    let to_slow = automation(&*store, &world, threshold_spec("to-slow", Some(slow))).await;
    let to_fast = automation(&*store, &world, threshold_spec("to-fast", Some(fast))).await;
    let to_none = automation(&*store, &world, threshold_spec("to-none", None)).await;
    let run = run(&*store, &world, "r1").await;
    let executions = vec![
        pending_execution(&to_slow, run.id, Timestamp(1_000), 0),
        pending_execution(&to_slow, run.id, Timestamp(2_000), 1),
        pending_execution(&to_fast, run.id, Timestamp(3_000), 2),
        pending_execution(&to_none, run.id, Timestamp(4_000), 3),
        pending_execution(&to_slow, run.id, Timestamp(5_000), 4),
        pending_execution(&to_fast, run.id, Timestamp(6_000), 5),
    ];
    let ids: Vec<ExecutionId> = executions.iter().map(|execution| execution.id).collect();
    insert_executions(&*store, run.id, executions).await;

    let first = store.claim_due_executions(Timestamp(10_000), 1, LEASE, &[slow]).await.unwrap();
    assert_eq!(claimed_ids(&first), [ids[2]], "not the earliest due execution outside the excluded integration");
    assert_eq!(first[0].integration_id, Some(fast));
    for id in [ids[0], ids[1], ids[4]] {
        assert_eq!(state_of(&*store, id).await.state, ExecutionState::Pending, "an excluded execution was claimed");
    }
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(1_000)), "an excluded execution is no longer due");

    let without_integration = store.claim_due_executions(Timestamp(10_000), 10, LEASE, &[slow, fast]).await.unwrap();
    assert_eq!(claimed_ids(&without_integration), [ids[3]], "an execution without integration was excluded");
    assert_eq!(without_integration[0].integration_id, None);

    let unknown = IntegrationId::new();
    let rest_of_fast = store.claim_due_executions(Timestamp(10_000), 10, LEASE, &[unknown, slow]).await.unwrap();
    assert_eq!(claimed_ids(&rest_of_fast), [ids[5]]);

    let short_lease = Duration::from_secs(1);
    let all_slow = store.claim_due_executions(Timestamp(10_000), 10, short_lease, &[]).await.unwrap();
    assert_eq!(claimed_ids(&all_slow), [ids[0], ids[1], ids[4]], "not every due execution, earliest first");
    let lapsed = store.claim_due_executions(Timestamp(20_000), 10, LEASE, &[slow]).await.unwrap();
    assert!(lapsed.is_empty(), "an excluded execution was claimed after its lease ran out");
    let reclaimed = store.claim_due_executions(Timestamp(20_000), 10, LEASE, &[fast]).await.unwrap();
    assert_eq!(claimed_ids(&reclaimed), [ids[0], ids[1], ids[4]], "the lapsed leases were not claimable");
}

/// Checks that when a dispatcher stops, its lease runs out and another claim takes the
/// execution.
pub async fn lapsed_lease_reclaimable(store: Arc<dyn Store>) {
    let (_, ids) = pending(&*store, &[1_000]).await;
    let first = store.claim_due_executions(Timestamp(1_000), 10, Duration::from_secs(10), &[]).await.unwrap();
    assert_eq!(claimed_ids(&first), ids);

    assert!(
        store.claim_due_executions(Timestamp(10_999), 10, LEASE, &[]).await.unwrap().is_empty(),
        "claimed in the lease"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(11_000)), "the lease end is not the next due time");

    let second = store.claim_due_executions(Timestamp(11_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&second), ids);
    assert_ne!(second[0].claim_token, first[0].claim_token);
}

/// Checks that an attempt's outcome moves the execution: a retry makes it pending at the retry
/// time, success and failure end it. Attempts are numbered from 1.
pub async fn record_attempt_moves_state(store: Arc<dyn Store>) {
    let (watcher, ids) = pending(&*store, &[1_000, 1_000]).await;
    let claimed = store.claim_due_executions(Timestamp(1_000), 1, LEASE, &[]).await.unwrap();
    let (id, token) = (claimed[0].id, claimed[0].claim_token.clone());

    let retry = AttemptRecord {
        execution_id: id,
        claim_token: token,
        attempt: attempt(1_000, Some(503), Some("service unavailable")),
        next: AttemptNext::RetryAt(Timestamp(5_000)),
    };
    store.record_attempt(retry).await.unwrap();
    let execution = state_of(&*store, id).await;
    assert_eq!((execution.state, execution.next_attempt_at), (ExecutionState::Pending, Some(Timestamp(5_000))));
    assert_eq!((execution.attempt_count, execution.last_status_code), (1, Some(503)));
    assert_eq!(execution.last_error.as_deref(), Some("service unavailable"));

    let other = ids.iter().copied().find(|other| *other != id).unwrap();
    let before_retry = store.claim_due_executions(Timestamp(4_999), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&before_retry), [other], "an execution was claimed before its retry time");
    let again = store.claim_due_executions(Timestamp(5_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&again), [id]);
    assert_eq!(again[0].attempt_count, 1);

    let success = AttemptRecord {
        execution_id: id,
        claim_token: again[0].claim_token.clone(),
        attempt: attempt(5_000, Some(200), None),
        next: AttemptNext::Succeeded,
    };
    store.record_attempt(success).await.unwrap();
    let execution = state_of(&*store, id).await;
    assert_eq!((execution.state, execution.next_attempt_at), (ExecutionState::Succeeded, None));
    assert_eq!((execution.attempt_count, execution.last_status_code, execution.last_error), (2, Some(200), None));

    let attempts = store.list_attempts(id).await.unwrap();
    let numbers: Vec<i64> = attempts.iter().map(|attempt| attempt.number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(attempts[0], Attempt { number: 1, ..attempt(1_000, Some(503), Some("service unavailable")) });
    assert!(attempts[1].succeeded);

    assert_eq!(state_of(&*store, other).await.state, ExecutionState::Delivering);
    let claim = store.claim_due_executions(Timestamp(100_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&claim), [other], "the lease of the other execution did not run out");
    let failure = AttemptRecord {
        execution_id: other,
        claim_token: claim[0].claim_token.clone(),
        attempt: attempt(100_000, None, Some("connection refused")),
        next: AttemptNext::Failed,
    };
    store.record_attempt(failure).await.unwrap();
    let failed = state_of(&*store, other).await;
    assert_eq!((failed.state, failed.next_attempt_at, failed.last_status_code), (ExecutionState::Failed, None, None));
    assert_eq!(store.next_due_at().await.unwrap(), None);
    assert_eq!(all_executions(&*store, &watcher).await.len(), 2);

    let unknown = AttemptRecord {
        execution_id: ExecutionId::new(),
        claim_token: "unknown".into(),
        attempt: attempt(1, None, Some("connection refused")),
        next: AttemptNext::Failed,
    };
    expect_not_found(store.record_attempt(unknown).await);
}

/// Checks that a dispatcher whose lease ran out still records its attempt, but the newer claim
/// decides the state.
pub async fn stale_claim_records_attempt_only(store: Arc<dyn Store>) {
    let (_, ids) = pending(&*store, &[1_000]).await;
    let stale = store.claim_due_executions(Timestamp(1_000), 10, Duration::from_secs(1), &[]).await.unwrap();
    let fresh = store.claim_due_executions(Timestamp(3_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&fresh), ids);

    let late = AttemptRecord {
        execution_id: ids[0],
        claim_token: stale[0].claim_token.clone(),
        attempt: attempt(1_000, Some(200), None),
        next: AttemptNext::Succeeded,
    };
    store.record_attempt(late).await.unwrap();
    let execution = state_of(&*store, ids[0]).await;
    assert_eq!(
        (execution.state, execution.attempt_count),
        (ExecutionState::Delivering, 0),
        "a stale claim changed the state"
    );
    assert_eq!(store.list_attempts(ids[0]).await.unwrap().len(), 1, "the stale attempt was not recorded");

    let current = AttemptRecord {
        execution_id: ids[0],
        claim_token: fresh[0].claim_token.clone(),
        attempt: attempt(3_000, Some(500), Some("internal error")),
        next: AttemptNext::RetryAt(Timestamp(9_000)),
    };
    store.record_attempt(current).await.unwrap();
    let execution = state_of(&*store, ids[0]).await;
    assert_eq!((execution.state, execution.attempt_count), (ExecutionState::Pending, 1));
    let numbers: Vec<i64> = store.list_attempts(ids[0]).await.unwrap().iter().map(|a| a.number).collect();
    assert_eq!(numbers, [1, 2]);
}

/// Checks that executions list newest first, in pages that continue before a given id.
pub async fn executions_paging_newest_first(store: Arc<dyn Store>) {
    let (watcher, mut ids) = pending(&*store, &[1_000, 2_000, 3_000, 4_000, 5_000]).await;
    ids.sort_unstable_by(|a, b| b.cmp(a));

    let page = |before: Option<ExecutionId>, limit: usize| {
        let store = store.clone();
        async move {
            let page = Page { before, limit };
            let listed = store.list_executions(watcher.id, page).await.unwrap();
            listed.into_iter().map(|execution| execution.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 2).await, ids[..2]);
    assert_eq!(page(Some(ids[1]), 2).await, ids[2..4]);
    assert_eq!(page(Some(ids[3]), 10).await, ids[4..]);
    assert!(page(Some(ids[4]), 10).await.is_empty());

    let one = store.execution(ids[2]).await.unwrap().expect("a stored execution");
    assert_eq!((one.id, one.automation_id, one.state), (ids[2], watcher.id, ExecutionState::Pending));
    assert_eq!(store.execution(ExecutionId::new()).await.unwrap(), None);
    assert!(store.list_executions(AutomationId::new(), Page { before: None, limit: 10 }).await.unwrap().is_empty());
    assert!(store.list_attempts(ids[0]).await.unwrap().is_empty());
}

/// Checks that deleting an automation keeps its executions listed and its pending deliveries
/// due.
pub async fn deleted_automation_keeps_executions(store: Arc<dyn Store>) {
    let (watcher, ids) = pending(&*store, &[1_000]).await;
    store.delete_automation(watcher.id).await.unwrap();

    assert_eq!(all_executions(&*store, &watcher).await.len(), 1);
    let claimed = store.claim_due_executions(Timestamp(1_000), 10, LEASE, &[]).await.unwrap();
    assert_eq!(claimed_ids(&claimed), ids, "a deleted automation's delivery is no longer due");
}

/// Checks that an attempt is recorded even when the receiver's response contains NUL
/// characters, which PostgreSQL cannot store as text and keeps as U+FFFD.
pub async fn attempt_text_with_nul_recorded(store: Arc<dyn Store>) {
    let (_, ids) = pending(&*store, &[1_000]).await;
    let claimed = store.claim_due_executions(Timestamp(1_000), 10, LEASE, &[]).await.unwrap();
    let record = AttemptRecord {
        execution_id: ids[0],
        claim_token: claimed[0].claim_token.clone(),
        attempt: Attempt { response_body: Some("ok\0tail".into()), ..attempt(1_000, Some(500), Some("bad\0byte")) },
        next: AttemptNext::RetryAt(Timestamp(2_000)),
    };
    store.record_attempt(record).await.unwrap();

    let restore_nul = |text: Option<String>| text.map(|text| text.replace('\u{FFFD}', "\0"));
    let attempts = store.list_attempts(ids[0]).await.unwrap();
    assert_eq!(restore_nul(attempts[0].response_body.clone()).as_deref(), Some("ok\0tail"));
    assert_eq!(restore_nul(attempts[0].error.clone()).as_deref(), Some("bad\0byte"));
    let execution = state_of(&*store, ids[0]).await;
    assert_eq!(restore_nul(execution.last_error).as_deref(), Some("bad\0byte"));
    assert_eq!(execution.state, ExecutionState::Pending);
}
