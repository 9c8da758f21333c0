//! The delivery attempts in flight, counted in total and per integration.
//!
//! The dispatcher runs each attempt as its own task. [`InFlight`] owns those tasks and counts
//! the running attempts of each integration, so that the claim loop can leave out the
//! integrations at their cap and never claim more executions of an integration than it has
//! room for. A claimed execution is therefore always attempted at once, and one slow receiver
//! occupies at most its cap of the dispatcher's slots.

use std::collections::HashMap;
use std::future::Future;

use herald_core::Timestamp;
use herald_core::ids::IntegrationId;
use tokio::task::{Id, JoinError, JoinSet};

/// The bounds of the next claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClaimPlan {
    /// Maximum number of executions to claim.
    pub(crate) limit: usize,
    /// The integrations at their cap, whose executions must stay unclaimed, in id order.
    pub(crate) exclude: Vec<IntegrationId>,
}

/// An attempt that has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    /// When the next attempt is due, if the attempt recorded a retry.
    pub(crate) retry_at: Option<Timestamp>,
    /// Whether the attempt's integration was at its cap until this attempt ended. Claims left
    /// out that integration's executions, and they can be claimed now.
    pub(crate) freed_capped_integration: bool,
}

/// The attempt tasks, with the number of attempts in flight for each integration.
pub(crate) struct InFlight {
    tasks: JoinSet<Option<Timestamp>>,
    /// The integration of each task that has one. An execution without an integration fails
    /// without a request, so it counts only towards the total.
    integration_of: HashMap<Id, IntegrationId>,
    /// The number of attempts in flight per integration. Integrations with none are absent.
    per_integration: HashMap<IntegrationId, usize>,
    /// Maximum number of attempts in flight to one integration, at least 1.
    cap: usize,
}

impl InFlight {
    /// Creates an empty set that allows `cap` attempts in flight per integration. A `cap` of
    /// 0 is treated as 1.
    pub(crate) fn new(cap: usize) -> Self {
        Self { tasks: JoinSet::new(), integration_of: HashMap::new(), per_integration: HashMap::new(), cap: cap.max(1) }
    }

    /// Returns the number of attempts in flight.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Returns whether no attempt is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Starts an attempt at an execution of `integration`.
    pub(crate) fn spawn<F>(&mut self, integration: Option<IntegrationId>, attempt: F)
    where
        F: Future<Output = Option<Timestamp>> + Send + 'static,
    {
        // The task cannot be collected before its integration is noted, because only the
        // methods of this struct collect tasks, and they need `&mut self`.
        let task = self.tasks.spawn(attempt);
        let Some(integration) = integration else {
            return;
        };
        self.integration_of.insert(task.id(), integration);
        let count = self.per_integration.entry(integration).or_insert(0);
        *count += 1;
        if *count == self.cap {
            tracing::debug!(
                integration.id = %integration,
                cap = self.cap,
                "integration reached its cap of attempts in flight; its due executions wait for a free slot"
            );
        }
    }

    /// Plans the next claim for a dispatcher with `concurrency` slots that claims at most
    /// `batch_size` executions at once.
    ///
    /// The integrations at their cap are excluded. The limit is also at most the smallest
    /// room that any other integration has left, because the store may return that many
    /// executions of a single integration. While an integration is one attempt short of its
    /// cap, claims therefore take one execution each, and the loop claims again at once.
    pub(crate) fn claim_plan(&self, concurrency: usize, batch_size: usize) -> ClaimPlan {
        let free = concurrency.saturating_sub(self.len());
        let mut exclude = Vec::new();
        let mut room = self.cap;
        for (&integration, &count) in &self.per_integration {
            if count >= self.cap {
                exclude.push(integration);
            } else {
                room = room.min(self.cap - count);
            }
        }
        exclude.sort_unstable();
        ClaimPlan { limit: free.min(batch_size).min(room), exclude }
    }

    /// Collects an attempt that has already ended, if there is one.
    pub(crate) fn try_join_next(&mut self) -> Option<Finished> {
        let result = self.tasks.try_join_next_with_id()?;
        Some(self.finish(result))
    }

