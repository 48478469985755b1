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
//!
//! # Faults and throttling
//!
//! To test a client's retry, timeout and redirect handling, the emulator
//! misbehaves on demand. A [`FaultRule`] pairs a [`Fault`] (an error status
//! with any `Retry-After`, latency, no answer, a stall after the headers, a
//! trickled body, a TCP reset or close, a write applied and its answer lost,
//! a truncated, HTML or oversized body, a redirect) with a [`Scope`] (the next N matching requests, a repeatable
//! share of them, or all) and optional method and path filters. Rules are
//! checked in order, after the request is recorded, so the request log shows
//! every attempt. [`Config::throttle_writes`] adds Intune-like throttling of
//! writes over a sliding window.
//!
//! ```no_run
//! use std::time::Duration;
//! use ius_emulator::{Config, Emulator, Fault, FaultRule};
//!
//! let emu = Emulator::start(Config {
//!     faults: vec![FaultRule::next(2, Fault::Status { status: 503, retry_after: Some("1".into()) })],
//!     throttle_writes: Some((100, Duration::from_secs(20))),
//!     ..Config::default()
//! })?;
//! emu.add_fault(FaultRule::share(0.1, Fault::Reset).method("PATCH"));
//! // ... run the client; then inspect emu.requests(), emu.throttled_count(),
//! // emu.connections_accepted() ...
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The same is available at run time, without auth and unrecorded:
//! `POST /_emulator/faults` with a rule as JSON (see
//! [`FaultRule::from_json`]), e.g.
//! `{"fault":"status","status":503,"retryAfter":"2.5","count":2}` or
//! `{"fault":"latency","ms":200,"share":0.5}` (400 naming the problem if it
//! is invalid); `DELETE /_emulator/faults` clears the rules; and
//! `GET /_emulator/stats` answers
//! `{"connectionsAccepted":N,"connectionsClosed":N,"throttled":N,"requests":N,...}` (`requests`
//! counts the requests inside batches too). The binary takes
//! `--fault JSON` (repeatable), `--throttle-writes 100/20s` (also `10/1s`,
//! `5/500ms`) and `--throttle-no-retry-after`.
//!
//! # Batching and paging
//!
//! `POST /{version}/$batch` follows Graph's JSON batching rules (at most 20
//! requests, ids unique without regard to case, relative `url`s,
//! `Content-Type` with a body, `dependsOn` with `424`); `src/batch.rs` lists
//! every rule. Each inner request runs like a direct one:
//! recorded (marked with [`RecordedRequest::batch`]), matched by fault
//! rules on its own method and path, authenticated, counted by the write
//! throttle, handled. An inner `429` carries `Retry-After` in its own
//! `headers` while the batch answers `200`. A fault rule with
//! `path_contains("/$batch")` targets the envelope itself.
//! [`Emulator::wire_requests`] and [`Emulator::batch_items`] split the log;
//! [`Config::batch_shuffle_seed`] shuffles the responses repeatably.
//!
//! Collections answer in pages of [`Config::page_size`] (default 100) with
//! an absolute `@odata.nextLink` carrying `$skiptoken` (and the other query
//! options); [`Config::next_link_base`] makes that link point at another
//! host. `$top=N` sets the page size; `$select=a,b` keeps only those
//! properties (also on a single GET); `$filter` takes `property eq|ne
//! literal` comparisons joined by `and` (a `'string'`, an integer or
//! `null`); anything else in `$filter`, and unknown property names, are
//! `400` saying so. Other query options are ignored. [`Config::latency`]
//! adds a fixed delay to every request on the wire (a batch once).
//!
//! # App-only tokens
//!
//! On the same port, `POST /{tenant}/oauth2/v2.0/token` fakes the Microsoft
//! identity platform's token endpoint for OAuth2 client credentials, with a
//! client secret or a client assertion (a JWT signed by the app's
//! certificate, verified like Entra ID does). Apps are registered in
//! [`Config::apps`]; [`Config::expected_scope`] is the one scope accepted
//! (set `https://graph.microsoft.us/.default` to test a national cloud) and
//! [`Config::token_lifetime`] the lifetime of issued tokens. Once an app is
//! registered (and no static [`Config::token`] is set) Graph accepts only
//! tokens issued here, answering `401` to unknown ones and to expired ones
//! ([`Emulator::expire_issued_tokens`] forces that). Errors are shaped like
//! Entra ID's (`error`, `error_description` with an `AADSTSnnnn` code,
//! `error_codes`, `trace_id`, `correlation_id`, ...); the [`identity`]
//! module lists the codes used and the checks made on client assertions. Token requests are logged
//! apart from Graph requests ([`Emulator::token_requests`]); fault rules with
//! a path filter (e.g. [`FaultRule::path_contains`]`("/oauth2/")`) apply to
//! them too.
//!
//! ```no_run
//! use ius_emulator::{App, Config, Emulator};
//!
//! let emu = Emulator::start(Config {
//!     apps: vec![App {
//!         tenant: "contoso.onmicrosoft.com".into(),
//!         client_id: "11111111-1111-1111-1111-111111111111".into(),
//!         secret: Some("test-only-secret".into()),
//!         certificate_pem: None,
//!     }],
//!     ..Config::default()
//! })?;
//! let token_url = format!("{}/contoso.onmicrosoft.com/oauth2/v2.0/token", emu.base_url());
//! // ... the client gets a token from `token_url`, then calls Graph with it ...
//! assert_eq!(emu.issued_tokens(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The binary takes `--app TENANT:CLIENT_ID:SECRET` and
//! `--app-cert TENANT:CLIENT_ID:CERT_PEM_FILE` (both repeatable),
//! `--token-lifetime SECS` and `--scope SCOPE`; admin endpoints
//! `GET`/`DELETE /_emulator/token-requests` and `POST /_emulator/tokens/expire`.
//!
//! # Managed identity and workload identity federation
//!
//! With [`Config::managed_identity`] (binary: `--managed-identity`) the
//! emulator also serves the three managed-identity endpoints a machine may
//! have: IMDS at `/metadata/identity/oauth2/token` (point
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST` at the emulator's URL), App Service's
//! at `/msi/token` and Azure Arc's at `/arc/metadata/identity/oauth2/token`
//! (point `IDENTITY_ENDPOINT` there, with `IDENTITY_HEADER` or
//! `IMDS_ENDPOINT`). Each checks its `api-version`, headers, `resource` and
//! identity parameters exactly; Arc's challenge hands out key files it writes
//! into [`ManagedIdentity::arc_tokens_folder`]; the [`managed_identity`]
//! module lists every rule. The tokens they issue are Graph's like those of
//! the token endpoint. Fault rules with a path filter (e.g.
//! `path_contains("/metadata/identity/")`) make them answer 410, 500 or 429
//! on demand.
//!
//! [`Config::federated_credentials`] (binary: `--federated
//! TENANT:CLIENT_ID:SUBJECT`) registers an app's federated identity
//! credentials: the token endpoint then exchanges a platform token from that
//! issuer about that subject (`client_assertion`, workload identity
//! federation) for an access token. The emulator is the issuer:
//! [`Emulator::mint_federated_token`] (or `POST /_emulator/federated-tokens`
//! with `{"subject","issuer"?,"lifetimeSecs"?}`) makes the token a platform
//! would write to `AZURE_FEDERATED_TOKEN_FILE`; [`federated`] lists the
//! checks.
//!
//! ```no_run
//! use ius_emulator::{Config, Emulator, FederatedCredential, ManagedIdentity};
//!
//! let emu = Emulator::start(Config {
//!     managed_identity: Some(ManagedIdentity::default()),
//!     federated_credentials: vec![FederatedCredential {
//!         tenant: "contoso.onmicrosoft.com".into(),
//!         client_id: "11111111-1111-1111-1111-111111111111".into(),
//!         issuer: "https://oidc.example".into(),
//!         subject: "system:serviceaccount:agents:intune".into(),
//!     }],
//!     ..Config::default()
//! })?;
//! // IMDS: AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.base_url()
//! let token = emu.mint_federated_token(
//!     "https://oidc.example",
//!     "system:serviceaccount:agents:intune",
//!     std::time::Duration::from_secs(3600),
//! );
//! // ... write `token` to the client's AZURE_FEDERATED_TOKEN_FILE ...
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # HTTPS
//!
//! With [`Config::tls`] (binary: `--tls-cert FILE --tls-key FILE`) the
//! emulator serves HTTPS only (rustls, ring provider); [`Emulator::base_url`]
//! and the binary's first line then say `https://`. Every fault works over
//! TLS too: faults write through the TLS session, and socket-level ones
//! (reset, close) act on the TCP connection underneath, so the client sees
//! the connection die without a TLS `close_notify`.
//!
//! # Written apart from the SDK
//!
//! The emulator shares no code with the `intune-user-status` SDK, on
//! purpose: a test double must not share code with what it tests, or a
//! mistake in the shared part would pass both sides. It follows Graph's
//! documentation, not the SDK.
//!
//! # Layers
//!
//! Each module imports only modules below it. On top, [`command_line`] turns
//! flags into a [`Config`] for the `ius-emulator` program and `ius emulator`.
//! `server` (with `http1` and `tls`) reads requests and calls a handler; `dispatch` is that handler:
//! it records the request, applies `faults`, and routes to `admin`,
//! `identity` (the token endpoint), `managed_identity` (IMDS, App Service,
//! Azure Arc; it issues `identity`'s tokens), `batch` or `graph` (which has
//! its own `handlers`, `query`, `validation` and `throttle`). `batch` gets
//! each inner request run by a callback from `dispatch`, so it needs nothing
//! above it. At the bottom sit the leaves: `message` (requests and
//! responses), `odata` (Graph error bodies and wire conventions), `log`,
//! `router`, `store`, `federated` (the OIDC issuer of workload identity
//! federation) and `sync` (the lock helper and the stop signal).
#![warn(missing_docs)]

