//! The outbox file's one name, whichever path reached it (a symbolic link, a relative path, `..`;
//! not a hard link, which is a name of its own, and refused on Unix: [`one_name`]):
//! the flush lock is named after it, so two handles on one file always share one lock.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What an SQLite URI's path may not hold as is.
const URI_PATH: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#');

/// The file's absolute path with every link and `.`/`..` resolved. The file must exist.
pub(crate) fn canonical(path: &Path) -> io::Result<PathBuf> {
    let resolved = std::fs::canonicalize(path)?;
    #[cfg(unix)]
    {
        Ok(resolved)
    }
    #[cfg(windows)]
    {
        Ok(without_verbatim_prefix(resolved))
    }
}

/// Windows' canonical paths carry the verbatim prefix (`\\?\C:\...`, `\\?\UNC\host\share\...`);
/// the usual form names the same file, reads well in messages, and is what SQLite is given.
/// Kept verbatim when the usual form would be too long for the classic path limit.
#[cfg(windows)]
fn without_verbatim_prefix(path: PathBuf) -> PathBuf {
    const MAX_PATH: usize = 260;
    let Some(text) = path.to_str() else {
        return path;
    };
    let plain = if let Some(rest) = text.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{rest}")
    } else if let Some(rest) = text.strip_prefix(r"\\?\") {
        rest.to_owned()
    } else {
        return path;
    };
    if plain.len() < MAX_PATH && !plain.contains('?') {
        PathBuf::from(plain)
    } else {
        path
    }
}

/// Refuses (on Unix) a file with more than one name (hard links): SQLite names its `-wal` and
/// `-shm` after the name it opens, so two names of one file would write two journals of it (it
/// fails such a handle's writes with "disk I/O error"), and two flush locks. `Err` is the reason,
/// for an [`Error::Storage`](crate::Error::Storage) naming the path. A missing file has no names
/// yet. Windows is not checked (its hard links are rare, and SQLite does not refuse them there).
pub(crate) fn one_name(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.nlink() > 1
        {
            return Err(format!(
                "has {} names (hard links), and SQLite names the journal after the name it \
                 opens, so the names would corrupt it; open it by one name (remove the other \
                 hard links, or use a symbolic link)",
                metadata.nlink()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `<outbox>` + `suffix`, next to it, as SQLite names its `-wal` and `-shm`.
pub(crate) fn companion(outbox: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(outbox.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// `path` as an SQLite URI with `query` (`file:/var/lib/outbox.db?immutable=1`); `None` when the
/// path is not valid Unicode. Windows' separators become `/`, and a drive letter gets the `///`
/// that makes it absolute (`file:///C:/...`).
pub(crate) fn sqlite_uri(path: &Path, query: &str) -> Option<String> {
    let text = path.to_str()?;
    #[cfg(unix)]
    let text = text.to_owned();
    #[cfg(windows)]
    let text = {
        let text = text.replace('\\', "/");
        if text.as_bytes().get(1) == Some(&b':') {
            format!("///{text}")
        } else {
            text
        }
    };
    Some(format!(
        "file:{}?{query}",
        utf8_percent_encode(&text, URI_PATH)
    ))
}
