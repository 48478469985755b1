//! What Graph acknowledged, per user status and property: the value and when it was applied.
//!
//! A report is skipped only when every property it carries was acknowledged with that value less
//! than `resendAfter` ago, each property by its own time (so a property no longer reported is
//! still re-asserted when its time runs out). Claiming a report for sending puts its properties
//! in doubt (the write may be applied, or not, or its answer lost), until a 2xx records them.
//!
//! An acknowledgement only saves a resend, so it is the first thing to give way: expired ones are
//! pruned as flushes record, and when the file needs room the oldest go (see `eviction`).

use rusqlite::{Connection, params};
use serde_json::{Map, Value};

use super::clock::is_fresh;
use super::options::OutboxOptions;
use super::stored_text::StoredText;
use crate::UserStatusPatch;

/// The properties a patch (as a JSON object) sets, as (name, JSON value) pairs: what a PATCH
/// changes. `@odata.type` and `id` describe the object, not its state, and are never compared.
pub(crate) fn properties_of(object: Map<String, Value>) -> Vec<(String, String)> {
    object
        .into_iter()
        .filter(|(name, _)| name != "@odata.type" && name != "id")
        .map(|(name, value)| (name, value.to_string()))
        .collect()
}

/// The properties `patch` sets, as (name, JSON value) pairs (see [`properties_of`]).
pub(crate) fn properties(patch: &UserStatusPatch) -> Vec<(String, String)> {
    match serde_json::from_slice(&patch.to_json()) {
        Ok(Value::Object(map)) => properties_of(map),
        _ => Vec::new(),
    }
}

/// Whether `patch` would change nothing Graph acknowledged recently for `key`, so it can be
/// skipped (never when `skipUnchanged` is off). An acknowledgement the file holds damaged counts
/// as none.
pub(crate) fn covers(
    conn: &Connection,
    key: &str,
    patch: &UserStatusPatch,
    options: &OutboxOptions,
    now: i64,
) -> rusqlite::Result<bool> {
    if !options.skip_unchanged {
        return Ok(false);
    }
    let window = options.resend_after_ms();
    let known: Vec<(StoredText, StoredText, Option<i64>)> = conn
        .prepare_cached("SELECT property, value, acknowledged_at FROM acknowledged WHERE key = ?1")?
        .query_map([key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2).ok().flatten()))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if known.is_empty() {
        return Ok(false);
    }
    let properties = properties(patch);
    let covered = properties.iter().all(|(name, value)| {
        known.iter().any(|(property, acknowledged, at)| {
            property.text() == Ok(name.as_str())
                && acknowledged.text() == Ok(value.as_str())
                && at.is_some_and(|at| is_fresh(at, now, window))
        })
    });
    Ok(covered && !properties.is_empty())
}

/// The write of `patch` is on its way: what Graph holds for its properties is unknown until a
/// 2xx records it.
pub(crate) fn put_in_doubt(
    conn: &Connection,
    key: &str,
    patch: &UserStatusPatch,
) -> rusqlite::Result<()> {
    let mut statement =
        conn.prepare_cached("DELETE FROM acknowledged WHERE key = ?1 AND property = ?2")?;
    for (name, _) in properties(patch) {
        statement.execute(params![key, name])?;
    }
    Ok(())
}

/// Graph applied `patch` at `now`: each of its properties is acknowledged with its value.
pub(crate) fn confirm(
    conn: &Connection,
    key: &str,
    patch: &UserStatusPatch,
    now: i64,
) -> rusqlite::Result<()> {
    record(conn, key, &properties(patch), now)
}

/// At most the room acknowledging `patch` for `key` takes in a file of `page`-byte pages: each
/// property's row, and a page besides (a row of more than about a quarter page goes on to an
/// overflow page in this table; a page may split).
pub(crate) fn bytes(key: &str, patch: &UserStatusPatch, page: u64) -> u64 {
    properties(patch)
        .iter()
        .map(|(name, value)| (key.len() + name.len() + value.len() + 16) as u64 + page)
        .sum()
}

/// Acknowledges each of `properties` (name, JSON value) of `key` at `at`, replacing what was
/// acknowledged for it before.
pub(crate) fn record(
    conn: &Connection,
    key: &str,
    properties: &[(String, String)],
    at: i64,
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO acknowledged (key, property, value, acknowledged_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key, property) DO UPDATE SET value = excluded.value,
             acknowledged_at = excluded.acknowledged_at",
    )?;
    for (name, value) in properties {
        statement.execute(params![key, name, value, at])?;
    }
    Ok(())
}

/// Removes up to `limit` acknowledgements that no longer suppress anything at `now`: older than
/// `resendAfter`, or dated in the future (see [`is_fresh`]). Returns how many.
pub(crate) fn prune_expired(
    conn: &Connection,
    options: &OutboxOptions,
    now: i64,
    limit: u64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM acknowledged WHERE (key, property) IN (
             SELECT key, property FROM acknowledged
             WHERE acknowledged_at <= ?1 OR acknowledged_at > ?2 LIMIT ?3)",
    )?
    .execute(params![
        now.saturating_sub(options.resend_after_ms()),
        now,
        i64::try_from(limit).unwrap_or(i64::MAX)
    ])
}

/// Removes the `n` oldest acknowledgements (each costs one resend of an equal value, no more).
/// Returns how many.
pub(crate) fn drop_oldest(conn: &Connection, n: u64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM acknowledged WHERE (key, property) IN (
             SELECT key, property FROM acknowledged ORDER BY acknowledged_at LIMIT ?1)",
    )?
    .execute([i64::try_from(n).unwrap_or(i64::MAX)])
}
