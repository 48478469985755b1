//! A flush: send what is due through the client, then record each outcome.
//!
//! Rounds of [`ROUND`] reports: claim them (a short transaction), send them a batch at a time
//! with no transaction open, record the outcomes (another). The claim stores each report's next
//! attempt as now + the backoff of its next failure, so the state on disk is the safe one until
//! the record replaces it. A kill between the two loses nothing: the reports are still pending and
//! are sent again after that backoff (PATCH is idempotent), and since one flush runs at a time
//! and a pending row always holds the newest merged report, an older value is never sent after a
//! newer one. A write whose outcome is unknown may still be applied by Graph late, until
//! `requestMs` after its last request left: the claim notes it (in_doubt.rs), each request that
//! leaves later than the claim allowed writes its own end first (`departure`), the process keeps
//! the ends on the steady clock too (steady.rs), and a report that changes one of its values is
//! not claimed before then, so the late write cannot overwrite it. The claim puts the reports' acknowledged state in doubt, so a report set
//! back to an old value after an unknown outcome is sent, never skipped.
//!
//! A flush stops sending (the rest stays pending) after a batch that Graph throttled or asked to
//! wait longer than `maxDelayMs` (the rest is held back as long as Graph asked, at most
//! `MAX_OUTBOX_HOLD`), after a batch
//! whose every report got no answer at all (Graph cannot be reached now), no token, or a 401 a
//! fresh token did not cure (the rest waits out the same backoff, so an offline flush pays one
//! batch's retries and one token attempt, not one per batch), after a batch the client's own gate
//! (pacing, the hold after another call's 429) could not let leave within the call's budget
//! (paced: Graph was not asked, so nothing is held and the reports not sent stay due, no failure
//! counted), and once it has run `flushTime` (the rest stays due). What a stop holds back is held by one stored time for the whole outbox
//! (`hold`), so a stop writes the rows of its batch and one more, whatever the backlog. The
//! report's `stopped_by` says why a flush stopped early ([`FlushStop`]), the client's metrics
//! count it, and a stop for the credentials is logged at WARN (an operator must act). The flush's
//! own WARNs (that stop, reports moved to or dropped from the failed list) are logged once it has
//! let go of the flush lock: a logger may call into the outbox, a flush of it included.
//!
//! An interrupt (the outbox's or its client's, after the flush began) ends the flush wherever it
//! waits: for the flush lock, at the pacing gate, for a response (the batch in flight is
//! abandoned), in a `Retry-After` wait, for the file. The outcomes it has are recorded if the file
//! can be had within the interrupt's bound (else they wait out the claim's backoff, as after a
//! kill); the reports not sent stay pending, due as before their claim. The reports of the abandoned batch, an unknown
//! outcome, stay pending with their acknowledged state in doubt (the claim put it there), held
//! back by the same backoff as any other unknown outcome, and noted as writes Graph may still
//! apply (the connection was closed, not the request un-sent): a changed value waits until they
//! can no longer land. A round's outcomes count in the report once their record committed: a
//! record the interrupt ends leaves them pending, and the report says so. Whatever the interrupt
//! ended (the wait for the lock, a read, the record, the last read), the report's `pending` and
//! next attempt are then read through a read-only connection of the file's canonical path; if
//! even that fails, `pending` keeps what the flush knew was pending.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::busy;
use super::clock::{Clock, Horizon, rfc3339};
use super::failed_list;
use super::failure;
use super::hold;
use super::in_doubt;
use super::lock::FlushLock;
use super::options::OutboxOptions;
use super::report::FlushReport;
use super::schema;
use super::steady::{End, SteadyEnds};
use super::store::{self, Due, Outcome, Store};
use crate::batch::MAX_BATCH;
use crate::cancel::{Signal, Watch};
use crate::departure::Departure;
use crate::metrics::FlushStop;
use crate::{BulkResult, CallOptions, Client, Error, UpdateOutcome};

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
    /// The file's canonical path (paths.rs): what an interrupted flush's last read opens, whatever
    /// the process's current folder is now.
    pub file: &'a std::path::Path,
    /// The outbox's own cancellation signal (the client's is watched too).
    pub signal: &'a std::sync::Arc<Signal>,
    /// Until when the writes this process sent to the file may land, on the steady clock.
    pub steady: &'a std::sync::Arc<SteadyEnds>,
    /// Tests only: where the flush pauses for a test's hook.
    #[cfg(any(test, feature = "test-seams"))]
    pub seam: &'a super::seam::Seam,
}

