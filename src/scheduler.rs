//! The per-item retry scheduler under bulk operations: sends prepared inner requests in `$batch`
//! requests of at most 20 (one API version each), and sends each item answered 429, 503 or 504
//! again in a later batch, after its own `Retry-After` or the backoff, within the call's retry
//! policy counted per item and the call's total budget.
//!
//! The batch itself goes through the one pipeline (pacing counts every inner request, auth,
//! Graph's headers, the retry of the whole batch on 429/503/504 and failed connections); this
//! layer only decides which items go again. An envelope the call's departure hook kept back
//! (`Error::Storage`: the outbox could not write when it may land) ends the call: no later
//! envelope is sent, and the items not yet answered end with that error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ureq::http::Method;

use crate::batch::{self, InnerRequest, MAX_BATCH};
use crate::cancel::Watch;
use crate::metrics::Operation;
use crate::pacing;
use crate::pipeline::{Budget, Pipeline, Request, Response};
use crate::response;
use crate::retry::{Verdict, decide, parse_retry_after, retryable_status};
use crate::{ApiVersion, Error, RetryPolicy};

/// One inner request, prepared once: its version, its URL relative to the version root, and its
/// body serialized once (the bytes every retry resends).
pub(crate) struct Prepared {
    pub version: ApiVersion,
    pub path: String,
    pub body: Option<Vec<u8>>,
}

/// Where batches go: the client's pipeline, or canned answers in the unit tests.
pub(crate) trait Sender {
    /// Inner requests per batch at most (Graph's 20, fewer under a smaller pacing window).
    fn batch_limit(&self) -> usize;
    /// POSTs `envelope` to `/{version}/$batch`, counted as `count` requests by the pacing gate,
    /// until an interrupt of `watch`.
    fn send(
        &self,
        version: ApiVersion,
        envelope: &[u8],
        count: u32,
        budget: Budget,
        watch: &Watch,
    ) -> Result<Response, Error>;
    /// Holds every request of the client for `wait` after an inner 429, as after a direct one.
    fn hold_after_429(&self, wait: Duration, policy: &RetryPolicy);
    /// Counts in the client's metrics `sent` inner requests carried by envelopes (`retried` of
    /// them not for the first time) and `failed` items whose final answer was not a 2xx.
    fn count_items(&self, sent: u64, retried: u64, failed: u64);
}

impl Sender for Pipeline {
    fn batch_limit(&self) -> usize {
        // A batch larger than the pacing window could never leave within it.
        self.pacing()
            .map_or(MAX_BATCH, |pacing| pacing.requests as usize)
            .clamp(1, MAX_BATCH)
    }

    fn send(
        &self,
        version: ApiVersion,
        envelope: &[u8],
        count: u32,
        budget: Budget,
        watch: &Watch,
    ) -> Result<Response, Error> {
        let mut url = String::with_capacity(self.root().len() + 12);
        url.push_str(self.root());
        url.push('/');
        url.push_str(version.as_str());
        url.push_str("/$batch");
        let request = Request {
            operation: Operation::Batch,
            method: Method::POST,
            url,
            body: Some(envelope),
            // Every inner request is a PATCH or a GET: sending the envelope again is safe.
            idempotent: true,
        };
        self.execute_counted(&request, count, budget, watch)
    }

    fn hold_after_429(&self, wait: Duration, policy: &RetryPolicy) {
        Pipeline::hold_after_429(self, wait, policy);
    }

    fn count_items(&self, sent: u64, retried: u64, failed: u64) {
        self.metrics().batch_items(sent, retried, failed);
    }
}

/// How far a bulk call has come, as [`CallOptions::on_progress`](crate::CallOptions::on_progress)
/// tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkProgress {
    /// Items with their final result (an invalid item has its result from the start).
    pub done: usize,
    /// The call's items.
    pub total: usize,
    /// Inner answers 429 so far: items Graph throttled, each time it did.
    pub throttled: u32,
    /// How long those 429s held the call back: per batch, the longest wait its 429s imposed
    /// (their `Retry-After`, else the backoff), summed over batches.
    pub throttle_wait: Duration,
}

/// Tells a bulk call's caller its progress, when it asked, and only what changed.
struct Reporter<'a> {
    report: Option<&'a dyn Fn(BulkProgress)>,
    told: Option<BulkProgress>,
}

impl Reporter<'_> {
    fn tell(&mut self, progress: BulkProgress) {
        if let Some(report) = self.report
            && self.told != Some(progress)
        {
            self.told = Some(progress);
            report(progress);
        }
    }
}

/// What one item has used of its retry policy: the pipeline's resends of its batches and the
/// scheduler's own retries alike.
#[derive(Default, Clone, Copy)]
struct Spent {
    attempts: u32,
    retries: u32,
    waited: Duration,
}

/// What the pipeline may spend on one batch: what its most-spent item has left, so no item is
/// sent more often or waits longer than its policy allows.
fn left_for(policy: RetryPolicy, items: impl Iterator<Item = Spent>) -> RetryPolicy {
    let (retries, waited) = items.fold((0, Duration::ZERO), |(retries, waited), item| {
        (retries.max(item.retries), waited.max(item.waited))
    });
    policy
        .max_retries(policy.max_retries.saturating_sub(retries))
        .max_total_wait(policy.max_total_wait.saturating_sub(waited))
}

/// Sends every request of `requests` with `method` and returns, per request and in their order,
/// its final inner response (whatever its status: a 429 whose retries ran out included, with
/// `retry_stopped` when a budget stopped them) or the error that ended it: the batch's own
/// failure, a missing answer, or `Throttled`/`Timeout` when its next retry would pass the
/// call's total budget. A retry the client's own gate refused (its `Throttled`, nothing sent)
/// ends its item with the answer it followed, `retry_stopped` naming the gate, unless that was
/// Graph's 429 (then `Throttled`, as for an item never sent). `attempts` is per item: the
/// requests that carried it. An interrupt of
/// `watch` ends the call: the items of a batch in flight and every item not yet finished get
/// [`Error::Cancelled`]; finished items keep their results.
pub(crate) fn run(
    sender: &impl Sender,
    method: &str,
    requests: &[Prepared],
    budget: Budget,
    watch: &Watch,
) -> Vec<Result<Response, Error>> {
    run_carried(sender, method, requests, budget, watch, None)
        .into_iter()
        .map(|(result, _)| result)
        .collect()
}

