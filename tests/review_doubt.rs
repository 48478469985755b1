//! Review probes (review18) of the outbox's writes in doubt and stop reasons, after the fixes
//! 0719ffc..010b5da. Each probe is a sequence a device agent can meet; each FAILS on main
//! (010b5da) and says what the user sees and what they should see. Probes only: no fix here.
#![cfg(feature = "outbox")]

mod common;

use std::path::PathBuf;
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

/// What an agent does: flush every 50 ms until nothing is pending (bounded).
fn drain(outbox: &Outbox) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.stats().unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "never drained");
        let _ = outbox.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
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