/// One round's outcomes, counted into the flush's report once their record committed.
#[derive(Default)]
struct Tally {
    applied: u64,
    retry_later: u64,
    failed: u64,
    interrupted: u64,
}

impl Tally {
    fn add_to(&self, report: &mut FlushReport) {
        report.applied += self.applied;
        report.retry_later += self.retry_later;
        report.failed += self.failed;
        report.interrupted += self.interrupted;
    }
}

/// Why a flush stopped sending before the end.
enum Stop {
    /// Hold every report not sent until then (unix ms): the outbox-wide hold, for this cause
    /// (Graph throttled, or could not be reached).
    Until(i64, FlushStop),
    /// As `Until`, because the credentials were refused: the error's text, for the WARN.
    Refused(i64, String),
    /// `flushTime` ran out: what was not sent stays due.
    OutOfTime,
    /// The client's own gate refused a batch within the call's budget: what was not sent stays
    /// due, nothing is held (Graph throttled nothing).
    Paced,
}

impl Stop {
    fn cause(&self) -> FlushStop {
        match self {
            Stop::Until(_, why) => *why,
            Stop::Refused(..) => FlushStop::Auth,
            Stop::OutOfTime => FlushStop::Time,
            Stop::Paced => FlushStop::Paced,
        }
    }

    /// The end of the outbox-wide hold it sets, if any.
    fn holds_until(&self) -> Option<i64> {
        match self {
            Stop::Until(until, _) | Stop::Refused(until, _) => Some(*until),
            Stop::OutOfTime | Stop::Paced => None,
        }
    }
}

/// Runs a flush, writing what it did into `report` as it goes (so an interrupted flush's report
/// says what was done, and what is still pending).
pub(crate) fn flush(parts: &Flush<'_>, report: &mut FlushReport) -> Result<(), Error> {
    // Interrupts of the outbox, or of its client, from now on.
    let watch = Watch::new(parts.client.signal()).and(parts.signal);
    // The file's busy waits (busy.rs) find the watch on this thread.
    let _entered = watch.enter();
    // Logged once `send` let go of the flush lock (see the module's doc).
    let mut warnings = Vec::new();
    let done = send(parts, &watch, report, &mut warnings).and_then(|()| {
        #[cfg(any(test, feature = "test-seams"))]
        parts.seam.pause(super::seam::FlushSeam::BeforeLastRead);
        remaining(parts, report)
    });
    if let Err(error) = &done
        && error.is_cancelled()
    {
        report.stopped_by = Some(FlushStop::Interrupt);
        // Wherever the interrupt came (before the flush read anything, in its record, in its
        // last read), through a connection of its own: the handle's may be another call's for
        // longer than the interrupt allows, and a WAL read never waits for a writer. If even
        // that fails, the report keeps the lower bound `send` left in it (the reports it knew
        // were pending), and `stopped_by` says it did not drain.
        if let Ok(conn) = schema::open_read_only(parts.file, busy::AFTER_INTERRUPT) {
            let _ = remaining_in(&conn, parts, report);
        }
    }
    if let Some(why) = report.stopped_by {
        parts.client.pipeline().metrics().flush_stopped(why);
    }
    for warning in warnings {
        log::warn!("{warning}");
    }
    done
}

/// The WARN that a flush stopped because the credentials were refused: nothing goes out until an
/// operator fixes them. `error` is the error's text, which never holds a token.
fn refused(parts: &Flush<'_>, error: &str, report: &FlushReport, until: i64) -> String {
    format!(
        "outbox {}: flush stopped, the credentials were refused ({error}); {} reports pending, \
         held back until {}",
        parts.store.path(),
        report.pending,
        rfc3339(until)
    )
}

