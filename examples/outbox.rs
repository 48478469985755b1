//! An agent loop with the durable outbox: compute each status, enqueue it, flush every N seconds.
//! Reports enqueued while Graph is unreachable wait in the file and go out, merged, when it is
//! back; a report equal to what Graph already has costs nothing.
//!
//! With no arguments it runs against the bundled emulator, which is unreachable for the first
//! flushes, and prints each flush report:
//!
//! ```text
//! cargo run --example outbox
//! ```
//!
//! With arguments it reports to the service you name, one status every `--every` seconds:
//!
//! ```text
//! cargo run --example outbox -- --base-url https://graph.microsoft.com --token "$TOKEN" \
//!     --outbox /var/lib/agent/outbox.db --config-id CONFIG --status-id STATUS \
//!     [--every 60] [--cycles 10]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use intune_user_status::{
    Client, ComplianceStatus, Error, Outbox, OutboxOptions, Target, UserStatusPatch,
};
use ius_emulator::{Config, Emulator, SeedEntry};

const USAGE: &str = "usage: outbox [--base-url URL --token T --outbox PATH --config-id X --status-id Y \
[--every SECS] [--cycles N]]
With no arguments: a demonstration against the bundled emulator. The token may come from IUS_TOKEN.";

/// One agent: each cycle computes its statuses, enqueues them, and flushes every `flush_every`.
fn agent(
    outbox: &Outbox,
    targets: &[Target],
    cycles: u32,
    flush_every: u32,
    pause: Duration,
    compute: impl Fn(u32, usize) -> UserStatusPatch,
) -> Result<(), Error> {
    for cycle in 1..=cycles {
        for (index, target) in targets.iter().enumerate() {
            // Durable once this returns: a crash now loses nothing.
            let stored = outbox.enqueue(target, &compute(cycle, index))?;
            println!("cycle {cycle}: {} -> {stored:?}", target.user_status_id());
        }
        if cycle % flush_every == 0 {
            match outbox.flush() {
                Ok(report) => println!(
                    "flush: sent {} applied {} retry later {} failed {} pending {} next in {:?}",
                    report.sent,
                    report.applied,
                    report.retry_later,
                    report.failed,
                    report.pending,
                    report.next_attempt_in
                ),
                // Could not run (storage, token): the reports stay; try at the next flush.
                Err(err) => eprintln!("flush did not run: {err}"),
            }
        }
        std::thread::sleep(pause);
    }
    for failed in outbox.take_failed()? {
        eprintln!(
            "refused for good: {} ({})",
            failed.target.user_status_id(),
            failed.error
        );
    }
    Ok(())
}

fn demo() -> Result<(), Error> {
    let collection = "/deviceManagement/deviceConfigurations/baseline-1/userStatuses";
    // Offline at first: the service comes up on its port only after the first two flushes.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port");
    let service = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        Emulator::start(Config {
            listen: addr,
            token: Some("emulator-token".into()),
            seed: ["alice", "bob"]
                .iter()
                .map(|id| SeedEntry {
                    collection: collection.into(),
                    entity: serde_json::json!({ "id": id, "devicesCount": 0 }),
                })
                .collect(),
            ..Config::default()
        })
        .expect("start the emulator on 127.0.0.1")
    });
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .access_token("emulator-token")
        .retry_policy(intune_user_status::RetryPolicy::none().base_delay(Duration::from_millis(50)))
        .build()?;
    let dir = std::env::temp_dir().join(format!("ius-outbox-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new())?;
    let targets = [
        Target::new("baseline-1", "alice"),
        Target::new("baseline-1", "bob"),
    ];
    // alice turns compliant at cycle 3 and stays; bob's device count grows, then holds.
    let compute = |cycle: u32, index: usize| match index {
        0 => UserStatusPatch::new().status(if cycle < 3 {
            ComplianceStatus::NonCompliant
        } else {
            ComplianceStatus::Compliant
        }),
        _ => UserStatusPatch::new().devices_count(cycle.min(4) as i32),
    };
    agent(&outbox, &targets, 8, 2, Duration::from_millis(80), compute)?;
    let emulator = service.join().expect("the emulator thread");
    let patches = emulator
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    println!("PATCH requests the service saw: {patches} (for 16 reports)");
    for id in ["alice", "bob"] {
        println!(
            "{id}: {}",
            emulator.user_status(collection, id).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Args {
    base_url: String,
    token: String,
    outbox: PathBuf,
    config_id: String,
    status_id: String,
    every: u64,
    cycles: u32,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        base_url: String::new(),
        token: std::env::var("IUS_TOKEN").unwrap_or_default(),
        outbox: PathBuf::new(),
        config_id: String::new(),
        status_id: String::new(),
        every: 60,
        cycles: 10,
    };
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = |v: &str| v.parse().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--base-url" => parsed.base_url = value,
            "--token" => parsed.token = value,
            "--outbox" => parsed.outbox = value.into(),
            "--config-id" => parsed.config_id = value,
            "--status-id" => parsed.status_id = value,
            "--every" => parsed.every = number(&value)?,
            "--cycles" => parsed.cycles = number(&value)? as u32,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if parsed.base_url.is_empty()
        || parsed.outbox.as_os_str().is_empty()
        || parsed.status_id.is_empty()
    {
        return Err("--base-url, --outbox and --status-id are required".into());
    }
    Ok(parsed)
}

fn remote(args: Args) -> Result<(), Error> {
    let client = Client::builder()
        .base_url(args.base_url)
        .access_token(args.token)
        .build()?;
    let outbox = Outbox::open(&client, &args.outbox, OutboxOptions::new())?;
    let target = Target::new(args.config_id, args.status_id);
    agent(
        &outbox,
        &[target],
        args.cycles,
        1,
        Duration::from_secs(args.every),
        |_, _| UserStatusPatch::new().status(ComplianceStatus::Compliant),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.is_empty() {
        demo()
    } else {
        match parse(&args) {
            Ok(args) => remote(args),
            Err(message) => {
                eprintln!("{message}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
