//! What a layer above must do before each request of a call leaves: the outbox writes until when
//! Graph may apply the request (a retry within the call, or a first request that waited at the
//! pacing gate or for a token, leaves later than the claim noted). The call's
//! [`Watch`](crate::cancel::Watch) carries it to the pipeline, which runs it just before each
//! attempt, and to the transport (`abortable`), which runs it again as each request's first byte
//! is written: whatever ran between (a DNS lookup before a pooled connection is taken, a connect,
//! a proxy's `CONNECT`, TLS, a redirect's earlier hop) cannot make a request leave later than the
//! end written for it. Not for the token endpoint, whose connections carry none of the call's
//! requests. Its error keeps that request from leaving and ends the call.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::Error;

/// The hook run before each request of a call leaves.
#[derive(Clone)]
pub(crate) struct Departure {
    before: Arc<dyn Fn() -> Result<(), Error> + Send + Sync>,
    /// Set when the hook kept a resend from leaving (its error, STORAGE, cannot count the sends
    /// before it, which may still land).
    refused_a_resend: Arc<AtomicBool>,
    /// The earlier sends of the request leaving now.
    sent: Arc<AtomicU32>,
    /// The hook's error as the request's first byte was about to be written: the request was
    /// not written; the pipeline returns it.
    kept_back: Arc<Mutex<Option<Error>>>,
}

impl Departure {
    /// `before` runs before each request of the call leaves.
    pub(crate) fn new(before: impl Fn() -> Result<(), Error> + Send + Sync + 'static) -> Self {
        Departure {
            before: Arc::new(before),
            refused_a_resend: Arc::default(),
            sent: Arc::default(),
            kept_back: Arc::default(),
        }
    }

    /// A request leaves now, after `sent` earlier sends of it: runs the hook.
    pub(crate) fn leaving(&self, sent: u32) -> Result<(), Error> {
        self.sent.store(sent, Ordering::Relaxed);
        self.take_kept_back();
        let left = (self.before)();
        if left.is_err() && sent > 0 {
            self.refused_a_resend.store(true, Ordering::Relaxed);
        }
        left
    }

    /// The first byte of the request leaving now is written next (on a fresh or a pooled
    /// connection, for each redirect hop alike): runs the hook again, so the end it writes counts
    /// from here; a request that leaves in time writes nothing. `false` when its error keeps the
    /// request from being written ([`take_kept_back`](Self::take_kept_back) has it).
    pub(crate) fn writing(&self) -> bool {
        let Err(error) = (self.before)() else {
            return true;
        };
        if self.sent.load(Ordering::Relaxed) > 0 {
            self.refused_a_resend.store(true, Ordering::Relaxed);
        }
        *self
            .kept_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
        false
    }

    /// The error with which the hook kept a request from being written, if it did.
    pub(crate) fn take_kept_back(&self) -> Option<Error> {
        self.kept_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// True once the hook kept a resend from leaving: a request of the call whose error says
    /// no request carried it may have been sent before.
    pub(crate) fn refused_a_resend(&self) -> bool {
        self.refused_a_resend.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Departure")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_failure_is_noted_only_for_a_resend() {
        let departure = Departure::new(|| Err(Error::invalid("outbox", "locked")));
        assert!(departure.leaving(0).is_err() && !departure.refused_a_resend());
        assert!(departure.clone().leaving(1).is_err() && departure.refused_a_resend());
        assert!(Departure::new(|| Ok(())).leaving(3).is_ok());
    }

    #[test]
    fn a_request_written_while_the_departure_is_left_out_does_not_run_the_hook() {
        use crate::cancel::{self, Signal, Watch};
        let runs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        let watch = Watch::new(&Signal::new()).before_each_request(Departure::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Err(Error::invalid("outbox", "locked"))
        }));
        let _call = watch.enter();
        {
            // A token fetch's connection.
            let _token = watch.enter_without_departure();
            let current = cancel::current().expect("still the call's watch");
            assert!(current == watch && current.writing());
            assert!(current.take_kept_back().is_none());
            assert_eq!(
                runs.load(Ordering::Relaxed),
                0,
                "the hook ran for the token fetch"
            );
        }
        let current = cancel::current().expect("the call's watch again");
        assert!(!current.writing() && current.take_kept_back().is_some());
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_hook_failure_at_the_first_write_is_kept_for_the_pipeline_until_the_next_request() {
        let departure = Departure::new(|| Err(Error::invalid("outbox", "locked")));
        assert!(departure.leaving(0).is_err());
        assert!(!departure.writing() && !departure.refused_a_resend());
        assert!(departure.take_kept_back().is_some() && departure.take_kept_back().is_none());
        let _ = departure.leaving(2);
        assert!(!departure.writing() && departure.refused_a_resend());
        let _ = departure.leaving(0);
        assert!(
            departure.take_kept_back().is_none(),
            "a new request starts clean"
        );
    }
}
