//! `ius-emulator`: runs the Graph user status emulator until killed.
//!
//! The first stdout line is exactly `listening on http://IP:PORT`; tools
//! parse it to find the port chosen for `--listen 127.0.0.1:0`.

use std::io::Write;
use std::process::ExitCode;

use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};

const USAGE: &str = "usage: ius-emulator [--listen ADDR] [--token T] [--patch-returns 204|200] [--seed FILE]

  --listen ADDR          address to bind (default 127.0.0.1:0, a free port)
  --token T              the only bearer token accepted (default: any non-empty)
  --patch-returns CODE   204 (default, like Intune) or 200 (with the entity)
  --seed FILE            JSON array of {\"collection\": \"/deviceManagement/...\", \"entity\": {...}}";

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
        if !matches!(
            flag.as_str(),
            "--listen" | "--token" | "--patch-returns" | "--seed"
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
            _ => seed_file = Some(value),
        }
    }
    Ok(Command::Run(config, seed_file))
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
    }
}
