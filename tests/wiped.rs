//! Secrets the library holds and no longer needs are wiped before their memory goes back to the
//! allocator (SECURITY.md, "What it protects"): this binary's global allocator looks into every
//! block freed while a check is armed and counts those that still hold the marker.
//!
//! What is checked: the client secret as a credential holds it (and every copy the builder makes
//! of it), and the buffer the token callback writes into. What is not claimed: copies made for
//! the wire (a token request's form body, a connection's write buffer) and tokens themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use intune_user_status::{Client, ClientSecretCredential};

/// The pattern looked for; no block holds it unless a test put it there.
static MARKER: AtomicUsize = AtomicUsize::new(0);
/// One check at a time.
static CHECK: Mutex<()> = Mutex::new(());
static ARMED: AtomicBool = AtomicBool::new(false);
/// Only blocks of this size are looked into (0: every block).
static ONLY_SIZE: AtomicUsize = AtomicUsize::new(0);
/// Freed blocks that held the marker, while armed.
static FOUND: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, looking into freed blocks while armed.
struct Inspecting;

// SAFETY: every call is passed on to the system allocator; dealloc only reads the block first.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let only = ONLY_SIZE.load(Ordering::SeqCst);
        if ARMED.load(Ordering::SeqCst) && (only == 0 || only == layout.size()) {
            let marker = marker();
            // SAFETY: the block is live until it is passed on below, `layout.size()` bytes long.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(marker.len()).any(|w| w == marker) {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// The marker as bytes: a static string chosen by the running check.
fn marker() -> &'static [u8] {
    match MARKER.load(Ordering::SeqCst) {
        1 => SECRET.as_bytes(),
        2 => TOKEN_START.as_bytes(),
        _ => b"\x00never\x00",
    }
}

const SECRET: &str = "wiped-secret-9f3a61c2d0b847e5";
/// The start of the token the callback writes (the rest is filler, to make it long).
const TOKEN_START: &str = "wiped-token-5b7e20a4c91d36f8";

/// Runs `body` with the allocator looking for marker `which` in freed blocks (of `only_size`
/// bytes, or any size for 0); returns how many still held it.
fn freed_holding(which: usize, only_size: usize, body: impl FnOnce()) -> usize {
    let _one_at_a_time = CHECK.lock().unwrap_or_else(|e| e.into_inner());
    MARKER.store(which, Ordering::SeqCst);
    ONLY_SIZE.store(only_size, Ordering::SeqCst);
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    body();
    ARMED.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn the_detector_sees_a_secret_left_in_freed_memory() {
    let found = freed_holding(1, 0, || drop(std::hint::black_box(SECRET.to_owned())));
    assert_eq!(found, 1, "a String freed as it was still holds the secret");
    let mut buffer = vec![0u8; TOKEN_LEN + 1];
    buffer[..TOKEN_START.len()].copy_from_slice(TOKEN_START.as_bytes());
    let found = freed_holding(2, TOKEN_LEN + 1, || drop(std::hint::black_box(buffer)));
    assert_eq!(found, 1, "a buffer of the callback's size freed as it was");
}

#[test]
fn a_client_secret_is_wiped_from_every_copy_the_library_drops() {
    let found = freed_holding(1, 0, || {
        let credential = ClientSecretCredential::new("contoso.onmicrosoft.com", "app-id", SECRET)
            .authority_host("http://127.0.0.1:9");
        let client = Client::builder()
            .base_url("http://127.0.0.1:9")
            .credential(credential)
            .build()
            .unwrap();
        let clone = client.clone();
        drop(client);
        drop(clone);
    });
    assert_eq!(found, 0, "freed blocks that still held the client secret");
}

unsafe extern "C" {
    fn ius_client_new_with_token_callback(
        config_json: *const c_char,
        callback: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut i64) -> i32>,
        user_data: *mut c_void,
        out_client: *mut *mut c_void,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_update_user_status(
        client: *const c_void,
        device_configuration_id: *const c_char,
        user_status_id: *const c_char,
        patch_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_client_free(client: *mut c_void);
    fn ius_string_free(s: *mut c_char);
}

/// The token's length: over the library's first 8 KiB buffer, so the callback asks for a larger
/// one, a size no other block of the call has.
const TOKEN_LEN: usize = 9000;

static CALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// Writes [`TOKEN_START`] and filler to the library's buffer, or asks for a larger one.
unsafe extern "C" fn long_token(
    _user_data: *mut c_void,
    buffer: *mut c_char,
    len: usize,
    expires_in: *mut i64,
) -> i32 {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    if len <= TOKEN_LEN {
        return (TOKEN_LEN + 1) as i32;
    }
    // SAFETY: the library's buffer holds `len` bytes; expires_in is writable.
    unsafe {
        let out = buffer.cast::<u8>();
        std::ptr::copy_nonoverlapping(TOKEN_START.as_ptr(), out, TOKEN_START.len());
        std::ptr::write_bytes(
            out.add(TOKEN_START.len()),
            b'x',
            TOKEN_LEN - TOKEN_START.len(),
        );
        *out.add(TOKEN_LEN) = 0;
        *expires_in = 3600;
    }
    0
}

#[test]
fn the_token_callbacks_buffer_is_wiped_before_it_is_freed() {
    // Only blocks of the buffer's size are looked at: the token itself, copied out of the
    // buffer, lives on in the client's cache and its request headers, which are not wiped.
    let found = freed_holding(2, TOKEN_LEN + 1, || {
        let mut client = std::ptr::null_mut();
        let mut error = std::ptr::null_mut();
        // A port nobody listens on: the token is fetched, then the connection is refused.
        let config = c"{\"baseUrl\":\"http://127.0.0.1:9\",\"retry\":{\"maxRetries\":0}}";
        // SAFETY: NUL-terminated strings, writable out-pointers, a callback valid forever.
        let code = unsafe {
            ius_client_new_with_token_callback(
                config.as_ptr(),
                Some(long_token),
                std::ptr::null_mut(),
                &mut client,
                &mut error,
            )
        };
        assert_eq!(code, 0);
        // SAFETY: a live client, NUL-terminated strings, a writable out-pointer.
        let code = unsafe {
            ius_update_user_status(
                client,
                c"c1".as_ptr(),
                c"u1".as_ptr(),
                c"{\"devicesCount\":1}".as_ptr(),
                std::ptr::null_mut(),
                &mut error,
            )
        };
        assert_ne!(code, 0, "nobody listens on port 9");
        // SAFETY: the error string and the client this test got, each freed once.
        unsafe {
            ius_string_free(error);
            ius_client_free(client);
        }
    });
    assert_eq!(
        CALLBACKS.load(Ordering::SeqCst),
        2,
        "asked for a larger buffer, then wrote the token"
    );
    assert_eq!(
        found, 0,
        "the callback's buffer was freed holding the token"
    );
}
