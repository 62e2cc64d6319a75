//! The index's nodes: links (tagged pointers), leaves (one allocation: a
//! header, the fence, the sorted and appended keys with free slots after
//! them, the value pointers) and inner nodes (256 links and a network
//! count).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize as ValueSlot};

use crossbeam_epoch::{Guard, Owned, Pointable, Pointer};

use super::{FANOUT, STRIDE, Shape, path_of};
use crate::engine_family::Family;
use crate::family::AddressFamily;
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
                // Relaxed: the subtree is unreachable, and the collector
                // (or `&mut` drop) ran after its last writer.
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
                // Relaxed: the index is being dropped (`&mut`).
                Link(c.load(Ordering::Relaxed)).free_values::<F, V>();
            }
        } else if let Some(p) = self.leaf() {
            // SAFETY: as above.
            let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
            for v in leaf.values() {
                // Relaxed: as above.
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
    pub(super) fn collect<F: Family, V: ?Sized + Pointable>(self, out: &mut Gathered<F>) {
        if let Some(inner) = self.inner() {
            // SAFETY: the caller holds the block's lock: linked nodes live.
            let inner = unsafe { &*inner.as_ptr() };
            for c in inner.children.iter() {
                // Relaxed: the block's lock holder wrote every link
                // below the root link last (see `BlockLock::place`).
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
                let child_prefix = prefix | ((c as u128) << (128 - STRIDE - depth));
                n += Link(child.load(Ordering::Acquire)).check::<F, V>(
                    shape,
                    child_prefix,
                    depth + STRIDE,
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
        let holes = leaf.holes();
        if keys.len() == holes || holes * super::HOLES_PER_KEY > keys.len() {
            return Err(format!(
                "leaf at depth {depth}: {holes} of its {} networks removed and not compacted",
                keys.len()
            ));
        }
        if keys.len() > shape.leaf_max && depth < F::NETWORK_WIDTH && depth + STRIDE <= 128 {
            return Err(format!(
                "leaf at depth {depth}: {} networks over budget",
                keys.len()
            ));
        }
        if !keys[..leaf.sorted()].is_sorted_by(|a, b| a < b) {
            return Err(format!("leaf at depth {depth}: keys out of order"));
        }
        if leaf
            .fence()
            .iter()
            .enumerate()
            .any(|(f, k)| *k != keys[f * FENCE])
        {
            return Err(format!(
                "leaf at depth {depth}: a fence key is not its run's first"
            ));
        }
        let mut all = keys.to_vec();
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("leaf at depth {depth}: a key twice"));
        }
        if let Some(k) = keys.iter().find(|k| path_of::<F>(k) & mask != prefix) {
            return Err(format!("leaf at depth {depth}: {k:?} is outside its block"));
        }
        Ok(keys.len() - holes)
    }
}

/// An inner node: 256 links by the next 8 path bits ([`FANOUT`] by
/// [`STRIDE`]), and how many networks
/// (values) lie under it, kept by the block's writer.
pub(super) struct Inner {
    /// Written and read only under the block's lock: std's atomic, not the
    /// shim's, as no reader ever reads it.
    count: std::sync::atomic::AtomicUsize,
    pub(super) children: [AtomicUsize; FANOUT],
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

/// A node's live entries gathered for a copy: a typical leaf's fit on the
/// stack (a rewrite that allocated a scratch vector per copy spent a tenth
/// of a sparse sweep in the allocator).
pub(super) type Gathered<F> = smallvec::SmallVec<[(<F as AddressFamily>::Network, usize); 64]>;

/// A leaf's header: how many keys are sorted, how many slots follow them
/// for appends, and how many of those are taken.
#[repr(C, align(8))]
struct Head {
    sorted: u32,
    cap: u32,
    /// Appended keys, published with Release after their key and slot
    /// were written; read with Acquire.
    tail: AtomicU32,
}

/// A leaf, seen through its address: a [`Head`], the fence (every
/// [`FENCE`]th sorted key), then `sorted + cap` keys, then as many value
/// slots, in one allocation. The first `sorted` keys are
/// in order; the `tail` after them are in the order they were appended
/// (see the module docs).
pub(super) struct Leaf<'a, F: Family, V: ?Sized> {
    base: NonNull<u8>,
    sorted: usize,
    cap: usize,
    /// Appended keys this view sees.
    tail: usize,
    /// Offsets of the fence, keys and values (computed once per view).
    fence_at: usize,
    keys_at: usize,
    values_at: usize,
    _marker: PhantomData<(&'a F::Network, &'a V)>,
}

/// Where a leaf keeps its fence keys, keys and values.
struct LeafLayout {
    layout: Layout,
    fence: usize,
    keys: usize,
    values: usize,
}

/// Sorted keys per fence key: a leaf's header is followed by every
/// `FENCE`th sorted key, so a search reads the fence (a few lines right
/// after the header, which a writer looking ahead prefetches with it) and
/// then one run of `FENCE` keys, where a binary search of a /16's 256
/// keys read five or six lines scattered over 2 KiB.
const FENCE: usize = 8;

/// Leaves of at most this many sorted keys have no fence: their keys fit
/// the lines a fence would take.
const FENCE_MIN: usize = 2 * FENCE;

/// The fence keys a leaf of `sorted` sorted keys has.
fn fence_len(sorted: usize) -> usize {
    if sorted <= FENCE_MIN {
        0
    } else {
        sorted.div_ceil(FENCE)
    }
}

/// The most slots a leaf keeps for appends, in bytes of keys and in keys:
/// a search that misses its sorted keys scans them all (IPv4: 32 keys of
/// 5 bytes, three cache lines; IPv6: 15 keys of 17 bytes), and a walk
/// sorts them in a buffer of [`MAX_TAIL_KEYS`] on its stack.
const MAX_TAIL_BYTES: usize = 256;
/// See [`MAX_TAIL_BYTES`].
pub(super) const MAX_TAIL_KEYS: usize = 32;

impl<'a, F: Family, V: ?Sized + Pointable> Leaf<'a, F, V> {
    /// The layout of a leaf of `sorted` sorted keys and `cap` free slots.
    fn layout(sorted: usize, cap: usize) -> LeafLayout {
        let slots = sorted + cap;
        let head = Layout::new::<Head>();
        let (l, fence) = head
            .extend(Layout::array::<F::Network>(fence_len(sorted)).expect("a leaf's size fits"))
            .expect("a leaf's size fits");
        let (l, keys) = l
            .extend(Layout::array::<F::Network>(slots).expect("a leaf's size fits"))
            .expect("a leaf's size fits");
        let (l, values) = l
            .extend(Layout::array::<ValueSlot>(slots).expect("a leaf's size fits"))
            .expect("a leaf's size fits");
        LeafLayout {
            layout: l.pad_to_align(),
            fence,
            keys,
            values,
        }
    }

    /// The append slots a leaf of `len` sorted keys gets: an eighth of its
    /// keys, between 2 and [`MAX_TAIL_BYTES`] (or [`MAX_TAIL_KEYS`]). A
    /// leaf filled by appends is copied once per that many new networks,
    /// so a load copies each network about eight times over, not once per
    /// network after it in its leaf (a /16 of 256 /24s loaded in order:
    /// 2 K slot copies, not 32 K), for an eighth more slots a leaf.
    fn tail_cap(len: usize) -> usize {
        let most = (MAX_TAIL_BYTES / size_of::<F::Network>()).clamp(2, MAX_TAIL_KEYS);
        (len / 8).clamp(2, most)
    }

    /// A new leaf of `entries` (sorted; each value a pointer from
    /// `Owned::into_usize`, whose ownership moves into the leaf), with
    /// room for appends.
    pub(super) fn alloc(entries: &[(F::Network, usize)]) -> NonNull<u8> {
        let len = entries.len();
        let cap = Self::tail_cap(len);
        let l = Self::layout(len, cap);
        // SAFETY: the layout is non-zero (the header).
        let raw = unsafe { alloc(l.layout) };
        let Some(base) = NonNull::new(raw) else {
            handle_alloc_error(l.layout)
        };
        // SAFETY: `raw` is a fresh allocation of the layout, whose header,
        // keys and slots lie at these aligned offsets; the tail's keys and
        // slots stay uninitialised until appended (nothing reads them
        // before: `tail` is 0).
        unsafe {
            raw.cast::<Head>().write(Head {
                sorted: len as u32,
                cap: cap as u32,
                tail: AtomicU32::new(0),
            });
            let fence = raw.add(l.fence).cast::<F::Network>();
            let keys = raw.add(l.keys).cast::<F::Network>();
            let values = raw.add(l.values).cast::<ValueSlot>();
            for (i, (k, v)) in entries.iter().enumerate() {
                keys.add(i).write(*k);
                values.add(i).write(ValueSlot::new(*v));
            }
            for f in 0..fence_len(len) {
                fence.add(f).write(entries[f * FENCE].0);
            }
        }
        base
    }

    /// The leaf at `p`, with the appends published so far.
    ///
    /// # Safety
    /// `p` came from `alloc` and is not freed for `'a`.
    pub(super) unsafe fn from_ptr(p: NonNull<u8>) -> Self {
        // SAFETY: the header is initialised (see the contract).
        let head = unsafe { &*p.as_ptr().cast::<Head>() };
        let (sorted, cap) = (head.sorted as usize, head.cap as usize);
        let l = Self::layout(sorted, cap);
        Leaf {
            base: p,
            sorted,
            cap,
            // Acquire pairs with `append`'s Release: the appended keys and
            // slots are written before the count that shows them.
            tail: head.tail.load(std::sync::atomic::Ordering::Acquire) as usize,
            fence_at: l.fence,
            keys_at: l.keys,
            values_at: l.values,
            _marker: PhantomData,
        }
    }

    /// The leaf at `p` without reading it (a prefetch hint must not wait
    /// for the line it asks for): only `first_lines` may be used.
    ///
    /// # Safety
    /// As `from_ptr`.
    pub(super) unsafe fn from_ptr_unread(p: NonNull<u8>) -> Self {
        Leaf {
            base: p,
            sorted: 0,
            cap: 0,
            tail: 0,
            fence_at: 0,
            keys_at: 0,
            values_at: 0,
            _marker: PhantomData,
        }
    }

    /// The lines a search reads first: the header and the fence after
    /// it (addresses to prefetch, never read here).
    pub(super) fn first_lines(&self) -> [*const u8; 4] {
        let p = self.base.as_ptr().cast_const();
        [0, 64, 128, 192].map(|o| p.wrapping_add(o))
    }

    /// The fence: every [`FENCE`]th sorted key (none for a small leaf).
    fn fence(&self) -> &'a [F::Network] {
        // SAFETY: `alloc` initialised `fence_len(sorted)` keys at this
        // offset; the leaf outlives `'a` (see `from_ptr`).
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(self.fence_at).cast(),
                fence_len(self.sorted),
            )
        }
    }

    /// Every key this view sees: the sorted ones, then the appended ones.
    pub(super) fn keys(&self) -> &'a [F::Network] {
        // SAFETY: `alloc` initialised `sorted` keys at this offset, and
        // `append` the next `tail` before publishing them; the leaf
        // outlives `'a` (see `from_ptr`).
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(self.keys_at).cast(),
                self.sorted + self.tail,
            )
        }
    }

    /// The value slots of [`keys`](Self::keys), in the same order.
    pub(super) fn values(&self) -> &'a [ValueSlot] {
        // SAFETY: as `keys`.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(self.values_at).cast(),
                self.sorted + self.tail,
            )
        }
    }

    /// How many of [`keys`](Self::keys) are sorted (the rest are appends).
    pub(super) fn sorted(&self) -> usize {
        self.sorted
    }

    /// Where `key` is in [`keys`](Self::keys): a search of the sorted
    /// keys (through the fence: its last key not above `key` names the
    /// run of [`FENCE`] keys that holds `key` if any does), then a scan of
    /// the appended ones.
    pub(super) fn find(&self, key: &F::Network) -> Option<usize> {
        let keys = self.keys();
        let fence = self.fence();
        let (from, to) = if fence.is_empty() {
            (0, self.sorted)
        } else {
            let run = fence.partition_point(|f| f <= key);
            if run == 0 {
                (0, 0) // below the first key
            } else {
                ((run - 1) * FENCE, (run * FENCE).min(self.sorted))
            }
        };
        if let Ok(i) = keys[from..to].binary_search(key) {
            return Some(from + i);
        }
        keys[self.sorted..]
            .iter()
            .position(|k| k == key)
            .map(|i| self.sorted + i)
    }

    /// Appends `key` with the value `raw` if the leaf has a free slot and
    /// stays within `leaf_max` keys; the caller holds the block's lock and
    /// `key` is not in the leaf. Returns whether it did.
    pub(super) fn append(&self, key: F::Network, raw: usize, leaf_max: usize) -> bool {
        let at = self.sorted + self.tail;
        if self.tail >= self.cap || at >= leaf_max {
            return false;
        }
        // SAFETY: slot `at` is inside the allocation (`tail < cap`) and not
        // yet published: no reader reads it until the store below, and
        // only the lock holder writes here.
        unsafe {
            self.base
                .as_ptr()
                .add(self.keys_at)
                .cast::<F::Network>()
                .add(at)
                .write(key);
            self.base
                .as_ptr()
                .add(self.values_at)
                .cast::<ValueSlot>()
                .add(at)
                .write(ValueSlot::new(raw));
        }
        // SAFETY: the header is initialised and lives as long as the leaf.
        let head = unsafe { &*self.base.as_ptr().cast::<Head>() };
        // Release: see `from_ptr`.
        head.tail
            .store(self.tail as u32 + 1, std::sync::atomic::Ordering::Release);
        true
    }

    /// How many of its keys have no value (removed since the leaf was
    /// built; see `BlockLock::compact`).
    pub(super) fn holes(&self) -> usize {
        // Relaxed: called by the block's lock holder, the only writer, or
        // at quiescence.
        self.values()
            .iter()
            .filter(|v| v.load(std::sync::atomic::Ordering::Relaxed) == 0)
            .count()
    }

    /// Appends the entries with a value, in network order (the appended
    /// ones merged in).
    pub(super) fn live_entries(&self, out: &mut Gathered<F>) {
        let live = |(k, v): (&F::Network, &ValueSlot)| {
            // Relaxed: as `holes`.
            let raw = v.load(std::sync::atomic::Ordering::Relaxed);
            (raw != 0).then_some((*k, raw))
        };
        let (keys, values) = (self.keys(), self.values());
        let start = out.len();
        out.extend(
            keys[..self.sorted]
                .iter()
                .zip(&values[..self.sorted])
                .filter_map(live),
        );
        if self.tail > 0 {
            let mut tail: smallvec::SmallVec<[(F::Network, usize); MAX_TAIL_KEYS]> = keys
                [self.sorted..]
                .iter()
                .zip(&values[self.sorted..])
                .filter_map(live)
                .collect();
            tail.sort_unstable_by_key(|e| e.0);
            // Merge from the back: each appended key moves in once.
            let sorted_end = out.len();
            out.extend(tail.iter().copied());
            let (mut i, mut j, mut w) = (sorted_end, tail.len(), out.len());
            while j > 0 {
                if i > start && out[i - 1].0 > tail[j - 1].0 {
                    out[w - 1] = out[i - 1];
                    i -= 1;
                } else {
                    out[w - 1] = tail[j - 1];
                    j -= 1;
                }
                w -= 1;
            }
        }
    }

    /// Frees the leaf (not its values).
    ///
    /// # Safety
    /// `p` came from `alloc`, is unreachable, and is freed once.
    pub(super) unsafe fn free(p: NonNull<u8>) {
        // SAFETY: see the contract.
        let (sorted, cap) = unsafe {
            let head = &*p.as_ptr().cast::<Head>();
            (head.sorted as usize, head.cap as usize)
        };
        // SAFETY: allocated with this layout (`alloc`); keys and slots need
        // no drop (`Copy` keys, plain atomics).
        unsafe { dealloc(p.as_ptr(), Self::layout(sorted, cap).layout) };
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Link({:#x})", self.0)
    }
}
