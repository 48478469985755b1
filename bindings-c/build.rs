//! Link settings of the C library.
//!
//! On ELF platforms the shared object gets the SONAME `libintune_user_status.so.<major>`: the
//! ABI's major version, the crate's major version (0 for every 0.x: within a major version the
//! C ABI only grows, see the README's "ABI" section). Programs record that name when linking and
//! keep loading any later compatible release. Cargo itself sets no SONAME.

use std::env;

/// Target operating systems whose shared objects are ELF and take `-soname`.
const ELF_OSES: [&str; 8] = [
    "linux",
    "android",
    "freebsd",
    "netbsd",
    "openbsd",
    "dragonfly",
    "illumos",
    "solaris",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    if ELF_OSES.contains(&var("CARGO_CFG_TARGET_OS").as_str()) {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libintune_user_status.so.{}",
            var("CARGO_PKG_VERSION_MAJOR")
        );
    }
}
