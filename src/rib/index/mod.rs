//! The RIB's destination index: network -> published route set, in network
//! order, read with plain loads and written copy-on-write, block by block.
//!
//! # Layout
//! A network's *path* is its address bits, most significant first (a
//! prefix's length does not enter it). Networks are ordered by address,
//! then length, so ordering by path first puts every network of an
//! address block together, and the blocks in address order:
//!
//! ```text
//!  root: 2^16 links, one per /16 block (512 KiB; IPv4, IPX, IPv6 alike)
//!    |
//!    +-- leaf: [header | fence | sorted keys, appended keys, free slots
//!    |          | a route-set pointer per key]
//!    |         every network whose top 16 address bits are the block's,
//!    |         whatever its length (10.1.0.0/16, 10.1.2.0/24, 10.0.0.0/8
//!    |         sits in block 10.0, 10.1.2.128/25 in block 10.1)
//!    |
//!    +-- inner: 256 links by the next 8 address bits, each a leaf or an
//!               inner: a leaf that would outgrow its budget splits, an
//!               inner whose networks fit half a leaf merges back
//! ```
//!
//! A leaf is one allocation: a header, the fence (every 8th sorted key, for
//! leaves of more than 16), then the keys, then one pointer per key to the
//! network's published route set (the same `RouteSet` the skip list's
//! nodes pointed to). The first keys are sorted; after them come up to an
//! eighth as many free slots (at most 256 bytes or 32 keys), where new
//! networks are *appended* in arrival order: a search reads the fence,
//! one run of 8 sorted keys and the few appended ones; a walk merges them
//! in. A leaf's budget is about 8 KiB of keys and pointers (630 IPv4
//! networks of 5-byte keys, 327 IPv6 of 17): a /16 of IPv4 holds at most
//! 511 networks from /16 to /24, so real IPv4 blocks stay one leaf, while
//! IPv6's dense /32s (up to 3,948 networks in the RIS table) split by
//! /24, /32, /40 and so on.
//!
//! # Cost in memory accesses
//! - **A point read** (`get`): the root link (the 512 KiB root stays in
//!   L2 on a busy table), the leaf's header and fence (adjacent lines),
//!   one run of keys, the value's pointer, then the route set: four to
//!   five misses where a skip-list search took one per level (about 28
//!   cold nodes in a million).
//! - **An ordered walk** steps through each leaf's arrays in order and
//!   skips empty root links with a 1-bit-per-block summary (8 KiB).
//! - **Memory**: 13 bytes a network in a leaf for IPv4 (a 5-byte key and
//!   a pointer), 25 for IPv6, plus an eighth more in free slots, the
//!   fence's sixty-fourth and the root's 512 KiB, where a skip-list node
//!   took about 40 bytes.
//!
//! # Concurrency
//! - **Readers** pin an epoch, load links and value pointers with Acquire
//!   and never write, lock, retry or wait.
//! - **Writers** lock the network's *block* (its root link; the locks are
//!   striped over the root, see [`BlockIndex::lock`]) and own everything
//!   under that link while they hold it. A route-set change swaps the
//!   value pointer in place (the leaf is current: only the lock holder
//!   replaces it). Adding a network writes its key and value into the
//!   leaf's next free slot and then publishes the slot count (Release);
//!   a leaf with no free slot (or at its budget) is copied, sorted, with
//!   the new key and fresh free slots, or split, and the copy published
//!   with one Release store into the parent link;
//!   removing one clears its value pointer in place (a *hole*, which
//!   readers take for "absent"). When the lock is released, a leaf whose
//!   holes are more than a quarter of its keys (or all of them) is
//!   compacted, one copy per leaf, and a subtree that fits half a leaf is
//!   merged: a bulk writer walking a block's networks under one hold
//!   publishes each leaf once, and a sparse one (an end-of-RIB's 1%)
//!   copies none.
//!   Replaced leaves and inner nodes, and replaced route sets, are retired
//!   to crossbeam-epoch and freed after every reader pinned before the
//!   replacement has unpinned.
//!
//! A writer only ever writes the current copy: every write starts from
//! the root link under the block's lock, and a copy it replaced is
//! retired, never written again (the index's tests against an ordered
//! map and the engine's differential tests, both with tiny blocks, check
//! it: a write into a replaced copy is a lost update there).

