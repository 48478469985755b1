//! How full the file is: the bytes its pages hold, and the room `maxBytes` (SQLite's page limit)
//! still leaves.

use rusqlite::Connection;

/// The value of a read-only pragma such as `page_count`.
pub(crate) fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
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
    const SPARE: u64 = 64 * 1024;
    let free_pages = pragma(conn, "max_page_count")? - pragma(conn, "page_count")?
        + pragma(conn, "freelist_count")?;
    let room = unsigned(free_pages * pragma(conn, "page_size")?);
    Ok(room >= row.saturating_add(SPARE))
}

/// Whether a failed write is SQLite's page limit (`maxBytes`), not a full disk: SQLite says "full"
/// for both, and only the first is the outbox being full.
pub(crate) fn at_page_limit(err: &rusqlite::Error, conn: &Connection, row: u64) -> bool {
    err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
        && room_for(conn, row).is_ok_and(|room| !room)
}

/// SQLite integers are signed; counts and sizes never are.
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
