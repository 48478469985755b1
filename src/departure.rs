//! What a layer above must do before each request of a call leaves: the outbox writes until when
//! Graph may apply the request (a retry within the call, or a first request that waited at the
//! pacing gate or for a token, leaves later than the claim noted). The call's
//! [`Watch`](crate::cancel::Watch) carries it to the pipeline, which runs it just before each
//! attempt, and to the transport (`abortable`), which runs it again as each request's first byte
//! is written: whatever ran between (a DNS lookup before a pooled connection is taken, a connect,
//! a proxy's `CONNECT`, TLS, a redirect's earlier hop) cannot make a request leave later than the
//! end written for it. Not for the token endpoint, whose connections carry none of the call's
//! requests. Its error keeps that request from leaving and ends the call, counting the requests
//! sent before it (the pipeline sets its `attempts`, as for any error), so every layer reads what
//! carried the request from the error. The hook is given the call's deadline
//! (`timeouts.totalMs`), so its waits end with the call's budget (or sooner: the outbox's flush
//! ends them at its `flushTime` too, as `totalMs` is unset by default). A bulk call whose envelope
//! the hook's `Error::Storage` kept back sends no later envelope (`scheduler`).

use std::fmt;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::Error;

/// The hook run before each request of a call leaves.
#[derive(Clone)]
pub(crate) struct Departure {
    /// Given the call's deadline, if it has one.
    before: Arc<dyn Fn(Option<Instant>) -> Result<(), Error> + Send + Sync>,
    /// The deadline of the call whose request is leaving now.
    deadline: Arc<Mutex<Option<Instant>>>,
    /// The hook's error as the request's first byte was about to be written: the request was
    /// not written; the pipeline returns it.
    kept_back: Arc<Mutex<Option<Error>>>,
}

impl Departure {
    /// `before` runs before each request of the call leaves, given the call's deadline.
    pub(crate) fn new(
        before: impl Fn(Option<Instant>) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        Departure {
            before: Arc::new(before),
            deadline: Arc::default(),
            kept_back: Arc::default(),
        }
    }

    /// A request of a call that must end by `deadline` leaves now: runs the hook.
    pub(crate) fn leaving(&self, deadline: Option<Instant>) -> Result<(), Error> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
        self.take_kept_back();
        (self.before)(deadline)
    }

    /// The first byte of the request leaving now is written next (on a fresh or a pooled
    /// connection, for each redirect hop alike): runs the hook again, so the end it writes counts
    /// from here; a request that leaves in time writes nothing. `false` when its error keeps the
    /// request from being written ([`take_kept_back`](Self::take_kept_back) has it).
    pub(crate) fn writing(&self) -> bool {
        let deadline = *self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        let Err(error) = (self.before)(deadline) else {
            return true;
        };
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
}

impl fmt::Debug for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Departure")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hook is given the deadline of the call whose request leaves, when it leaves and again
    /// as its first byte is written.
    #[test]
    fn the_hook_is_given_the_calls_deadline() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = Arc::clone(&seen);
        let departure = Departure::new(move |deadline| {
            noted.lock().unwrap().push(deadline);
            Ok(())
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        assert!(departure.leaving(Some(deadline)).is_ok() && departure.writing());
        assert!(departure.leaving(None).is_ok() && departure.writing());
        assert_eq!(
            *seen.lock().unwrap(),
            [Some(deadline), Some(deadline), None, None]
        );
    }

    #[test]
    fn a_request_written_while_the_departure_is_left_out_does_not_run_the_hook() {
        use crate::cancel::{self, Signal, Watch};
        use std::sync::atomic::{AtomicU32, Ordering};
        let runs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        let watch = Watch::new(&Signal::new()).before_each_request(Departure::new(move |_| {
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
        let departure = Departure::new(|_| Err(Error::invalid("outbox", "locked")));
        assert!(departure.leaving(None).is_err());
        assert!(!departure.writing());
        assert!(departure.take_kept_back().is_some() && departure.take_kept_back().is_none());
        assert!(!departure.writing());
        let _ = departure.leaving(None);
        assert!(
            departure.take_kept_back().is_none(),
            "a new request starts clean"
        );
    }
}
