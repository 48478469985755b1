//! `ius_set_log_callback`: the core's `log` records, forwarded to a C callback.
//!
//! The logger is installed once per process with `log::set_logger`; the callback and its level
//! live behind a `RwLock`, so they can be changed or removed at any time. Callbacks run under the
//! read lock: once `ius_set_log_callback` returns, the previous callback is not running and is not
//! called again, so its `user_data` may be freed.

use std::cell::Cell;
use std::ffi::{CString, c_char, c_void};
use std::sync::{OnceLock, PoisonError, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::status::ius_status;

/// How much a log message matters; a callback gets messages up to its `max_level`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub enum ius_log_level {
    /// A call failed in a way an operator should see.
    Error = 1,
    /// Something was wrong but the library coped.
    Warn = 2,
    /// Retries and re-authentication after a 401.
    Info = 3,
    /// Every attempt (method, path, HTTP status, request-id, attempt, time) and token fetch.
    Debug = 4,
    /// Finer detail.
    Trace = 5,
}

/// The raw value of an `ius_log_level` as C passes it in (any 32-bit value; see
/// `ius_status_value`). cbindgen.toml shows it as `ius_log_level`.
#[allow(non_camel_case_types)]
pub type ius_log_level_value = u32;

/// Receives one log message: `message` is NUL-terminated UTF-8, borrowed for the duration of the
/// call only (copy it to keep it).
///
/// Threads: called on whichever thread is making a library call, possibly on several threads at
/// once, so `user_data` must be safe to use from any thread. It must not call into this library,
/// and must return normally (no C++ exception or `longjmp` out of it).
/// Messages never contain tokens, client secrets, assertions or keys.
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub type ius_log_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: ius_log_level, message: *const c_char),
>;

/// The installed callback.
struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, ius_log_level, *const c_char),
    user_data: *mut c_void,
    max: LevelFilter,
}

// SAFETY: ius_set_log_callback's contract lets the callback run on any thread with this
// user_data, at the same time on several.
unsafe impl Send for Sink {}
// SAFETY: as above.
unsafe impl Sync for Sink {}

struct CallbackLogger {
    sink: RwLock<Option<Sink>>,
}

static LOGGER: CallbackLogger = CallbackLogger {
    sink: RwLock::new(None),
};

/// Whether `log::set_logger` accepted ours (it can be set once per process).
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// This thread is inside the log callback: nested messages are dropped and
    /// ius_set_log_callback is refused, instead of deadlocking on the lock.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Only this library's records: its dependencies log at levels and in words it does not control.
fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
}

impl Log for CallbackLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata)
            && self
                .sink
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|sink| metadata.level() <= sink.max)
    }

    fn log(&self, record: &Record<'_>) {
        if !ours(record.metadata()) || IN_CALLBACK.with(Cell::get) {
            return;
        }
        let sink = self.sink.read().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = sink.as_ref().filter(|sink| record.level() <= sink.max) else {
            return;
        };
        let text = record.args().to_string();
        // Ids are percent-encoded and messages are the library's own, but a NUL must not cut one.
        let message = CString::new(text).unwrap_or_else(|err| {
            CString::new(err.into_vec().escape_ascii().to_string()).unwrap_or_default()
        });
        let level = match record.level() {
            Level::Error => ius_log_level::Error,
            Level::Warn => ius_log_level::Warn,
            Level::Info => ius_log_level::Info,
            Level::Debug => ius_log_level::Debug,
            Level::Trace => ius_log_level::Trace,
        };
        IN_CALLBACK.with(|flag| flag.set(true));
        // SAFETY: the callback and user_data are valid until replaced (ius_set_log_callback's
        // contract), and the read lock held here keeps them from being replaced during the call;
        // the message outlives the call.
        unsafe { (sink.callback)(sink.user_data, level, message.as_ptr()) };
        IN_CALLBACK.with(|flag| flag.set(false));
    }

    fn flush(&self) {}
}

