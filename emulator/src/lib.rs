//! A stateful fake of Microsoft Graph's `deviceConfigurationUserStatus`
//! endpoints, for offline tests.
//!
//! The emulator is a small HTTP/1.1 server on loopback. It serves the 15
//! `userStatuses` collections of `/beta` (route 1 also under `/v1.0`) with
//! Graph's JSON shapes, validation, errors and headers, keeps the data in
//! memory, and records every request it receives so tests can assert on
//! exactly what a client sent.
//!
//! ```no_run
//! use ius_emulator::{Config, Emulator};
//!
//! let emu = Emulator::start(Config::default())?;
//! let url = format!(
//!     "{}/beta/deviceManagement/deviceConfigurations/c1/userStatuses",
//!     emu.base_url()
//! );
//! // ... point a client at `url` with `Authorization: Bearer anything` ...
//! assert!(emu.requests().is_empty());
//! emu.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

mod graph;
mod log;
mod router;
mod server;
mod store;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use log::RecordedRequest;

use log::RequestLog;
use server::lock;
use store::Store;

/// What a successful PATCH answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatchReturns {
    /// `204 No Content`, as real Intune does.
    #[default]
    NoContent,
    /// `200 OK` with the full updated entity.
    Ok,
}

/// One user status to load at start-up.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SeedEntry {
    /// The collection path without version prefix, ids percent-encoded as in
    /// a URL, e.g. `/deviceManagement/deviceConfigurations/c1/userStatuses`.
    pub collection: String,
    /// The entity, validated like a POST body (absent properties get defaults).
    pub entity: serde_json::Value,
}

/// How to run an [`Emulator`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The only bearer token accepted; `None` accepts any non-empty token.
    pub token: Option<String>,
    /// What a successful PATCH answers.
    pub patch_returns: PatchReturns,
    /// User statuses present from the start.
    pub seed: Vec<SeedEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            patch_returns: PatchReturns::NoContent,
            seed: Vec::new(),
        }
    }
}

/// State shared by the accept thread, the connection threads and the handle.
pub(crate) struct Shared {
    pub(crate) token: Option<String>,
    pub(crate) patch_returns: PatchReturns,
    pub(crate) store: Mutex<Store>,
    pub(crate) log: RequestLog,
    pub(crate) stopping: AtomicBool,
    pub(crate) conns: Mutex<server::ConnMap>,
    /// `http://ip:port`, used when a request has no Host header.
    pub(crate) base_url: String,
}

/// A running emulator. Dropping it (or calling [`Emulator::shutdown`])
/// stops it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `config.listen`, loads the seed and starts serving on a
    /// background thread; returns at once.
    ///
    /// Fails with `InvalidInput` if a seed entry is invalid.
    pub fn start(config: Config) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: config.token,
            patch_returns: config.patch_returns,
            store: Mutex::new(Store::default()),
            log: RequestLog::default(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Default::default()),
            base_url: base_url_of(addr),
        });
        for entry in config.seed {
            insert(&shared, &entry.collection, entry.entity).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("seed: {e}"))
            })?;
        }
        let accept = server::spawn_accept(listener, Arc::clone(&shared))?;
        Ok(Emulator {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` (no version segment).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every Graph request received so far, in arrival order (admin requests
    /// under `/_emulator/` are not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// The stored user status `id` (plain, not percent-encoded) in
    /// `collection` (as in [`SeedEntry::collection`]), as Graph would
    /// serialize it (without `@odata.context`).
    pub fn user_status(&self, collection: &str, id: &str) -> Option<serde_json::Value> {
        let key = router::collection_key(collection).ok()?;
        lock(&self.shared.store).get(&key, id).map(|e| e.to_value())
    }

    /// Adds a user status to `collection`, validated like a POST body.
    /// Fails with a message on an invalid collection, entity or a taken id.
    pub fn insert_user_status(
        &self,
        collection: &str,
        entity: serde_json::Value,
    ) -> Result<(), String> {
        insert(&self.shared, collection, entity)
    }

    /// Stops accepting, shuts open connections down and joins every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // If the wake-up connection fails the accept thread could block
        // forever, so it is left detached rather than joined.
        if server::wake(self.addr) {
            let _ = accept.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn insert(shared: &Shared, collection: &str, entity: serde_json::Value) -> Result<(), String> {
    let key = router::collection_key(collection)?;
    let entity = graph::new_entity(graph::validate(entity)?);
    let id = entity.id.clone();
    lock(&shared.store)
        .insert(&key, entity)
        .map_err(|_| format!("a user status with id '{id}' already exists in '{collection}'"))
}

/// `http://ip:port`, with loopback in place of an unspecified address.
fn base_url_of(addr: SocketAddr) -> String {
    let mut shown = addr;
    if shown.ip().is_unspecified() {
        shown.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{shown}")
}
