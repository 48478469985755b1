//! The TCP connections of the agent, every wait of which an interrupt can end: the connect, and
//! each read.
//!
//! ureq's `TcpConnector` connects on the caller's thread with a blocking `connect_timeout` that
//! nothing wakes. [`TcpConnector`] connects on a thread of its own (`cancel::off_thread`) and
//! waits for it as a call waits: an interrupt ends the wait at once, and the socket, once that
//! connect ends, is closed with its thread. A thread rather than a non-blocking connect polled in
//! slices because std has no non-blocking connect: one by hand needs raw socket calls that differ
//! between Unix and Windows (socket creation, address conversion, the connect's error: much more
//! `unsafe` than `readiness`'s one poll), while a thread is std alone on every platform; a
//! connect is rare (connections are pooled), so its cost does not matter. An interrupted connect's
//! thread ends alone within its timeout (docs/c-api.md, "Unloading the library").
//! Otherwise it connects as ureq's does: each resolved address in order, each with its share of
//! the connect timeout (1/2, 1/4, ... of it, at least 10 ms), the next one after a refusal or an
//! unreachable address, TCP_NODELAY as configured, and the socket registered for shutdown before
//! any proxy or TLS negotiation (what `abortable` catches).
//!
//! The socket is non-blocking. A read waits in slices of at most [`SLICE`] for the socket to be
//! readable (`readiness`: `poll` on Unix, `WSAPoll` on Windows) and looks for an interrupt
//! between them, then reads what came; a write writes what the socket takes and, when it takes
//! no more (a peer that does not read, a slow network), waits for room the same way. On Linux
//! the shutdown an interrupt sends wakes a blocked wait at once; on Windows it may not
//! (rust-lang/rust#121594, for a `send` as for a `recv`), and the slices bound the wait there. No
//! receive or send timeout (SO_RCVTIMEO, SO_SNDTIMEO) is set: Windows documents a socket whose
//! receive or send timed out as indeterminate, and a read or write happens only once the socket
//! is ready, so none ever times out. (A write that ran out of time ends the request, and ureq
//! closes its connection, never reusing it.) Reads and writes sit below TLS and the proxy
//! negotiation, so a handshake's are sliced too. Each still ends as one wait of the whole timeout
//! would, with ureq's error naming the same timeout.
//!
//! The socket's shutdown handle abandons the request on it: it sets SO_LINGER 0 (through
//! `socket2`: std's is unstable, and the option differs between Unix and Windows) before it shuts
//! the socket down, so the close that follows resets the connection instead of sending on what
//! the kernel still holds of the request, which a retransmission after a network outage could
//! deliver minutes later, after a newer request. An interrupt shuts a socket down, and so does
//! `abortable` when it drops a connection whose request is unanswered. The reset reaches the
//! next hop only: a proxy may still forward what it already read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::Instant;
use std::{fmt, io};

use ureq::unversioned::resolver::ResolvedSocketAddrs;
use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};
use ureq::{Error, Timeout};

use crate::abortable::{interrupted, interrupted_unsent};
use crate::cancel::{self, Cancelled, Unanswered};
use crate::readiness::{self, Ready};

/// How long one wait of a read or a write lasts before it looks for an interrupt again.
const SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The least share of the connect timeout an address is given (ureq's).
const MIN_PER_ADDRESS: std::time::Duration = std::time::Duration::from_millis(10);

/// Opens the TCP connection of a chain (unless an earlier connector opened one).
#[derive(Debug, Default)]
pub(crate) struct TcpConnector;

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, Tcp>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let addrs = details.addrs.clone();
        let timeout = details.timeout;
        let no_delay = details.config.no_delay();
        // Bounded by the per-address timeouts on its thread, as ureq's connect is.
        let connected = cancel::off_thread("ius-connect", None, move || {
            let started = std::time::Instant::now();
            connect_each(
                &addrs,
                timeout,
                || started.elapsed(),
                |addr, per_address| connect_one(addr, per_address, no_delay),
            )
        });
        let stream = match connected {
            Ok(connected) => connected?,
            Err(Unanswered::Cancelled) => return Err(interrupted_unsent(Cancelled)),
            Err(Unanswered::TimedOut) => return Err(Error::Timeout(timeout.reason)),
        };
        let config = details.config;
        let transport = Tcp::new(
            stream,
            LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        )?;
        (details.register_shutdown)(transport.shutdown_handle())?;
        Ok(Some(Either::B(transport)))
    }
}

