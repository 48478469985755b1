//! The token callback: a C function that supplies bearer tokens, wrapped as a [`TokenSource`]
//! behind the core's [`TokenCache`], so it is called once per token lifetime (5 minutes before
//! expiry, or at half-life for short tokens), by one thread at a time, and again after a 401.

use std::ffi::{CStr, c_char, c_void};
use std::time::{Duration, Instant};

use log::debug;
use zeroize::Zeroizing;

use crate::auth::{FreshToken, TokenCache, TokenSource};
use crate::limits::{MAX_DURATION, MAX_TOKEN_BYTES};
use crate::{AccessToken, AuthError, Error, TokenProvider};

/// Supplies a bearer token (without the `Bearer ` prefix) for `ius_client_new_with_token_callback`.
///
/// `token_buffer` holds `token_buffer_len` bytes, all zero on entry. Return:
/// - `0`: success. The buffer holds the token, NUL-terminated (at most `token_buffer_len - 1`
///   bytes of visible ASCII, and at most 16384), and `*out_expires_in_seconds` how long it stays
///   valid from now (`0` or less: do not cache it, ask again before every request);
/// - a positive number N: the token needs N bytes with its NUL, more than `token_buffer_len`. The
///   library calls once more at once, with a buffer of at least N bytes (N may be at most 16385);
/// - a negative number: no token. The buffer may hold a NUL-terminated UTF-8 message for the
///   error JSON (it is never used as a token); the update returns `IUS_STATUS_AUTH`.
///
/// Ownership: the buffer and `out_expires_in_seconds` belong to the library and are valid only
/// during the call; the library wipes the buffer afterwards.
/// Threads: called on a thread making an update call, never by two threads at once for one
/// client; it must not call back into the client it serves. It must return normally: a C++
/// exception or a `longjmp` out of it crosses Rust frames, which aborts the process or leaves the
/// client's token state stuck.
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub type ius_token_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        token_buffer: *mut c_char,
        token_buffer_len: usize,
        out_expires_in_seconds: *mut i64,
    ) -> i32,
>;

/// The buffer offered first: app-only tokens are 1-3 KB, tokens with many claims up to ~8 KB.
const FIRST_BUFFER: usize = 8 * 1024;
/// The largest token accepted, with its NUL (the rule is `AccessToken::refusal`'s).
const MAX_BUFFER: usize = MAX_TOKEN_BYTES + 1;
/// A failure message is cut to this many characters.
const MAX_MESSAGE: usize = 1024;

/// The callback and its `user_data`.
struct CallbackSource {
    callback: unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut i64) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the contract of ius_client_new_with_token_callback lets the callback run on any thread
// with this user_data; the cache calls it from one thread at a time.
unsafe impl Send for CallbackSource {}
// SAFETY: as above; the source itself holds no state that calls could share.
unsafe impl Sync for CallbackSource {}

/// The token provider a callback client is built with: the callback behind the token cache.
pub(crate) struct CallbackTokens(TokenCache<CallbackSource>);

impl CallbackTokens {
    /// Wraps `callback`; `None` (a NULL function pointer) is `IUS_STATUS_NULL_ARGUMENT`.
    pub(crate) fn new(
        callback: ius_token_callback,
        user_data: *mut c_void,
    ) -> Result<CallbackTokens, super::error::FfiError> {
        let callback = callback.ok_or_else(|| super::error::FfiError::null_argument("callback"))?;
        Ok(CallbackTokens(TokenCache::new(CallbackSource {
            callback,
            user_data,
        })))
    }
}

impl TokenProvider for CallbackTokens {
    fn token(&self) -> Result<AccessToken, Error> {
        self.0.token()
    }

    // Threads waiting for another thread's callback are bounded by their own budget; the thread
    // running the callback cannot be interrupted.
    fn token_before(&self, deadline: Option<Instant>) -> Result<AccessToken, Error> {
        self.0.token_before(deadline)
    }

    fn invalidate(&self, token: &AccessToken) {
        self.0.invalidate(token);
    }
}

