//! Bulk updates: many (target, patch) items in `$batch` requests, one result per item.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::cancel::Watch;
use crate::client::CallOptions;
use crate::json::{self, kind};
use crate::pipeline::Budget;
use crate::scheduler::{self, BulkProgress, Prepared};
use crate::{ApiVersion, Client, Error, Target, UpdateOutcome, UserStatusPatch, response};

/// One item of a bulk update: which user status, what to set, and optionally the API version
/// (default: the call's, else the client's).
///
/// ```
/// use intune_user_status::{ApiVersion, BulkItem, ComplianceStatus, Target, UserStatusPatch};
/// let item = BulkItem::new(
///     Target::new("config-1", "status-1"),
///     UserStatusPatch::new().status(ComplianceStatus::Compliant),
/// )
/// .api_version(ApiVersion::V1_0);
/// assert_eq!(item.target().user_status_id(), "status-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    target: Target,
    patch: UserStatusPatch,
    api_version: Option<ApiVersion>,
}

impl BulkItem {
    /// Sets `patch` on `target`.
    pub fn new(target: Target, patch: UserStatusPatch) -> BulkItem {
        BulkItem {
            target,
            patch,
            api_version: None,
        }
    }

    /// Sends this item to `version` (default: the call's, else the client's).
    pub fn api_version(mut self, version: ApiVersion) -> BulkItem {
        self.api_version = Some(version);
        self
    }

    /// The user status this item updates.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What this item sets.
    pub fn patch(&self) -> &UserStatusPatch {
        &self.patch
    }

    /// The API version this item asked for, if it did.
    pub fn requested_api_version(&self) -> Option<ApiVersion> {
        self.api_version
    }

    /// Reads an item as the C API's bulk and outbox calls take it, `{"target": T, "patch": P}`:
    /// `T` as [`Target::from_value`] reads it (its `apiVersion` the item's), `P` as
    /// [`UserStatusPatch::from_value`]. A bad field is named from the item (`patch.devicesCount`,
    /// `target.route`); text that is not JSON, or not an object, is named `item`.
    ///
    /// ```
    /// use intune_user_status::{ApiVersion, BulkItem};
    /// let item = BulkItem::from_json(
    ///     r#"{"target":{"deviceConfigurationId":"c1","userStatusId":"u1","apiVersion":"v1.0"},
    ///         "patch":{"status":"compliant"}}"#,
    /// )?;
    /// assert_eq!(item.requested_api_version(), Some(ApiVersion::V1_0));
    /// let err = BulkItem::from_json(r#"{"target":{"deviceConfigurationId":"c1","userStatusId":"u1"},
    ///     "patch":{"devicesCount":"x"}}"#).unwrap_err();
    /// assert!(matches!(err, intune_user_status::Error::InvalidInput { field, .. } if field == "patch.devicesCount"));
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<BulkItem, Error> {
        let value = json::parse_named(text, "item", Error::invalid)?;
        BulkItem::from_named_value(value, "item")
    }

    /// [`from_json`](Self::from_json) for a parsed value, `name` what a value that is not an
    /// object is reported as (the C API's `items[3]`).
    pub(crate) fn from_named_value(value: Value, name: &str) -> Result<BulkItem, Error> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                name,
                format!(
                    "must be a JSON object {{\"target\",\"patch\"}}, got {}",
                    kind(&value)
                ),
            ));
        };
        let mut target = None;
        let mut patch = None;
        for (key, value) in map {
            match key.as_str() {
                "target" => target = Some(value),
                "patch" => patch = Some(value),
                _ => {
                    return Err(Error::invalid(
                        key,
                        "unknown key; an item has \"target\" and \"patch\"",
                    ));
                }
            }
        }
        let target = target.ok_or_else(|| Error::invalid("target", "is required"))?;
        let patch = patch.ok_or_else(|| Error::invalid("patch", "is required"))?;
        let (target, version) =
            Target::from_named_value(target, "target").map_err(|err| err.within("target"))?;
        let patch = UserStatusPatch::from_value(patch).map_err(|err| err.within("patch"))?;
        let item = BulkItem::new(target, patch);
        Ok(match version {
            Some(version) => item.api_version(version),
            None => item,
        })
    }

    /// Validates the item and serializes its body once. An invalid field is named relative to
    /// the item: `patch.devicesCount`, `target.route`.
    fn prepare(&self, default_version: ApiVersion) -> Result<Prepared, Error> {
        self.patch
            .validate_for(&self.target)
            .map_err(|err| err.within("patch"))?;
        let version = self.api_version.unwrap_or(default_version);
        let mut url = String::with_capacity(160);
        self.target
            .write_url(&mut url, version)
            .map_err(|err| err.within("target"))?;
        // A batch's inner URLs are relative to the version root.
        let path = url.split_off(1 + version.as_str().len());
        Ok(Prepared {
            version,
            path,
            body: Some(self.patch.to_json()),
        })
    }
}

