//! Until when the writes this handle sent may land, on the steady (monotonic) clock: a wall clock
//! stepped forward (NTP after a resume, a VM restored, an operator) makes a stored end pass early,
//! while Graph's window is real time. Within the process that sent a write, its end here is
//! believed as well as the stored one, and the later wins: a changed value waits for both.
//! Across a restart only the stored (wall-clock) ends exist, and a forward step cannot be told
//! from time passing (docs/outbox.md says so).
//!
//! An end here is `requestMs` (+ the departure slack) after the write left, on
//! [`Clock::steady_ms`], which may not count a system's sleep: a write in doubt before a sleep is
//! then held one window of awake time after it, never longer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::clock::Clock;

/// A user status's entry: until when (steady ms), and the wall-clock end last written for it.
pub(crate) type End = (i64, i64);

/// The steady ends of the writes this handle sent that may still land.
#[derive(Default)]
pub(crate) struct SteadyEnds {
    /// Per user status: until when (steady ms), and the wall-clock end last written for it.
    ends: Mutex<HashMap<String, (i64, i64)>>,
}

impl SteadyEnds {
    /// `keys` were sent (or had an unknown outcome known) at `now` (unix ms), and their writes may
    /// land for `window` ms; the file was given `now + window` as their end.
    pub(crate) fn note<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
        (clock, now): (&Clock, i64),
        window: i64,
    ) {
        let steady = clock.steady_ms().saturating_add(window);
        let wall = now.saturating_add(window);
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            let end = ends.entry(key.to_owned()).or_insert((steady, wall));
            *end = (end.0.max(steady), end.1.max(wall));
        }
    }

    /// The entry of `key` now: what [`restore`](Self::restore) brings back once the outcome of a
    /// write claimed now is known.
    pub(crate) fn get(&self, key: &str) -> Option<End> {
        let ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        ends.get(key).copied()
    }

    /// The write last sent for `key` has a known outcome: its entry is again `before` (what
    /// [`get`](Self::get) said at its claim), as the file's row is (in_doubt.rs `restore`).
    pub(crate) fn restore(&self, key: &str, before: Option<End>) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        match before {
            Some(end) => ends.insert(key.to_owned(), end),
            None => ends.remove(key),
        };
    }

    /// The end of `key`'s write as a wall-clock time at `now` (unix ms): now + what is left of its
    /// steady end, while it may still land.
    pub(crate) fn floor(&self, key: &str, (clock, now): (&Clock, i64)) -> Option<i64> {
        let ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let (steady, _) = ends.get(key)?;
        let left = steady.saturating_sub(clock.steady_ms());
        (left > 0).then(|| now.saturating_add(left))
    }

    /// The writes whose steady end, read at `now` (unix ms), is later than the wall-clock end
    /// last written for them by more than `tolerance` ms (the wall clock was stepped forward):
    /// each with its end as now + what is left, noted as written. Those that can no longer land
    /// are forgotten.
    pub(crate) fn stepped(
        &self,
        (clock, now): (&Clock, i64),
        tolerance: i64,
    ) -> Vec<(String, i64)> {
        let at = clock.steady_ms();
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        ends.retain(|_, (steady, _)| *steady > at);
        ends.iter_mut()
            .filter_map(|(key, (steady, wall))| {
                let floor = now.saturating_add(*steady - at);
                (floor > wall.saturating_add(tolerance)).then(|| {
                    *wall = floor;
                    (key.clone(), floor)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_stepped_forward_leaves_the_steady_end_in_force() {
        let clock = Clock::default();
        let ends = SteadyEnds::default();
        ends.note(["a", "b"], (&clock, 1_000), 60_000);
        // The same moment read 10 s later on the wall clock: the steady end is still ~60 s away.
        let floor = ends.floor("a", (&clock, 11_000)).unwrap();
        assert!((70_000 - 100..=71_000).contains(&floor), "{floor}");
        assert_eq!(ends.floor("c", (&clock, 11_000)), None);
        let stepped = ends.stepped((&clock, 11_000), 250);
        assert_eq!(stepped.len(), 2, "{stepped:?}");
        // Noted as written: not again.
        assert!(ends.stepped((&clock, 11_000), 250).is_empty());
        // A clock that did not step writes nothing.
        let calm = SteadyEnds::default();
        calm.note(["a"], (&clock, 1_000), 60_000);
        assert!(calm.stepped((&clock, 1_050), 250).is_empty());
        // A test's set clock: its forward moves are time passing, its moves back steps.
        let (set, at) = Clock::fixed(1_000);
        let virtual_time = SteadyEnds::default();
        virtual_time.note(["a"], (&set, 1_000), 5_000);
        at.store(-600_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(virtual_time.floor("a", (&set, -600_000)), Some(-595_000));
        at.store(-596_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(virtual_time.floor("a", (&set, -596_000)), Some(-595_000));
        at.store(-595_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(virtual_time.floor("a", (&set, -595_000)), None);
    }
}