mod leaf;
mod walk;

use std::marker::PhantomData;
use std::ops::Bound;

use crossbeam_epoch::{Guard, Owned, Pointable, Pointer, Shared};

use crate::engine_family::Family;
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering, lock};

use leaf::{Gathered, Inner, Leaf, Link};

/// The shape of an index: how many address bits its root indexes, how many
/// networks a leaf holds before it splits, and how many locks stripe the
/// root. [`Shape::for_family`] is the engine's; tests use tiny ones so
/// copies, splits and merges happen on a few networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Bits of the root (1 to 16).
    pub(crate) top_bits: u32,
    /// Networks a leaf holds before it splits (at least 2).
    pub(crate) leaf_max: usize,
    /// Writer locks over the root's blocks.
    pub(crate) locks: usize,
}

/// A leaf keeps removed networks' slots as holes until more than one key
/// in this many is one (see `BlockLock::compact`).
pub(super) const HOLES_PER_KEY: usize = 4;

/// The bytes a leaf may grow to before it splits.
const LEAF_BUDGET: usize = 8192;

impl Shape {
    /// The engine's shape for family `F`: a /16 root, 8 KiB leaves, 4096
    /// locks (2 blocks, 2 networks a leaf and 2 locks under loom, which
    /// tracks every atomic and lock it is given).
    pub(crate) fn for_family<F: Family>(locks: usize) -> Shape {
        if cfg!(loom) {
            return Shape {
                top_bits: 1,
                leaf_max: 2,
                locks: 2,
            };
        }
        Shape {
            top_bits: 16,
            leaf_max: LEAF_BUDGET / (size_of::<F::Network>() + size_of::<usize>()),
            locks,
        }
    }

    /// This shape with a `top_bits`-bit root and `leaf_max`-network leaves
    /// (clamped to 1..=16 and at least 2).
    pub(crate) fn small(self, top_bits: u32, leaf_max: usize) -> Shape {
        Shape {
            top_bits: top_bits.clamp(1, 16),
            leaf_max: leaf_max.max(2),
            locks: self.locks,
        }
    }
}

/// An ordered map from `F::Network` to a published `V`, read lock-free.
pub(crate) struct BlockIndex<F: Family, V: ?Sized + Pointable> {
    shape: Shape,
    /// One link per block: 0 (empty), a leaf, or an inner node.
    root: Box<[AtomicUsize]>,
    /// A bit per root link, set while the link is not empty: an ordered
    /// walk skips 64 empty blocks a word. Written by the block's writer
    /// (under its lock) with read-modify-writes, as words are shared.
    occupied: Box<[std::sync::atomic::AtomicU64]>,
    locks: Box<[Mutex<()>]>,
    _marker: PhantomData<(F, Box<V>)>,
}

// SAFETY: the index owns its leaves, inner nodes and values (`V`s through
// the pointers in its leaves): it is `Send` and `Sync` exactly when a `V`
// may be sent to and shared with another thread; readers share `V`s and
// writers on any thread drop them (`retire`).
unsafe impl<F: Family, V: ?Sized + Pointable + Send + Sync> Send for BlockIndex<F, V> {}
// SAFETY: as `Send`; every shared mutation goes through atomics, and
// writers serialise per block on `locks`.
unsafe impl<F: Family, V: ?Sized + Pointable + Send + Sync> Sync for BlockIndex<F, V> {}

/// The address bits of `network`, most significant first.
pub(crate) fn path_of<F: Family>(network: &F::Network) -> u128 {
    F::network_path(network)
}

/// The path bits an inner node indexes its children by: 8 (256
/// children); 1 under loom, whose model would otherwise branch on 256
/// links per node walked.
pub(super) const STRIDE: u32 = if cfg!(loom) { 1 } else { 8 };

/// An inner node's children.
pub(super) const FANOUT: usize = 1 << STRIDE;

/// The [`STRIDE`] path bits an inner node at `depth` (bits consumed)
/// indexes by.
fn chunk(path: u128, depth: u32) -> usize {
    debug_assert!(depth <= 128 - STRIDE);
    ((path << depth) >> (128 - STRIDE)) as usize
}