/// One item's result of a bulk update
/// ([`update_user_statuses_detailed`](Client::update_user_statuses_detailed)), with how many
/// requests carried it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BulkResult {
    /// What [`update_user_statuses`](Client::update_user_statuses) returns for the item.
    pub result: Result<UpdateOutcome, Error>,
    /// Requests that carried the item, its retries included, whether it succeeded or failed (0
    /// when it was never sent: invalid, or its turn never came).
    pub attempts: u32,
}

impl BulkResult {
    /// `result`, after `attempts` requests carried the item.
    pub fn new(result: Result<UpdateOutcome, Error>, attempts: u32) -> BulkResult {
        BulkResult { result, attempts }
    }
}

/// One bulk item's result as JSON, the element the C API's `ius_update_user_statuses` writes for
/// it (and the line `ius bulk` prints): `{"status":"OK","httpStatus":204,"response":null,
/// "attempts":1}`, `{"status":"OK","httpStatus":200,"response":{...entity...},"attempts":2}`
/// (after a 204 read back, `httpStatus` stays 204; `attempts` counts the requests that carried
/// the item, its retries included), or `{"status":"THROTTLED","error":{...}}`, `status` the
/// error's [`kind`](Error::kind) name and `error` its error JSON (whose `attempts` is the
/// item's). Serialize it straight to text (as `serde_json::to_string` does) to keep the keys in
/// this order, `status` first; a `serde_json::Value` would sort them.
///
/// ```
/// use intune_user_status::{BulkResult, UpdateOutcome, bulk_result_json};
/// assert_eq!(
///     serde_json::to_string(&bulk_result_json(&BulkResult::new(Ok(UpdateOutcome::NoContent), 1)))?,
///     r#"{"status":"OK","httpStatus":204,"response":null,"attempts":1}"#,
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn bulk_result_json(item: &BulkResult) -> BulkResultJson<'_> {
    BulkResultJson(item)
}

/// A bulk item's result, serialized as [`bulk_result_json`] describes.
#[derive(Debug, Clone, Copy)]
pub struct BulkResultJson<'a>(&'a BulkResult);

impl Serialize for BulkResultJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match &self.0.result {
            Ok(outcome) => {
                let status: u16 = match outcome {
                    UpdateOutcome::Updated(_) => 200,
                    UpdateOutcome::Fetched(_) | UpdateOutcome::NoContent => 204,
                };
                map.serialize_entry("status", "OK")?;
                map.serialize_entry("httpStatus", &status)?;
                map.serialize_entry("response", &outcome.entity())?;
                map.serialize_entry("attempts", &self.0.attempts)?;
            }
            Err(error) => {
                map.serialize_entry("status", error.kind().name())?;
                map.serialize_entry("error", error)?;
            }
        }
        map.end()
    }
}

impl Client {
    /// Updates many user statuses through Graph's JSON batching and returns one result per item,
    /// in input order.
    ///
    /// Items go in `POST /{version}/$batch` requests of at most 20 (fewer when the client's
    /// pacing window is smaller), one API version per batch, each inner request the PATCH a
    /// single [`update_user_status`](Self::update_user_status) would send (same encoded path, same
    /// body bytes). An invalid item gets its own [`Error::InvalidInput`], whose `field` is
    /// relative to the item (`patch.devicesCount`, `target.route`), and is not sent; the others
    /// are.
    ///
    /// An item answered 429, 503 or 504 is sent again in a later batch after its own
    /// `Retry-After` (or the backoff), within the retry policy counted per item; when its retries
    /// run out its result is that answer as an [`Error::Graph`] (with `retry_after` and its own
    /// `attempts`), as a single update reports it. A 429 also holds every request of the client,
    /// as a direct one does. The batch itself is retried whole on 429, 503, 504 and failed
    /// connections (every item is a PATCH, so resending is safe); a 401 refreshes the token
    /// once; any other failure of the batch becomes each of its items' result. The call's total
    /// budget bounds the whole call: an item whose next retry would pass it gets
    /// [`Error::Throttled`] with the wait it was given (after a 429), or (after a 503 or 504)
    /// that answer as an [`Error::Graph`] whose `retry_stopped` names the budget, as a single
    /// update reports it; an item whose turn comes after the budget gets [`Error::Timeout`].
    /// Pacing counts every inner request. When the client's own gate (pacing, the hold after a
    /// 429) cannot let a retry's batch leave within the budgets, an item whose last answer was a
    /// 503 or 504 ends with that answer as an [`Error::Graph`] whose `retry_stopped` names the
    /// gate (Graph throttled nothing), as a single update does; after Graph's 429, or for an item
    /// never sent (`attempts` 0), it is [`Error::Throttled`].
    ///
    /// Each body is serialized once; memory stays proportional to the input.
    /// [`CallOptions::on_progress`] is told how the call gets on. An
    /// [`interrupt`](Self::interrupt) ends the call: finished items keep their results, the rest
    /// are [`Error::Cancelled`].
    ///
    /// ```no_run
    /// use intune_user_status::{BulkItem, Client, ComplianceStatus, Target, UserStatusPatch};
    /// let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// let items: Vec<BulkItem> = (0..45)
    ///     .map(|n| BulkItem::new(
    ///         Target::new("config-id", format!("status-{n}")),
    ///         UserStatusPatch::new().status(ComplianceStatus::Compliant),
    ///     ))
    ///     .collect();
    /// for (item, result) in items.iter().zip(client.update_user_statuses(&items)) {
    ///     if let Err(err) = result {
    ///         eprintln!("{}: {err}", item.target().user_status_id());
    ///     }
    /// }
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn update_user_statuses(&self, items: &[BulkItem]) -> Vec<Result<UpdateOutcome, Error>> {
        self.update_user_statuses_with(items, &CallOptions::default())
    }