/// [`run`], telling `report` its progress before each batch and at the end (no lock is held while
/// it runs), each result with the requests that carried its item.
pub(crate) fn run_carried(
    sender: &impl Sender,
    method: &str,
    requests: &[Prepared],
    budget: Budget,
    watch: &Watch,
    report: Option<&dyn Fn(BulkProgress)>,
) -> Vec<(Result<Response, Error>, u32)> {
    let mut reporter = Reporter { report, told: None };
    let mut progress = BulkProgress {
        total: requests.len(),
        ..BulkProgress::default()
    };
    let started = Instant::now();
    let deadline = budget.total.map(|total| started + total);
    let limit = sender.batch_limit().clamp(1, MAX_BATCH);
    let mut results: Vec<Option<Result<Response, Error>>> = std::iter::repeat_with(|| None)
        .take(requests.len())
        .collect();
    let mut spent = vec![Spent::default(); requests.len()];
    // The answer each item waiting to retry followed, unless it was Graph's 429: what the item
    // ends with when the client's own gate refuses that retry (as a direct call does).
    let mut followed: Vec<Option<Response>> = std::iter::repeat_with(|| None)
        .take(requests.len())
        .collect();
    // Never sent yet, in input order, one queue per version; then retries, soonest first.
    let mut fresh = [VecDeque::new(), VecDeque::new()];
    for (index, request) in requests.iter().enumerate() {
        fresh[slot(request.version)].push_back(index);
    }
    let mut waiting: Vec<(Instant, usize)> = Vec::new();
    let mut turn = 0;
    loop {
        if watch.cancelled() {
            end_the_rest(&mut results, &spent, |attempts| {
                let stage = if attempts == 0 {
                    "waiting for its turn in a batch"
                } else {
                    "waiting to retry (Retry-After or backoff)"
                };
                Error::cancelled(stage, "", attempts)
            });
            break;
        }
        // No batch is in flight here: every item not queued has its result.
        progress.done = requests.len() - fresh[0].len() - fresh[1].len() - waiting.len();
        reporter.tell(progress);
        let now = Instant::now();
        let due_retry = waiting
            .first()
            .filter(|(ready, _)| *ready <= now)
            .map(|&(_, index)| requests[index].version);
        // Alternate between versions when both have fresh items, so neither waits for the other.
        let fresh_version = [turn, 1 - turn]
            .into_iter()
            .find(|&s| !fresh[s].is_empty())
            .map(|s| requests[fresh[s][0]].version);
        let Some(version) = due_retry.or(fresh_version) else {
            let Some(&(ready, _)) = waiting.first() else {
                break;
            };
            // An interrupt ends the sleep; the loop's first check then ends the call.
            let _ = watch.sleep_until(ready);
            continue;
        };
        turn = 1 - slot(version);
        let mut batch = Vec::with_capacity(limit);
        let mut n = 0;
        while n < waiting.len() && batch.len() < limit {
            let (ready, index) = waiting[n];
            if ready > now {
                break;
            }
            if requests[index].version == version {
                batch.push(index);
                waiting.remove(n);
            } else {
                n += 1;
            }
        }
        while batch.len() < limit
            && let Some(index) = fresh[slot(version)].pop_front()
        {
            batch.push(index);
        }
        let remaining = deadline.map(|deadline| deadline.saturating_duration_since(now));
        if remaining == Some(Duration::ZERO) {
            for &index in &batch {
                results[index] = Some(Err(out_of_time(started, "its turn", spent[index])));
            }
            continue;
        }
        let ids: Vec<String> = batch.iter().map(usize::to_string).collect();
        let envelope = batch::encode(batch.iter().zip(&ids).map(|(&index, id)| InnerRequest {
            id,
            method,
            url: &requests[index].path,
            body: requests[index].body.as_deref(),
        }));
        let sent = sender.send(
            version,
            &envelope,
            batch.len() as u32,
            Budget {
                retry: left_for(budget.retry, batch.iter().map(|&index| spent[index])),
                total: remaining,
            },
            watch,
        );
        drop(envelope);
        // Each send of the envelope carried every item; an item's first is not a retry.
        let carried = match &sent {
            Ok(answers) => answers.attempts,
            Err(error) => error.attempts(),
        };
        let resent: u32 = batch
            .iter()
            .map(|&index| carried.saturating_sub(u32::from(spent[index].attempts == 0)))
            .sum();
        sender.count_items(
            u64::from(carried) * batch.len() as u64,
            u64::from(resent),
            0,
        );
        let answers = match sent {
            Ok(answer) => answer,
            Err(error) => {
                log::info!(
                    "POST /{version}/$batch: {} requests failed: {error}",
                    batch.len()
                );
                // The client's own gate refused the envelope before it left: Graph throttled
                // nothing, so a retry that followed a 503 or a 504 ends with that answer, saying
                // why, as a direct call's does (pipeline.rs); an item Graph throttled, or never
                // sent, stays THROTTLED.
                let refused_at_gate = match &error {
                    Error::Throttled {
                        wait, attempts: 0, ..
                    } => Some(*wait),
                    _ => None,
                };
                for &index in &batch {
                    spent[index].attempts += error.attempts();
                    if let Some(wait) = refused_at_gate
                        && let Some(mut answer) = followed[index].take()
                    {
                        answer.attempts = spent[index].attempts;
                        answer.retry_stopped = Some(pacing::refused_retry(wait));
                        results[index] = Some(Err(response::graph_error(answer)));
                        continue;
                    }
                    let mut error = error.clone();
                    error.set_attempts(spent[index].attempts);
                    results[index] = Some(Err(error));
                }
                if matches!(error, Error::Storage { .. }) {
                    // The layer above could not note when the envelope may land (its departure
                    // hook: the outbox's file stayed busy past the time it had). Every later
                    // envelope would wait for the same file: none is sent, and the items not yet
                    // answered end with that error, carried as often as they were.
                    end_the_rest(&mut results, &spent, |attempts| {
                        let mut error = error.clone();
                        error.set_attempts(attempts);
                        error
                    });
                    break;
                }
                continue;
            }
        };
        for &index in &batch {
            // The pipeline's resends of the batch are the item's retries too.
            let item = &mut spent[index];
            item.attempts += answers.attempts;
            item.retries += answers.attempts.saturating_sub(1);
            item.waited += answers.waited;
        }
        let mut by_id = match decode(&answers) {
            Ok(by_id) => by_id,
            Err(error) => {
                log::info!(
                    "POST /{version}/$batch: {} requests -> {error}",
                    batch.len()
                );
                for &index in &batch {
                    let mut error = error.clone();
                    error.set_attempts(spent[index].attempts);
                    results[index] = Some(Err(error));
                }
                continue;
            }
        };
        log_batch(version, &batch, &by_id, &answers);
        let answered = Instant::now();
        // The longest wait this batch's 429s imposed on the client.
        let mut held = Duration::ZERO;
        for (&index, id) in batch.iter().zip(&ids) {
            followed[index] = None;
            let mut inner = match by_id.remove(id.as_str()) {
                Some(Ok(inner)) => inner,
                unreadable => {
                    let reason = match unreadable {
                        Some(Err(reason)) => reason,
                        _ => format!("the $batch answer has no response for this item (id {id})"),
                    };
                    results[index] = Some(Err(Error::UnexpectedResponse {
                        status: answers.status,
                        reason,
                        request_id: answers.header("request-id").map(str::to_owned),
                        client_request_id: answers.client_request_id.clone(),
                        attempts: spent[index].attempts,
                    }));
                    continue;
                }
            };
            inner.attempts = spent[index].attempts;
            if !retryable_status(inner.status) {
                results[index] = Some(Ok(inner));
                continue;
            }
            let asked = inner.header("retry-after").and_then(parse_retry_after);
            if inner.status == 429 {
                progress.throttled += 1;
            }
            if inner.status == 429
                && let Some(wait) = asked
            {
                // Graph throttles the app, not the item: every request of the client waits,
                // whether or not this item is retried, as after a direct 429.
                sender.hold_after_429(wait, &budget.retry);
                held = held.max(wait);
            }
            let item = &mut spent[index];
            match decide(&budget.retry, item.retries, asked, item.waited, None) {
                Verdict::Retry(wait) => {
                    let ready = answered + wait;
                    if deadline.is_some_and(|deadline| ready >= deadline) {
                        results[index] = Some(Err(if inner.status == 429 {
                            Error::Throttled {
                                wait,
                                client_request_id: inner.client_request_id,
                                attempts: item.attempts,
                            }
                        } else {
                            // The answer itself, as a direct call reports it: Graph's code and
                            // the request-id and client-request-id support needs.
                            inner.retry_stopped = Some(format!(
                                "its retry in {:.3} s would pass the call's total time budget (timeouts.totalMs)",
                                wait.as_secs_f64()
                            ));
                            response::graph_error(inner)
                        }));
                        continue;
                    }
                    item.retries += 1;
                    item.waited += wait;
                    log::info!(
                        "{method} {}: HTTP {} in $batch; retry {} of {} in {:.3} s (client-request-id {})",
                        requests[index].path,
                        inner.status,
                        item.retries,
                        budget.retry.max_retries,
                        wait.as_secs_f64(),
                        inner.client_request_id
                    );
                    if inner.status == 429 && asked.is_none() {
                        // Without a Retry-After the backoff is the hold (with one, it is set).
                        sender.hold_after_429(wait, &budget.retry);
                        held = held.max(wait);
                    }
                    let at = waiting.partition_point(|&(other, _)| other <= ready);
                    waiting.insert(at, (ready, index));
                    followed[index] = (inner.status != 429).then_some(inner);
                }
                Verdict::Exhausted => results[index] = Some(Ok(inner)),
                Verdict::OverBudget(why) => {
                    inner.retry_stopped = Some(why);
                    results[index] = Some(Ok(inner));
                }
            }
        }
        progress.throttle_wait += held;
    }
    progress.done = requests.len();
    reporter.tell(progress);
    let failed = results.iter().filter(|result| match result {
        Some(Ok(answer)) => !(200..300).contains(&answer.status),
        Some(Err(error)) => error.attempts() > 0,
        None => false,
    });
    sender.count_items(0, 0, failed.count() as u64);
    results
        .into_iter()
        .zip(spent)
        .map(|(result, spent)| {
            let result = result.unwrap_or_else(|| {
                Err(Error::UnexpectedResponse {
                    status: 0,
                    reason: "the item was never sent (a defect; please report it)".into(),
                    request_id: None,
                    client_request_id: String::new(),
                    attempts: 0,
                })
            });
            (result, spent.attempts)
        })
        .collect()
}

