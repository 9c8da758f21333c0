//! The dispatcher service: claims due executions and delivers them.
//!
//! The loop claims only as many executions as it has free slots (at most
//! `settings.concurrency` attempts in flight), so a claimed execution does not wait for a
//! free slot and its lease is spent on its own attempt. Each attempt runs as its own task.
//!
//! One integration may have at most `settings.per_integration_concurrency` attempts in flight.
//! Claims pass over the executions of an integration at that cap, which stay due in the store
//! until one of its attempts ends, and a claim never takes more executions than any
//! integration has room for (see [`InFlight::claim_plan`]). So a receiver that hangs until the
//! timeout occupies at most its cap of the slots, and deliveries to other integrations go ahead.
//!
//! Between claims the loop sleeps until the first of these:
//! - the earliest pending execution becomes due;
//! - a retry that an attempt of this dispatcher scheduled becomes due;
//! - a wake-up arrives, because the evaluator recorded new deliveries;
//! - an attempt ends while all slots were busy, or while its integration was at its cap;
//! - shutdown begins.
//!
//! It never sleeps longer than `settings.poll_interval`, because another Herald process
//! sharing the store may add work without waking this one.
//!
//! On shutdown the loop stops claiming and waits up to `settings.shutdown_grace` for the
//! attempts in flight to finish and be recorded. Attempts still running then are abandoned.
//! Delivery is at least once: an abandoned or crashed attempt is made again once its lease
//! lapses, with the same `webhook-id`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Timestamp;
use herald_store::Store;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client;
use crate::deliver::Deliverer;
use crate::in_flight::{ClaimPlan, InFlight};
use crate::network::NetworkPolicy;
use crate::sealing::SecretKey;
pub use crate::settings::DispatchSettings;

/// The shortest wait when the store reports due executions that the last claim did not
/// return, as happens while another process has claimed or locked them. It keeps the loop from spinning.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(10);

/// Maximum wait after the store fails, reached by doubling from 100 ms.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(30);

/// Maximum number of retry times that [`UpcomingRetries`] keeps. Past it the latest are
/// dropped, and the poll finds their executions up to `poll_interval` late.
const MAX_REMEMBERED_RETRIES: usize = 4_096;

/// Runs the dispatcher until `shutdown` is cancelled.
///
/// `wake` is notified when executions wait for delivery. Invalid settings are corrected
/// with a warning (see [`DispatchSettings::validate`]). If the HTTP client cannot be built,
/// which happens only when the TLS backend fails to initialise, the error is logged and the
/// function returns at once.
pub async fn run(
    store: Arc<dyn Store>,
    settings: DispatchSettings,
    secret_key: SecretKey,
    network: NetworkPolicy,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let settings = settings.corrected();
    let client = match client::build_client(&settings, &network) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "failed to build the delivery HTTP client; the dispatcher is not running");
            return;
        }
    };
    tracing::info!(
        concurrency = settings.concurrency,
        per_integration_concurrency = settings.per_integration_concurrency,
        timeout_ms = settings.timeout.as_millis() as u64,
        attempts = settings.retry_schedule.len() + 1,
        network = %network,
        "dispatcher started"
    );

    let mut in_flight = InFlight::new(settings.per_integration_concurrency);
    let deliverer = Arc::new(Deliverer { store, client, secret_key, network, settings });
    claim_loop(&deliverer, &mut in_flight, &wake, &shutdown).await;
    drain(&mut in_flight, deliverer.settings.shutdown_grace).await;
    tracing::info!("dispatcher stopped");
}

/// Claims and starts attempts until shutdown.
async fn claim_loop(deliverer: &Arc<Deliverer>, in_flight: &mut InFlight, wake: &Notify, shutdown: &CancellationToken) {
    let settings = &deliverer.settings;
    let mut store_failures: u32 = 0;
    let mut retries = UpcomingRetries::default();

    while !shutdown.is_cancelled() {
        reap_finished(in_flight, &mut retries);
        let plan = in_flight.claim_plan(settings.concurrency, settings.batch_size);

        let mut wait = settings.poll_interval;
        if plan.limit > 0 {
            match claim(deliverer, in_flight, &plan).await {
                Ok(claimed) => {
                    store_failures = 0;
                    // A full batch suggests that more executions are due, so claim again
                    // while slots are free.
                    if claimed == plan.limit && in_flight.len() < settings.concurrency {
                        continue;
                    }
                    let left_due =
                        LeftDue { claimed_all_due: claimed < plan.limit, excluded_any: !plan.exclude.is_empty() };
                    let next_retry = retries.next_after(Timestamp::now());
                    wait = idle_wait(deliverer, left_due, next_retry).await.unwrap_or(settings.poll_interval);
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    wait = store_backoff(store_failures);
                    tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, "failed to claim due executions");
                }
            }
        }

        let saturated = in_flight.len() >= settings.concurrency;
        if !wait_for_work(in_flight, &mut retries, wake, shutdown, wait, saturated).await {
            break;
        }
    }
}

