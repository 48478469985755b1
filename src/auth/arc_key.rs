//! Azure Arc's challenge: its agent answers a token request with 401 and
//! `WWW-Authenticate: Basic realm=<path of a key file>`, and the client proves it may read that
//! file by sending its contents back. Whoever answers on the endpoint's port chooses the path, so
//! it is checked before anything is read, three times: as written (absolute, no `..`, directly
//! inside the agent's tokens folder, ending in `.key`), so a UNC path or one relative to the
//! working directory never reaches the file system; resolved (links followed), the same again;
//! and as opened (no link followed, no wait for a FIFO's writer), a regular file of at most 4096
//! bytes. The platform's folder, agent path and way of opening sit side by side below.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use zeroize::Zeroizing;

use crate::auth::environment::Environment;
use crate::auth::secret_file::read_secret;

/// The largest key file read (what Microsoft's libraries accept).
const MAX_KEY_BYTES: u64 = 4096;

/// Where the Arc agent's endpoint listens when `IDENTITY_ENDPOINT` is not set.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:40342/metadata/identity/oauth2/token";

#[cfg(not(windows))]
mod platform {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::path::{Path, PathBuf};

    use crate::auth::environment::Environment;

    /// The folder the agent writes its key files to.
    pub(super) fn tokens_folder(_env: &Environment) -> PathBuf {
        PathBuf::from("/var/opt/azcmagent/tokens")
    }

    /// The agent's service, whose presence means the machine is joined to Azure Arc.
    pub(super) fn agent(_env: &Environment) -> PathBuf {
        PathBuf::from("/opt/azcmagent/bin/himds")
    }

    /// Whether two folders are written the same way (paths are case-sensitive here).
    pub(super) fn same_folder(a: &Path, b: &Path) -> bool {
        a == b
    }

    /// Opens `path` to read. `O_NOFOLLOW`: a link put in its place after it was resolved is
    /// refused (`ELOOP`); `O_NONBLOCK`: a FIFO put there opens at once instead of waiting for a
    /// writer (and then is no regular file).
    pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        options.open(path)
    }
}

#[cfg(windows)]
mod platform {
    use std::ffi::OsStr;
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::path::{Path, PathBuf};

    use crate::auth::environment::{Environment, PROGRAM_DATA, PROGRAM_FILES};

    /// `%ProgramData%\AzureConnectedMachineAgent\Tokens`.
    pub(super) fn tokens_folder(env: &Environment) -> PathBuf {
        let data = env
            .get_os(PROGRAM_DATA)
            .unwrap_or(OsStr::new(r"C:\ProgramData"));
        PathBuf::from(data)
            .join("AzureConnectedMachineAgent")
            .join("Tokens")
    }

    /// `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe`.
    pub(super) fn agent(env: &Environment) -> PathBuf {
        let files = env
            .get_os(PROGRAM_FILES)
            .unwrap_or(OsStr::new(r"C:\Program Files"));
        PathBuf::from(files)
            .join("AzureConnectedMachineAgent")
            .join("himds.exe")
    }

    /// Whether two folders are written the same way, ignoring ASCII case as Windows does.
    pub(super) fn same_folder(a: &Path, b: &Path) -> bool {
        a.components().count() == b.components().count()
            && a.components().zip(b.components()).all(|(a, b)| {
                a.as_os_str()
                    .as_encoded_bytes()
                    .eq_ignore_ascii_case(b.as_os_str().as_encoded_bytes())
            })
    }

    /// `FILE_FLAG_OPEN_REPARSE_POINT`: a link or junction is opened itself, not followed.
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

    /// Opens `path` to read without following a link or junction put in its place after it was
    /// resolved: the handle is then the link's, whose metadata is no regular file.
    pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
        use std::os::windows::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(path)
    }
}

