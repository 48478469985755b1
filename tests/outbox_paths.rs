//! Outbox files at the paths each platform's agents use, opened, written, flushed and reopened:
//! names with spaces and non-ASCII letters everywhere; on Windows drive letters with backslashes
//! or forward slashes and verbatim `\\?\` paths, and a name that is not valid Unicode, refused
//! with the reason; on Unix a name that is not UTF-8, which is a valid Unix name. (Run natively
//! on Linux and under Wine by `.ci/windows`.)
#![cfg(feature = "outbox")]

mod common;

use std::path::{Path, PathBuf};

use common::TOKEN;
use intune_user_status::{Outbox, OutboxOptions, Target, UserStatusPatch};
use ius_emulator::{Config, Emulator, SeedEntry};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

/// A fresh folder for one test's files, named with a space and non-ASCII letters.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius paths {} {name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens an outbox at `path`, enqueues a report, flushes it to an emulator, reopens the file and
/// finds it empty; the files are where `path` names them (the outbox, its WAL and the flush
/// lock, all in `path`'s folder).
fn round_trip(path: &Path, folder: &Path) {
    let emu = Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({ "id": "u1", "devicesCount": 0 }),
        }],
        ..Config::default()
    })
    .unwrap();
    let client = common::client(&emu.base_url());
    let outbox = Outbox::open(&client, path, OutboxOptions::new())
        .unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
    outbox
        .enqueue(
            &Target::new("c1", "u1"),
            &UserStatusPatch::new().devices_count(7),
        )
        .unwrap();
    assert_eq!(outbox.stats().unwrap().pending, 1);
    drop(outbox);
    let outbox = Outbox::open(&client, path, OutboxOptions::new()).unwrap();
    assert_eq!(outbox.stats().unwrap().pending, 1, "kept across a reopen");
    assert_eq!(outbox.flush().unwrap().applied, 1);
    assert_eq!(
        emu.user_status(DIRECT, "u1").unwrap()["devicesCount"],
        7,
        "delivered"
    );
    drop(outbox);
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        names.contains(&file) && names.contains(&format!("{file}-flush")),
        "{names:?} in {}",
        folder.display()
    );
    assert!(
        names.iter().all(|name| name.starts_with(&file)),
        "nothing beside the outbox's own files: {names:?}"
    );
}

#[test]
fn an_outbox_opens_at_a_name_with_spaces_and_non_ascii_letters() {
    let dir = folder("spaces");
    let inner = dir.join("Größe für Ärzte 😀");
    std::fs::create_dir(&inner).unwrap();
    round_trip(&inner.join("outbox é.db"), &inner);
}

#[cfg(windows)]
#[test]
fn an_outbox_opens_at_a_drive_letter_path_with_backslashes_or_forward_slashes() {
    let dir = folder("drive");
    let shown = dir.display().to_string();
    let bytes = shown.as_bytes();
    assert!(
        bytes.len() > 3 && bytes[0].is_ascii_alphabetic() && &bytes[1..3] == b":\\",
        "the temporary folder is on a drive: {shown}"
    );
    round_trip(&dir.join("backslashes.db"), &dir);
    let dir = folder("slashes");
    let slashes = format!(
        "{}/slashes.db",
        dir.display().to_string().replace('\\', "/")
    );
    round_trip(Path::new(&slashes), &dir);
}

#[cfg(windows)]
#[test]
fn an_outbox_opens_at_a_verbatim_path() {
    let dir = folder("verbatim");
    let verbatim = PathBuf::from(format!(r"\\?\{}", dir.display()));
    round_trip(&verbatim.join("outbox.db"), &dir);
}

#[cfg(windows)]
#[test]
fn a_name_that_is_not_valid_unicode_is_refused_with_the_reason() {
    use std::os::windows::ffi::OsStringExt;
    let dir = folder("unpaired");
    // "outbox-" then an unpaired surrogate: a valid NTFS name that no UTF-8 string spells.
    let mut wide: Vec<u16> = "outbox-".encode_utf16().collect();
    wide.push(0xD800);
    wide.extend(".db".encode_utf16());
    let path = dir.join(std::ffi::OsString::from_wide(&wide));
    let client = common::client("http://127.0.0.1:9");
    match Outbox::open(&client, &path, OutboxOptions::new()) {
        Err(intune_user_status::Error::Storage {
            path: shown,
            reason,
            ..
        }) => {
            assert_eq!(shown, path.display().to_string());
            assert!(reason.contains("not valid Unicode"), "{reason}");
        }
        Err(other) => panic!("expected Storage, got {other:?}"),
        Ok(_) => panic!("opened"),
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file made");
}

#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_opens_on_unix() {
    use std::os::unix::ffi::OsStrExt;
    let dir = folder("bytes");
    let path = dir.join(std::ffi::OsStr::from_bytes(b"outbox-\xff.db"));
    round_trip(&path, &dir);
}
