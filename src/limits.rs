//! Limits every layer checks its settings and inputs against: the longest duration any setting
//! accepts, and the sizes that keep a request's head within a connection's buffers.

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

/// The largest response header block accepted (Graph's are about 1 KiB; nginx reads a proxied
/// response's header into 4 or 8 KiB by default).
pub(crate) const MAX_HEADER_BLOCK: usize = 16 * 1024;
/// A connection's input buffer: a header block is read into it whole, and one over the limit must
/// overfill the limit before it fills the buffer (else ureq sees a read that makes no progress).
pub(crate) const INPUT_BUFFER: usize = MAX_HEADER_BLOCK + 4 * 1024;
/// A connection's output buffer: every line of a request's head must fit it.
pub(crate) const OUTPUT_BUFFER: usize = 32 * 1024;

/// The longest access token accepted (Entra ID's are a few KiB): its `Authorization` line must
/// fit [`OUTPUT_BUFFER`].
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest id accepted in a target (Graph's are GUIDs): a request line with every id
/// percent-encoded (up to three bytes each) must fit [`OUTPUT_BUFFER`].
pub(crate) const MAX_ID_BYTES: usize = 1024;

const _: () = assert!(MAX_TOKEN_BYTES + 64 < OUTPUT_BUFFER);
const _: () = assert!(3 * 3 * MAX_ID_BYTES + 1024 < OUTPUT_BUFFER);
