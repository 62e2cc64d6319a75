//! Large zeroed arrays of 32-bit atomic words, on transparent huge pages where
//! the operating system offers them.
//!
//! A lookup touches one random word of a multi-megabyte direct-indexed
//! array; with 4 KiB pages nearly every such access also misses the TLB
//! and costs a page walk. Backing the array with 2 MiB pages (Linux
//! `MADV_HUGEPAGE`, which works when transparent huge pages are `always` or
//! `madvise`) lets a handful of TLB entries cover it. Elsewhere, or when
//! the kernel declines, the array is simply on normal pages.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// Huge-page size the allocation is aligned to (x86-64 and aarch64 with
/// 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// A fixed-size, zero-initialised array of `AtomicU32`, allocated through
/// the global allocator (so allocation counters see it) and aligned to a
/// huge page when at least one huge page long.
pub(crate) struct ZeroedWords {
    ptr: NonNull<AtomicU32>,
    len: usize,
    layout: Layout,
}

// SAFETY: the array is owned (like a `Box<[AtomicU32]>`), and `AtomicU32`
// is `Send + Sync`.
unsafe impl Send for ZeroedWords {}
// SAFETY: as above: shared access only hands out `&AtomicU32`.
unsafe impl Sync for ZeroedWords {}

impl ZeroedWords {
    /// `len` words at zero.
    pub(crate) fn new(len: usize) -> Self {
        let bytes = (len * std::mem::size_of::<AtomicU32>()).max(4);
        let align = if bytes >= HUGE_PAGE {
            HUGE_PAGE
        } else {
            std::mem::align_of::<AtomicU32>()
        };
        let layout = Layout::from_size_align(bytes, align).expect("array size overflows");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        if align == HUGE_PAGE {
            advise_huge(raw, bytes);
        }
        // SAFETY: `raw` is valid for `bytes` bytes of writes. Writing the
        // zeros after the advice is what makes the first touch of each
        // 2 MiB range fault in a huge page.
        unsafe { std::ptr::write_bytes(raw, 0, bytes) };
        ZeroedWords {
            ptr: ptr.cast(),
            len,
            layout,
        }
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.layout.size()
    }
}

impl std::ops::Deref for ZeroedWords {
    type Target = [AtomicU32];

    fn deref(&self) -> &[AtomicU32] {
        // SAFETY: `ptr` points to `len` initialised (zeroed, and all-zero is
        // a valid `AtomicU32`) words owned by `self` for its lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ZeroedWords {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

/// Asks the kernel to back `p..p + bytes` with huge pages (best effort).
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn advise_huge(p: *mut u8, bytes: usize) {
    // SAFETY: `p..p + bytes` is one live allocation of ours; MADV_HUGEPAGE
    // only changes how the kernel backs it, never its contents. Failure
    // (kernel without THP, or THP off) just leaves normal pages, so the
    // result is deliberately ignored.
    unsafe {
        libc::madvise(p.cast(), bytes, libc::MADV_HUGEPAGE);
    }
}

/// No huge-page advice outside Linux (nor under Miri, which has no
/// `madvise`).
#[cfg(any(not(target_os = "linux"), miri))]
pub(crate) fn advise_huge(_p: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn zeroed_and_writable_at_both_sizes() {
        for len in [1usize, 100, (HUGE_PAGE / 4) * 2 + 3] {
            let w = ZeroedWords::new(len);
            assert_eq!(w.len(), len);
            assert!(w.iter().all(|x| x.load(Ordering::Relaxed) == 0));
            w[len - 1].store(7, Ordering::Relaxed);
            assert_eq!(w[len - 1].load(Ordering::Relaxed), 7);
            if w.bytes() >= HUGE_PAGE {
                assert_eq!(w.as_ptr() as usize % HUGE_PAGE, 0);
            }
        }
    }
}
