//! Shared helpers for the integration tests: an emulator with seeded user statuses, a raw
//! loopback server for responses the emulator does not give, the identity tests' update, threads,
//! scratch folders and log capture.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use intune_user_status::{Client, ClientBuilder, Error, RetryPolicy, Target, UserStatusPatch};
use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};

pub const TOKEN: &str = "test-token-6f1c2e";

/// The test CA that signed every test server certificate.
pub const TEST_CA: &str = include_str!("../../emulator/tests/fixtures/test-only-ca.pem");

/// A TLS identity for `graph.proxied.test` and `login.proxied.test`, signed by [`TEST_CA`].
pub fn proxied_tls() -> ius_emulator::TlsIdentity {
    ius_emulator::TlsIdentity {
        certificate_chain_pem: include_str!("../fixtures/test-only-proxied-cert.pem").to_owned(),
        private_key_pem: include_str!("../fixtures/test-only-proxied-key.pem").to_owned(),
    }
}

/// `https://{name}:{port}` for an emulator serving [`proxied_tls`], reached through [`TunnelProxy`].
pub fn proxied_url(name: &str, emulator: &Emulator) -> String {
    format!("https://{name}:{}", emulator.addr().port())
}

/// An emulator that accepts only [`TOKEN`], with one user status `u1` in each of `collections`.
pub fn emulator(patch_returns: PatchReturns, collections: &[&str]) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        patch_returns,
        seed: collections
            .iter()
            .map(|collection| SeedEntry {
                collection: (*collection).to_owned(),
                entity: serde_json::json!({"id": "u1", "userDisplayName": "User One"}),
            })
            .collect(),
        ..Config::default()
    })
    .expect("start emulator")
}

/// A builder pointed at `base_url` with [`TOKEN`], and backoff shortened to 10 ms so retries
/// keep tests fast (the default policy's retry count is kept).
/// An emulator accepting [`TOKEN`], with a user status of `devicesCount` 0 for each of `ids`
/// under configuration `c1` (the outbox suites' target).
pub fn emulator_with_statuses<I: AsRef<str>>(ids: impl IntoIterator<Item = I>) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: ids
            .into_iter()
            .map(|id| SeedEntry {
                collection: "/deviceManagement/deviceConfigurations/c1/userStatuses".into(),
                entity: serde_json::json!({ "id": id.as_ref(), "devicesCount": 0 }),
            })
            .collect(),
        ..Config::default()
    })
    .expect("start emulator")
}

/// A fresh, empty folder for one test's files: `ius-{suite}-{pid}-{name}` in the temp folder.
pub fn fresh_folder(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn builder(base_url: &str) -> ClientBuilder {
    Client::builder()
        .base_url(base_url)
        .access_token(TOKEN)
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(10)))
}

pub fn client(base_url: &str) -> Client {
    builder(base_url).build().expect("client")
}

/// User status `u1` under each of the configurations `cfg-0` .. `cfg-7`, for [`update`].
pub fn eight_statuses() -> Vec<SeedEntry> {
    (0..8)
        .map(|t| SeedEntry {
            collection: format!("/deviceManagement/deviceConfigurations/cfg-{t}/userStatuses"),
            entity: serde_json::json!({"id": "u1"}),
        })
        .collect()
}

/// Sets `devicesCount` of user status `u1` under configuration `cfg-{config}` (of
/// [`eight_statuses`]).
pub fn update(client: &Client, config: usize, count: i32) -> Result<(), Error> {
    client
        .update_user_status(
            &Target::new(format!("cfg-{config}"), "u1"),
            &UserStatusPatch::new().devices_count(count),
        )
        .map(drop)
}

/// Eight threads sharing `client` (thread `t` writes `cfg-t`), `per_thread` updates each.
pub fn updates_from_eight_threads(client: &Client, per_thread: usize) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            scope.spawn(move || {
                for n in 0..per_thread {
                    update(client, t, n as i32 + 1).unwrap();
                }
            });
        }
    });
}

/// A folder of its own under the temporary folder (`ius-{name}-{pid}`), removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("ius-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A token provider that hands out a new token after each invalidation, as a revoked token is
/// replaced: `TOKEN` followed by how many were invalidated.
#[derive(Default)]
pub struct Rotating(std::sync::atomic::AtomicU32);

impl intune_user_status::TokenProvider for Rotating {
    fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
        let n = self.0.load(std::sync::atomic::Ordering::SeqCst);
        Ok(intune_user_status::AccessToken::new(format!("{TOKEN}{n}")))
    }
    fn invalidate(&self, _: &intune_user_status::AccessToken) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A token source that gives the emulator's token `good` times, then fails for good (a sealed