/// Tries each of `addrs` in order with `connect`, giving each a share of `timeout` (halving from
/// half of it, so the shares add up to the whole), until one connects. A refusal or an
/// unreachable address moves on to the next; so does a timeout while time is left; any other
/// error ends the connect. With every address failed, the last failure is the error.
fn connect_each<T>(
    addrs: &ResolvedSocketAddrs,
    timeout: NextTimeout,
    elapsed: impl Fn() -> std::time::Duration,
    mut connect: impl FnMut(SocketAddr, Option<std::time::Duration>) -> Result<T, Error>,
) -> Result<T, Error> {
    let total_weight = 2.0 * (1.0 - 0.5_f64.powi(addrs.len() as i32));
    let mut weight = 1.0_f64;
    let mut last: Option<Error> = None;
    for addr in addrs {
        let per_address = timeout.not_zero().map(|whole| {
            let share = whole.as_secs_f64() * weight / total_weight;
            std::time::Duration::from_millis((share * 1000.0) as u64).max(MIN_PER_ADDRESS)
        });
        match connect(*addr, per_address) {
            Ok(connected) => return Ok(connected),
            Err(Error::Io(err)) if only_this_address(&err) => last = Some(Error::Io(err)),
            Err(err @ Error::Timeout(_)) => {
                if elapsed() > *timeout.after {
                    return Err(Error::Timeout(timeout.reason));
                }
                last = Some(err);
            }
            Err(err) => return Err(err),
        }
        weight /= 2.0;
    }
    Err(last.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ))
    }))
}

/// Whether a failed connect concerns only the address tried, so the next may still connect
/// (ureq's rule: refused, unreachable, network down, address unavailable; on Windows, a
/// firewall's WSAEACCES).
fn only_this_address(err: &io::Error) -> bool {
    #[cfg(windows)]
    const WSAEACCES: i32 = 10013;
    #[cfg(windows)]
    if err.raw_os_error() == Some(WSAEACCES) {
        return true;
    }
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

/// Connects to `addr` within `timeout` (none: the system's own).
fn connect_one(
    addr: SocketAddr,
    timeout: Option<std::time::Duration>,
    no_delay: bool,
) -> Result<TcpStream, Error> {
    let connected = match timeout {
        Some(timeout) => TcpStream::connect_timeout(&addr, timeout),
        None => TcpStream::connect(addr),
    };
    let stream = match connected {
        Ok(stream) => stream,
        // Some platforms report a connect timeout as WouldBlock.
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            return Err(Error::Timeout(Timeout::Connect));
        }
        Err(err) => return Err(Error::Io(err)),
    };
    if no_delay {
        stream.set_nodelay(true)?;
    }
    Ok(stream)
}

/// A TCP connection (ureq's transport is not public): the socket, shared with the handle an
/// interrupt shuts it down by, its buffers, and reads and writes in slices.
pub(crate) struct Tcp {
    stream: Arc<Socket>,
    buffers: LazyBuffers,
}

/// The socket of a [`Tcp`]. Its shutdown abandons the request on it: an interrupt's (through
/// `abortable`), or a connection dropped with its request unanswered (a timeout).
struct Socket(TcpStream);

