//! The outbox proved against a plain reference model: random sequences of enqueues (values that
//! repeat and go back, several user statuses, both API versions), flushes whose requests are
//! applied, throttled, failing, applied with the answer lost, or refused for good (the emulator's
//! faults, per user status), reopenings (a kill: the handle dropped, the file opened again) and
//! wall-clock jumps forward and back (the outbox's [`Clock`], set by the test), and interrupts
//! (`Outbox::interrupt` from another thread while a flush's batch waits for an answer that never
//! comes).
//!
//! After every step the outbox's figures (and a flush's report) equal the model's. After a final
//! healthy drain, the emulator holds for every user status and property a value the model allows
//! (exactly the last one enqueued, unless Graph refused it for good), and no user status was ever
//! sent an older value after a newer one (checked on the emulator's request log against the order
//! of the enqueues).
//!
//! `PROPTEST_CASES=N` runs N cases (default [`CASES`]; the README's outbox section gives the
//! longer run's figure).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ius_emulator::{Config, Emulator, Fault, FaultRule, SeedEntry};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

use super::clock::Clock;
use crate::{
    ApiVersion, BulkItem, Client, ComplianceStatus, Enqueued, Error, FlushReport, Outbox,
    OutboxOptions, RetryPolicy, Target, UserStatusPatch,
};

/// Cases when `PROPTEST_CASES` is not set: under a minute on a loaded 2-core machine.
const CASES: u32 = 24;
/// User statuses `t0` .. under `c1`.
const TARGETS: usize = 3;
/// The client's `retry.maxDelayMs` and `baseDelayMs`, and the outbox's `resendAfter`.
const MAX_DELAY: i64 = 1_000;
const BASE_DELAY: i64 = 10;
const RESEND_AFTER: i64 = 60_000;
/// A throttled request's `Retry-After`, in ms (sent as "0.01").
const THROTTLE: i64 = 10;
/// The virtual clock's start (2027).
const START: i64 = 1_800_000_000_000;
const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";
/// Few values, so values repeat and go back often.
const STATUSES: [ComplianceStatus; 2] = [ComplianceStatus::Compliant, ComplianceStatus::Error];
const COUNTS: i32 = 2;

/// What a user status's requests meet during one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Applied,
    /// 429 with `Retry-After`.
    Throttled,
    /// 503 without `Retry-After`: the client's backoff.
    Failing,
    /// Applied, then the connection reset: the answer (of its whole batch) is lost.
    LostAnswer,
    /// 404: refused for good.
    Refused,
}

/// One step of an agent's life.
#[derive(Debug, Clone)]
enum Step {
    /// A report for `target` through beta or v1.0, setting `devicesCount` and/or `status`.
    Enqueue {
        target: usize,
        v1: bool,
        count: Option<i32>,
        status: Option<usize>,
    },
    /// A flush; each user status's requests meet its fate.
    Flush([Fate; TARGETS]),
    /// A kill: the handle dropped, the file opened again.
    Reopen,
    /// The wall clock jumps by this many milliseconds.
    Clock(i64),
    /// A flush interrupted while its batch number `.1` (0: beta, 1: v1.0, of those it sends)
    /// waits for an answer that never comes: the batches before meet their fates, that one is
    /// abandoned (an unknown outcome: pending, as `LostAnswer` without the backoff), the rest
    /// stays pending, due. A flush that never sends that batch runs to its end.
    Interrupt([Fate; TARGETS], usize),
}

