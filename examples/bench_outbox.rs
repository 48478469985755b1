//! The outbox's costs, in a release build; prints one JSON line per figure:
//!
//! - `enqueue`: enqueues per second, one transaction (and one fsync) each, new targets;
//! - `enqueue_many`: reports per second through `enqueue_many`, 100 per transaction;
//! - `bare_insert`: a bare rusqlite `INSERT` per transaction into a table of the same shape, with
//!   the same settings (WAL, `synchronous=FULL`): the floor the outbox builds on;
//! - `flush`: reports per second flushing 10,000 pending reports to the in-process emulator;
//! - `claim_skipped`: reports per second through a flush's claims alone: as many pending reports,
//!   each set back to the value Graph just acknowledged, so every claim reads, compares and
//!   removes it, and no request goes out (the per-row SQL of the claim, without HTTP);
//! - `flush_in_doubt`: reports per second flushing as many pending reports to the emulator from a
//!   file that also holds `--in-doubt` writes in doubt (of other user statuses, still able to
//!   land): what the claims' bound and the records' prune of those writes add to a flush.
//!
//! The three flush figures also print the CPU time of the flushing thread (`..._cpu`, where the
//! system says it: Linux), which a loaded machine moves far less than the wall clock.
//!
//! ```text
//! cargo run --release --example bench_outbox -- [--n 2000] [--pending 10000] [--in-doubt 100000]
//!     [--dir DIR]
//! ```
//! `--dir` is where the files go (default: the system's temporary folder); the figures are the
//! disk's fsync rate as much as the code's (a tmpfs such as `/dev/shm` leaves the code's).
//! `--n 0` skips the enqueue figures, `--in-doubt 0` the last one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use intune_user_status::{BulkItem, Client, Outbox, OutboxOptions, Target, UserStatusPatch};
use ius_emulator::{Config, Emulator, SeedEntry};

fn line(name: &str, n: usize, seconds: f64) {
    println!(
        "{{\"bench\":\"{name}\",\"n\":{n},\"seconds\":{seconds:.3},\"per_s\":{:.0}}}",
        n as f64 / seconds
    );
}

