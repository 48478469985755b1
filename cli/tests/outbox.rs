//! `ius outbox PATH ...` as an operator uses it: looking (`stats`, `failed`) never writes the
//! file, the failed list is kept until `requeue-failed` moves it back, and `--options` gives the
//! agent's bounds.

mod common;

use common::{DIRECT, TOKEN, code, emulator, error_json, ius, run, scratch, stderr, stdout};
use ius_emulator::Config;
use serde_json::{Value, json};

/// The whole file and its companions, to compare before and after.
fn snapshot(path: &std::path::Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-shm", "-flush"]
        .iter()
        .map(|suffix| {
            let name = format!("{}{suffix}", path.display());
            let bytes = std::fs::read(&name).ok();
            (name, bytes)
        })
        .collect()
}

/// `ius outbox FILE enqueue cfg-1 ID --patch {"devicesCount":7}`, which must succeed.
fn enqueue(file: &str, id: &str) {
    let out = ius()
        .args(["outbox", file, "enqueue", "cfg-1", id, "--patch"])
        .arg(r#"{"devicesCount":7}"#)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn looking_at_an_older_file_neither_migrates_nor_writes_it() {
    let path = scratch("schema-1.outbox");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("../../tests/fixtures/outbox-schema-1.sql"))
        .unwrap();
    drop(conn);
    let before = snapshot(&path);
    for action in ["stats", "failed"] {
        let out = ius()
            .args(["outbox", path.to_str().unwrap(), action])
            .output()
            .unwrap();
        assert_eq!(code(&out), 14, "{action}: {}", stderr(&out));
        let error = error_json(&out);
        assert_eq!(error["status"], "STORAGE");
        let reason = error["message"].as_str().unwrap();
        assert!(
            reason.contains("schema 1") && reason.contains("not migrated"),
            "{action}: {reason}"
        );
        assert_eq!(snapshot(&path), before, "{action} left the file as it was");
    }
    // Nor is a file that is not there made.
    let missing = scratch("no-such.outbox");
    for action in ["stats", "failed", "requeue-failed", "flush"] {
        let out = run(
            &emulator(0, Config::default()),
            &["outbox", missing.to_str().unwrap(), action],
        );
        assert_eq!(code(&out), 2, "{action}: {}", stderr(&out));
        assert!(!missing.exists(), "{action}");
    }
}