impl TokenSource for CallbackSource {
    // A callback cannot be interrupted: bounding its time is the callback's own business.
    fn fetch(&self, _deadline: Option<Instant>) -> Result<FreshToken, Box<AuthError>> {
        let mut len = FIRST_BUFFER;
        loop {
            // Wiped on drop: it held a token, or may have.
            let mut buffer = Zeroizing::new(vec![0u8; len]);
            let mut expires_in: i64 = 0;
            let started = Instant::now();
            // SAFETY: the buffer is writable for `len` bytes and expires_in for one i64, both for
            // the whole call; the callback and user_data are valid per the constructor's contract.
            let code = unsafe {
                (self.callback)(
                    self.user_data,
                    buffer.as_mut_ptr().cast(),
                    len,
                    &mut expires_in,
                )
            };
            debug!(
                "token callback: returned {code} after {:?} (buffer {len} bytes, expires_in={expires_in})",
                started.elapsed()
            );
            match usize::try_from(code) {
                Ok(0) => return accept(&buffer, expires_in),
                Ok(needed) if needed > MAX_BUFFER => {
                    return Err(failure(format!(
                        "the token callback needs a {needed}-byte buffer; tokens of at most {} bytes are accepted",
                        MAX_BUFFER - 1
                    )));
                }
                Ok(needed) if needed > len && len == FIRST_BUFFER => len = needed,
                Ok(needed) => {
                    return Err(failure(format!(
                        "the token callback asked for {needed} bytes after it was given {len}"
                    )));
                }
                Err(_) => return Err(failure(refusal(code, &buffer))),
            }
        }
    }
}

/// The token the callback wrote, and its lifetime.
fn accept(buffer: &[u8], expires_in: i64) -> Result<FreshToken, Box<AuthError>> {
    // The token is never put into a message, only described.
    let token = CStr::from_bytes_until_nul(buffer).map_err(|_| {
        failure(format!(
            "the token callback returned 0 but the token is not NUL-terminated within {} bytes",
            buffer.len()
        ))
    })?;
    let token = token.to_bytes();
    if let Some(reason) = AccessToken::refusal(token) {
        return Err(failure(format!(
            "the token callback returned 0 but its token is refused: it {reason}"
        )));
    }
    let token = String::from_utf8_lossy(token).into_owned();
    // Negative or zero: not cached. Capped so the cache's deadline arithmetic cannot overflow.
    let lifetime = u64::try_from(expires_in).map_or(Duration::ZERO, Duration::from_secs);
    Ok(FreshToken {
        token: AccessToken::new(token),
        expires_in: lifetime.min(MAX_DURATION),
    })
}

