//! What gives way when the file needs room within `maxBytes`, cheapest first:
//! 1. acknowledgements that no longer suppress anything (older than `resendAfter`, or dated in
//!    the future): nothing is lost;
//! 2. the oldest acknowledgements: each costs at most one resend of an equal value;
//! 3. the oldest failed reports, counted as dropped (`failedDropped`) and logged at WARN.
//!
//! Pending reports never give way: beyond this, a new one is refused `OUTBOX_FULL`.

use rusqlite::Connection;

use super::acknowledged;
use super::failed_list;
use super::options::OutboxOptions;
use super::room::{self, used_bytes};

/// Acknowledgements dropped at a time; once they must go, room is made for this much more than
/// asked (a 32nd of `maxBytes`), so the next reports do not pay for it again one by one.
const ACKNOWLEDGEMENTS_AT_A_TIME: u64 = 256;

/// Makes room for `needed` more bytes within `maxBytes`, in the order above. Returns the failed
/// reports dropped.
pub(crate) fn make_room(
    conn: &Connection,
    needed: u64,
    options: &OutboxOptions,
    now: i64,
) -> rusqlite::Result<u64> {
    if acknowledgements_give_way(conn, needed, options, now)? {
        return Ok(0);
    }
    let mut dropped = 0;
    while !fits(conn, needed, options)? {
        let removed = failed_list::drop_oldest(conn, 16)?;
        if removed == 0 {
            break;
        }
        dropped += removed;
    }
    Ok(dropped)
}

/// Makes room for `needed` more bytes with the acknowledgements alone (steps 1 and 2); returns
/// whether they fit now. For a new acknowledgement, which must never cost a failed report.
pub(crate) fn acknowledgements_give_way(
    conn: &Connection,
    needed: u64,
    options: &OutboxOptions,
    now: i64,
) -> rusqlite::Result<bool> {
    if fits(conn, needed, options)? {
        return Ok(true);
    }
    acknowledged::prune_expired(conn, options, now, u64::MAX)?;
    if fits(conn, needed, options)? {
        return Ok(true);
    }
    let generous = needed.saturating_add(options.max_bytes / 32);
    while !fits(conn, generous, options)? {
        if acknowledged::drop_oldest(conn, ACKNOWLEDGEMENTS_AT_A_TIME)? == 0 {
            break;
        }
    }
    fits(conn, needed, options)
}

/// Makes room for `needed` more bytes of a flush's bookkeeping (its claim's and its record's
/// writes, which must never fail for want of room, or a full file would never flush and shrink),
/// as for anything else (above). Past that (a file of pending reports alone) the file may pass
/// `maxBytes` by as much until the transaction ends (`room::allow`). Returns the failed reports
/// dropped.
pub(crate) fn make_way(
    conn: &Connection,
    needed: u64,
    options: &OutboxOptions,
    now: i64,
) -> rusqlite::Result<u64> {
    let dropped = make_room(conn, needed, options, now)?;
    if !fits(conn, needed, options)? {
        room::allow(conn, needed)?;
    }
    Ok(dropped)
}

fn fits(conn: &Connection, needed: u64, options: &OutboxOptions) -> rusqlite::Result<bool> {
    Ok(used_bytes(conn)?.saturating_add(needed) <= options.max_bytes)
}