/// What is pending after the flush, and when the earliest is due.
fn remaining(parts: &Flush<'_>, report: &mut FlushReport) -> Result<(), Error> {
    parts.store.run(|conn| remaining_in(conn, parts, report))
}

/// [`remaining`], read through `conn`.
fn remaining_in(
    conn: &rusqlite::Connection,
    parts: &Flush<'_>,
    report: &mut FlushReport,
) -> Result<(), store::StoreError> {
    let horizon = Horizon::new(parts.clock.now_ms(), latest_wait(parts.client));
    let (pending, next) = store::remaining(conn, horizon)?;
    let held = hold::until(conn, hold_horizon(parts.client, horizon.now))?;
    report.pending = pending;
    report.next_attempt_in = next
        .map(|at| held.map_or(at, |until| at.max(until)))
        .map(|at| Duration::from_millis(u64::try_from(at - horizon.now).unwrap_or(0)));
    Ok(())
}

/// Takes the flush lock, then claims, sends and records round after round, until nothing is due,
/// a stop, or an interrupt of `watch`; what it has to log at WARN goes into `warnings`, for the
/// caller to log once the lock is released.
fn send(
    parts: &Flush<'_>,
    watch: &Watch,
    report: &mut FlushReport,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let Flush {
        client,
        store,
        options,
        clock,
        ..
    } = *parts;
    // flushTime counts from here: the wait for another flush's lock spends it too.
    let started = Instant::now();
    let Some(_lock) = FlushLock::acquire(
        parts.lock,
        client.total_timeout(),
        started + options.flush_time,
        watch,
    )?
    else {
        // Out of time before the other flush ended: nothing sent, everything stays due.
        report.stopped_by = Some(FlushStop::Time);
        return Ok(());
    };
    let horizon = Horizon::new(clock.now_ms(), latest_wait(client));
    let request_ms = millis(client.request_timeout());
    // Held back by a flush that stopped (throttled, unreachable, no credentials): nothing is due.
    let held = store.run(|conn| Ok(hold::until(conn, hold_horizon(client, horizon.now))?))?;
    if held.is_some_and(|until| until > horizon.now) {
        report.stopped_by = Some(FlushStop::Held);
        return Ok(());
    }
    let keys = store.run(|conn| store::due_keys(conn, horizon))?;
    // Of those, pending still as far as this flush knows: what the report says if it cannot read
    // the file at its end (a lower bound, never "drained" while these are pending).
    let mut left = keys.len() as u64;
    report.pending = left;
    let mut stop = None;
    let mut rounds = keys.chunks(ROUND);
    for round in rounds.by_ref() {
        if started.elapsed() >= options.flush_time {
            report.stopped_by = Some(FlushStop::Time);
            break;
        }
        if watch.cancelled() {
            return Err(Error::cancelled("between the flush's rounds", "", 0));
        }
        let now = clock.now_ms();
        let policy = client.retry_policy();
        let slack = in_doubt::DEPARTURE_SLACK_MS;
        // A wall clock stepped forward since this process sent writes: their steady ends go to
        // the file first (the usual round writes nothing here).
        let stepped = parts.steady.stepped((clock, now), slack);
        if !stepped.is_empty() {
            let ends = stepped.iter().map(|(key, until)| (key.as_str(), *until));
            store.run(|conn| store::leaving(conn, ends, request_ms))?;
        }
        let claimed = store.run(|conn| {
            store::claim(
                conn,
                round,
                options,
                (now, &rfc3339(now)),
                store.path(),
                (
                    request_ms,
                    |n| backoff(policy, n),
                    |key: &str| parts.steady.floor(key, (clock, now)),
                ),
            )
        })?;
        // What a claimed write's known outcome brings back, as its row's `in_doubt_before`.
        let steady_before: HashMap<String, _> = claimed
            .due
            .iter()
            .map(|due| (due.key.clone(), parts.steady.get(&due.key)))
            .collect();
        let claimed_keys = claimed.due.iter().map(|due| due.key.as_str());
        parts
            .steady
            .note(claimed_keys, (clock, now), request_ms + slack);
        report.skipped += claimed.skipped;
        report.failed += claimed.unreadable;
        left -= (claimed.skipped + claimed.unreadable).min(left);
        warnings.extend(failed_list::warnings(
            store.path(),
            claimed.unreadable,
            claimed.dropped,
        ));
        let mut due = claimed.due;
        // One API version per batch: each batch is one bulk call, one `$batch` request.
        due.sort_by_key(|due| due.version() as u8);
        let mut outcomes: Vec<(Due, Outcome)> = Vec::with_capacity(due.len());
        let mut tally = Tally::default();
        // The interrupt (or the storage error) that ended the flush; the reports not sent stay
        // pending, due.
        let mut interrupted: Option<Error> = None;
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            let version = due.peek().map(Due::version);
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while batch.len() < MAX_BATCH
                && let Some(next) = due.next_if(|d| Some(d.version()) == version)
            {
                batch.push(next);
            }
            // Not sent: due again as before the claim held it back.
            let not_sent = |batch: Vec<Due>| batch.into_iter().map(|due| (due, Outcome::NotSent));
            if stop.is_some() || started.elapsed() >= options.flush_time {
                stop.get_or_insert(Stop::OutOfTime);
                outcomes.extend(not_sent(batch));
                continue;
            }
            if interrupted.is_some() {
                outcomes.extend(not_sent(batch));
                continue;
            }
            if watch.cancelled() {
                interrupted = Some(Error::cancelled("between the flush's batches", "", 0));
                outcomes.extend(not_sent(batch));
                continue;
            }
            let items: Vec<_> = batch.iter().map(|due| due.item.clone()).collect();
            let ends = started + options.flush_time;
            let departure = departure(parts, &batch, (now, ends), request_ms);
            let (results, attempts): (Vec<_>, Vec<_>) = deliver(client, &items, watch, departure)
                .into_iter()
                .map(|r| (r.result, r.attempts))
                .unzip();
            // No token at all before anything reached Graph: the flush could not run. A retry
            // that found no token after a request carried its item is not this: that request's
            // outcome is unknown (judge).
            if report.sent == 0
                && outcomes.is_empty()
                && results
                    .iter()
                    .all(|r| matches!(r, Err(e) if e.auth().is_some() && e.attempts() == 0))
            {
                // Nothing went out: every report claimed is due as before its claim, and the
                // outbox is held as after a batch that failed whole (so the next flush does not
                // ask the token source again at once), in the same transaction.
                let now = clock.now_ms();
                let not_sent: Vec<_> = batch
                    .into_iter()
                    .chain(due)
                    .map(|due| (due, Outcome::NotSent))
                    .collect();
                let until = not_sent
                    .iter()
                    .map(|(due, _)| {
                        now.saturating_add(backoff(client.retry_policy(), due.failures))
                    })
                    .max()
                    .unwrap_or(now);
                let hold = Some((until, until - now));
                settle_steady(parts, &steady_before, &not_sent, now, request_ms);
                let steady = |key: &str| parts.steady.floor(key, (clock, now));
                store.run(|conn| {
                    store::record(conn, &not_sent, options, (now, request_ms, steady), hold)
                })?;
                let error = results
                    .into_iter()
                    .find_map(Result::err)
                    .unwrap_or_else(|| Error::invalid("flush", "no result"));
                // A token endpoint out of reach refused nothing: offline, no WARN.
                let refused = failure::refuses_the_credentials(&error);
                report.stopped_by = Some(if refused {
                    FlushStop::Auth
                } else {
                    FlushStop::Offline
                });
                // What is pending and when, as after any flush (the hold included).
                remaining(parts, report)?;
                if refused {
                    warnings.push(self::refused(parts, &error.to_string(), report, until));
                }
                return Err(error);
            }
            // Items no request carried (an interrupt stopped them at the pacing gate, waiting
            // for a token or for their turn; or no token could be had) were never sent.
            let unsent = attempts.iter().filter(|&&n| n == 0).count();
            report.sent += (batch.len() - unsent) as u64;
            // An interrupt, or an end in doubt that could not be written before a request left
            // (that request did not leave): the flush ends once the round is recorded.
            interrupted = results.iter().find_map(|r| {
                r.as_ref()
                    .err()
                    .filter(|e| e.is_cancelled() || matches!(e, Error::Storage { .. }))
                    .cloned()
            });
            // No token for a whole batch after an earlier one went out: the flush stops (judge)
            // and says so, as when its first batch has none.
            let tokenless = results
                .iter()
                .all(|r| matches!(r, Err(e) if failure::no_token(e)));
            if tokenless && interrupted.is_none() {
                interrupted = results.iter().find_map(|r| r.as_ref().err().cloned());
            }
            let (batch_outcomes, batch_stop) = judge(parts, batch, results, &attempts, &mut tally);
            outcomes.extend(batch_outcomes);
            stop = batch_stop;
        }
        #[cfg(any(test, feature = "test-seams"))]
        parts.seam.pause(super::seam::FlushSeam::BeforeRecord);
        // Recorded after an interrupt too: what finished is never sent again. A stop's hold
        // (one stored time holds the rest, however many reports are pending) goes in the same
        // transaction: a kill leaves both or neither.
        let now = clock.now_ms();
        let hold = stop
            .as_ref()
            .and_then(Stop::holds_until)
            .map(|until| (until, until - now));
        settle_steady(parts, &steady_before, &outcomes, now, request_ms);
        let steady = |key: &str| parts.steady.floor(key, (clock, now));
        let dropped = store
            .run(|conn| store::record(conn, &outcomes, options, (now, request_ms, steady), hold))?;
        tally.add_to(report);
        left -= (tally.applied + tally.failed).min(left);
        report.pending = left;
        warnings.extend(failed_list::warnings(store.path(), 0, dropped));
        // A request the file kept back (the departure's STORAGE) ends the flush: said so,
        // unless the round's stop holds the outbox (the hold is what the agent must see).
        report.stopped_by = match (&stop, &interrupted) {
            (Some(stop), _) if stop.holds_until().is_some() => Some(stop.cause()),
            (_, Some(Error::Storage { .. })) => Some(FlushStop::Storage),
            (stop, _) => stop.as_ref().map(Stop::cause),
        };
        // An error other than an interrupt (whose report flush() reads) still says what is
        // pending and when, as after any flush; if even that read fails, the error stands.
        if interrupted
            .as_ref()
            .is_some_and(|error| !error.is_cancelled())
        {
            let _ = remaining(parts, report);
        }
        if let Some((until, _)) = hold {
            if let Some(Stop::Refused(_, error)) = &stop {
                warnings.push(refused(parts, error, report, until));
            }
            return interrupted.map_or(Ok(()), Err);
        }
        if let Some(error) = interrupted {
            return Err(error);
        }
        if stop.is_some() {
            break;
        }
    }
    Ok(())
}

