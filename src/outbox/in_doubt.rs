//! Writes Graph may still apply: per user status, the union of the patches sent whose outcome is
//! unknown and that may still land, and until when the last of them may.
//!
//! A write whose answer never came (a timeout, a connection lost after the request was written, a
//! 5xx, an interrupt, a kill between claim and record) may still be applied by Graph for as long
//! as Graph holds the request. A report that sets one of that write's properties to another value
//! must not be sent before then, or the late write would overwrite it: its claim holds it back
//! until the write can no longer land. A report that sets them to the same values goes at once
//! (PATCH is idempotent: an equal late write changes nothing).
//!
//! The bound is the request's budget (`timeouts.requestMs`, 100 s by default, the timeout
//! Microsoft's own SDKs give a request): from the time the request left (written before it leaves:
//! the claim's end covers a request leaving within [`DEPARTURE_SLACK_MS`] of it, and a later one,
//! a retry within the call, a wait at the pacing gate or for a token, writes its own first), or
//! from the record of an unknown outcome (it left before that), the client waits for an answer at
//! most that long. Graph documents no time after which a request it received can no longer be applied: that
//! a write not applied `requestMs` after it left is never applied is this bound's assumption.
//! Like every stored time it is bounded when read, never trusted: each row keeps the `requestMs`
//! its write was sent with (its window), and an end later than now + that window (written before
//! the clock was stepped back, or by a clock that ran ahead) is read as now + the window, still in
//! doubt. The window is the row's, not the client's that opened the file now: a file reopened
//! with a shorter `requestMs` (a config change, the `ius` CLI) must not cut short a write sent
//! under a longer one. A row without one (written by a version that did not keep it) reads the
//! current `requestMs`. An end is never read as over: a write that may still land is not dropped
//! for a clock's error. Each claim writes such an end back as now + its window ([`bound`]), so a
//! clock that ran ahead costs a changed value one window once the clock is right, not the time
//! until the clock reaches that end.

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

use super::acknowledged;
use crate::UserStatusPatch;

/// How long after an end is written the request may still leave without writing its own (ms): a
/// claim's end is its time + `requestMs` + this, so a first request that leaves at once writes
/// nothing more; one that leaves later (a later batch, a retry within the call, a wait at the
/// pacing gate or for a token) first writes its time + `requestMs` + this (`store::leaving`).
pub(crate) const DEPARTURE_SLACK_MS: i64 = 250;

/// The latest end believed at `now` for a write sent with a window of `window` ms: one that
/// leaves now may land until then.
fn latest(now: i64, window: i64) -> i64 {
    now.saturating_add(window)
        .saturating_add(DEPARTURE_SLACK_MS)
}

/// A write in doubt: the patch sent (its JSON text), until when Graph may apply it (unix ms), and
/// the `requestMs` it was sent with (`None` in a row written before rows kept it).
#[derive(Clone, Debug)]
pub(crate) struct InDoubt {
    pub patch: String,
    pub until: i64,
    pub window: Option<i64>,
}

/// The write in doubt for `key`, if any (a row the file holds damaged reads as none).
pub(crate) fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<InDoubt>> {
    Ok(conn
        .prepare_cached("SELECT patch, until, request_ms FROM in_doubt WHERE key = ?1")?
        .query_row([key], |row| {
            Ok((
                row.get::<_, String>(0).ok(),
                row.get::<_, Option<i64>>(1).ok().flatten(),
                row.get::<_, Option<i64>>(2).ok().flatten(),
            ))
        })
        .optional()?
        .and_then(|(patch, until, window)| {
            Some(InDoubt {
                patch: patch?,
                until: until?,
                window: window.filter(|&w| w > 0),
            })
        }))
}

