//! The emulator's command line, shared by the `ius-emulator` program and `ius emulator`: flags
//! into a [`Config`], files read, the emulator run until the process is killed.
//!
//! The first stdout line is exactly `listening on http://IP:PORT` (or
//! `https://` with `--tls-cert`/`--tls-key`); tools parse it to find the
//! port chosen for `--listen 127.0.0.1:0`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::federated::DEFAULT_ISSUER;
use crate::{
    App, Config, Emulator, FaultRule, FederatedCredential, ManagedIdentity, PatchReturns,
    SeedEntry, TlsIdentity, UserAssignedIdentity,
};

const USAGE: &str = "usage: ius-emulator [--listen ADDR] [--token T] [--patch-returns 204|200] [--seed FILE]
                    [--fault JSON]... [--throttle-writes N/WINDOW] [--throttle-no-retry-after]
                    [--app TENANT:CLIENT_ID:SECRET]... [--app-cert TENANT:CLIENT_ID:CERT_PEM_FILE]...
                    [--token-lifetime SECS] [--scope SCOPE] [--tls-cert FILE --tls-key FILE]
                    [--managed-identity] [--user-assigned CLIENT_ID,OBJECT_ID,RESOURCE_ID]...
                    [--identity-header H] [--arc-tokens-folder DIR] [--arc-realm-folder DIR]
                    [--federated TENANT:CLIENT_ID:SUBJECT]...
                    [--page-size N] [--next-link-base URL] [--batch-shuffle-seed N] [--latency DURATION]

  --listen ADDR              address to bind (default 127.0.0.1:0, a free port)
  --token T                  the only bearer token accepted (default: any non-empty)
  --patch-returns CODE       204 (default, like Intune) or 200 (with the entity)
  --seed FILE                JSON array of {\"collection\": \"/deviceManagement/...\", \"entity\": {...}}
  --fault JSON               a fault rule (repeatable; checked in order), as for POST /_emulator/faults:
                             {\"fault\": KIND, ...params, \"count\": N | \"share\": 0.0-1.0, \"method\": M, \"pathContains\": S}
                             KIND: status (status, retryAfter), latency (ms), noAnswer, stall,
                             trickle (intervalMs), reset, close, lostAnswer (applied, then reset),
                             truncated, nonJson (status),
                             oversized (bytes), redirect (status, location); no count/share = always
  --throttle-writes N/WINDOW answer 429 to PATCH/POST/PUT/DELETE beyond N per sliding WINDOW
                             (e.g. 100/20s, 10/1s, 5/500ms), with Retry-After in whole seconds
  --throttle-no-retry-after  omit Retry-After from throttled answers (as Intune often does)
  --app TENANT:CLIENT_ID:SECRET
                             register an app for the token endpoint POST /TENANT/oauth2/v2.0/token
                             (client secret flow; repeatable); with any app registered and no --token,
                             Graph accepts only tokens issued by the emulator
  --app-cert TENANT:CLIENT_ID:CERT_PEM_FILE
                             register an app certificate (RSA) for client assertions (repeatable; the
                             same TENANT:CLIENT_ID as an --app adds the certificate to that app)
  --managed-identity         serve the managed-identity endpoints: IMDS at /metadata/identity/oauth2/token
                             (AZURE_POD_IDENTITY_AUTHORITY_HOST=this URL), App Service at /msi/token and
                             Azure Arc at /arc/metadata/identity/oauth2/token (IDENTITY_ENDPOINT=this
                             URL + path); the machine has a system-assigned identity
  --user-assigned CLIENT_ID,OBJECT_ID,RESOURCE_ID
                             attach a user-assigned identity (repeatable; implies --managed-identity)
  --identity-header H        the X-IDENTITY-HEADER App Service requires (its IDENTITY_HEADER; default
                             ius-emulator-identity-header; implies --managed-identity)
  --arc-tokens-folder DIR    where Azure Arc's challenge writes its key files (default: a folder in the
                             temporary folder; implies --managed-identity). A client reads key files
                             only from Arc's own tokens folder: give the real one (as root), or use a
                             test build of the SDK (feature test-seams, IUS_TEST_ARC_TOKENS_FOLDER=DIR)
  --arc-realm-folder DIR     how the client names the Arc tokens folder, when it sees the files by other
                             names (a Windows client under Wine: C:\\ius\\arc for <prefix>/drive_c/ius/arc);
                             the challenge's realm is DIR and the key file's name (implies --managed-identity)
  --federated TENANT:CLIENT_ID:SUBJECT
                             accept, for that app, federated tokens about SUBJECT from the emulator's own
                             issuer (workload identity; repeatable); mint one with
                             POST /_emulator/federated-tokens {\"subject\": SUBJECT}
  --token-lifetime SECS      lifetime of issued tokens (default 3599)
  --scope SCOPE              the only scope accepted (default https://graph.microsoft.com/.default)
  --tls-cert FILE            serve HTTPS with this certificate chain (PEM; needs --tls-key)
  --tls-key FILE             the private key of --tls-cert (PEM)
  --page-size N              entities per collection page without $top (default 100)
  --next-link-base URL       scheme://host[:port] for @odata.nextLink (default: the host addressed)
  --batch-shuffle-seed N     shuffle $batch responses, repeatably for a seed (default: input order)
  --latency DURATION         add this to every request on the wire, a $batch once (e.g. 50ms, 1s)

admin endpoints (no auth, not recorded): GET/DELETE /_emulator/requests, GET /_emulator/health,
  POST /_emulator/faults (a rule as for --fault), DELETE /_emulator/faults, GET /_emulator/stats,
  GET/DELETE /_emulator/token-requests, POST /_emulator/tokens/expire (expire every issued token),
  POST /_emulator/federated-tokens {\"subject\", \"issuer\"?, \"lifetimeSecs\"?} (a federated token)";

/// What the command line asked for.
enum Command {
    Run(Box<Config>, Files),
    Help,
}

/// Files named on the command line, read after parsing.
#[derive(Debug, Default)]
struct Files {
    seed: Option<String>,
    /// For each `--app-cert`, the index of its app in `Config::apps`.
    app_certs: Vec<(usize, String)>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

/// Splits `TENANT:CLIENT_ID:REST` (REST may hold colons, e.g. a secret or a
/// Windows path).
fn split_app(flag: &str, value: &str) -> Result<(String, String, String), String> {
    let mut parts = value.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(c), Some(r)) if !t.is_empty() && !c.is_empty() && !r.is_empty() => {
            Ok((t.to_owned(), c.to_owned(), r.to_owned()))
        }
        _ => Err(format!(
            "{flag} '{value}': expected TENANT:CLIENT_ID:{}",
            match flag {
                "--app" => "SECRET",
                "--federated" => "SUBJECT",
                _ => "CERT_PEM_FILE",
            }
        )),
    }
}

/// The app registered for `tenant`/`client_id`, added if new.
fn app_entry<'a>(apps: &'a mut Vec<App>, tenant: &str, client_id: &str) -> (usize, &'a mut App) {
    let index = match apps
        .iter()
        .position(|a| a.tenant == tenant && a.client_id == client_id)
    {
        Some(i) => i,
        None => {
            apps.push(App {
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                ..App::default()
            });
            apps.len() - 1
        }
    };
    (index, &mut apps[index])
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut files = Files::default();
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
        if flag == "--managed-identity" {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            config
                .managed_identity
                .get_or_insert_with(ManagedIdentity::default);
            continue;
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
            "--listen"
                | "--token"
                | "--patch-returns"
                | "--seed"
                | "--fault"
                | "--throttle-writes"
                | "--app"
                | "--app-cert"
                | "--token-lifetime"
                | "--scope"
                | "--tls-cert"
                | "--tls-key"
                | "--page-size"
                | "--next-link-base"
                | "--batch-shuffle-seed"
                | "--latency"
                | "--user-assigned"
                | "--identity-header"
                | "--arc-tokens-folder"
                | "--arc-realm-folder"
                | "--federated"
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
            "--app" => {
                let (tenant, client_id, secret) = split_app(&flag, &value)?;
                let (_, app) = app_entry(&mut config.apps, &tenant, &client_id);
                if app.secret.is_some() {
                    return Err(format!("--app '{tenant}:{client_id}' is given twice"));
                }
                app.secret = Some(secret);
            }
            "--app-cert" => {
                let (tenant, client_id, path) = split_app(&flag, &value)?;
                let (index, _) = app_entry(&mut config.apps, &tenant, &client_id);
                files.app_certs.push((index, path));
            }
            "--token-lifetime" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("--token-lifetime '{value}': expected whole seconds"))?;
                config.token_lifetime = Duration::from_secs(secs);
            }
            "--scope" => config.expected_scope = value,
            "--tls-cert" => files.tls_cert = Some(value),
            "--tls-key" => files.tls_key = Some(value),
            "--page-size" => {
                config.page_size = match value.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--page-size '{value}': expected a positive number")),
                };
            }
            "--next-link-base" => config.next_link_base = Some(value),
            "--batch-shuffle-seed" => {
                config.batch_shuffle_seed =
                    Some(value.parse().map_err(|_| {
                        format!("--batch-shuffle-seed '{value}': expected a number")
                    })?);
            }
            "--latency" => {
                config.latency =
                    parse_duration(&value).map_err(|e| format!("--latency '{value}': {e}"))?;
            }
            "--user-assigned" => {
                let parts: Vec<&str> = value.split(',').collect();
                let [client_id, object_id, resource_id] = parts[..] else {
                    return Err(format!(
                        "--user-assigned '{value}': expected CLIENT_ID,OBJECT_ID,RESOURCE_ID"
                    ));
                };
                let managed = config
                    .managed_identity
                    .get_or_insert_with(ManagedIdentity::default);
                managed.user_assigned.push(UserAssignedIdentity {
                    client_id: client_id.to_owned(),
                    object_id: object_id.to_owned(),
                    resource_id: resource_id.to_owned(),
                });
            }
            "--identity-header" => {
                config
                    .managed_identity
                    .get_or_insert_with(ManagedIdentity::default)
                    .identity_header = value;
            }
            "--arc-tokens-folder" => {
                config
                    .managed_identity
                    .get_or_insert_with(ManagedIdentity::default)
                    .arc_tokens_folder = value.into();
            }
            "--arc-realm-folder" => {
                config
                    .managed_identity
                    .get_or_insert_with(ManagedIdentity::default)
                    .arc_realm_folder = Some(value);
            }
            "--federated" => {
                let (tenant, client_id, subject) = split_app(&flag, &value)?;
                config.federated_credentials.push(FederatedCredential {
                    tenant,
                    client_id,
                    issuer: DEFAULT_ISSUER.to_owned(),
                    subject,
                });
            }
            _ => files.seed = Some(value),
        }
    }
    if files.tls_cert.is_some() != files.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_owned());
    }
    Ok(Command::Run(Box::new(config), files))
}