/// A round's `outcomes`, recorded at `now`, in the steady ends, before the record (whose prune
/// reads them): a known one brings back what its claim found (`before`), an unknown one may land
/// until `now` + `request_ms`. A record that fails then leaves the file more cautious than
/// them, never less: its rows are the claim's.
fn settle_steady(
    parts: &Flush<'_>,
    before: &HashMap<String, Option<End>>,
    outcomes: &[(Due, Outcome)],
    now: i64,
    request_ms: i64,
) {
    for (due, outcome) in outcomes {
        if outcome.known() {
            let before = before.get(&due.key).copied().flatten();
            parts.steady.restore(&due.key, before);
        } else {
            parts
                .steady
                .note([due.key.as_str()], (parts.clock, now), request_ms);
        }
    }
}

/// What each result of one batch means for its report, and whether the flush must stop sending.
fn judge(
    parts: &Flush<'_>,
    batch: Vec<Due>,
    results: Vec<Result<UpdateOutcome, Error>>,
    attempts: &[u32],
    tally: &mut Tally,
) -> (Vec<(Due, Outcome)>, Option<Stop>) {
    let policy = parts.client.retry_policy();
    let now = parts.clock.now_ms();
    // Graph unreachable, no token, or the credentials refused: the next batch would fare the same.
    let every_fails = results
        .iter()
        .all(|r| matches!(r, Err(e) if failure::fails_every_request(e)));
    // Which: the credentials (every one refused them: the first error's text, for the WARN),
    // else Graph unreachable.
    let refused = results
        .iter()
        .all(|r| matches!(r, Err(e) if failure::refuses_the_credentials(e)))
        .then(|| {
            results
                .iter()
                .find_map(|r| r.as_ref().err().map(ToString::to_string))
        })
        .flatten();
    let mut throttled_until: Option<i64> = None;
    let mut latest_retry = now;
    // The client's own gate kept one from leaving at all (it is not sent, and Graph throttled
    // nothing): the next batch would meet the gate too.
    let paced = results
        .iter()
        .any(|r| matches!(r, Err(e) if failure::refused_at_the_gate(e)));
    let outcomes = batch
        .into_iter()
        .zip(results)
        .zip(attempts)
        .map(|((due, result), &attempts)| {
            // After several requests carried it, what became of the earlier ones is unknown
            // (each failed in a way worth retrying): they may still land.
            let one = attempts <= 1;
            let outcome = match result {
                Ok(_) => {
                    tally.applied += 1;
                    Outcome::Applied { known: one }
                }
                // Nothing of it left: nothing is in doubt, and it is due as before its claim
                // (a stop for want of a token holds the outbox for its backoff).
                Err(ref err) if failure::never_sent(err, attempts) => {
                    if failure::no_token(err) {
                        let until = now.saturating_add(backoff(policy, due.failures));
                        latest_retry = latest_retry.max(until);
                    }
                    Outcome::NotSent
                }
                Err(err) if failure::is_permanent(&err) => {
                    tally.failed += 1;
                    Outcome::Failed {
                        error: failure::to_json(&err),
                        failed_at: rfc3339(now),
                        known: one,
                    }
                }
                // Abandoned by an interrupt (an unknown outcome, as below, and Graph may still
                // apply it) or an error worth retrying: pending, held back by the backoff.
                Err(err) => {
                    if err.is_cancelled() {
                        tally.interrupted += 1;
                    } else {
                        tally.retry_later += 1;
                    }
                    // A report's own wait is never longer than maxDelay (see clock.rs); a longer
                    // Retry-After holds the whole outbox instead, below.
                    let asked = err.retry_after();
                    let wait = asked.map_or_else(
                        || backoff(policy, due.failures),
                        |asked| millis(asked.min(policy.max_delay)),
                    );
                    let until = now.saturating_add(wait);
                    latest_retry = latest_retry.max(until);
                    // Graph throttles the app, not one report, and a wait it asks for is
                    // honoured, even past maxDelay (the hold caps it: hold.rs).
                    if err.is_throttled() || asked.is_some_and(|asked| asked > policy.max_delay) {
                        let until = now.saturating_add(asked.map_or(wait, millis));
                        throttled_until = Some(throttled_until.map_or(until, |t| t.max(until)));
                    }
                    Outcome::Retry {
                        until,
                        message: err.to_string(),
                        known: one && failure::never_processed(&err),
                    }
                }
            };
            (due, outcome)
        })
        .collect();
    // Throttled (or asked to wait), or a batch that failed whole for want of an answer or of
    // credentials: the rest would fare the same.
    let stop = match (throttled_until, refused) {
        (Some(until), _) => Some(Stop::Until(until, FlushStop::Throttled)),
        (None, Some(error)) => Some(Stop::Refused(latest_retry, error)),
        (None, None) if every_fails => Some(Stop::Until(latest_retry, FlushStop::Offline)),
        (None, None) => paced.then_some(Stop::Paced),
    };
    (outcomes, stop)
}