mod admin;
mod batch;
pub mod command_line;
mod dispatch;
mod faults;
pub mod federated;
mod graph;
mod http1;
pub mod identity;
mod log;
pub mod managed_identity;
mod message;
mod odata;
mod router;
mod server;
mod store;
mod sync;
mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use faults::{Fault, FaultRule, Scope};
pub use federated::FederatedCredential;
pub use graph::PatchReturns;
pub use identity::App;
pub use log::{BatchItem, RecordedRequest};
pub use managed_identity::{ManagedIdentity, UserAssignedIdentity};
pub use tls::TlsIdentity;

use batch::ResponseOrder;
use dispatch::Dispatcher;
use faults::FaultPlan;
use graph::{Graph, Paging};
use identity::Identity;
use log::RequestLog;
use managed_identity::ManagedIdentities;
use message::Origin;
use server::Server;
use sync::StopSignal;

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
    /// Fault rules active from the start, checked in order (more can be
    /// added with [`Emulator::add_fault`] or `POST /_emulator/faults`).
    pub faults: Vec<FaultRule>,
    /// Write throttling like Intune's: at most `limit` PATCH/POST/PUT/DELETE
    /// requests per sliding `window`; the rest are answered `429`.
    /// `None` (the default) never throttles.
    pub throttle_writes: Option<(u32, Duration)>,
    /// Whether throttled answers carry `Retry-After` (whole seconds until a
    /// slot frees). Default `true`; Intune often omits it.
    pub throttle_retry_after: bool,
    /// Apps the token endpoint (`POST /{tenant}/oauth2/v2.0/token`) issues
    /// tokens to. When any is registered and [`Config::token`] is `None`,
    /// Graph accepts only tokens issued here.
    pub apps: Vec<App>,
    /// Lifetime of issued access tokens (`expires_in`). Default 3599 s.
    pub token_lifetime: Duration,
    /// The only `scope` the token endpoint accepts. Default
    /// `https://graph.microsoft.com/.default`; national cloud tests set
    /// e.g. `https://graph.microsoft.us/.default`. The managed-identity
    /// endpoints accept this without `/.default` as their `resource`.
    pub expected_scope: String,
    /// Serve the managed-identity endpoints (IMDS, App Service, Azure Arc)
    /// for these identities; `None` (the default) serves none. Graph then
    /// accepts only issued tokens (unless [`Config::token`] is set).
    /// Binary: `--managed-identity` and the flags after it.
    pub managed_identity: Option<ManagedIdentity>,
    /// Federated identity credentials of apps (workload identity
    /// federation); an app with only these is registered by them. Binary:
    /// `--federated TENANT:CLIENT_ID:SUBJECT` (issuer
    /// [`federated::DEFAULT_ISSUER`]).
    pub federated_credentials: Vec<FederatedCredential>,
    /// Serve HTTPS with this identity instead of plain HTTP. Default `None`.
    pub tls: Option<TlsIdentity>,
    /// Shuffle the responses of every `$batch` with a PRNG seeded by this
    /// (the same seed gives the same orders, batch after batch); `None`
    /// (the default) lists them in input order. Binary:
    /// `--batch-shuffle-seed N`.
    pub batch_shuffle_seed: Option<u64>,
    /// How many entities a collection GET answers per page when the client
    /// gives no `$top`. Default 100; 0 is taken as 1. Binary: `--page-size N`.
    pub page_size: usize,
    /// The `scheme://host[:port]` that `@odata.nextLink` starts with;
    /// `None` (the default) uses the host the client addressed. Set it to
    /// another host to test that a client refuses a foreign link. Binary:
    /// `--next-link-base URL`.
    pub next_link_base: Option<String>,
    /// Added to every request received on the wire (Graph and token
    /// requests, a `$batch` envelope once), after it is recorded and
    /// before faults and handlers; e.g. 50 ms for a benchmark. A
    /// [`Fault::Latency`] rule adds to each request it matches instead,
    /// including every request inside a batch. Default zero. Binary:
    /// `--latency 50ms`.
    pub latency: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            patch_returns: PatchReturns::NoContent,
            seed: Vec::new(),
            faults: Vec::new(),
            throttle_writes: None,
            throttle_retry_after: true,
            apps: Vec::new(),
            token_lifetime: Duration::from_secs(3599),
            expected_scope: "https://graph.microsoft.com/.default".to_owned(),
            managed_identity: None,
            federated_credentials: Vec::new(),
            tls: None,
            batch_shuffle_seed: None,
            page_size: 100,
            next_link_base: None,
            latency: Duration::ZERO,
        }
    }
}

