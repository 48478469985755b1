//! The HTTP server: an accept loop, one thread per connection, persistent
//! connections. It reads each request (see `http1`), asks its [`Handler`]
//! what to do, and either sends the answer or misbehaves on the wire.
//!
//! Hand-rolled on `std::net` (with `httparse` for the request head) rather
//! than a framework so that wire faults control every byte and every socket
//! operation; over TLS they write through the session (see `tls`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http1::{self, Conn, ReadError};
use crate::message::{Request, RequestIds, Response};
use crate::odata::{self, JSON_CONTENT_TYPE};
use crate::sync::{StopSignal, lock};
use crate::tls::{self, Stream};

/// What answers the requests a server reads.
pub(crate) trait Handler: Send + Sync + 'static {
    /// What to do with one request; `ids` go into the answer's headers.
    fn handle(&self, req: &Request, ids: &RequestIds) -> Answer;
}

/// A handler's decision.
pub(crate) enum Answer {
    /// Send this response.
    Respond(Response),
    /// Misbehave on the wire instead of answering.
    Wire(WireFault),
}

/// The ways to misbehave that need the connection itself: the wire side of
/// the `Fault` variants of the same names (their docs say what each does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WireFault {
    NoAnswer,
    StallAfterHeaders,
    TrickleBody { interval: Duration },
    Reset,
    Close,
    Truncated,
}

/// A running accept loop and its connections.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: StopSignal,
    accept: Option<JoinHandle<()>>,
}

/// What the accept thread and the connection threads share.
struct Connections {
    handler: Arc<dyn Handler>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: StopSignal,
    /// Open connections by id, for shutdown.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// How many TCP connections were accepted.
    accepted: Arc<AtomicUsize>,
    /// How many of them ended (the client closed it, or a fault did).
    closed: Arc<AtomicUsize>,
}

