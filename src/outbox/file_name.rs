//! The outbox file's name as SQLite can take it, per platform. rusqlite hands SQLite a Unix name
//! as its bytes, whatever they are, and any other platform's name as UTF-8 (on Windows SQLite
//! turns it into the UTF-16 name `CreateFileW` opens), so a Windows name that is not valid
//! Unicode (an unpaired surrogate, which NTFS allows) cannot be opened at all.

use std::path::Path;

/// Why SQLite cannot open a file by this name, or `None` when it can.
#[cfg(unix)]
pub(crate) fn unopenable(_path: &Path) -> Option<&'static str> {
    None
}

/// Why SQLite cannot open a file by this name, or `None` when it can.
#[cfg(not(unix))]
pub(crate) fn unopenable(path: &Path) -> Option<&'static str> {
    path.to_str().is_none().then_some(
        "the name is not valid Unicode (SQLite opens files by UTF-8 names here); choose a name that is",
    )
}
