//! review-final probes: the harshest user's review of the outbox and transport changes merged in
//! 010b5da..ab13d0a (field18, doubt-fix2). Each probe FAILS on main ab13d0a; its comment gives
//! the sequence, what the user sees and what they should see. Probes only: no fix in src/.
#![cfg(feature = "outbox")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::builder;
use intune_user_status::{
    Client, Error, Outbox, OutboxOptions, RetryPolicy, Target, UserStatusPatch,
};
use ius_emulator::Emulator;

const KEY_U0: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses/u0";

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius-review-final-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn one_try_client(emu: &Emulator, request_ms: u64) -> Client {
    builder(&emu.base_url())
        .request_timeout(Duration::from_millis(request_ms))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap()
}

fn edit(path: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(statement).unwrap();
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Severity LOW (what an operator reads). Sequence: a backup tool hard-links the agent's outbox;
/// the agent restarts and opens it. Seen: STORAGE whose reason reads "... after the name it
/// <18 spaces> opens, so the names would corrupt it; open it by one name (remove the other
/// <18 spaces> hard links, ...)": src/outbox/paths.rs `one_name` breaks its string literal across
/// lines without a trailing `\`, so the source's indentation is part of the message (in the C
/// error JSON, the logs and the CLI too). Should: one sentence, single spaces.
#[cfg(unix)]
#[test]
fn probe_the_hard_link_refusal_reads_as_one_sentence() {
    let emu = common::emulator_with_statuses(["u0"]);
    let dir = folder("hard-link-text");
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    let client = common::client(&emu.base_url());
    drop(Outbox::open(&client, &a, OutboxOptions::new()).unwrap());
    std::fs::hard_link(&a, &b).unwrap();
    let Err(Error::Storage { reason, .. }) = Outbox::open(&client, &a, OutboxOptions::new()) else {
        panic!("a hard-linked file opened, or not STORAGE");
    };
    assert!(
        !reason.contains("  ") && !reason.contains('\n'),
        "the reason carries the source's line breaks and indentation: {reason:?}"
    );
}

/// Severity MEDIUM-LOW (an older value landing last, after a rollback and roll-forward).
/// docs/outbox.md and schema.rs say `request_ms` is nullable "so a version that does not know it
/// still reads and writes the table". It reads it, but it does not write it: the older build
/// (010b5da) records a write in doubt with
/// `INSERT INTO in_doubt (key, patch, until) ... ON CONFLICT (key) DO UPDATE SET patch, until`,
/// which keeps the row's `request_ms` of the newer build's earlier write.
/// Sequence: the new build (requestMs 1 s) leaves a row for u0 (ended, not yet pruned); the agent
/// is rolled back to the older build with requestMs 30 s, whose {devicesCount 1} times out: its
/// row now says until = now + 30 s but still request_ms = 1000. The agent is rolled forward
/// (requestMs 30 s) and enqueues {devicesCount 2}. Seen: the claim's `bound` clamps the row to
/// now + 1 s + 250 ms (coalesce(request_ms = 1000)), so 2 goes out ~1.25 s later while Graph
/// may apply 1 for 30 s: Graph may end on 1. Should: held back until the older build's end
/// (~30 s): a row written by a build that does not know the column must not keep a window that
/// is not its own (e.g. the newer build sets request_ms NULL when it meets a row whose until is
/// past what its request_ms allows, or keeps the schema version moving).
#[test]
fn probe_an_older_builds_write_in_doubt_keeps_its_own_window_after_a_roll_forward() {
    let emu = common::emulator_with_statuses(["u0"]);
    let dir = folder("older-build");
    let path = dir.join("o.db");
    // The newer build, requestMs 1 s, once sent a write for u0 whose end has passed (not pruned).
    drop(Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()).unwrap());
    let now = unix_ms();
    edit(
        &path,
        &format!(
            "INSERT INTO in_doubt (key, patch, until, request_ms)
                 VALUES ('{KEY_U0}', '{{\"devicesCount\":0}}', {}, 1000);",
            now - 5_000
        ),
    );
    // The older build (rolled back, requestMs 30 s): its {devicesCount 1} timed out; it records
    // it with its own statement (010b5da src/outbox/in_doubt.rs `set`).
    let older_until = unix_ms() + 30_000;
    edit(
        &path,
        &format!(
            "INSERT INTO in_doubt (key, patch, until) VALUES ('{KEY_U0}', '{{\"devicesCount\":1}}', {older_until})
             ON CONFLICT (key) DO UPDATE SET patch = excluded.patch, until = excluded.until;"
        ),
    );
    // Rolled forward, requestMs 30 s again.
    let outbox = Outbox::open(&one_try_client(&emu, 30_000), &path, OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "u0"),
            &UserStatusPatch::new().devices_count(2),
        )
        .unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(report.sent, 0, "2 went out at once: {report:?}");
    let left = report.next_attempt_in.expect("pending");
    assert!(
        left >= Duration::from_secs(25),
        "2 is held back only {left:?}, though the older build's 1 may land for ~30 s"
    );
}

/// The doc comment of the C function (or C++ method) `name` in `header`: the comment block just
/// above its declaration.
fn doc_of(header: &str, declaration: &str) -> String {
    let at = header.find(declaration).expect("declared");
    let before = &header[..at];
    let start = before
        .rfind("/**")
        .or_else(|| before.rfind("\n\n"))
        .unwrap_or(0);
    let mut doc = before[start..].to_owned();
    // The C++ header's `///` lines just above.
    if !doc.contains("/**") {
        doc = before
            .lines()
            .rev()
            .take_while(|line| line.trim_start().starts_with("///") || line.trim().is_empty())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
    }
    doc
}

/// Severity LOW (docs the C/C++ agent reads say something false or leave out a failure).
/// 1. `ius_outbox_open`'s header comment lists every STORAGE cause (missing folder, not SQLite,
///    newer version...) but not the one doubt-fix2 added: on Unix a file with more than one name
///    (hard links) is refused. An agent whose backup tool hard-links /var/lib (`cp -al`) stops
///    opening its outbox at its next start, and nothing in the header says why that can be.
/// 2. The C++ `Outbox::flush()` comment (and its FlushReport's) says a value comes back for
///    IUS_STATUS_OK, CANCELLED and AUTH only; since `FlushReport::tells_of`, `ius_outbox_flush`
///    also writes a report with any other status once requests went out (e.g. STORAGE recording
///    their outcomes, or the departure hook's STORAGE), so `flush()` returns a value with
///    `stopped` = STORAGE: an agent following the comment treats `stopped` as "interrupt or auth".
#[test]
fn probe_the_headers_say_what_open_refuses_and_when_flush_returns_a_report() {
    let c = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/intune_user_status.h"
    ))
    .unwrap();
    let cpp = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/intune_user_status.hpp"
    ))
    .unwrap();
    let open = doc_of(&c, "ius_status ius_outbox_open(");
    let flush = doc_of(&cpp, "Result<FlushReport> flush() const");
    let mut wrong = Vec::new();
    if !open.to_lowercase().contains("hard link") {
        wrong.push("ius_outbox_open's comment never says a hard-linked file is STORAGE");
    }
    if !flush.contains("STORAGE") && !flush.contains("sent >") {
        wrong.push("Outbox::flush()'s comment says a report comes only with OK, CANCELLED, AUTH");
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n--- flush():\n{flush}");
}
