//! Soak run: 8 threads of mixed updates and reads on one client against the in-process emulator,
//! with random faults, for a fixed time. It then checks that
//! - the emulator holds exactly what the successful updates wrote (every entity is written by one
//!   thread only, so the last success is known), and every read saw the last success;
//! - every call returned within its budget (`totalMs` plus a small margin);
//! - the heap the SDK's calls hold, apart from the pooled connections (what one holds is measured
//!   before the run), grew by less than a byte per call between warm-up and the end (16 bytes
//!   kept by one call in eight fails it);
//! - resident memory at the end, less what glibc's arenas hold free (`mallinfo2`) and less the
//!   pooled connections (bounded apart, below), is within 10% of its value after warm-up: glibc
//!   keeps freed memory resident, and that alone moved raw RSS by 11% in a run whose SDK heap
//!   and pool did not move (docs/robustness.md shows both figures);
//! - open file descriptors other than pooled connections at the end are within 10% of their
//!   values after warm-up, and the pooled connections stay within the pool's bound with no
//!   emulator end outliving its client end (each taken at rest: the workers paused, or done, and
//!   every connection settled, so calls in flight do not count);
//!
//! and prints calls, faults, failures by kind, RSS, the heap and fds. Exits non-zero when a check
//! fails; `heap.rs` counts the SDK's heap.
//!
//! Faults, armed at random before a call on that call's entity (`FaultRule::next(1, ..)` with the
//! entity's path): 429 with `Retry-After` in seconds, fractional seconds and as an HTTP date; 503;
//! a reset connection; a stall after the headers; a truncated body; and, every few seconds, the
//! expiry of every issued token (the next Graph request meets a 401 and re-authenticates).
//!
//! ```text
//! cargo run --release --example soak -- [--seconds 600] [--threads 8]
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use intune_user_status::{
    Client, ClientSecretCredential, Error, RetryPolicy, Target, UserStatusPatch,
};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, SeedEntry};

mod heap;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "11111111-1111-1111-1111-111111111111";
const SECRET: &str = "soak-secret-value";
const CONFIGURATION: &str = "soak";
const COLLECTION: &str = "/deviceManagement/deviceConfigurations/soak/userStatuses";
/// Entities per thread: each written by its thread only.
const ENTITIES: usize = 4;
/// Share of calls that meet a fault.
const FAULT_SHARE: f64 = 0.2;
/// Every call's budget; a call may overrun it by at most `MARGIN` (scheduling on a busy machine).
const BUDGET: Duration = Duration::from_millis(2500);
const MARGIN: Duration = Duration::from_millis(250);
const TOKEN_EXPIRY_EVERY: Duration = Duration::from_secs(5);
/// Before RSS, the heap and fds are sampled at rest, connections get this long to settle.
const SETTLE: Duration = Duration::from_millis(1500);

struct Args {
    seconds: u64,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 60,
        threads: 8,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--threads" => args.threads = value()?.parse().map_err(|e| format!("{e}"))?,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: soak [--seconds N] [--threads N]"
                ));
            }
        }
    }
    Ok(args)
}

/// A small xorshift generator: the run needs cheap randomness, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The faults a call may meet, by name.
const FAULTS: [&str; 7] = [
    "429 Retry-After seconds",
    "429 Retry-After fractional",
    "429 Retry-After date",
    "503",
    "reset",
    "stall after headers",
    "truncated body",
];

fn fault(index: usize) -> Fault {
    let status = |status, retry_after: Option<String>| Fault::Status {
        status,
        retry_after,
    };
    match index {
        0 => status(429, Some("1".into())),
        1 => status(429, Some("0.2".into())),
        2 => status(
            429,
            Some(httpdate::fmt_http_date(
                SystemTime::now() + Duration::from_secs(1),
            )),
        ),
        3 => status(503, None),
        4 => Fault::Reset,
        5 => Fault::StallAfterHeaders,
        _ => Fault::Truncated,
    }
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    calls: u64,
    ok: u64,
    faults: BTreeMap<&'static str, u64>,
    failures: BTreeMap<String, u64>,
    over_budget: Vec<Duration>,
    longest: Duration,
    stale_reads: u64,
    /// Per entity: the last value a successful update wrote.
    written: BTreeMap<String, Option<i32>>,
}