/// The wait (ms) after the next failure of a report that failed `failures` times in a row: what
/// its claim holds it back by, and its retry after a failure Graph gave no wait for. Never longer
/// than maxDelay, so a stored next attempt stays believed (clock.rs).
fn backoff(policy: &crate::RetryPolicy, failures: u32) -> i64 {
    millis(
        policy
            .backoff(failures.saturating_add(1))
            .min(policy.max_delay),
    )
}

/// The latest stored time believed (ms after now): a next attempt is at most `maxDelayMs` away,
/// or `requestMs` + the departure slack for a changed value held back behind a write in doubt
/// (in_doubt.rs).
fn latest_wait(client: &Client) -> i64 {
    millis(client.retry_policy().max_delay)
        .max(millis(client.request_timeout()).saturating_add(in_doubt::DEPARTURE_SLACK_MS))
}

/// How the outbox-wide hold is read at `now`: believed up to now + the longer of `maxDelayMs` and
/// the wait it was set for (hold.rs).
fn hold_horizon(client: &Client, now: i64) -> Horizon {
    Horizon::new(now, millis(client.retry_policy().max_delay))
}

fn millis(wait: Duration) -> i64 {
    i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)
}

/// Sends `items` (one batch) through the bulk path (`$batch`, per-item retries, pacing) and
/// returns one result per item, in order; the call watches the flush's `watch`, and runs
/// `departure` before each of its requests leaves.
fn deliver(
    client: &Client,
    items: &[crate::BulkItem],
    watch: &Watch,
    departure: Departure,
) -> Vec<BulkResult> {
    let options = CallOptions::new()
        .fetch_after_no_content(false)
        .watched_by(watch.clone().before_each_request(departure));
    client.update_user_statuses_detailed(items, &options)
}