/// Ends every item without a result yet with `error(the requests that carried it)`.
fn end_the_rest(
    results: &mut [Option<Result<Response, Error>>],
    spent: &[Spent],
    error: impl Fn(u32) -> Error,
) {
    for (result, spent) in results.iter_mut().zip(spent) {
        if result.is_none() {
            *result = Some(Err(error(spent.attempts)));
        }
    }
}

fn slot(version: ApiVersion) -> usize {
    match version {
        ApiVersion::Beta => 0,
        ApiVersion::V1_0 => 1,
    }
}

/// The inner answers of a batch, or the error every item of it gets.
fn decode(answer: &Response) -> Result<HashMap<String, batch::Answer>, Error> {
    if answer.redirected_to_get {
        return Err(response::unexpected(
            answer,
            "a 303 redirect turned the $batch POST into a GET",
        ));
    }
    match answer.status {
        200 => batch::decode(answer).map_err(|reason| response::unexpected(answer, &reason)),
        400.. => Err(response::graph_error(Response {
            status: answer.status,
            headers: answer.headers.clone(),
            body: answer.body.clone(),
            client_request_id: answer.client_request_id.clone(),
            attempts: answer.attempts,
            waited: answer.waited,
            retry_stopped: answer.retry_stopped.clone(),
            redirected_to_get: false,
            earlier_outcome_unknown: answer.earlier_outcome_unknown,
        })),
        _ => Err(response::unexpected(
            answer,
            "$batch answers 200, not this status",
        )),
    }
}

