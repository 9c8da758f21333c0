//! The evaluator service: runs evaluation passes while new events arrive.
//!
//! The API wakes the service after each write that records an event, so evaluation usually
//! starts within microseconds. It also polls, because with PostgreSQL another Herald process
//! may have recorded the events. After a pass that recorded deliveries it wakes the
//! dispatcher.

use std::sync::Arc;
use std::time::Duration;

use herald_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::pass::EventEvaluator;

/// Settings of the evaluator service.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// The most events one pass, and so one transaction, evaluates.
    pub batch_size: usize,
    /// How long to wait for a wake-up before looking for events anyway.
    pub poll_interval: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self { batch_size: 512, poll_interval: Duration::from_millis(500) }
    }
}

/// Runs evaluation passes until `shutdown` is cancelled.
///
/// `wake` is notified by writers that recorded events; `deliveries` is notified after a pass
/// that recorded executions waiting for delivery. A failing pass is logged and retried with
/// a growing delay, up to 30 seconds, because a store that fails once usually fails again
/// at once.
pub async fn run(
    store: Arc<dyn Store>,
    evaluator: Arc<EventEvaluator>,
    settings: ServiceSettings,
    wake: Arc<Notify>,
    deliveries: Arc<Notify>,
    shutdown: CancellationToken,
) {
    tracing::info!(batch_size = settings.batch_size, "evaluator started");
    let mut failures: u32 = 0;

    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let wait = match store.evaluate_events(settings.batch_size, evaluator.clone()).await {
            Ok(report) => {
                failures = 0;
                if report.executions > 0 {
                    tracing::debug!(events = report.events, executions = report.executions, "evaluated events");
                }
                if report.deliveries > 0 {
                    deliveries.notify_one();
                }
                if report.events == settings.batch_size {
                    continue;
                }
                settings.poll_interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay =
                    Duration::from_millis(100u64.saturating_mul(1 << failures.min(8))).min(Duration::from_secs(30));
                tracing::error!(%error, retry_in_ms = delay.as_millis() as u64, "evaluation pass failed");
                delay
            }
        };

        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("evaluator stopped");
}
