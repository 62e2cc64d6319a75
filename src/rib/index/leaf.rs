//! The index's nodes: links (tagged pointers), leaves (one allocation: a
//! length, the sorted keys, the value pointers) and inner nodes (256
//! links and a network count).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize as ValueSlot;

use crossbeam_epoch::{Guard, Owned, Pointable, Pointer};

use super::{Shape, path_of};
use crate::family::Family;
use crate::sync::{AtomicUsize, Ordering};

/// A link: 0 (empty), a leaf's address, or an inner node's address with
/// [`INNER`] set (both are at least 8-byte aligned).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Link(pub(super) usize);

const INNER: usize = 1;

impl Link {
    pub(super) fn of_leaf(p: NonNull<u8>) -> Link {
        Link(p.as_ptr() as usize)
    }

    pub(super) fn of_inner(inner: Box<Inner>) -> Link {
        Link(Box::into_raw(inner) as usize | INNER)
    }

    pub(super) fn inner(self) -> Option<NonNull<Inner>> {
        (self.0 & INNER != 0).then(|| {
            // SAFETY: a tagged link is non-null (an address with the tag).
            unsafe { NonNull::new_unchecked((self.0 & !INNER) as *mut Inner) }
        })
    }

    pub(super) fn leaf(self) -> Option<NonNull<u8>> {
        if self.0 & INNER != 0 {
            return None;
        }
        NonNull::new(self.0 as *mut u8)
    }

    /// Retires the node this link named (a writer replaced it): freed once
    /// every reader pinned before has unpinned. Its values are not: they
    /// live on in the node that replaced it.
    pub(super) fn retire<F: Family, V: ?Sized + Pointable>(self, guard: &Guard) {
        if self.0 == 0 {
            return;
        }
        let link = self.0;
        // SAFETY: the caller unlinked this node under its block's lock, so
        // only readers pinned before can reach it; the collector runs this
        // after they unpin, and nothing else frees it.
        unsafe {
            guard.defer_unchecked(move || {
                crate::qsbr::count_free();
                Link(link).free_nodes::<F, V>();
            })
        };
    }

    /// Frees this node and every node under it, not the values.
    fn free_nodes<F: Family, V: ?Sized + Pointable>(self) {
        if let Some(inner) = self.inner() {
            // SAFETY: the caller owns the unlinked subtree.
            let inner = unsafe { Box::from_raw(inner.as_ptr()) };
            for c in inner.children.iter() {
                Link(c.load(Ordering::Relaxed)).free_nodes::<F, V>();
            }
        } else if let Some(p) = self.leaf() {
            // SAFETY: the caller owns the unlinked leaf.
            unsafe { Leaf::<F, V>::free(p) };
        }
    }

    /// Frees this node, every node under it and their values (the index
    /// is being dropped).
    pub(super) fn free_all<F: Family, V: ?Sized + Pointable>(self) {
        self.free_values::<F, V>();
        self.free_nodes::<F, V>();
    }

    /// Frees the values under this node (not the nodes).
    fn free_values<F: Family, V: ?Sized + Pointable>(self) {
        if let Some(inner) = self.inner() {
            // SAFETY: the index is being dropped: nobody else reaches it.
            let inner = unsafe { &*inner.as_ptr() };
            for c in inner.children.iter() {
                Link(c.load(Ordering::Relaxed)).free_values::<F, V>();
            }
        } else if let Some(p) = self.leaf() {
            // SAFETY: as above.
            let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
            for v in leaf.values() {
                let raw = v.load(std::sync::atomic::Ordering::Relaxed);
                if raw != 0 {
                    // SAFETY: every non-zero value came from `Owned`, and the
                    // index owns it.
                    drop(unsafe { Owned::<V>::from_usize(raw) });
                }
            }
        }
    }

    /// Appends the live entries of this subtree, in order.
    pub(super) fn collect<F: Family, V: ?Sized + Pointable>(
        self,
        out: &mut Vec<(F::Network, usize)>,
    ) {
        if let Some(inner) = self.inner() {
            // SAFETY: the caller holds the block's lock: linked nodes live.
            let inner = unsafe { &*inner.as_ptr() };
            for c in inner.children.iter() {
                Link(c.load(Ordering::Relaxed)).collect::<F, V>(out);
            }
        } else if let Some(p) = self.leaf() {
            // SAFETY: as above.
            unsafe { Leaf::<F, V>::from_ptr(p) }.live_entries(out);
        }
    }