/// Claims up to `plan.limit` due executions, except those of the integrations in
/// `plan.exclude`, and starts an attempt for each. Returns how many were claimed.
async fn claim(
    deliverer: &Arc<Deliverer>,
    in_flight: &mut InFlight,
    plan: &ClaimPlan,
) -> Result<usize, herald_store::StoreError> {
    let settings = &deliverer.settings;
    let claimed =
        deliverer.store.claim_due_executions(Timestamp::now(), plan.limit, settings.lease, &plan.exclude).await?;
    let count = claimed.len();
    for execution in claimed {
        in_flight.spawn(execution.integration_id, deliverer.clone().deliver(execution));
    }
    if count > 0 {
        tracing::trace!(count, excluded_integrations = plan.exclude.len(), "claimed executions");
    }
    Ok(count)
}

/// The state of the executions still due after a claim that left slots free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeftDue {
    /// The claim returned fewer executions than requested, so every due execution that it
    /// could take was taken, and those the store still reports as due are excluded or are
    /// claimed or locked elsewhere.
    claimed_all_due: bool,
    /// The claim passed over integrations at their cap.
    excluded_any: bool,
}

/// Returns how long to wait for the next due execution, capped by the poll interval. Returns
/// `None` when the store fails.
async fn idle_wait(deliverer: &Deliverer, left_due: LeftDue, next_retry: Option<Timestamp>) -> Option<Duration> {
    let next_due = match deliverer.store.next_due_at().await {
        Ok(next_due) => next_due,
        Err(error) => {
            tracing::error!(%error, "failed to read when the next execution is due");
            return None;
        }
    };
    Some(idle_wait_until(next_due, next_retry, left_due, Timestamp::now(), deliverer.settings.poll_interval))
}

/// Chooses the wait after a claim that left slots free.
///
/// `next_due` is the store's earliest due time over all integrations, and `next_retry` the
/// earliest retry ahead that this dispatcher scheduled. When the earliest due execution is
/// overdue but was not claimed, and the claim excluded integrations, that execution most
/// likely belongs to an integration at its cap. Waiting [`MIN_IDLE_WAIT`] would then claim
/// nothing a hundred times a second until one of its attempts ends, and that end wakes the
/// loop anyway. So the loop waits for the next retry that it scheduled itself, or for the
/// poll interval.
fn idle_wait_until(
    next_due: Option<Timestamp>,
    next_retry: Option<Timestamp>,
    left_due: LeftDue,
    now: Timestamp,
    poll_interval: Duration,
) -> Duration {
    let Some(next_due) = next_due else {
        return poll_interval;
    };
    let wait = duration_until(next_due, now).min(poll_interval);
    if !left_due.claimed_all_due {
        return wait;
    }
    if next_due > now {
        return wait.max(MIN_IDLE_WAIT);
    }
    if !left_due.excluded_any {
        return MIN_IDLE_WAIT;
    }
    next_retry.map_or(poll_interval, |at| duration_until(at, now).clamp(MIN_IDLE_WAIT, poll_interval))
}

/// Returns the time from `now` until `at`, or zero when `at` has passed.
fn duration_until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(at.millis().saturating_sub(now.millis())).unwrap_or(0))
}

/// The retry times ahead that attempts of this dispatcher scheduled.
///
/// While an integration at its cap has overdue executions, the store's earliest due time is
/// in the past and gives no hint of when an execution of another integration becomes due.
/// The loop then wakes for these times instead, so that a retry to a healthy integration is
/// not delayed by up to a poll interval. Retries that another process scheduled, or that were
/// scheduled before a restart, are found by the poll. At most [`MAX_REMEMBERED_RETRIES`] are
/// kept, the earliest.
#[derive(Debug, Default)]
struct UpcomingRetries(BTreeSet<Timestamp>);

impl UpcomingRetries {
    /// Remembers a retry time.
    fn insert(&mut self, at: Timestamp) {
        self.0.insert(at);
        if self.0.len() > MAX_REMEMBERED_RETRIES {
            self.0.pop_last();
        }
    }

    /// Forgets the times up to `now` and returns the earliest one after it.
    fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        while self.0.first().is_some_and(|&at| at <= now) {
            self.0.pop_first();
        }
        self.0.first().copied()
    }
}

/// Waits until `wait` has passed, a wake-up arrives, or an attempt ends that frees a slot the
/// last claim could not use: any slot when all were busy (`saturated`), or a slot of an
/// integration at its cap. An attempt that schedules a retry sooner than that moves the end of
/// the wait forward. Returns false on shutdown.
async fn wait_for_work(
    in_flight: &mut InFlight,
    retries: &mut UpcomingRetries,
    wake: &Notify,
    shutdown: &CancellationToken,
    wait: Duration,
    saturated: bool,
) -> bool {
    let mut deadline = Instant::now() + wait;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = wake.notified() => return true,
            _ = tokio::time::sleep_until(deadline) => return true,
            Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Some(retry_at) = finished.retry_at {
                    retries.insert(retry_at);
                    deadline = deadline.min(instant_of(retry_at));
                }
                if saturated || finished.freed_capped_integration {
                    return true;
                }
            }
        }
    }
}