/// The AUTH message for a negative return, with the callback's own message when it wrote one.
fn refusal(code: i32, buffer: &[u8]) -> String {
    let message = CStr::from_bytes_until_nul(buffer)
        .map(|text| String::from_utf8_lossy(text.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    if message.is_empty() {
        format!("the token callback failed (returned {code})")
    } else {
        let message: String = message.chars().take(MAX_MESSAGE).collect();
        format!("the token callback failed (returned {code}): {message}")
    }
}

fn failure(message: impl Into<String>) -> Box<AuthError> {
    Box::new(AuthError::new(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the test callback does, chosen by `user_data`.
    struct Script {
        calls: AtomicUsize,
        /// Written on success.
        token: &'static [u8],
        code: i32,
        expires_in: i64,
        /// Asks for this many bytes on the first call, then succeeds.
        first_needs: Option<usize>,
        seen_len: AtomicUsize,
        /// How long each call takes.
        delay: Duration,
    }

    unsafe extern "C" fn scripted(
        user_data: *mut c_void,
        buffer: *mut c_char,
        len: usize,
        expires_in: *mut i64,
    ) -> i32 {
        // SAFETY: the tests pass a live Script.
        let script = unsafe { &*user_data.cast::<Script>() };
        let call = script.calls.fetch_add(1, Ordering::SeqCst);
        script.seen_len.store(len, Ordering::SeqCst);
        std::thread::sleep(script.delay);
        if let (0, Some(needed)) = (call, script.first_needs) {
            return needed as i32;
        }
        let n = script.token.len().min(len);
        // SAFETY: the library's buffer is writable for len bytes; expires_in for one i64.
        unsafe {
            std::ptr::copy_nonoverlapping(script.token.as_ptr(), buffer.cast(), n);
            *expires_in = script.expires_in;
        }
        script.code
    }

    fn script(token: &'static [u8], code: i32) -> Script {
        Script {
            calls: AtomicUsize::new(0),
            token,
            code,
            expires_in: 3600,
            first_needs: None,
            seen_len: AtomicUsize::new(0),
            delay: Duration::ZERO,
        }
    }

    fn fetch(script: &Script) -> Result<FreshToken, Box<AuthError>> {
        CallbackSource {
            callback: scripted,
            user_data: std::ptr::from_ref(script).cast_mut().cast(),
        }
        .fetch(None)
    }

    #[test]
    fn a_token_and_its_lifetime_are_accepted() {
        let fresh = fetch(&script(b"eyJ0.abc\0", 0)).unwrap();
        assert_eq!(fresh.token.secret(), "eyJ0.abc");
        assert_eq!(fresh.expires_in, Duration::from_secs(3600));
        let mut forever = script(b"t\0", 0);
        forever.expires_in = i64::MAX;
        assert_eq!(fetch(&forever).unwrap().expires_in, MAX_DURATION);
        let mut uncached = script(b"t\0", 0);
        uncached.expires_in = -5;
        assert_eq!(fetch(&uncached).unwrap().expires_in, Duration::ZERO);
    }

    #[test]
    fn a_larger_buffer_is_offered_once() {
        let mut big = script(b"t\0", 0);
        big.first_needs = Some(FIRST_BUFFER + 100);
        assert_eq!(fetch(&big).unwrap().token.secret(), "t");
        assert_eq!(big.calls.load(Ordering::SeqCst), 2);
        assert_eq!(big.seen_len.load(Ordering::SeqCst), FIRST_BUFFER + 100);

        let mut huge = script(b"t\0", 0);
        huge.first_needs = Some(MAX_BUFFER + 1);
        assert!(fetch(&huge).err().unwrap().message.contains("at most"));
        let mut liar = script(b"t\0", 0);
        liar.first_needs = Some(10);
        assert!(
            fetch(&liar)
                .err()
                .unwrap()
                .message
                .contains("after it was given")
        );
    }

    #[test]
    fn failures_carry_the_message_and_bad_tokens_are_refused_without_echo() {
        let err = fetch(&script(b"identity service down\0", -3))
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "the token callback failed (returned -3): identity service down"
        );
        let err = fetch(&script(b"", -1)).err().unwrap();
        assert_eq!(err.message, "the token callback failed (returned -1)");
        for bad in [&b"\0"[..], b"has space\0", b"tab\there\0", b"caf\xc3\xa9\0"] {
            let err = fetch(&script(bad, 0)).err().unwrap();
            assert!(!err.message.contains("space") && !err.message.contains("caf"));
        }
        // Fills the whole buffer: no NUL.
        let err = fetch(&script(&[b'a'; FIRST_BUFFER], 0)).err().unwrap();
        assert!(
            err.message.contains("not NUL-terminated"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_thread_waiting_for_another_threads_callback_keeps_its_own_budget() {
        let mut slow = script(b"slow-token\0", 0);
        slow.delay = Duration::from_millis(1500);
        let slow: &'static Script = Box::leak(Box::new(slow));
        let tokens = std::sync::Arc::new(
            CallbackTokens::new(Some(scripted), std::ptr::from_ref(slow).cast_mut().cast())
                .unwrap(),
        );
        let fetching = {
            let tokens = std::sync::Arc::clone(&tokens);
            std::thread::spawn(move || tokens.token().map(|t| t.secret().to_owned()))
        };
        while slow.calls.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let waited = tokens.token_before(Some(started + Duration::from_millis(300)));
        let took = started.elapsed();
        assert!(
            waited.is_err() && took < Duration::from_millis(1000),
            "the waiter returned {:?} after {took:?}",
            waited.map(|t| t.secret().to_owned())
        );
        assert_eq!(fetching.join().unwrap().unwrap(), "slow-token");
    }
}
