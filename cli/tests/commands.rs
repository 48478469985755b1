//! The built `ius` against the emulator: for each command, what the emulator received and what
//! came out (standard output, the error JSON on standard error, the exit code), and the errors
//! (a bad patch naming the field, a 404, auth, usage, configuration).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{
    DIRECT, TOKEN, app_config, app_emulator, code, emulator, error_json, ius, run, scratch, spawn,
    stderr, stdout,
};
use ius_emulator::{Config, Fault, FaultRule, PatchReturns};
use serde_json::{Value, json};

#[test]
fn update_sends_the_patch_and_prints_nothing_after_a_204() {
    let emu = emulator(1, Config::default());
    let out = run(
        &emu,
        &[
            "update",
            "cfg-1",
            "s0",
            "--patch",
            r#"{"status":"compliant","devicesCount":3}"#,
        ],
    );
    assert_eq!(
        (code(&out), stdout(&out), stderr(&out)),
        (0, String::new(), String::new())
    );
    let sent = emu.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "PATCH");
    assert_eq!(sent[0].path(), format!("/beta{DIRECT}/s0"));
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body, json!({"status": "compliant", "devicesCount": 3}));
    assert_eq!(emu.user_status(DIRECT, "s0").unwrap()["devicesCount"], 3);
}

#[test]
fn update_prints_the_object_graph_returns_and_takes_the_route_and_version() {
    let emu = emulator(
        1,
        Config {
            patch_returns: PatchReturns::Ok,
            ..Config::default()
        },
    );
    let out = run(
        &emu,
        &[
            "update",
            "cfg-1",
            "s0",
            "--patch",
            r#"{"devicesCount":4}"#,
            "--api-version",
            "v1.0",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(
        (&printed["id"], &printed["devicesCount"]),
        (&"s0".into(), &4.into())
    );
    assert_eq!(stdout(&out).lines().count(), 1, "one line of JSON");
    assert_eq!(emu.requests()[0].path(), format!("/v1.0{DIRECT}/s0"));

    // A route with a certificate id: the path the documentation gives it.
    let out = run(
        &emu,
        &[
            "update",
            "cfg-1",
            "s9",
            "--patch",
            r#"{"devicesCount":1}"#,
            "--route",
            "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}",
            "--certificate-id",
            "root 1",
        ],
    );
    assert_eq!(code(&out), 8, "no such user status there: {}", stderr(&out));
    assert_eq!(
        emu.requests()[1].path(),
        "/beta/deviceManagement/deviceConfigurations/cfg-1/microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/root%201/userStatuses/s9"
    );
}

#[test]
fn get_list_create_and_delete_print_what_graph_answered() {
    let emu = emulator(3, Config::default());
    let out = run(&emu, &["get", "cfg-1", "s1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let entity: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(entity["id"], "s1");

    let out = run(
        &emu,
        &["list", "cfg-1", "--top", "2", "--select", "id,devicesCount"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let ids: Vec<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s0", "s1", "s2"], "every page");
    let pages: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .skip(1)
        .collect();
    assert_eq!(pages.len(), 2, "two pages of 2");
    assert!(pages[0].target.contains("$top=2"), "{}", pages[0].target);
    assert!(
        pages[0].target.contains("$select=id,devicesCount"),
        "{}",
        pages[0].target
    );

    let out = run(
        &emu,
        &[
            "create",
            "cfg-1",
            "--entity",
            r#"{"id":"new-1","devicesCount":7}"#,
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&created["id"], &created["devicesCount"]),
        (&"new-1".into(), &7.into())
    );
    let post = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.path(), format!("/beta{DIRECT}"));
    assert_eq!(emu.user_status(DIRECT, "new-1").unwrap()["devicesCount"], 7);

    let out = run(&emu, &["delete", "cfg-1", "new-1"]);
    assert_eq!(
        (code(&out), stdout(&out)),
        (0, String::new()),
        "{}",
        stderr(&out)
    );
    assert_eq!(emu.requests().last().unwrap().method, "DELETE");
    assert!(emu.user_status(DIRECT, "new-1").is_none());
}

#[test]
fn a_bad_patch_names_the_field_and_sends_nothing() {
    let emu = emulator(1, Config::default());
    for (patch, field) in [
        (r#"{"devicesCount":"three"}"#, "devicesCount"),
        (r#"{"devicesCount":-1}"#, "devicesCount"),
        (r#"{"colour":"red"}"#, "colour"),
        (r#"{"devicesCount":"#, "patch"),
    ] {
        let out = run(&emu, &["update", "cfg-1", "s0", "--patch", patch]);
        assert_eq!(code(&out), 6, "{patch}: {}", stderr(&out));
        let error = error_json(&out);
        assert_eq!(
            (&error["status"], &error["field"]),
            (&"INVALID_INPUT".into(), &field.into()),
            "{patch}"
        );
        assert_eq!(stdout(&out), "");
    }
    let out = run(
        &emu,
        &[
            "update", "cfg-1", "s0", "--patch", "{}", "--route", "nowhere",
        ],
    );
    assert_eq!(
        (code(&out), &error_json(&out)["field"]),
        (6, &"route".into())
    );
    assert!(emu.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_404_is_graphs_error_with_the_ids_support_needs() {
    let emu = emulator(0, Config::default());
    let out = run(&emu, &["get", "cfg-1", "missing"]);
    assert_eq!(code(&out), 8);
    assert_eq!(stdout(&out), "");
    let error = error_json(&out);
    assert_eq!(error["status"], "GRAPH");
    assert_eq!(error["httpStatus"], 404);
    assert_eq!(error["code"], "ResourceNotFound");
    let sent = emu.requests();
    assert!(error["requestId"].as_str().is_some());
    assert_eq!(
        error["clientRequestId"].as_str(),
        sent[0].header("client-request-id"),
        "the id the request carried"
    );
    // The keys in their documented order, `status` first, as the C API writes them.
    let text = stderr(&out);
    let at: Vec<usize> = [
        "status",
        "message",
        "httpStatus",
        "code",
        "requestId",
        "clientRequestId",
        "attempts",
    ]
    .iter()
    .map(|key| text.find(&format!("\"{key}\":")).unwrap())
    .collect();
    assert!(text.starts_with(r#"{"status":"GRAPH","#), "{text}");
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn graph_refusing_the_token_or_the_permission_exits_auth() {
    let emu = emulator(1, Config::default());
    let out = ius()
        .args(["--base-url", &emu.base_url(), "--token", "expired-token"])
        .args(["get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let error = error_json(&out);
    assert_eq!(
        (&error["status"], &error["httpStatus"]),
        (&"GRAPH".into(), &401.into()),
        "Graph's own error JSON"
    );
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 403,
        retry_after: None,
    }));
    let out = run(
        &emu,
        &["update", "cfg-1", "s0", "--patch", r#"{"devicesCount":1}"#],
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(error_json(&out)["httpStatus"], 403);
    // Other client errors stay GRAPH's code.
    emu.clear_faults();
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 409,
        retry_after: None,
    }));
    let out = run(&emu, &["get", "cfg-1", "s0"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
}

#[test]
fn patch_and_entity_read_a_file_after_an_at_sign_or_standard_input_for_a_dash() {
    let emu = emulator(1, Config::default());
    let file = scratch("patch.json");
    std::fs::write(&file, "\u{feff}{\"devicesCount\":5}\n").unwrap();
    let at_file = format!("@{}", file.display());
    let out = run(&emu, &["update", "cfg-1", "s0", "--patch", &at_file]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(emu.user_status(DIRECT, "s0").unwrap()["devicesCount"], 5);

    let mut child = spawn(&emu, &["create", "cfg-1", "--entity", "-"]);
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        br#"{"id":"from-stdin","devicesCount":6}"#,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        emu.user_status(DIRECT, "from-stdin").unwrap()["devicesCount"],
        6
    );

    let out = run(
        &emu,
        &[
            "update",
            "cfg-1",
            "s0",
            "--patch",
            "@/nonexistent/patch.json",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = error_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("--patch: cannot read /nonexistent/patch.json"),
        "{message}"
    );
}

#[test]
#[cfg(unix)]
fn a_closed_standard_output_fails_before_anything_is_sent() {
    let emu = emulator(1, Config::default());
    // `>&-`: the shell closes descriptor 1 before it runs ius.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$@" >&-"#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_ius"))
        .args(["--base-url", &emu.base_url(), "--token", TOKEN])
        .args(["get", "cfg-1", "s0"])
        .env_remove("IUS_CONFIG")
        .env_remove("IUS_TOKEN")
        .env_remove("IUS_BASE_URL")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let error = error_json(&out);
    assert_eq!(error["status"], "FAILED");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("standard output"),
        "{error}"
    );
    assert!(emu.requests().is_empty(), "nothing was sent");
}

#[test]
fn throttling_that_outlasts_the_retries_exits_throttled() {
    let emu = emulator(1, Config::default());
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 429,
        retry_after: Some("0".into()),
    }));
    let config = json!({
        "baseUrl": emu.base_url(),
        "accessToken": TOKEN,
        "retry": {"maxRetries": 1, "baseDelayMs": 1},
    });
    let out = ius()
        .args(["--config", &config.to_string(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let error = error_json(&out);
    assert_eq!(
        (&error["status"], &error["httpStatus"], &error["attempts"]),
        (&"THROTTLED".into(), &429.into(), &2.into())
    );
    assert_eq!(emu.requests().len(), 2, "the first try and one retry");
}

#[test]
fn auth_fails_before_graph_and_never_shows_the_secret() {
    let secret = "s3cr3t-app-secret";
    let emu = app_emulator();
    let config = app_config(&emu, secret);
    let out = ius()
        .args(["--config", &config.to_string(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let error = error_json(&out);
    assert_eq!(error["status"], "AUTH");
    assert_eq!(
        error["error"], "invalid_client",
        "the token endpoint's answer: {error}"
    );
    assert!(!stderr(&out).contains(secret));
    assert_eq!(emu.token_requests().len(), 1);
    assert!(emu.requests().is_empty(), "nothing reached Graph");
}

#[test]
fn usage_errors_exit_2() {
    let emu = emulator(1, Config::default());
    // clap's own message for a bad command line.
    for args in [
        &["update", "cfg-1", "s0"][..],
        &["get", "cfg-1", "s0", "--bogus"],
        &["frobnicate"],
        &["get", "cfg-1", "s0", "--api-version", "v2"],
    ] {
        let out = run(&emu, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // No credentials, or two sources of them: the error JSON.
    let out = ius()
        .args(["--base-url", &emu.base_url(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let error = error_json(&out);
    assert_eq!(error["status"], "USAGE");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no credentials")
    );
    let out = ius()
        .args(["--config", "{}", "--token", "t", "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(
        (code(&out), &error_json(&out)["status"]),
        (2, &"USAGE".into())
    );
    let out = ius()
        .args(["--config", "/nonexistent/ius.json", "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let message = error_json(&out)["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("--config") && !message.contains("nonexistent"),
        "the source named, its value never shown: {message}"
    );
    assert!(emu.requests().is_empty());
    // Help and version are no errors.
    let out = ius().arg("--help").output().unwrap();
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    assert!(
        help.contains("Exit codes:") && help.contains(" 3  PARTIAL") && help.contains(" 5  AUTH"),
        "{help}"
    );
}

#[test]
fn the_config_comes_from_a_file_the_json_or_the_environment_and_its_errors_name_the_key() {
    let emu = emulator(1, Config::default());
    let config = json!({"baseUrl": emu.base_url(), "accessToken": TOKEN, "apiVersion": "v1.0"});
    let file = scratch("config.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let by_file = ius()
        .args(["--config", file.to_str().unwrap(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    let by_json = ius()
        .args(["--config", &config.to_string(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    let by_env = ius()
        .env("IUS_CONFIG", file.to_str().unwrap())
        .args(["get", "cfg-1", "s0"])
        .output()
        .unwrap();
    let by_token_env = ius()
        .env("IUS_TOKEN", TOKEN)
        .env("IUS_BASE_URL", emu.base_url())
        .args(["get", "cfg-1", "s0"])
        .output()
        .unwrap();
    for out in [&by_file, &by_json, &by_env, &by_token_env] {
        assert_eq!(code(out), 0, "{}", stderr(out));
    }
    let paths: Vec<String> = emu.requests().iter().map(|r| r.path().to_owned()).collect();
    assert_eq!(
        paths,
        [
            format!("/v1.0{DIRECT}/s0"),
            format!("/v1.0{DIRECT}/s0"),
            format!("/v1.0{DIRECT}/s0"),
            format!("/beta{DIRECT}/s0")
        ],
        "each client read its configuration"
    );
    let bad =
        json!({"baseUrl": emu.base_url(), "accessToken": "s3cr3t", "timeouts": {"readMs": 1}});
    let out = ius()
        .args(["--config", &bad.to_string(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 7);
    let error = error_json(&out);
    assert_eq!(
        (&error["status"], &error["field"]),
        (&"CONFIG".into(), &"timeouts.readMs".into())
    );
    assert!(!stderr(&out).contains("s3cr3t"));
}

#[test]
fn outbox_enqueue_stats_and_flush_print_the_c_apis_json() {
    let emu = emulator(1, Config::default());
    let path = scratch("agent.outbox");
    let file = path.to_str().unwrap();
    // Looking does not make a file.
    let out = run(&emu, &["outbox", file, "stats"]);
    assert_eq!(
        (code(&out), &error_json(&out)["status"]),
        (2, &"USAGE".into())
    );
    assert!(!path.exists());
    // Enqueue and stats send nothing, and need no credentials.
    for devices in [1, 2] {
        let patch = format!(r#"{{"devicesCount":{devices}}}"#);
        let out = ius()
            .args(["outbox", file, "enqueue", "cfg-1", "s0", "--patch", &patch])
            .output()
            .unwrap();
        assert_eq!((code(&out), stderr(&out)), (0, String::new()));
    }
    let out = ius()
        .args([
            "outbox",
            file,
            "enqueue",
            "cfg-1",
            "s0",
            "--patch",
            r#"{"devicesCount":-4}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        (code(&out), &error_json(&out)["field"]),
        (6, &"devicesCount".into())
    );
    let out = ius().args(["outbox", file, "stats"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&stats["pending"], &stats["failed"], &stats["applied"]),
        (&1.into(), &0.into(), &0.into())
    );
    for key in ["skipped", "bytes", "oldestPendingSeconds", "heldUntil"] {
        assert!(stats.get(key).is_some(), "{key} in {stats}");
    }
    assert!(emu.requests().is_empty());
    // A flush needs credentials, and sends the merged report.
    let out = ius().args(["outbox", file, "flush"]).output().unwrap();
    assert_eq!(
        (code(&out), &error_json(&out)["status"]),
        (2, &"USAGE".into())
    );
    let out = run(&emu, &["outbox", file, "flush"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report,
        json!({"sent": 1, "applied": 1, "retryLater": 0, "failed": 0, "skipped": 0, "interrupted": 0, "pending": 0, "nextAttemptInSeconds": null, "stoppedBy": null})
    );
    assert_eq!(
        emu.user_status(DIRECT, "s0").unwrap()["devicesCount"],
        2,
        "the merged report"
    );
}

/// A throttled flush (a Retry-After of 10 minutes) holds the whole outbox: the flush report says
/// why, `stats` shows until when, and `clear-hold` ends it (needing no credentials).
#[test]
fn outbox_clear_hold_ends_the_hold_a_throttled_flush_left() {
    let emu = emulator(1, Config::default());
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 429,
        retry_after: Some("600".into()),
    }));
    let path = scratch("held.outbox");
    let file = path.to_str().unwrap();
    let out = ius()
        .args([
            "outbox",
            file,
            "enqueue",
            "cfg-1",
            "s0",
            "--patch",
            r#"{"devicesCount":1}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&emu, &["outbox", file, "flush"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["stoppedBy"], "throttled", "{report}");
    let stats = |expect_held: bool| {
        let out = ius().args(["outbox", file, "stats"]).output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(stats["heldUntil"].is_string(), expect_held, "{stats}");
        let left = stats["holdSecondsLeft"].as_f64();
        assert_eq!(
            left.is_some_and(|s| s > 500.0 && s <= 600.0),
            expect_held,
            "{stats}"
        );
    };
    stats(true);
    for cleared in [true, false] {
        let out = ius().args(["outbox", file, "clear-hold"]).output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer, json!({ "cleared": cleared }));
        stats(false);
    }
}

#[test]
fn ius_emulator_runs_the_bundled_emulator() {
    let out = ius().args(["emulator", "--help"]).output().unwrap();
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).starts_with("usage: ius emulator [--listen ADDR]"),
        "{}",
        stdout(&out)
    );
    let out = ius().args(["emulator", "--bogus"]).output().unwrap();
    assert_eq!(code(&out), 2);

    let mut child = ius()
        .args(["emulator", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim_end()
        .strip_prefix("listening on ")
        .expect(&first)
        .to_owned();
    let out = ius()
        .args(["--base-url", &url, "--token", TOKEN])
        .args([
            "create",
            "cfg-1",
            "--entity",
            r#"{"id":"e1","devicesCount":2}"#,
        ])
        .output()
        .unwrap();
    let get = ius()
        .args(["--base-url", &url, "--token", TOKEN, "get", "cfg-1", "e1"])
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let entity: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(entity["devicesCount"], 2);
}

/// `--metrics` prints the client's metrics JSON as the last line of standard error, after the
/// error JSON when the command failed; standard output keeps only the answer.
#[test]
fn metrics_come_last_on_standard_error() {
    let emu = emulator(1, Config::default());
    let patch = r#"{"devicesCount":4}"#;
    let out = run(
        &emu,
        &["--metrics", "update", "cfg-1", "s0", "--patch", patch],
    );
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "", "a 204: nothing on standard output");
    let metrics: Value = serde_json::from_str(stderr(&out).trim_end()).unwrap();
    assert_eq!(metrics["requests"]["update"]["sent"], 1);
    assert_eq!(metrics["requests"]["update"]["answered"]["2xx"], 1);
    assert_eq!(metrics["bytes"]["sent"], patch.len());

    let out = run(
        &emu,
        &["--metrics", "update", "cfg-1", "nobody", "--patch", patch],
    );
    assert_ne!(code(&out), 0, "a 404 fails");
    let text = stderr(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let error: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(error["httpStatus"], 404);
    let metrics: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(metrics["requests"]["update"]["answered"]["404"], 1);
}