fn kind(err: &Error) -> String {
    match err {
        Error::Graph(graph) => format!("GRAPH {}", graph.status),
        Error::Timeout { .. } => "TIMEOUT".into(),
        Error::Throttled { .. } => "THROTTLED (client hold)".into(),
        Error::Transport { kind, .. } => format!("TRANSPORT {kind}"),
        Error::Auth(_) => "AUTH".into(),
        Error::UnexpectedResponse { status, .. } => format!("UNEXPECTED_RESPONSE {status}"),
        Error::InvalidInput { field, .. } => format!("INVALID_INPUT {field}"),
        Error::Config { field, .. } => format!("CONFIG {field}"),
        _ => "OTHER".into(),
    }
}

/// Asks the workers to rest between calls, and counts those resting.
#[derive(Default)]
struct Pause {
    asked: AtomicBool,
    resting: AtomicUsize,
    /// Calls made so far by every worker (read at rest, to relate memory to calls).
    calls: AtomicU64,
}

fn worker(
    thread: usize,
    client: &Client,
    emu: &Emulator,
    (stop, pause): (&AtomicBool, &Pause),
    seed: u64,
) -> Tally {
    let mut rng = Rng::new(seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut tally = Tally::default();
    let ids: Vec<String> = (0..ENTITIES).map(|e| format!("t{thread}-e{e}")).collect();
    for id in &ids {
        tally.written.insert(id.clone(), None);
    }
    let mut value = 0i32;
    while !stop.load(Ordering::Relaxed) {
        if pause.asked.load(Ordering::SeqCst) {
            pause.resting.fetch_add(1, Ordering::SeqCst);
            while pause.asked.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            pause.resting.fetch_sub(1, Ordering::SeqCst);
        }
        let id = &ids[(rng.next() % ENTITIES as u64) as usize];
        let target = Target::new(CONFIGURATION, id.as_str());
        if rng.unit() < FAULT_SHARE {
            let index = (rng.next() % FAULTS.len() as u64) as usize;
            emu.add_fault(FaultRule::next(1, fault(index)).path_contains(format!("/{id}")));
            *tally.faults.entry(FAULTS[index]).or_default() += 1;
        }
        let started = Instant::now();
        let read = rng.unit() < 0.25;
        let outcome = if read {
            heap::sdk_call(|| client.get_user_status(&target)).map(|entity| {
                let expected = tally.written[id];
                if entity.devices_count != expected && expected.is_some() {
                    tally.stale_reads += 1;
                }
            })
        } else {
            value += 1;
            heap::sdk_call(|| {
                client.update_user_status(&target, &UserStatusPatch::new().devices_count(value))
            })
            .map(|_| {
                tally.written.insert(id.clone(), Some(value));
            })
        };
        let took = started.elapsed();
        tally.calls += 1;
        pause.calls.fetch_add(1, Ordering::Relaxed);
        tally.longest = tally.longest.max(took);
        if took > BUDGET + MARGIN {
            tally.over_budget.push(took);
        }
        match outcome {
            Ok(()) => tally.ok += 1,
            Err(err) => *tally.failures.entry(kind(&err)).or_default() += 1,
        }
    }
    tally
}

/// Resident memory in KiB and open file descriptors of this process (Linux; `None` elsewhere).
fn rss_and_fds() -> (Option<u64>, Option<usize>) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        });
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count());
    (rss, fds)
}

/// The SDK's pool holds at most this many idle connections per host (`src/pipeline.rs`).
const POOL_MAX: usize = 32;