impl ShutdownHandle for Socket {
    /// Sets SO_LINGER to 0, so the close that follows resets the connection and discards what
    /// the kernel still holds of the request (a graceful close would go on sending it, and a
    /// retransmission after a network outage may deliver it minutes later, after a newer
    /// request); then shuts the socket down, which wakes a read or write blocked on it.
    fn shutdown(&self) {
        let _ = socket2::SockRef::from(&self.0).set_linger(Some(std::time::Duration::ZERO));
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

impl std::ops::Deref for Socket {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Tcp {
    /// Makes `stream` non-blocking: its reads and writes wait in [`wait`], never in the system.
    fn new(stream: TcpStream, buffers: LazyBuffers) -> io::Result<Tcp> {
        stream.set_nonblocking(true)?;
        Ok(Tcp {
            stream: Arc::new(Socket(stream)),
            buffers,
        })
    }

    fn shutdown_handle(&self) -> Weak<dyn ShutdownHandle> {
        Arc::downgrade(&self.stream) as Weak<dyn ShutdownHandle>
    }
}

/// Waits until `ready` (a [`readiness`] wait) says `stream` is ready, in slices of at most
/// [`SLICE`], looking for an interrupt between them; `whole` is the deadline of the read or write
/// that started at `started`, and its error once passed.
fn wait(
    stream: &TcpStream,
    whole: &NextTimeout,
    started: Instant,
    ready: fn(&TcpStream, std::time::Duration) -> io::Result<Ready>,
) -> Result<(), Error> {
    loop {
        let slice = match whole.after {
            Duration::Exact(after) => {
                let left = after.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Error::Timeout(whole.reason));
                }
                left.min(SLICE)
            }
            Duration::NotHappening => SLICE,
        };
        match ready(stream, slice)? {
            Ready::Ready => return Ok(()),
            // Only a slice ended: look for an interrupt, then wait on.
            Ready::NotYet => cancel::check().map_err(interrupted)?,
        }
    }
}

/// Whether an I/O error only says to try again: a signal (EINTR), or a non-blocking socket not
/// ready after all (what a readiness wait said may have changed since).
fn again(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

impl fmt::Debug for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcp")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

impl Transport for Tcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let whole = timeout.for_write();
        if whole.after.is_zero() {
            return Err(Error::Timeout(whole.reason));
        }
        let started = Instant::now();
        let mut output = &self.buffers.output()[..amount];
        while !output.is_empty() {
            match (&**self.stream).write(output) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(written) => output = &output[written..],
                // No room: wait for some (a peer that does not read, a slow network). A write
                // that goes on in small steps looks for an interrupt at each, not only when a
                // slice passes with no room.
                Err(err) if again(&err) => {
                    cancel::check().map_err(interrupted)?;
                    wait(&self.stream, &whole, started, readiness::wait_writable)?
                }
                Err(err) => return Err(Error::Io(err)),
            }
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        // The deadline this read is held to, the per-read timeout included.
        let whole = timeout.for_read();
        let started = Instant::now();
        loop {
            wait(&self.stream, &whole, started, readiness::wait_readable)?;
            match (&**self.stream).read(self.buffers.input_append_buf()) {
                Ok(amount) => {
                    self.buffers.input_appended(amount);
                    return Ok(amount > 0);
                }
                // What is there is still there, or nothing was after all: wait again.
                Err(err) if again(&err) => {}
                Err(err) => return Err(Error::Io(err)),
            }
        }
    }

