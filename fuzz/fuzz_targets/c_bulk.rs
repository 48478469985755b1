#![no_main]
//! See `intune_user_status::fuzzing::c_bulk` for what it feeds and asserts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| intune_user_status::fuzzing::c_bulk(data));