/// Converts a store time to the runtime's clock.
fn instant_of(at: Timestamp) -> Instant {
    Instant::now() + duration_until(at, Timestamp::now())
}

/// Collects attempts that have finished, so that their slots count as free, and remembers
/// the retries they scheduled.
fn reap_finished(in_flight: &mut InFlight, retries: &mut UpcomingRetries) {
    while let Some(finished) = in_flight.try_join_next() {
        if let Some(retry_at) = finished.retry_at {
            retries.insert(retry_at);
        }
    }
}

/// Waits for the attempts in flight, up to `grace`, and abandons the rest.
async fn drain(in_flight: &mut InFlight, grace: Duration) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(in_flight = in_flight.len(), grace_ms = grace.as_millis() as u64, "waiting for delivery attempts");
    let finished = tokio::time::timeout(grace, async { while in_flight.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            abandoned = in_flight.len(),
            "delivery attempts did not finish in time; their executions are tried again when their claims lapse"
        );
        in_flight.abort_all();
    }
}

fn store_backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(9))).min(MAX_STORE_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_backoff_doubles_up_to_the_cap() {
        assert_eq!(store_backoff(1), Duration::from_millis(200));
        assert_eq!(store_backoff(2), Duration::from_millis(400));
        assert_eq!(store_backoff(9), MAX_STORE_BACKOFF);
        assert_eq!(store_backoff(u32::MAX), MAX_STORE_BACKOFF);
    }

    const POLL: Duration = Duration::from_secs(1);
    const NOW: Timestamp = Timestamp(100_000);

    fn left_due(claimed_all_due: bool, excluded_any: bool) -> LeftDue {
        LeftDue { claimed_all_due, excluded_any }
    }

    #[test]
    fn idle_wait_follows_next_due_time() {
        let all = left_due(true, false);
        assert_eq!(idle_wait_until(None, None, all, NOW, POLL), POLL);
        assert_eq!(idle_wait_until(Some(Timestamp(100_250)), None, all, NOW, POLL), Duration::from_millis(250));
        assert_eq!(idle_wait_until(Some(Timestamp(160_000)), None, all, NOW, POLL), POLL);
        assert_eq!(idle_wait_until(Some(Timestamp(100_002)), None, all, NOW, POLL), MIN_IDLE_WAIT);
        // Due executions that another process has claimed or locked are looked at again soon.
        assert_eq!(idle_wait_until(Some(Timestamp(99_000)), None, all, NOW, POLL), MIN_IDLE_WAIT);
        // A full claim that used the last slot waits for a slot, not a due time.
        assert_eq!(idle_wait_until(Some(Timestamp(99_000)), None, left_due(false, true), NOW, POLL), Duration::ZERO);
    }

    #[test]
    fn idle_wait_does_not_spin_on_capped_backlog() {
        let excluded = left_due(true, true);
        let overdue = Some(Timestamp(99_000));
        assert_eq!(idle_wait_until(overdue, None, excluded, NOW, POLL), POLL);
        assert_eq!(idle_wait_until(overdue, Some(Timestamp(100_300)), excluded, NOW, POLL), Duration::from_millis(300));
        assert_eq!(idle_wait_until(overdue, Some(Timestamp(100_001)), excluded, NOW, POLL), MIN_IDLE_WAIT);
        assert_eq!(idle_wait_until(overdue, Some(Timestamp(900_000)), excluded, NOW, POLL), POLL);
        // A due time ahead is still waited for, whatever was excluded.
        assert_eq!(idle_wait_until(Some(Timestamp(100_400)), None, excluded, NOW, POLL), Duration::from_millis(400));
    }

    #[test]
    fn upcoming_retries_keep_earliest_ahead() {
        let mut retries = UpcomingRetries::default();
        for at in [3_000, 1_000, 2_000, 2_000] {
            retries.insert(Timestamp(at));
        }
        assert_eq!(retries.next_after(Timestamp(500)), Some(Timestamp(1_000)));
        assert_eq!(retries.next_after(Timestamp(1_000)), Some(Timestamp(2_000)));
        assert_eq!(retries.next_after(Timestamp(2_500)), Some(Timestamp(3_000)));
        assert_eq!(retries.next_after(Timestamp(3_000)), None);
        assert!(retries.0.is_empty(), "passed retry times are kept");
    }

    #[test]
    fn upcoming_retries_drop_latest_past_limit() {
        let mut retries = UpcomingRetries::default();
        let count = i64::try_from(MAX_REMEMBERED_RETRIES).unwrap();
        for at in (1..=count + 1).rev() {
            retries.insert(Timestamp(at));
        }
        assert_eq!(retries.0.len(), MAX_REMEMBERED_RETRIES);
        assert_eq!(retries.0.last(), Some(&Timestamp(count)));
        assert_eq!(retries.next_after(Timestamp(0)), Some(Timestamp(1)));
    }
}