/// Held by whoever installs a callback to check what it receives, when other code in the same
/// process could install one meanwhile: the log tests here and the `c_api` fuzz target, which run
/// in one test process.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) static LOG_CALLBACK_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sends the library's log messages up to `max_level` to `callback`, replacing any callback set
/// before; a NULL `callback` turns logging off. Off by default.
///
/// The library logs each request attempt at DEBUG (method, path, HTTP status, request-id,
/// attempt, time), retries and re-authentication at INFO, and token fetches at DEBUG. Messages
/// never contain tokens, client secrets, client assertions or keys.
///
/// Ownership: `user_data` is passed to every call of `callback` and must stay valid until the
/// callback is replaced or removed. When this function returns, the previous callback is no longer
/// running on any thread and will not be called again, so its `user_data` may be freed.
///
/// Returns `IUS_STATUS_OK`; `IUS_STATUS_INVALID_INPUT` if `max_level` is not an `ius_log_level`,
/// or if called from inside the log callback (nothing changes); or `IUS_STATUS_LOGGER_IN_USE` if
/// other code in the process already installed a logger for Rust's `log` crate (this library's
/// messages then go there, and the callback is not installed). No error JSON is written.
/// Thread safety: may be called from any thread at any time, but not from inside the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_set_log_callback(
    callback: ius_log_callback,
    user_data: *mut c_void,
    max_level: ius_log_level_value,
) -> ius_status {
    ffi_body_or!(ius_status::Panic, {
        if IN_CALLBACK.with(Cell::get) {
            return ius_status::InvalidInput;
        }
        let Some(callback) = callback else {
            // Nothing to remove unless ours was installed.
            if INSTALLED.get() == Some(&true) {
                let mut sink = LOGGER.sink.write().unwrap_or_else(PoisonError::into_inner);
                *sink = None;
                // Under the lock, so the level and the callback change together.
                log::set_max_level(LevelFilter::Off);
            }
            return ius_status::Ok;
        };
        let max = match max_level {
            1 => LevelFilter::Error,
            2 => LevelFilter::Warn,
            3 => LevelFilter::Info,
            4 => LevelFilter::Debug,
            5 => LevelFilter::Trace,
            _ => return ius_status::InvalidInput,
        };
        if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
            return ius_status::LoggerInUse;
        }
        let mut sink = LOGGER.sink.write().unwrap_or_else(PoisonError::into_inner);
        *sink = Some(Sink {
            callback,
            user_data,
            max,
        });
        #[cfg(test)]
        tests::between_callback_and_level();
        // Under the lock: two concurrent calls must not leave one's level with the other's
        // callback.
        log::set_max_level(max);
        ius_status::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    thread_local! {
        /// This thread pauses between installing its callback and setting the level.
        static PAUSE: Cell<bool> = const { Cell::new(false) };
    }
    /// A paused thread is between its callback and its level.
    static PAUSED: AtomicBool = AtomicBool::new(false);

    /// The test seam in `ius_set_log_callback`, between the callback and the level: long enough
    /// for another thread's whole call to run, if the lock lets it.
    pub(super) fn between_callback_and_level() {
        if PAUSE.with(Cell::get) {
            PAUSED.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What one callback received of the probes: `[ERROR probes, DEBUG probes]`.
    type Seen = [AtomicUsize; 2];

    /// Counts the probe messages (other tests' records may arrive too; they are ignored).
    unsafe extern "C" fn counting(
        user_data: *mut c_void,
        level: ius_log_level,
        message: *const c_char,
    ) {
        // SAFETY: user_data is a `Seen` that outlives the callback's installation, and the
        // message is NUL-terminated for the duration of the call.
        let (seen, message) = unsafe {
            (
                &*(user_data as *const Seen),
                std::ffi::CStr::from_ptr(message),
            )
        };
        if message.to_bytes() == b"probe" {
            seen[usize::from(level != ius_log_level::Error)].fetch_add(1, Ordering::SeqCst);
        }
    }

    fn install(seen: &Seen, level: ius_log_level) {
        let user_data = seen as *const Seen as *mut c_void;
        // SAFETY: `seen` outlives the installation (the test turns logging off before it ends).
        let status = unsafe { ius_set_log_callback(Some(counting), user_data, level as u32) };
        assert_eq!(status, ius_status::Ok);
    }

    /// One thread installs an ERROR callback and, between its callback and its level, stalls
    /// (the seam above); meanwhile another installs a TRACE callback. Whatever order the lock
    /// gives them, the callback left installed must get what its level asks for: here the TRACE
    /// callback, which must receive a DEBUG message. Before the fix the level was set outside the
    /// lock, so the TRACE call ran whole inside the stall and the ERROR call's level landed after
    /// it: the TRACE callback installed with the `log` crate's level at ERROR, DEBUG lost.
    #[test]
    fn concurrent_calls_leave_the_installed_callback_with_its_own_level() {
        let _alone = LOG_CALLBACK_USERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seen: [Seen; 2] = Default::default();
        std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                PAUSE.with(|pause| pause.set(true));
                install(&seen[0], ius_log_level::Error);
            });
            let give_up = Instant::now() + Duration::from_secs(5);
            while !PAUSED.load(Ordering::SeqCst) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                PAUSED.load(Ordering::SeqCst),
                "the first call reached the seam"
            );
            scope.spawn(|| install(&seen[1], ius_log_level::Trace));
            first.join().unwrap();
        });
        log::error!("probe");
        log::debug!("probe");
        let [error, trace] = seen
            .each_ref()
            .map(|s| s.each_ref().map(|n| n.load(Ordering::SeqCst)));
        // SAFETY: NULL turns logging off.
        unsafe { ius_set_log_callback(None, std::ptr::null_mut(), 0) };
        assert_eq!(
            (error, trace[0]),
            ([0, 0], 1),
            "the second call's TRACE callback is the one installed"
        );
        assert_eq!(trace[1], 1, "the TRACE callback got the DEBUG message");
    }
}