/// Reads the files named on the command line into `config`.
fn load_files(config: &mut Config, files: Files) -> Result<(), String> {
    let read = |flag: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|e| format!("{flag} {path}: {e}"))
    };
    if let Some(path) = files.seed {
        let bytes = std::fs::read(&path).map_err(|e| format!("--seed {path}: {e}"))?;
        config.seed = serde_json::from_slice::<Vec<SeedEntry>>(&bytes)
            .map_err(|e| format!("--seed {path}: {e}"))?;
    }
    for (index, path) in files.app_certs {
        let pem = read("--app-cert", &path)?;
        // Several certificates for one app are concatenated: all are registered.
        let app = &mut config.apps[index];
        app.certificate_pem = Some(match app.certificate_pem.take() {
            Some(mut previous) => {
                previous.push('\n');
                previous.push_str(&pem);
                previous
            }
            None => pem,
        });
    }
    if let (Some(cert), Some(key)) = (files.tls_cert, files.tls_key) {
        config.tls = Some(TlsIdentity {
            certificate_chain_pem: read("--tls-cert", &cert)?,
            private_key_pem: read("--tls-key", &key)?,
        });
    }
    Ok(())
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
    let window = parse_duration(window).map_err(|e| format!("window {e}"))?;
    if limit == 0 || window.is_zero() {
        return Err("the limit and the window must be positive".to_owned());
    }
    Ok((limit, window))
}