    /// Waits for the next attempt to end. Returns `None` when none is in flight. It is
    /// cancel safe: when the future is dropped, no ended attempt is lost.
    pub(crate) async fn join_next(&mut self) -> Option<Finished> {
        let result = self.tasks.join_next_with_id().await?;
        Some(self.finish(result))
    }

    /// Aborts every attempt in flight.
    pub(crate) fn abort_all(&mut self) {
        self.tasks.abort_all();
    }

    /// Counts an ended task out, and logs it when it panicked.
    fn finish(&mut self, result: Result<(Id, Option<Timestamp>), JoinError>) -> Finished {
        let (id, retry_at) = match result {
            Ok((id, retry_at)) => (id, retry_at),
            Err(error) => {
                if error.is_panic() {
                    tracing::error!(%error, "a delivery attempt panicked; its execution is tried again when its claim lapses");
                }
                (error.id(), None)
            }
        };
        let freed_capped_integration =
            self.integration_of.remove(&id).is_some_and(|integration| self.release(integration));
        Finished { retry_at, freed_capped_integration }
    }

    /// Counts one attempt of `integration` as ended. Returns whether the integration was at
    /// its cap before.
    fn release(&mut self, integration: IntegrationId) -> bool {
        let Some(count) = self.per_integration.get_mut(&integration) else {
            return false;
        };
        let was_capped = *count >= self.cap;
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.per_integration.remove(&integration);
        }
        was_capped
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// Starts an attempt that ends with `retry_at` when the returned sender is used or dropped.
    fn spawn_held(in_flight: &mut InFlight, integration: Option<IntegrationId>) -> oneshot::Sender<Option<Timestamp>> {
        let (sender, receiver) = oneshot::channel();
        in_flight.spawn(integration, async move { receiver.await.unwrap_or(None) });
        sender
    }

    #[tokio::test]
    async fn claim_plan_excludes_capped_integrations() {
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let mut in_flight = InFlight::new(2);
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 2, exclude: vec![] });

        let _a1 = spawn_held(&mut in_flight, Some(a));
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 1, exclude: vec![] }, "room left by a");
        let _a2 = spawn_held(&mut in_flight, Some(a));
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 2, exclude: vec![a] });

        let _none = spawn_held(&mut in_flight, None);
        let _b1 = spawn_held(&mut in_flight, Some(b));
        let _b2 = spawn_held(&mut in_flight, Some(b));
        let mut both = vec![a, b];
        both.sort_unstable();
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 2, exclude: both });
        assert_eq!(in_flight.claim_plan(6, 8).limit, 1, "the free slots bound the limit");
        assert_eq!(in_flight.claim_plan(5, 8).limit, 0, "a dispatcher without free slots claims nothing");
        assert_eq!(in_flight.claim_plan(8, 1).limit, 1, "the batch size bounds the limit");
    }

    #[tokio::test]
    async fn ended_attempt_frees_its_integration() {
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let mut in_flight = InFlight::new(2);
        let a1 = spawn_held(&mut in_flight, Some(a));
        let _a2 = spawn_held(&mut in_flight, Some(a));
        let b1 = spawn_held(&mut in_flight, Some(b));

        a1.send(Some(Timestamp(5_000))).unwrap();
        let finished = in_flight.join_next().await.expect("an attempt ended");
        assert_eq!(finished, Finished { retry_at: Some(Timestamp(5_000)), freed_capped_integration: true });
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 1, exclude: vec![] });

        b1.send(None).unwrap();
        let finished = in_flight.join_next().await.expect("an attempt ended");
        assert_eq!(finished, Finished { retry_at: None, freed_capped_integration: false });
        assert_eq!(in_flight.len(), 1);
        assert!(in_flight.try_join_next().is_none(), "an attempt still in flight was collected");
    }

    #[tokio::test]
    async fn panicked_attempt_frees_its_slot() {
        let a = IntegrationId::new();
        let mut in_flight = InFlight::new(1);
        in_flight.spawn(Some(a), async { panic!("attempt failed") });
        assert_eq!(in_flight.claim_plan(8, 8).exclude, vec![a]);

        let finished = in_flight.join_next().await.expect("the attempt ended");
        assert_eq!(finished, Finished { retry_at: None, freed_capped_integration: true });
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.claim_plan(8, 8), ClaimPlan { limit: 1, exclude: vec![] });
    }
}