/// vault, a rotated secret), counting every call in `calls`.
pub struct TokenThenNone {
    pub good: usize,
    pub calls: Arc<AtomicUsize>,
}

impl intune_user_status::TokenProvider for TokenThenNone {
    fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.good {
            Ok(intune_user_status::AccessToken::new(TOKEN))
        } else {
            Err(intune_user_status::AuthError::new("no token: the token source failed").into())
        }
    }
}

/// Every log record of the process once [`capture_logs`] installed it (a process has one
/// logger, so the secrecy tests capture whole runs).
pub struct LogCapture(Mutex<Vec<String>>);

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

impl LogCapture {
    /// Every message so far, one per line, each after its level (`WARN ...`).
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

static LOGS: LogCapture = LogCapture(Mutex::new(Vec::new()));

/// Installs the capture as the process's logger at trace level (once) and returns it.
pub fn capture_logs() -> &'static LogCapture {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGS).expect("no other logger in this test process");
        log::set_max_level(log::LevelFilter::Trace);
    });
    &LOGS
}

/// A loopback server that answers every request with `response` (raw HTTP bytes) on kept-alive
/// connections, counts the connections it accepted and keeps each request's line and body.
pub struct RawServer {
    pub base_url: String,
    pub connections: Arc<AtomicUsize>,
    received: Arc<RequestLog>,
}

/// What a [`RawServer`] received: each request's line and body.
type RequestLog = std::sync::Mutex<Vec<(String, Vec<u8>)>>;

impl RawServer {
    pub fn start(response: Vec<u8>) -> RawServer {
        RawServer::start_with(|_| response)
    }

    /// [`start`](Self::start) with a response that may name the server's own base URL.
    pub fn start_with(response: impl FnOnce(&str) -> Vec<u8>) -> RawServer {
        RawServer::start_paced(response, None)
    }

    /// [`start`](Self::start), writing the response in pieces of `piece` bytes with `gap`
    /// between them, as a slow network delivers it.
    pub fn start_trickled(response: Vec<u8>, piece: usize, gap: Duration) -> RawServer {
        RawServer::start_paced(|_| response, Some((piece, gap)))
    }

    fn start_paced(
        response: impl FnOnce(&str) -> Vec<u8>,
        pace: Option<(usize, Duration)>,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let response: Arc<[u8]> = response(&base_url).into();
        let received = Arc::default();
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = Arc::clone(&response);
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &response, &log, pace));
            }
        });
        RawServer {
            base_url,
            connections,
            received,
        }
    }

    /// Every request received so far: its request line (without CRLF) and its body.
    pub fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A full HTTP/1.1 response with a Content-Length.
pub fn http_response(status_line: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn serve(stream: TcpStream, response: &[u8], log: &RequestLog, pace: Option<(usize, Duration)>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        let mut request_line = None;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) if request_line.is_none() => {
                    request_line = Some(line.trim_end().to_owned());
                }
                Ok(_) => {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock()
            .unwrap()
            .push((request_line.unwrap_or_default(), body));
        let (piece, gap) = pace.unwrap_or((response.len().max(1), Duration::ZERO));
        // Each piece leaves on its own, not held back until the last is acknowledged.
        let _ = writer.set_nodelay(pace.is_some());
        for (at, bytes) in response.chunks(piece).enumerate() {
            if at > 0 {
                std::thread::sleep(gap);
            }
            if writer
                .write_all(bytes)
                .and_then(|()| writer.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

/// A loopback listener that accepts connections and never answers.
pub fn silent_server() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        format!("http://{}", listener.local_addr().unwrap()),
        listener,
    )
}

/// A loopback HTTP proxy that tunnels `CONNECT` requests and records each request head it sees
/// (request line and `Proxy-Authorization`), so tests can prove traffic went through it, and
/// every byte it carried either way, so they can prove what it never saw. Hosts
/// under the reserved `.test` domain are tunnelled to loopback: loopback itself never goes
/// through a proxy, so the proxy tests name their servers e.g. `graph.proxied.test`.
pub struct TunnelProxy {
    pub url: String,
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    carried: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl TunnelProxy {
    pub fn start() -> TunnelProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let carried = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, bytes) = (Arc::clone(&seen), Arc::clone(&carried));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (log, bytes) = (Arc::clone(&log), Arc::clone(&bytes));
                std::thread::spawn(move || tunnel(client, &log, bytes));
            }
        });
        TunnelProxy { url, seen, carried }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Every byte the proxy received or sent, heads and tunnels, both directions, in arrival
    /// order per direction.
    pub fn carried(&self) -> Vec<u8> {
        self.carried.lock().unwrap().clone()
    }
}

