//! The heap the SDK holds, counted apart from the emulator's and the soak's own.
//!
//! RSS mixes the SDK's memory with the in-process emulator's (request logs, issued tokens, a
//! thread per connection) and with what the allocator keeps after a free: glibc spreads threads
//! over several arenas, and freed memory stays in its arena. So this global allocator counts the
//! bytes allocated while a thread is inside an SDK call ([`sdk_call`]) and not yet freed, on
//! whichever thread they are freed (each allocation carries its class in a header before it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// Counts every allocation's bytes by class, over the system allocator.
pub struct Counting;

/// Live bytes allocated inside SDK calls.
static SDK: AtomicI64 = AtomicI64::new(0);
/// Live bytes allocated anywhere (the SDK's included).
static ALL: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static IN_SDK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call` with its allocations counted as the SDK's.
pub fn sdk_call<T>(call: impl FnOnce() -> T) -> T {
    IN_SDK.with(|flag| flag.set(true));
    let result = call();
    IN_SDK.with(|flag| flag.set(false));
    result
}

/// Live heap bytes: allocated inside SDK calls, and in all.
pub fn live() -> (i64, i64) {
    (SDK.load(Ordering::Relaxed), ALL.load(Ordering::Relaxed))
}

/// Bytes the allocator holds free (glibc's `mallinfo2().fordblks`; `None` elsewhere).
pub fn allocator_free() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        Some(unsafe { libc::mallinfo2() }.fordblks as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Room before each allocation: its class byte sits just before the pointer handed out, and the
/// pointer keeps the alignment asked for.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

fn outer(layout: Layout) -> Option<Layout> {
    let size = layout.size().checked_add(header(layout))?;
    Layout::from_size_align(size, layout.align()).ok()
}

fn count(sdk: bool, bytes: i64) {
    ALL.fetch_add(bytes, Ordering::Relaxed);
    if sdk {
        SDK.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Counting {
    /// Marks a fresh block from the system allocator and hands out the part after the header.
    ///
    /// # Safety
    /// `base` is null or a block of `outer(layout)`.
    unsafe fn start(base: *mut u8, layout: Layout) -> *mut u8 {
        if base.is_null() {
            return base;
        }
        // `try_with`: a thread's last frees run after its locals are gone.
        let sdk = IN_SDK.try_with(Cell::get).unwrap_or(false);
        count(sdk, layout.size() as i64);
        // SAFETY: the header is inside the block, before the part handed out.
        unsafe {
            let ptr = base.add(header(layout));
            ptr.sub(1).write(u8::from(sdk));
            ptr
        }
    }
}

// SAFETY: every block comes from System with the caller's alignment and a header in front; the
// pointers handed out keep that alignment and are given back to System as the blocks they are.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: outer has a non-zero size.
        unsafe { Counting::start(System.alloc(outer), layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: outer has a non-zero size.
        unsafe { Counting::start(System.alloc_zeroed(outer), layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from alloc with this layout, so its header is in front of it.
        unsafe {
            count(ptr.sub(1).read() == 1, -(layout.size() as i64));
            let outer = outer(layout).unwrap_unchecked();
            System.dealloc(ptr.sub(header(layout)), outer);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(new_outer) = new_size.checked_add(header(layout)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: as in dealloc; System copies the header along with the data, so the block
        // keeps the class it was allocated with.
        unsafe {
            let sdk = ptr.sub(1).read() == 1;
            let outer = outer(layout).unwrap_unchecked();
            let base = System.realloc(ptr.sub(header(layout)), outer, new_outer);
            if base.is_null() {
                return base;
            }
            count(sdk, new_size as i64 - layout.size() as i64);
            base.add(header(layout))
        }
    }
}