/// The CPU time this thread has used, in seconds, where the system says (Linux:
/// `/proc/thread-self/schedstat`): a figure that other processes on a loaded machine do not move
/// as they move the wall clock.
fn thread_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// [`line`], with this thread's CPU time since `cpu_before` when it is known.
fn line_cpu(name: &str, n: usize, seconds: f64, cpu_before: Option<f64>) {
    line(name, n, seconds);
    if let (Some(before), Some(after)) = (cpu_before, thread_cpu()) {
        let cpu = after - before;
        println!(
            "{{\"bench\":\"{name}_cpu\",\"n\":{n},\"cpu_seconds\":{cpu:.3},\"per_cpu_s\":{:.0}}}",
            n as f64 / cpu
        );
    }
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm", "-flush"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// Puts `n` writes in doubt into the outbox at `path`, for user statuses no report names, each
/// able to land for 90 s more (under the default `requestMs` of 100 s, so no claim rewrites
/// them): what a file holds after a flush whose answers were lost, an outage of Graph's.
fn put_in_doubt(path: &Path, n: usize) {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 90_000;
    let tx = conn.transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare("INSERT INTO in_doubt (key, patch, until) VALUES (?1, ?2, ?3)")
            .expect("in_doubt");
        for i in 0..n {
            insert
                .execute(rusqlite::params![
                    format!("/deviceManagement/deviceConfigurations/doubt/userStatuses/u{i}"),
                    r#"{"devicesCount":1}"#,
                    until
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn patch(i: usize) -> UserStatusPatch {
    UserStatusPatch::new().devices_count(i as i32)
}

/// Reports for user statuses `u0` .. `u{n-1}` of the emulator's seed, status `i` set to
/// `patch(i + shift)`.
fn reports(n: usize, shift: usize) -> Vec<BulkItem> {
    (0..n)
        .map(|i| BulkItem::new(Target::new("bench", format!("u{i}")), patch(i + shift)))
        .collect()
}

/// Flushes `outbox`: its report, the wall clock it took (s) and this thread's CPU time before.
fn timed_flush(outbox: &Outbox) -> (intune_user_status::FlushReport, f64, Option<f64>) {
    let cpu = thread_cpu();
    let started = Instant::now();
    let report = outbox.flush().expect("flush");
    (report, started.elapsed().as_secs_f64(), cpu)
}

fn main() {
    let mut n = 2000usize;
    let mut pending = 10_000usize;
    let mut in_doubt = 100_000usize;
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().expect("a value after each flag");
        match flag.as_str() {
            "--n" => n = value.parse().expect("--n N"),
            "--pending" => pending = value.parse().expect("--pending N"),
            "--in-doubt" => in_doubt = value.parse().expect("--in-doubt N"),
            "--dir" => dir = value.into(),
            other => panic!(
                "unknown flag {other}; usage: bench_outbox [--n N] [--pending N] [--in-doubt N] \
                 [--dir DIR]"
            ),
        }
    }
    // Nothing is sent while enqueueing: the client points at a closed port.
    let offline = Client::builder()
        .base_url("http://127.0.0.1:9")
        .access_token("bench")
        .build()
        .expect("client");

    let outbox = Outbox::open(
        &offline,
        fresh(&dir, "bench-enqueue.db"),
        OutboxOptions::new(),
    )
    .expect("open");
    let started = Instant::now();
    for i in 0..n {
        outbox
            .enqueue(&Target::new("bench", format!("u{i}")), &patch(i))
            .expect("enqueue");
    }
    line("enqueue", n, started.elapsed().as_secs_f64());

    let outbox =
        Outbox::open(&offline, fresh(&dir, "bench-many.db"), OutboxOptions::new()).expect("open");
    let items: Vec<_> = (0..n * 10)
        .map(|i| BulkItem::new(Target::new("bench", format!("u{i}")), patch(i)))
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(100) {
        outbox.enqueue_many(chunk).expect("enqueue_many");
    }
    line("enqueue_many", items.len(), started.elapsed().as_secs_f64());

    let conn = rusqlite::Connection::open(fresh(&dir, "bench-bare.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE pending (key TEXT PRIMARY KEY, target TEXT, patch TEXT, revision INTEGER,
                               enqueued_at INTEGER, next_attempt_at INTEGER);",
    )
    .expect("schema");
    let started = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO pending VALUES (?1, ?2, ?3, ?4, 0, 0)",
            rusqlite::params![
                format!("/beta/deviceManagement/deviceConfigurations/bench/userStatuses/u{i}"),
                format!(r#"{{"deviceConfigurationId":"bench","userStatusId":"u{i}","apiVersion":"beta"}}"#),
                format!(r#"{{"devicesCount":{i}}}"#),
                i as i64
            ],
        )
        .expect("insert");
    }
    line("bare_insert", n, started.elapsed().as_secs_f64());

    let emulator = Emulator::start(Config {
        token: Some("bench".into()),
        seed: (0..pending)
            .map(|i| SeedEntry {
                collection: "/deviceManagement/deviceConfigurations/bench/userStatuses".into(),
                entity: serde_json::json!({ "id": format!("u{i}") }),
            })
            .collect(),
        ..Config::default()
    })
    .expect("emulator");
    let client = Client::builder()
        .base_url(emulator.base_url())
        .access_token("bench")
        .build()
        .expect("client");
    let outbox =
        Outbox::open(&client, fresh(&dir, "bench-flush.db"), OutboxOptions::new()).expect("open");
    let items = reports(pending, 0);
    outbox.enqueue_many(&items).expect("enqueue_many");
    let (report, seconds, cpu) = timed_flush(&outbox);
    assert_eq!(
        (report.applied, report.pending),
        (pending as u64, 0),
        "{report:?}"
    );
    line_cpu("flush", pending, seconds, cpu);

    // Each report changed, then set back to what Graph acknowledged (merged into one row).
    for chunk in reports(pending, 1).chunks(1000) {
        outbox.enqueue_many(chunk).expect("enqueue_many");
    }
    for chunk in items.chunks(1000) {
        outbox.enqueue_many(chunk).expect("enqueue_many");
    }
    let (report, seconds, cpu) = timed_flush(&outbox);
    assert_eq!(
        (report.sent, report.skipped, report.pending),
        (0, pending as u64, 0),
        "{report:?}"
    );
    line_cpu("claim_skipped", pending, seconds, cpu);

    if in_doubt > 0 {
        let path = fresh(&dir, "bench-in-doubt.db");
        let outbox = Outbox::open(&client, &path, OutboxOptions::new()).expect("open");
        put_in_doubt(&path, in_doubt);
        outbox
            .enqueue_many(&reports(pending, 2))
            .expect("enqueue_many");
        let (report, seconds, cpu) = timed_flush(&outbox);
        assert_eq!(
            (report.applied, report.pending),
            (pending as u64, 0),
            "{report:?}"
        );
        line_cpu("flush_in_doubt", pending, seconds, cpu);
    }
    emulator.shutdown();
}
