//! The bulk run's progress bar on standard error, only when standard error is a terminal: items
//! done, the throttling seen (Graph's 429s and how long they held the run), the rate and the time
//! left.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// How often the bar is redrawn while nothing changes (a Retry-After wait), so the time moves.
const TICK: Duration = Duration::from_millis(200);

/// The bar, or nothing when standard error is not a terminal. Clones draw the same bar.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` items.
    pub fn new(total: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let style = ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} items · {msg} · {rate} · {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, out: &mut dyn fmt::Write| {
            let _ = write!(out, "{:.1} items/s", state.per_sec());
        })
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_message(throttling(0, Duration::ZERO));
        bar.enable_steady_tick(TICK);
        Progress { bar }
    }

    /// `done` items have their result; Graph throttled `throttled` times, holding the run for
    /// `held`.
    pub fn show(&self, done: u64, throttled: u32, held: Duration) {
        self.bar.set_position(done);
        self.bar.set_message(throttling(throttled, held));
    }

    /// Leaves the bar drawn as it ends, and the cursor on the next line (indicatif leaves it at
    /// the bar's end, where the error JSON would follow on the same line).
    pub fn finish(&self) {
        self.bar.finish();
        if !self.bar.is_hidden() {
            eprintln!();
        }
    }
}

fn throttling(throttled: u32, held: Duration) -> String {
    format!(
        "throttled {throttled}× (waited {:.1} s)",
        held.as_secs_f64()
    )
}
