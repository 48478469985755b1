//! Review probes (ops-report / win-net as merged in 7ae0b26): each test asserts what the docs
//! promise and fails on main, showing a defect. Not fixes.
#![cfg(feature = "outbox")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TOKEN;
use intune_user_status::{
    AccessToken, AuthError, Error, FlushReport, FlushStop, Outbox, OutboxOptions, Target,
    TokenProvider, UserStatusPatch,
};
use ius_emulator::{Config, Emulator, SeedEntry};
use serde_json::json;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

fn emulator_with(ids: &[String]) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: ids
            .iter()
            .map(|id| SeedEntry {
                collection: DIRECT.into(),
                entity: json!({ "id": id, "devicesCount": 0 }),
            })
            .collect(),
        ..Config::default()
    })
    .expect("start emulator")
}

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius-review-on-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Gives the emulator's token `good` times, then fails ("vault sealed"); counts its calls.
struct Sealing {
    good: usize,
    calls: Arc<AtomicUsize>,
}

impl TokenProvider for Sealing {
    fn token(&self) -> Result<AccessToken, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.good {
            Ok(AccessToken::new(TOKEN))
        } else {
            Err(AuthError::new("vault sealed").into())
        }
    }
}

/// DEFECT 1. No token at all (a sealed vault, an expired secret): FlushStop::Auth's doc says
/// this is "the credentials were refused", and hold.rs / `clear_hold` / the C docs say such a
/// stop holds every report back (stats' heldUntil) so the next flush does not try again at once.
/// The first-batch no-token path records with `hold: None` (flush.rs), so nothing is held: every
/// flush fetches a token again and logs another WARN, and `heldUntil` stays null, so an
/// operator's `clear-hold` says `cleared:false` about an outbox that is stopped for auth.
#[test]
fn probe_a_flush_with_no_token_holds_the_outbox_as_a_refused_one_does() {
    let ids: Vec<String> = vec!["a".into()];
    let emu = emulator_with(&ids);
    let dir = folder("no-token-hold");
    let calls = Arc::new(AtomicUsize::new(0));
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Sealing {
            good: 0,
            calls: calls.clone(),
        })
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let mut report = FlushReport::default();
    let first = outbox.flush_into(&mut report);
    assert!(matches!(first, Err(Error::Auth(_))), "{first:?}");
    assert_eq!(report.stopped_by, Some(FlushStop::Auth));
    let after_first = calls.load(Ordering::SeqCst);
    let stats = outbox.stats().unwrap();
    // Seen failing on main: held_until None, hold_left None.
    assert!(
        stats.held_until.is_some(),
        "an auth stop leaves no hold: {stats:?}"
    );
    let mut again = FlushReport::default();
    let _ = outbox.flush_into(&mut again);
    assert_eq!(
        again.stopped_by,
        Some(FlushStop::Held),
        "the second flush ran again: {again:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after_first,
        "the token source was asked again"
    );
}

/// DEFECT 2 (report lies about the wire). The token source fails after the first batch went
/// out: the second batch's 20 reports never left (no request carried them; the emulator got one
/// `$batch`), yet the report counts them in `sent` (flush.rs: `sent += batch.len() - unsent`,
/// where `unsent` only counts interrupts). `sent` is documented as reports sent to Graph.
#[test]
fn probe_sent_counts_only_reports_a_request_carried() {
    let ids: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let emu = emulator_with(&ids);
    let dir = folder("sealed-mid-flush");
    let calls = Arc::new(AtomicUsize::new(0));
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Sealing {
            good: 1,
            calls: calls.clone(),
        })
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    for id in &ids {
        outbox
            .enqueue(
                &Target::new("c1", id.clone()),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    let mut report = FlushReport::default();
    let result = outbox.flush_into(&mut report);
    let batches: Vec<usize> = emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body_str()).unwrap()["requests"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    let carried: u64 = batches.iter().map(|&n| n as u64).sum();
    assert_eq!(report.stopped_by, Some(FlushStop::Auth), "{result:?} {report:?}");
    // Seen failing on main: sent 40, carried 20.
    assert_eq!(
        report.sent, carried,
        "report {report:?}, batches on the wire {batches:?}"
    );
}