    /// Whether the idle connection is still open: nothing to read, and no end of stream.
    fn is_open(&mut self) -> bool {
        matches!(
            readiness::wait_readable(&self.stream, std::time::Duration::ZERO),
            Ok(Ready::NotYet)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::{Signal, Watch};
    use std::net::TcpListener;
    use std::time::Instant as StdInstant;

    /// A connection to a loopback server that accepted it: (ours, the server's end).
    fn connection() -> (Tcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (
            Tcp::new(ours, LazyBuffers::new(1024, 1024)).unwrap(),
            theirs,
        )
    }

    /// A connection whose output buffer holds `bytes`, more than the socket's buffers and the
    /// peer's take when the peer reads nothing: (ours, the server's end).
    fn connection_writing(bytes: usize) -> (Tcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        let mut tcp = Tcp::new(ours, LazyBuffers::new(1024, bytes)).unwrap();
        // Made now, not in the timed write (filling 64 MiB takes a debug build a second).
        assert_eq!(tcp.buffers.output().len(), bytes);
        (tcp, theirs)
    }

    /// More than loopback's send and receive buffers hold together (Linux: 4 + 6 MiB at most).
    const UNREAD: usize = 64 << 20;

    /// A write to a peer that reads nothing ends at its timeout, with ureq's error naming it (the
    /// request then fails and ureq closes the connection: it is never written to again).
    #[test]
    fn a_write_the_peer_does_not_read_ends_at_its_timeout() {
        let (mut tcp, _server) = connection_writing(UNREAD);
        let started = StdInstant::now();
        let written = tcp.transmit_output(UNREAD, within(300, Timeout::SendBody, None));
        let took = started.elapsed();
        assert!(
            matches!(written, Err(Error::Timeout(Timeout::SendBody))),
            "{written:?}"
        );
        assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }

    /// Where a shutdown does not wake a blocked write (Windows), the write still ends at the
    /// interrupt: here no shutdown is registered, so only the write's own wait can notice. With a
    /// send timeout (SO_SNDTIMEO) instead, it waited for the whole timeout.
    #[test]
    fn a_write_nothing_wakes_ends_at_the_interrupt() {
        let (mut tcp, _server) = connection_writing(UNREAD);
        ends_at_the_interrupt(|| tcp.transmit_output(UNREAD, within(5000, Timeout::Global, None)));
    }

    /// A write the peer reads slowly is written whole, however many waits for room it takes.
    #[test]
    fn a_write_the_peer_reads_slowly_is_written_whole() {
        let (mut tcp, mut server) = connection_writing(UNREAD);
        let reader = std::thread::spawn(move || {
            let mut sink = vec![0u8; 1 << 20];
            let mut read = 0usize;
            while read < UNREAD {
                std::thread::sleep(std::time::Duration::from_millis(1));
                match server.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            read
        });
        tcp.transmit_output(UNREAD, within(20_000, Timeout::Global, None))
            .unwrap();
        assert_eq!(reader.join().unwrap(), UNREAD);
    }

    fn within(millis: u64, reason: Timeout, per_read: Option<u64>) -> NextTimeout {
        NextTimeout {
            after: Duration::from_millis(millis),
            reason,
            per_read: per_read.map(Duration::from_millis),
            per_write: None,
        }
    }

    /// Where a shutdown does not wake a blocked read (Windows), the read still ends at the
    /// interrupt: here no shutdown is registered at all, so only the read's own wait can notice.
    #[test]
    fn a_read_nothing_wakes_ends_at_the_interrupt() {
        let (mut tcp, _server) = connection();
        ends_at_the_interrupt(|| {
            tcp.await_input(within(3000, Timeout::Global, None))
                .map(drop)
        });
    }

    /// Runs `io` on this thread, interrupted from another 200 ms in (no shutdown registered):
    /// it must return within half a second of the interrupt, saying it was interrupted.
    fn ends_at_the_interrupt(io: impl FnOnce() -> Result<(), Error>) {
        let signal = Signal::new();
        let interrupter = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                signal.interrupt();
                StdInstant::now()
            })
        };
        let entered = Watch::new(&signal).enter();
        let done = io();
        let returned = StdInstant::now();
        drop(entered);
        let interrupted = interrupter.join().unwrap();
        let late = returned.saturating_duration_since(interrupted);
        assert!(
            late < std::time::Duration::from_millis(500),
            "returned {late:?} after the interrupt: {done:?}"
        );
        assert!(
            matches!(&done, Err(Error::Io(err)) if err.to_string().contains("interrupted")),
            "{done:?}"
        );
    }

