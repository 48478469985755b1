//! The bulk run's progress bar on standard error, only when standard error is a terminal: items
//! done, the rate, the throttling seen (Graph's 429s, to items and to whole `$batch` requests,
//! and how long they held the run) and, when
//! the number of items is known, the time left. One line of at most 80 columns.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use intune_user_status::{AnswerClass, Client, Metrics, Operation};

/// How often the bar is redrawn while nothing changes (a Retry-After wait), so the time moves.
const TICK: Duration = Duration::from_millis(200);

/// With a known total: `⠋ [=======>        ] 123456/200000 · 812.3/s · throttled 12× 34.5 s ·
/// 1m left` fits in 80 columns.
const WITH_TOTAL: &str = "{spinner} [{bar:16}] {pos}/{len} · {rate} · {msg} · {eta} left";
/// Reading a stream: no total, so no bar and no time left.
const WITHOUT_TOTAL: &str = "{spinner} {pos} items · {rate} · {msg}";

/// The bar, or nothing when standard error is not a terminal. Dropping it finishes the bar and
/// ends its line, on every way out of a run, so nothing printed after lands on it.
pub struct Progress {
    bar: ProgressBar,
}

/// What the bulk call's progress reports move: a handle on the same bar.
#[derive(Clone)]
pub struct Meter {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` items, or a counter when the total is not known.
    pub fn new(total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let template = if total.is_some() {
            WITH_TOTAL
        } else {
            WITHOUT_TOTAL
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |state: &ProgressState, out: &mut dyn fmt::Write| {
                let _ = write!(out, "{:.1}/s", state.per_sec());
            })
            .progress_chars("=> ");
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        }
        .with_style(style);
        bar.set_message(throttling(0, Duration::ZERO));
        bar.enable_steady_tick(TICK);
        Progress { bar }
    }

    /// A handle for the bulk call's progress reports.
    pub fn meter(&self) -> Meter {
        Meter {
            bar: self.bar.clone(),
        }
    }

    /// Runs `print` with the bar taken off the screen, then draws it again below what it
    /// printed, so output to the same terminal leaves no copy of the bar behind.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bar.suspend(print)
    }
}

impl Meter {
    /// `done` items have their result; Graph throttled `throttled` times, holding the run for
    /// `held`.
    pub fn show(&self, done: u64, throttled: u32, held: Duration) {
        // A file that grew after it was counted.
        if self.bar.length().is_some_and(|total| done > total) {
            self.bar.set_length(done);
        }
        self.bar.set_position(done);
        self.bar.set_message(throttling(throttled, held));
    }
}

/// The throttling a run has seen, for the bar: Graph's 429s to the items inside `$batch`
/// requests (the bulk call's progress counts those) and to the `$batch` requests themselves (the
/// client's metrics count those; the pipeline retries them whole, unseen by the bulk call), and how
/// long they held the client (its metrics' `throttleHolds`).
#[derive(Clone)]
pub struct Throttling {
    client: Client,
    /// The metrics when the run began: the client may have been used before.
    batch_429s: u64,
    held_ms: u64,
}

impl Throttling {
    /// Counts from now on.
    pub fn since_now(client: &Client) -> Throttling {
        let metrics = client.metrics();
        Throttling {
            client: client.clone(),
            batch_429s: batch_429s(&metrics),
            held_ms: metrics.throttle_holds.total_ms,
        }
    }

    /// With `inner` 429s to items so far: all the 429s the run has seen, and how long they held
    /// it.
    pub fn seen(&self, inner: u32) -> (u32, Duration) {
        let metrics = self.client.metrics();
        let whole = batch_429s(&metrics).saturating_sub(self.batch_429s);
        let held = metrics.throttle_holds.total_ms.saturating_sub(self.held_ms);
        (
            inner.saturating_add(u32::try_from(whole).unwrap_or(u32::MAX)),
            Duration::from_millis(held),
        )
    }
}

/// `$batch` requests answered 429.
fn batch_429s(metrics: &Metrics) -> u64 {
    metrics.requests[Operation::Batch].answered[AnswerClass::TooManyRequests]
}

/// Leaves the bar drawn as it ends, and the cursor on the next line (indicatif leaves it at the
/// bar's end, where the error JSON would follow on the same line).
impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish();
        if !self.bar.is_hidden() {
            eprintln!();
        }
    }
}

fn throttling(throttled: u32, held: Duration) -> String {
    format!("throttled {throttled}× {:.1} s", held.as_secs_f64())
}