impl<F: Family, V: ?Sized + Pointable> BlockIndex<F, V> {
    pub(crate) fn new(shape: Shape) -> Self {
        let blocks = 1usize << shape.top_bits;
        BlockIndex {
            shape,
            root: (0..blocks).map(|_| AtomicUsize::new(0)).collect(),
            occupied: (0..blocks.div_ceil(64))
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            locks: (0..shape.locks.max(1)).map(|_| Mutex::new(())).collect(),
            _marker: PhantomData,
        }
    }

    /// The block (root link) of `path`.
    fn block_of(&self, path: u128) -> usize {
        (path >> (128 - self.shape.top_bits)) as usize
    }

    /// `network`'s published value, valid while `guard` is pinned.
    pub(crate) fn get<'g>(&self, network: &F::Network, guard: &'g Guard) -> Option<&'g V>
    where
        V: 'g,
    {
        load_value(self.slot(network, guard)?, guard)
    }

    /// `network`'s value slot, if its leaf has the key (the slot may be a
    /// hole), valid while `guard` is pinned.
    fn slot<'g>(
        &self,
        network: &F::Network,
        _guard: &'g Guard,
    ) -> Option<&'g std::sync::atomic::AtomicUsize>
    where
        V: 'g,
    {
        let path = path_of::<F>(network);
        // Acquire (here and for every link and value below) pairs with the
        // writers' Release stores: a node's or value's contents, written
        // before it was linked, are visible to whoever sees the pointer.
        let mut link = Link(self.root[self.block_of(path)].load(Ordering::Acquire));
        let mut depth = self.shape.top_bits;
        loop {
            if let Some(inner) = link.inner() {
                // SAFETY: a link loaded while `_guard` is pinned names a
                // node that is retired, if at all, after our load, so freed
                // only after `_guard` unpins.
                let inner = unsafe { inner.as_ref() };
                link = Link(inner.children[chunk(path, depth)].load(Ordering::Acquire));
                depth += STRIDE;
                continue;
            }
            let leaf = link.leaf()?;
            // SAFETY: as for the inner node above.
            let leaf = unsafe { Leaf::<F, V>::from_ptr(leaf) };
            let i = leaf.find(network)?;
            return Some(&leaf.values()[i]);
        }
    }

    /// Prefetch stage 1 of a writer looking ahead (see `Table::in_chunks`):
    /// the root link of `network`'s block.
    pub(crate) fn prefetch_root(&self, network: &F::Network) {
        let b = self.block_of(path_of::<F>(network));
        crate::fib::prefetch((&raw const self.root[b]).cast());
    }

    /// Prefetch stage 2: follows the (now cached) root link and prefetches
    /// the node under it: a leaf's header and fence, where its search
    /// starts, or an inner node's child link.
    pub(crate) fn prefetch_leaf(&self, network: &F::Network, _guard: &Guard) {
        let path = path_of::<F>(network);
        // Acquire: see `get`.
        let link = Link(self.root[self.block_of(path)].load(Ordering::Acquire));
        if let Some(inner) = link.inner() {
            // SAFETY: loaded under `_guard`: not freed before it unpins.
            let inner = unsafe { inner.as_ref() };
            let child = &inner.children[chunk(path, self.shape.top_bits)];
            crate::fib::prefetch((child as *const AtomicUsize).cast());
        } else if let Some(p) = link.leaf() {
            // SAFETY: as above.
            let leaf = unsafe { Leaf::<F, V>::from_ptr_unread(p) };
            for line in leaf.first_lines() {
                crate::fib::prefetch(line);
            }
        }
    }

    /// Prefetch stage 3: searches the (now cached) leaf and prefetches the
    /// value's first line.
    pub(crate) fn prefetch_value(&self, network: &F::Network, guard: &Guard) {
        let path = path_of::<F>(network);
        // Acquire: see `get`.
        let mut link = Link(self.root[self.block_of(path)].load(Ordering::Acquire));
        let mut depth = self.shape.top_bits;
        while let Some(inner) = link.inner() {
            // SAFETY: as `get`.
            let inner = unsafe { inner.as_ref() };
            link = Link(inner.children[chunk(path, depth)].load(Ordering::Acquire));
            depth += STRIDE;
        }
        let Some(p) = link.leaf() else {
            return;
        };
        // SAFETY: as `get`.
        let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
        if let Some(i) = leaf.find(network) {
            // Relaxed: only the address is used, as a hint.
            let raw = leaf.values()[i].load(std::sync::atomic::Ordering::Relaxed);
            let _ = guard;
            crate::fib::prefetch((raw & !7) as *const u8);
        }
    }

    /// Calls `f` on each network with a value, in network order, from
    /// `start`, until it returns `Some`. Lock-free: a walk sees each leaf
    /// as published when it reached it.
    pub(crate) fn scan<'g, R>(
        &self,
        start: Bound<&F::Network>,
        guard: &'g Guard,
        f: impl FnMut(&F::Network, &'g V) -> Option<R>,
    ) -> Option<R>
    where
        V: 'g,
    {
        walk::Walk {
            index: self,
            guard,
            f,
        }
        .from(start)
    }

    /// Locks `network`'s block for writing (see the module docs). Blocks
    /// share locks (striped: block `b` takes lock `b % locks`, so the
    /// blocks of a sorted walk take different ones in turn); a writer holds
    /// one block at a time, so locks cannot deadlock.
    pub(crate) fn lock(&self, network: &F::Network) -> BlockLock<'_, F, V> {
        let block = self.block_of(path_of::<F>(network));
        BlockLock {
            index: self,
            block,
            _held: lock(&self.locks[block % self.locks.len()]),
            holes: Vec::new(),
            found: std::cell::Cell::new(None),
            finger: std::cell::Cell::new(None),
        }
    }

    /// The block `network` lies in: a writer holding a [`BlockLock`] may
    /// write every network of the same block.
    pub(crate) fn block(&self, network: &F::Network) -> usize {
        self.block_of(path_of::<F>(network))
    }
}

