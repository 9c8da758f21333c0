//! UTC timestamps with millisecond precision.
//!
//! Both stores keep times as integer milliseconds since the Unix epoch, so the two backends
//! compare and sort times the same way and no host time zone can leak in. The REST API and
//! payloads show them as RFC 3339 strings in UTC.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Reads the system clock.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(since_epoch.as_millis() as i64)
    }

    /// Returns the number of milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Returns the number of whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Returns this time moved forward by `duration`, saturating at the maximum.
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// Formats the time as RFC 3339 in UTC with exactly three fractional digits, for example
    /// `2026-12-04T21:00:00.120Z`, so that times line up in tables and sort as text.
    pub fn to_rfc3339(self) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(datetime) => datetime.format(&format).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses an RFC 3339 string in any offset.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let datetime = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let millis = datetime.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).ok().map(Self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_millis() {
        let time = Timestamp(1_764_882_000_123);
        let text = time.to_rfc3339();
        assert_eq!(text, "2025-12-04T21:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&text), Some(time));
    }

    #[test]
    fn fraction_always_has_three_digits() {
        assert_eq!(Timestamp(1_764_882_000_000).to_rfc3339(), "2025-12-04T21:00:00.000Z");
        assert_eq!(Timestamp(1_764_882_000_500).to_rfc3339(), "2025-12-04T21:00:00.500Z");
    }

    #[test]
    fn parse_accepts_other_offsets() {
        let parsed = Timestamp::parse_rfc3339("2025-12-04T22:00:00+01:00");
        assert_eq!(parsed, Some(Timestamp(1_764_882_000_000)));
    }
}
