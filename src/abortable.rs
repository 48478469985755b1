//! Connections an interrupt can cut, and that tell whether a failed request was ever written.
//!
//! ureq's TCP connector registers each socket it opens with a shutdown handle, before any TLS or
//! proxy negotiation. [`AbortableConnector`] wraps the agent's connectors and keeps that handle
//! with the connection; while a call does I/O on it (the handshake included), the socket is
//! registered as what the call is blocked on (`cancel::block_on`), so interrupting the call shuts
//! the socket down and the blocked read or write returns at once. Only the sockets of calls in
//! progress are registered: idle pooled connections, and those of calls that watch other signals,
//! are left alone.
//!
//! A write that fails before any byte of the request was written is marked [`Unsent`]: Graph
//! cannot have seen that request, so even a create may be sent again.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use ureq::Error;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, ShutdownHandle, Transport,
};

use crate::cancel::{self, Cancelled, Wake};

/// Wraps the connector chain `C` so every connection it makes can be cut by an interrupt.
#[derive(Debug)]
pub(crate) struct AbortableConnector<C>(pub C);

/// Shuts a socket down; what an interrupt wakes for a call blocked on it.
struct SocketWaker(Weak<dyn ShutdownHandle>);

impl Wake for SocketWaker {
    fn wake(&self) {
        if let Some(socket) = self.0.upgrade() {
            socket.shutdown();
        }
    }
}

/// The socket a connection runs on, as the current call registers it.
#[derive(Clone)]
struct Socket(Arc<SocketWaker>);

impl Socket {
    /// Registers this socket as what the current call is blocked on; an error if the call was
    /// interrupted (the I/O is then not attempted).
    fn block(&self) -> Result<(), Error> {
        let waker = Arc::downgrade(&self.0) as Weak<dyn Wake>;
        cancel::block_on(Arc::as_ptr(&self.0) as usize, &waker).map_err(interrupted)
    }
}

/// Not `ErrorKind::Interrupted`: `Read::read_to_end` retries that kind forever.
fn interrupted(_: Cancelled) -> Error {
    Error::Io(io::Error::other("the call was interrupted"))
}

impl<C, T> Connector<()> for AbortableConnector<C>
where
    C: Connector<(), Out = T>,
    T: Transport,
{
    type Out = Abortable<T>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        // The socket the chain opens, caught where it registers with the agent.
        let opened: Arc<Mutex<Option<Socket>>> = Arc::default();
        let forward = Arc::clone(&details.register_shutdown);
        let catch = Arc::clone(&opened);
        let register = Arc::new(move |handle: Weak<dyn ShutdownHandle>| {
            let socket = Socket(Arc::new(SocketWaker(Weak::clone(&handle))));
            // From here the handshake is interruptible; a call already interrupted opens nothing.
            socket.block()?;
            *catch.lock().unwrap_or_else(PoisonError::into_inner) = Some(socket);
            forward(handle)
        });
        let details = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: Arc::clone(&details.current_time),
            run_connector: Arc::clone(&details.run_connector),
            register_shutdown: register,
        };
        let Some(inner) = self.0.connect(&details, chained)? else {
            return Ok(None);
        };
        let socket = opened.lock().unwrap_or_else(PoisonError::into_inner).take();
        Ok(Some(Abortable {
            inner,
            socket,
            unanswered: false,
        }))
    }
}

/// A connection whose I/O registers its socket with the call doing it.
pub(crate) struct Abortable<T> {
    inner: T,
    /// `None` for a transport that registered no socket (none of ureq's own).
    socket: Option<Socket>,
    /// Bytes of the current request were written and no answer has arrived yet.
    unanswered: bool,
}

impl<T: Transport> fmt::Debug for Abortable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Abortable")
            .field("inner", &self.inner)
            .field("abortable", &self.socket.is_some())
            .finish()
    }
}

impl<T> Abortable<T> {
    fn block(&self) -> Result<(), Error> {
        match &self.socket {
            Some(socket) => socket.block(),
            None => Ok(()),
        }
    }
}

impl<T: Transport> Transport for Abortable<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.block()?;
        match self.inner.transmit_output(amount, timeout) {
            Ok(()) => {
                self.unanswered = true;
                Ok(())
            }
            Err(Error::Io(err)) if !self.unanswered => Err(Error::Io(Unsent::wrap(err))),
            Err(err) => Err(err),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.block()?;
        let read = self.inner.await_input(timeout);
        if matches!(read, Ok(true)) {
            // The answer began: the next write is the next request's.
            self.unanswered = false;
        }
        read
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// An I/O error from writing a request of which no byte was written: the server cannot have
/// processed it. Keeps the original error's kind and message.
#[derive(Debug)]
pub(crate) struct Unsent(io::Error);

impl Unsent {
    fn wrap(err: io::Error) -> io::Error {
        io::Error::new(err.kind(), Unsent(err))
    }

    /// Whether ureq's `err` is a write that failed before any byte of the request left.
    pub(crate) fn is(err: &Error) -> bool {
        matches!(err, Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<Unsent>()))
    }
}

/// Whether ureq's `err` is a connection that was refused or never found its host (refused,
/// unreachable, no local address): nothing reached the server.
pub(crate) fn refused(err: &Error) -> bool {
    use io::ErrorKind;
    match err {
        Error::ConnectionFailed => true,
        Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

impl fmt::Display for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Unsent {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use ureq::unversioned::transport::LazyBuffers;
    use ureq::unversioned::transport::time::Duration;

    /// A transport whose writes and reads succeed or fail as scripted.
    #[derive(Debug)]
    struct Scripted {
        buffers: LazyBuffers,
        writes: VecDeque<bool>,
    }

    impl Transport for Scripted {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), Error> {
            if self.writes.pop_front().unwrap_or(true) {
                Ok(())
            } else {
                Err(Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)))
            }
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            Ok(true)
        }

        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: Duration::NotHappening,
            reason: ureq::Timeout::Global,
            per_read: None,
            per_write: None,
        }
    }

    #[test]
    fn a_write_is_unsent_only_when_no_byte_of_the_request_left() {
        let mut connection = Abortable {
            inner: Scripted {
                buffers: LazyBuffers::new(64, 64),
                writes: [false, true, false, false].into(),
            },
            socket: None,
            unanswered: false,
        };
        // The first write of a request fails: Graph cannot have seen it.
        let err = connection.transmit_output(10, timeout()).unwrap_err();
        assert!(Unsent::is(&err), "{err:?}");
        assert!(matches!(&err, Error::Io(io) if io.kind() == io::ErrorKind::BrokenPipe));
        // Part of a request left, then a write failed: it may have been processed.
        connection.transmit_output(10, timeout()).unwrap();
        let err = connection.transmit_output(10, timeout()).unwrap_err();
        assert!(!Unsent::is(&err), "{err:?}");
        // The answer came: the next request starts unsent again.
        assert!(connection.await_input(timeout()).unwrap());
        assert!(Unsent::is(
            &connection.transmit_output(10, timeout()).unwrap_err()
        ));
    }
}