/// The value a slot points to, if any, valid while `guard` is pinned.
fn load_value<'g, V: ?Sized + Pointable + 'g>(
    slot: &std::sync::atomic::AtomicUsize,
    _guard: &'g Guard,
) -> Option<&'g V> {
    // Acquire: see `BlockIndex::get`.
    let raw = slot.load(std::sync::atomic::Ordering::Acquire);
    if raw == 0 {
        return None;
    }
    // SAFETY: a non-zero slot holds a pointer from `Owned::into_usize`,
    // retired (never freed at once) when replaced, so it outlives `guard`,
    // pinned before our load.
    Some(unsafe { Shared::<V>::from_usize(raw).deref() })
}

/// Retires a value replaced in its slot: freed once every reader pinned
/// before the replacement has unpinned.
fn retire_value<V: ?Sized + Pointable>(raw: usize, guard: &Guard) {
    if raw == 0 {
        return;
    }
    // SAFETY: `raw` came from `Owned::into_usize` and is no longer reachable
    // from the index (its slot was overwritten by the caller, holding the
    // block's lock): only readers pinned before can hold it, and the
    // collector runs this after they all unpin.
    unsafe {
        guard.defer_unchecked(move || {
            crate::qsbr::count_free();
            drop(Owned::<V>::from_usize(raw));
        })
    };
}

/// A held block: the writer's handle on every network of one root link.
/// Removals leave holes, compacted when it is dropped (see the module
/// docs).
pub(crate) struct BlockLock<'i, F: Family, V: ?Sized + Pointable> {
    index: &'i BlockIndex<F, V>,
    block: usize,
    _held: MutexGuard<'i, ()>,
    /// The networks this hold removed (a network removed twice in a row is
    /// recorded once): their leaves are looked at for compaction and
    /// merging when the hold ends.
    holes: Vec<F::Network>,
    /// The slot `get` last found a value in: the `set` of the same network
    /// that usually follows (a rewrite of its route set) swaps it there
    /// without a second search. Valid until this lock's next write, which
    /// clears it (only this lock's holder replaces the slot's leaf).
    found: std::cell::Cell<Option<(F::Network, *const std::sync::atomic::AtomicUsize)>>,
    /// The leaf and index `get` last found a network at: only a hint, as
    /// the leaf may have been replaced since (its address is then another
    /// leaf's or none), so a hit is checked against the key.
    finger: std::cell::Cell<Option<(usize, usize)>>,
}