/// What runs before each request carrying `batch` (claimed at `claimed`) leaves: the claim wrote
/// its writes in doubt until `claimed` + `request_ms` + the slack; a request leaving later than
/// the slack allows (a later batch of the round, a retry within the call, a wait at the pacing
/// gate, for a token or a 429 hold) first writes now + `request_ms` + the slack, in its own small
/// transaction, so the file holds each request in doubt for `requestMs` after it left whatever
/// stops the process meanwhile. The end written is kept in memory: a request that leaves in time
/// writes nothing. Its waits for the file end with the call's deadline (`timeouts.totalMs`, unset
/// by default) or the flush's end (`flush_ends`, `flushTime` after it began), whichever comes
/// first, and the request then stays back (STORAGE, which ends the bulk call: scheduler.rs). A
/// request leaving at or past the flush's end (a retry within the call) still waits
/// `busy::AFTER_INTERRUPT` for another connection's transaction. Only the hook's waits: the
/// flush's end does not cut a request in flight (its outcome would be unknown) nor the call's
/// other waits, which `flushTime` never bounded.
fn departure(
    parts: &Flush<'_>,
    batch: &[Due],
    (claimed, flush_ends): (i64, Instant),
    request_ms: i64,
) -> Departure {
    let store = parts.store.clone();
    let clock = parts.clock.clone();
    let steady = std::sync::Arc::clone(parts.steady);
    let keys: Vec<String> = batch.iter().map(|due| due.key.clone()).collect();
    let slack = in_doubt::DEPARTURE_SLACK_MS;
    let written = AtomicI64::new(claimed.saturating_add(request_ms).saturating_add(slack));
    Departure::new(move |deadline| {
        let by = flush_ends.max(Instant::now() + busy::AFTER_INTERRUPT);
        let by = Some(deadline.map_or(by, |deadline| deadline.min(by)));
        let write = |now: i64, until: i64| {
            let ends = keys.iter().map(|key| (key.as_str(), until));
            busy::within(by, || {
                store.run(|conn| store::leaving(conn, ends, request_ms))
            })
            .map_err(|error| match error {
                Error::Storage { reason, .. } => {
                    store.storage(format!("{reason}; the request was not sent"))
                }
                other => other,
            })?;
            steady.note(
                keys.iter().map(String::as_str),
                (&clock, now),
                request_ms + slack,
            );
            Ok(())
        };
        if note_departure(|| clock.now_ms(), &written, request_ms, write)? {
            return Ok(());
        }
        Err(store.storage(format!(
            "the file stayed busy longer than the departure slack ({slack} ms) through \
             {DEPARTURE_WRITES} writes of when the request may land; it was not sent"
        )))
    })
}