    /// Checks this subtree (see `BlockIndex::check`): `prefix` holds the
    /// path bits every key under it must start with (`depth` of them).
    pub(super) fn check<F: Family, V: ?Sized + Pointable>(
        self,
        shape: Shape,
        prefix: u128,
        depth: u32,
    ) -> Result<usize, String> {
        let mask = if depth == 0 {
            0
        } else {
            u128::MAX << (128 - depth.min(128))
        };
        if let Some(inner) = self.inner() {
            // SAFETY: called at quiescence: linked nodes live.
            let inner = unsafe { &*inner.as_ptr() };
            let mut n = 0;
            for (c, child) in inner.children.iter().enumerate() {
                let child_prefix = prefix | ((c as u128) << (120 - depth));
                n += Link(child.load(Ordering::Acquire)).check::<F, V>(
                    shape,
                    child_prefix,
                    depth + 8,
                )?;
            }
            if n != inner.count() || n == 0 {
                return Err(format!(
                    "inner node at depth {depth}: count {} over {n} networks",
                    inner.count()
                ));
            }
            if n <= shape.leaf_max / 2 {
                return Err(format!(
                    "inner node at depth {depth}: {n} networks left unmerged"
                ));
            }
            return Ok(n);
        }
        let Some(p) = self.leaf() else {
            return Ok(0);
        };
        // SAFETY: as above.
        let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
        let keys = leaf.keys();
        if keys.is_empty() || leaf.has_holes() {
            return Err(format!("leaf at depth {depth}: empty or holed"));
        }
        if keys.len() > shape.leaf_max && depth < F::NETWORK_WIDTH {
            return Err(format!(
                "leaf at depth {depth}: {} networks over budget",
                keys.len()
            ));
        }
        if !keys.is_sorted_by(|a, b| a < b) {
            return Err(format!("leaf at depth {depth}: keys out of order"));
        }
        if let Some(k) = keys.iter().find(|k| path_of::<F>(k) & mask != prefix) {
            return Err(format!("leaf at depth {depth}: {k:?} is outside its block"));
        }
        Ok(keys.len())
    }
}

/// An inner node: 256 links by the next 8 path bits, and how many networks
/// (values) lie under it, kept by the block's writer.
pub(super) struct Inner {
    /// Written and read only under the block's lock: std's atomic, not the
    /// shim's, as no reader ever reads it.
    count: std::sync::atomic::AtomicUsize,
    pub(super) children: [AtomicUsize; 256],
}

impl Inner {
    pub(super) fn new(count: usize) -> Box<Inner> {
        Box::new(Inner {
            count: std::sync::atomic::AtomicUsize::new(count),
            children: std::array::from_fn(|_| AtomicUsize::new(0)),
        })
    }

