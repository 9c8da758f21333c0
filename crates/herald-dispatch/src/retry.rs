//! When a failed attempt is tried again.
//!
//! The delay after attempt `n` is entry `n - 1` of the retry schedule, multiplied by a random
//! factor in [0.8, 1.2] so that deliveries that failed together spread out. When a receiver
//! responds with 429 or 503 and `Retry-After`, the delay becomes that value, clamped to
//! between the jittered delay and twice it. So the receiver can slow Herald down, but it
//! can neither make Herald retry sooner than scheduled nor park an execution indefinitely.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The relative spread of each delay.
pub const JITTER: f64 = 0.2;

/// Returns the delay before the attempt after failed attempt `attempt` (1 for the first),
/// or `None` when the schedule has no more attempts.
///
/// `jitter_factor` multiplies the scheduled delay and is normally [`random_jitter_factor`].
/// `retry_after` is the receiver's `Retry-After`, already limited to the statuses that
/// honour it.
pub fn next_delay(
    schedule: &[Duration],
    attempt: i64,
    retry_after: Option<Duration>,
    jitter_factor: f64,
) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    let delay = scale(*schedule.get(index)?, jitter_factor);
    Some(match retry_after {
        Some(requested) => requested.clamp(delay, delay.saturating_mul(2)),
        None => delay,
    })
}

/// Draws a factor in [1 - JITTER, 1 + JITTER].
pub fn random_jitter_factor() -> f64 {
    rand::thread_rng().gen_range(1.0 - JITTER..=1.0 + JITTER)
}

/// Parses a `Retry-After` value: whole seconds, or an HTTP date, from which the time until
/// then is computed against `now`. A date in the past means no wait. Returns `None` for
/// anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // A number too large for u64 requests more than any clamp allows.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Multiplies a delay by a factor, saturating instead of panicking as `Duration::mul_f64`
/// would on overflow or a negative factor.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(if factor > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SCHEDULE: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];

    #[test]
    fn schedule_gives_one_delay_per_retry() {
        assert_eq!(next_delay(&SCHEDULE, 1, None, 1.0), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(&SCHEDULE, 2, None, 1.0), Some(Duration::from_secs(30)));
        assert_eq!(next_delay(&SCHEDULE, 3, None, 1.0), None);
        assert_eq!(next_delay(&SCHEDULE, 0, None, 1.0), None);
        assert_eq!(next_delay(&[], 1, None, 1.0), None);
    }

    #[test]
    fn retry_after_is_clamped_to_twice_the_delay() {
        let long = Some(Duration::from_secs(3600));
        assert_eq!(next_delay(&SCHEDULE, 1, long, 1.0), Some(Duration::from_secs(10)));
        let short = Some(Duration::from_secs(1));
        assert_eq!(next_delay(&SCHEDULE, 1, short, 1.0), Some(Duration::from_secs(5)));
        let between = Some(Duration::from_secs(7));
        assert_eq!(next_delay(&SCHEDULE, 1, between, 1.0), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_seconds_and_dates_parse() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(Duration::MAX));
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn random_factor_stays_within_jitter() {
        for _ in 0..1000 {
            let factor = random_jitter_factor();
            assert!((1.0 - JITTER..=1.0 + JITTER).contains(&factor), "{factor}");
        }
    }

    proptest! {
        #[test]
        fn jittered_delay_stays_within_bounds(
            millis in 0u64..10_000_000,
            factor in (1.0 - JITTER)..=(1.0 + JITTER),
            retry_after in proptest::option::of(0u64..100_000_000),
        ) {
            let scheduled = Duration::from_millis(millis);
            let retry_after = retry_after.map(Duration::from_millis);
            let delay = next_delay(&[scheduled], 1, retry_after, factor).unwrap();
            let low = scheduled.mul_f64(1.0 - JITTER).saturating_sub(Duration::from_micros(1));
            let high = scheduled.mul_f64(1.0 + JITTER) + Duration::from_micros(1);
            if retry_after.is_none() {
                prop_assert!(delay >= low && delay <= high, "{delay:?} outside {low:?}..{high:?}");
            } else {
                prop_assert!(delay >= low && delay <= high * 2, "{delay:?} outside {low:?}..{:?}", high * 2);
            }
        }
    }
}
