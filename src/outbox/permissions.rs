//! Who may read the outbox's files. They hold user principal names and display names, so the
//! outbox creates them readable by their owner only where the platform lets a process say so.
//!
//! - Unix: the file, and the flush lock, are created with mode 0600; SQLite creates the `-wal`
//!   and `-shm` files with the mode of the file. An existing empty file (an installer's `touch`)
//!   holds nothing yet, and is made 0600 as if it were new ([`make_owner_only`]). An existing
//!   outbox's mode is left as it is (an operator may have chosen it), and [`readable_by_others`]
//!   lets the outbox warn about it.
//! - Windows: a new file takes the access list of its folder, as every file there does; put the
//!   outbox in a folder only the agent's account can read (e.g. under `%ProgramData%` with an
//!   access list of its own). Nothing is checked.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Creates `path` empty, readable and writable by its owner only, unless it exists. Returns
/// whether it created it.
pub(crate) fn create_owner_only(path: &Path) -> io::Result<bool> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

/// Makes the existing file `path` readable and writable by its owner only (Unix: mode 0600;
/// Windows: nothing, as for a new file).
pub(crate) fn make_owner_only(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(windows)]
    {
        let _ = path;
        Ok(())
    }
}

/// The file's mode, when users other than its owner may read it (Unix: a group or world read
/// bit); `None` when they may not, or when the platform does not say (Windows).
pub(crate) fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(windows)]
    {
        let _ = path;
        None
    }
}
