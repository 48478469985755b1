//! A flush: send what is due through the client, then record each outcome.
//!
//! Rounds of [`ROUND`] reports: claim them (a short transaction), send them with no transaction
//! open, record the outcomes (another). A kill between the two loses nothing: the reports are
//! still pending and are sent again (PATCH is idempotent), and since one flush runs at a time and
//! a pending row always holds the newest merged report, an older value never follows a newer one.

use std::time::Duration;

use super::lock::FlushLock;
use super::store::{self, Due, Outcome, now_ms};
use super::{FlushReport, Outbox, failure};
use crate::{BulkItem, CallOptions, Client, Error, Target, UpdateOutcome};

/// Reports sent between two records: bounds what a kill makes the next flush send again.
const ROUND: usize = 100;

pub(crate) fn flush(outbox: &Outbox) -> Result<FlushReport, Error> {
    let _lock = FlushLock::acquire(&outbox.path, outbox.client.total_timeout())?;
    let keys = outbox.with_conn(|conn| store::due_keys(conn, now_ms()))?;
    let mut report = FlushReport::default();
    let mut rest = &keys[..];
    while !rest.is_empty() {
        let (round, later) = rest.split_at(rest.len().min(ROUND));
        rest = later;
        let (due, skipped) = outbox.with_conn(|conn| store::claim(conn, round, &outbox.options))?;
        report.skipped += skipped as u64;
        if due.is_empty() {
            continue;
        }
        let items = due.iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
        let results = deliver(&outbox.client, &items);
        // No token at all before anything reached Graph: the flush could not run.
        if report.sent == 0
            && let Some(Err(first)) = results.first()
            && first.auth().is_some()
            && results
                .iter()
                .all(|r| matches!(r, Err(e) if e.auth().is_some()))
        {
            return Err(results
                .into_iter()
                .next()
                .and_then(Result::err)
                .unwrap_or_else(|| Error::invalid("flush", "no result")));
        }
        report.sent += due.len() as u64;
        let now = now_ms();
        let mut throttled_until: Option<i64> = None;
        let outcomes: Vec<(Due, Outcome)> = due
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
                            failed_at: rfc3339_now(),
                        }
                    }
                    Err(err) => {
                        report.retry_later += 1;
                        let wait = err.retry_after().unwrap_or_else(|| {
                            outbox.client.retry_policy().backoff(due.failures + 1)
                        });
                        let until = now.saturating_add(millis(wait));
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
        outbox.with_conn(|conn| store::record(conn, &outcomes))?;
        if let Some(until) = throttled_until {
            // Graph throttles the app, not one report: hold the rest back as long.
            outbox.with_conn(|conn| store::defer(conn, rest, until))?;
            break;
        }
    }
    let (pending, next) = outbox.with_conn(|conn| store::remaining(conn))?;
    report.pending = pending;
    report.next_attempt_in =
        next.map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)));
    Ok(report)
}

fn millis(wait: Duration) -> i64 {
    i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn to_item(due: &Due) -> Result<BulkItem, Error> {
    let value = serde_json::from_str(&due.target).map_err(|err| Error::Storage {
        path: due.key.clone(),
        reason: format!("a stored target cannot be read: {err}"),
    })?;
    let (target, version) = Target::from_value(value)?;
    Ok(BulkItem::new(target, due.patch.clone()).api_version(version.unwrap_or_default()))
}

/// Sends `items` through the bulk path (`$batch`, 20 per request, per-item retries, pacing) and
/// returns one result per item, in order.
fn deliver(client: &Client, items: &[BulkItem]) -> Vec<Result<UpdateOutcome, Error>> {
    client.update_user_statuses_with(items, &CallOptions::new().fetch_after_no_content(false))
}
