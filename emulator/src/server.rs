//! A small HTTP/1.1 server: accept loop, one thread per connection,
//! persistent connections, Content-Length and chunked request bodies.
//!
//! Hand-rolled on `std::net` (with `httparse` for the request head) rather
//! than a framework so that fault injection (see `faults.rs`) can control
//! every byte and every socket operation. With a TLS identity configured,
//! each connection is wrapped in a rustls [`ServerConnection`]; faults still
//! write through [`Stream`], so they behave the same over HTTPS.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};

use crate::Shared;
use crate::faults::After;
use crate::graph::Answer;
use crate::log::RecordedRequest;

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 128;

/// A fully read request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Method as sent.
    pub(crate) method: String,
    /// Raw request-target.
    pub(crate) target: String,
    /// HTTP/1.x minor version.
    pub(crate) minor: u8,
    /// Headers as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// De-chunked body.
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The target without the query string.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query string, if any.
    pub(crate) fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// First header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (e.g. `Connection`) lists `token`.
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may stay open after this request.
    pub(crate) fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            false
        } else if self.minor == 0 {
            self.header_has_token("connection", "keep-alive")
        } else {
            true
        }
    }

    /// The log entry for this request.
    pub(crate) fn to_recorded(&self) -> RecordedRequest {
        RecordedRequest {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

/// A response before the server adds the per-response headers
/// (`request-id`, `client-request-id`, `Date`, `Content-Length`, `Connection`).
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Handler-specific headers.
    pub(crate) headers: Vec<(String, String)>,
    /// Body bytes (always sent with Content-Length, never chunked).
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A response without body.
    pub(crate) fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with a body of the given content type.
    pub(crate) fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Per-request ids, chosen before the handler runs so error bodies and
/// headers agree.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Fresh `request-id`.
    pub(crate) request_id: String,
    /// The client's `client-request-id`, or a fresh one.
    pub(crate) client_request_id: String,
}

/// One accepted connection, plain or TLS. Reads and writes go through the
/// TLS session when there is one; socket operations (shutdown, linger) act
/// on the TCP stream underneath.
pub(crate) enum Stream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS; boxed because a rustls connection is large.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// The TCP stream underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Shuts the TCP stream down (after a TLS `close_notify` when closing
    /// the write side, so a TLS client sees a clean end, not a truncation).
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let (Stream::Tls(s), Shutdown::Write) = (&mut *self, how) {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.tcp().shutdown(how)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A rustls server configuration (ring provider) for `identity`.
pub(crate) fn tls_config(
    identity: &crate::TlsIdentity,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(identity.certificate_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate chain PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the certificate chain PEM".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(identity.private_key_pem.as_bytes())
        .map_err(|e| format!("bad private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(config))
}

/// Starts the accept thread. It owns cleanup: once `stopping` is set and it
/// is woken, it shuts every open connection down and joins their threads.
pub(crate) fn spawn_accept(
    listener: TcpListener,
    shared: Arc<Shared>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("ius-emulator-accept".to_owned())
        .spawn(move || accept_loop(listener, shared))
}

/// Wakes a blocked `accept` by connecting to it; false if that failed.
pub(crate) fn wake(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok()
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
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
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let id = next_id;
        next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        workers.retain(|h| !h.is_finished());
        let sh = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("ius-emulator-conn-{id}"))
            .spawn(move || {
                // The TLS handshake happens lazily, on the first read.
                let stream = match &sh.tls {
                    None => Some(Stream::Plain(stream)),
                    Some(config) => ServerConnection::new(Arc::clone(config))
                        .ok()
                        .map(|tls| Stream::Tls(Box::new(StreamOwned::new(tls, stream)))),
                };
                if let Some(stream) = stream {
                    serve_connection(&sh, stream);
                }
                lock(&sh.conns).remove(&id);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(_) => {
                lock(&shared.conns).remove(&id);
            }
        }
    }
    // Shutting the sockets down unblocks workers stuck in read or write.
    let open: Vec<TcpStream> = lock(&shared.conns).drain().map(|(_, s)| s).collect();
    for s in open {
        let _ = s.shutdown(Shutdown::Both);
    }
    for h in workers {
        let _ = h.join();
    }
}

/// Locks a mutex, ignoring poisoning (a panicked worker must not wedge shutdown).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why reading a request failed.
enum ReadError {
    /// The socket failed or closed mid-request: just drop the connection.
    Io,
    /// The request is malformed: answer with this status and close.
    Bad(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// A connection with its read buffer (which may hold pipelined bytes).
struct Conn {
    stream: Stream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; 0 means EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes exactly `n` bytes from the stream.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(ReadError::Io);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    fn take_line(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                line.truncate(pos);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431, "Trailer section too large.".into()));
            }
            if self.fill()? == 0 {
                return Err(ReadError::Io);
            }
        }
    }
}

fn serve_connection(shared: &Shared, stream: Stream) {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    loop {
        let request = match read_request(&mut conn) {
            Ok(Some(r)) => r,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(status, message)) => {
                let ctx = new_ctx(None);
                let resp = crate::graph::error(&ctx, status, "BadRequest", &message);
                let _ = write_response(&mut conn.stream, resp, &ctx, true, 1);
                return;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let ctx = new_ctx(request.header("client-request-id"));
        let keep_alive = request.keep_alive();
        let response = match crate::graph::handle(shared, &request, &ctx) {
            Answer::Response(r) => r,
            // A fault may answer in its own way, or not at all.
            Answer::Fault(fault) => {
                match crate::faults::perform(shared, &mut conn.stream, &request, &ctx, fault) {
                    After::Respond(r) => r,
                    After::Continue => continue,
                    After::End => return,
                }
            }
        };
        if write_response(&mut conn.stream, response, &ctx, !keep_alive, request.minor).is_err()
            || !keep_alive
        {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

fn new_ctx(client_request_id: Option<&str>) -> Ctx {
    let client_request_id = match client_request_id.map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    Ctx {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id,
    }
}

/// Reads one request; `Ok(None)` on a clean EOF between requests.
fn read_request(conn: &mut Conn) -> Result<Option<Request>, ReadError> {
    let (mut request, expects_continue) = loop {
        if !conn.buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&conn.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let request = Request {
                        method: parsed.method.unwrap_or("").to_owned(),
                        target: parsed.path.unwrap_or("").to_owned(),
                        minor: parsed.version.unwrap_or(1),
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                    };
                    conn.buf.drain(..len);
                    let expects = request.minor >= 1
                        && request
                            .header("expect")
                            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
                    break (request, expects);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadError::Bad(431, "Too many header fields.".into()));
                }
                Err(e) => {
                    return Err(ReadError::Bad(400, format!("Malformed HTTP request: {e}.")));
                }
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(
                    431,
                    "Request header section too large.".into(),
                ));
            }
        }
        if conn.fill()? == 0 {
            return if conn.buf.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Io)
            };
        }
    };

    let framing = body_framing(&request)?;
    if expects_continue && conn.buf.is_empty() && !matches!(framing, Framing::Length(0)) {
        conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        conn.stream.flush()?;
    }
    request.body = match framing {
        Framing::Length(n) => conn.take(n)?,
        Framing::Chunked => read_chunked(conn)?,
    };
    Ok(Some(request))
}