/// A running emulator. Dropping it (or calling [`Emulator::shutdown`])
/// stops it.
pub struct Emulator {
    dispatcher: Arc<Dispatcher>,
    addr: SocketAddr,
    server: Server,
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
    /// Fails with `InvalidInput` if a seed entry, an app's certificate or
    /// the TLS identity is invalid, and with the I/O error if Azure Arc's
    /// tokens folder cannot be created.
    pub fn start(config: Config) -> std::io::Result<Emulator> {
        let invalid = |what: &str, e: String| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
        };
        let identity = Identity::new(
            config.apps,
            config.federated_credentials,
            config.managed_identity.is_some(),
            config.token_lifetime,
            config.expected_scope,
        )
        .map_err(|e| invalid("apps", e))?;
        let managed = ManagedIdentities::new(config.managed_identity)?;
        let tls = config
            .tls
            .as_ref()
            .map(tls::tls_config)
            .transpose()
            .map_err(|e| invalid("tls", e))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let graph = Graph::new(
            config.token,
            config.patch_returns,
            config.throttle_writes,
            config.throttle_retry_after,
            Paging {
                page_size: config.page_size,
                next_link_base: config.next_link_base,
            },
        );
        for entry in config.seed {
            graph
                .insert(&entry.collection, entry.entity)
                .map_err(|e| invalid("seed", e))?;
        }
        let stop = StopSignal::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let connections_closed = Arc::new(AtomicUsize::new(0));
        let dispatcher = Arc::new(Dispatcher {
            log: RequestLog::default(),
            faults: FaultPlan::new(config.faults),
            graph,
            identity,
            managed,
            origin: Origin {
                scheme,
                bound_url: base_url_of(scheme, addr),
            },
            stop: stop.clone(),
            connections: Arc::clone(&connections),
            connections_closed: Arc::clone(&connections_closed),
            latency: config.latency,
            batch_order: ResponseOrder::new(config.batch_shuffle_seed),
        });
        let handler: Arc<dyn server::Handler> = dispatcher.clone();
        let server = Server::start(
            listener,
            tls,
            handler,
            stop,
            (connections, connections_closed),
        )?;
        Ok(Emulator {
            dispatcher,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://...` when serving TLS (no
    /// version segment).
    pub fn base_url(&self) -> String {
        self.dispatcher.origin.bound_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every Graph request received so far, in arrival order (admin requests
    /// under `/_emulator/` are not recorded). Each request a `$batch`
    /// carried that ran is recorded after its envelope, marked with
    /// [`RecordedRequest::batch`].
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.dispatcher.log.snapshot()
    }

    /// The Graph requests received on the wire: [`Emulator::requests`]
    /// without the requests inside batches (envelopes included).
    pub fn wire_requests(&self) -> Vec<RecordedRequest> {
        self.dispatcher.log.filtered(|r| r.batch.is_none())
    }

    /// The requests that came inside `$batch` envelopes and ran, in the
    /// order they ran (see [`BatchItem`] for their id and envelope).
    pub fn batch_items(&self) -> Vec<RecordedRequest> {
        self.dispatcher.log.filtered(|r| r.batch.is_some())
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.dispatcher.log.clear();
    }

    /// The stored user status `id` (plain, not percent-encoded) in
    /// `collection` (as in [`SeedEntry::collection`]), as Graph would
    /// serialize it (without `@odata.context`).
    pub fn user_status(&self, collection: &str, id: &str) -> Option<serde_json::Value> {
        self.dispatcher.graph.user_status(collection, id)
    }

    /// Adds a user status to `collection`, validated like a POST body.
    /// Fails with a message on an invalid collection, entity or a taken id.
    pub fn insert_user_status(
        &self,
        collection: &str,
        entity: serde_json::Value,
    ) -> Result<(), String> {
        self.dispatcher.graph.insert(collection, entity)
    }

    /// Every token request received so far (`/{tenant}/oauth2/v2.0/token`),
    /// in arrival order. They are kept apart from [`Emulator::requests`] so
    /// Graph request counts do not depend on how a client got its token.
    pub fn token_requests(&self) -> Vec<RecordedRequest> {
        self.dispatcher.identity.log.snapshot()
    }

    /// Forgets the recorded token requests.
    pub fn clear_token_requests(&self) {
        self.dispatcher.identity.log.clear();
    }

    /// How many access tokens the token endpoint issued so far (expired ones
    /// included).
    pub fn issued_tokens(&self) -> usize {
        self.dispatcher.identity.issued_count()
    }

    /// Makes every access token issued so far expired, so Graph answers
    /// `401` "Lifetime validation failed, the token is expired." to it.
    /// Tokens issued afterwards are unaffected.
    pub fn expire_issued_tokens(&self) {
        self.dispatcher.identity.expire_all();
    }

    /// A platform token (workload identity federation) from `issuer` about
    /// `subject`, valid for `lifetime`: what Kubernetes or GitHub Actions
    /// would write to the client's `AZURE_FEDERATED_TOKEN_FILE`. The token
    /// endpoint exchanges it for an access token when an app has a
    /// [`FederatedCredential`] with this issuer and subject.
    pub fn mint_federated_token(&self, issuer: &str, subject: &str, lifetime: Duration) -> String {
        self.dispatcher
            .identity
            .federated
            .mint(issuer, subject, lifetime)
    }

    /// Makes Azure Arc's challenge name `realm` (any path) instead of a key
    /// file it writes, to test that a client refuses a path outside the
    /// agent's tokens folder; `None` goes back to writing key files.
    pub fn set_arc_challenge_realm(&self, realm: Option<&str>) {
        self.dispatcher
            .managed
            .set_arc_realm(realm.map(str::to_owned));
    }

    /// Appends a fault rule to the plan (rules are checked in order; the
    /// first that matches a request and still has count left applies).
    pub fn add_fault(&self, rule: FaultRule) {
        self.dispatcher.faults.add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.dispatcher.faults.clear();
    }

    /// How many requests the write throttle answered `429` so far.
    pub fn throttled_count(&self) -> usize {
        self.dispatcher.graph.throttled_count()
    }

    /// How many TCP connections were accepted so far (the internal wake-up
    /// connection made by shutdown is not counted). Lets tests check that a
    /// client reused a connection, or did not reuse a broken one.
    pub fn connections_accepted(&self) -> usize {
        self.dispatcher.connections.load(Ordering::SeqCst)
    }

    /// How many of the accepted connections have ended so far (the client closed or shut it
    /// down, or a fault ended it). Lets tests check that a client abandoned a connection.
    pub fn connections_closed(&self) -> usize {
        self.dispatcher.connections_closed.load(Ordering::SeqCst)
    }

    /// Stops accepting, shuts open connections down and joins every thread.
    pub fn shutdown(mut self) {
        self.server.stop();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// `scheme://ip:port`, with loopback in place of an unspecified address.
fn base_url_of(scheme: &str, addr: SocketAddr) -> String {
    let mut shown = addr;
    if shown.ip().is_unspecified() {
        shown.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{scheme}://{shown}")
}
