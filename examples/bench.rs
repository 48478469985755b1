//! Sequential updates on one client, in a release build; prints one JSON line:
//! `{"client":"sdk","n":..,"updates_per_s":..,"cpu_ms_per_update":..}`.
//!
//! Every update sends the documentation page's example patch (the one `bindings-c/bench_patch.h`
//! holds for the C benches), so `examples/bench_c.sh` compares Rust, C and libcurl on one request.
//!
//! `--bare` runs the baseline instead: a bare ureq 3 agent sending the same PATCH and parsing the
//! 200 into a plain struct, so the SDK's own cost (validation, headers, ids, typed parse) shows as
//! the ratio of the two. `examples/bench.sh` runs both, pinned to one CPU, against
//! `examples/fixed_server.rs`.
//!
//! ```text
//! cargo run --release --example bench -- --base-url http://127.0.0.1:PORT --token T --n 20000 [--bare]
//!     [--config-id X] [--status-id Y]
//! ```

use std::time::{Duration, Instant};

use intune_user_status::{Client, ComplianceStatus, Target, UserStatusPatch};

const USAGE: &str =
    "usage: bench --base-url URL --token T --n N [--config-id X] [--status-id Y] [--bare]";

struct Args {
    base_url: String,
    token: String,
    n: u32,
    config_id: String,
    status_id: String,
    bare: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base_url: String::new(),
        token: std::env::var("IUS_TOKEN").unwrap_or_default(),
        n: 10_000,
        config_id: "bench-config".into(),
        status_id: "bench-status".into(),
        bare: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        if flag == "--bare" {
            args.bare = true;
            continue;
        }
        let value = iter.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--base-url" => args.base_url = value,
            "--token" => args.token = value,
            "--n" => args.n = value.parse().map_err(|_| "--n takes a count")?,
            "--config-id" => args.config_id = value,
            "--status-id" => args.status_id = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.base_url.is_empty() || args.token.is_empty() {
        return Err("--base-url and --token are required".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let cpu_before = cpu_time();
    let started = Instant::now();
    if args.bare {
        bare(&args);
    } else {
        sdk(&args);
    }
    let wall = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    println!(
        "{{\"client\":\"{}\",\"n\":{},\"updates_per_s\":{:.1},\"cpu_ms_per_update\":{:.4}}}",
        if args.bare { "bare" } else { "sdk" },
        args.n,
        f64::from(args.n) / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / f64::from(args.n)
    );
}

fn sdk(args: &Args) {
    let client = Client::builder()
        .base_url(&args.base_url)
        .access_token(&args.token)
        .build()
        .expect("client");
    let target = Target::new(&args.config_id, &args.status_id);
    let patch = doc_patch();
    for _ in 0..args.n {
        client.update_user_status(&target, &patch).expect("update");
    }
}

/// The documentation page's example patch, as `bindings-c/bench_patch.h` sends it.
fn doc_patch() -> UserStatusPatch {
    UserStatusPatch::new()
        .with_odata_type()
        .user_display_name("User Display Name value")
        .devices_count(12)
        .status(ComplianceStatus::NotApplicable)
        .last_reported_date_time("2017-01-01T00:00:17.7769392-08:00".parse().expect("date"))
        .user_principal_name("User Principal Name value")
}

/// What a hand-written client would parse the 200 into.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct Plain {
    id: String,
    user_display_name: Option<String>,
    devices_count: i32,
    status: String,
    last_reported_date_time: String,
    user_principal_name: Option<String>,
}

fn bare(args: &Args) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "{}/beta/deviceManagement/deviceConfigurations/{}/userStatuses/{}",
        args.base_url, args.config_id, args.status_id
    );
    let auth = format!("Bearer {}", args.token);
    let body = doc_patch().to_json();
    for _ in 0..args.n {
        let mut response = agent
            .patch(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .expect("send");
        let bytes = response.body_mut().read_to_vec().expect("body");
        // A 204 (examples/bench_c.sh with IUS_BENCH_STATUS=204) has no body to parse.
        if response.status() != 204 {
            let _: Plain = serde_json::from_slice(&bytes).expect("parse");
        }
    }
}

/// CPU time of this process (user + system), from /proc on Linux; zero elsewhere.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12] // utime, stime (fields 14 and 15, counted from state = 0 here)
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