fn step() -> impl Strategy<Value = Step> {
    let fate = prop_oneof![
        4 => Just(Fate::Applied),
        1 => Just(Fate::Throttled),
        1 => Just(Fate::Failing),
        1 => Just(Fate::LostAnswer),
        1 => Just(Fate::Refused),
    ];
    // Jumps are whole seconds, so a backoff (10 ms to maxDelay) never straddles "due".
    let jump = prop_oneof![
        4 => Just(2 * MAX_DELAY),
        1 => Just(RESEND_AFTER + 1_000),
        1 => Just(365 * 86_400_000),
        1 => Just(-365 * 86_400_000),
        1 => Just(-600_000),
    ];
    prop_oneof![
        5 => (0..TARGETS, any::<bool>(), proptest::option::of(0..COUNTS), proptest::option::of(0..STATUSES.len()))
            .prop_map(|(target, v1, count, status)| Step::Enqueue {
                target,
                v1,
                count: if status.is_none() { Some(count.unwrap_or(0)) } else { count },
                status,
            }),
        4 => proptest::array::uniform3(fate.clone()).prop_map(Step::Flush),
        1 => (proptest::array::uniform3(fate), 0..2usize)
            .prop_map(|(fates, batch)| Step::Interrupt(fates, batch)),
        1 => Just(Step::Reopen),
        3 => jump.prop_map(Step::Clock),
    ]
}

/// A report's properties: name -> JSON value, as the file and the wire hold them.
type Props = BTreeMap<&'static str, String>;
/// A (user status, property) pair.
type Slot = (usize, &'static str);

fn props(count: Option<i32>, status: Option<usize>) -> Props {
    let mut props = Props::new();
    if let Some(count) = count {
        props.insert("devicesCount", count.to_string());
    }
    if let Some(status) = status {
        props.insert("status", json!(STATUSES[status]).to_string());
    }
    props
}

/// A pending report as the model holds it; `next` is the range its next attempt lies in.
struct Pending {
    props: Props,
    v1: bool,
    next: (i64, i64),
    failures: u32,
}

/// The reference model: plain maps, no SQL, no clock of its own.
struct Model {
    now: i64,
    pending: BTreeMap<usize, Pending>,
    /// What Graph acknowledged: value and time, per user status and property.
    acknowledged: BTreeMap<Slot, (String, i64)>,
    applied: u64,
    skipped: u64,
    failed: u64,
    /// Every value enqueued, in order, per user status and property.
    history: BTreeMap<Slot, Vec<String>>,
    /// The values Graph may hold, per user status and property.
    may_hold: BTreeMap<Slot, BTreeSet<String>>,
}

/// What a flush should report; `next` is the range of `nextAttemptInSeconds` in ms.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    sent: u64,
    applied: u64,
    retry_later: u64,
    failed: u64,
    skipped: u64,
    interrupted: u64,
    pending: u64,
    next: Option<(i64, i64)>,
}

/// The batch an interrupt abandons: its user statuses, and the inner requests the flush sent
/// before it.
#[derive(Debug)]
struct Abandoned {
    targets: Vec<usize>,
    sent_before: usize,
}

impl Model {
    fn new() -> Model {
        let mut may_hold = BTreeMap::new();
        for target in 0..TARGETS {
            may_hold.insert((target, "devicesCount"), BTreeSet::from(["0".to_owned()]));
            may_hold.insert(
                (target, "status"),
                BTreeSet::from(["\"unknown\"".to_owned()]),
            );
        }
        Model {
            now: START,
            pending: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            applied: 0,
            skipped: 0,
            failed: 0,
            history: BTreeMap::new(),
            may_hold,
        }
    }

    /// Every property acknowledged with this value less than resendAfter ago (not in the future).
    fn covers(&self, target: usize, props: &Props) -> bool {
        !props.is_empty()
            && props.iter().all(|(name, value)| {
                self.acknowledged
                    .get(&(target, name))
                    .is_some_and(|(acked, at)| {
                        acked == value && *at <= self.now && self.now - at < RESEND_AFTER
                    })
            })
    }

    fn enqueue(&mut self, target: usize, v1: bool, props: Props) -> Enqueued {
        for (name, value) in &props {
            self.history
                .entry((target, name))
                .or_default()
                .push(value.clone());
        }
        if let Some(pending) = self.pending.get_mut(&target) {
            pending.props.extend(props);
            pending.v1 = v1;
            return Enqueued::Merged;
        }
        if self.covers(target, &props) {
            self.skipped += 1;
            return Enqueued::Skipped;
        }
        let now = self.now;
        self.pending.insert(
            target,
            Pending {
                props,
                v1,
                next: (now, now),
                failures: 0,
            },
        );
        Enqueued::Stored
    }