/// This process's open descriptors, sorted by what they are. The emulator runs in this process,
/// so a connection to it shows on both sides; every open connection's far end is on the loopback
/// emulator, whose port is `port`.
#[derive(Default)]
struct Fds {
    /// Client ends of connections to the emulator, by their local port.
    client: Vec<u16>,
    /// The emulator's ends of the connections it accepted, by their remote port (it keeps two
    /// descriptors per connection: the stream and a clone for shutdown).
    accepted: Vec<u16>,
    /// Everything else (listener, pipes, /dev/null, ...) by `readlink` target, digits dropped.
    other: BTreeMap<String, usize>,
}

impl Fds {
    fn sample(port: u16) -> Fds {
        // Socket inode -> (local port, remote port, listening), from /proc/net/tcp and tcp6.
        let mut sockets = BTreeMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let port_of = |addr: &str| {
                    addr.rsplit(':')
                        .next()
                        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                };
                if let (Some(local), Some(remote), Some(inode)) = (
                    cols.get(1).and_then(|a| port_of(a)),
                    cols.get(2).and_then(|a| port_of(a)),
                    cols.get(9),
                ) {
                    sockets.insert(inode.to_string(), (local, remote, cols[3] == "0A"));
                }
            }
        }
        let mut fds = Fds::default();
        let dir = std::fs::read_dir("/proc/self/fd").into_iter().flatten();
        for target in dir
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
        {
            let target = target.to_string_lossy().into_owned();
            let socket = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| sockets.get(inode));
            match socket {
                Some(&(local, remote, false)) if local == port => fds.accepted.push(remote),
                Some(&(local, remote, false)) if remote == port => fds.client.push(local),
                Some(&(_, _, true)) if target.starts_with("socket:") => {
                    *fds.other.entry("tcp listener".into()).or_default() += 1
                }
                _ => {
                    let kind = target.chars().filter(|c| !c.is_ascii_digit()).collect();
                    *fds.other.entry(kind).or_default() += 1;
                }
            }
        }
        fds
    }

    fn other_total(&self) -> u64 {
        self.other.values().sum::<usize>() as u64
    }

    /// Emulator-side connections whose client end is closed: what a server-side leak would be.
    fn orphans(&self) -> usize {
        let mut accepted = self.accepted.clone();
        accepted.sort();
        accepted.dedup();
        accepted.iter().filter(|p| !self.client.contains(p)).count()
    }
}

/// What one more pooled connection adds to the SDK's heap, measured before the run: one call
/// (a token, one connection), then two at once held by the emulator (a second connection).
/// About 513.6 KiB: ureq's transport reads and writes through 128 KiB buffers each (its default
/// `input_buffer_size` and `output_buffer_size`), the SDK's coalescing layer (`src/coalesce.rs`)
/// keeps its own of the same sizes, and the connection's state.
fn connection_bytes(client: &Client, emu: &Emulator) -> Result<i64, String> {
    let get = |entity: &str| {
        heap::sdk_call(|| client.get_user_status(&Target::new(CONFIGURATION, entity)))
            .map_err(|e| format!("calibration call: {e}"))
    };
    let port = emu.addr().port();
    get("t0-e0")?;
    let (one, _) = heap::live();
    let pooled_one = Fds::sample(port).client.len();
    emu.add_fault(
        FaultRule::next(2, Fault::Latency(Duration::from_millis(300))).path_contains("/t0-e1"),
    );
    std::thread::scope(|scope| {
        let both = [scope.spawn(|| get("t0-e1")), scope.spawn(|| get("t0-e1"))];
        both.map(|call| call.join().unwrap())
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })?;
    std::thread::sleep(SETTLE);
    let (two, _) = heap::live();
    let pooled_two = Fds::sample(port).client.len();
    if (pooled_one, pooled_two) != (1, 2) {
        return Err(format!(
            "calibration: expected 1 then 2 pooled connections, saw {pooled_one} then {pooled_two}"
        ));
    }
    Ok(two - one)
}