impl InDoubt {
    /// Until when a report of `patch` must wait (unix ms): `Some` while this write may still land
    /// (its end is after `now`; an end past now + its window + the departure slack reads as that,
    /// see [`InDoubt::window_or`]) and `patch` sets one of its properties to another value.
    pub(crate) fn holds_back(
        &self,
        patch: &UserStatusPatch,
        now: i64,
        request_ms: i64,
    ) -> Option<i64> {
        let until = self.until.min(latest(now, self.window_or(request_ms)));
        if until <= now {
            return None;
        }
        let Ok(sent) = UserStatusPatch::from_json(&self.patch) else {
            return None;
        };
        let sent = acknowledged::properties(&sent);
        let changed = acknowledged::properties(patch)
            .iter()
            .any(|(name, value)| sent.iter().any(|(n, v)| n == name && v != value));
        changed.then_some(until)
    }

    /// Its window: the longer of the `requestMs` it was sent with and `request_ms` (the current
    /// one). The current one counts too: a build that does not know the column (schema 3 before
    /// it; an agent rolled back, then forward) writes an end with its own window and leaves the
    /// column as an earlier write set it.
    pub(crate) fn window_or(&self, request_ms: i64) -> i64 {
        self.window
            .map_or(request_ms, |window| window.max(request_ms))
    }
}

/// What is in doubt for a user status once `patch` is claimed, sent with a window of
/// `request_ms` until `until` (unix ms), with `before` in doubt at `now`: a write claimed changes
/// no property `before` may still set to another value (else [`InDoubt::holds_back`] held it), so
/// both may land, and the row holds the union of both patches, until the later of both ends, with
/// the longer of both windows. A `before` that is over, or unreadable (a row the file holds
/// damaged reads as none, as in [`get`]), adds nothing. Returns the union, its end and window.
pub(crate) fn joined(
    before: Option<&InDoubt>,
    patch: &UserStatusPatch,
    now: i64,
    (until, request_ms): (i64, i64),
) -> (UserStatusPatch, i64, i64) {
    let earlier = before
        .filter(|before| before.until > now)
        .and_then(|before| {
            Some((
                UserStatusPatch::from_json(&before.patch).ok()?,
                before.until,
                before.window_or(request_ms),
            ))
        });
    match earlier {
        Some((mut union, earlier_until, window)) => {
            union.merge(patch);
            (union, earlier_until.max(until), window.max(request_ms))
        }
        None => (patch.clone(), until, request_ms),
    }
}

/// At most the room one write in doubt takes in a file of `page`-byte pages: its row, and a page
/// besides (a split).
pub(crate) fn bytes(key: &str, patch: &str, page: u64) -> u64 {
    (key.len() + patch.len() + 32) as u64 + page
}

/// `patch` for `key` is on its way, and Graph may apply it until `until` (unix ms); `window` is
/// the `requestMs` it is sent with (`None`: not known, as in the row it restores).
pub(crate) fn set(
    conn: &Connection,
    key: &str,
    patch: &str,
    (until, window): (i64, Option<i64>),
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO in_doubt (key, patch, until, request_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET patch = excluded.patch, until = excluded.until,
             request_ms = excluded.request_ms",
    )?
    .execute(params![key, patch, until, window])
    .map(drop)
}

/// The write last sent for `key`, with a window of `request_ms`, left (or had an unknown outcome
/// known) at `until - request_ms`: it may land until `until`, or later if its row said so.
pub(crate) fn extend(
    conn: &Connection,
    key: &str,
    until: i64,
    request_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE in_doubt SET until = max(until, ?2),
             request_ms = max(coalesce(request_ms, ?3), ?3) WHERE key = ?1",
    )?
    .execute(params![key, until, request_ms])
    .map(drop)
}

/// The write last sent for `key` has a known outcome (applied, refused, or never sent): what was
/// in doubt before its claim (`before`) is again all that may land.
pub(crate) fn restore(
    conn: &Connection,
    key: &str,
    before: Option<&InDoubt>,
) -> rusqlite::Result<()> {
    match before {
        Some(before) => set(conn, key, &before.patch, (before.until, before.window)),
        None => conn
            .prepare_cached("DELETE FROM in_doubt WHERE key = ?1")?
            .execute([key])
            .map(drop),
    }
}