    /// A stored next attempt as believed now: one past now + maxDelay is now.
    fn believed(&self, (low, high): (i64, i64)) -> (i64, i64) {
        let latest = self.now + MAX_DELAY;
        if low > latest {
            (self.now, self.now)
        } else {
            assert!(
                high <= latest,
                "the model's clock steps made {low}..{high} ambiguous"
            );
            (low, high)
        }
    }

    fn is_due(&self, next: (i64, i64)) -> bool {
        let (low, high) = self.believed(next);
        assert!(
            high <= self.now || low > self.now,
            "the model's clock steps made {low}..{high} ambiguous at {}",
            self.now
        );
        high <= self.now
    }

    /// The client's backoff before retry `n`, as a range (±20 % jitter, capped at maxDelay).
    fn backoff(&self, n: u32) -> (i64, i64) {
        let nominal = BASE_DELAY << (n.saturating_sub(1).min(16));
        (
            self.now + (nominal * 8 / 10).min(MAX_DELAY),
            self.now + ((nominal * 12 + 9) / 10).min(MAX_DELAY),
        )
    }

    fn flush(&mut self, fates: &[Fate; TARGETS]) -> Expected {
        self.flush_interrupted(fates, None).0
    }

    /// A flush whose batch number `abandon` (of those it sends), if it sends that many, is
    /// abandoned by an interrupt; then the abandoned batch.
    fn flush_interrupted(
        &mut self,
        fates: &[Fate; TARGETS],
        abandon: Option<usize>,
    ) -> (Expected, Option<Abandoned>) {
        let mut expected = Expected::default();
        let mut abandoned: Option<Abandoned> = None;
        let mut batches_sent = 0;
        let due: Vec<usize> = self
            .pending
            .iter()
            .filter(|(_, pending)| self.is_due(pending.next))
            .map(|(&target, _)| target)
            .collect();
        // The claim: skipped if acknowledged, else in doubt until a 2xx.
        let mut claimed = Vec::new();
        for target in due {
            if self.covers(target, &self.pending[&target].props) {
                self.pending.remove(&target);
                self.skipped += 1;
                expected.skipped += 1;
                continue;
            }
            for name in self.pending[&target].props.keys() {
                self.acknowledged.remove(&(target, *name));
            }
            claimed.push((target, self.pending[&target].v1));
        }
        // One batch per API version, beta first; a stop holds the rest back.
        let mut stop: Option<(i64, i64)> = None;
        for v1 in [false, true] {
            let batch: Vec<usize> = claimed
                .iter()
                .filter(|(_, version)| *version == v1)
                .map(|(target, _)| *target)
                .collect();
            if batch.is_empty() {
                continue;
            }
            if let Some((low, high)) = stop {
                for target in batch {
                    let pending = self.pending.get_mut(&target).expect("claimed");
                    pending.next = (pending.next.0.max(low), pending.next.1.max(high));
                }
                continue;
            }
            if abandoned.is_some() {
                // Not sent after the interrupt: pending, due, in doubt since the claim.
                continue;
            }
            expected.sent += batch.len() as u64;
            if abandon == Some(batches_sent) {
                // No answer, then the interrupt: an unknown outcome, nothing recorded.
                for &target in &batch {
                    for (name, value) in &self.pending[&target].props {
                        self.may_hold
                            .entry((target, name))
                            .or_default()
                            .insert(value.clone());
                    }
                }
                expected.interrupted += batch.len() as u64;
                abandoned = Some(Abandoned {
                    sent_before: expected.sent as usize - batch.len(),
                    targets: batch,
                });
                continue;
            }
            batches_sent += 1;
            let lost = batch.iter().any(|&t| fates[t] == Fate::LostAnswer);
            let mut throttled = None;
            let mut latest = (self.now, self.now);
            for target in batch {
                let fate = if lost {
                    Fate::LostAnswer
                } else {
                    fates[target]
                };
                match fate {
                    Fate::Applied => {
                        let pending = self.pending.remove(&target).expect("claimed");
                        for (name, value) in pending.props {
                            self.acknowledged
                                .insert((target, name), (value.clone(), self.now));
                            self.may_hold
                                .insert((target, name), BTreeSet::from([value]));
                        }
                        self.applied += 1;
                        expected.applied += 1;
                    }
                    Fate::Refused => {
                        self.pending.remove(&target);
                        self.failed += 1;
                        expected.failed += 1;
                    }
                    Fate::Throttled | Fate::Failing | Fate::LostAnswer => {
                        expected.retry_later += 1;
                        let failures = self.pending[&target].failures + 1;
                        let until = match fate {
                            Fate::Throttled => (self.now + THROTTLE, self.now + THROTTLE),
                            _ => self.backoff(failures),
                        };
                        let pending = self.pending.get_mut(&target).expect("claimed");
                        pending.failures = failures;
                        pending.next = until;
                        if fate == Fate::LostAnswer {
                            for (name, value) in &pending.props {
                                self.may_hold
                                    .entry((target, name))
                                    .or_default()
                                    .insert(value.clone());
                            }
                        }
                        if fate == Fate::Throttled {
                            throttled = Some(until);
                        }
                        latest = (latest.0.max(until.0), latest.1.max(until.1));
                    }
                }
            }
            stop = throttled.or(lost.then_some(latest));
        }
        expected.pending = self.pending.len() as u64;
        expected.next = self
            .pending
            .values()
            .map(|pending| self.believed(pending.next))
            .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
            .map(|(low, high)| ((low - self.now).max(0), (high - self.now).max(0)));
        (expected, abandoned)
    }
}

