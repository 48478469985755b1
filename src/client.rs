//! The client and its operations: each is a request description plus a response decoder.

use std::fmt;
use std::sync::Arc;

use ureq::http::Method;

use crate::cancel::{Signal, Watch};
use crate::limits::check_duration;
use crate::metrics::Operation;
use crate::pipeline::{Budget, Pipeline, PipelineSettings, Request, Response};
use crate::scheduler::BulkProgress;
use crate::{
    ApiVersion, DeviceConfigurationUserStatus, Error, Metrics, RetryPolicy, Target,
    UserStatusPatch, response,
};

/// A blocking Microsoft Graph client for deviceConfigurationUserStatus.
///
/// Cheap to clone (clones share one HTTP agent and its connection pool) and `Send + Sync`: build
/// one per process and share it between threads. [`interrupt`](Client::interrupt) ends the calls
/// in progress on it (and its clones) from any thread.
///
/// ```no_run
/// use intune_user_status::{Client, ComplianceStatus, Target, UpdateOutcome, UserStatusPatch};
/// let client = Client::builder().access_token("eyJ0eXAi...").build()?;
/// let patch = UserStatusPatch::new().status(ComplianceStatus::Compliant).devices_count(3);
/// match client.update_user_status(&Target::new("config-id", "status-id"), &patch)? {
///     UpdateOutcome::NoContent => println!("updated (Graph answered 204)"),
///     UpdateOutcome::Updated(entity) | UpdateOutcome::Fetched(entity) => println!("{entity:?}"),
/// }
/// # Ok::<(), intune_user_status::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pipeline: Arc<Pipeline>,
    api_version: ApiVersion,
    fetch_after_no_content: bool,
    budget: Budget,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("root", &self.pipeline.root())
            .field("api_version", &self.api_version)
            .field("fetch_after_no_content", &self.fetch_after_no_content)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// What an update returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Graph answered 200 with the updated object (what the documentation describes).
    Updated(DeviceConfigurationUserStatus),
    /// Graph answered 204 No Content (what Intune does in practice): the update was applied.
    NoContent,
    /// Graph answered 204 and the client fetched the object with a GET, as asked
    /// ([`ClientBuilder::fetch_after_no_content`](crate::ClientBuilder::fetch_after_no_content)).
    Fetched(DeviceConfigurationUserStatus),
}

impl UpdateOutcome {
    /// The updated object, when the service returned it or it was fetched.
    pub fn entity(&self) -> Option<&DeviceConfigurationUserStatus> {
        match self {
            UpdateOutcome::Updated(entity) | UpdateOutcome::Fetched(entity) => Some(entity),
            UpdateOutcome::NoContent => None,
        }
    }

    /// The updated object, by value.
    pub fn into_entity(self) -> Option<DeviceConfigurationUserStatus> {
        match self {
            UpdateOutcome::Updated(entity) | UpdateOutcome::Fetched(entity) => Some(entity),
            UpdateOutcome::NoContent => None,
        }
    }
}

/// Per-call settings that override the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// The API version for this call (default: the client's).
    pub api_version: Option<ApiVersion>,
    /// Whether to GET the object after a 204 (default: the client's).
    pub fetch_after_no_content: Option<bool>,
    /// How this call retries (default: the client's policy).
    pub retry: Option<RetryPolicy>,
    /// This call's total time budget (default: the client's).
    pub total_timeout: Option<std::time::Duration>,
    /// Told how a bulk call gets on (default: nobody).
    progress: Option<OnProgress>,
    /// What the call watches for interrupts, when a layer above started it (an outbox's flush
    /// watches its own signal and the client's from the flush's start); else the client's signal
    /// from the call's start.
    pub(crate) watch: Option<Watch>,
}

/// A bulk call's progress callback; equal only to itself.
#[derive(Clone)]
struct OnProgress(Arc<dyn Fn(BulkProgress) + Send + Sync>);

impl fmt::Debug for OnProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnProgress")
    }
}

impl PartialEq for OnProgress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OnProgress {}

impl CallOptions {
    /// No overrides.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Uses `version` for this call.
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = Some(version);
        self
    }

    /// Fetches (or not) the object after a 204 for this call.
    pub fn fetch_after_no_content(mut self, fetch: bool) -> Self {
        self.fetch_after_no_content = Some(fetch);
        self
    }

    /// Retries this call by `policy` (e.g. [`RetryPolicy::none`] for a call that must not wait).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Bounds this whole call, retries and waits included.
    pub fn total_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// Tells `report` how a bulk call ([`Client::update_user_statuses_with`]) gets on: before
    /// each `$batch` it sends and when its updates are done, whenever a figure changed. It runs on
    /// the calling thread, with no lock of the client's held; other calls ignore it.
    ///
    /// ```
    /// use intune_user_status::CallOptions;
    /// let options = CallOptions::new().on_progress(|progress| {
    ///     eprint!("\r{}/{} done, {} throttled", progress.done, progress.total, progress.throttled)
    /// });
    /// ```
    pub fn on_progress(mut self, report: impl Fn(BulkProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(OnProgress(Arc::new(report)));
        self
    }

    /// The progress callback, if one was given.
    pub(crate) fn progress(&self) -> Option<&dyn Fn(BulkProgress)> {
        self.progress
            .as_ref()
            .map(|on| &*on.0 as &dyn Fn(BulkProgress))
    }

    /// Makes the call watch `watch` instead of the client's signal from its own start.
    pub(crate) fn watched_by(mut self, watch: Watch) -> Self {
        self.watch = Some(watch);
        self
    }
}

