//! Review probes (review18) of the outbox's writes in doubt and stop reasons, after the fixes
//! 0719ffc..010b5da. Each probe is a sequence a device agent can meet; each FAILS on main
//! (010b5da) and says what the user sees and what they should see. Probes only: no fix here.
#![cfg(feature = "outbox")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::builder;
use intune_user_status::{Client, Outbox, OutboxOptions, RetryPolicy, Target, UserStatusPatch};
use ius_emulator::{Emulator, Fault, FaultRule};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn folder(name: &str) -> PathBuf {
    common::fresh_folder("review18", name)
}

fn count(n: i32) -> UserStatusPatch {
    UserStatusPatch::new().devices_count(n)
}

fn devices(emu: &Emulator, id: &str) -> i64 {
    emu.user_status(DIRECT, id).expect("seeded")["devicesCount"]
        .as_i64()
        .unwrap()
}

/// A client with one try per call and a request budget of `request_ms`.
fn client(emu: &Emulator, request_ms: u64) -> Client {
    builder(&emu.base_url())
        .request_timeout(Duration::from_millis(request_ms))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap()
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What an agent does: flush every 50 ms until nothing is pending (bounded).
fn drain(outbox: &Outbox) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.stats().unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "never drained");
        let _ = outbox.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The writes in doubt the file holds now (what `kill -9` would leave): (key, until).
fn in_doubt_rows(path: &std::path::Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn.prepare("SELECT key, until FROM in_doubt").unwrap();
    statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// MEDIUM. The claim notes a write in doubt until claim + requestMs, and `leaving` moves that
/// end only for a round's later batches. The client's retries WITHIN one call leave later than
/// the claim too (after a 504: default backoff 3 s, 6 s, 12 s, up to maxTotalWait 180 s, or a
/// Retry-After), and nothing writes their end before they leave: while a retry is in flight the
/// file (what `kill -9`, a power cut or a service stop leaves) holds the write in doubt only
/// until claim + requestMs. Sequence: W {devicesCount 1} claimed, its first PATCH gets a 504
/// (unknown: Graph may apply it), the retry leaves ~800 ms later and is in flight; the agent is
/// killed; after restart a changed value is sent once claim + requestMs passed, and the retry
/// (which may land until it left + requestMs) overwrites it. User sees: Graph ends with the old
/// value. Should see: the file holds the retry in doubt until it left + requestMs.
#[test]
fn probe_the_file_must_hold_a_retry_within_the_call_in_doubt_for_request_ms_after_it_left() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("retry-left");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(R as u64))
        .retry_policy(
            RetryPolicy::none()
                .max_retries(1)
                .base_delay(Duration::from_millis(800)),
        )
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 504,
                retry_after: None,
            },
        )
        .method("PATCH"),
    );
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_000))).method("PATCH"));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    // Two requests on the wire (a lone report goes as a PATCH or in a `$batch`): the retry left.
    while emu.wire_requests().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the retry never left: {:?}",
            emu.requests()
                .iter()
                .map(|r| (r.method.clone(), r.path().to_owned()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    // What a kill leaves now, while the retry is in flight.
    let rows = in_doubt_rows(&path);
    let _ = flusher.join();
    let until = rows
        .iter()
        .map(|(_, until)| *until)
        .min()
        .expect("in doubt");
    assert!(
        until >= left + R - 100,
        "the retry left at {left} and may land until {}, but the file holds it in doubt only \
         until {until} ({} ms after it left)",
        left + R,
        until - left
    );
}

/// MEDIUM (same root as the probe above, no retry needed). A round's FIRST batch is taken to leave
/// at its claim (`leaving` runs only for later batches), but it may wait first: at the client's
/// pacing gate (`pacing`, shared with the agent's direct updates), in the client-wide hold a 429
/// on another call set, or for a token. Sequence: pacing 1 request per 1.5 s; the agent's direct
/// update of u1 takes the slot; a flush claims u0 and its batch waits ~1.5 s at the gate, then
/// leaves. While it is in flight, the file (what `kill -9` leaves) says u0's write can land only
/// until claim + requestMs (1 s), i.e. it was already "over" before it left. After a restart a
/// changed value goes at once and the in-flight write overwrites it. Should: the end on disk is
/// at least the time the request left + requestMs.
#[test]
fn probe_the_file_must_hold_a_first_batch_that_waited_at_the_gate_in_doubt_after_it_left() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 2));
    let dir = folder("gate-left");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(R as u64))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_500),
        ))
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // The agent's own direct update takes the pacing slot.
    client
        .update_user_status(&Target::new("c1", "u1"), &count(5))
        .unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_000))).method("PATCH"));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.wire_requests().len() < 2 {
        assert!(Instant::now() < deadline, "the flush's batch never left");
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    let rows = in_doubt_rows(&path);
    let _ = flusher.join();
    let until = rows
        .iter()
        .filter(|(key, _)| key.ends_with("/u0"))
        .map(|(_, until)| *until)
        .min()
        .expect("u0 in doubt");
    assert!(
        until >= left + R - 100,
        "u0's write left at {left} and may land until {}, but the file holds it in doubt only \
         until {until} ({} ms after it left)",
        left + R,
        until - left
    );
}

/// MEDIUM (design; simulated). Ends in doubt are wall-clock only, and the model
/// (src/outbox/model_check.rs `may_land`: "at < claimed + REQUEST" on the outbox's own clock)
/// shares the assumption, so it can never find this: it lets Graph land a late write only while
/// the OUTBOX's clock has not passed claim + requestMs, whereas Graph's window is real time. A
/// wall clock stepped forward (NTP after resume, a VM restored, an operator) ends every write in
/// doubt early. Sequence: W1 {devicesCount 1} times out (Graph applies it 2.5 s after it left,
/// within its record + requestMs = 3 s); the clock steps forward 2 s (simulated: the stored end
/// moved back 2 s, which is what the file then looks like against the clock); {devicesCount 2}
/// is enqueued (OK) and flushed at once; W1 lands after it. User sees: Graph holds 1, the outbox
/// drained. Should: within the process that recorded W1, a monotonic clock (Instant) knows only
/// ~0 s passed and keeps W1 in doubt; across a restart a forward jump cannot be told from time
/// passing (say so in docs/outbox.md, which now lists forward jumps only as "due now").
#[test]
fn probe_a_clock_stepped_forward_must_not_end_a_write_in_doubt_early_in_the_same_process() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("forward");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let sent_w1 = Instant::now();
    let outbox = Outbox::open(&client(&emu, 1_500), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(1)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    // The wall clock steps forward 2 s: the stored end is 2 s nearer.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("UPDATE in_doubt SET until = until - 2000")
        .unwrap();
    conn.execute_batch("UPDATE pending SET next_attempt_at = next_attempt_at - 2000")
        .unwrap();
    drop(conn);
    outbox.enqueue(&u0, &count(2)).unwrap();
    drain(&outbox);
    let sent_2 = sent_w1.elapsed();
    while sent_w1.elapsed() < Duration::from_millis(3_200) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drain(&outbox);
    assert_eq!(
        devices(&emu, "u0"),
        2,
        "devicesCount 2 was applied {sent_2:?} after W1 left; W1 landed after it (2.5 s)"
    );
}
