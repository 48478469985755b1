//! Synchronisation helpers every layer uses: a poison-tolerant `lock` and
//! the stop signal that lets long waits end when the emulator shuts down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Locks a mutex, ignoring poisoning (a panicked worker must not wedge shutdown).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set once when the emulator begins stopping; shared by every thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Tells every waiter to give up.
    pub(crate) fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether stopping has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps for `delay` in short slices so shutdown is not held up; false
    /// if the emulator began stopping meanwhile.
    pub(crate) fn sleep(&self, delay: Duration) -> bool {
        let end = Instant::now() + delay;
        loop {
            if self.is_stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(10)));
        }
    }
}