/// The heap at rest (see `heap.rs`).
#[derive(Debug, Default, Clone, Copy)]
struct HeapAtRest {
    /// Live bytes allocated inside SDK calls.
    sdk: i64,
    /// `sdk` without the pooled connections (each `connection_bytes`).
    sdk_apart: i64,
    /// Live bytes allocated anywhere in the process (the emulator's included).
    all: i64,
    /// What the allocator holds free (RSS it has not given back).
    allocator_free: Option<u64>,
    /// Calls made before the sample.
    calls: u64,
}

impl HeapAtRest {
    fn sample(pooled: usize, per_connection: i64, calls: u64) -> HeapAtRest {
        let (sdk, all) = heap::live();
        HeapAtRest {
            sdk,
            sdk_apart: sdk - pooled as i64 * per_connection,
            all,
            allocator_free: heap::allocator_free(),
            calls,
        }
    }

    /// Bytes the SDK's heap, pooled connections apart, grew by per call since `warm`.
    fn growth_per_call(&self, warm: &HeapAtRest) -> f64 {
        (self.sdk_apart - warm.sdk_apart) as f64
            / self.calls.saturating_sub(warm.calls).max(1) as f64
    }
}

/// Resident KiB less what the allocator holds free (none where it cannot say) and less the
/// pooled connections, which come and go within the pool's bound (checked apart).
fn in_use(rss_kib: Option<u64>, heap: &HeapAtRest) -> Option<u64> {
    let free = heap.allocator_free.unwrap_or(0);
    let connections = u64::try_from(heap.sdk - heap.sdk_apart).unwrap_or(0);
    rss_kib.map(|rss| rss.saturating_sub((free + connections) / 1024))
}

