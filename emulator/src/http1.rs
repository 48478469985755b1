//! HTTP/1.1 framing: reading one request (head, `Expect: 100-continue`,
//! Content-Length and chunked bodies, with size limits) and encoding one
//! response.

use std::io::{self, Read, Write};

use crate::message::{Request, RequestIds, Response, http_date};
use crate::tls::Stream;

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 128;

/// Why reading a request failed.
pub(crate) enum ReadError {
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
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    buf: Vec<u8>,
}

impl Conn {
    /// A connection with an empty read buffer.
    pub(crate) fn new(stream: Stream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

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

/// Reads one request; `Ok(None)` on a clean EOF between requests.
pub(crate) fn read_request(conn: &mut Conn) -> Result<Option<Request>, ReadError> {
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
                        received: std::time::Instant::now(),
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
    request.received = std::time::Instant::now();
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
        424 => "Failed Dependency",
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
pub(crate) fn write_response(
    stream: &mut Stream,
    response: Response,
    ids: &RequestIds,
    close: bool,
    minor: u8,
) -> io::Result<()> {
    // RFC 9110 §8.6: no Content-Length on 204.
    let length = (response.status != 204).then_some(response.body.len());
    let mut bytes = encode_head(&response, ids, close, minor, length);
    bytes.extend_from_slice(&response.body);
    stream.write_all(&bytes)?;
    stream.flush()
}

/// The status line and headers of `response` (its body is not included),
/// with the per-response headers added. `content_length` is sent as given,
/// so faults can announce a length other than the body's.
pub(crate) fn encode_head(
    response: &Response,
    ids: &RequestIds,
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
    push("request-id", &ids.request_id);
    push("client-request-id", &ids.client_request_id);
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
