//! `ius bulk` against the emulator: one result line per item, in order, each naming its input
//! line; results stream while the input is still open; the exit code says how the run went;
//! a run whose credentials are refused stops; a reader that goes away ends it quietly.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use common::{
    DIRECT, TOKEN, app_config, app_emulator, batches, code, emulator, error_json, item, ius, run,
    scratch, spawn, stderr, stdout,
};
use ius_emulator::{Config, Fault, FaultRule};
use serde_json::{Value, json};

/// The result lines of a run, parsed.
fn results(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `ius bulk FILE` with `lines` in the file (joined by newlines) and `args` before `bulk`.
fn bulk(args: &[&str], lines: &[String]) -> std::process::Output {
    let file = scratch(&format!("bulk-{}.jsonl", std::process::id()));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = ius().args(args).arg("bulk").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    out
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
    let results = results(&out);
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["OK", "OK", "INVALID_INPUT", "OK", "GRAPH", "OK", "OK"]
    );
    let numbers: Vec<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 7, 8], "the blank line 6 has none");
    assert_eq!(
        results[0],
        json!({"status": "OK", "httpStatus": 204, "response": null, "attempts": 1, "line": 1})
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
    let mut child = spawn(&emu, &["bulk", "-"]);
    let input = (0..3)
        .map(|n| item(&format!("s{n}"), 1))
        .collect::<Vec<_>>()
        .join("\n");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!((code(&out), stderr(&out)), (0, String::new()));
    assert_eq!(stdout(&out).lines().count(), 3);
}

/// Standard output's lines, as they come, through a channel.
fn lines_of(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next `n` lines, each within a generous bound (the machine may be loaded).
fn next_lines(rx: &Receiver<String>, n: usize, child: &mut Child) -> Vec<Value> {
    (0..n)
        .map(|i| match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "result {} of {n} did not come while the input was open",
                    i + 1
                )
            }
            Err(RecvTimeoutError::Disconnected) => panic!("standard output ended early"),
        })
        .collect()
}

