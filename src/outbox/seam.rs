//! Tests only (feature `test-seams`, never shipped): a flush pauses at a named point and calls the
//! test's hook there, holding nothing, so a test puts another call, an interrupt or a held
//! connection exactly at that point instead of racing the flush for it.

use std::sync::OnceLock;

/// A point in a flush where the hook set by `Outbox::set_flush_seam` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushSeam {
    /// A round's batches were sent (or abandoned); its outcomes are not recorded yet.
    BeforeRecord,
    /// Every round is recorded; the report's last read (`pending`, the next attempt) is next.
    BeforeLastRead,
}

/// The hook a flush calls at each [`FlushSeam`]; none by default.
#[derive(Default)]
pub(crate) struct Seam(OnceLock<Box<dyn Fn(FlushSeam) + Send + Sync>>);

impl Seam {
    /// Calls the hook, if one is set, on this thread.
    pub(crate) fn pause(&self, at: FlushSeam) {
        if let Some(hook) = self.0.get() {
            hook(at);
        }
    }

    /// Sets the hook (once; a second is ignored).
    pub(crate) fn set(&self, hook: impl Fn(FlushSeam) + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(hook));
    }
}