/// The folder this platform's Arc agent writes its key files to. Only a build with the test
/// seams lets a test name another (`IUS_TEST_ARC_TOKENS_FOLDER`), to stand in for the agent.
pub(crate) fn tokens_folder(env: &Environment) -> PathBuf {
    #[cfg(any(test, feature = "test-seams"))]
    if let Some(folder) = env.get_os(crate::auth::environment::IUS_TEST_ARC_TOKENS_FOLDER) {
        return PathBuf::from(folder);
    }
    platform::tokens_folder(env)
}

/// Whether the Arc agent is installed on this machine.
pub(crate) fn agent_installed(env: &Environment) -> bool {
    platform::agent(env).is_file()
}

/// The path a `WWW-Authenticate` header's Basic realm names, if it has one.
pub(crate) fn realm(header: &str) -> Option<&str> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let (name, value) = params.trim().split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("realm") {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then_some(value)
}

/// Reads the key file `realm` names, once it passed every rule; the error names the rule it
/// broke (the path is not a secret, the contents are).
pub(crate) fn read_key(realm: &str, folder: &Path) -> Result<Zeroizing<String>, String> {
    let path = checked_path(realm, folder)?;
    let file = open_key(&path)
        .map_err(|why| format!("the challenge names {realm}, which {why}; it was not read"))?;
    let key = read_secret(file, MAX_KEY_BYTES)
        .map_err(|why| format!("the key file {} {why}", path.display()))?;
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the key file {} does not hold a key (visible ASCII)",
            path.display()
        ));
    }
    Ok(key)
}

/// The resolved path of the key file, if `realm` names one the rules allow: written as an
/// absolute path directly inside `folder` with no `..`, named `*.key`; and, resolved, still
/// directly inside `folder` resolved and named `*.key` (a link cannot lead elsewhere).
fn checked_path(realm: &str, folder: &Path) -> Result<PathBuf, String> {
    let outside = || {
        format!(
            "the challenge names {realm}, which is not a file inside Azure Arc's tokens folder {}; it was not read",
            folder.display()
        )
    };
    let not_key =
        || format!("the challenge names {realm}, which does not end in .key; it was not read");
    // As written, before the file system is asked anything: a UNC path would reach out to a
    // share (offering the machine's credentials) and a relative one resolve from the working
    // directory.
    let named = Path::new(realm);
    let plain = named.components().all(|part| {
        matches!(
            part,
            Component::Prefix(_) | Component::RootDir | Component::Normal(_)
        )
    });
    let written_inside = named.is_absolute()
        && plain
        && named
            .parent()
            .is_some_and(|parent| platform::same_folder(parent, folder));
    if !written_inside {
        return Err(outside());
    }
    if named.extension().is_none_or(|ext| ext != "key") {
        return Err(not_key());
    }
    let folder = folder.canonicalize().map_err(|err| {
        format!(
            "Azure Arc's tokens folder {} cannot be resolved ({err}); the key file {realm} was not read",
            folder.display()
        )
    })?;
    let path = named.canonicalize().map_err(|err| {
        format!("the challenge names {realm}, which cannot be resolved ({err}); it was not read")
    })?;
    if path.parent() != Some(folder.as_path()) {
        return Err(outside());
    }
    if path.extension().is_none_or(|ext| ext != "key") {
        return Err(not_key());
    }
    Ok(path)
}

