//! The built `ius` against the emulator: for each command, what the emulator received and what
//! came out (standard output, the error JSON on standard error, the exit code), and the errors
//! (a bad patch naming the field, a 404, auth, usage, configuration).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{DIRECT, TOKEN, batches, code, emulator, error_json, item, ius, run, stderr, stdout};
use ius_emulator::{App, Config, Fault, FaultRule, PatchReturns};
use serde_json::{Value, json};

/// A file in this test binary's scratch folder, removed first (with SQLite's companions).
fn scratch(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    for suffix in ["", "-wal", "-shm", "-flush"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

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
    let emu = ius_emulator::Emulator::start(Config {
        apps: vec![App {
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            secret: Some("the-right-one".into()),
            certificate_pem: None,
        }],
        ..Config::default()
    })
    .unwrap();
    let config = json!({
        "baseUrl": emu.base_url(),
        "authorityHost": emu.base_url(),
        "auth": {"tenantId": "contoso", "clientId": "app-1", "clientSecret": secret},
    });
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
    assert!(
        error_json(&out)["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/ius.json")
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
fn bulk_prints_one_result_line_per_item_in_order_and_no_bar_in_a_pipe() {
    let emu = emulator(5, Config::default());
    let file = scratch("items.jsonl");
    let mut lines: Vec<String> = (0..5).map(|n| item(&format!("s{n}"), n + 10)).collect();
    lines.insert(2, r#"{"target":{"deviceConfigurationId":"cfg-1","userStatusId":"s9"},"patch":{"devicesCount":"x"}}"#.into());
    lines.insert(4, item("missing", 1));
    lines.insert(5, String::new()); // a blank line is no item
    std::fs::write(&file, lines.join("\n")).unwrap();
    // s3 is answered 503 once: retried in a batch of its own, carried by two requests.
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("0".into()),
            },
        )
        .path_contains("/userStatuses/s3"),
    );
    let out = run(&emu, &["bulk", file.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        error_json(&out),
        json!({"status": "PARTIAL", "message": "2 of 7 items failed; each result line says why"}),
        "nothing but the error JSON on standard error: no progress bar in a pipe"
    );
    let results: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["OK", "OK", "INVALID_INPUT", "OK", "GRAPH", "OK", "OK"]
    );
    assert_eq!(
        results[0],
        json!({"status": "OK", "httpStatus": 204, "response": null, "attempts": 1})
    );
    assert_eq!(results[5]["attempts"], 2, "s3, retried: {}", results[5]);
    assert_eq!(results[2]["error"]["field"], "patch.devicesCount");
    assert_eq!(results[4]["error"]["httpStatus"], 404);
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2, "one $batch, then s3's retry");
    let envelope: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        envelope["requests"].as_array().unwrap().len(),
        6,
        "the invalid item was not sent"
    );
    for n in 0..5 {
        assert_eq!(
            emu.user_status(DIRECT, &format!("s{n}")).unwrap()["devicesCount"],
            n + 10
        );
    }

    // The same from standard input, all succeeding: exit 0, nothing on standard error.
    let mut child = ius()
        .args(["--base-url", &emu.base_url(), "--token", TOKEN, "bulk", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = (0..3)
        .map(|n| item(&format!("s{n}"), 1))
        .collect::<Vec<_>>()
        .join("\n");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!((code(&out), stderr(&out)), (0, String::new()));
    assert_eq!(stdout(&out).lines().count(), 3);
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
    for key in ["skipped", "bytes", "oldestPendingSeconds"] {
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
        json!({"sent": 1, "applied": 1, "retryLater": 0, "failed": 0, "skipped": 0, "pending": 0, "nextAttemptInSeconds": null})
    );
    assert_eq!(
        emu.user_status(DIRECT, "s0").unwrap()["devicesCount"],
        2,
        "the merged report"
    );
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