/// Parses a whole number with a unit: `500ms`, `20s`, `2m`.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{value}' must start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        _ => Err(format!("unit '{unit}' must be ms, s or m")),
    }
}

/// Runs the emulator as the command line `args` (without the program's name) asks, until the
/// process is killed; `program` names the command in messages and the usage (`ius-emulator`,
/// `ius emulator`). The first stdout line is exactly `listening on http://IP:PORT` (or
/// `https://`); `--help` prints the usage. Returns 2 for a bad command line, 1 when the emulator
/// cannot start.
pub fn main(program: &str, args: impl IntoIterator<Item = String>) -> ExitCode {
    let usage = USAGE.replacen("ius-emulator", program, 1);
    let (mut config, files) = match parse_args(args) {
        Ok(Command::Run(c, f)) => (*c, f),
        Ok(Command::Help) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = load_files(&mut config, files) {
        eprintln!("{program}: {e}");
        return ExitCode::from(2);
    }
    let emulator = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{program}: {e}");
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
        let Ok(Command::Run(c, files)) = parse(&[
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
        assert_eq!(files.seed.as_deref(), Some("f.json"));
    }

    #[test]
    fn parses_the_arc_folders() {
        let Ok(Command::Run(c, _)) = parse(&[
            "--arc-tokens-folder",
            "/p/drive_c/arc",
            r"--arc-realm-folder=C:\arc",
        ]) else {
            panic!("should parse");
        };
        let managed = c.managed_identity.expect("implied --managed-identity");
        assert_eq!(
            managed.arc_tokens_folder,
            std::path::Path::new("/p/drive_c/arc")
        );
        assert_eq!(managed.arc_realm_folder.as_deref(), Some(r"C:\arc"));
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
    fn parses_managed_and_workload_identity_flags() {
        let Ok(Command::Run(c, _)) = parse(&[
            "--user-assigned",
            "c1,o1,/subscriptions/s/rg/x",
            "--identity-header=h",
            "--federated",
            "t:c:system:serviceaccount:ns:sa",
        ]) else {
            panic!("should parse");
        };
        let managed = c.managed_identity.expect("implied");
        assert!(managed.system_assigned);
        assert_eq!(managed.identity_header, "h");
        assert_eq!(
            managed.user_assigned[0].resource_id,
            "/subscriptions/s/rg/x"
        );
        assert_eq!(
            c.federated_credentials[0].subject,
            "system:serviceaccount:ns:sa"
        );
        assert_eq!(c.federated_credentials[0].issuer, DEFAULT_ISSUER);
        let Ok(Command::Run(plain, _)) = parse(&["--managed-identity"]) else {
            panic!("should parse");
        };
        assert!(plain.managed_identity.is_some());
        assert!(parse(&["--managed-identity=yes"]).is_err());
        assert!(parse(&["--user-assigned", "only-one"]).is_err());
        assert!(parse(&["--federated", "t:c"]).is_err());
    }

    #[test]
    fn parses_identity_and_tls_flags() {
        let Ok(Command::Run(c, files)) = parse(&[
            "--app",
            "t1:c1:s:e:c",
            "--app-cert=t1:c1:C:\\certs\\a.pem",
            "--app-cert",
            "t2:c2:b.pem",
            "--token-lifetime",
            "60",
            "--scope",
            "https://graph.microsoft.us/.default",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(c.apps.len(), 2);
        assert_eq!(c.apps[0].secret.as_deref(), Some("s:e:c"));
        assert_eq!(
            (c.apps[1].tenant.as_str(), c.apps[1].client_id.as_str()),
            ("t2", "c2")
        );
        assert_eq!(
            files.app_certs,
            vec![(0, "C:\\certs\\a.pem".to_owned()), (1, "b.pem".to_owned())]
        );
        assert_eq!(c.token_lifetime, Duration::from_secs(60));
        assert_eq!(c.expected_scope, "https://graph.microsoft.us/.default");
        assert_eq!(files.tls_cert.as_deref(), Some("cert.pem"));
        assert_eq!(files.tls_key.as_deref(), Some("key.pem"));
        assert_eq!(Config::default().token_lifetime, Duration::from_secs(3599));
    }

    #[test]
    fn rejects_bad_identity_flags() {
        assert!(parse(&["--app", "t1:c1"]).is_err());
        assert!(parse(&["--app", "t1::s"]).is_err());
        assert!(parse(&["--app", "t:c:a", "--app", "t:c:b"]).is_err());
        assert!(parse(&["--app-cert", "t1:c1:"]).is_err());
        assert!(parse(&["--token-lifetime", "1.5"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
    }

    #[test]
    fn loads_cert_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let Ok(Command::Run(mut c, files)) = parse(&[
            "--app-cert",
            &format!("t:c:{dir}/test-only-app-cert.pem"),
            "--app-cert",
            &format!("t:c:{dir}/test-only-other-cert.pem"),
            "--tls-cert",
            &format!("{dir}/test-only-server-cert.pem"),
            "--tls-key",
            &format!("{dir}/test-only-server-key.pem"),
        ]) else {
            panic!("should parse");
        };
        load_files(&mut c, files).unwrap();
        let pem = c.apps[0].certificate_pem.as_deref().unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(c.tls.is_some());
        let emu = Emulator::start(*c).unwrap();
        assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    }

    #[test]
    fn parses_batch_paging_and_latency_flags() {
        let Ok(Command::Run(c, _)) = parse(&[
            "--page-size",
            "2",
            "--next-link-base=http://elsewhere.example",
            "--batch-shuffle-seed",
            "7",
            "--latency",
            "50ms",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(c.page_size, 2);
        assert_eq!(
            c.next_link_base.as_deref(),
            Some("http://elsewhere.example")
        );
        assert_eq!(c.batch_shuffle_seed, Some(7));
        assert_eq!(c.latency, Duration::from_millis(50));
        let d = Config::default();
        assert_eq!(
            (d.page_size, d.batch_shuffle_seed, d.latency),
            (100, None, Duration::ZERO)
        );
        for bad in [
            &["--page-size", "0"][..],
            &["--batch-shuffle-seed", "x"],
            &["--latency", "50"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
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
