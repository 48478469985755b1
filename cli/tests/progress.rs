//! `ius bulk`'s progress bar: drawn on standard error when it is a terminal (a pseudo-terminal
//! here, opened with openpty), with the items done, the throttling Graph imposed, the rate and
//! the time left; its absence in a pipe is checked in commands.rs.
#![cfg(unix)]

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use common::{TOKEN, code, emulator, item, stdout};
use ius_emulator::{Config, FaultRule};
use serde_json::Value;

/// A terminal of the classic width: the bar must fit on one line of it.
const COLUMNS: u16 = 80;

/// A pseudo-terminal of `COLUMNS` x 24: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers; no name buffer; a terminal size that openpty copies.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: two descriptors openpty just opened, each owned once from here on.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The text a terminal shows after `output`: carriage returns, line feeds, and the CSI sequences
/// a progress bar uses (cursor up and down, column, erase in line and display); others (colours,
/// cursor visibility) change no text and are skipped.
fn screen(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        last = c;
                        break;
                    }
                    params.push(c);
                }
                let n = params.trim_start_matches('?').parse::<usize>().unwrap_or(0);
                match last {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => {
                        row += n.max(1);
                        while rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    'G' => col = n.saturating_sub(1),
                    'K' => {
                        let line = &mut rows[row];
                        match n {
                            0 => line.truncate(col),
                            1 => {
                                let end = col.min(line.len());
                                line[..end].fill(' ');
                            }
                            _ => line.clear(),
                        }
                    }
                    'J' if n == 2 || n == 0 => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut rows[row];
                if line.len() <= col {
                    line.resize(col, ' ');
                    line.push(c);
                } else {
                    line[col] = c;
                }
                col += 1;
            }
        }
    }
    let mut lines: Vec<String> = rows
        .into_iter()
        .map(|line| line.into_iter().collect::<String>().trim_end().to_owned())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Everything the terminal is sent, once no process holds its slave side any more.
fn read_to_end(master: OwnedFd) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut terminal = File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Linux answers EIO once no process holds the slave side any more.
        while let Ok(n @ 1..) = terminal.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    })
}

#[test]
fn the_screen_renderer_follows_carriage_returns_and_erasures() {
    assert_eq!(
        screen(b"abc\r\x1b[2Kxy\x1b[?25l\r\n12345\x1b[3G\x1b[K\x1b[1Aq"),
        ["xyq", "12"]
    );
}

#[test]
fn a_bulk_run_on_a_terminal_shows_items_throttling_rate_and_time_left() {
    // 45 items, the later ones throttled by the emulator, and one refused before sending.
    // Intune-like write throttling: 20 writes a second, so later batches are answered 429.
    let emu = emulator(
        45,
        Config {
            throttle_writes: Some((20, Duration::from_secs(1))),
            ..Config::default()
        },
    );
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("progress-items.jsonl");
    let mut items: Vec<String> = (0..45).map(|n| item(&format!("s{n}"), n)).collect();
    items.push(item("s0", -1)); // refused before sending: the run ends PARTIAL
    std::fs::write(&file, items.join("\n")).unwrap();
    let (master, slave) = openpty();
    let child = {
        let mut command = common::ius();
        command
            .args(["--base-url", &emu.base_url(), "--token", TOKEN, "bulk"])
            .arg(&file)
            .env("TERM", "xterm-256color")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(slave));
        command.spawn().expect("run ius")
        // The command, and with it this process's copy of the terminal's slave side, is dropped
        // here, so the master reads to the end once ius exits.
    };
    let reader = read_to_end(master);
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(code(&out), 3);
    let results: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        results.len(),
        46,
        "results go to standard output, not the terminal"
    );
    assert!(results[..45].iter().all(|r| r["status"] == "OK"));
    assert_eq!(results[45]["error"]["field"], "patch.devicesCount");
    assert!(emu.throttled_count() > 0, "the emulator throttled the run");

    let lines = screen(&seen);
    let capture = lines.join("\n");
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ius-bulk-progress.txt");
    std::fs::write(&saved, &capture).unwrap();
    eprintln!("final screen ({}):\n{capture}", saved.display());
    assert_eq!(
        lines.len(),
        2,
        "the bar, redrawn in place, then the error JSON on a line of its own: {capture:?}"
    );
    let (bar, error) = (&lines[0], &lines[1]);
    let error: Value = serde_json::from_str(error).unwrap_or_else(|e| panic!("{e}: {error}"));
    assert_eq!(error["status"], "PARTIAL");
    assert!(bar.contains("] 46/46 · "), "{bar}");
    assert!(bar.contains("[=") && bar.contains("=]"), "full: {bar}");
    assert!(
        bar.chars().count() <= usize::from(COLUMNS),
        "{} columns: {bar}",
        bar.chars().count()
    );
    assert!(throttled(bar) > 0, "{bar}");
    assert!(
        bar.contains("/s · ") && bar.ends_with(" left"),
        "rate and time left: {bar}"
    );
    assert!(
        String::from_utf8_lossy(&seen).matches('\r').count() > 1,
        "redrawn as the run went"
    );
}