/// What a client is made of: the settings [`ClientBuilder::build`](crate::ClientBuilder::build)
/// checked.
pub(crate) struct ClientSettings<'a> {
    pub pipeline: PipelineSettings<'a>,
    pub api_version: ApiVersion,
    pub fetch_after_no_content: bool,
    pub budget: Budget,
}

impl Client {
    /// Builds the client and its one pipeline from checked settings.
    pub(crate) fn new(settings: ClientSettings<'_>) -> Result<Client, Error> {
        Ok(Client {
            pipeline: Arc::new(Pipeline::new(settings.pipeline)?),
            api_version: settings.api_version,
            fetch_after_no_content: settings.fetch_after_no_content,
            budget: settings.budget,
        })
    }

    /// How calls retry unless told otherwise (the outbox's backoff between flushes follows it).
    #[cfg(feature = "outbox")]
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.budget.retry
    }

    /// How long one request may wait for its answer (`timeouts.requestMs`): the outbox holds a
    /// changed value back that long behind a write whose outcome is unknown.
    #[cfg(feature = "outbox")]
    pub(crate) fn request_timeout(&self) -> std::time::Duration {
        self.pipeline.request_timeout()
    }

    /// The time budget of one call, if the client has one.
    #[cfg(feature = "outbox")]
    pub(crate) fn total_timeout(&self) -> Option<std::time::Duration> {
        self.budget.total
    }

    /// The API version calls use unless told otherwise.
    pub fn api_version(&self) -> ApiVersion {
        self.api_version
    }

    /// Ends every call in progress on this client and its clones, from any thread, as SQLite's
    /// `sqlite3_interrupt` does: each returns [`Error::Cancelled`] within half a second when it
    /// waits on a DNS lookup or a TCP connect (left to end on a thread of their own; nothing was
    /// written), a response (the request is abandoned and its connection closed), a
    /// `Retry-After` or backoff wait, the pacing gate, or another thread's token refresh. A bulk
    /// call returns the results it has, the unfinished items `Cancelled`. The flushes in
    /// progress of the client's outboxes end too (see [`Outbox::interrupt`](crate::Outbox::interrupt)).
    /// Calls started afterwards are not affected.
    ///
    /// Not cut short, and then `Cancelled` only when it ends: a custom
    /// [`TokenProvider`](crate::TokenProvider) already running (the caller's code).
    ///
    /// ```no_run
    /// use intune_user_status::Client;
    /// let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// let stopper = client.clone();
    /// std::thread::spawn(move || {
    ///     // e.g. when the service is told to stop
    ///     stopper.interrupt();
    /// });
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn interrupt(&self) {
        self.pipeline.signal().interrupt();
    }

    /// The client's counters since it was made, shared by its clones and the outboxes opened
    /// with it: requests per operation and how they ended, retries, 429 holds, pacing waits,
    /// `$batch` items, latency histograms, tokens and bytes (see [`Metrics`]). Reading them takes
    /// no lock and sends nothing; `serde_json::to_string(&client.metrics())` is the metrics JSON
    /// the C API's `ius_client_metrics` writes.
    ///
    /// ```no_run
    /// use intune_user_status::{AnswerClass, Client, Operation};
    /// let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// // ... updates ...
    /// let metrics = client.metrics();
    /// let throttled = metrics.requests[Operation::Update].answered[AnswerClass::TooManyRequests];
    /// println!("{throttled} updates throttled, held {} ms", metrics.throttle_holds.total_ms);
    /// println!("{}", serde_json::to_string(&metrics).unwrap());
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.pipeline.metrics().snapshot()
    }

    /// The client's cancellation signal (an outbox's flush watches it beside its own).
    pub(crate) fn signal(&self) -> &std::sync::Arc<Signal> {
        self.pipeline.signal()
    }

    /// What a call with `options` watches for interrupts.
    pub(crate) fn watch(&self, options: &CallOptions) -> Watch {
        match &options.watch {
            Some(watch) => watch.clone(),
            None => self.pipeline.watch(),
        }
    }

    /// PATCHes `target` with `patch` and returns what Graph returned.
    ///
    /// The patch is validated and the URL built before anything is sent; an invalid patch, an empty
    /// id, a route v1.0 does not serve or a patch `id` other than the target's is an
    /// [`Error::InvalidInput`] and no request is made.
    pub fn update_user_status(
        &self,
        target: &Target,
        patch: &UserStatusPatch,
    ) -> Result<UpdateOutcome, Error> {
        self.update_user_status_with(target, patch, &CallOptions::default())
    }

    /// [`update_user_status`](Self::update_user_status) with per-call options.
    pub fn update_user_status_with(
        &self,
        target: &Target,
        patch: &UserStatusPatch,
        options: &CallOptions,
    ) -> Result<UpdateOutcome, Error> {
        patch.validate_for(target)?;
        let url = self.url(target, options)?;
        let budget = self.budget(options)?;
        let watch = self.watch(options);
        let started = std::time::Instant::now();
        let body = patch.to_json();
        let response = self.pipeline.execute(
            &Request {
                operation: Operation::Update,
                method: Method::PATCH,
                url,
                body: Some(&body),
                idempotent: true,
            },
            budget,
            &watch,
        )?;
        if response.redirected_to_get {
            return Err(response::unexpected(
                &response,
                "a 303 redirect turned the PATCH into a GET; the update was not applied there",
            ));
        }
        match response.status {
            200 => Ok(UpdateOutcome::Updated(response::entity(&response)?)),
            204 => {
                if self.fetches_after_no_content(options) && !watch.cancelled() {
                    let options = options.clone().watched_by(watch);
                    Ok(self.fetch_after_update(target, &options, &budget, started))
                } else {
                    Ok(UpdateOutcome::NoContent)
                }
            }
            _ => Err(self.failure(response, "PATCH answers 200 or 204")),
        }
    }

    /// GETs the user status at `target`.
    pub fn get_user_status(&self, target: &Target) -> Result<DeviceConfigurationUserStatus, Error> {
        self.get_user_status_with(target, &CallOptions::default())
    }

    /// [`get_user_status`](Self::get_user_status) with per-call options.
    pub fn get_user_status_with(
        &self,
        target: &Target,
        options: &CallOptions,
    ) -> Result<DeviceConfigurationUserStatus, Error> {
        let url = self.url(target, options)?;
        let response = self.pipeline.execute(
            &Request {
                operation: Operation::Get,
                method: Method::GET,
                url,
                body: None,
                idempotent: true,
            },
            self.budget(options)?,
            &self.watch(options),
        )?;
        match response.status {
            200 => response::entity(&response),
            _ => Err(self.failure(response, "GET answers 200")),
        }
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Whether this call GETs the object after a 204.
    pub(crate) fn fetches_after_no_content(&self, options: &CallOptions) -> bool {
        options
            .fetch_after_no_content
            .unwrap_or(self.fetch_after_no_content)
    }

    pub(crate) fn url(&self, target: &Target, options: &CallOptions) -> Result<String, Error> {
        let mut url = String::with_capacity(self.pipeline.root().len() + 160);
        url.push_str(self.pipeline.root());
        target.write_url(&mut url, options.api_version.unwrap_or(self.api_version))?;
        Ok(url)
    }

    /// The GET after a 204, within what is left of the call's budget. The update has already
    /// succeeded, so a failed read is logged and reported as `NoContent`, never as an error that
    /// would make the caller think the update failed and send it again.
    fn fetch_after_update(
        &self,
        target: &Target,
        options: &CallOptions,
        budget: &Budget,
        started: std::time::Instant,
    ) -> UpdateOutcome {
        let mut get_options = options.clone();
        if let Some(total) = budget.total {
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                log::warn!("the update was applied (204); no time was left to read it back");
                return UpdateOutcome::NoContent;
            }
            get_options.total_timeout = Some(left);
        }
        match self.get_user_status_with(target, &get_options) {
            Ok(entity) => UpdateOutcome::Fetched(entity),
            Err(err) => {
                log::warn!("the update was applied (204) but reading it back failed: {err}");
                UpdateOutcome::NoContent
            }
        }
    }

    pub(crate) fn budget(&self, options: &CallOptions) -> Result<Budget, Error> {
        // The client's own settings were checked when it was built; only a call's are new.
        if let Some(retry) = &options.retry {
            retry.validate("retry")?;
        }
        if let Some(total) = options.total_timeout {
            check_duration("timeouts.totalMs", total, false)?;
        }
        Ok(Budget {
            retry: options.retry.unwrap_or(self.budget.retry),
            total: options.total_timeout.or(self.budget.total),
        })
    }

    pub(crate) fn failure(&self, response: Response, expected: &str) -> Error {
        if response.status >= 400 {
            response::graph_error(response)
        } else {
            response::unexpected(&response, &format!("{expected}, not this status"))
        }
    }
}