/// [`bound`]'s statement. Each row keeps its own window, never shorter than the current one
/// (`?2`), so every row it changes ends after now + `?2` + slack: that first condition (implied by
/// the second) lets SQLite find them through the index on `until`, instead of reading every row in
/// doubt at each claim. Only ends written under a longer window or by a clock that ran ahead are
/// in that range.
const BOUND: &str = "UPDATE in_doubt SET until = ?1 + max(coalesce(request_ms, ?2), ?2) + ?3
     WHERE until > ?1 + ?2 + ?3 AND until > ?1 + max(coalesce(request_ms, ?2), ?2) + ?3";

/// The rows whose end passed at `?1`, the earliest first, up to `?2`: what [`prune`] examines,
/// through the index on `until`.
const ENDED: &str = "SELECT key FROM in_doubt WHERE until <= ?1 ORDER BY until LIMIT ?2";

/// [`prune`]'s removal of one row it examined, by its key: only a row whose steady end was read
/// is ever removed (a second look at the ended rows would reach rows never examined).
const FORGET: &str = "DELETE FROM in_doubt WHERE key = ?1";

/// [`prune`]'s move of a kept row's end to the steady end the process knows for it.
const STEADY_END: &str = "UPDATE in_doubt SET until = ?2 WHERE key = ?1";

/// Writes every end later than now + its window back as now + its window (see the module's doc;
/// its window as [`InDoubt::window_or`] reads it): read that way anyway, and stored so, it ends
/// one window after the clock was right.
pub(crate) fn bound(conn: &Connection, now: i64, request_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(BOUND)?
        .execute([now, request_ms, DEPARTURE_SLACK_MS])
        .map(drop)
}

