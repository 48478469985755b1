//! `client-request-id` values: random (version 4) UUIDs, their bytes drawn from the operating
//! system's generator sixteen ids at a time.
//!
//! A correlation id is not a secret, but it must not repeat or be guessable, so the bytes still
//! come from the OS's CSPRNG; only one `getrandom` per request (a system call on the hot path)
//! becomes one per sixteen. Each thread keeps its own unused bytes, and a forked child draws
//! fresh ones rather than repeat its parent's.

use std::cell::RefCell;

use ring::rand::{SecureRandom, SystemRandom};

/// Ids per draw from the operating system.
const BATCH: usize = 16;

struct Pool {
    bytes: [u8; 16 * BATCH],
    next: usize,
    process: u32,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; 16 * BATCH], next: BATCH, process: 0 })
    };
}

/// A fresh random UUID, lower-case and hyphenated.
pub(crate) fn new() -> String {
    let id = POOL.with_borrow_mut(|pool| {
        let process = std::process::id();
        if pool.next == BATCH || pool.process != process {
            if SystemRandom::new().fill(&mut pool.bytes).is_err() {
                return uuid::Uuid::new_v4();
            }
            pool.next = 0;
            pool.process = process;
        }
        let start = pool.next * 16;
        pool.next += 1;
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&pool.bytes[start..start + 16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    });
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_and_never_repeat() {
        let ids: Vec<String> = (0..3 * BATCH + 1).map(|_| new()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(
                id,
                &parsed.hyphenated().to_string(),
                "lower-case, hyphenated"
            );
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