fn within_ten_percent(warm: Option<u64>, end: Option<u64>) -> bool {
    match (warm, end) {
        (Some(warm), Some(end)) => end.abs_diff(warm) * 10 <= warm,
        _ => true,
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|err| {
        eprintln!("{err}");
        std::process::exit(2);
    });
    let duration = Duration::from_secs(args.seconds);
    let warm_up = (duration / 10).min(Duration::from_secs(30));
    let emu = Arc::new(
        Emulator::start(Config {
            apps: vec![App {
                tenant: TENANT.into(),
                client_id: APP.into(),
                secret: Some(SECRET.into()),
                certificate_pem: None,
            }],
            seed: (0..args.threads)
                .flat_map(|t| (0..ENTITIES).map(move |e| format!("t{t}-e{e}")))
                .map(|id| SeedEntry {
                    collection: COLLECTION.into(),
                    entity: serde_json::json!({"id": id}),
                })
                .collect(),
            ..Config::default()
        })
        .expect("start the emulator"),
    );
    let client = Client::builder()
        .base_url(emu.base_url())
        .credential(ClientSecretCredential::new(TENANT, APP, SECRET).authority_host(emu.base_url()))
        .use_env_proxy(false)
        .request_timeout(Duration::from_secs(1))
        .total_timeout(BUDGET)
        .retry_policy(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(1500)),
        )
        .build()
        .expect("build the client");
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let token_expiries = Arc::new(AtomicU64::new(0));
    let warm = Arc::new(Mutex::new((None, None)));
    let warm_fds = Mutex::new(Fds::default());
    let warm_heap = Mutex::new(HeapAtRest::default());
    let port = emu.addr().port();
    let pause = Pause::default();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let per_connection = connection_bytes(&client, &emu).unwrap_or_else(|err| {
        eprintln!("{err}");
        std::process::exit(1);
    });
    println!(
        "soak: {} threads, {} s, fault share {FAULT_SHARE}, budget {} ms, seed {seed}; a pooled connection holds {:.1} KiB",
        args.threads,
        args.seconds,
        BUDGET.as_millis(),
        per_connection as f64 / 1024.0
    );
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        // The driver: expires tokens now and then, keeps the emulator's request log from growing
        // (its memory is this process's too), samples RSS and fds after warm-up, stops the run.
        scope.spawn(|| {
            let mut last_expiry = Instant::now();
            let mut sampled = false;
            while started.elapsed() < duration {
                std::thread::sleep(Duration::from_millis(200));
                requests.fetch_add(emu.requests().len() as u64, Ordering::Relaxed);
                emu.clear_requests();
                emu.clear_token_requests();
                if last_expiry.elapsed() >= TOKEN_EXPIRY_EVERY {
                    emu.expire_issued_tokens();
                    token_expiries.fetch_add(1, Ordering::Relaxed);
                    last_expiry = Instant::now();
                }
                if !sampled && started.elapsed() >= warm_up {
                    // At rest: every worker between calls, every connection settled.
                    pause.asked.store(true, Ordering::SeqCst);
                    let give_up = Instant::now() + BUDGET + SETTLE;
                    while pause.resting.load(Ordering::SeqCst) < args.threads
                        && Instant::now() < give_up
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    std::thread::sleep(SETTLE);
                    *warm.lock().unwrap() = rss_and_fds();
                    let fds = Fds::sample(port);
                    *warm_heap.lock().unwrap() = HeapAtRest::sample(
                        fds.client.len(),
                        per_connection,
                        pause.calls.load(Ordering::SeqCst),
                    );
                    *warm_fds.lock().unwrap() = fds;
                    pause.asked.store(false, Ordering::SeqCst);
                    sampled = true;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        let workers: Vec<_> = (0..args.threads)
            .map(|t| {
                let (client, emu, stop, pause) = (&client, &emu, &stop, &pause);
                scope.spawn(move || worker(t, client, emu, (stop, pause), seed))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    requests.fetch_add(emu.requests().len() as u64, Ordering::Relaxed);
    emu.clear_requests();
    emu.clear_token_requests();
    let elapsed = started.elapsed();
    // At rest again: the workers are done; connections settle as after warm-up.
    std::thread::sleep(SETTLE);
    let (rss_end, fds_end) = rss_and_fds();
    let end_fds = Fds::sample(port);
    let end_heap = HeapAtRest::sample(
        end_fds.client.len(),
        per_connection,
        pause.calls.load(Ordering::SeqCst),
    );
    let warm_heap = *warm_heap.lock().unwrap();
    let warm_fds = std::mem::take(&mut *warm_fds.lock().unwrap());
    let (rss_warm, fds_warm) = *warm.lock().unwrap();

    let mut calls = 0;
    let mut ok = 0;
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut over_budget = Vec::new();
    let mut longest = Duration::ZERO;
    let mut stale_reads = 0;
    let mut state_mismatches = Vec::new();
    for tally in tallies {
        calls += tally.calls;
        ok += tally.ok;
        for (name, n) in tally.faults {
            *faults.entry(name).or_default() += n;
        }
        for (name, n) in tally.failures {
            *failures.entry(name).or_default() += n;
        }
        over_budget.extend(tally.over_budget);
        longest = longest.max(tally.longest);
        stale_reads += tally.stale_reads;
        for (id, written) in tally.written {
            let held = emu
                .user_status(COLLECTION, &id)
                .and_then(|entity| entity["devicesCount"].as_i64())
                .map(|n| n as i32);
            if held != written {
                state_mismatches.push(format!("{id}: emulator {held:?}, last success {written:?}"));
            }
        }
    }
    let faults_total: u64 = faults.values().sum();
    let failures_total: u64 = failures.values().sum();
    println!(
        "calls {calls} in {:.0} s ({:.0}/s), succeeded {ok}, failed {failures_total}, Graph requests {}",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        requests.load(Ordering::Relaxed)
    );
    println!(
        "faults armed {faults_total} + token expiries {}:",
        token_expiries.load(Ordering::Relaxed)
    );
    for (name, n) in &faults {
        println!("  {name:<28} {n}");
    }
    println!("failures by kind:");
    for (name, n) in &failures {
        println!("  {name:<28} {n}");
    }
    println!(
        "longest call {:.3} s (budget {:.3} s + {:.3} s margin), over budget: {}",
        longest.as_secs_f64(),
        BUDGET.as_secs_f64(),
        MARGIN.as_secs_f64(),
        over_budget.len()
    );
    let show = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
    println!(
        "RSS KiB after warm-up {} at end {} (less glibc's free memory and pooled connections {} / {}); fds after warm-up {} at end {}",
        show(rss_warm),
        show(rss_end),
        show(in_use(rss_warm, &warm_heap)),
        show(in_use(rss_end, &end_heap)),
        show(fds_warm.map(|n| n as u64)),
        show(fds_end.map(|n| n as u64))
    );
    println!(
        "  of which: pooled connections {} / {} (emulator ends {} / {}, orphaned {} / {}); other {} / {} {:?}",
        warm_fds.client.len(),
        end_fds.client.len(),
        warm_fds.accepted.len(),
        end_fds.accepted.len(),
        warm_fds.orphans(),
        end_fds.orphans(),
        warm_fds.other_total(),
        end_fds.other_total(),
        end_fds.other
    );
    let kib = |bytes: i64| format!("{:.1}", bytes as f64 / 1024.0);
    println!(
        "heap at rest KiB: SDK {} / {} (pooled connections apart: {} / {}); whole process {} / {}",
        kib(warm_heap.sdk),
        kib(end_heap.sdk),
        kib(warm_heap.sdk_apart),
        kib(end_heap.sdk_apart),
        kib(warm_heap.all),
        kib(end_heap.all),
    );
    let free = |heap: HeapAtRest| {
        heap.allocator_free
            .map_or("n/a".to_owned(), |b| kib(b as i64))
    };
    println!(
        "  grown {:+.3} bytes per call over {} calls; allocator's free memory at rest KiB: {} / {}",
        end_heap.growth_per_call(&warm_heap),
        end_heap.calls - warm_heap.calls,
        free(warm_heap),
        free(end_heap)
    );
    println!(
        "state: {} entities, mismatches {}; stale reads {stale_reads}",
        args.threads * ENTITIES,
        state_mismatches.len()
    );
    let checks = [
        (
            "final state equals the successful writes",
            state_mismatches.is_empty() && stale_reads == 0,
        ),
        ("every call within its budget", over_budget.is_empty()),
        (
            "SDK heap at rest, pooled connections apart, grew under 1 byte per call",
            end_heap.growth_per_call(&warm_heap) < 1.0,
        ),
        (
            "RSS at rest, less glibc's free memory and the pooled connections, within 10% of warm-up",
            within_ten_percent(in_use(rss_warm, &warm_heap), in_use(rss_end, &end_heap)),
        ),
        // Idle pooled connections (three fds each: the client's and the emulator's two) come and
        // go with faults and idle expiry, so the raw count swings by multiples of three between
        // samples (25 -> 28, 25 -> 19) without leaking. Like is compared with like: descriptors
        // other than connections must hold steady, and connections must stay within the pool's
        // bound with no emulator end left behind by a closed client end.
        (
            "fds other than pooled connections within 10% of warm-up",
            within_ten_percent(Some(warm_fds.other_total()), Some(end_fds.other_total())),
        ),
        (
            "connections at rest: within the pool's bound, none orphaned",
            [&warm_fds, &end_fds]
                .iter()
                .all(|fds| fds.client.len() <= POOL_MAX && fds.orphans() == 0),
        ),
        ("faults were met", faults_total > 0 && failures_total > 0),
    ];
    let mut failed = false;
    for (check, passed) in checks {
        println!("{} {check}", if passed { "PASS" } else { "FAIL" });
        failed |= !passed;
    }
    for mismatch in state_mismatches.iter().take(10) {
        println!("  {mismatch}");
    }
    if failed {
        std::process::exit(1);
    }
}
