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
//! Microsoft's own SDKs give a request): from the claim (the request left after it), or from the
//! record of an unknown outcome (it left before that), the client waits for an answer at most that
//! long. Graph documents no time after which a request it received can no longer be applied: that
//! a write not applied `requestMs` after it left is never applied is this bound's assumption.
//! Like every stored time it is bounded when read, never trusted: an end later than now +
//! `requestMs` (written under a longer `requestMs`, or before the clock was stepped back, or by a
//! clock that ran ahead) is read as now + `requestMs`, still in doubt. It is never read as over:
//! a write that may still land is not dropped for a clock's error. Each claim writes such an end
//! back as now + `requestMs` ([`bound`]), so a clock that ran ahead costs a changed value one
//! `requestMs` once the clock is right, not the time until the clock reaches that end.

use rusqlite::{Connection, OptionalExtension, params};

use super::acknowledged;
use crate::UserStatusPatch;

/// A write in doubt: the patch sent (its JSON text) and until when Graph may apply it (unix ms).
#[derive(Clone, Debug)]
pub(crate) struct InDoubt {
    pub patch: String,
    pub until: i64,
}

/// The write in doubt for `key`, if any (a row the file holds damaged reads as none).
pub(crate) fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<InDoubt>> {
    Ok(conn
        .prepare_cached("SELECT patch, until FROM in_doubt WHERE key = ?1")?
        .query_row([key], |row| {
            Ok((
                row.get::<_, String>(0).ok(),
                row.get::<_, Option<i64>>(1).ok().flatten(),
            ))
        })
        .optional()?
        .and_then(|(patch, until)| {
            Some(InDoubt {
                patch: patch?,
                until: until?,
            })
        }))
}

impl InDoubt {
    /// Until when a report of `patch` must wait (unix ms): `Some` while this write may still land
    /// (its end is after `now`; an end past now + `request_ms` reads as now + `request_ms`) and
    /// `patch` sets one of its properties to another value.
    pub(crate) fn holds_back(
        &self,
        patch: &UserStatusPatch,
        now: i64,
        request_ms: i64,
    ) -> Option<i64> {
        let until = self.until.min(now.saturating_add(request_ms));
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
}

/// What is in doubt for a user status once `patch` is claimed, sent until `until` (unix ms), with
/// `before` in doubt at `now`: a write claimed changes no property `before` may still set to
/// another value (else [`InDoubt::holds_back`] held it), so both may land, and the row holds the
/// union of both patches, until the later of both ends. A `before` that is over, or unreadable
/// (a row the file holds damaged reads as none, as in [`get`]), adds nothing.
pub(crate) fn joined(
    before: Option<&InDoubt>,
    patch: &UserStatusPatch,
    now: i64,
    until: i64,
) -> (UserStatusPatch, i64) {
    let earlier = before
        .filter(|before| before.until > now)
        .and_then(|before| {
            Some((
                UserStatusPatch::from_json(&before.patch).ok()?,
                before.until,
            ))
        });
    match earlier {
        Some((mut union, earlier_until)) => {
            union.merge(patch);
            (union, earlier_until.max(until))
        }
        None => (patch.clone(), until),
    }
}

/// At most the room one write in doubt takes in a file of `page`-byte pages: its row, and a page
/// besides (a split).
pub(crate) fn bytes(key: &str, patch: &str, page: u64) -> u64 {
    (key.len() + patch.len() + 32) as u64 + page
}

/// `patch` for `key` is on its way, and Graph may apply it until `until` (unix ms).
pub(crate) fn set(conn: &Connection, key: &str, patch: &str, until: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO in_doubt (key, patch, until) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET patch = excluded.patch, until = excluded.until",
    )?
    .execute(params![key, patch, until])
    .map(drop)
}

/// The write last sent for `key` left, or had an unknown outcome known, at `until - requestMs`:
/// it may land until `until`, or later if its row said so.
pub(crate) fn extend(conn: &Connection, key: &str, until: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE in_doubt SET until = max(until, ?2) WHERE key = ?1")?
        .execute(params![key, until])
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
        Some(before) => set(conn, key, &before.patch, before.until),
        None => conn
            .prepare_cached("DELETE FROM in_doubt WHERE key = ?1")?
            .execute([key])
            .map(drop),
    }
}

/// [`bound`]'s statement: every claim runs it, so it finds the ends it changes through the index
/// on `until` (schema.rs), not by reading every row in doubt.
const BOUND: &str = "UPDATE in_doubt SET until = ?1 WHERE until > ?1";

/// [`prune`]'s statement: every record runs it, through the same index.
const PRUNE: &str =
    "DELETE FROM in_doubt WHERE key IN (SELECT key FROM in_doubt WHERE until <= ?1 LIMIT ?2)";

/// Writes every end later than now + `request_ms` back as now + `request_ms` (see the module's
/// doc): read that way anyway, and stored so, it ends `request_ms` after the clock was right.
pub(crate) fn bound(conn: &Connection, now: i64, request_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(BOUND)?
        .execute([now.saturating_add(request_ms)])
        .map(drop)
}

/// Removes up to `limit` writes that can no longer land at `now`. Returns how many. An end past
/// now + `requestMs` is still in doubt (see the module's doc), so it stays.
pub(crate) fn prune(conn: &Connection, now: i64, limit: u64) -> rusqlite::Result<usize> {
    conn.prepare_cached(PRUNE)?
        .execute(params![now, i64::try_from(limit).unwrap_or(i64::MAX)])
}

#[cfg(test)]
mod tests {
    use super::{BOUND, PRUNE};

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

    /// A claim bounds the ends and a record prunes them through the index on `until`, in a file
    /// written before that index too: with 100,000 writes in doubt, a scan of the table at every
    /// claim and record made a flush grind.
    #[test]
    fn bound_and_prune_find_their_rows_through_the_index_on_until() {
        for sql in [BOUND, PRUNE] {
            let plan = plan(sql);
            assert!(
                plan.contains("USING COVERING INDEX in_doubt_until")
                    || plan.contains("USING INDEX in_doubt_until"),
                "{sql}\n{plan}"
            );
            assert!(!plan.contains("SCAN in_doubt"), "{sql}\n{plan}");
        }
    }
}