/// The system under test: the emulator, a client, the outbox and its clock.
struct Real {
    emulator: Emulator,
    client: Client,
    path: std::path::PathBuf,
    clock: Clock,
    set: Arc<AtomicI64>,
    outbox: Option<Outbox>,
}

fn target(index: usize) -> Target {
    Target::new("c1", format!("t{index}"))
}

fn options() -> OutboxOptions {
    OutboxOptions::new().resend_after(Duration::from_millis(RESEND_AFTER as u64))
}

impl Real {
    fn start(folder: &Path) -> Real {
        let emulator = Emulator::start(Config {
            seed: (0..TARGETS)
                .map(|i| SeedEntry {
                    collection: DIRECT.into(),
                    entity: json!({ "id": format!("t{i}"), "devicesCount": 0, "status": "unknown" }),
                })
                .collect(),
            ..Config::default()
        })
        .expect("start the emulator");
        let client = Client::builder()
            .base_url(emulator.base_url())
            .access_token("model-token")
            .retry_policy(
                RetryPolicy::none()
                    .base_delay(Duration::from_millis(BASE_DELAY as u64))
                    .max_delay(Duration::from_millis(MAX_DELAY as u64)),
            )
            .total_timeout(Duration::from_secs(10))
            .build()
            .expect("a client");
        let (clock, set) = Clock::fixed(START);
        let path = folder.join("outbox.db");
        let mut real = Real {
            emulator,
            client,
            path,
            clock,
            set,
            outbox: None,
        };
        real.reopen();
        real
    }

    fn reopen(&mut self) {
        self.outbox = None;
        self.outbox = Some(
            Outbox::open_with_clock(&self.client, &self.path, options(), self.clock.clone())
                .expect("open the outbox"),
        );
    }

    fn outbox(&self) -> &Outbox {
        self.outbox.as_ref().expect("open")
    }

    fn flush(&self, fates: &[Fate; TARGETS]) -> FlushReport {
        self.set_faults(fates, &[]);
        let report = self.outbox().flush().expect("a flush runs");
        self.emulator.clear_faults();
        report
    }

