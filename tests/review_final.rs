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

/// A loopback HTTP proxy that answers each `CONNECT` only after `delay` (a slow or far proxy, a
/// captive network), then tunnels `*.test` hosts to loopback: (its URL).
fn slow_connect_proxy(delay: Duration) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            std::thread::spawn(move || {
                let mut writer = client.try_clone().unwrap();
                let mut reader = BufReader::new(client);
                let mut first = String::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if first.is_empty() {
                        first = line.clone();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let port = first
                    .split(' ')
                    .nth(1)
                    .and_then(|t| t.rsplit_once(':'))
                    .unwrap()
                    .1;
                std::thread::sleep(delay);
                let upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
                writer
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let mut up_writer = upstream.try_clone().unwrap();
                let mut up_reader = upstream;
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = up_reader.read(&mut buf) {
                        if n == 0 || writer.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let mut client_reader = reader.into_inner();
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = client_reader.read(&mut buf) {
                    if n == 0 || up_writer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

/// Severity MEDIUM-LOW (after a kill: an older value may land last). doubt-fix2's rule: "each
/// request writes its end in doubt before it leaves when later than the claim allowed" (until =
/// the time it leaves + requestMs + 250 ms; in_doubt.rs: "a write not applied requestMs after it
/// left is never applied"). The departure hook runs before the attempt, and the attempt's
/// connect, proxy CONNECT and TLS handshake come after it: a request that spends seconds there
/// (a slow proxy, SYN retransmits on a flaky network, a captive portal) leaves seconds later
/// than the end written for it. Sequence: one report claimed at t0, the proxy answers CONNECT
/// 2 s later, the PATCH reaches Graph at ~t0 + 2 s; the file holds it in doubt until t0 +
/// 5.25 s (requestMs 5 s + 250 ms). A kill now (power loss of the laptop) leaves that end: after the
/// restart a changed value goes out at t0 + 5.25 s while the first may land until ~t0 + 7 s.
/// Should: the end covers the time the request really left (hook after the connection is made,
/// or the connect's time added), i.e. until >= left + requestMs.
#[test]
fn probe_a_request_delayed_by_a_slow_proxy_connect_is_in_doubt_from_when_it_left() {
    let emu = Emulator::start(ius_emulator::Config {
        token: Some(common::TOKEN.into()),
        tls: Some(common::proxied_tls()),
        seed: vec![ius_emulator::SeedEntry {
            collection: "/deviceManagement/deviceConfigurations/c1/userStatuses".into(),
            entity: serde_json::json!({ "id": "u0", "devicesCount": 0 }),
        }],
        ..ius_emulator::Config::default()
    })
    .unwrap();
    let client = builder(&common::proxied_url("graph.proxied.test", &emu))
        .proxy(slow_connect_proxy(Duration::from_secs(2)))
        .extra_root_certificates_pem(common::TEST_CA)
        .request_timeout(Duration::from_millis(5_000))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let dir = folder("slow-connect");
    let path = dir.join("o.db");
    let outbox = std::sync::Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox
        .enqueue(
            &Target::new("c1", "u0"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    // Graph answers 3 s after the request arrived, so it is in flight when the file is read.
    emu.add_fault(ius_emulator::FaultRule::next(
        1,
        ius_emulator::Fault::Latency(Duration::from_millis(3_000)),
    ));
    let flusher = {
        let outbox = std::sync::Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.wire_requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never left"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    // What a kill leaves now.
    let until: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT max(until) FROM in_doubt", [], |row| row.get(0))
        .unwrap();
    let flushed = flusher.join().unwrap();
    assert!(
        until >= left + 5_000 - 300,
        "the PATCH reached Graph at {left} and may land until {}, but the file holds it in \
         doubt only until {until} ({} ms short): {flushed:?}",
        left + 5_000,
        left + 5_000 - until
    );
}
