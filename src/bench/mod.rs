//! The benchmark harness behind `rtm bench` and `benches/` (feature `cli`).
//!
//! Not part of the routing API: it builds rtm's FIB and its competitors from
//! the same table, generates the same traffic for all, and measures them in
//! one run so that the ratios it prints are honest. [`CountingAlloc`] is a
//! global allocator *type* that the binary and the benches install to
//! measure live heap bytes; the library itself never installs it.

pub mod churn;
pub mod churn_v6;
pub mod competitors;
pub mod dir24;
pub mod ecmp;
pub mod fib_writes;
pub mod input;
pub mod lpm;
pub mod reader;
pub mod table_churn;
pub mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A global allocator that counts live heap bytes (install with
/// `#[global_allocator]`): it forwards every call to the allocator `A`
/// (the system's by default) and counts requested sizes on the side, so
/// the figures are the same whatever allocator serves them.
#[derive(Debug)]
pub struct CountingAlloc<A = System> {
    inner: A,
    live: AtomicUsize,
}

impl CountingAlloc {
    /// A counter at zero over the system allocator.
    pub const fn new() -> Self {
        Self::over(System)
    }
}

impl<A> CountingAlloc<A> {
    /// A counter at zero over `inner`.
    pub const fn over(inner: A) -> Self {
        CountingAlloc {
            inner,
            live: AtomicUsize::new(0),
        }
    }

    /// Bytes currently allocated.
    pub fn live(&self) -> usize {
        // Relaxed: a statistic sampled between phases.
        self.live.load(Ordering::Relaxed)
    }
}

impl<A> CountingAlloc<A> {
    /// Live bytes once the garbage retired so far has been reclaimed (see
    /// [`settled`]).
    pub fn settled_live(&self) -> usize {
        settled(&|| self.live())
    }
}

/// `live()` once crossbeam-epoch has run the frees retired so far: memory
/// figures then count what the table holds, not what reclamation has yet
/// to free (every write retires the route set it replaces).
pub fn settled(live: &dyn Fn() -> usize) -> usize {
    for _ in 0..3 {
        for _ in 0..128 {
            crossbeam_epoch::pin().flush();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    live()
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards every call to `inner` unchanged and only counts sizes
// on the side.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            // Relaxed: a statistic; no memory is published through it.
            self.live.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            // Relaxed: as in `alloc`.
            self.live.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` came from this allocator with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        // Relaxed: as in `alloc`.
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's arguments.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Relaxed: as in `alloc`.
            self.live.fetch_add(new_size, Ordering::Relaxed);
            self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}