/// Examines up to `limit` rows whose end passed at `now`, the earliest first, and removes those
/// whose writes can no longer land; never a row it did not examine. Returns how many. An end past
/// now + its window is still in doubt (see the module's doc), so it stays. `steady` gives the end
/// this process knows for a user status's write on the steady clock, as a wall-clock time
/// (steady.rs): a row whose stored end passed while that end has not (the wall clock was stepped
/// forward) is given that end instead of being removed, so the write is never forgotten before it.
pub(crate) fn prune(
    conn: &Connection,
    now: i64,
    limit: u64,
    steady: impl Fn(&str) -> Option<i64>,
) -> rusqlite::Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut ended = conn.prepare_cached(ENDED)?;
    // Each examined key with the steady end it keeps, if any.
    let examined = ended
        .query_map(params![now, limit], |row| Ok(Stored::read(row.get_ref(0)?)))?
        .map(|key| {
            let key = key?;
            let end = key.text().and_then(&steady).filter(|&end| end > now);
            Ok((key, end))
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(ended);
    let mut removed = 0;
    for (key, end) in examined {
        if let Some(end) = end {
            conn.prepare_cached(STEADY_END)?
                .execute(params![key, end])?;
        } else {
            removed += conn.prepare_cached(FORGET)?.execute([key])?;
        }
    }
    Ok(removed)
}

/// A key as the file holds it, so [`prune`] finds its row again by it. A key the file holds
/// damaged (an operator's blob, or text that is not UTF-8) has no steady end and is removed like
/// any other ended row; read as a `String`, it would stop every record.
enum Stored {
    /// Text, as its bytes: UTF-8 or not, it is bound back as the same text.
    Text(Vec<u8>),
    /// Any other value (the column's TEXT affinity leaves only blobs here).
    Other(Value),
}

impl Stored {
    fn read(value: ValueRef<'_>) -> Stored {
        match value {
            ValueRef::Text(bytes) => Stored::Text(bytes.to_vec()),
            ValueRef::Blob(bytes) => Stored::Other(Value::Blob(bytes.to_vec())),
            ValueRef::Integer(n) => Stored::Other(Value::Integer(n)),
            ValueRef::Real(x) => Stored::Other(Value::Real(x)),
            ValueRef::Null => Stored::Other(Value::Null),
        }
    }

    /// The key as the user status it names, if it is one.
    fn text(&self) -> Option<&str> {
        match self {
            Stored::Text(bytes) => std::str::from_utf8(bytes).ok(),
            Stored::Other(_) => None,
        }
    }
}

impl ToSql for Stored {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Stored::Text(bytes) => ToSqlOutput::Borrowed(ValueRef::Text(bytes)),
            Stored::Other(value) => ToSqlOutput::from(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{BOUND, ENDED, FORGET, STEADY_END};

    /// What SQLite's planner does for `sql` on an outbox of schema 3 made before the index on
    /// `until` (so the index comes from the open): `EXPLAIN QUERY PLAN`'s details, one per line.
    fn plan(sql: &str) -> String {
        use super::super::{MIN_OUTBOX_BYTES, schema};
        let dir = std::env::temp_dir().join(format!("ius-in-doubt-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox.db");
        drop(schema::open(&path, MIN_OUTBOX_BYTES).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DROP INDEX in_doubt_until")
            .unwrap();
        let conn = schema::open(&path, MIN_OUTBOX_BYTES).unwrap();
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let zeros = vec![0; explain.parameter_count()];
        let details: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(zeros), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        drop(explain);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
        details.join("\n")
    }

    /// A write in doubt whose end is now can no longer land: a claim at that instant adds
    /// nothing of it (its patch, its end, its window) to the row it writes.
    #[test]
    fn a_write_whose_end_is_now_adds_nothing_to_the_next() {
        use crate::UserStatusPatch;
        let before = super::InDoubt {
            patch: String::from_utf8(UserStatusPatch::new().devices_count(1).to_json()).unwrap(),
            until: 5_000,
            window: Some(9_000),
        };
        let next = UserStatusPatch::new().devices_count(2);
        let (patch, until, window) = super::joined(Some(&before), &next, 5_000, (8_000, 3_000));
        assert_eq!((patch, until, window), (next.clone(), 8_000, 3_000));
        // A millisecond earlier it may still land: the union, the later end, the longer window.
        let (patch, until, window) = super::joined(Some(&before), &next, 4_999, (8_000, 3_000));
        assert_eq!((until, window), (8_000, 9_000));
        assert_eq!(patch, next, "devicesCount 2 merged over 1");
    }

    /// A fresh outbox in a directory of its own named after `name`, whose `in_doubt` holds the
    /// rows `values` gives (an SQL `VALUES` list).
    fn holding(name: &str, values: &str) -> (std::path::PathBuf, rusqlite::Connection) {
        use super::super::{MIN_OUTBOX_BYTES, schema};
        let dir = std::env::temp_dir().join(format!("ius-in-doubt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = schema::open(&dir.join("outbox.db"), MIN_OUTBOX_BYTES).unwrap();
        conn.execute_batch(&format!("INSERT INTO in_doubt VALUES {values};"))
            .unwrap();
        (dir, conn)
    }

    /// The keys (a damaged one read lossily) and ends left in `in_doubt`, by key.
    fn left(conn: &rusqlite::Connection) -> Vec<(String, i64)> {
        conn.prepare("SELECT CAST(key AS BLOB), until FROM in_doubt ORDER BY key")
            .unwrap()
            .query_map([], |row| {
                let key: Vec<u8> = row.get(0)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), row.get(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `rows` as [`left`] reads them.
    fn rows(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
        rows.iter()
            .map(|&(key, until)| (key.to_owned(), until))
            .collect()
    }

    /// A record's prune keeps, with its steady end, a write whose stored end passed while that
    /// end has not (the wall clock stepped forward), and drops the others whose end passed: one
    /// with no steady end, one whose steady end is now, and none whose end is to come.
    #[test]
    fn a_prune_keeps_a_write_until_its_steady_end() {
        let (dir, conn) = holding(
            "prune",
            "('stepped', '{}', 900, 1000), ('over', '{}', 900, 1000),
                 ('ends-now', '{}', 1000, 1000), ('to-come', '{}', 1500, 1000)",
        );
        let steady = |key: &str| match key {
            "stepped" => Some(1_700),
            "ends-now" => Some(1_000),
            _ => None,
        };
        assert_eq!(super::prune(&conn, 1_000, 10, steady).unwrap(), 2);
        assert_eq!(left(&conn), rows(&[("stepped", 1_700), ("to-come", 1_500)]));
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A prune that keeps some rows removes only rows it examined: with `limit` 2 it looks at a
    /// and b (the ends first), keeps a, removes b, and leaves c, whose steady end it never read,
    /// for a later record (removed now, a kill or another process would find no row while the
    /// write may still land).
    #[test]
    fn a_prune_removes_only_the_rows_it_examined() {
        let (dir, conn) = holding(
            "examined",
            "('a', '{}', 900, 1000), ('b', '{}', 950, 1000), ('c', '{}', 980, 1000)",
        );
        let steady = |key: &str| matches!(key, "a" | "c").then_some(1_700);
        let removed = super::prune(&conn, 1_000, 2, steady).unwrap();
        assert_eq!(left(&conn), rows(&[("a", 1_700), ("c", 980)]));
        assert_eq!(removed, 1);
        // The next record reaches c and gives it its steady end.
        assert_eq!(super::prune(&conn, 1_000, 2, steady).unwrap(), 0);
        assert_eq!(left(&conn), rows(&[("a", 1_700), ("c", 1_700)]));
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Keys an operator's `sqlite3` left damaged (a blob, text that is not UTF-8) do not stop a
    /// record: their ended rows are removed, each by itself, and the others are pruned as ever.
    #[test]
    fn a_prune_removes_ended_rows_whose_key_is_damaged() {
        let (dir, conn) = holding(
            "damaged",
            "(x'ff', '{}', 900, 1000), (CAST(x'ff' AS TEXT), '{}', 900, 1000),
                 ('over', '{}', 900, 1000), ('to-come', '{}', 1500, 1000),
                 (CAST(x'fe' AS TEXT), '{}', 1500, 1000)",
        );
        assert_eq!(super::prune(&conn, 1_000, 10, |_| None).unwrap(), 3);
        assert_eq!(
            left(&conn),
            rows(&[("to-come", 1_500), ("\u{fffd}", 1_500)])
        );
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The room a write in doubt is counted for: at least its row and a page (a split), and not
    /// much more (room counted twice refuses reports a full file could take).
    #[test]
    fn a_write_in_doubt_is_counted_its_row_and_a_page() {
        let (key, patch) = ("c1/userStatuses/u0", r#"{"devicesCount":1}"#);
        let bytes = super::bytes(key, patch, 4_096);
        let row = (key.len() + patch.len()) as u64;
        assert!((row + 4_096..row + 4_096 + 64).contains(&bytes), "{bytes}");
    }

    /// A record prunes the ends through the index on `until`, and each claim bounds them through
    /// it, in a file written before that index too: with 100,000 writes in doubt, a scan of the
    /// table at every record or claim made a flush grind.
    #[test]
    fn prune_and_bound_find_their_rows_through_the_index_on_until() {
        for sql in [ENDED, BOUND] {
            let plan = plan(sql);
            assert!(
                plan.contains("USING COVERING INDEX in_doubt_until")
                    || plan.contains("USING INDEX in_doubt_until"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN in_doubt"), "{sql}: {plan}");
            // The earliest ends come first in the index's own order, with no sort of the table.
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
        // What the prune then does to each row it examined goes straight to that row.
        for sql in [FORGET, STEADY_END] {
            let plan = plan(sql);
            assert!(plan.contains("USING PRIMARY KEY"), "{sql}: {plan}");
            assert!(!plan.contains("SCAN in_doubt"), "{sql}: {plan}");
        }
    }
}
