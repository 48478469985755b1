//! Limits every layer checks its settings against: the longest duration any setting accepts.

use std::time::Duration;

use crate::Error;

/// The longest duration any setting accepts: one day. No Graph call legitimately waits longer, and
/// deadlines computed from larger values could overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Checks a duration setting is within (0 or more, as allowed) and at most [`MAX_DURATION`].
pub(crate) fn check_duration(field: &str, value: Duration, zero_ok: bool) -> Result<(), Error> {
    if value.is_zero() && !zero_ok {
        return Err(Error::config(field, "must be greater than zero"));
    }
    if value > MAX_DURATION {
        return Err(Error::config(
            field,
            format!(
                "must be at most one day ({} ms), got {} ms",
                MAX_DURATION.as_millis(),
                value.as_millis()
            ),
        ));
    }
    Ok(())
}
