//! The outbox-wide hold: one stored "not before" time for every pending report.
//!
//! A flush that stops because Graph throttled it, asked for a longer wait than `maxDelayMs`, could
//! not be reached, or refused the credentials holds everything it did not send until the wait is
//! over: sending sooner would fare the same. One row says so, whatever the backlog (an offline
//! flush over 100,000 reports writes the rows of its one round, claimed then recorded, and this),
//! and reports enqueued meanwhile wait too. It lives in the `counters` table (`held_until`,
//! `held_for`), so files written before it keep their schema; a file without it is not held.
//!
//! Like every stored time it is bounded when read, never trusted (see [`Horizon`]): the hold is
//! believed up to now + the longer of `maxDelayMs` and the wait it was set for (Graph's
//! `Retry-After` may ask for more than `maxDelayMs`, and is honoured), so a hold written by a clock
//! that ran ahead ends now.

use rusqlite::{Connection, OptionalExtension, params};

use super::clock::Horizon;

/// Holds every pending report back until `until` (unix ms), a wait of `held_for` ms asked at the
/// time of writing; replaces any earlier hold (a flush runs only once the last one is over).
/// Written inside the transaction that records the round that stopped (`store::record`), so the
/// hold and that round's outcomes are on disk together or not at all.
pub(crate) fn set(conn: &Connection, until: i64, held_for: i64) -> rusqlite::Result<()> {
    // One statement: both rows or neither.
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('held_until', ?1), ('held_for', ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![until, held_for.max(0)],
    )
    .map(drop)
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
    Ok(horizon
        .believes(until, held_for.unwrap_or(0))
        .then_some(until))
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
    fn a_hold_is_believed_up_to_now_plus_the_longer_of_max_delay_and_its_wait() {
        let conn = file();
        let at = |now| Horizon::new(now, 1_000);
        // No hold in a file that never stopped a flush (every file made before it).
        assert_eq!(until(&conn, at(0)).unwrap(), None);
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