    /// [`update_user_statuses`](Self::update_user_statuses) with per-call options: the API
    /// version of items that name none, the retry policy (counted per item), the total budget,
    /// and whether to GET each object after a 204 (those GETs are batched too).
    pub fn update_user_statuses_with(
        &self,
        items: &[BulkItem],
        options: &CallOptions,
    ) -> Vec<Result<UpdateOutcome, Error>> {
        self.update_user_statuses_detailed(items, options)
            .into_iter()
            .map(|item| item.result)
            .collect()
    }

    /// [`update_user_statuses_with`](Self::update_user_statuses_with), each result with the
    /// requests that carried its item (`attempts`), for a success as for a failure.
    pub fn update_user_statuses_detailed(
        &self,
        items: &[BulkItem],
        options: &CallOptions,
    ) -> Vec<BulkResult> {
        // Watched from the start: an interrupt while the items are prepared ends the call.
        let watch = self.watch(options);
        let budget = match self.budget(options) {
            Ok(budget) => budget,
            Err(error) => {
                return items
                    .iter()
                    .map(|_| BulkResult {
                        result: Err(error.clone()),
                        attempts: 0,
                    })
                    .collect();
            }
        };
        let started = std::time::Instant::now();
        let version = options.api_version.unwrap_or(self.api_version());
        let mut results: Vec<BulkResult> = Vec::with_capacity(items.len());
        let mut prepared = Vec::with_capacity(items.len());
        // Where each prepared request's result goes.
        let mut slots = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item.prepare(version) {
                Ok(request) => {
                    prepared.push(request);
                    slots.push(index);
                    results.push(BulkResult {
                        result: Ok(UpdateOutcome::NoContent),
                        attempts: 0,
                    });
                }
                Err(error) => results.push(BulkResult {
                    result: Err(error),
                    attempts: 0,
                }),
            }
        }
        // The scheduler counts the items it sends; the invalid ones are done already.
        let report = options.progress().map(|report| {
            let invalid = items.len() - prepared.len();
            move |progress: BulkProgress| {
                report(BulkProgress {
                    done: progress.done + invalid,
                    total: items.len(),
                    ..progress
                })
            }
        });
        let answers = scheduler::run_carried(
            self.pipeline(),
            "PATCH",
            &prepared,
            budget,
            &watch,
            report
                .as_ref()
                .map(|report| report as &dyn Fn(BulkProgress)),
        );
        for (&index, (answer, attempts)) in slots.iter().zip(answers) {
            results[index] = BulkResult {
                result: answer.and_then(|inner| match inner.status {
                    200 => response::entity(&inner).map(UpdateOutcome::Updated),
                    204 => Ok(UpdateOutcome::NoContent),
                    _ => Err(self.failure(inner, "PATCH answers 200 or 204")),
                }),
                attempts,
            };
        }
        // After an interrupt the updates that were applied stay NoContent, unread.
        if self.fetches_after_no_content(options) && !watch.cancelled() {
            self.fetch_after_updates(&mut results, prepared, &slots, budget, started, &watch);
        }
        results
    }

    /// The batched GETs after 204s, within what is left of the budget. As for a single update,
    /// a failed read leaves `NoContent` (the update was applied) and is logged.
    fn fetch_after_updates(
        &self,
        results: &mut [BulkResult],
        prepared: Vec<Prepared>,
        slots: &[usize],
        budget: Budget,
        started: std::time::Instant,
        watch: &Watch,
    ) {
        let mut gets = Vec::new();
        let mut get_slots = Vec::new();
        for (request, &index) in prepared.into_iter().zip(slots) {
            if matches!(results[index].result, Ok(UpdateOutcome::NoContent)) {
                gets.push(Prepared {
                    body: None,
                    ..request
                });
                get_slots.push(index);
            }
        }
        if gets.is_empty() {
            return;
        }
        let mut budget = budget;
        if let Some(total) = budget.total {
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                log::warn!("the updates were applied (204); no time was left to read them back");
                return;
            }
            budget.total = Some(left);
        }
        let answers = scheduler::run(self.pipeline(), "GET", &gets, budget, watch);
        for (index, answer) in get_slots.into_iter().zip(answers) {
            let read = answer.and_then(|inner| match inner.status {
                200 => response::entity(&inner),
                _ => Err(self.failure(inner, "GET answers 200")),
            });
            match read {
                Ok(entity) => results[index].result = Ok(UpdateOutcome::Fetched(entity)),
                Err(err) => {
                    log::warn!("an update was applied (204) but reading it back failed: {err}")
                }
            }
        }
    }
}
