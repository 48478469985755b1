//! What Graph acknowledged, per user status and property: the value and when it was applied.
//!
//! A report is skipped only when every property it carries was acknowledged with that value less
//! than `resendAfter` ago, each property by its own time (so a property no longer reported is
//! still re-asserted when its time runs out). Claiming a report for sending puts its properties
//! in doubt (the write may be applied, or not, or its answer lost), until a 2xx records them.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::clock::is_fresh;
use super::options::OutboxOptions;
use crate::UserStatusPatch;

/// The properties a patch sets, as (name, JSON value) pairs: what a PATCH changes. `@odata.type`
/// and `id` describe the object, not its state, and are never compared.
fn properties(patch: &UserStatusPatch) -> Vec<(String, String)> {
    match serde_json::from_slice(&patch.to_json()) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(name, _)| name != "@odata.type" && name != "id")
            .map(|(name, value)| (name, value.to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `patch` would change nothing Graph acknowledged recently for `key`, so it can be
/// skipped (never when `skipUnchanged` is off).
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
    let known: Vec<(String, String, i64)> = conn
        .prepare("SELECT property, value, acknowledged_at FROM acknowledged WHERE key = ?1")?
        .query_map([key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if known.is_empty() {
        return Ok(false);
    }
    let properties = properties(patch);
    let covered = properties.iter().all(|(name, value)| {
        known.iter().any(|(property, acknowledged, at)| {
            property == name && acknowledged == value && is_fresh(*at, now, window)
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
        conn.prepare("DELETE FROM acknowledged WHERE key = ?1 AND property = ?2")?;
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
    let mut statement = conn.prepare(
        "INSERT INTO acknowledged (key, property, value, acknowledged_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key, property) DO UPDATE SET value = excluded.value,
             acknowledged_at = excluded.acknowledged_at",
    )?;
    for (name, value) in properties(patch) {
        statement.execute(params![key, name, value, now])?;
    }
    Ok(())
}
