//! Until when the writes this process sent to a file may land, on the steady (monotonic) clock: a
//! wall clock stepped forward (NTP after a resume, a VM restored, an operator) makes a stored end
//! pass early, while Graph's window is real time. Within the process that sent a write, its end
//! here is believed as well as the stored one, and the later wins: a changed value waits for both,
//! a record's prune keeps the row until then (in_doubt.rs `prune`), and a row another process
//! pruned still holds any report of its user status back. Across a restart only the stored
//! (wall-clock) ends exist, and a forward step cannot be told from time passing (docs/outbox.md
//! says so).
//!
//! The ends are the process's, per file ([`SteadyEnds::of_file`], by canonical path as the flush
//! lock is): every handle of the file shares them, so an agent that opens, flushes and frees its
//! outbox each cycle keeps them. Flushes of a file take turns (the flush lock), and only a flush
//! reads or changes them.
//!
//! An end here is `requestMs` (+ the departure slack) after the write left, on
//! [`Clock::steady_ms`], which may not count a system's sleep: a write in doubt before a sleep is
//! then held one window of awake time after it, never longer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::clock::Clock;

/// The files' steady ends, by canonical path. An entry no handle holds goes once every end in it
/// passed (each open looks), so it holds only files with writes that may still land.
static FILES: Mutex<BTreeMap<PathBuf, Arc<SteadyEnds>>> = Mutex::new(BTreeMap::new());

/// A user status's entry: until when (steady ms), and the wall-clock end last written for it.
pub(crate) type End = (i64, i64);

/// The steady ends of the writes this process sent to one file that may still land.
#[derive(Default)]
pub(crate) struct SteadyEnds {
    /// Per user status: until when (steady ms), and the wall-clock end last written for it.
    ends: Mutex<HashMap<String, (i64, i64)>>,
}

impl SteadyEnds {
    /// The ends of the file at `canonical` (its canonical path) in this process, which a handle
    /// opened with `clock` shares with every other handle of the file. A test's set clock counts
    /// its own steady time, so its handle keeps its own.
    pub(crate) fn of_file(canonical: &Path, clock: &Clock) -> Arc<SteadyEnds> {
        if !clock.is_system() {
            return Arc::default();
        }
        let at = clock.steady_ms();
        let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
        // Held by a handle (the map's own reference aside), or with a write that may still land.
        files.retain(|_, ends| Arc::strong_count(ends) > 1 || ends.any_after(at));
        Arc::clone(files.entry(canonical.to_path_buf()).or_default())
    }

    /// Forgets the ends passed at `at` (steady ms); whether any is left.
    fn any_after(&self, at: i64) -> bool {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        ends.retain(|_, (steady, _)| *steady > at);
        !ends.is_empty()
    }

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

    /// Every handle of a file in the process shares its ends, a freed one's included; the file's
    /// entry goes once no handle holds it and every end passed. A set clock's are its own.
    #[test]
    fn the_ends_are_the_files_in_the_process_and_go_once_passed() {
        let clock = Clock::default();
        let file = Path::new("/steady-test/the-ends-are-the-files/o.db");
        let first = SteadyEnds::of_file(file, &clock);
        first.note(["a"], (&clock, 1_000), 60_000);
        drop(first);
        let reopened = SteadyEnds::of_file(file, &clock);
        assert!(reopened.get("a").is_some(), "a freed handle's end is kept");
        let other = SteadyEnds::of_file(Path::new("/steady-test/another/o.db"), &clock);
        assert!(other.get("a").is_none(), "another file's ends are its own");
        let (set, _) = Clock::fixed(1_000);
        assert!(SteadyEnds::of_file(file, &set).get("a").is_none());
        // Its write's outcome known: nothing left to hold, and nobody holds the entry.
        reopened.restore("a", None);
        drop(reopened);
        drop(SteadyEnds::of_file(
            Path::new("/steady-test/a-third/o.db"),
            &clock,
        ));
        let files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!files.contains_key(file), "an entry with no end left stays");
        assert!(
            files.contains_key(Path::new("/steady-test/another/o.db")),
            "held"
        );
    }

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
