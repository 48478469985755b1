//! `ius-emulator`: runs the Graph user status emulator until killed.
//!
//! The first stdout line is exactly `listening on http://IP:PORT`; tools
//! parse it to find the port chosen for `--listen 127.0.0.1:0`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use ius_emulator::{Config, Emulator, FaultRule, PatchReturns, SeedEntry};

const USAGE: &str = "usage: ius-emulator [--listen ADDR] [--token T] [--patch-returns 204|200] [--seed FILE]
                    [--fault JSON]... [--throttle-writes N/WINDOW] [--throttle-no-retry-after]

  --listen ADDR              address to bind (default 127.0.0.1:0, a free port)
  --token T                  the only bearer token accepted (default: any non-empty)
  --patch-returns CODE       204 (default, like Intune) or 200 (with the entity)
  --seed FILE                JSON array of {\"collection\": \"/deviceManagement/...\", \"entity\": {...}}
  --fault JSON               a fault rule (repeatable; checked in order), as for POST /_emulator/faults:
                             {\"fault\": KIND, ...params, \"count\": N | \"share\": 0.0-1.0, \"method\": M, \"pathContains\": S}
                             KIND: status (status, retryAfter), latency (ms), noAnswer, stall,
                             trickle (intervalMs), reset, close, truncated, nonJson (status),
                             oversized (bytes), redirect (status, location); no count/share = always
  --throttle-writes N/WINDOW answer 429 to PATCH/POST/PUT/DELETE beyond N per sliding WINDOW
                             (e.g. 100/20s, 10/1s, 5/500ms), with Retry-After in whole seconds
  --throttle-no-retry-after  omit Retry-After from throttled answers (as Intune often does)

admin endpoints (no auth, not recorded): GET/DELETE /_emulator/requests, GET /_emulator/health,
  POST /_emulator/faults (a rule as for --fault), DELETE /_emulator/faults, GET /_emulator/stats";

/// What the command line asked for.
enum Command {
    Run(Config, Option<String>),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut seed_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        if flag == "--throttle-no-retry-after" {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            config.throttle_retry_after = false;
            continue;
        }
        if !matches!(
            flag.as_str(),
            "--listen" | "--token" | "--patch-returns" | "--seed" | "--fault" | "--throttle-writes"
        ) {
            return Err(format!("unknown argument '{arg}'"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--listen" => {
                config.listen = value
                    .parse()
                    .map_err(|e| format!("--listen '{value}': {e}"))?;
            }
            "--token" => config.token = Some(value),
            "--patch-returns" => {
                config.patch_returns = match value.as_str() {
                    "204" => PatchReturns::NoContent,
                    "200" => PatchReturns::Ok,
                    _ => return Err(format!("--patch-returns must be 204 or 200, not '{value}'")),
                }
            }
            "--fault" => config
                .faults
                .push(FaultRule::from_json(&value).map_err(|e| format!("--fault '{value}': {e}"))?),
            "--throttle-writes" => {
                config.throttle_writes = Some(
                    parse_throttle(&value)
                        .map_err(|e| format!("--throttle-writes '{value}': {e}"))?,
                );
            }
            _ => seed_file = Some(value),
        }
    }
    Ok(Command::Run(config, seed_file))
}

/// Parses `N/WINDOW`, e.g. `100/20s` or `5/500ms` (units `ms`, `s`, `m`).
fn parse_throttle(value: &str) -> Result<(u32, Duration), String> {
    let (limit, window) = value
        .split_once('/')
        .ok_or("expected N/WINDOW, e.g. 100/20s")?;
    let limit: u32 = limit
        .trim()
        .parse()
        .map_err(|_| format!("'{limit}' is not a whole number of writes"))?;
    let window = window.trim();
    let digits = window.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = window.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("window '{window}' must start with a whole number"))?;
    let window = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(format!("window unit '{unit}' must be ms, s or m")),
    };
    if limit == 0 || window.is_zero() {
        return Err("the limit and the window must be positive".to_owned());
    }
    Ok((limit, window))
}

fn main() -> ExitCode {
    let (mut config, seed_file) = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(c, s)) => (c, s),
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ius-emulator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = seed_file {
        let seed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Vec<SeedEntry>>(&b).map_err(|e| e.to_string()));
        match seed {
            Ok(s) => config.seed = s,
            Err(e) => {
                eprintln!("ius-emulator: --seed {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let emulator = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ius-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    // Flushed at once: a parent process waits for this exact line.
    if writeln!(out, "listening on {}", emulator.base_url())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let Ok(Command::Run(c, seed)) = parse(&[
            "--listen",
            "127.0.0.1:8080",
            "--token=t",
            "--patch-returns",
            "200",
            "--seed",
            "f.json",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.patch_returns, PatchReturns::Ok);
        assert_eq!(seed.as_deref(), Some("f.json"));
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--patch-returns", "201"]).is_err());
        assert!(parse(&["--fault", "{\"fault\":\"boom\"}"]).is_err());
        assert!(parse(&["--throttle-writes", "10"]).is_err());
        assert!(parse(&["--throttle-no-retry-after=yes"]).is_err());
    }

    #[test]
    fn parses_fault_and_throttle_flags() {
        let Ok(Command::Run(c, _)) = parse(&[
            "--fault",
            r#"{"fault":"status","status":503,"count":2}"#,
            "--fault={\"fault\":\"noAnswer\"}",
            "--throttle-writes",
            "100/20s",
            "--throttle-no-retry-after",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(c.faults.len(), 2);
        assert_eq!(c.throttle_writes, Some((100, Duration::from_secs(20))));
        assert!(!c.throttle_retry_after);
        assert!(Config::default().throttle_retry_after);
    }

    #[test]
    fn parses_throttle_windows() {
        assert_eq!(parse_throttle("10/1s"), Ok((10, Duration::from_secs(1))));
        assert_eq!(
            parse_throttle("5/500ms"),
            Ok((5, Duration::from_millis(500)))
        );
        assert_eq!(parse_throttle("1/2m"), Ok((1, Duration::from_secs(120))));
        for bad in ["x/1s", "5/", "5/1h", "0/1s", "5/0ms", "5/s", "-1/1s"] {
            assert!(parse_throttle(bad).is_err(), "{bad}");
        }
    }
}