    /// Each user status's requests meet its fate, those of `stalled` no answer at all.
    fn set_faults(&self, fates: &[Fate; TARGETS], stalled: &[usize]) {
        for &index in stalled {
            self.emulator.add_fault(
                FaultRule::always(Fault::NoAnswer)
                    .method("PATCH")
                    .path_contains(format!("/userStatuses/t{index}")),
            );
        }
        for (index, fate) in fates.iter().enumerate() {
            if stalled.contains(&index) {
                continue;
            }
            let fault = match fate {
                Fate::Applied => continue,
                Fate::Throttled => Fault::Status {
                    status: 429,
                    retry_after: Some(format!("{}", THROTTLE as f64 / 1000.0)),
                },
                Fate::Failing => Fault::Status {
                    status: 503,
                    retry_after: None,
                },
                Fate::LostAnswer => Fault::LostAnswer,
                Fate::Refused => Fault::Status {
                    status: 404,
                    retry_after: None,
                },
            };
            self.emulator.add_fault(
                FaultRule::always(fault)
                    .method("PATCH")
                    .path_contains(format!("/userStatuses/t{index}")),
            );
        }
    }

    /// A flush whose `abandoned` batch gets no answer: once the emulator has its first request,
    /// another thread interrupts the outbox. The flush must end `Cancelled`.
    fn interrupted_flush(
        &self,
        fates: &[Fate; TARGETS],
        abandoned: &Abandoned,
    ) -> Result<FlushReport, TestCaseError> {
        self.set_faults(fates, &abandoned.targets);
        let stalled = self.emulator.batch_items().len() + abandoned.sent_before + 1;
        let (result, report) = std::thread::scope(|scope| {
            let flushing = scope.spawn(|| {
                let mut report = FlushReport::default();
                (self.outbox().flush_into(&mut report), report)
            });
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            while self.emulator.batch_items().len() < stalled
                && !flushing.is_finished()
                && std::time::Instant::now() < give_up
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            // The request is on the wire (or its answer awaited): interrupt it.
            std::thread::sleep(Duration::from_millis(10));
            self.outbox().interrupt();
            flushing.join().expect("the flush thread")
        });
        self.emulator.clear_faults();
        check(result.as_ref().is_err_and(Error::is_cancelled), || {
            format!("the interrupted flush returned {result:?} ({report:?})")
        })?;
        Ok(report)
    }
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}

fn check_report(
    report: &FlushReport,
    expected: &Expected,
    step: usize,
) -> Result<(), TestCaseError> {
    let got = (
        report.sent,
        report.applied,
        report.retry_later,
        report.failed,
        report.skipped,
        report.interrupted,
        report.pending,
    );
    let want = (
        expected.sent,
        expected.applied,
        expected.retry_later,
        expected.failed,
        expected.skipped,
        expected.interrupted,
        expected.pending,
    );
    check(got == want, || {
        format!("step {step}: the flush reported {report:?}, the model {expected:?}")
    })?;
    let next = report.next_attempt_in.map(|d| d.as_millis() as i64);
    let fits = match (next, expected.next) {
        (None, None) => true,
        (Some(ms), Some((low, high))) => ms >= low && ms <= high && ms <= MAX_DELAY,
        _ => false,
    };
    check(fits, || {
        format!(
            "step {step}: next attempt in {next:?} ms, the model {:?}",
            expected.next
        )
    })
}

fn check_stats(real: &Real, model: &Model, step: usize) -> Result<(), TestCaseError> {
    let stats = real.outbox().stats().expect("stats");
    let got = (
        stats.pending,
        stats.failed,
        stats.skipped,
        stats.applied,
        stats.failed_dropped,
    );
    let want = (
        model.pending.len() as u64,
        model.failed,
        model.skipped,
        model.applied,
        0,
    );
    check(got == want, || {
        format!(
            "step {step}: stats (pending, failed, skipped, applied, failedDropped) {got:?}, the model {want:?}"
        )
    })
}