/// Where a network belongs under a held block: the link that holds its
/// leaf (or would), the inner nodes above it and the depth of the leaf.
struct Place<'i> {
    link: &'i AtomicUsize,
    parents: smallvec::SmallVec<[*const Inner; 4]>,
    depth: u32,
    /// The link is a root link.
    at_root: bool,
}

impl<'i, F: Family, V: ?Sized + Pointable> BlockLock<'i, F, V> {
    /// The root block this lock holds.
    pub(crate) fn block(&self) -> usize {
        self.block
    }

    /// `network`'s current value (the writer's view: what it last
    /// published), valid while `guard` is pinned.
    pub(crate) fn get<'g>(&self, network: &F::Network, guard: &'g Guard) -> Option<&'g V>
    where
        V: 'g,
    {
        debug_assert_eq!(self.index.block(network), self.block);
        let place = self.place(path_of::<F>(network));
        // Relaxed: see `place`.
        let p = Link(place.link.load(Ordering::Relaxed)).leaf()?;
        // SAFETY: linked under the held lock: live (see `place`).
        let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
        // A walk in network order finds each network right after the one
        // before in its leaf: try there before searching.
        let next = match self.finger.get() {
            Some((at, i)) if at == p.as_ptr() as usize => Some(i + 1),
            _ => None,
        };
        let i = match next {
            Some(i) if leaf.keys().get(i) == Some(network) => i,
            _ => leaf.find(network)?,
        };
        self.finger.set(Some((p.as_ptr() as usize, i)));
        let slot = &leaf.values()[i];
        let value = load_value(slot, guard)?;
        self.found.set(Some((*network, slot as *const _)));
        Some(value)
    }

    /// Follows `path` from the block's root link to its leaf's link.
    fn place(&self, path: u128) -> Place<'i> {
        let index = self.index;
        let mut link = &index.root[self.block];
        let mut parents = smallvec::SmallVec::new();
        let mut depth = index.shape.top_bits;
        // Relaxed loads: under the block's lock every link below the root
        // link was last written by a holder of this lock, which our lock
        // acquisition ordered before us.
        while let Some(inner) = Link(link.load(Ordering::Relaxed)).inner() {
            parents.push(inner.as_ptr().cast_const());
            // SAFETY: a node linked under the held lock is live (only a
            // holder retires it, and unlinks it first).
            let inner = unsafe { &*inner.as_ptr() };
            link = &inner.children[chunk(path, depth)];
            depth += STRIDE;
        }
        Place {
            link,
            at_root: parents.is_empty(),
            parents,
            depth,
        }
    }

    /// Publishes `value` for `network` (a new one, a replacement or, with
    /// `None`, a removal) and retires the value it replaces. Returns
    /// whether the network had a value.
    pub(crate) fn set(
        &mut self,
        network: &F::Network,
        value: Option<Owned<V>>,
        guard: &Guard,
    ) -> bool {
        debug_assert_eq!(self.index.block(network), self.block);
        if let Some((key, slot)) = self.found.take()
            && key == *network
        {
            // SAFETY: `get` found this slot under this lock, and nothing has
            // written since (a write clears `found`), so its leaf is current
            // and live.
            let slot = unsafe { &*slot };
            let raw = value.map_or(0, Pointer::into_usize);
            // Release: see `BlockIndex::get`.
            let old = slot.swap(raw, std::sync::atomic::Ordering::Release);
            debug_assert_ne!(old, 0, "`get` found a value here");
            retire_value::<V>(old, guard);
            if raw == 0 {
                self.count(&self.place(path_of::<F>(network)), -1);
                if self.holes.last() != Some(network) {
                    self.holes.push(*network);
                }
            }
            return true;
        }
        let path = path_of::<F>(network);
        let place = self.place(path);
        // Relaxed: see `place`.
        let link = Link(place.link.load(Ordering::Relaxed));
        let raw = value.map_or(0, Pointer::into_usize);
        if let Some(leaf) = link.leaf() {
            // SAFETY: linked under the held lock: live (see `place`).
            let leaf = unsafe { Leaf::<F, V>::from_ptr(leaf) };
            if let Some(i) = leaf.find(network) {
                // In place: the leaf is current (we reached it from the
                // root under the lock). Release publishes the value's
                // contents to readers (see `BlockIndex::get`).
                let old = leaf.values()[i].swap(raw, std::sync::atomic::Ordering::Release);
                retire_value::<V>(old, guard);
                match (old != 0, raw != 0) {
                    (true, false) => {
                        self.count(&place, -1);
                        if self.holes.last() != Some(network) {
                            self.holes.push(*network);
                        }
                    }
                    (false, true) => self.count(&place, 1),
                    _ => {}
                }
                return old != 0;
            }
        }
        if raw == 0 {
            return false;
        }
        // A new network: appended to its leaf if it has room, else the
        // leaf copied (sorted, holes dropped) with one key more.
        if let Some(leaf) = link.leaf() {
            // SAFETY: as above.
            let leaf = unsafe { Leaf::<F, V>::from_ptr(leaf) };
            if leaf.append(*network, raw, self.index.shape.leaf_max) {
                self.count(&place, 1);
                return false;
            }
        }
        let existing = link.leaf().map(|p| {
            // SAFETY: as above.
            unsafe { Leaf::<F, V>::from_ptr(p) }
        });
        let mut entries = Gathered::<F>::new();
        if let Some(l) = &existing {
            l.live_entries(&mut entries);
        }
        let at = entries.partition_point(|(k, _)| k < network);
        entries.insert(at, (*network, raw));
        let new = self.build(&entries, place.depth);
        self.replace_link(&place, new, guard);
        self.count(&place, 1);
        false
    }

    /// Adds `delta` to the network count of every inner node above `place`.
    fn count(&self, place: &Place<'_>, delta: isize) {
        for &p in &place.parents {
            // SAFETY: linked under the held lock: live (see `place`).
            let inner = unsafe { &*p };
            inner.add(delta);
        }
    }

    /// A link to a node holding `entries` (sorted, each with a value) at
    /// `depth`: empty, one leaf, or split by the next 8 bits when they
    /// outgrow a leaf and the address has bits left.
    fn build(&self, entries: &[(F::Network, usize)], depth: u32) -> Link {
        if entries.is_empty() {
            return Link(0);
        }
        // No split at or past the address width (a leaf there holds at
        // most one network per length), nor where the next stride would
        // run past the path's 128 bits (a small root's odd depths).
        if entries.len() <= self.index.shape.leaf_max
            || depth >= F::NETWORK_WIDTH
            || depth + STRIDE > 128
        {
            return Link::of_leaf(Leaf::<F, V>::alloc(entries));
        }
        let inner = Inner::new(entries.len());
        let mut rest = entries;
        while let Some((first, _)) = rest.first() {
            let c = chunk(path_of::<F>(first), depth);
            let n = rest.partition_point(|(k, _)| chunk(path_of::<F>(k), depth) == c);
            let child = self.build(&rest[..n], depth + STRIDE);
            // Relaxed: the inner node is not yet published; its own
            // publication (Release) orders these stores before any reader.
            inner.children[c].store(child.0, Ordering::Relaxed);
            rest = &rest[n..];
        }
        Link::of_inner(inner)
    }

    /// Publishes `new` in `place`'s link and retires what it replaces (the
    /// node only: the values moved into `new`).
    fn replace_link(&self, place: &Place<'_>, new: Link, guard: &Guard) {
        // Relaxed: the lock holder wrote it last.
        let was_empty = place.link.load(Ordering::Relaxed) == 0;
        let summary = place.at_root.then(|| {
            (
                &self.index.occupied[self.block / 64],
                1u64 << (self.block % 64),
            )
        });
        // The block's summary bit is set before its first node is linked
        // and cleared after its last is unlinked, so a set link always has
        // its bit (see `walk`); a bit over an empty link costs a walk one
        // load. Release: the walk's Acquire load of the word then sees
        // whatever this writer published before.
        if let Some((word, bit)) = summary
            && new.0 != 0
            && was_empty
        {
            word.fetch_or(bit, std::sync::atomic::Ordering::Release);
        }
        // Release: see `BlockIndex::get`.
        let old = Link(place.link.swap(new.0, Ordering::Release));
        if let Some((word, bit)) = summary
            && new.0 == 0
        {
            word.fetch_and(!bit, std::sync::atomic::Ordering::Release);
        }
        old.retire::<F, V>(guard);
    }

    /// Compacts the holes of the leaf holding `network`'s path, merging
    /// the nearest inner node above it whose networks now fit half a leaf.
    fn compact(&self, network: &F::Network, guard: &Guard) {
        let path = path_of::<F>(network);
        let mut place = self.place(path);
        // The topmost inner node small enough to merge, if any: its whole
        // subtree becomes one leaf.
        let half = self.index.shape.leaf_max / 2;
        let merge_at = place.parents.iter().position(|&p| {
            // SAFETY: linked under the held lock: live.
            unsafe { &*p }.count() <= half
        });
        let mut entries = Gathered::<F>::new();
        if let Some(i) = merge_at {
            // The link that holds that inner node: its parent's child slot,
            // or the root link.
            let depth = self.index.shape.top_bits + STRIDE * i as u32;
            let link: &AtomicUsize = if i == 0 {
                &self.index.root[self.block]
            } else {
                // SAFETY: linked under the held lock: live.
                let parent = unsafe { &*place.parents[i - 1] };
                &parent.children[chunk(path, depth - STRIDE)]
            };
            // Relaxed: see `place`.
            Link(link.load(Ordering::Relaxed)).collect::<F, V>(&mut entries);
            place = Place {
                link,
                at_root: i == 0,
                parents: place.parents[..i].into(),
                depth,
            };
        } else {
            // Relaxed: see `place`.
            let link = Link(place.link.load(Ordering::Relaxed));
            let Some(leaf) = link.leaf() else {
                return;
            };
            // SAFETY: linked under the held lock: live.
            let leaf = unsafe { Leaf::<F, V>::from_ptr(leaf) };
            // Holes are left while they are few: a sparse sweep (an
            // end-of-RIB's 1%) then copies no leaf at all. A leaf is
            // compacted once more than one key in [`HOLES_PER_KEY`] is a
            // hole, or all are.
            let (holes, keys) = (leaf.holes(), leaf.keys().len());
            if holes == 0 || (holes < keys && holes * HOLES_PER_KEY <= keys) {
                return;
            }
            leaf.live_entries(&mut entries);
        }
        let new = self.build(&entries, place.depth);
        self.replace_link(&place, new, guard);
    }

    /// Compacts every hole this hold left (also done on drop).
    pub(crate) fn flush(&mut self, guard: &Guard) {
        self.found.set(None);
        let holes = std::mem::take(&mut self.holes);
        for n in &holes {
            self.compact(n, guard);
        }
        self.holes = holes;
        self.holes.clear();
    }
}