/// Copies `from` to `to` until either closes, appending what passes to `carried`.
fn relay(mut from: TcpStream, mut to: TcpStream, carried: &std::sync::Mutex<Vec<u8>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                carried.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn tunnel(
    client: TcpStream,
    log: &std::sync::Mutex<Vec<String>>,
    carried: Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let Ok(mut writer) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    let mut head = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        carried.lock().unwrap().extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
        let keep = line.trim_end().to_owned();
        if head.is_empty() || keep.to_ascii_lowercase().starts_with("proxy-authorization") {
            head.push(keep);
        }
    }
    log.lock().unwrap().push(head.join(" | "));
    let Some(target) = head[0]
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
    else {
        let _ = writer.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let target = match target.rsplit_once(':') {
        Some((host, port)) if host.ends_with(".test") => format!("127.0.0.1:{port}"),
        _ => target.to_owned(),
    };
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = writer.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = writer.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let (Ok(up_reader), Ok(mut up_writer)) = (upstream.try_clone(), upstream.try_clone()) else {
        return;
    };
    let buffered = reader.buffer().to_vec();
    carried.lock().unwrap().extend_from_slice(&buffered);
    let _ = up_writer.write_all(&buffered);
    let client_reader = reader.into_inner();
    let back = Arc::clone(&carried);
    std::thread::spawn(move || relay(up_reader, writer, &back));
    relay(client_reader, up_writer, &carried);
}

/// Waits (at most 10 s) until `condition` holds.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `call` on its own thread; once `blocked` holds (and a moment more, so the call is inside
/// its wait), runs `interrupt` and returns what the call returned and how long after the
/// interrupt it did.
pub fn interrupt_during<T: Send + 'static>(
    blocked: impl Fn() -> bool,
    interrupt: impl FnOnce(),
    call: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (done, outcome) = mpsc::channel();
    let worker = thread::spawn(move || done.send(call()).unwrap());
    wait_until("the call is blocked", blocked);
    thread::sleep(Duration::from_millis(200));
    let interrupted = Instant::now();
    interrupt();
    let value = outcome
        .recv_timeout(Duration::from_secs(20))
        .expect("the interrupted call returned");
    let took = interrupted.elapsed();
    worker.join().unwrap();
    (value, took)
}

/// The length of the body the server at `base_url` answers to a PATCH of `body` at `path` with
/// bearer `token`, read by a plain HTTP client (what the SDK's metrics count as received).
pub fn answer_bytes(base_url: &str, path: &str, token: &str, body: &str) -> u64 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .patch(format!("{base_url}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the server answers");
    response.body_mut().read_to_vec().expect("a body").len() as u64
}

/// Accepts every connection `listener` gets from now on and passes its bytes to and from `to`
/// (threads that end with their connections).
pub fn forward(listener: TcpListener, to: std::net::SocketAddr) {
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

/// A listener whose queue of connections is full and never accepted from: the kernel drops new
/// connection requests, so a connection attempt waits (its base URL and the queued streams).
#[cfg(unix)]
pub fn unanswered_listener() -> Option<(String, std::net::TcpListener, Vec<std::net::TcpStream>)> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a listening socket of ours; a backlog of 0 queues a single connection.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return Some((format!("http://{addr}"), listener, queued)),
        }
    }
    None
}

/// The C functions the Rust suites call as a C program does (the library is linked into every
/// test binary), declared once; handles are `*mut c_void` here.
pub mod c_abi {
    use std::ffi::{c_char, c_void};

    /// `ius_token_callback`.
    pub type TokenCallback =
        Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut i64) -> i32>;

    unsafe extern "C" {
        pub fn ius_client_new(
            config_json: *const c_char,
            out_client: *mut *mut c_void,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_client_new_with_token_callback(
            config_json: *const c_char,
            callback: TokenCallback,
            user_data: *mut c_void,
            out_client: *mut *mut c_void,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_client_free(client: *mut c_void);
        pub fn ius_client_interrupt(client: *const c_void);
        pub fn ius_update_user_statuses(
            client: *const c_void,
            items_json: *const c_char,
            out_results_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_outbox_open(
            client: *const c_void,
            path: *const c_char,
            options_json: *const c_char,
            out_outbox: *mut *mut c_void,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_outbox_flush(
            outbox: *mut c_void,
            out_report_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_outbox_take_failed(
            outbox: *mut c_void,
            out_failed_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        pub fn ius_outbox_interrupt(outbox: *mut c_void);
        pub fn ius_outbox_free(outbox: *mut c_void);
        pub fn ius_string_free(s: *mut c_char);
    }
}
