//! The retry policy: which failures are tried again, and how long to wait before each retry.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::Error;
use crate::limits::{MAX_DURATION, check_duration};

/// Largest `max_retries` accepted, as in Microsoft's SDKs.
pub const MAX_RETRIES_LIMIT: u32 = 10;

/// How a client retries throttling (429), unavailability (503, 504) and connections that failed
/// before any response arrived.
///
/// The defaults follow Microsoft's Graph SDKs: 3 retries, a 3 s base delay for exponential backoff
/// when the service sends no `Retry-After`, and 180 s in all spent waiting. `Retry-After` is
/// honoured in every form Graph sends (`2`, `2.128`, an HTTP date). When the wait the service asks
/// for would overrun a budget, the call gives up at once instead of sleeping in vain.
///
/// ```
/// use std::time::Duration;
/// use intune_user_status::RetryPolicy;
/// let quick = RetryPolicy::default().max_retries(5).base_delay(Duration::from_millis(200));
/// let never = RetryPolicy::none();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(180),
            max_total_wait: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// Never retry: every failure is returned at once.
    pub fn none() -> RetryPolicy {
        RetryPolicy::default().max_retries(0)
    }

    /// Retries after the first attempt (default 3, at most 10).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// First backoff delay when the service sends no `Retry-After`; doubled on each retry, with
    /// jitter (default 3 s).
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest single wait (default 180 s). A `Retry-After` longer than this ends the call at
    /// once with the service's answer.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The most time spent waiting between attempts, all waits together (default 180 s).
    pub fn max_total_wait(mut self, total: Duration) -> Self {
        self.max_total_wait = total;
        self
    }

    /// Rejects settings outside what Graph's guidance allows.
    pub(crate) fn validate(&self, field: &str) -> Result<(), Error> {
        for (name, value) in [
            ("baseDelayMs", self.base_delay),
            ("maxDelayMs", self.max_delay),
            ("maxTotalMs", self.max_total_wait),
        ] {
            check_duration(name, value, true).map_err(|err| match err {
                Error::Config {
                    field: name,
                    reason,
                } => Error::config(format!("{field}.{name}"), reason),
                other => other,
            })?;
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(Error::config(
                format!("{field}.maxRetries"),
                format!(
                    "must be at most {MAX_RETRIES_LIMIT}, got {}",
                    self.max_retries
                ),
            ));
        }
        Ok(())
    }

    /// The exponential backoff before retry number `retry` (1-based), with ±20% jitter so that
    /// many agents throttled together do not return together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(16);
        let nominal = self.base_delay.saturating_mul(1 << exponent);
        let jitter = 0.8 + 0.4 * random_unit();
        nominal.mul_f64(jitter).min(self.max_delay)
    }
}

/// What to do after a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Wait this long, then send again.
    Retry(Duration),
    /// No retries left.
    Exhausted,
    /// The wait would overrun a budget: stop now, saying which.
    OverBudget(String),
}

/// Decides after attempt `retries_done + 1` failed in a retryable way. `asked` is the service's
/// `Retry-After`; `waited` the time already spent waiting; `remaining` what is left of the call's
/// total time budget.
pub(crate) fn decide(
    policy: &RetryPolicy,
    retries_done: u32,
    asked: Option<Duration>,
    waited: Duration,
    remaining: Option<Duration>,
) -> Verdict {
    if retries_done >= policy.max_retries {
        return Verdict::Exhausted;
    }
    let wait = match asked {
        Some(asked) if asked > policy.max_delay => {
            return Verdict::OverBudget(format!(
                "the service asked to wait {:.3} s, more than the {:.3} s allowed for one wait (retry.maxDelayMs)",
                asked.as_secs_f64(),
                policy.max_delay.as_secs_f64()
            ));
        }
        Some(asked) => asked,
        None => policy.backoff(retries_done + 1),
    };
    let what = if asked.is_some() {
        "the service asked to wait"
    } else {
        "the backoff is"
    };
    if waited.saturating_add(wait) > policy.max_total_wait {
        return Verdict::OverBudget(format!(
            "{what} {:.3} s, past the {:.3} s left for waiting (retry.maxTotalMs)",
            wait.as_secs_f64(),
            policy.max_total_wait.saturating_sub(waited).as_secs_f64()
        ));
    }
    if let Some(remaining) = remaining
        && wait >= remaining
    {
        return Verdict::OverBudget(format!(
            "{what} {:.3} s, past the {:.3} s left of the call's time budget (timeouts.totalMs)",
            wait.as_secs_f64(),
            remaining.as_secs_f64()
        ));
    }
    Verdict::Retry(wait)
}