    /// Slices change nothing a caller sees: the read ends at its timeout, with ureq's error
    /// naming the timeout that ended it (the per-read one when it is the nearer), and data that
    /// comes between slices is read.
    #[test]
    fn a_read_ends_as_one_wait_of_its_timeout_would() {
        let (mut tcp, mut server) = connection();
        let timed = |tcp: &mut Tcp, timeout| {
            let started = StdInstant::now();
            let read = tcp.await_input(timeout);
            (read, started.elapsed())
        };
        let (read, took) = timed(&mut tcp, within(300, Timeout::Global, Some(120)));
        assert!(
            matches!(read, Err(Error::Timeout(Timeout::PerRead))),
            "{read:?}"
        );
        assert!(took >= std::time::Duration::from_millis(120), "{took:?}");
        assert!(took < std::time::Duration::from_millis(300), "{took:?}");
        let (read, took) = timed(&mut tcp, within(130, Timeout::RecvResponse, None));
        assert!(
            matches!(read, Err(Error::Timeout(Timeout::RecvResponse))),
            "{read:?}"
        );
        assert!(took >= std::time::Duration::from_millis(130), "{took:?}");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            server.write_all(b"hello").unwrap();
            server
        });
        let (read, took) = timed(&mut tcp, within(5000, Timeout::Global, None));
        assert!(matches!(read, Ok(true)), "{read:?}");
        assert!(took >= std::time::Duration::from_millis(150), "{took:?}");
        assert_eq!(tcp.buffers().input(), b"hello");
        drop(writer.join().unwrap());
    }

    fn addresses(count: u16) -> ResolvedSocketAddrs {
        let mut addrs = ResolvedSocketAddrs::from_fn(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        addrs.truncate(0);
        for port in 1..=count {
            addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        addrs
    }

    /// Connects through `outcomes` (one per address tried) with `elapsed` gone at each failure:
    /// the result, the ports tried and the share of a 10 s timeout each was given.
    fn scripted(
        count: u16,
        outcomes: Vec<Result<(), Error>>,
        elapsed: u64,
    ) -> (Result<u16, Error>, Vec<(u16, u64)>) {
        let mut outcomes = outcomes.into_iter();
        let mut tried = Vec::new();
        let result = connect_each(
            &addresses(count),
            within(10_000, Timeout::Connect, None),
            || std::time::Duration::from_secs(elapsed),
            |addr, share| {
                tried.push((addr.port(), share.unwrap().as_millis() as u64));
                outcomes.next().unwrap().map(|()| addr.port())
            },
        );
        (result, tried)
    }

    fn failed(kind: io::ErrorKind) -> Result<(), Error> {
        Err(Error::Io(kind.into()))
    }

    #[test]
    fn each_address_is_tried_in_order_with_its_share_of_the_timeout() {
        // Refused, unreachable and a timeout with time left move on to the next address.
        let (result, tried) = scripted(
            4,
            vec![
                failed(io::ErrorKind::ConnectionRefused),
                failed(io::ErrorKind::NetworkUnreachable),
                Err(Error::Timeout(Timeout::Connect)),
                Ok(()),
            ],
            1,
        );
        assert_eq!(result.unwrap(), 4);
        assert_eq!(tried, [(1, 5333), (2, 2666), (3, 1333), (4, 666)]);
        // Any other error ends the connect.
        let (result, tried) = scripted(2, vec![failed(io::ErrorKind::PermissionDenied), Ok(())], 1);
        assert!(
            matches!(&result, Err(Error::Io(err)) if err.kind() == io::ErrorKind::PermissionDenied)
        );
        assert_eq!(tried.len(), 1);
        // A timeout past the whole connect timeout ends it, naming that timeout.
        let (result, tried) = scripted(2, vec![Err(Error::Timeout(Timeout::Connect))], 11);
        assert!(matches!(result, Err(Error::Timeout(Timeout::Connect))));
        assert_eq!(tried.len(), 1);
        // Every address failed: the last failure is the error.
        let (result, _) = scripted(
            2,
            vec![
                Err(Error::Timeout(Timeout::Connect)),
                failed(io::ErrorKind::HostUnreachable),
            ],
            1,
        );
        assert!(
            matches!(&result, Err(Error::Io(err)) if err.kind() == io::ErrorKind::HostUnreachable)
        );
    }
}