    pub(super) fn count(&self) -> usize {
        // Relaxed: only the block's lock holder reads and writes it.
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn add(&self, delta: isize) {
        // Relaxed: as `count`.
        let n = self.count() as isize + delta;
        self.count
            .store(n as usize, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A leaf, seen through its address: `len`, then `len` keys, then `len`
/// value slots, in one allocation.
pub(super) struct Leaf<'a, F: Family, V: ?Sized> {
    base: NonNull<u8>,
    len: usize,
    _marker: PhantomData<(&'a F::Network, &'a V)>,
}

/// Where a leaf of `len` networks keeps its keys and values.
struct LeafLayout {
    layout: Layout,
    keys: usize,
    values: usize,
}

impl<'a, F: Family, V: ?Sized + Pointable> Leaf<'a, F, V> {
    fn layout(len: usize) -> LeafLayout {
        let head = Layout::new::<usize>();
        let (l, keys) = head
            .extend(Layout::array::<F::Network>(len).expect("a leaf's size fits"))
            .expect("a leaf's size fits");
        let (l, values) = l
            .extend(Layout::array::<ValueSlot>(len).expect("a leaf's size fits"))
            .expect("a leaf's size fits");
        LeafLayout {
            layout: l.pad_to_align(),
            keys,
            values,
        }
    }

    /// A new leaf of `entries` (sorted; each value a pointer from
    /// `Owned::into_usize`, whose ownership moves into the leaf).
    pub(super) fn alloc(entries: &[(F::Network, usize)]) -> NonNull<u8> {
        let len = entries.len();
        let l = Self::layout(len);
        // SAFETY: the layout is non-zero (the length word).
        let raw = unsafe { alloc(l.layout) };
        let Some(base) = NonNull::new(raw) else {
            handle_alloc_error(l.layout)
        };
        // SAFETY: `raw` is a fresh allocation of the layout, whose length
        // word, `len` keys and `len` slots lie at these aligned offsets.
        unsafe {
            raw.cast::<usize>().write(len);
            let keys = raw.add(l.keys).cast::<F::Network>();
            let values = raw.add(l.values).cast::<ValueSlot>();
            for (i, (k, v)) in entries.iter().enumerate() {
                keys.add(i).write(*k);
                values.add(i).write(ValueSlot::new(*v));
            }
        }
        base
    }

    /// The leaf at `p`.
    ///
    /// # Safety
    /// `p` came from `alloc` and is not freed for `'a`.
    pub(super) unsafe fn from_ptr(p: NonNull<u8>) -> Self {
        Leaf {
            base: p,
            // SAFETY: the length word is initialised (see the contract).
            len: unsafe { p.cast::<usize>().read() },
            _marker: PhantomData,
        }
    }

    /// The leaf at `p` without reading its length (a prefetch hint must
    /// not wait for the line it asks for): only `middle_key` may be used,
    /// and it reads nothing.
    ///
    /// # Safety
    /// As `from_ptr`.
    pub(super) unsafe fn from_ptr_unread(p: NonNull<u8>) -> Self {
        Leaf {
            base: p,
            len: 0,
            _marker: PhantomData,
        }
    }

    /// Where a search of a typical leaf first reads: a few lines into the
    /// keys (an address to prefetch, never read here).
    pub(super) fn middle_key(&self) -> *const u8 {
        self.base
            .as_ptr()
            .wrapping_add(Self::layout(0).keys + 4 * 64)
            .cast_const()
    }

    pub(super) fn keys(&self) -> &'a [F::Network] {
        let l = Self::layout(self.len);
        // SAFETY: `alloc` initialised `len` keys at this offset, and the
        // leaf outlives `'a` (see `from_ptr`).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(l.keys).cast(), self.len) }
    }

    pub(super) fn values(&self) -> &'a [ValueSlot] {
        let l = Self::layout(self.len);
        // SAFETY: as `keys`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(l.values).cast(), self.len) }
    }

    /// Whether a value was removed here since the leaf was built.
    pub(super) fn has_holes(&self) -> bool {
        // Relaxed: called by the block's lock holder, the only writer.
        self.values()
            .iter()
            .any(|v| v.load(std::sync::atomic::Ordering::Relaxed) == 0)
    }

    /// Appends the entries with a value, in order.
    pub(super) fn live_entries(&self, out: &mut Vec<(F::Network, usize)>) {
        for (k, v) in self.keys().iter().zip(self.values()) {
            // Relaxed: as `has_holes`.
            let raw = v.load(std::sync::atomic::Ordering::Relaxed);
            if raw != 0 {
                out.push((*k, raw));
            }
        }
    }

    /// Frees the leaf (not its values).
    ///
    /// # Safety
    /// `p` came from `alloc`, is unreachable, and is freed once.
    pub(super) unsafe fn free(p: NonNull<u8>) {
        // SAFETY: see the contract.
        let len = unsafe { p.cast::<usize>().read() };
        // SAFETY: allocated with this layout (`alloc`); keys and slots need
        // no drop (`Copy` keys, plain atomics).
        unsafe { dealloc(p.as_ptr(), Self::layout(len).layout) };
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Link({:#x})", self.0)
    }
}