/// Opens the key file and checks what was opened, so the file cannot change between the check
/// and the read: a regular file (not a link, FIFO or folder), at most [`MAX_KEY_BYTES`]. The
/// error completes "the challenge names {realm}, which ...".
fn open_key(path: &Path) -> Result<File, String> {
    let file = platform::open_no_follow(path).map_err(|err| format!("cannot be opened ({err})"))?;
    let metadata = file
        .metadata()
        .map_err(|err| format!("cannot be examined ({err})"))?;
    if !metadata.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if metadata.len() > MAX_KEY_BYTES {
        return Err(format!("is larger than {MAX_KEY_BYTES} bytes"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder with a tokens folder inside it, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let root = std::env::temp_dir().join(format!(
                "ius-arc-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(root.join("tokens")).unwrap();
            Scratch(root)
        }

        fn tokens(&self) -> PathBuf {
            self.0.join("tokens")
        }

        fn write(&self, relative: &str, contents: &[u8]) -> String {
            let path = self.0.join(relative);
            std::fs::write(&path, contents).unwrap();
            path.display().to_string()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_realm_is_read_from_the_header() {
        let path = "/var/opt/azcmagent/tokens/a1b2.key";
        assert_eq!(realm(&format!("Basic realm={path}")), Some(path));
        assert_eq!(realm(&format!("basic Realm=\"{path}\"")), Some(path));
        assert_eq!(realm("Bearer realm=/x.key"), None);
        assert_eq!(realm("Basic realm="), None);
        assert_eq!(realm("Basic"), None);
    }

    #[test]
    fn a_key_inside_the_folder_is_read_and_trimmed() {
        let scratch = Scratch::new("ok");
        let key = scratch.write("tokens/k1.key", b"arc-key-secret-1\n");
        assert_eq!(
            read_key(&key, &scratch.tokens()).unwrap().as_str(),
            "arc-key-secret-1"
        );
        // `..` is refused as written, even back into the folder.
        let roundabout = format!("{}/../tokens/k1.key", scratch.tokens().display());
        assert!(
            read_key(&roundabout, &scratch.tokens())
                .unwrap_err()
                .contains("not a file inside")
        );
    }

    #[test]
    fn every_rule_is_checked_before_the_file_is_read() {
        let scratch = Scratch::new("rules");
        let tokens = scratch.tokens();
        let outside = scratch.write("secret.key", b"not-for-the-endpoint");
        let wrong_name = scratch.write("tokens/k.txt", b"k");
        let big = scratch.write("tokens/big.key", &[b'k'; 4097]);
        std::fs::create_dir(tokens.join("dir.key")).unwrap();
        let dotdot = format!("{}/../secret.key", tokens.display());
        let nested = {
            std::fs::create_dir(tokens.join("sub")).unwrap();
            scratch.write("tokens/sub/k.key", b"k")
        };
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut cases = vec![
            (outside.clone(), "not a file inside"),
            (dotdot, "not a file inside"),
            (nested, "not a file inside"),
            (wrong_name, ".key"),
            (big, "larger than 4096"),
            (
                tokens.join("dir.key").display().to_string(),
                // Windows opens no folder as a file at all.
                if cfg!(windows) {
                    "cannot be opened"
                } else {
                    "not a regular file"
                },
            ),
            (
                tokens.join("missing.key").display().to_string(),
                "cannot be resolved",
            ),
        ];
        #[cfg(unix)]
        {
            // A link inside the folder to a file outside it leads outside.
            let link = tokens.join("link.key");
            std::os::unix::fs::symlink(&outside, &link).unwrap();
            cases.push((link.display().to_string(), "not a file inside"));
        }
        for (realm, rule) in cases {
            let err = read_key(&realm, &tokens).unwrap_err();
            assert!(
                err.contains(rule) && !err.contains("not-for-the-endpoint"),
                "{realm}: {err}"
            );
        }
        let empty = scratch.write("tokens/empty.key", b" \n");
        assert!(read_key(&empty, &tokens).unwrap_err().ends_with("is empty"));
        let spaced = scratch.write("tokens/spaced.key", b"two words");
        assert!(
            read_key(&spaced, &tokens)
                .unwrap_err()
                .contains("does not hold a key")
        );
    }

    #[test]
    fn a_realm_not_written_inside_the_folder_is_refused_before_the_file_system_is_asked() {
        // The folder does not exist: resolving anything would fail differently ("cannot be
        // resolved"), so each refusal below was made from the text alone.
        let folder = std::env::temp_dir().join(format!(
            "ius-arc-absent-{}/tokens",
            uuid::Uuid::new_v4().simple()
        ));
        let inside = |name: &str| folder.join(name).display().to_string();
        for realm in [
            // UNC: on Windows, resolving it would connect to the share (and offer NTLM).
            r"\\evil\share\x.key".to_owned(),
            "//evil/share/x.key".to_owned(),
            // Relative: it would resolve from the working directory.
            "x.key".to_owned(),
            "tokens/x.key".to_owned(),
            // `..` out and back in, and into a folder that does not exist.
            format!("{}/../tokens/x.key", folder.display()),
            inside("../x.key"),
            inside("sub/x.key"),
            "/nonexistent-ius-dir/x.key".to_owned(),
        ] {
            let err = read_key(&realm, &folder).unwrap_err();
            assert!(err.contains("not a file inside"), "{realm}: {err}");
        }
        // Named as the rules want, it is the folder's absence that is reported.
        let err = read_key(&inside("x.key"), &folder).unwrap_err();
        assert!(err.contains("cannot be resolved"), "{err}");
    }

    /// A FIFO at `path`: opening it to read waits for a writer unless told not to.
    #[cfg(unix)]
    fn fifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        #[allow(unsafe_code)]
        let made = unsafe { libc::mkfifo(name.as_ptr(), 0o600) };
        assert_eq!(made, 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_opened_without_following_a_link_or_waiting_for_a_fifo_writer() {
        // What the file became after it was checked: the open itself must refuse it.
        let scratch = Scratch::new("open");
        let outside = scratch.write("secret.key", b"not-for-the-endpoint");
        let link = scratch.tokens().join("swapped.key");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let pipe = scratch.tokens().join("pipe.key");
        fifo(&pipe);
        let (done, outcome) = std::sync::mpsc::channel();
        // On a thread: an open that waited for the FIFO's writer would never return.
        std::thread::spawn(move || {
            for path in [link, pipe] {
                let _ = done.send(open_key(&path).map(drop));
            }
        });
        let wait = std::time::Duration::from_secs(5);
        let link = outcome.recv_timeout(wait).expect("the link was opened");
        assert!(link.unwrap_err().contains("cannot be opened"));
        let pipe = outcome
            .recv_timeout(wait)
            .expect("the FIFO was opened without waiting for a writer");
        assert_eq!(pipe.unwrap_err(), "is not a regular file");
    }

    #[cfg(windows)]
    #[test]
    fn on_windows_a_unc_realm_is_refused_as_written_and_the_folder_matches_without_case() {
        let scratch = Scratch::new("win");
        let tokens = scratch.tokens();
        let key = scratch.write("tokens/k1.key", b"arc-key-secret-1");
        let shouted = key.to_uppercase().replace("K1.KEY", "k1.key");
        assert_eq!(
            read_key(&shouted, &tokens).unwrap().as_str(),
            "arc-key-secret-1"
        );
        for realm in [
            r"\\evil\share\x.key".to_owned(),
            r"\\?\UNC\evil\share\x.key".to_owned(),
            r"C:x.key".to_owned(),
            format!(r"{}\..\tokens\k1.key", tokens.display()),
        ] {
            let err = read_key(&realm, &tokens).unwrap_err();
            assert!(err.contains("not a file inside"), "{realm}: {err}");
        }
    }

    #[cfg(windows)]
    #[test]
    fn on_windows_a_link_put_in_the_keys_place_is_opened_as_a_link_and_refused() {
        let scratch = Scratch::new("win-link");
        let outside = scratch.write("secret.key", b"not-for-the-endpoint");
        let link = scratch.tokens().join("swapped.key");
        if std::os::windows::fs::symlink_file(&outside, &link).is_err() {
            println!("no privilege to make a symbolic link here");
            return;
        }
        // Windows opens the link itself, which is no regular file; Wine, which keeps links as
        // the host's, finds nothing to open. Either way the file it points to is not opened.
        let err = open_key(&link).unwrap_err();
        assert!(
            err == "is not a regular file" || err.starts_with("cannot be opened"),
            "{err}"
        );
    }
}
