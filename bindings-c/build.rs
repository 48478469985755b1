//! Link settings of the C library.
//!
//! On ELF platforms the shared object gets the SONAME `libintune_user_status.so.<major>`: the
//! ABI's major version, the crate's major version (0 for every 0.x: within a major version the
//! C ABI only grows, see docs/abi.md). Programs record that name when linking and
//! keep loading any later compatible release. Cargo itself sets no SONAME.
//!
//! On Windows the DLL gets a version resource (`intune_user_status.rc`: FileVersion and
//! ProductVersion from the crate's version), compiled by `embed-resource` with the toolchain's
//! resource compiler (mingw's `windres`, or `rc.exe`/`llvm-rc` for MSVC) and linked into the
//! DLL only.

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
    println!("cargo:rerun-if-changed=intune_user_status.rc");
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "windows" {
        let macros = [
            ("IUS_VERSION_MAJOR", var("CARGO_PKG_VERSION_MAJOR")),
            ("IUS_VERSION_MINOR", var("CARGO_PKG_VERSION_MINOR")),
            ("IUS_VERSION_PATCH", var("CARGO_PKG_VERSION_PATCH")),
            ("IUS_VERSION_TEXT", var("CARGO_PKG_VERSION")),
        ]
        .map(|(name, value)| format!("{name}={value}"));
        embed_resource::compile_for_cdylib("intune_user_status.rc", &macros)
            .manifest_optional()
            .unwrap_or_else(|err| panic!("the DLL's version resource: {err}"));
    }
    if ELF_OSES.contains(&var("CARGO_CFG_TARGET_OS").as_str()) {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libintune_user_status.so.{}",
            var("CARGO_PKG_VERSION_MAJOR")
        );
    }
}