impl Server {
    /// Starts the accept thread on `listener`. It owns cleanup: once `stop`
    /// is set and it is woken, it shuts every open connection down and
    /// joins their threads. `accepted` counts the connections accepted, `closed` those that
    /// ended.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Arc<dyn Handler>,
        stop: StopSignal,
        (accepted, closed): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let connections = Arc::new(Connections {
            handler,
            tls,
            stop: stop.clone(),
            open: Mutex::new(HashMap::new()),
            accepted,
            closed,
        });
        let accept = thread::Builder::new()
            .name("ius-emulator-accept".to_owned())
            .spawn(move || accept_loop(listener, connections))?;
        Ok(Server {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// Stops accepting, shuts open connections down and joins the threads (a connection
    /// thread still blocked half a second later is left detached: see `accept_loop`).
    pub(crate) fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop.stop();
        // If the wake-up connection fails the accept thread could block
        // forever, so it is left detached rather than joined.
        if wake(self.addr) {
            let _ = accept.join();
        }
    }
}

/// Wakes a blocked `accept` by connecting to it; false if that failed.
fn wake(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok()
}

fn accept_loop(listener: TcpListener, shared: Arc<Connections>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        if shared.stop.is_stopping() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let id = next_id;
        next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        workers.retain(|h| !h.is_finished());
        let sh = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("ius-emulator-conn-{id}"))
            .spawn(move || {
                if let Some(stream) = tls::wrap(stream, sh.tls.as_ref()) {
                    serve_connection(&sh, stream);
                }
                lock(&sh.open).remove(&id);
                sh.closed.fetch_add(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(_) => {
                lock(&shared.open).remove(&id);
            }
        }
    }
    // Shutting the sockets down sends each client a FIN and, on Linux, unblocks workers stuck
    // in read or write. Windows (and Wine) do not wake a thread blocked in `recv` when another
    // shuts its socket down: a worker idle on a connection its client keeps open ends only when
    // the client closes it or sends again (it then sees the stop). So workers get a bounded
    // wait, and those still blocked after it are left detached rather than hold the stop up.
    let open: Vec<TcpStream> = lock(&shared.open).drain().map(|(_, s)| s).collect();
    for s in open {
        let _ = s.shutdown(Shutdown::Both);
    }
    join_bounded(workers, WORKER_STOP_WAIT);
}

/// How long a stop waits for the connection threads after shutting their sockets down.
const WORKER_STOP_WAIT: Duration = Duration::from_millis(500);

/// Joins the threads that finish within `wait`; the others are detached.
fn join_bounded(workers: Vec<JoinHandle<()>>, wait: Duration) {
    let deadline = Instant::now() + wait;
    while workers.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    for h in workers.into_iter().filter(JoinHandle::is_finished) {
        let _ = h.join();
    }
}

/// What the connection loop does after a wire fault.
enum After {
    /// The fault answered in full; read the next request.
    Continue,
    /// The fault is done with the connection: drop it without more ado.
    End,
}

fn serve_connection(shared: &Connections, stream: Stream) {
    let mut conn = Conn::new(stream);
    loop {
        let request = match http1::read_request(&mut conn) {
            Ok(Some(r)) => r,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(status, message)) => {
                let ids = RequestIds::new(None);
                let resp = odata::error(&ids, status, "BadRequest", &message);
                let _ = http1::write_response(&mut conn.stream, resp, &ids, true, 1);
                return;
            }
        };
        if shared.stop.is_stopping() {
            return;
        }
        let ids = RequestIds::new(request.header("client-request-id"));
        let keep_alive = request.keep_alive();
        let response = match shared.handler.handle(&request, &ids) {
            Answer::Respond(r) => r,
            Answer::Wire(fault) => {
                match misbehave(&shared.stop, &mut conn.stream, &request, &ids, fault) {
                    After::Continue => continue,
                    After::End => return,
                }
            }
        };
        if http1::write_response(&mut conn.stream, response, &ids, !keep_alive, request.minor)
            .is_err()
            || !keep_alive
        {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// The body the stall, trickle and truncated faults (pretend to) send.
const SMALL_BODY: &[u8] = br#"{"@odata.context":"emulator#fault","value":[]}"#;

/// Performs a wire fault on the connection of `req`.
fn misbehave(
    stop: &StopSignal,
    stream: &mut Stream,
    req: &Request,
    ids: &RequestIds,
    fault: WireFault,
) -> After {
    let close = !req.keep_alive();
    let ok_json = Response::with_body(200, JSON_CONTENT_TYPE, Vec::new());
    let head = |length: usize| http1::encode_head(&ok_json, ids, close, req.minor, Some(length));
    match fault {
        WireFault::NoAnswer => {
            hold(stop, stream);
            After::End
        }
        WireFault::StallAfterHeaders => {
            if send(stream, &head(500)).is_ok() {
                hold(stop, stream);
            }
            After::End
        }
        WireFault::TrickleBody { interval } => {
            if send(stream, &head(SMALL_BODY.len())).is_err() {
                return After::End;
            }
            for byte in SMALL_BODY.chunks(1) {
                if !stop.sleep(interval) || send(stream, byte).is_err() {
                    return After::End;
                }
            }
            if close {
                let _ = stream.shutdown(Shutdown::Write);
                After::End
            } else {
                After::Continue
            }
        }
        WireFault::Reset => {
            // With linger 0, the close that follows sends RST, not FIN. The
            // socket is closed once the connection map's clone is dropped too,
            // which happens right after the connection thread returns.
            let _ = socket2::SockRef::from(stream.tcp()).set_linger(Some(Duration::ZERO));
            After::End
        }
        WireFault::Close => {
            let _ = stream.shutdown(Shutdown::Both);
            After::End
        }
        WireFault::Truncated => {
            let mut bytes = head(SMALL_BODY.len());
            bytes.extend_from_slice(&SMALL_BODY[..SMALL_BODY.len() / 2]);
            let _ = send(stream, &bytes);
            let _ = stream.shutdown(Shutdown::Write);
            After::End
        }
    }
}

/// Writes and flushes.
fn send(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

/// Keeps a connection open without answering: reads and discards until the
/// client closes it, or shutdown shuts the socket down (which ends the read).
fn hold(stop: &StopSignal, stream: &mut Stream) {
    let mut sink = [0u8; 4096];
    while !stop.is_stopping() {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
