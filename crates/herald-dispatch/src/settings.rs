//! Settings of the dispatcher service.

use std::time::Duration;

/// Minimum time by which a claim's lease must outlast the attempt timeout, so that the
/// attempt can also be recorded before another dispatcher may take the execution over.
pub const MIN_LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Settings of the dispatcher. The binary fills them from its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchSettings {
    /// Maximum time for one attempt: connecting, sending, and reading the response.
    pub timeout: Duration,
    /// Maximum time to establish a connection, including the TLS handshake.
    pub connect_timeout: Duration,
    /// Delays before the second, third and later attempts. An execution gets
    /// `retry_schedule.len() + 1` attempts. Each delay is varied by ±20% so that deliveries
    /// that failed together do not retry together.
    pub retry_schedule: Vec<Duration>,
    /// Maximum number of attempts in flight at once.
    pub concurrency: usize,
    /// Maximum number of attempts in flight at once to one integration, so that a receiver
    /// that responds slowly or not at all occupies at most this many of the `concurrency`
    /// slots. The executions of an integration at this cap stay due and unclaimed until one of
    /// its attempts finishes.
    pub per_integration_concurrency: usize,
    /// Maximum number of executions claimed from the store at once.
    pub batch_size: usize,
    /// How long a claim lasts. When a dispatcher stops without recording an attempt, its
    /// executions become claimable again after this time, so it must exceed `timeout`.
    pub lease: Duration,
    /// Maximum time between two looks at the store for due executions. It bounds the delay
    /// for work that another Herald process added without waking this one.
    pub poll_interval: Duration,
    /// Maximum time that shutdown waits for attempts in flight. Attempts still running then
    /// are abandoned, and their executions are delivered again after their lease lapses.
    pub shutdown_grace: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        let timeout = Duration::from_secs(15);
        Self {
            timeout,
            connect_timeout: Duration::from_secs(5),
            retry_schedule: [5, 30, 120, 600, 3600].into_iter().map(Duration::from_secs).collect(),
            concurrency: 64,
            per_integration_concurrency: 8,
            batch_size: 64,
            lease: timeout + Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: timeout + MIN_LEASE_MARGIN,
        }
    }
}

/// A setting that the dispatcher cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid dispatch setting {field}: {detail}")]
pub struct SettingsError {
    /// The setting's field name.
    pub field: &'static str,
    /// A description of the problem and its fix.
    pub detail: String,
}

impl DispatchSettings {
    /// Checks the settings and names the first invalid one.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |field: &'static str, detail: String| Err(SettingsError { field, detail });
        if self.timeout.is_zero() {
            return invalid("timeout", "must be greater than zero, such as 15s".into());
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be greater than zero, such as 5s".into());
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1, such as 64".into());
        }
        if self.per_integration_concurrency == 0 {
            return invalid("per_integration_concurrency", "must be at least 1, such as 8".into());
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1, such as 64".into());
        }
        if self.poll_interval.is_zero() {
            return invalid("poll_interval", "must be greater than zero, such as 1s".into());
        }
        if self.lease < self.timeout + MIN_LEASE_MARGIN {
            return invalid(
                "lease",
                format!(
                    "{:?} is too short for a timeout of {:?}; set it to at least {:?} so that a slow attempt is \
                     not delivered twice",
                    self.lease,
                    self.timeout,
                    self.timeout + MIN_LEASE_MARGIN
                ),
            );
        }
        Ok(())
    }

    /// Returns the settings with each invalid value replaced by the nearest valid one, and
    /// logs a warning for each replacement.
    pub(crate) fn corrected(mut self) -> Self {
        while let Err(error) = self.validate() {
            tracing::warn!(%error, "correcting an invalid dispatch setting");
            match error.field {
                "timeout" => self.timeout = DispatchSettings::default().timeout,
                "connect_timeout" => self.connect_timeout = DispatchSettings::default().connect_timeout,
                "concurrency" => self.concurrency = 1,
                "per_integration_concurrency" => self.per_integration_concurrency = 1,
                "batch_size" => self.batch_size = 1,
                "poll_interval" => self.poll_interval = DispatchSettings::default().poll_interval,
                _ => self.lease = self.timeout + MIN_LEASE_MARGIN,
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let settings = DispatchSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        assert_eq!(settings.lease, Duration::from_secs(45));
        assert_eq!(settings.retry_schedule.len() + 1, 6);
    }

    #[test]
    fn short_lease_is_invalid_and_corrected() {
        let settings = DispatchSettings { lease: Duration::from_secs(15), ..DispatchSettings::default() };
        let error = settings.validate().unwrap_err();
        assert_eq!(error.field, "lease");
        assert!(error.detail.contains("20s"), "{error}");
        assert_eq!(settings.corrected().lease, Duration::from_secs(20));
    }

    #[test]
    fn zero_concurrency_is_corrected_to_one() {
        let settings = DispatchSettings {
            concurrency: 0,
            per_integration_concurrency: 0,
            batch_size: 0,
            ..DispatchSettings::default()
        };
        assert_eq!(settings.validate().unwrap_err().field, "concurrency");
        let corrected = settings.corrected();
        assert_eq!(corrected.concurrency, 1);
        assert_eq!(corrected.per_integration_concurrency, 1);
        assert_eq!(corrected.batch_size, 1);
    }

    #[test]
    fn zero_per_integration_concurrency_is_invalid() {
        let settings = DispatchSettings { per_integration_concurrency: 0, ..DispatchSettings::default() };
        let error = settings.validate().unwrap_err();
        assert_eq!(error.field, "per_integration_concurrency");
        assert!(error.detail.contains("at least 1"), "{error}");
    }
}
