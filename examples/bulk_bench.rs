//! The bulk path's figures, against in-process emulators; prints one line per measurement.
//!
//! 1. Speed: N updates with 50 ms added to every request the emulator answers, three ways:
//!    sequential single updates, one bulk call, and 8 threads of single updates. The aim for the
//!    bulk call is at most 1.2 x ceil(N/20) x 50 ms.
//! 2. Pacing: under the emulator's Intune write limit scaled down (20 writes per second, every
//!    inner request counted), one bulk call unpaced and one paced at the limit (with a 5% margin:
//!    the client counts a request when it leaves, the service when it arrives); the paced one
//!    should draw zero 429s and finish within 1.1 x the time the limit allows.
//! 3. Memory: one bulk call of 10,000 (and 1,000) items, the bytes the calling thread allocated at
//!    its peak beyond the input, per item (a counting allocator; the emulator's threads are not
//!    counted).
//!
//! ```text
//! taskset -c 0 cargo run --release --example bulk_bench -- [--n 200] [--only speed|paced|memory]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use intune_user_status::{
    BulkItem, Client, ComplianceStatus, Pacing, RetryPolicy, Target, UserStatusPatch,
};
use ius_emulator::{Config, Emulator};

const TOKEN: &str = "bench-token";
const COLLECTION: &str = "/deviceManagement/deviceConfigurations/cfg/userStatuses";
const LATENCY: Duration = Duration::from_millis(50);

// --- A counting allocator: bytes live on the measured thread, and their peak -----------------

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: isize) {
    if MEASURED.try_with(Cell::get).unwrap_or(false) {
        let live = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// --- The measurements -------------------------------------------------------------------------

/// An emulator holding `s0` .. `s{count-1}`, adding `latency` to every request on the wire (a
/// `$batch` envelope once).
fn emulator(count: usize, latency: Duration, throttle: Option<(u32, Duration)>) -> Emulator {
    let emu = Emulator::start(Config {
        token: Some(TOKEN.into()),
        latency,
        throttle_writes: throttle,
        ..Config::default()
    })
    .expect("start the emulator");
    for n in 0..count {
        emu.insert_user_status(COLLECTION, serde_json::json!({"id": format!("s{n}")}))
            .expect("seed");
    }
    emu
}

fn client(emu: &Emulator, pacing: Option<Pacing>) -> Client {
    let mut builder = Client::builder()
        .base_url(emu.base_url())
        .access_token(TOKEN)
        .retry_policy(RetryPolicy::default().max_retries(10));
    if let Some(pacing) = pacing {
        builder = builder.pacing(pacing);
    }
    builder.build().expect("client")
}

fn items(count: usize) -> Vec<BulkItem> {
    (0..count)
        .map(|n| {
            BulkItem::new(
                Target::new("cfg", format!("s{n}")),
                UserStatusPatch::new()
                    .status(ComplianceStatus::Compliant)
                    .devices_count(n as i32),
            )
        })
        .collect()
}

fn single(client: &Client, item: &BulkItem) {
    client
        .update_user_status(item.target(), item.patch())
        .expect("update");
}

fn speed(n: usize) {
    let work = items(n);

    let emu = emulator(n, LATENCY, None);
    let singles = client(&emu, None);
    let started = Instant::now();
    for item in &work {
        single(&singles, item);
    }
    let sequential = started.elapsed();

    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in work.chunks(n.div_ceil(8)) {
            let client = &singles;
            scope.spawn(move || chunk.iter().for_each(|item| single(client, item)));
        }
    });
    let threads = started.elapsed();
    emu.shutdown();

    let emu = emulator(n, LATENCY, None);
    let bulk_client = client(&emu, None);
    let started = Instant::now();
    let results = bulk_client.update_user_statuses(&work);
    let bulk = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "every item applied");
    let batches = n.div_ceil(20);
    let aim = LATENCY.mul_f64(1.2 * batches as f64);
    emu.shutdown();

    println!(
        "speed n={n} latency={}ms: sequential {:.3} s, 8 threads {:.3} s, bulk {:.3} s ({batches} batches; aim <= {:.3} s: {})",
        LATENCY.as_millis(),
        sequential.as_secs_f64(),
        threads.as_secs_f64(),
        bulk.as_secs_f64(),
        aim.as_secs_f64(),
        if bulk <= aim { "met" } else { "MISSED" }
    );
}

fn paced(n: usize) {
    let (limit, window) = (20u32, Duration::from_secs(1));
    let work = items(n);
    // What the limit allows: `limit` writes at once, then `limit` more per window.
    let allowed = window.mul_f64((n as f64 / limit as f64).ceil() - 1.0);
    // Paced at exactly the limit: the client's window runs from answers, which come after the
    // emulator (like Intune) counted the request.
    for pacing in [None, Some(Pacing::new(limit, window))] {
        let emu = emulator(n, Duration::ZERO, Some((limit, window)));
        let client = client(&emu, pacing);
        let started = Instant::now();
        let results = client.update_user_statuses(&work);
        let elapsed = started.elapsed();
        let failed = results.iter().filter(|r| r.is_err()).count();
        println!(
            "write limit {limit}/{}s n={n} {}: {:.3} s, {} 429s, {failed} failed (limit allows {:.3} s; aim <= {:.3} s)",
            window.as_secs(),
            if pacing.is_some() { "paced" } else { "unpaced" },
            elapsed.as_secs_f64(),
            emu.throttled_count(),
            allowed.as_secs_f64(),
            allowed.mul_f64(1.1).as_secs_f64()
        );
        emu.shutdown();
    }
}

fn memory(n: usize) {
    let emu = emulator(n, Duration::ZERO, None);
    let client = client(&emu, None);
    MEASURED.with(|m| m.set(true));
    let before = LIVE.load(Ordering::Relaxed);
    let work = items(n);
    let input = LIVE.load(Ordering::Relaxed) - before;
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let results = client.update_user_statuses(&work);
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let kept = LIVE.load(Ordering::Relaxed) - base;
    MEASURED.with(|m| m.set(false));
    assert!(results.iter().all(Result::is_ok), "every item applied");
    println!(
        "memory n={n}: input {:.1} KiB ({} B/item); during the call peak {:.1} KiB ({} B/item) beyond it; results {:.1} KiB; {:.3} s",
        input as f64 / 1024.0,
        input / n as isize,
        peak as f64 / 1024.0,
        peak / n as isize,
        kept as f64 / 1024.0,
        elapsed.as_secs_f64()
    );
    drop(results);
    emu.shutdown();
}

fn main() {
    let mut n = 200;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--n", Some(value)) => n = value.parse().expect("--n takes a count"),
            ("--only", Some(part)) => only = Some(part),
            _ => {
                eprintln!("usage: bulk_bench [--n N] [--only speed|paced|memory]");
                std::process::exit(2);
            }
        }
    }
    let run = |part: &str| only.as_deref().is_none_or(|only| only == part);
    if run("speed") {
        speed(n);
    }
    if run("paced") {
        paced(n);
    }
    if run("memory") {
        memory(1_000);
        memory(10_000);
    }
}
