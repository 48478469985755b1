//! Shared helpers for the integration tests: an emulator with seeded user statuses, and a raw
//! loopback server for responses the emulator does not give.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use intune_user_status::{Client, ClientBuilder, RetryPolicy};
use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};

pub const TOKEN: &str = "test-token-6f1c2e";

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
pub fn builder(base_url: &str) -> ClientBuilder {
    Client::builder()
        .base_url(base_url)
        .access_token(TOKEN)
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(10)))
}

pub fn client(base_url: &str) -> Client {
    builder(base_url).build().expect("client")
}

/// A loopback server that answers every request with `response` (raw HTTP bytes) on kept-alive
/// connections, and counts the connections it accepted.
pub struct RawServer {
    pub base_url: String,
    pub connections: Arc<AtomicUsize>,
}

impl RawServer {
    pub fn start(response: Vec<u8>) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let response: Arc<[u8]> = response.into();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = Arc::clone(&response);
                std::thread::spawn(move || serve(stream, &response));
            }
        });
        RawServer {
            base_url,
            connections,
        }
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

fn serve(stream: TcpStream, response: &[u8]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
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
        if reader.read_exact(&mut body).is_err() || writer.write_all(response).is_err() {
            return;
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
