//! Hands the target and host triples to `tests/c_api.rs`, which finds the C and C++ compilers
//! with the `cc` crate the way a build script would. (The C library's link settings are in
//! `bindings-c/build.rs`.)

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    println!("cargo:rustc-env=IUS_BUILD_TARGET={}", var("TARGET"));
    println!("cargo:rustc-env=IUS_BUILD_HOST={}", var("HOST"));
}