#[test]
fn results_stream_while_the_input_is_still_open() {
    let emu = emulator(4, Config::default());
    let mut child = spawn(&emu, &["bulk"]);
    let rx = lines_of(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    // As `tail -f queue | ius bulk` feeds it: a few lines, then nothing for a while.
    for n in 0..3 {
        writeln!(stdin, "{}", item(&format!("s{n}"), 40 + n)).unwrap();
    }
    stdin.flush().unwrap();
    let first = next_lines(&rx, 3, &mut child);
    assert_eq!(emu.user_status(DIRECT, "s2").unwrap()["devicesCount"], 42);
    writeln!(stdin, "{}", item("s3", 43)).unwrap();
    stdin.flush().unwrap();
    let second = next_lines(&rx, 1, &mut child);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<&Value> = first.iter().chain(&second).collect();
    assert!(lines.iter().all(|r| r["status"] == "OK"), "{lines:?}");
    let numbers: Vec<u64> = lines.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(batches(&emu).len(), 2, "one $batch per burst of input");
}

#[test]
fn a_bad_line_is_that_lines_error_and_keys_come_in_their_documented_order() {
    let emu = emulator(2, Config::default());
    let mut input = Vec::new();
    input.extend_from_slice(item("s0", 1).as_bytes());
    input.extend_from_slice(b"\n\xef\xbb\xbf");
    input.extend_from_slice(item("s1", 1).as_bytes()); // line 2: a BOM before the item
    input.extend_from_slice(b"\n{\"target\":\xff}\n"); // line 3: not UTF-8
    input.extend_from_slice(item("missing", 1).as_bytes()); // line 4: Graph's 404
    input.extend_from_slice(b"\n");
    input.extend_from_slice(item("s1", 2).as_bytes());
    let file = scratch("bad-lines.jsonl");
    std::fs::write(&file, input).unwrap();
    let out = run(&emu, &["bulk", file.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let results = results(&out);
    let summary: Vec<(u64, &str, Option<&str>)> = results
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["status"].as_str().unwrap(),
                r["error"]["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "OK", None),
            (2, "INVALID_INPUT", Some("line")),
            (3, "INVALID_INPUT", Some("line")),
            (4, "GRAPH", None),
            (5, "OK", None),
        ]
    );
    let message = |n: usize| results[n]["error"]["message"].as_str().unwrap().to_owned();
    assert!(message(1).contains("byte order mark"), "{}", message(1));
    assert!(message(2).contains("UTF-8"), "{}", message(2));
    // `status` first, then the documented keys in order, in each line and its error.
    for line in stdout(&out).lines() {
        assert!(line.starts_with(r#"{"status":"#), "{line}");
    }
    let graph = stdout(&out).lines().nth(3).unwrap().to_owned();
    let error = &graph[graph.find(r#""error":"#).unwrap() + 8..];
    assert!(
        error.starts_with(r#"{"status":"GRAPH","message":"#),
        "{graph}"
    );
    let keys = [
        "httpStatus",
        "code",
        "requestId",
        "clientRequestId",
        "attempts",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| error.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{error}");
    assert!(stderr(&out).starts_with(r#"{"status":"PARTIAL","message":"#));
}

/// An address on loopback that nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn when_nothing_succeeded_and_every_failure_is_of_one_kind_the_exit_code_is_that_kinds() {
    let emu = emulator(2, Config::default());
    let url = emu.base_url();
    let items = |ids: &[&str]| ids.iter().map(|id| item(id, 1)).collect::<Vec<_>>();
    let invalid = r#"{"target":{"deviceConfigurationId":"cfg-1","userStatusId":"s0"},"patch":{"devicesCount":-1}}"#.to_owned();
    let offline =
        json!({"baseUrl": closed_port(), "accessToken": TOKEN, "retry": {"maxRetries": 0}})
            .to_string();
    // (connection, items, exit code, the error JSON's status)
    let cases: Vec<(Vec<&str>, Vec<String>, i32, &str)> = vec![
        (
            vec!["--token", TOKEN],
            items(&["gone-1", "gone-2"]),
            8,
            "GRAPH",
        ),
        // Graph refused the token: AUTH's code, as for a single call.
        (vec!["--token", "wrong"], items(&["s0", "s1"]), 5, "AUTH"),
        (
            vec!["--config", &offline],
            items(&["s0", "s1"]),
            11,
            "NETWORK",
        ),
        (
            vec!["--token", TOKEN],
            vec![invalid.clone(), invalid.clone()],
            6,
            "INVALID_INPUT",
        ),
        // Mixed kinds, or some succeeded: PARTIAL.
        (
            vec!["--token", TOKEN],
            vec![invalid.clone(), item("gone", 1)],
            3,
            "PARTIAL",
        ),
        (vec!["--token", TOKEN], items(&["s0", "gone"]), 3, "PARTIAL"),
    ];
    for (connection, lines, expected, status) in cases {
        let mut args = connection.clone();
        if !connection.contains(&"--config") {
            args.extend(["--base-url", &url]);
        }
        let out = bulk(&args, &lines);
        let case = format!("{connection:?} {lines:?}");
        assert_eq!(code(&out), expected, "{case}: {}", stderr(&out));
        let error = error_json(&out);
        assert_eq!(error["status"], status, "{case}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .ends_with(" of 2 items failed; each result line says why"),
            "{case}: {error}"
        );
        assert_eq!(results(&out).len(), 2, "{case}");
    }
}

#[test]
fn a_chunk_whose_every_item_failed_auth_stops_the_run_before_it_locks_the_account_out() {
    let emu = app_emulator();
    let config = app_config(&emu, "a-wrong-one");
    let lines: Vec<String> = (0..250).map(|n| item(&format!("s{n}"), 1)).collect();
    let out = bulk(&["--config", &config], &lines);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let results = results(&out);
    assert_eq!(results.len(), 250, "every item has its line");
    assert!(results.iter().all(|r| r["status"] == "AUTH"));
    let numbers: Vec<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=250).collect::<Vec<u64>>());
    let not_sent = |r: &Value| r["error"]["message"].as_str().unwrap().contains("not sent");
    assert!(!results[..100].iter().any(not_sent), "{}", results[0]);
    assert!(results[100..].iter().all(not_sent), "{}", results[100]);
    let tokens = emu.token_requests().len();
    assert!(
        (1..=5).contains(&tokens),
        "the first chunk's batches only: {tokens} token requests"
    );
    assert!(emu.requests().is_empty(), "nothing reached Graph");
}

#[test]
#[cfg(unix)]
fn a_reader_that_goes_away_ends_the_run_quietly_with_sigpipes_code() {
    let emu = emulator(200, Config::default());
    let mut child = spawn(&emu, &["bulk"]);
    let mut stdin = child.stdin.take().unwrap();
    let first: String = (0..100).map(|n| item(&format!("s{n}"), 1) + "\n").collect();
    stdin.write_all(first.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // As `ius bulk | head -1`: read one line, then close the pipe.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with(r#"{"status":"OK""#), "{line}");
    drop(reader);
    let rest: String = (100..200)
        .map(|n| item(&format!("s{n}"), 1) + "\n")
        .collect();
    // ius may already have gone, and its standard input with it.
    let _ = stdin.write_all(rest.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (code(&out), stderr(&out)),
        (141, String::new()),
        "128 + SIGPIPE, as a shell shows a process the signal ended, and nothing on standard error"
    );
}
