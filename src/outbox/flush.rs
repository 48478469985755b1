//! A flush: send what is due through the client, then record each outcome.
//!
//! Rounds of [`ROUND`] reports: claim them (a short transaction), send them a batch at a time
//! with no transaction open, record the outcomes (another). A kill between the two loses nothing:
//! the reports are still pending and are sent again (PATCH is idempotent), and since one flush
//! runs at a time and a pending row always holds the newest merged report, an older value never
//! follows a newer one. The claim puts the reports' acknowledged state in doubt, so a report set
//! back to an old value after an unknown outcome is sent, never skipped.
//!
//! A flush stops sending (the rest stays pending) after a batch that Graph throttled (the rest is
//! held back as long), after a batch whose every report got no answer at all (Graph cannot be
//! reached now: the rest waits out the same backoff, so an offline flush pays one batch's
//! retries, not one per batch), and once it has run `flushTime` (the rest stays due).

use std::time::{Duration, Instant};

use super::clock::{Clock, Horizon, rfc3339};
use super::failed_list;
use super::failure;
use super::lock::FlushLock;
use super::options::OutboxOptions;
use super::report::FlushReport;
use super::store::{self, Due, Outcome, Store};
use crate::batch::MAX_BATCH;
use crate::{CallOptions, Client, Error, UpdateOutcome};

/// Reports claimed and recorded together: bounds what a kill makes the next flush send again.
const ROUND: usize = 100;

/// What a flush works with: the outbox's parts.
pub(crate) struct Flush<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub options: &'a OutboxOptions,
    pub clock: &'a Clock,
    /// The flush lock file.
    pub lock: &'a std::path::Path,
}

/// Why a flush stopped sending before the end.
enum Stop {
    /// Hold everything not sent until then (unix ms).
    Until(i64),
    /// `flushTime` ran out: what was not sent stays due.
    OutOfTime,
}

pub(crate) fn flush(parts: &Flush<'_>) -> Result<FlushReport, Error> {
    let Flush {
        client,
        store,
        options,
        clock,
        ..
    } = *parts;
    let _lock = FlushLock::acquire(parts.lock, client.total_timeout())?;
    let started = Instant::now();
    let max_delay = millis(client.retry_policy().max_delay);
    let horizon = Horizon::new(clock.now_ms(), max_delay);
    let keys = store.run(|conn| store::due_keys(conn, horizon))?;
    let mut report = FlushReport::default();
    let mut stop = None;
    let mut rounds = keys.chunks(ROUND);
    for round in rounds.by_ref() {
        if started.elapsed() >= options.flush_time {
            break;
        }
        let now = clock.now_ms();
        let claimed = store
            .run(|conn| store::claim(conn, round, options, (now, &rfc3339(now)), store.path()))?;
        report.skipped += claimed.skipped;
        report.failed += claimed.unreadable;
        failed_list::warn(store.path(), claimed.unreadable, claimed.dropped);
        let mut due = claimed.due;
        // One API version per batch: each batch is one bulk call, one `$batch` request.
        due.sort_by_key(|due| due.version() as u8);
        let mut outcomes: Vec<(Due, Outcome)> = Vec::with_capacity(due.len());
        let mut unsent: Vec<String> = Vec::new();
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            let version = due.peek().map(Due::version);
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while batch.len() < MAX_BATCH
                && let Some(next) = due.next_if(|d| Some(d.version()) == version)
            {
                batch.push(next);
            }
            if stop.is_some() || started.elapsed() >= options.flush_time {
                stop.get_or_insert(Stop::OutOfTime);
                unsent.extend(batch.into_iter().map(|due| due.key));
                continue;
            }
            let items: Vec<_> = batch.iter().map(|due| due.item.clone()).collect();
            let results = deliver(client, &items);
            // No token at all before anything reached Graph: the flush could not run.
            if report.sent == 0
                && outcomes.is_empty()
                && results
                    .iter()
                    .all(|r| matches!(r, Err(e) if e.auth().is_some()))
            {
                return Err(results
                    .into_iter()
                    .find_map(Result::err)
                    .unwrap_or_else(|| Error::invalid("flush", "no result")));
            }
            report.sent += batch.len() as u64;
            let (batch_outcomes, batch_stop) = judge(parts, batch, results, &mut report);
            outcomes.extend(batch_outcomes);
            stop = batch_stop;
        }
        let dropped = store.run(|conn| store::record(conn, &outcomes, options, clock.now_ms()))?;
        failed_list::warn(store.path(), 0, dropped);
        match stop {
            Some(Stop::Until(until)) => {
                unsent.extend(rounds.by_ref().flatten().cloned());
                store.run(|conn| store::defer(conn, &unsent, until))?;
                break;
            }
            Some(Stop::OutOfTime) => break,
            None => {}
        }
    }
    let horizon = Horizon::new(clock.now_ms(), max_delay);
    let (pending, next) = store.run(|conn| store::remaining(conn, horizon))?;
    report.pending = pending;
    report.next_attempt_in =
        next.map(|at| Duration::from_millis(u64::try_from(at - horizon.now).unwrap_or(0)));
    Ok(report)
}

/// What each result of one batch means for its report, and whether the flush must stop sending.
fn judge(
    parts: &Flush<'_>,
    batch: Vec<Due>,
    results: Vec<Result<UpdateOutcome, Error>>,
    report: &mut FlushReport,
) -> (Vec<(Due, Outcome)>, Option<Stop>) {
    let policy = parts.client.retry_policy();
    let now = parts.clock.now_ms();
    let unreachable = results
        .iter()
        .all(|r| matches!(r, Err(e) if failure::got_no_answer(e)));
    let mut throttled_until: Option<i64> = None;
    let mut latest_retry = now;
    let outcomes = batch
        .into_iter()
        .zip(results)
        .map(|(due, result)| {
            let outcome = match result {
                Ok(_) => {
                    report.applied += 1;
                    Outcome::Applied
                }
                Err(err) if failure::is_permanent(&err) => {
                    report.failed += 1;
                    Outcome::Failed {
                        error: failure::to_json(&err),
                        failed_at: rfc3339(now),
                    }
                }
                Err(err) => {
                    report.retry_later += 1;
                    // A stored wait is never longer than maxDelay: see clock.rs.
                    let wait = err
                        .retry_after()
                        .unwrap_or_else(|| policy.backoff(due.failures + 1))
                        .min(policy.max_delay);
                    let until = now.saturating_add(millis(wait));
                    latest_retry = latest_retry.max(until);
                    if err.is_throttled() {
                        throttled_until = Some(throttled_until.map_or(until, |t| t.max(until)));
                    }
                    Outcome::Retry {
                        until,
                        message: err.to_string(),
                    }
                }
            };
            (due, outcome)
        })
        .collect();
    // Graph throttles the app, not one report; no answer at all means it cannot be reached.
    let stop = throttled_until
        .or(unreachable.then_some(latest_retry))
        .map(Stop::Until);
    (outcomes, stop)
}

fn millis(wait: Duration) -> i64 {
    i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)
}

/// Sends `items` (one batch) through the bulk path (`$batch`, per-item retries, pacing) and
/// returns one result per item, in order.
fn deliver(client: &Client, items: &[crate::BulkItem]) -> Vec<Result<UpdateOutcome, Error>> {
    client.update_user_statuses_with(items, &CallOptions::new().fetch_after_no_content(false))
}
