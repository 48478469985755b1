//! Azure Arc's challenge: its agent answers a token request with 401 and
//! `WWW-Authenticate: Basic realm=<path of a key file>`, and the client proves it may read that
//! file by sending its contents back. Whoever answers on the endpoint's port chooses the path, so
//! it is checked before anything is read: inside the agent's tokens folder (after `..` and
//! symbolic links are resolved), ending in `.key`, at most 4096 bytes. The platform's folder and
//! agent path sit side by side below.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::auth::environment::Environment;

/// The largest key file read (what Microsoft's libraries accept).
const MAX_KEY_BYTES: u64 = 4096;

/// Where the Arc agent's endpoint listens when `IDENTITY_ENDPOINT` is not set.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:40342/metadata/identity/oauth2/token";

#[cfg(not(windows))]
mod platform {
    use std::path::PathBuf;

    use crate::auth::environment::Environment;

    /// The folder the agent writes its key files to.
    pub(super) fn tokens_folder(_env: &Environment) -> PathBuf {
        PathBuf::from("/var/opt/azcmagent/tokens")
    }

    /// The agent's service, whose presence means the machine is joined to Azure Arc.
    pub(super) fn agent(_env: &Environment) -> PathBuf {
        PathBuf::from("/opt/azcmagent/bin/himds")
    }
}

#[cfg(windows)]
mod platform {
    use std::path::PathBuf;

    use crate::auth::environment::{Environment, PROGRAM_DATA, PROGRAM_FILES};

    /// `%ProgramData%\AzureConnectedMachineAgent\Tokens`.
    pub(super) fn tokens_folder(env: &Environment) -> PathBuf {
        let data = env.get(PROGRAM_DATA).unwrap_or(r"C:\ProgramData");
        PathBuf::from(data)
            .join("AzureConnectedMachineAgent")
            .join("Tokens")
    }

    /// `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe`.
    pub(super) fn agent(env: &Environment) -> PathBuf {
        let files = env.get(PROGRAM_FILES).unwrap_or(r"C:\Program Files");
        PathBuf::from(files)
            .join("AzureConnectedMachineAgent")
            .join("himds.exe")
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
    let mut contents = Zeroizing::new(Vec::new());
    File::open(&path)
        // One byte past the limit shows a file that grew after it was checked.
        .and_then(|file| file.take(MAX_KEY_BYTES + 1).read_to_end(&mut contents))
        .map_err(|err| format!("cannot read the key file {}: {err}", path.display()))?;
    if contents.len() as u64 > MAX_KEY_BYTES {
        return Err(format!(
            "the key file {} is larger than {MAX_KEY_BYTES} bytes",
            path.display()
        ));
    }
    let text = std::str::from_utf8(&contents)
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            format!(
                "the key file {} does not hold a key (visible ASCII)",
                path.display()
            )
        })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The canonical path of the key file, if `realm` names one the rules allow: a regular file
/// directly inside `folder` (both resolved, so `..` and symbolic links cannot lead elsewhere),
/// named `*.key`, at most [`MAX_KEY_BYTES`].
fn checked_path(realm: &str, folder: &Path) -> Result<PathBuf, String> {
    let outside = || {
        format!(
            "the challenge names {realm}, which is not a file inside Azure Arc's tokens folder {}; it was not read",
            folder.display()
        )
    };
    let folder = folder.canonicalize().map_err(|err| {
        format!(
            "Azure Arc's tokens folder {} cannot be resolved ({err}); the key file {realm} was not read",
            folder.display()
        )
    })?;
    let path = Path::new(realm).canonicalize().map_err(|err| {
        format!("the challenge names {realm}, which cannot be resolved ({err}); it was not read")
    })?;
    if path.parent() != Some(folder.as_path()) {
        return Err(outside());
    }
    if path.extension().is_none_or(|ext| ext != "key") {
        return Err(format!(
            "the challenge names {realm}, which does not end in .key; it was not read"
        ));
    }
    let metadata = path.metadata().map_err(|err| {
        format!("the challenge names {realm}, which cannot be examined ({err}); it was not read")
    })?;
    if !metadata.is_file() {
        return Err(outside());
    }
    if metadata.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the challenge names {realm}, which is larger than {MAX_KEY_BYTES} bytes; it was not read"
        ));
    }
    Ok(path)
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
        // `..` back into the folder is the same file.
        let roundabout = format!("{}/../tokens/k1.key", scratch.tokens().display());
        assert!(read_key(&roundabout, &scratch.tokens()).is_ok());
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
        let mut cases = vec![
            (outside.clone(), "not a file inside"),
            (dotdot, "not a file inside"),
            (nested, "not a file inside"),
            (wrong_name, ".key"),
            (big, "larger than 4096"),
            (
                tokens.join("dir.key").display().to_string(),
                "not a file inside",
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
        assert!(
            read_key(&empty, &tokens)
                .unwrap_err()
                .contains("does not hold a key")
        );
    }
}