/// Writes through `write(now, until)` until when a request leaving now (`now()`) may land, now +
/// `request_ms` + the slack, unless `written` (the end last written) covers it already. A write
/// may wait for the file (another connection's write), and on a pooled connection nothing runs
/// this again: the clock is read again after each write, and a wait that ate the slack writes
/// again, [`DEPARTURE_WRITES`] times at most. `Ok(true)`: the end is written; `Ok(false)`: each
/// write was outwaited, and the request must stay back; an error of `write`, as it came.
fn note_departure(
    now: impl Fn() -> i64,
    written: &AtomicI64,
    request_ms: i64,
    mut write: impl FnMut(i64, i64) -> Result<(), Error>,
) -> Result<bool, Error> {
    let covered = |now: i64| now.saturating_add(request_ms) <= written.load(Ordering::Relaxed);
    for _ in 0..DEPARTURE_WRITES {
        let now = now();
        if covered(now) {
            return Ok(true);
        }
        let until = now
            .saturating_add(request_ms)
            .saturating_add(in_doubt::DEPARTURE_SLACK_MS);
        write(now, until)?;
        written.store(until, Ordering::Relaxed);
    }
    Ok(covered(now()))
}

/// How many times a departure writes its end before giving up, when each write waited for the
/// file longer than the slack: a busy file keeps the request back instead of letting it leave
/// with an end short of when it may land.
const DEPARTURE_WRITES: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const REQUEST_MS: i64 = 1_000;
    const SLACK: i64 = in_doubt::DEPARTURE_SLACK_MS;

    /// Runs `note_departure` for a request leaving at 10,000 whose claim wrote its end at
    /// `written`, each write taking the time `took` gives it (by its number): the result, and the
    /// writes (now, until).
    fn depart(written: i64, took: impl Fn(usize) -> i64) -> (Result<bool, Error>, Vec<(i64, i64)>) {
        let clock = Cell::new(10_000);
        let written = AtomicI64::new(written);
        let mut writes = Vec::new();
        let noted = note_departure(
            || clock.get(),
            &written,
            REQUEST_MS,
            |now, until| {
                writes.push((now, until));
                clock.set(clock.get() + took(writes.len()));
                Ok(())
            },
        );
        (noted, writes)
    }

    #[test]
    fn a_request_leaving_within_the_end_written_writes_nothing() {
        let (noted, writes) = depart(10_000 + REQUEST_MS, |_| 0);
        assert!(matches!(noted, Ok(true)) && writes.is_empty(), "{writes:?}");
    }

    /// A write that waited for the busy file longer than the slack is written again from when it
    /// ended; the second, quick, covers the request.
    #[test]
    fn a_write_outwaited_by_the_busy_file_is_written_again_from_its_end() {
        let (noted, writes) = depart(0, |n| if n == 1 { SLACK + 1 } else { 1 });
        assert!(matches!(noted, Ok(true)), "{noted:?}");
        let later = 10_000 + SLACK + 1;
        assert_eq!(
            writes,
            [
                (10_000, 10_000 + REQUEST_MS + SLACK),
                (later, later + REQUEST_MS + SLACK)
            ]
        );
    }

    /// The give-up branch: three writes, each outwaited by the busy file (each longer than the
    /// slack), and the request must stay back (`departure` then returns STORAGE).
    #[test]
    fn three_writes_each_outwaited_keep_the_request_back() {
        let (noted, writes) = depart(0, |_| SLACK + 1);
        assert!(matches!(noted, Ok(false)), "{noted:?} after {writes:?}");
        assert_eq!(writes.len(), DEPARTURE_WRITES, "{writes:?}");
        // A last write that ate less than the slack covers it.
        let (noted, writes) = depart(0, |n| {
            if n == DEPARTURE_WRITES {
                SLACK
            } else {
                SLACK + 1
            }
        });
        assert!(matches!(noted, Ok(true)), "{noted:?} after {writes:?}");
    }

    #[test]
    fn a_write_that_fails_ends_the_departure_with_its_error() {
        let written = AtomicI64::new(0);
        let noted = note_departure(
            || 10_000,
            &written,
            REQUEST_MS,
            |_, _| Err(Error::storage("o.db", "disk full")),
        );
        assert!(matches!(noted, Err(Error::Storage { .. })), "{noted:?}");
        assert_eq!(written.load(Ordering::Relaxed), 0, "nothing was written");
    }
}
