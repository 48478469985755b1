//! The per-item retry scheduler under bulk operations: sends prepared inner requests in `$batch`
//! requests of at most 20 (one API version each), and sends each item answered 429, 503 or 504
//! again in a later batch, after its own `Retry-After` or the backoff, within the call's retry
//! policy counted per item and the call's total budget.
//!
//! The batch itself goes through the one pipeline (pacing counts every inner request, auth,
//! Graph's headers, the retry of the whole batch on 429/503/504 and failed connections); this
//! layer only decides which items go again.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ureq::http::Method;

use crate::batch::{self, InnerRequest, MAX_BATCH};
use crate::pipeline::{Budget, Pipeline, Request, Response};
use crate::response;
use crate::retry::{Verdict, decide, parse_retry_after, retryable_status};
use crate::{ApiVersion, Error};

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
    /// POSTs `envelope` to `/{version}/$batch`, counted as `count` requests by the pacing gate.
    fn send(
        &self,
        version: ApiVersion,
        envelope: &[u8],
        count: u32,
        budget: Budget,
    ) -> Result<Response, Error>;
    /// Holds every request of the client until `until` (an inner 429).
    fn hold_until(&self, until: Instant);
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
    ) -> Result<Response, Error> {
        let mut url = String::with_capacity(self.root().len() + 12);
        url.push_str(self.root());
        url.push('/');
        url.push_str(version.as_str());
        url.push_str("/$batch");
        let request = Request {
            method: Method::POST,
            url,
            body: Some(envelope),
        };
        self.execute_counted(&request, count, budget)
    }

    fn hold_until(&self, until: Instant) {
        Pipeline::hold_until(self, until);
    }
}

/// What one item has used of its retry policy.
#[derive(Default, Clone, Copy)]
struct Spent {
    attempts: u32,
    retries: u32,
    waited: Duration,
}

/// Sends every request of `requests` with `method` and returns, per request and in their order,
/// its final inner response (whatever its status: a 429 whose retries ran out included, with
/// `retry_stopped` when a budget stopped them) or the error that ended it: the batch's own
/// failure, a missing answer, or `Throttled`/`Timeout` when its next retry would pass the
/// call's total budget. `attempts` is per item: the requests that carried it.
pub(crate) fn run(
    sender: &impl Sender,
    method: &str,
    requests: &[Prepared],
    budget: Budget,
) -> Vec<Result<Response, Error>> {
    let started = Instant::now();
    let deadline = budget.total.map(|total| started + total);
    let limit = sender.batch_limit().clamp(1, MAX_BATCH);
    let mut results: Vec<Option<Result<Response, Error>>> = std::iter::repeat_with(|| None)
        .take(requests.len())
        .collect();
    let mut spent = vec![Spent::default(); requests.len()];
    // Never sent yet, in input order, one queue per version; then retries, soonest first.
    let mut fresh = [VecDeque::new(), VecDeque::new()];
    for (index, request) in requests.iter().enumerate() {
        fresh[slot(request.version)].push_back(index);
    }
    let mut waiting: Vec<(Instant, usize)> = Vec::new();
    let mut turn = 0;
    loop {
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
            std::thread::sleep(ready.saturating_duration_since(now));
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
                retry: budget.retry,
                total: remaining,
            },
        );
        drop(envelope);
        let answers = match sent {
            Ok(answer) => answer,
            Err(error) => {
                log::info!(
                    "POST /{version}/$batch: {} requests failed: {error}",
                    batch.len()
                );
                for &index in &batch {
                    spent[index].attempts += error.attempts();
                    let mut error = error.clone();
                    error.set_attempts(spent[index].attempts);
                    results[index] = Some(Err(error));
                }
                continue;
            }
        };
        for &index in &batch {
            spent[index].attempts += answers.attempts;
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
        for (&index, id) in batch.iter().zip(&ids) {
            let Some(mut inner) = by_id.remove(id.as_str()) else {
                results[index] = Some(Err(Error::UnexpectedResponse {
                    status: answers.status,
                    reason: format!("the $batch answer has no response for this item (id {id})"),
                    request_id: answers.header("request-id").map(str::to_owned),
                    client_request_id: answers.client_request_id.clone(),
                    attempts: spent[index].attempts,
                }));
                continue;
            };
            inner.attempts = spent[index].attempts;
            if !retryable_status(inner.status) {
                results[index] = Some(Ok(inner));
                continue;
            }
            let asked = inner.header("retry-after").and_then(parse_retry_after);
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
                            out_of_time(
                                started,
                                &format!("its retry in {:.3} s", wait.as_secs_f64()),
                                *item,
                            )
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
                    if inner.status == 429 {
                        // Graph throttles the app, not the item: every request of the client waits.
                        sender.hold_until(ready);
                    }
                    let at = waiting.partition_point(|&(other, _)| other <= ready);
                    waiting.insert(at, (ready, index));
                }
                Verdict::Exhausted => results[index] = Some(Ok(inner)),
                Verdict::OverBudget(why) => {
                    inner.retry_stopped = Some(why);
                    results[index] = Some(Ok(inner));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(Error::UnexpectedResponse {
                    status: 0,
                    reason: "the item was never sent (a defect; please report it)".into(),
                    request_id: None,
                    client_request_id: String::new(),
                    attempts: 0,
                })
            })
        })
        .collect()
}

fn slot(version: ApiVersion) -> usize {
    match version {
        ApiVersion::Beta => 0,
        ApiVersion::V1_0 => 1,
    }
}

/// The inner answers of a batch, or the error every item of it gets.
fn decode(answer: &Response) -> Result<std::collections::HashMap<String, Response>, Error> {
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
            retry_stopped: answer.retry_stopped.clone(),
            redirected_to_get: false,
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
    }
}

/// One line per batch: its size, the inner statuses and the ids support needs.
fn log_batch(
    version: ApiVersion,
    batch: &[usize],
    by_id: &std::collections::HashMap<String, Response>,
    answer: &Response,
) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let mut statuses = BTreeMap::new();
    for inner in by_id.values() {
        *statuses.entry(inner.status).or_insert(0usize) += 1;
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
