//! What a layer above must do before each request of a call leaves: the outbox writes until when
//! Graph may apply the request (a retry within the call, or a first request that waited at the
//! pacing gate or for a token, leaves later than the claim noted). The call's
//! [`Watch`](crate::cancel::Watch) carries it to the pipeline, which runs it just before each
//! attempt is written; its error keeps that request from leaving and ends the call.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// The hook run before each request of a call leaves.
#[derive(Clone)]
pub(crate) struct Departure(Arc<dyn Fn() -> Result<(), Error> + Send + Sync>);

impl Departure {
    /// `before` runs before each request of the call leaves.
    pub(crate) fn new(before: impl Fn() -> Result<(), Error> + Send + Sync + 'static) -> Self {
        Departure(Arc::new(before))
    }

    /// A request leaves now: runs the hook.
    pub(crate) fn leaving(&self) -> Result<(), Error> {
        (self.0)()
    }
}

impl fmt::Debug for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Departure")
    }
}
