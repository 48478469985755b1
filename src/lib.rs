//! # intune-user-status
//!
//! A blocking Rust SDK, with a C ABI, for Microsoft Graph's **Update deviceConfigurationUserStatus**
//! (`PATCH .../deviceConfigurations/{id}/userStatuses/{id}`), on every documented path, in beta and
//! v1.0.
//!
//! ```no_run
//! use intune_user_status::{Client, ComplianceStatus, Target, UserStatusPatch};
//!
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080") // or .cloud(Cloud::UsGov); the default is global Graph
//!     .access_token("eyJ0eXAi...")
//!     .build()?;
//! let patch = UserStatusPatch::new().status(ComplianceStatus::Compliant).devices_count(3);
//! let outcome = client.update_user_status(&Target::new("config-id", "status-id"), &patch)?;
//! println!("{outcome:?}"); // NoContent: Intune answers 204 in practice
//! # Ok::<(), intune_user_status::Error>(())
//! ```
//!
//! The flow of one update: the [`UserStatusPatch`] is validated and serialized once, the [`Target`]
//! builds the URL with percent-encoded ids, and the client's one request pipeline adds the token and
//! Graph's headers and sends it on a shared connection pool. C callers reach the same code through
//! `include/intune_user_status.h`.
//!
//! Many updates go in one call, [`Client::update_user_statuses`]: Graph's JSON batches of 20, each
//! throttled item retried on its own, one result per item. The rest of the resource is there too:
//! [`Client::get_user_status`], [`Client::list_user_statuses`] (every page),
//! [`Client::create_user_status`] and [`Client::delete_user_status`].

#![deny(missing_docs)]
// Only the C ABI may use unsafe code (raw pointers, `no_mangle`); the core is safe Rust.
#![deny(unsafe_code)]

mod abortable;
mod auth;
mod auth_error;
mod batch;
mod bulk;
mod cancel;
mod client;
mod cloud;
mod coalesce;
mod collection;
mod config;
mod config_json;
mod datetime;
mod departure;
mod error;
mod error_json;
#[allow(unsafe_code)]
mod ffi;
/// cbindgen:ignore
// It calls the C ABI exactly as C does, so it needs unsafe like ffi.
#[allow(unsafe_code)]
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod limits;
mod metrics;
mod model;
mod network;
#[cfg(feature = "outbox")]
mod outbox;
#[cfg(feature = "outbox")]
mod outbox_json;
mod pacing;
mod patch;
mod pipeline;
mod readiness;
mod request_id;
mod resolver;
mod resource;
mod response;
mod retry;
mod scheduler;
mod target;
mod tcp;
mod tls;
mod url;

pub use auth::{
    AccessToken, AssertionAlgorithm, ClientCertificateCredential, ClientSecretCredential,
    Credential, ManagedIdentityCredential, StaticToken, TokenProvider, WorkloadIdentityCredential,
};
pub use auth_error::AuthError;
pub use bulk::{BulkItem, BulkResult, BulkResultJson, bulk_result_json};
pub use client::{CallOptions, Client, UpdateOutcome};
pub use cloud::Cloud;
pub use collection::Collection;
pub use config::{ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use datetime::{DateTimeOffset, InvalidDateTime};
pub use error::{Error, ErrorKind, GraphError, TransportKind};
pub use metrics::{
    AnswerClass, BatchItemCounts, Buckets, ByteCounts, FlushStop, LATENCY_BOUNDS_MS,
    LatencyHistogram, Metrics, Operation, PerCause, PerClass, PerFlushStop, PerOperation,
    RequestCounts, RetryCause, TokenCounts, WaitCounts,
};
pub use model::{
    ComplianceStatus, DeviceConfigurationUserStatus, ODATA_TYPE, StatusValue,
    UnknownComplianceStatus,
};
#[cfg(all(feature = "outbox", feature = "test-seams"))]
#[doc(hidden)]
pub use outbox::FlushSeam;
#[cfg(feature = "outbox")]
pub use outbox::{
    Enqueued, FailedReport, FlushReport, MAX_OUTBOX_HOLD, MIN_OUTBOX_BYTES, Outbox, OutboxOptions,
    OutboxReader, OutboxStats,
};
pub use pacing::{MAX_PACED_REQUESTS, Pacing};
pub use patch::UserStatusPatch;
pub use resource::{DEFAULT_MAX_ITEMS, DEFAULT_MAX_PAGES, ListOptions};
pub use retry::{MAX_RETRIES_LIMIT, RetryPolicy};
pub use scheduler::BulkProgress;
pub use target::{ApiVersion, Route, Target};

/// Compiles the Rust examples of each Markdown page as doctests, so they stay true: one item per
/// page, whose doc is the page (`cfg(doctest)`: never part of the crate or its documentation).
macro_rules! doc_tests {
    ($($name:ident: $page:literal),* $(,)?) => {
        $(
            #[cfg(doctest)]
            #[doc = include_str!($page)]
            struct $name;
        )*
    };
}

// Every page with Rust code blocks (tests/docs_links.rs checks that none is missing).
doc_tests! {
    ReadmeDoctests: "../README.md",
    BulkGuide: "../docs/bulk.md",
    ReliabilityGuide: "../docs/reliability.md",
    OutboxGuide: "../docs/outbox.md",
    AuthenticationGuide: "../docs/authentication.md",
}
