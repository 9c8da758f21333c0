//! The dispatcher service: claims due executions and delivers them.
//!
//! The loop claims only as many executions as it has free slots (at most
//! `settings.concurrency` attempts in flight), so a claimed execution does not wait for a
//! free slot and its lease is spent on its own attempt. Each attempt runs as its own task, so
//! a receiver that hangs until the timeout occupies one slot and delays no other delivery.
//!
//! Between claims the loop sleeps until the first of these:
//! - the earliest pending execution becomes due;
//! - a retry scheduled by an attempt that just finished becomes due;
//! - a wake-up arrives, because the evaluator recorded new deliveries;
//! - a slot frees up while all were busy;
//! - shutdown begins.
//!
//! It never sleeps longer than `settings.poll_interval`, because another Herald process
//! sharing the store may add work without waking this one.
//!
//! On shutdown the loop stops claiming and waits up to `settings.shutdown_grace` for the
//! attempts in flight to finish and be recorded. Attempts still running then are abandoned.
//! Delivery is at least once: an abandoned or crashed attempt is made again once its lease
//! lapses, with the same `webhook-id`.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Timestamp;
use herald_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client;
use crate::deliver::Deliverer;
use crate::network::NetworkPolicy;
use crate::sealing::SecretKey;
pub use crate::settings::DispatchSettings;

/// The shortest wait when the store reports due executions that the last claim did not
/// return, as happens while another process has claimed or locked them. It keeps the loop from spinning.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(10);

/// Maximum wait after the store fails, reached by doubling from 100 ms.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(30);

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
        timeout_ms = settings.timeout.as_millis() as u64,
        attempts = settings.retry_schedule.len() + 1,
        network = %network,
        "dispatcher started"
    );

    let deliverer = Arc::new(Deliverer { store, client, secret_key, network, settings });
    let mut in_flight = JoinSet::new();
    claim_loop(&deliverer, &mut in_flight, &wake, &shutdown).await;
    drain(&mut in_flight, deliverer.settings.shutdown_grace).await;
    tracing::info!("dispatcher stopped");
}

/// Claims and starts attempts until shutdown.
async fn claim_loop(
    deliverer: &Arc<Deliverer>,
    in_flight: &mut JoinSet<Option<Timestamp>>,
    wake: &Notify,
    shutdown: &CancellationToken,
) {
    let settings = &deliverer.settings;
    let mut store_failures: u32 = 0;

    while !shutdown.is_cancelled() {
        reap_finished(in_flight);
        let free = settings.concurrency.saturating_sub(in_flight.len());
        let limit = free.min(settings.batch_size);

        let mut wait = settings.poll_interval;
        if limit > 0 {
            match claim(deliverer, in_flight, limit).await {
                Ok(claimed) => {
                    store_failures = 0;
                    // A full batch suggests that more executions are due, so claim again
                    // while slots are free.
                    if claimed == limit && in_flight.len() < settings.concurrency {
                        continue;
                    }
                    wait = idle_wait(deliverer, claimed < limit).await.unwrap_or(settings.poll_interval);
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    wait = store_backoff(store_failures);
                    tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, "failed to claim due executions");
                }
            }
        }

        let saturated = in_flight.len() >= settings.concurrency;
        if !wait_for_work(in_flight, wake, shutdown, wait, saturated).await {
            break;
        }
    }
}

/// Claims up to `limit` due executions and starts an attempt for each. Returns how many
/// were claimed.
async fn claim(
    deliverer: &Arc<Deliverer>,
    in_flight: &mut JoinSet<Option<Timestamp>>,
    limit: usize,
) -> Result<usize, herald_store::StoreError> {
    let settings = &deliverer.settings;
    let claimed = deliverer.store.claim_due_executions(Timestamp::now(), limit, settings.lease).await?;
    let count = claimed.len();
    for execution in claimed {
        in_flight.spawn(deliverer.clone().deliver(execution));
    }
    if count > 0 {
        tracing::trace!(count, "claimed executions");
    }
    Ok(count)
}

/// Returns how long to wait for the earliest due execution, capped by the poll interval.
/// `claimed_all_due` is true when the last claim returned fewer executions than requested,
/// so anything the store still reports as due is claimed or locked elsewhere.
async fn idle_wait(deliverer: &Deliverer, claimed_all_due: bool) -> Option<Duration> {
    let poll_interval = deliverer.settings.poll_interval;
    let next_due = match deliverer.store.next_due_at().await {
        Ok(next_due) => next_due?,
        Err(error) => {
            tracing::error!(%error, "failed to read when the next execution is due");
            return None;
        }
    };
    let millis = next_due.millis().saturating_sub(Timestamp::now().millis());
    let wait = Duration::from_millis(u64::try_from(millis).unwrap_or(0)).min(poll_interval);
    if claimed_all_due && wait < MIN_IDLE_WAIT { Some(MIN_IDLE_WAIT) } else { Some(wait) }
}

/// Waits until `wait` has passed, a wake-up arrives, or, when every slot is busy, an
/// attempt finishes. An attempt that schedules a retry sooner than that moves the end of
/// the wait forward. Returns false on shutdown.
async fn wait_for_work(
    in_flight: &mut JoinSet<Option<Timestamp>>,
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
            Some(result) = in_flight.join_next(), if !in_flight.is_empty() => {
                if saturated {
                    log_task_end(result);
                    return true;
                }
                if let Some(retry_at) = log_task_end(result) {
                    deadline = deadline.min(instant_of(retry_at));
                }
            }
        }
    }
}

/// Converts a store time to the runtime's clock.
fn instant_of(at: Timestamp) -> Instant {
    let millis = at.millis().saturating_sub(Timestamp::now().millis());
    Instant::now() + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// Collects attempts that have finished, so that their slots count as free.
fn reap_finished(in_flight: &mut JoinSet<Option<Timestamp>>) {
    while let Some(result) = in_flight.try_join_next() {
        log_task_end(result);
    }
}

/// Returns the retry time that a finished attempt recorded, and logs an attempt that
/// panicked.
fn log_task_end(result: Result<Option<Timestamp>, tokio::task::JoinError>) -> Option<Timestamp> {
    match result {
        Ok(retry_at) => retry_at,
        Err(error) => {
            if error.is_panic() {
                tracing::error!(%error, "a delivery attempt panicked; its execution is tried again when its claim lapses");
            }
            None
        }
    }
}

/// Waits for the attempts in flight, up to `grace`, and abandons the rest.
async fn drain(in_flight: &mut JoinSet<Option<Timestamp>>, grace: Duration) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(in_flight = in_flight.len(), grace_ms = grace.as_millis() as u64, "waiting for delivery attempts");
    let finished = tokio::time::timeout(grace, async {
        while let Some(result) = in_flight.join_next().await {
            log_task_end(result);
        }
    })
    .await;
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
}