/// Runs `steps` on a fresh emulator and file, checking after every step, then drains.
fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    static CASE: AtomicI64 = AtomicI64::new(0);
    let folder = std::env::temp_dir().join(format!(
        "ius-model-{}-{}",
        std::process::id(),
        CASE.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("a folder");
    let mut real = Real::start(&folder);
    let mut model = Model::new();
    let result = (|| {
        for (index, step) in steps.iter().enumerate() {
            match step {
                Step::Enqueue {
                    target: t,
                    v1,
                    count,
                    status,
                } => {
                    let mut patch = UserStatusPatch::new();
                    if let Some(count) = count {
                        patch = patch.devices_count(*count);
                    }
                    if let Some(status) = status {
                        patch = patch.status(STATUSES[*status]);
                    }
                    let version = if *v1 {
                        ApiVersion::V1_0
                    } else {
                        ApiVersion::Beta
                    };
                    let item = BulkItem::new(target(*t), patch).api_version(version);
                    let got = real.outbox().enqueue_many(&[item]).expect("an enqueue");
                    let want = model.enqueue(*t, *v1, props(*count, *status));
                    check(got == [want], || {
                        format!("step {index}: enqueued {got:?}, the model {want:?}")
                    })?;
                }
                Step::Flush(fates) => {
                    let want = model.flush(fates);
                    let report = real.flush(fates);
                    check_report(&report, &want, index)?;
                }
                Step::Interrupt(fates, batch) => {
                    let (want, abandoned) = model.flush_interrupted(fates, Some(*batch));
                    let report = match &abandoned {
                        Some(abandoned) => real.interrupted_flush(fates, abandoned)?,
                        // The flush never sends that batch: nothing to interrupt.
                        None => real.flush(fates),
                    };
                    check_report(&report, &want, index)?;
                }
                Step::Reopen => real.reopen(),
                Step::Clock(jump) => {
                    real.set.fetch_add(*jump, Ordering::SeqCst);
                    model.now += jump;
                }
            }
            check_stats(&real, &model, index)?;
        }
        // A healthy drain, past every backoff.
        real.set.fetch_add(2 * MAX_DELAY, Ordering::SeqCst);
        model.now += 2 * MAX_DELAY;
        let healthy = [Fate::Applied; TARGETS];
        for round in 0..3 {
            let want = model.flush(&healthy);
            let report = real.flush(&healthy);
            check_report(&report, &want, steps.len() + round)?;
        }
        check(model.pending.is_empty(), || {
            "the model did not drain".into()
        })?;
        check_stats(&real, &model, steps.len() + 3)?;
        check_graph(&real.emulator, &model)
    })();
    drop(real);
    let _ = std::fs::remove_dir_all(&folder);
    result
}

/// Graph holds a value the model allows for every property ever reported, and no user status was
/// ever sent an older value after a newer one.
fn check_graph(emulator: &Emulator, model: &Model) -> Result<(), TestCaseError> {
    for (&(target, name), values) in &model.may_hold {
        if !model.history.contains_key(&(target, name)) {
            continue;
        }
        let held = emulator
            .user_status(DIRECT, &format!("t{target}"))
            .map_or(Value::Null, |status| status[name].clone())
            .to_string();
        check(values.contains(&held), || {
            format!("t{target}.{name}: Graph holds {held}, the model allows {values:?}")
        })?;
    }
    // Each PATCH sent, per property, matches an enqueue no earlier than the previous one's.
    let mut position: BTreeMap<Slot, usize> = BTreeMap::new();
    for request in emulator.batch_items() {
        if request.method != "PATCH" {
            continue;
        }
        let path = request.path().to_owned();
        let target: usize = path
            .rsplit("/t")
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a t<n> path");
        let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
        for (name, value) in body.as_object().expect("an object") {
            let name: &'static str = if name == "status" {
                "status"
            } else {
                "devicesCount"
            };
            let history = &model.history[&(target, name)];
            let from = position.get(&(target, name)).copied().unwrap_or(0);
            let value = value.to_string();
            let found = history[from..]
                .iter()
                .position(|enqueued| *enqueued == value);
            check(found.is_some(), || {
                format!(
                    "t{target}.{name}: {value} was sent after a later value \
                     (enqueued in order: {history:?}, matched up to {from})"
                )
            })?;
            position.insert((target, name), from + found.unwrap_or(0));
        }
    }
    Ok(())
}

#[test]
fn the_outbox_follows_the_model() {
    let mut config = ProptestConfig {
        // A failure's minimal steps are printed; nothing is written into src/.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    let mut runner = TestRunner::new(config);
    let steps = proptest::collection::vec(step(), 1..40);
    if let Err(failure) = runner.run(&steps, |steps| run(&steps)) {
        panic!("{failure}");
    }
}