impl<F: Family, V: ?Sized + Pointable> Drop for BlockLock<'_, F, V> {
    fn drop(&mut self) {
        if !self.holes.is_empty() {
            let guard = crossbeam_epoch::pin();
            self.flush(&guard);
        }
    }
}

impl<F: Family, V: ?Sized + Pointable> Drop for BlockIndex<F, V> {
    fn drop(&mut self) {
        for link in self.root.iter() {
            // `&mut self`: no reader or writer can reach the index any more,
            // so its nodes and values are ours to free at once.
            Link(link.load(Ordering::Relaxed)).free_all::<F, V>();
        }
    }
}

/// The index's invariants, for `Table::verify`: keys sorted and in their
/// block and child, leaves within budget (or at full depth), inner counts
/// exact, no hole and no empty node outside a write, the summary bits set
/// exactly over non-empty blocks. Returns the number of networks.
impl<F: Family, V: ?Sized + Pointable> BlockIndex<F, V> {
    pub(crate) fn check(&self) -> Result<usize, String> {
        let mut total = 0;
        for (b, link) in self.root.iter().enumerate() {
            let link = Link(link.load(Ordering::Acquire));
            // Relaxed: `check` runs at quiescence.
            let bit = self.occupied[b / 64].load(std::sync::atomic::Ordering::Relaxed)
                & (1 << (b % 64))
                != 0;
            if bit != (link.0 != 0) {
                return Err(format!(
                    "block {b}: summary bit {bit} over link {:#x}",
                    link.0
                ));
            }
            let prefix = (b as u128) << (128 - self.shape.top_bits);
            total += link.check::<F, V>(self.shape, prefix, self.shape.top_bits)?;
        }
        Ok(total)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