/// Whether a failed attempt may be sent again.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// `Retry-After` as integer or fractional seconds (Graph sends `2.128`), or an HTTP date; either
/// form capped alike at [`MAX_DURATION`] (a day), so no answer can ask for centuries.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<f64>() {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return None;
        }
        Duration::from_secs_f64(seconds.min(MAX_DURATION.as_secs_f64()))
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_DURATION))
}

/// A uniform value in [0, 1) from the standard library's randomly keyed hasher: jitter needs no
/// more than that, and no extra dependency.
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_respects_the_cap() {
        let policy = RetryPolicy::default()
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(700));
        for _ in 0..50 {
            let first = policy.backoff(1);
            let third = policy.backoff(3);
            assert!((80..=120).contains(&first.as_millis()), "{first:?}");
            assert!((320..=480).contains(&third.as_millis()), "{third:?}");
            assert_eq!(policy.backoff(5), Duration::from_millis(700));
        }
    }

    #[test]
    fn a_wait_past_any_budget_stops_at_once_naming_the_budget() {
        let policy = RetryPolicy::default()
            .max_delay(Duration::from_secs(10))
            .max_total_wait(Duration::from_secs(20));
        let secs = Duration::from_secs;
        assert_eq!(
            decide(&policy, 0, Some(secs(2)), secs(0), None),
            Verdict::Retry(secs(2))
        );
        assert_eq!(
            decide(&policy, 3, Some(secs(2)), secs(0), None),
            Verdict::Exhausted
        );
        let cases = [
            (Some(secs(11)), secs(0), None, "maxDelayMs"),
            (Some(secs(5)), secs(16), None, "maxTotalMs"),
            (Some(secs(5)), secs(0), Some(secs(4)), "totalMs"),
        ];
        for (asked, waited, remaining, budget) in cases {
            match decide(&policy, 0, asked, waited, remaining) {
                Verdict::OverBudget(why) => assert!(why.contains(budget), "{why}"),
                other => panic!("expected OverBudget({budget}), got {other:?}"),
            }
        }
    }

    #[test]
    fn a_wait_of_exactly_a_budget_is_allowed_except_the_call_s_own() {
        let policy = RetryPolicy::default()
            .max_delay(Duration::from_secs(10))
            .max_total_wait(Duration::from_secs(20));
        let secs = Duration::from_secs;
        // Graph's Retry-After equal to maxDelayMs, and a wait that fills maxTotalMs, are waited.
        assert_eq!(
            decide(&policy, 0, Some(secs(10)), secs(0), None),
            Verdict::Retry(secs(10))
        );
        assert_eq!(
            decide(&policy, 0, Some(secs(5)), secs(15), None),
            Verdict::Retry(secs(5))
        );
        // A wait that spends all of the call's time leaves none for the request: stop.
        assert!(matches!(
            decide(&policy, 0, Some(secs(5)), secs(0), Some(secs(5))),
            Verdict::OverBudget(_)
        ));
    }

    #[test]
    fn jitter_spreads_the_waits_of_many_agents() {
        // Agents that failed together must not retry together: the jitter differs call to call.
        let draws: Vec<f64> = (0..200).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)), "{draws:?}");
        let low = draws.iter().filter(|u| **u < 0.5).count();
        assert!((40..=160).contains(&low), "{low} of 200 draws below 0.5");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_DURATION),
            "a date centuries away is capped like the seconds form"
        );
        assert_eq!(parse_retry_after("1e308"), Some(MAX_DURATION));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_throttling_and_unavailability_are_retried() {
        for status in [429, 503, 504] {
            assert!(retryable_status(status));
        }
        for status in [400, 401, 403, 404, 409, 500, 501, 502] {
            assert!(!retryable_status(status));
        }
    }
}