/// How the request body is delimited.
enum Framing {
    Length(usize),
    Chunked,
}

fn body_framing(request: &Request) -> Result<Framing, ReadError> {
    let te: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(last) = te.last() {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::Bad(
                400,
                "Unsupported Transfer-Encoding: the last coding must be chunked.".into(),
            ))
        };
    }
    let mut length: Option<usize> = None;
    for (_, v) in request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(',') {
            let part = part.trim();
            let n = part
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<usize>().ok())
                .flatten()
                .ok_or_else(|| ReadError::Bad(400, "Invalid Content-Length.".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::Bad(
                    400,
                    "Conflicting Content-Length values.".into(),
                ));
            }
            length = Some(n);
        }
    }
    let n = length.unwrap_or(0);
    if n > MAX_BODY {
        return Err(ReadError::Bad(413, "Request body too large.".into()));
    }
    Ok(Framing::Length(n))
}

fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = loop {
            match httparse::parse_chunk_size(&conn.buf) {
                Ok(httparse::Status::Complete(v)) => break v,
                Ok(httparse::Status::Partial) => {
                    if conn.buf.len() > 4096 {
                        return Err(ReadError::Bad(400, "Invalid chunk size line.".into()));
                    }
                    if conn.fill()? == 0 {
                        return Err(ReadError::Io);
                    }
                }
                Err(_) => return Err(ReadError::Bad(400, "Invalid chunk size.".into())),
            }
        };
        conn.buf.drain(..consumed);
        if size == 0 {
            break;
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| body.len().saturating_add(*s) <= MAX_BODY)
            .ok_or_else(|| ReadError::Bad(413, "Request body too large.".into()))?;
        let data = conn.take(size + 2)?;
        if &data[size..] != b"\r\n" {
            return Err(ReadError::Bad(
                400,
                "Chunk data not followed by CRLF.".into(),
            ));
        }
        body.extend_from_slice(&data[..size]);
    }
    // Trailer fields are read and ignored, up to the blank line.
    while !conn.take_line()?.is_empty() {}
    Ok(body)
}

/// The standard reason phrase for the statuses the emulator sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Serializes and sends one response in a single write.
fn write_response(
    stream: &mut Stream,
    response: Response,
    ctx: &Ctx,
    close: bool,
    minor: u8,
) -> io::Result<()> {
    // RFC 9110 §8.6: no Content-Length on 204.
    let length = (response.status != 204).then_some(response.body.len());
    let mut bytes = encode_head(&response, ctx, close, minor, length);
    bytes.extend_from_slice(&response.body);
    stream.write_all(&bytes)?;
    stream.flush()
}

/// The status line and headers of `response` (its body is not included),
/// with the per-response headers added. `content_length` is sent as given,
/// so faults can announce a length other than the body's.
pub(crate) fn encode_head(
    response: &Response,
    ctx: &Ctx,
    close: bool,
    minor: u8,
    content_length: Option<usize>,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    let mut push = |name: &str, value: &str| {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    };
    for (name, value) in &response.headers {
        push(name, value);
    }
    push("request-id", &ctx.request_id);
    push("client-request-id", &ctx.client_request_id);
    push("Date", &http_date(time::OffsetDateTime::now_utc()));
    if let Some(n) = content_length {
        push("Content-Length", &n.to_string());
    }
    if close {
        push("Connection", "close");
    } else if minor == 0 {
        push("Connection", "keep-alive");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        &weekday[..3],
        t.day(),
        &month[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Open connections by id, for shutdown.
pub(crate) type ConnMap = HashMap<u64, TcpStream>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = time::OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
