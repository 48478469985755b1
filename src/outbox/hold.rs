//! The outbox-wide hold: one stored "not before" time for every pending report.
//!
//! A flush that stops because Graph throttled it, asked for a longer wait than `maxDelayMs`, could
//! not be reached, or refused the credentials holds everything it did not send until the wait is
//! over: sending sooner would fare the same. One row says so, whatever the backlog (an offline
//! flush over 100,000 reports writes the rows of its one round, claimed then recorded, and this),
//! and reports enqueued meanwhile wait too. It lives in the `counters` table (`held_until`,
//! `held_for`), so files written before it keep their schema; a file without it is not held.
//!
//! A hold lasts at most [`MAX_OUTBOX_HOLD`] (one hour), whatever was asked: Graph's `Retry-After`
//! may ask for more than `maxDelayMs`, and is honoured up to that cap, but a header that asks for
//! a day (a proxy's, a bug's) must not silence an agent for a day. An operator ends a hold with
//! [`clear`] (`Outbox::clear_hold`, `ius outbox PATH clear-hold`).
//!
//! Like every stored time it is bounded when read, never trusted (see [`Horizon`]): the hold is
//! believed up to now + the longer of `maxDelayMs` and the wait it was set for (at most the cap),
//! so a hold written by a clock that ran ahead ends now.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::clock::Horizon;

/// The longest the outbox-wide hold lasts: a `Retry-After` that asks for more holds the outbox
/// this long, then the next flush asks Graph again. An hour is longer than any throttling window
/// Graph documents (seconds to minutes), and short enough that an agent that met a wrong header
/// reports again within the hour.
pub const MAX_OUTBOX_HOLD: Duration = Duration::from_secs(60 * 60);

/// [`MAX_OUTBOX_HOLD`] in ms.
const MAX_HOLD_MS: i64 = MAX_OUTBOX_HOLD.as_millis() as i64;

/// Holds every pending report back until `until` (unix ms), a wait of `held_for` ms asked at the
/// time of writing, cut to [`MAX_OUTBOX_HOLD`]; replaces any earlier hold (a flush runs only once
/// the last one is over). Written inside the transaction that records the round that stopped
/// (`store::record`), so the hold and that round's outcomes are on disk together or not at all.
pub(crate) fn set(conn: &Connection, until: i64, held_for: i64) -> rusqlite::Result<()> {
    let asked = held_for.max(0);
    let held_for = asked.min(MAX_HOLD_MS);
    let until = until.saturating_sub(asked - held_for);
    // One statement: both rows or neither.
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('held_until', ?1), ('held_for', ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![until, held_for],
    )
    .map(drop)
}

/// Ends the hold; `true` when one was in force at `horizon` (as [`in_force`] says).
pub(crate) fn clear(conn: &Connection, horizon: Horizon) -> rusqlite::Result<bool> {
    let was = in_force(conn, horizon)?.is_some();
    conn.execute(
        "DELETE FROM counters WHERE name IN ('held_until', 'held_for')",
        [],
    )?;
    Ok(was)
}

/// The end of the hold in force at `horizon` (unix ms, later than now), if any.
pub(crate) fn in_force(conn: &Connection, horizon: Horizon) -> rusqlite::Result<Option<i64>> {
    Ok(until(conn, horizon)?.filter(|&until| until > horizon.now))
}

/// The end of the hold as believed at `horizon` (unix ms; it may be past), or `None` when there
/// is none or it ends later than now + max(`maxDelayMs`, the wait it was set for): left by a
/// clock that ran ahead, so over now.
pub(crate) fn until(conn: &Connection, horizon: Horizon) -> rusqlite::Result<Option<i64>> {
    let read = |name: &str| -> rusqlite::Result<Option<i64>> {
        // A value the file holds damaged reads as none: no hold.
        conn.query_row(
            "SELECT value FROM counters WHERE name = ?1",
            [name],
            |row| Ok(row.get::<_, Option<i64>>(0).ok().flatten()),
        )
        .optional()
        .map(Option::flatten)
    };
    let (Some(until), held_for) = (read("held_until")?, read("held_for")?) else {
        return Ok(None);
    };
    // A file written before the cap may hold a longer wait: believed up to the cap only.
    let held_for = held_for.unwrap_or(0).min(MAX_HOLD_MS);
    Ok(horizon.believes(until, held_for).then_some(until))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_hold_is_believed_up_to_now_plus_the_longer_of_max_delay_and_its_wait_at_most_the_cap() {
        let conn = file();
        let at = |now| Horizon::new(now, 1_000);
        // No hold in a file that never stopped a flush (every file made before it).
        assert_eq!(until(&conn, at(0)).unwrap(), None);
        // A Retry-After of a day is cut to the cap: an hour.
        set(&conn, 86_400_000, 86_400_000).unwrap();
        assert_eq!(until(&conn, at(0)).unwrap(), Some(MAX_HOLD_MS));
        // Cleared: no hold, and clearing again says none was in force.
        assert!(clear(&conn, at(0)).unwrap());
        assert_eq!(until(&conn, at(0)).unwrap(), None);
        assert!(!clear(&conn, at(0)).unwrap());
        // A Retry-After of an hour, past maxDelay: believed for the hour.
        set(&conn, 3_600_000, 3_600_000).unwrap();
        assert_eq!(until(&conn, at(0)).unwrap(), Some(3_600_000));
        assert_eq!(until(&conn, at(1_800_000)).unwrap(), Some(3_600_000));
        // The clock went back a day since it was set: a clock that ran ahead wrote it.
        assert_eq!(until(&conn, at(-86_400_000)).unwrap(), None);
        // A short hold is bounded by maxDelay.
        set(&conn, 500, 500).unwrap();
        assert_eq!(until(&conn, at(0)).unwrap(), Some(500));
        assert_eq!(until(&conn, at(-600)).unwrap(), None);
        // A value the file holds damaged is no hold.
        conn.execute_batch("UPDATE counters SET value = 'x' WHERE name = 'held_until'")
            .unwrap();
        assert_eq!(until(&conn, at(0)).unwrap(), None);
    }
}
