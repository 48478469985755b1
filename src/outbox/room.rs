//! How full the file is: the bytes its pages hold, and the room `maxBytes` (SQLite's page limit)
//! still leaves.

use rusqlite::Connection;

/// The value of a read-only pragma such as `page_count` (read for every row a flush writes, so
/// its statement is kept prepared).
pub(crate) fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(&format!("PRAGMA {name}"))?
        .query_row([], |row| row.get(0))
}

/// Bytes in use (pages not on the free list). Within a transaction, what it removed is counted
/// out as soon as its pages are free.
pub(crate) fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let used = pragma(conn, "page_count")? - pragma(conn, "freelist_count")?;
    Ok(unsigned(used * pragma(conn, "page_size")?))
}

/// Whether the pages `maxBytes` still allows (SQLite's `max_page_count`, and the free pages)
/// hold a row of `row` bytes with room to spare for the pages SQLite adds around it. A failed
/// statement is rolled back, so this is the room the row had.
pub(crate) fn room_for(conn: &Connection, row: u64) -> rusqlite::Result<bool> {
    let free_pages = pragma(conn, "max_page_count")? - pragma(conn, "page_count")?
        + pragma(conn, "freelist_count")?;
    let room = unsigned(free_pages * pragma(conn, "page_size")?);
    Ok(room >= row.saturating_add(ROOM_SPARE))
}

/// The room kept beyond a row for the pages SQLite adds around it (index and table splits).
const ROOM_SPARE: u64 = 64 * 1024;

/// Whether a failed write is SQLite's page limit (`maxBytes`), not a full disk: SQLite says "full"
/// for both, and only the first is the outbox being full.
pub(crate) fn at_page_limit(err: &rusqlite::Error, conn: &Connection, row: u64) -> bool {
    err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
        && room_for(conn, row).is_ok_and(|room| !room)
}

/// Sets SQLite's page limit to `maxBytes` (`max_bytes`), or to the file's size if a flush's
/// bookkeeping took it past that ([`allow`]): SQLite never sets it below.
pub(crate) fn limit(conn: &Connection, max_bytes: u64) -> rusqlite::Result<()> {
    let pages = i64::try_from(max_bytes).unwrap_or(i64::MAX) / pragma(conn, "page_size")?.max(1);
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// Raises SQLite's page limit so the file holds `bytes` more than now, if its free pages do not:
/// for what a flush must write to go on (its claim's and its record's bookkeeping), which must
/// never fail for want of room. [`limit`] sets it back once that transaction ended.
pub(crate) fn allow(conn: &Connection, bytes: u64) -> rusqlite::Result<()> {
    if room_for(conn, bytes)? {
        return Ok(());
    }
    let page = pragma(conn, "page_size")?.max(1);
    let pages = pragma(conn, "page_count")?
        + i64::try_from(bytes.saturating_add(ROOM_SPARE)).unwrap_or(i64::MAX) / page
        + 1;
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// SQLite integers are signed; counts and sizes never are.
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
