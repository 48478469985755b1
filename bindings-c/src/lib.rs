//! The C library of `intune-user-status`: the shared object and static library that C and C++
//! agents link through `include/intune_user_status.h`.
//!
//! Every `ius_*` function is defined once, in the SDK's `ffi` layer (`src/ffi/`); a cdylib or
//! staticlib exports the `#[no_mangle]` functions of the crates it links, so this crate only links
//! the SDK. It exists so that the C library is compiled on its own, with link-time optimization
//! keeping only what the `ius_*` functions reach (see `Cargo.toml`).

use sdk as _;
