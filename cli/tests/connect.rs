//! Where `ius` gets its client from: `--config` (a file or the JSON itself), `--token`, their
//! environment variables and the base URL, in the documented precedence, and never echoing what
//! it was given.

mod common;

use common::{TOKEN, code, emulator, error_json, ius, scratch, stderr};
use ius_emulator::{Config, Emulator};
use serde_json::json;

/// Config JSON for `emu`, with the test token.
fn config_for(emu: &Emulator) -> String {
    json!({"baseUrl": emu.base_url(), "accessToken": TOKEN}).to_string()
}

#[test]
fn a_config_value_is_never_echoed_whatever_it_holds() {
    let emu = emulator(1, Config::default());
    let secret = "s3cr3t-in-the-config";
    let with_secret = json!({"baseUrl": emu.base_url(), "accessToken": secret}).to_string();
    // (value, exit code): JSON is recognised by its `{`, a BOM is no part of it, and anything
    // else is a file name that is not shown either.
    let cases = [
        (format!("\u{feff}{with_secret}"), 5), // read as JSON: Graph refuses the token
        (format!("[{with_secret}]"), 7),       // JSON, but not an object
        (format!("x{with_secret}"), 7),        // not JSON
        (format!("{with_secret}}}"), 7),       // not JSON either
        (secret.to_owned(), 2),                // a file name (no such file)
        (format!("{secret}\n"), 2),
    ];
    for (value, expected) in cases {
        for by_env in [false, true] {
            let mut command = ius();
            if by_env {
                command.env("IUS_CONFIG", &value);
            } else {
                command.args(["--config", &value]);
            }
            let out = command.args(["get", "cfg-1", "s0"]).output().unwrap();
            let shown = stderr(&out);
            assert_eq!(code(&out), expected, "{value:?} (env: {by_env}): {shown}");
            assert!(
                !shown.contains(secret),
                "{value:?} (env: {by_env}) echoed: {shown}"
            );
            if expected == 2 {
                let message = error_json(&out)["message"].as_str().unwrap().to_owned();
                let source = if by_env { "IUS_CONFIG" } else { "--config" };
                assert!(
                    message.starts_with(source) && message.contains("characters"),
                    "names the source and the length only: {message}"
                );
            }
        }
    }
    // A file that starts with a BOM is read as its JSON.
    let file = scratch("bom-config.json");
    std::fs::write(&file, format!("\u{feff}{}", config_for(&emu))).unwrap();
    let out = ius()
        .args(["--config", file.to_str().unwrap(), "get", "cfg-1", "s0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// A run's flags, its environment, and which emulator it reaches (`None`: a usage error).
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Option<usize>);

/// Which emulator a run reached: `Some(0)` the first, `Some(1)` the second, `None` neither.
fn reached(emus: &[&Emulator]) -> Option<usize> {
    let hit: Vec<usize> = (0..emus.len())
        .filter(|&i| !emus[i].requests().is_empty())
        .collect();
    for emu in emus {
        emu.clear_requests();
    }
    match hit[..] {
        [] => None,
        [one] => Some(one),
        _ => panic!("both emulators were reached"),
    }
}

#[test]
fn flags_win_over_the_environment_and_the_environment_never_redirects_a_config() {
    let (a, b) = (
        emulator(1, Config::default()),
        emulator(1, Config::default()),
    );
    let (config_a, config_b) = (config_for(&a), config_for(&b));
    let (url_a, url_b) = (a.base_url(), b.base_url());
    // (flags, environment, which emulator is reached; None: a usage error, exit 2)
    let cases: Vec<Case> = vec![
        // A config's baseUrl is never replaced by the environment: a stale IUS_BASE_URL would
        // send the config's credentials to another host.
        (
            vec!["--config", &config_a],
            vec![("IUS_BASE_URL", &url_b)],
            Some(0),
        ),
        (
            vec![],
            vec![("IUS_CONFIG", &config_a), ("IUS_BASE_URL", &url_b)],
            Some(0),
        ),
        // ... but the --base-url flag is explicit.
        (
            vec!["--config", &config_a, "--base-url", &url_b],
            vec![],
            Some(1),
        ),
        // A flag's source replaces the environment's: --config over IUS_TOKEN, --token over
        // IUS_CONFIG.
        (
            vec!["--config", &config_a],
            vec![("IUS_TOKEN", "other-token"), ("IUS_BASE_URL", &url_b)],
            Some(0),
        ),
        (
            vec!["--token", TOKEN, "--base-url", &url_a],
            vec![("IUS_CONFIG", &config_b)],
            Some(0),
        ),
        // With a token, IUS_BASE_URL gives the service root; --base-url wins over it.
        (
            vec!["--token", TOKEN],
            vec![("IUS_CONFIG", &config_b), ("IUS_BASE_URL", &url_a)],
            Some(0),
        ),
        (
            vec![],
            vec![("IUS_TOKEN", TOKEN), ("IUS_BASE_URL", &url_a)],
            Some(0),
        ),
        (
            vec!["--base-url", &url_b],
            vec![("IUS_TOKEN", TOKEN), ("IUS_BASE_URL", &url_a)],
            Some(1),
        ),
        // Two sources at one level: refused.
        (
            vec![],
            vec![("IUS_CONFIG", &config_a), ("IUS_TOKEN", TOKEN)],
            None,
        ),
        (vec!["--config", &config_a, "--token", TOKEN], vec![], None),
    ];
    for (flags, env, expected) in cases {
        let mut command = ius();
        command.envs(env.iter().copied());
        let out = command
            .args(&flags)
            .args(["get", "cfg-1", "s0"])
            .output()
            .unwrap();
        let case = format!("{flags:?} with {env:?}");
        match expected {
            Some(_) => assert_eq!(code(&out), 0, "{case}: {}", stderr(&out)),
            None => {
                assert_eq!(code(&out), 2, "{case}: {}", stderr(&out));
                assert_eq!(error_json(&out)["status"], "USAGE", "{case}");
            }
        }
        assert_eq!(reached(&[&a, &b]), expected, "{case}");
    }
}