/// The bar's count of 429s.
fn throttled(bar: &str) -> u32 {
    bar.split("throttled ")
        .nth(1)
        .and_then(|rest| rest.split('×').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no throttling shown: {bar}"))
}

/// 429s to the `$batch` request itself (the pipeline retries it whole, so the bulk call never
/// sees them) are throttling the bar shows, with the time they held the run; `--metrics` prints
/// the client's metrics as the last line.
#[test]
fn the_bar_counts_429s_to_the_whole_batch() {
    let emu = emulator(5, Config::default());
    emu.add_fault(
        FaultRule::from_json(
            r#"{"fault":"status","status":429,"retryAfter":"1","count":2,"pathContains":"$batch"}"#,
        )
        .unwrap(),
    );
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("progress-batch-429.jsonl");
    let items: Vec<String> = (0..5).map(|n| item(&format!("s{n}"), n)).collect();
    std::fs::write(&file, items.join("\n")).unwrap();
    let (master, slave) = openpty();
    let child = {
        let mut command = common::ius();
        command
            .args([
                "--base-url",
                &emu.base_url(),
                "--token",
                TOKEN,
                "--metrics",
                "bulk",
            ])
            .arg(&file)
            .env("TERM", "xterm-256color")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(slave));
        command.spawn().expect("run ius")
    };
    let reader = read_to_end(master);
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(
        common::batches(&emu).len(),
        3,
        "the envelope twice 429, then answered"
    );
    let lines = screen(&seen);
    let capture = lines.join("\n");
    assert_eq!(lines.len(), 2, "the bar, then the metrics: {capture}");
    let bar = &lines[0];
    assert!(bar.contains("] 5/5 · "), "{bar}");
    assert_eq!(throttled(bar), 2, "{bar}");
    assert!(bar.contains("throttled 2× 2.0 s"), "held 1 s twice: {bar}");
    let metrics: Value =
        serde_json::from_str(&lines[1]).unwrap_or_else(|e| panic!("{e}: {capture}"));
    assert_eq!(metrics["requests"]["batch"]["sent"], 3);
    assert_eq!(metrics["requests"]["batch"]["answered"]["429"], 2);
    assert_eq!(metrics["retries"]["429"], 2);
    assert_eq!(metrics["batchItems"]["sent"], 15);
}

#[test]
fn results_on_the_same_terminal_leave_no_frozen_copies_of_the_bar() {
    let emu = emulator(
        150,
        Config {
            throttle_writes: Some((50, Duration::from_secs(1))),
            ..Config::default()
        },
    );
    let (master, slave) = openpty();
    let mut child = {
        let mut command = common::ius();
        command
            .args(["--base-url", &emu.base_url(), "--token", TOKEN, "bulk"])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        command.spawn().expect("run ius")
    };
    let reader = read_to_end(master);
    // A pipe: the number of items is not known, so the bar counts without a time left.
    let items: String = (0..150).map(|n| item(&format!("s{n}"), n) + "\n").collect();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, items.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(code(&out), 0);
    let lines = screen(&seen);
    let capture = lines.join("\n");
    let bars: Vec<&String> = lines.iter().filter(|l| l.contains("throttled")).collect();
    assert_eq!(bars.len(), 1, "one bar, at the end: {capture}");
    assert_eq!(lines.last(), Some(bars[0]), "{capture}");
    assert!(
        bars[0].contains(" 150 items · ") && !bars[0].contains("left"),
        "{capture}"
    );
    let results: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {capture}")))
        .collect();
    assert_eq!(results.len(), 150, "each result on a line of its own");
    let numbers: Vec<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=150).collect::<Vec<u64>>());
}