#[test]
fn a_404d_report_is_kept_in_failed_until_requeued_then_a_flush_delivers_it() {
    let emu = emulator(0, Config::default());
    let path = scratch("failed.outbox");
    let file = path.to_str().unwrap();
    enqueue(file, "later");
    let out = run(&emu, &["outbox", file, "flush"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["failed"], 1, "{report}");

    // Twice: looking keeps it. Credentials are not needed, and two sources of them do not matter.
    let looks: Vec<String> = (0..2)
        .map(|_| {
            let out = ius()
                .env("IUS_CONFIG", r#"{"accessToken":"a"}"#)
                .env("IUS_TOKEN", "b")
                .args(["outbox", file, "failed"])
                .output()
                .unwrap();
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            stdout(&out)
        })
        .collect();
    assert_eq!(looks[0], looks[1]);
    let lines: Vec<&str> = looks[0].lines().collect();
    assert_eq!(lines.len(), 1, "{}", looks[0]);
    assert!(lines[0].starts_with(r#"{"target":"#), "{}", lines[0]);
    let failed: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(failed["target"]["userStatusId"], "later");
    assert_eq!(failed["patch"], json!({"devicesCount": 7}));
    assert_eq!(
        (&failed["error"]["status"], &failed["error"]["httpStatus"]),
        (&"GRAPH".into(), &404.into())
    );
    assert!(failed["failedAt"].as_str().unwrap().ends_with('Z'));
    let stats = ius().args(["outbox", file, "stats"]).output().unwrap();
    let stats: Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(
        (&stats["pending"], &stats["failed"]),
        (&0.into(), &1.into())
    );

    // The user status now exists: requeue and flush deliver the report.
    emu.insert_user_status(DIRECT, json!({"id": "later", "devicesCount": 0}))
        .unwrap();
    emu.clear_requests();
    let out = ius()
        .args(["outbox", file, "requeue-failed"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).unwrap(),
        json!({"requeued": 1})
    );
    assert!(emu.requests().is_empty(), "requeue sends nothing");
    let out = ius().args(["outbox", file, "failed"]).output().unwrap();
    assert_eq!((code(&out), stdout(&out)), (0, String::new()));
    let out = run(&emu, &["outbox", file, "flush"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&report["applied"], &report["failed"], &report["pending"]),
        (&1.into(), &0.into(), &0.into()),
        "{report}"
    );
    assert_eq!(emu.user_status(DIRECT, "later").unwrap()["devicesCount"], 7);
}

#[test]
fn options_give_the_agents_bounds_and_bad_ones_name_their_key() {
    let path = scratch("options.outbox");
    let file = path.to_str().unwrap();
    let enqueue = |status: &str, options: &str| {
        ius()
            .args(["outbox", file, "enqueue", "cfg-1", status])
            .args(["--patch", r#"{"devicesCount":1}"#, "--options", options])
            .output()
            .unwrap()
    };
    let out = enqueue("s0", r#"{"maxPending":1}"#);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = enqueue("s1", r#"{"maxPending":1}"#);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    assert_eq!(error_json(&out)["status"], "OUTBOX_FULL");
    let out = enqueue("s1", r#"{"maxPending":0}"#);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(error_json(&out)["field"], "maxPending");
    let out = enqueue("s1", r#"{"maxPendng":5}"#);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(error_json(&out)["field"], "maxPendng");

    let emu = emulator(1, Config::default());
    let options = format!("@{}", scratch("options.json").display());
    std::fs::write(&options[1..], r#"{"flushTimeMs":60000}"#).unwrap();
    let out = ius()
        .args(["--base-url", &emu.base_url(), "--token", TOKEN])
        .args(["outbox", file, "flush", "--options", &options])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["applied"], 1, "{report}");
}

/// A flush with no token (here the token endpoint cannot be reached) fails as AUTH, and prints
/// its report first: stoppedBy says why (offline: nothing refused the credentials), and what is
/// pending and when it is tried again (the hold that stop left).
#[test]
fn a_flush_with_no_token_prints_its_report_and_fails() {
    let emu = emulator(0, Config::default());
    let path = scratch("no-token.outbox");
    let file = path.to_str().unwrap();
    enqueue(file, "s0");
    // A loopback port nobody listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = json!({
        "baseUrl": emu.base_url(),
        "auth": {"tenantId": "contoso.onmicrosoft.com", "clientId": "app-id", "clientSecret": "s3cret"},
        "authorityHost": format!("http://{closed}"),
        "retry": {"maxRetries": 0, "baseDelayMs": 10},
    })
    .to_string();
    let out = ius()
        .args(["--config", &config, "outbox", file, "flush"])
        .output()
        .unwrap();
    assert_eq!(error_json(&out)["status"], "AUTH", "{}", stderr(&out));
    assert_ne!(code(&out), 0);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&report["stoppedBy"], &report["pending"], &report["sent"]),
        (&json!("offline"), &json!(1), &json!(0)),
        "{report}"
    );
    assert!(report["nextAttemptInSeconds"].is_number(), "{report}");
    assert!(emu.requests().is_empty(), "nothing reached Graph");
}

/// The file refuses the write the flush's first request needs before it leaves (its end in
/// doubt: here a trigger stands for a full disk, installed while the token takes 1 s, past the
/// departure slack): the request is kept back, nothing reaches Graph, and the flush fails as
/// STORAGE, printing its report first: stoppedBy storage, nothing sent, the report pending and
/// due as before.
#[test]
fn a_flush_whose_first_request_the_file_kept_back_prints_its_report_and_fails() {
    use ius_emulator::{Fault, FaultRule};
    let emu = common::app_emulator();
    let path = scratch("kept-back.outbox");
    let file = path.to_str().unwrap();
    enqueue(file, "s0");
    emu.add_fault(
        FaultRule::next(1, Fault::Latency(std::time::Duration::from_secs(1)))
            .path_contains("/oauth2/"),
    );
    let flush = ius()
        .args(["--config", &common::app_config(&emu, "the-right-one")])
        .args(["outbox", file, "flush"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The claim is written once the token is asked for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while emu.token_requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no token asked for");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch(
        "CREATE TRIGGER the_disk_is_full BEFORE UPDATE OF until ON in_doubt
         WHEN NEW.until > OLD.until BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .unwrap();
    let out = flush.wait_with_output().unwrap();
    assert_eq!(error_json(&out)["status"], "STORAGE", "{}", stderr(&out));
    assert_ne!(code(&out), 0);
    assert!(emu.requests().is_empty(), "nothing reached Graph");
    // Seen failing before the fix: nothing printed (stdout empty).
    let report: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("no report ({e}): {:?}", stdout(&out)));
    assert_eq!(
        (&report["stoppedBy"], &report["pending"], &report["sent"]),
        (&json!("storage"), &json!(1), &json!(0)),
        "{report}"
    );
}