/// An item whose next send would pass the call's total budget.
fn out_of_time(started: Instant, waiting_for: &str, spent: Spent) -> Error {
    Error::Timeout {
        stage: format!("{waiting_for} (the call's total time budget ran out)"),
        elapsed: started.elapsed(),
        client_request_id: String::new(),
        attempts: spent.attempts,
        no_answer: false,
    }
}

/// One line per batch: its size, the inner statuses and the ids support needs.
fn log_batch(
    version: ApiVersion,
    batch: &[usize],
    by_id: &HashMap<String, batch::Answer>,
    answer: &Response,
) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let mut statuses = BTreeMap::new();
    for inner in by_id.values() {
        // A malformed answer is counted as status 0.
        let status = inner.as_ref().map_or(0, |inner| inner.status);
        *statuses.entry(status).or_insert(0usize) += 1;
    }
    let mut summary = String::new();
    for (status, count) in statuses {
        let _ = write!(summary, " {status}x{count}");
    }
    log::info!(
        "POST /{version}/$batch: {} requests -> HTTP {}:{summary} (request-id {}, client-request-id {})",
        batch.len(),
        answer.status,
        answer.header("request-id").unwrap_or("-"),
        answer.client_request_id
    );
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::{Value, json};

    use super::*;
    use crate::batch::tests::batch_response;
    use crate::cancel::Signal;

    /// [`super::run`] for a call no interrupt touches.
    fn run(
        sender: &impl Sender,
        method: &str,
        requests: &[Prepared],
        budget: Budget,
    ) -> Vec<Result<Response, Error>> {
        super::run(
            sender,
            method,
            requests,
            budget,
            &Watch::new(&Signal::new()),
        )
    }

    /// Answers each batch with `answer(batch number, inner requests)`, recording every envelope.
    struct Canned<F> {
        answer: F,
        limit: usize,
        sent: RefCell<Vec<(ApiVersion, Value, u32)>>,
        holds: RefCell<Vec<Duration>>,
        /// The retries and the total wait each envelope was allowed.
        budgets: RefCell<Vec<(u32, Duration)>>,
        /// The batch items counted for the metrics: sent, retried, failed.
        items: RefCell<(u64, u64, u64)>,
    }

    impl<F: Fn(usize, &[Value]) -> Result<Response, Error>> Canned<F> {
        fn new(answer: F) -> Self {
            Canned {
                answer,
                limit: MAX_BATCH,
                sent: RefCell::default(),
                holds: RefCell::default(),
                budgets: RefCell::default(),
                items: RefCell::default(),
            }
        }

        /// The ids of each batch sent, in order.
        fn batches(&self) -> Vec<Vec<String>> {
            self.sent
                .borrow()
                .iter()
                .map(|(_, envelope, _)| {
                    envelope["requests"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .collect()
        }
    }

    impl<F: Fn(usize, &[Value]) -> Result<Response, Error>> Sender for Canned<F> {
        fn batch_limit(&self) -> usize {
            self.limit
        }

        fn send(
            &self,
            version: ApiVersion,
            envelope: &[u8],
            count: u32,
            budget: Budget,
            _watch: &Watch,
        ) -> Result<Response, Error> {
            self.budgets
                .borrow_mut()
                .push((budget.retry.max_retries, budget.retry.max_total_wait));
            let value: Value = serde_json::from_slice(envelope).unwrap();
            let requests = value["requests"].as_array().unwrap().clone();
            assert_eq!(
                requests.len(),
                count as usize,
                "pacing counts inner requests"
            );
            let n = self.sent.borrow().len();
            self.sent.borrow_mut().push((version, value, count));
            (self.answer)(n, &requests)
        }

        fn count_items(&self, sent: u64, retried: u64, failed: u64) {
            let mut items = self.items.borrow_mut();
            *items = (items.0 + sent, items.1 + retried, items.2 + failed);
        }

        fn hold_after_429(&self, wait: Duration, _policy: &RetryPolicy) {
            self.holds.borrow_mut().push(wait);
        }
    }

    fn prepared(count: usize, version: ApiVersion) -> Vec<Prepared> {
        (0..count)
            .map(|n| Prepared {
                version,
                path: format!("/deviceManagement/deviceConfigurations/c/userStatuses/u{n}"),
                body: Some(format!(r#"{{"devicesCount":{n}}}"#).into_bytes()),
            })
            .collect()
    }

    fn budget(total: Option<Duration>) -> Budget {
        Budget {
            retry: RetryPolicy::default().base_delay(Duration::from_millis(5)),
            total,
        }
    }

    /// A 200 batch answer with one inner response per request, from `inner(id, request)`,
    /// in reverse order (Graph answers in any order).
    fn answer_each(requests: &[Value], inner: impl Fn(&str, &Value) -> Value) -> Response {
        let responses: Vec<Value> = requests
            .iter()
            .rev()
            .map(|r| inner(r["id"].as_str().unwrap(), r))
            .collect();
        batch_response(&json!({ "responses": responses }).to_string())
    }

    #[test]
    fn items_go_in_batches_of_twenty_and_results_follow_the_input_order() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, request| {
                // Echo the body back so each result shows which request it answers.
                json!({"id": id, "status": 200, "body": request["body"]})
            }))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(45, ApiVersion::Beta),
            budget(None),
        );
        let sizes: Vec<usize> = sender.batches().iter().map(Vec::len).collect();
        assert_eq!(sizes, [20, 20, 5]);
        for (n, result) in results.iter().enumerate() {
            let response = result.as_ref().unwrap();
            let body: Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["devicesCount"], n, "result {n} answers request {n}");
            assert_eq!(response.attempts, 1);
        }
        let first = &sender.sent.borrow()[0].1["requests"][0];
        assert_eq!(first["method"], "PATCH");
        assert_eq!(
            first["url"],
            "/deviceManagement/deviceConfigurations/c/userStatuses/u0"
        );
        assert_eq!(first["headers"]["Content-Type"], "application/json");
    }

    #[test]
    fn a_smaller_limit_makes_smaller_batches_and_versions_never_mix() {
        let mut requests = prepared(6, ApiVersion::Beta);
        for request in requests.iter_mut().skip(1).step_by(2) {
            request.version = ApiVersion::V1_0;
        }
        let mut sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(
                requests,
                |id, _| json!({"id": id, "status": 204}),
            ))
        });
        sender.limit = 2;
        let results = run(&sender, "PATCH", &requests, budget(None));
        assert!(results.iter().all(Result::is_ok));
        let sent = sender.sent.borrow();
        assert_eq!(sent.len(), 4, "3 beta and 3 v1.0 items in batches of 2");
        for (version, envelope, _) in sent.iter() {
            for request in envelope["requests"].as_array().unwrap() {
                let index: usize = request["id"].as_str().unwrap().parse().unwrap();
                assert_eq!(requests[index].version, *version);
            }
        }
    }

    #[test]
    fn a_throttled_item_goes_again_alone_after_its_retry_after() {
        let sender = Canned::new(|n, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                if n == 0 && id == "2" {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "0.05"},
                           "body": {"error": {"code": "TooManyRequests", "message": "slow"}}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        let started = Instant::now();
        let results = run(
            &sender,
            "PATCH",
            &prepared(5, ApiVersion::Beta),
            budget(None),
        );
        assert_eq!(sender.batches(), [vec!["0", "1", "2", "3", "4"], vec!["2"]]);
        assert!(started.elapsed() >= Duration::from_millis(50), "waited");
        assert_eq!(sender.holds.borrow().len(), 1, "the client was held");
        for (n, result) in results.iter().enumerate() {
            let response = result.as_ref().unwrap();
            assert_eq!(response.status, 204);
            assert_eq!(response.attempts, if n == 2 { 2 } else { 1 });
        }
    }

    #[test]
    fn progress_is_told_before_each_batch_with_the_throttling_seen() {
        let sender = Canned::new(|n, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                // Waits far apart, so the two retries go in batches of their own.
                if n == 0 && (id == "2" || id == "12") {
                    let wait = if id == "2" { "0.2" } else { "0.1" };
                    json!({"id": id, "status": 429, "headers": {"Retry-After": wait}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        let told = RefCell::new(Vec::new());
        let report = |progress: BulkProgress| told.borrow_mut().push(progress);
        let report: &dyn Fn(BulkProgress) = &report;
        let results = run_carried(
            &sender,
            "PATCH",
            &prepared(25, ApiVersion::Beta),
            budget(None),
            &Watch::new(&Signal::new()),
            Some(report),
        );
        assert!(
            results
                .iter()
                .all(|(r, _)| r.as_ref().unwrap().status == 204)
        );
        assert_eq!(sender.batches().len(), 4, "20, 5, then the two retries");
        let told: Vec<(usize, u32, Duration)> = told
            .borrow()
            .iter()
            .map(|p| {
                assert_eq!(p.total, 25);
                (p.done, p.throttled, p.throttle_wait)
            })
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(
            told,
            [
                (0, 0, ms(0)),
                // The first batch: 18 done, two throttled; the client held for the longer wait.
                (18, 2, ms(200)),
                (23, 2, ms(200)),
                (24, 2, ms(200)),
                (25, 2, ms(200)),
            ],
            "only changes are told, the last when every item is done"
        );
    }

    #[test]
    fn progress_counts_the_items_of_both_versions() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(
                requests,
                |id, _| json!({"id": id, "status": 204}),
            ))
        });
        let told = RefCell::new(Vec::new());
        let report = |progress: BulkProgress| told.borrow_mut().push(progress.done);
        let report: &dyn Fn(BulkProgress) = &report;
        let mut requests = prepared(2, ApiVersion::Beta);
        requests.extend(prepared(3, ApiVersion::V1_0));
        run_carried(
            &sender,
            "PATCH",
            &requests,
            budget(None),
            &Watch::new(&Signal::new()),
            Some(report),
        );
        assert_eq!(sender.batches().len(), 2, "one batch per version");
        let told = told.into_inner();
        assert!(
            told == [0, 2, 5] || told == [0, 3, 5],
            "done before each batch and at the end: {told:?}"
        );
    }

    #[test]
    fn retries_of_both_versions_go_in_batches_within_the_limit_and_are_counted() {
        // Limit 2; three beta items and one v1.0 item, each throttled once (Retry-After 0).
        let throttled = RefCell::new(std::collections::HashSet::new());
        let mut sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                if throttled.borrow_mut().insert(id.to_owned()) {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "0"}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        sender.limit = 2;
        let mut requests = prepared(3, ApiVersion::Beta);
        requests.extend(prepared(1, ApiVersion::V1_0));
        let results = run(&sender, "PATCH", &requests, budget(None));
        assert!(results.iter().all(|r| r.as_ref().unwrap().status == 204));
        let batches = sender.batches();
        assert!(
            batches.iter().all(|batch| batch.len() <= 2),
            "a batch past the limit: {batches:?}"
        );
        for (version, envelope, _) in sender.sent.borrow().iter() {
            let ids: Vec<&str> = envelope["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap())
                .collect();
            let beta = ids.iter().all(|&id| id != "3");
            assert_eq!(
                beta,
                *version == ApiVersion::Beta,
                "versions mixed: {ids:?}"
            );
        }
        let carried: usize = batches.iter().map(Vec::len).sum();
        assert_eq!(carried, 8, "each item twice");
        assert_eq!(
            *sender.items.borrow(),
            (8, 4, 0),
            "items sent, retried, failed"
        );
    }

    #[test]
    fn ready_retries_of_one_version_pass_those_of_the_other_and_fill_no_more_than_the_limit() {
        // Limit 2. Batch 1 (beta 0, 1) is throttled 0.05 s and 0.5 s, batch 2 (v1.0 2, 3) throttles
        // 2 for 0.1 s, batch 3 (beta 4) takes 0.6 s to answer and throttles 4 for 0 s. Then every
        // retry is ready, in the order 0 (beta), 2 (v1.0), 1 (beta), 4 (beta): the beta retry
        // batch reaches past 2 to take 1, and stops at the limit before 4.
        let mut sender = Canned::new(|n, requests: &[Value]| {
            if n == 2 {
                std::thread::sleep(Duration::from_millis(600));
            }
            Ok(answer_each(requests, |id, _| {
                let throttle = |after: &str| json!({"id": id, "status": 429, "headers": {"Retry-After": after}});
                match (n, id) {
                    (0, "0") => throttle("0.05"),
                    (0, "1") => throttle("0.5"),
                    (1, "2") => throttle("0.1"),
                    (2, "4") => throttle("0"),
                    _ => json!({"id": id, "status": 204}),
                }
            }))
        });
        sender.limit = 2;
        let mut requests = prepared(2, ApiVersion::Beta);
        requests.extend(prepared(2, ApiVersion::V1_0));
        requests.extend(prepared(1, ApiVersion::Beta));
        let results = run(&sender, "PATCH", &requests, budget(None));
        assert!(results.iter().all(|r| r.as_ref().unwrap().status == 204));
        assert_eq!(
            sender.batches(),
            [
                &["0", "1"][..],
                &["2", "3"],
                &["4"],
                &["0", "1"],
                &["2"],
                &["4"]
            ]
        );
    }

    #[test]
    fn an_item_throttled_without_retry_after_holds_the_client_and_a_503_does_not() {
        // A 429 with no Retry-After holds every request of the client for its backoff; a 503 is
        // the item's own trouble and holds nothing.
        let sender = Canned::new(|n, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| match (n, id) {
                (0, "0") => json!({"id": id, "status": 429}),
                (0, _) => json!({"id": id, "status": 503}),
                _ => json!({"id": id, "status": 204}),
            }))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(3, ApiVersion::Beta),
            budget(None),
        );
        assert!(results.iter().all(|r| r.as_ref().unwrap().status == 204));
        let carried: usize = sender.batches().iter().map(Vec::len).sum();
        assert_eq!(carried, 6, "each item twice");
        assert_eq!(
            sender.holds.borrow().len(),
            1,
            "only the 429 held the client"
        );
    }

    #[test]
    fn items_count_as_failed_only_when_a_request_carried_them() {
        // Limit 1, a 200 ms budget: two envelopes fail (the second after the budget ran out), the
        // third item never leaves. Failed items are those sent: 2, not the one never sent.
        let mut sender = Canned::new(|n, _: &[Value]| {
            if n == 1 {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(Error::Transport {
                kind: crate::TransportKind::Connect,
                message: "refused".into(),
                client_request_id: String::new(),
                attempts: 1,
                no_answer: true,
            })
        });
        sender.limit = 1;
        let results = run(
            &sender,
            "PATCH",
            &prepared(3, ApiVersion::Beta),
            budget(Some(Duration::from_millis(200))),
        );
        let attempts: Vec<u32> = results
            .iter()
            .map(|r| r.as_ref().err().map_or(u32::MAX, Error::attempts))
            .collect();
        assert_eq!(attempts, [1, 1, 0]);
        assert_eq!(
            *sender.items.borrow(),
            (2, 0, 2),
            "items sent, retried, failed"
        );
    }

    /// The outbox's departure hook could not write when an envelope may land (its file stayed
    /// busy past the call's or the flush's time, R2): every later envelope would wait for the
    /// same file, so none is sent; the items not answered end with that STORAGE, each with the
    /// requests that carried it (item 1's 503'd envelope), and nothing waits for item 1's retry.
    #[test]
    fn the_departure_hooks_storage_error_ends_the_call() {
        let mut sender = Canned::new(|n, requests: &[Value]| match n {
            0 => Ok(answer_each(requests, |id, _| {
                if id == "1" {
                    json!({"id": id, "status": 503, "headers": {"Retry-After": "1"},
                           "body": {"error": {"code": "ServiceUnavailable"}}})
                } else {
                    json!({"id": id, "status": 204})
                }
            })),
            _ => Err(Error::storage(
                "o.db",
                "database is locked; the request was not sent",
            )),
        });
        sender.limit = 2;
        let started = Instant::now();
        let results = run(
            &sender,
            "PATCH",
            &prepared(5, ApiVersion::Beta),
            budget(None),
        );
        assert_eq!(
            sender.batches(),
            [vec!["0", "1"], vec!["2", "3"]],
            "an envelope left after the hook's STORAGE"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "waited for a retry the call would not send: {:?}",
            started.elapsed()
        );
        assert_eq!(results[0].as_ref().map(|r| r.status).ok(), Some(204));
        let ended: Vec<(bool, u32)> = results[1..]
            .iter()
            .map(|r| {
                r.as_ref().err().map_or((false, u32::MAX), |error| {
                    (matches!(error, Error::Storage { .. }), error.attempts())
                })
            })
            .collect();
        assert_eq!(ended, [(true, 1), (true, 0), (true, 0), (true, 0)]);
    }

    #[test]
    fn retries_are_counted_per_item_and_the_last_answer_is_kept() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                if id == "0" {
                    json!({"id": id, "status": 503, "body": {"error": {"code": "ServiceUnavailable"}}})
                } else {
                    json!({"id": id, "status": 404, "body": {"error": {"code": "ResourceNotFound",
                        "innerError": {"request-id": "inner-req-1"}}}})
                }
            }))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(2, ApiVersion::Beta),
            budget(None),
        );
        // Item 0: first try and 3 retries; item 1 (404) is final at once.
        assert_eq!(sender.batches().len(), 4);
        let unavailable = results[0].as_ref().unwrap();
        assert_eq!((unavailable.status, unavailable.attempts), (503, 4));
        let missing = results[1].as_ref().unwrap();
        assert_eq!((missing.status, missing.attempts), (404, 1));
        match response::graph_error(results.into_iter().nth(1).unwrap().unwrap()) {
            Error::Graph(graph) => {
                assert_eq!(graph.code.as_deref(), Some("ResourceNotFound"));
                assert_eq!(graph.request_id.as_deref(), Some("inner-req-1"));
                assert_eq!(graph.client_request_id, "crid-batch");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_retry_past_the_total_budget_ends_the_item_with_the_wait() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                json!({"id": id, "status": if id == "0" { 429 } else { 503 },
                       "headers": {"Retry-After": "5"}})
            }))
        });
        let started = Instant::now();
        let results = run(
            &sender,
            "PATCH",
            &prepared(2, ApiVersion::Beta),
            budget(Some(Duration::from_millis(500))),
        );
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "no pointless wait"
        );
        match &results[0] {
            Err(Error::Throttled { wait, attempts, .. }) => {
                assert_eq!((*wait, *attempts), (Duration::from_secs(5), 1));
            }
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
        match &results[1] {
            Err(Error::Graph(graph)) => {
                let why = graph.retry_stopped.as_deref().unwrap();
                assert!(why.contains("5.000 s") && why.contains("totalMs"), "{why}");
                assert_eq!((graph.status, graph.attempts), (503, 1));
                assert_eq!(graph.retry_after, Some(Duration::from_secs(5)));
            }
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
    }

    #[test]
    fn a_wait_past_the_policy_keeps_the_answer_and_says_why() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(
                requests,
                |id, _| json!({"id": id, "status": 429, "headers": {"Retry-After": "500"}}),
            ))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(1, ApiVersion::Beta),
            budget(None),
        );
        let answer = results[0].as_ref().unwrap();
        assert_eq!(answer.status, 429);
        assert!(
            answer
                .retry_stopped
                .as_deref()
                .unwrap()
                .contains("maxDelayMs")
        );
        assert_eq!(sender.batches().len(), 1);
    }

    #[test]
    fn a_missing_answer_is_an_error_never_a_success() {
        let sender = Canned::new(|_, _: &[Value]| {
            Ok(batch_response(r#"{"responses":[{"id":"0","status":204}]}"#))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(2, ApiVersion::Beta),
            budget(None),
        );
        assert!(results[0].is_ok());
        match &results[1] {
            Err(Error::UnexpectedResponse {
                reason, attempts, ..
            }) => {
                assert!(reason.contains("no response for this item"), "{reason}");
                assert_eq!(*attempts, 1);
            }
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
    }

    /// The client's own pacing gate refuses the envelope of a retry (the gate's `Throttled`,
    /// nothing sent): Graph throttled nothing it had not said so. An item whose last answer was
    /// a 503 or a 504 ends with that answer, its `retry_stopped` naming the gate, as a direct
    /// call ends (pipeline.rs `previous`); one whose last answer was Graph's 429 stays
    /// throttled; one never sent stays throttled with no attempt (the outbox's `paced`).
    #[test]
    fn a_retry_the_own_gate_refused_ends_with_the_items_last_answer_unless_it_was_a_429() {
        let mut sender = Canned::new(|n, requests: &[Value]| {
            if n > 0 {
                return Err(Error::Throttled {
                    wait: Duration::from_secs(1),
                    client_request_id: "crid-gate".into(),
                    attempts: 0,
                });
            }
            Ok(answer_each(requests, |id, _| {
                let status = match id {
                    "0" => 503,
                    "1" => 429,
                    _ => 504,
                };
                json!({"id": id, "status": status,
                       "headers": {"Retry-After": "0.01", "request-id": format!("inner-{id}")},
                       "body": {"error": {"code": format!("Code{status}"), "message": "busy"}}})
            }))
        });
        sender.limit = 3;
        let results = run(
            &sender,
            "PATCH",
            &prepared(4, ApiVersion::Beta),
            budget(None),
        );
        assert_eq!(
            sender.batches(),
            [vec!["0", "1", "2"], vec!["3"], vec!["0", "1", "2"]]
        );
        for (index, status) in [(0, 503), (2, 504)] {
            match &results[index] {
                Err(Error::Graph(graph)) => {
                    assert_eq!((graph.status, graph.attempts), (status, 1), "item {index}");
                    assert_eq!(
                        graph.code.as_deref(),
                        Some(format!("Code{status}").as_str())
                    );
                    assert_eq!(
                        graph.request_id.as_deref(),
                        Some(format!("inner-{index}").as_str())
                    );
                    let why = graph.retry_stopped.as_deref().unwrap_or_default();
                    assert!(
                        why.contains("own pacing gate") && why.contains("1.000 s"),
                        "{why}"
                    );
                }
                other => panic!("item {index}: {:?}", other.as_ref().map(|r| r.status)),
            }
        }
        match &results[1] {
            Err(error @ Error::Throttled { .. }) => assert_eq!(error.attempts(), 1),
            other => panic!("the 429'd item: {:?}", other.as_ref().map(|r| r.status)),
        }
        match &results[3] {
            Err(error @ Error::Throttled { .. }) => assert_eq!(error.attempts(), 0),
            other => panic!(
                "the item never sent: {:?}",
                other.as_ref().map(|r| r.status)
            ),
        }
    }

    #[test]
    fn a_failed_batch_is_each_of_its_items_result() {
        let sender = Canned::new(|n, _: &[Value]| match n {
            0 => Err(Error::Transport {
                kind: crate::TransportKind::Connect,
                message: "refused".into(),
                client_request_id: "crid-x".into(),
                attempts: 4,
                no_answer: true,
            }),
            1 => Ok(Response {
                status: 400,
                body: br#"{"error":{"code":"BadRequest","message":"Duplicate id"}}"#.to_vec(),
                ..batch_response("")
            }),
            _ => Ok(batch_response("not json")),
        });
        let mut requests = prepared(3, ApiVersion::Beta);
        requests[1].version = ApiVersion::V1_0;
        requests[2].version = ApiVersion::V1_0;
        let mut sender = sender;
        sender.limit = 1;
        let results = run(&sender, "PATCH", &requests, budget(None));
        match &results[0] {
            Err(error @ Error::Transport { .. }) => assert_eq!(error.attempts(), 4),
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
        match &results[1] {
            Err(Error::Graph(graph)) => assert_eq!(
                (graph.status, graph.code.as_deref()),
                (400, Some("BadRequest"))
            ),
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
        assert!(matches!(&results[2], Err(Error::UnexpectedResponse { .. })));
    }

    #[test]
    fn nothing_to_send_sends_nothing() {
        let sender = Canned::new(|_, _: &[Value]| panic!("nothing should be sent"));
        assert!(run(&sender, "PATCH", &[], budget(None)).is_empty());
    }

    #[test]
    fn the_pipelines_resends_of_a_batch_count_against_each_items_retries() {
        // Each envelope needed 4 attempts (3 whole-batch retries in the pipeline), and the item
        // answers 429 with Retry-After 0 every time. Policy: 3 retries, so at most 4 sends.
        let sender = Canned::new(|_, requests: &[Value]| {
            let mut answer = answer_each(
                requests,
                |id, _| json!({"id": id, "status": 429, "headers": {"Retry-After": "0"}}),
            );
            answer.attempts = 4;
            Ok(answer)
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(1, ApiVersion::Beta),
            budget(None),
        );
        let answer = results[0].as_ref().unwrap();
        assert!(
            answer.attempts <= 4,
            "the item was carried {} times under a policy of 3 retries",
            answer.attempts
        );
    }

    #[test]
    fn each_resend_may_spend_only_what_its_most_spent_item_has_left() {
        // Throttled twice (10 ms each), then applied: each envelope carrying the item is allowed
        // the policy's retries and total wait less what the item has used.
        let sender = Canned::new(|n, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                if n < 2 {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "0.01"}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(1, ApiVersion::Beta),
            budget(None),
        );
        assert_eq!(results[0].as_ref().unwrap().status, 204);
        let budgets = sender.budgets.borrow();
        let retries: Vec<u32> = budgets.iter().map(|&(retries, _)| retries).collect();
        assert_eq!(retries, [3, 2, 1]);
        let total = RetryPolicy::default().max_total_wait;
        assert_eq!(budgets[0].1, total);
        assert!(
            budgets[1].1 <= total - Duration::from_millis(10)
                && budgets[2].1 <= total - Duration::from_millis(20),
            "the waits were not deducted: {budgets:?}"
        );
    }

    #[test]
    fn an_interrupt_names_what_each_unfinished_item_was_waiting_for() {
        let signal = Signal::new();
        let interrupter = std::sync::Arc::clone(&signal);
        // The interrupt comes while the first batch is in flight; its answer still counts.
        let mut sender = Canned::new(move |_, requests: &[Value]| {
            interrupter.interrupt();
            Ok(answer_each(requests, |id, _| {
                if id == "1" {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "30"}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        sender.limit = 2;
        let results = super::run(
            &sender,
            "PATCH",
            &prepared(3, ApiVersion::Beta),
            budget(None),
            &Watch::new(&signal),
        );
        assert_eq!(sender.batches(), [["0", "1"]]);
        assert_eq!(results[0].as_ref().unwrap().status, 204);
        let stages: Vec<(&str, u32)> = results[1..]
            .iter()
            .map(|result| match result {
                Err(Error::Cancelled {
                    stage, attempts, ..
                }) => (stage.as_str(), *attempts),
                other => panic!("{:?}", other.as_ref().map(|r| r.status)),
            })
            .collect();
        assert_eq!(
            stages,
            [
                ("waiting to retry (Retry-After or backoff)", 1),
                ("waiting for its turn in a batch", 0)
            ]
        );
    }

    #[test]
    fn an_inner_429_holds_the_client_even_when_it_is_not_retried() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(
                requests,
                |id, _| json!({"id": id, "status": 429, "headers": {"Retry-After": "2"}}),
            ))
        });
        let budget = Budget {
            retry: RetryPolicy::none(),
            total: None,
        };
        let results = run(&sender, "PATCH", &prepared(1, ApiVersion::Beta), budget);
        assert_eq!(results[0].as_ref().unwrap().status, 429);
        assert_eq!(
            sender.holds.borrow().len(),
            1,
            "a direct 429 holds the client whether or not it is retried (pipeline.rs:242)"
        );
    }

    #[test]
    fn a_503_item_out_of_time_keeps_graphs_code_and_the_ids_support_needs() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                json!({"id": id, "status": 503, "headers": {"Retry-After": "5", "request-id": "inner-1"},
                       "body": {"error": {"code": "ServiceUnavailable", "message": "busy"}}})
            }))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(1, ApiVersion::Beta),
            budget(Some(Duration::from_secs(1))),
        );
        let Err(err) = &results[0] else {
            panic!("a 503 past the budget is an error");
        };
        assert_eq!(err.client_request_id(), Some("crid-batch"), "{err:?}");
        assert_eq!(err.request_id(), Some("inner-1"), "{err:?}");
        assert_eq!(
            err.graph().and_then(|graph| graph.code.as_deref()),
            Some("ServiceUnavailable")
        );
    }

    #[test]
    fn a_malformed_inner_answer_fails_only_its_own_item() {
        let sender = Canned::new(|_, _: &[Value]| {
            Ok(batch_response(
                r#"{"responses":[{"id":"0","status":"204","headers":null},{"id":"1","status":204,"headers":null},{"id":2,"status":204}]}"#,
            ))
        });
        let results = run(
            &sender,
            "PATCH",
            &prepared(3, ApiVersion::Beta),
            budget(None),
        );
        match &results[0] {
            Err(Error::UnexpectedResponse { reason, .. }) => {
                assert!(reason.contains("malformed"), "{reason}")
            }
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
        assert_eq!(results[1].as_ref().unwrap().status, 204);
        match &results[2] {
            Err(Error::UnexpectedResponse { reason, .. }) => {
                assert!(reason.contains("no response for this item"), "{reason}")
            }
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
    }

    #[test]
    fn an_interrupt_ends_the_call_and_finished_items_keep_their_results() {
        let sender = Canned::new(|_, requests: &[Value]| {
            Ok(answer_each(requests, |id, _| {
                if id == "1" {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "30"}})
                } else {
                    json!({"id": id, "status": 204})
                }
            }))
        });
        let signal = Signal::new();
        let interrupter = {
            let signal = std::sync::Arc::clone(&signal);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                signal.interrupt();
            })
        };
        let started = Instant::now();
        let results = super::run(
            &sender,
            "PATCH",
            &prepared(3, ApiVersion::Beta),
            budget(None),
            &Watch::new(&signal),
        );
        interrupter.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "the 30 s Retry-After wait ended at the interrupt, not after {:?}",
            started.elapsed()
        );
        assert_eq!(
            sender.batches().len(),
            1,
            "nothing is sent after the interrupt"
        );
        for finished in [&results[0], &results[2]] {
            assert_eq!(finished.as_ref().unwrap().status, 204);
        }
        match &results[1] {
            Err(err @ Error::Cancelled { .. }) => assert_eq!(err.attempts(), 1),
            other => panic!("{:?}", other.as_ref().map(|r| r.status)),
        }
    }
}
