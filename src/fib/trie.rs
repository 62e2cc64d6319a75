//! The compiled longest-prefix-match trie behind [`LpmFib`](super::LpmFib).
//!
//! # Layout (poptrie family)
//! - **Top level**: a direct-indexed array of `2^T` atomic words, indexed by
//!   the address's first `T` bits (T = 18 for IPv4: 2 MiB; 16 for IPv6).
//!   A word is `0` (no route), a *leaf* (`leaf << 32 | 1`: the longest
//!   prefix of length <= T covering the slot), or a pointer to a *node*.
//! - **Nodes** consume 6 address bits each (64 slots) and are
//!   popcount-compressed: `child_bits` marks slots with a child node, whose
//!   pointers are stored densely; `leaf_bits` marks where a run of equal
//!   leaf values starts, and only run heads are stored. A node's slot value
//!   is the longest prefix *ending in that node* that covers the slot, so a
//!   change never has to be pushed down into child nodes. A node directly
//!   under the top level also carries the top-level leaf of its slot.
//! - **Leaves** are 32 bits: an interned next-hop id (24 bits) and the
//!   matched prefix length (8 bits), so the matched prefix is rebuilt from
//!   the address.
//!
//! # Cost model
//! A lookup reads one top-level word; if it is a node, it reads per level
//! one node header (two bitmaps), one leaf word and, when descending, one
//! child pointer, all within the node's single allocation. For the RIS
//! IPv4 table (every prefix is /24 or shorter) that is at most **two
//! dependent memory accesses** (top word, one node) plus the next-hop table
//! (a few KiB, cache-resident); longer prefixes add one node per 6 bits.
//! IPv6 /48s take the top word and up to six nodes. DIR-24-8 takes one
//! access (two for prefixes longer than /24) into 64 MiB.
//!
//! # Updates
//! Nodes are immutable once published. A writer (serialised by the FIB's
//! writer lock) rebuilds the nodes on the path from the top slot to the
//! node where the prefix ends (path copying; siblings are shared), publishes
//! the new path with one atomic store into the top-level word, and retires
//! the replaced nodes to crossbeam-epoch. A prefix of length <= T rewrites
//! the top-level words it covers whose longest match changes (a root node
//! is copied shallowly to carry the new top-level leaf). Nothing is ever
//! rebuilt wholesale. Each retired node is freed by its own deferred
//! function, so the collector frees garbage in small bounded steps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_epoch::Guard;

use crate::prefix::AddrBits as Word;

const STRIDE: u32 = 6;
const SLOTS: usize = 1 << STRIDE;

/// Rank of slot `v` among the set bits of `bits` up to and including `v`.
#[inline(always)]
fn rank_incl(bits: u64, v: usize) -> usize {
    (bits << (63 - v)).count_ones() as usize
}

// Node words: [child_bits, leaf_bits, meta, leaves (2 per word).., children.., owned prefixes..]
// Leaves come first so a lookup that ends in this node (the common case)
// finds its leaf without first counting the children.
const W_CHILD: usize = 0;
const W_LEAF: usize = 1;
const W_META: usize = 2;
const HEADER: usize = 3;

/// A prefix ending in a node: its length and first slot, and its leaf.
/// Kept in the node's writer section; lookups never read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owned {
    len: u8,
    slot: u8,
    leaf: u32,
}

impl Owned {
    fn pack(self) -> u64 {
        self.len as u64 | (self.slot as u64) << 8 | (self.leaf as u64) << 32
    }
    fn unpack(w: u64) -> Owned {
        Owned {
            len: w as u8,
            slot: (w >> 8) as u8,
            leaf: (w >> 32) as u32,
        }
    }
}

/// A node being rebuilt: the decoded contents.
struct NodeBuf {
    top_leaf: u32,
    children: [u64; SLOTS],
    owned: Vec<Owned>,
}

/// Reads a node's words. Nodes are `Box<[u64]>` allocations turned into
/// raw pointers; the length is recomputed from the header.
#[derive(Clone, Copy)]
struct NodeRef(*const u64);

impl NodeRef {
    /// # Safety
    /// `self.0` must point to a live node (see `Trie` for why it is).
    #[inline(always)]
    unsafe fn word(self, i: usize) -> u64 {
        // SAFETY: the caller guarantees a live node and `i` is within it by
        // construction of the layout.
        unsafe { *self.0.add(i) }
    }

    /// # Safety
    /// As for `word`.
    unsafe fn len_words(self) -> usize {
        // SAFETY: forwarded.
        unsafe {
            let c = self.word(W_CHILD).count_ones() as usize;
            let l = self.word(W_LEAF).count_ones() as usize;
            let o = (self.word(W_META) >> 32) as usize;
            HEADER + c + l.div_ceil(2) + o
        }
    }

    /// The owned prefixes, read in place.
    ///
    /// # Safety
    /// As for `word`, for as long as the iterator is used.
    unsafe fn owned(self) -> impl Iterator<Item = Owned> {
        // SAFETY: forwarded; the owned section ends the node.
        unsafe {
            let c = self.word(W_CHILD).count_ones() as usize;
            let l = self.word(W_LEAF).count_ones() as usize;
            let start = HEADER + c + l.div_ceil(2);
            let n = (self.word(W_META) >> 32) as usize;
            // SAFETY: `start + i` is inside the node for i < n.
            (0..n).map(move |i| Owned::unpack(self.word(start + i)))
        }
    }

    /// # Safety
    /// As for `word`.
    unsafe fn decode(self) -> NodeBuf {
        // SAFETY: forwarded; all indices stay inside the node.
        unsafe {
            let child_bits = self.word(W_CHILD);
            let meta = self.word(W_META);
            let c = child_bits.count_ones() as usize;
            let l = self.word(W_LEAF).count_ones() as usize;
            let mut children = [0u64; SLOTS];
            let mut k = 0;
            for (v, child) in children.iter_mut().enumerate() {
                if child_bits >> v & 1 == 1 {
                    *child = self.word(HEADER + l.div_ceil(2) + k);
                    k += 1;
                }
            }
            let owned_start = HEADER + c + l.div_ceil(2);
            let owned = (0..(meta >> 32) as usize)
                .map(|i| Owned::unpack(self.word(owned_start + i)))
                .collect();
            NodeBuf {
                top_leaf: meta as u32,
                children,
                owned,
            }
        }
    }

    /// Frees the node (not its children).
    ///
    /// # Safety
    /// The node must be unreachable by readers that could still use it
    /// (its grace period has passed, or the trie is being dropped).
    unsafe fn free(self) {
        // SAFETY: forwarded; the allocation was a Box<[u64]> of exactly
        // `len_words` words (see `NodeBuf::encode`).
        unsafe {
            let len = self.len_words();
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.0 as *mut u64,
                len,
            )));
        }
    }
}

impl NodeBuf {
    fn empty(top_leaf: u32) -> NodeBuf {
        NodeBuf {
            top_leaf,
            children: [0; SLOTS],
            owned: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.children.iter().all(|c| *c == 0)
    }

    /// The slot values: each slot's longest owned prefix (0 if none).
    fn slot_values(&self, node_end: u32) -> [u32; SLOTS] {
        let mut vals = [0u32; SLOTS];
        let mut owned = self.owned.clone();
        owned.sort_by_key(|o| o.len);
        for o in owned {
            let count = 1usize << (node_end - o.len as u32);
            for v in &mut vals[o.slot as usize..o.slot as usize + count] {
                *v = o.leaf;
            }
        }
        vals
    }

    /// Encodes into one allocation; returns the pointer and its size in words.
    fn encode(&self, node_end: u32) -> (*const u64, usize) {
        let vals = self.slot_values(node_end);
        let mut child_bits = 0u64;
        let mut leaf_bits = 0u64;
        let mut words = vec![0u64; HEADER];
        let mut leaves = Vec::new();
        for v in 0..SLOTS {
            if v == 0 || vals[v] != vals[v - 1] {
                leaf_bits |= 1 << v;
                leaves.push(vals[v]);
            }
        }
        for pair in leaves.chunks(2) {
            words.push(pair[0] as u64 | (pair.get(1).copied().unwrap_or(0) as u64) << 32);
        }
        for (v, c) in self.children.iter().enumerate() {
            if *c != 0 {
                child_bits |= 1 << v;
                words.push(*c);
            }
        }
        words.extend(self.owned.iter().map(|o| o.pack()));
        words[W_CHILD] = child_bits;
        words[W_LEAF] = leaf_bits;
        words[W_META] = self.top_leaf as u64 | (self.owned.len() as u64) << 32;
        let len = words.len();
        (Box::into_raw(words.into_boxed_slice()) as *const u64, len)
    }
}

/// The trie's shared part: everything lookups read. Addresses are passed
/// as their [`Word`].
pub(crate) struct Trie<W> {
    _word: std::marker::PhantomData<W>,
    /// Bits of the direct top level.
    top_bits: u32,
    top: Box<[AtomicU64]>,
    /// Words allocated in nodes (for memory accounting).
    node_words: AtomicUsize,
    nodes: AtomicUsize,
}

/// What a top-level word holds.
#[inline(always)]
fn top_leaf_word(leaf: u32) -> u64 {
    if leaf == 0 {
        0
    } else {
        (leaf as u64) << 32 | 1
    }
}

/// The writer's shadow of the top level: per length 0..=T, network -> leaf.
/// Guarded by the FIB's writer lock.
pub(crate) struct TrieShadow<W> {
    top_prefixes: Vec<HashMap<W, u32>>,
}

impl<W: Word> TrieShadow<W> {
    pub(crate) fn new(top_bits: u32) -> Self {
        TrieShadow {
            top_prefixes: (0..=top_bits).map(|_| HashMap::new()).collect(),
        }
    }

    /// Bytes held (approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.top_prefixes.iter().map(|m| m.capacity() * 24).sum()
    }
}

impl<W: Word> Trie<W> {
    pub(crate) fn new(top_bits: u32) -> Self {
        Trie {
            _word: std::marker::PhantomData,
            top_bits,
            top: (0..1usize << top_bits).map(|_| AtomicU64::new(0)).collect(),
            node_words: AtomicUsize::new(0),
            nodes: AtomicUsize::new(0),
        }
    }

    /// The leaf of the longest prefix covering `a` (0 if none).
    ///
    /// The caller must be pinned (crossbeam-epoch) for as long as it uses
    /// the result's next-hop id.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: W) -> u32 {
        let e = self.top_word(a);
        // SAFETY: `e` was just loaded from the top level and the caller is
        // pinned.
        unsafe { self.finish(e, a) }
    }

    /// The top-level word for `a`.
    #[inline(always)]
    pub(crate) fn top_word(&self, a: W) -> u64 {
        // Acquire pairs with the writer's Release stores into the top level:
        // a node (and every node below it) is fully written before its
        // pointer is stored.
        self.top[a.top(self.top_bits)].load(Ordering::Acquire)
    }

    /// Completes a lookup from its top-level word.
    ///
    /// # Safety
    /// `e` must have been loaded by `top_word` while the caller has been
    /// pinned ever since: nodes are freed only a grace period after being
    /// unlinked, so the node it names (and every node below) is live.
    #[inline(always)]
    pub(crate) unsafe fn finish(&self, e: u64, a: W) -> u32 {
        if e & 1 == 1 || e == 0 {
            return (e >> 32) as u32;
        }
        // SAFETY: the caller's contract.
        unsafe { Self::descend(NodeRef(e as *const u64), a, self.top_bits) }
    }

    /// The leaf of exactly `a/len` (writer side: the caller holds the
    /// writer lock, so no node it reads is retired meanwhile).
    pub(crate) fn exact(&self, shadow: &TrieShadow<W>, a: W, len: u32) -> u32 {
        if len <= self.top_bits {
            shadow.top_prefixes[len as usize]
                .get(&Self::net(a, len))
                .copied()
                .unwrap_or(0)
        } else {
            self.find_deep(a, len)
        }
    }

    /// Walks the nodes below a top-level word.
    ///
    /// # Safety
    /// `node` must be live for the duration (the caller is pinned).
    #[inline(always)]
    unsafe fn descend(mut node: NodeRef, a: W, top_bits: u32) -> u32 {
        // SAFETY: every node read is live (caller's contract).
        unsafe {
            let mut best = node.word(W_META) as u32;
            let mut offset = top_bits;
            loop {
                let (b, next) = Self::step(node, a, offset, best);
                best = b;
                if next.is_null() {
                    return best;
                }
                node = NodeRef(next);
                offset += STRIDE;
            }
        }
    }

    /// One level of a lookup at `node` (whose stride starts at `offset`):
    /// the improved best leaf, and the child to descend to (null: done).
    ///
    /// # Safety
    /// `node` must be live (the caller is pinned).
    #[inline(always)]
    unsafe fn step(node: NodeRef, a: W, offset: u32, mut best: u32) -> (u32, *const u64) {
        // SAFETY: the caller's contract; the indices computed from the
        // node's bitmaps stay within it.
        unsafe {
            let v = a.chunk(offset);
            let leaf_bits = node.word(W_LEAF);
            let li = rank_incl(leaf_bits, v) - 1;
            let leaf = (node.word(HEADER + li / 2) >> (32 * (li & 1))) as u32;
            if leaf != 0 {
                best = leaf;
            }
            let child_bits = node.word(W_CHILD);
            if child_bits >> v & 1 == 0 {
                return (best, std::ptr::null());
            }
            let l = leaf_bits.count_ones() as usize;
            (
                best,
                node.word(HEADER + l.div_ceil(2) + rank_incl(child_bits, v) - 1) as *const u64,
            )
        }
    }

    /// Looks up a group of addresses with their walks interleaved level by
    /// level: every level issues the group's node loads together (after
    /// prefetching them), so up to `leaves.len()` cache misses are in
    /// flight at once instead of one walk's worth.
    ///
    /// # Safety
    /// The caller must be pinned for the duration.
    #[inline(always)]
    pub(crate) unsafe fn lookup_group(&self, addrs: &[W], leaves: &mut [u32]) {
        const MAX: usize = 32;
        let n = addrs.len().min(leaves.len()).min(MAX);
        let mut nodes = [std::ptr::null::<u64>(); MAX];
        for i in 0..n {
            let e = self.top_word(addrs[i]);
            if e & 1 == 1 || e == 0 {
                leaves[i] = (e >> 32) as u32;
            } else {
                nodes[i] = e as *const u64;
                prefetch(nodes[i] as *const u8);
            }
        }
        // Root nodes carry the top-level leaf of their slot.
        for i in 0..n {
            if !nodes[i].is_null() {
                // SAFETY: loaded from the top level while pinned.
                leaves[i] = unsafe { NodeRef(nodes[i]).word(W_META) } as u32;
            }
        }
        let mut offset = self.top_bits;
        let mut active = nodes[..n].iter().any(|p| !p.is_null());
        while active {
            active = false;
            for i in 0..n {
                if nodes[i].is_null() {
                    continue;
                }
                // SAFETY: reached from the top level while pinned.
                let (best, next) =
                    unsafe { Self::step(NodeRef(nodes[i]), addrs[i], offset, leaves[i]) };
                leaves[i] = best;
                nodes[i] = next;
                if !next.is_null() {
                    prefetch(next as *const u8);
                    active = true;
                }
            }
            offset += STRIDE;
        }
    }

    /// Prefetches the top-level word of `a` (for batched lookups).
    #[inline(always)]
    pub(crate) fn prefetch_top(&self, a: W) {
        prefetch(self.top[a.top(self.top_bits)].as_ptr() as *const u8);
    }

    /// Sets (`leaf != 0`) or removes (`leaf == 0`) the prefix `a/len`.
    /// Returns the leaf it replaced (0 if none). Callers serialise writes.
    pub(crate) fn update(
        &self,
        shadow: &mut TrieShadow<W>,
        a: W,
        len: u32,
        leaf: u32,
        guard: &Guard,
    ) -> u32 {
        if len <= self.top_bits {
            self.update_top(shadow, a, len, leaf, guard)
        } else {
            self.update_deep(a, len, leaf, guard)
        }
    }

    fn net(a: W, len: u32) -> W {
        a.network(len)
    }

    /// The longest top-level prefix shorter than `len` covering `net`.
    fn top_fallback(shadow: &TrieShadow<W>, net: W, len: u32) -> u32 {
        (0..len)
            .rev()
            .find_map(|l| {
                shadow.top_prefixes[l as usize]
                    .get(&Self::net(net, l))
                    .copied()
            })
            .unwrap_or(0)
    }

    /// The top-level leaf of slot `s` and the root node there, if any.
    fn top_slot(&self, s: usize) -> (u32, Option<NodeRef>) {
        let e = self.top[s].load(Ordering::Relaxed); // only the writer stores
        if e & 1 == 1 || e == 0 {
            ((e >> 32) as u32, None)
        } else {
            let n = NodeRef(e as *const u64);
            // SAFETY: the writer only reads nodes it has not retired.
            (unsafe { n.word(W_META) as u32 }, Some(n))
        }
    }

    fn update_top(
        &self,
        shadow: &mut TrieShadow<W>,
        a: W,
        len: u32,
        leaf: u32,
        guard: &Guard,
    ) -> u32 {
        let net = Self::net(a, len);
        let old = if leaf == 0 {
            shadow.top_prefixes[len as usize].remove(&net)
        } else {
            shadow.top_prefixes[len as usize].insert(net, leaf)
        }
        .unwrap_or(0);
        if old == leaf {
            return old;
        }
        // Within the prefix's slots, a slot's longest top-level match is the
        // prefix itself unless a longer top-level prefix covers the slot;
        // leaves carry their length, so no slot needs a search. On removal,
        // every slot the prefix held falls back to the same shorter prefix.
        let fallback = if leaf == 0 {
            Self::top_fallback(shadow, net, len)
        } else {
            0
        };
        let first = net.top(self.top_bits);
        for s in first..first + (1usize << (self.top_bits - len)) {
            let (cur, root) = self.top_slot(s);
            let cur_len = cur & 0xff;
            let want = if leaf != 0 {
                if cur != 0 && cur_len > len {
                    continue;
                } else {
                    leaf
                }
            } else if cur != 0 && cur_len == len {
                fallback
            } else {
                continue;
            };
            match root {
                None => self.top[s].store(top_leaf_word(want), Ordering::Release), // Release: see `lookup`
                Some(node) => {
                    // SAFETY: the writer only reads nodes it has not retired.
                    let mut buf = unsafe { node.decode() };
                    buf.top_leaf = want;
                    self.replace_root(s, node, buf, guard);
                }
            }
        }
        old
    }

    /// The leaf of exactly `a/len` (len > T) in the nodes, 0 if absent.
    fn find_deep(&self, a: W, len: u32) -> u32 {
        let (_, mut node) = self.top_slot(a.top(self.top_bits));
        let mut start = self.top_bits;
        while let Some(n) = node {
            if len <= start + STRIDE {
                let first = Self::net(a, len).chunk(start) as u8;
                // SAFETY: the writer only reads nodes it has not retired;
                // the owned section lies within the node.
                return unsafe { n.owned() }
                    .find(|o| o.len as u32 == len && o.slot == first)
                    .map_or(0, |o| o.leaf);
            }
            // SAFETY: as above.
            let (child_bits, leaf_bits) = unsafe { (n.word(W_CHILD), n.word(W_LEAF)) };
            let v = a.chunk(start);
            let base = HEADER + (leaf_bits.count_ones() as usize).div_ceil(2);
            node = (child_bits >> v & 1 == 1)
                // SAFETY: as above; the index is within the node.
                .then(|| {
                    NodeRef(unsafe { n.word(base + rank_incl(child_bits, v) - 1) } as *const u64)
                });
            start += STRIDE;
        }
        0
    }

    fn update_deep(&self, a: W, len: u32, leaf: u32, guard: &Guard) -> u32 {
        let old = self.find_deep(a, len);
        if old == leaf {
            return old;
        }
        let s = a.top(self.top_bits);
        let (top_leaf, root) = self.top_slot(s);
        let mut retired = Vec::new();
        match self.rebuild(root, self.top_bits, a, len, leaf, top_leaf, &mut retired) {
            // Release: see `lookup`.
            Some(p) => self.top[s].store(p as u64, Ordering::Release),
            // No more-specifics left in the slot: back to a plain leaf.
            None => self.top[s].store(top_leaf_word(top_leaf), Ordering::Release),
        }
        self.retire(retired, guard);
        old
    }

    /// Rebuilds the node at bit offset `start` (None: absent) with the
    /// prefix set or removed; returns the new node, or None if it ends up
    /// empty. The replaced node is pushed to `retired`. The caller has
    /// checked that the update changes something.
    #[allow(clippy::too_many_arguments)]
    fn rebuild(
        &self,
        node: Option<NodeRef>,
        start: u32,
        a: W,
        len: u32,
        leaf: u32,
        top_leaf: u32,
        retired: &mut Vec<NodeRef>,
    ) -> Option<*const u64> {
        let end = start + STRIDE;
        let mut buf = match node {
            // SAFETY: the writer only reads nodes it has not retired.
            Some(n) => unsafe { n.decode() },
            None => NodeBuf::empty(if start == self.top_bits { top_leaf } else { 0 }),
        };
        if len <= end {
            let first = Self::net(a, len).chunk(start) as u8;
            buf.owned
                .retain(|o| !(o.len as u32 == len && o.slot == first));
            if leaf != 0 {
                buf.owned.push(Owned {
                    len: len as u8,
                    slot: first,
                    leaf,
                });
            }
        } else {
            let v = a.chunk(start);
            let child = (buf.children[v] != 0).then(|| NodeRef(buf.children[v] as *const u64));
            buf.children[v] = self
                .rebuild(child, end, a, len, leaf, top_leaf, retired)
                .map_or(0, |p| p as u64);
        }
        if let Some(n) = node {
            retired.push(n);
        }
        if buf.is_empty() {
            return None;
        }
        Some(self.encode(&buf, end))
    }

    fn encode(&self, buf: &NodeBuf, end: u32) -> *const u64 {
        let (p, words) = buf.encode(end);
        // Relaxed: statistics, written by the single writer.
        self.nodes.fetch_add(1, Ordering::Relaxed);
        self.node_words.fetch_add(words, Ordering::Relaxed);
        p
    }

    fn replace_root(&self, s: usize, old: NodeRef, buf: NodeBuf, guard: &Guard) {
        let p = self.encode(&buf, self.top_bits + STRIDE);
        // Release: see `lookup`.
        self.top[s].store(p as u64, Ordering::Release);
        self.retire(vec![old], guard);
    }

    fn retire(&self, nodes: Vec<NodeRef>, guard: &Guard) {
        for n in nodes {
            // SAFETY: still live (only now handed to the collector).
            let words = unsafe { n.len_words() };
            // Relaxed: statistics, written by the single writer.
            self.nodes.fetch_sub(1, Ordering::Relaxed);
            self.node_words.fetch_sub(words, Ordering::Relaxed);
            let p = n.0 as usize;
            // SAFETY: `n` was unlinked before this call (the new path or
            // leaf is already published), so only readers pinned before now
            // can hold it; the collector runs this after they unpin.
            unsafe { guard.defer_unchecked(move || NodeRef(p as *const u64).free()) };
        }
    }

    /// Bytes held by the lookup structure: the top level and the nodes
    /// (counting 16 bytes of allocator overhead per node).
    pub(crate) fn memory_bytes(&self) -> usize {
        // Relaxed: statistics.
        self.top.len() * 8
            + self.node_words.load(Ordering::Relaxed) * 8
            + self.nodes.load(Ordering::Relaxed) * 16
    }

    /// Number of live nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.load(Ordering::Relaxed)
    }
}

impl<W> Drop for Trie<W> {
    fn drop(&mut self) {
        fn free_tree(n: NodeRef) {
            // SAFETY: dropping the trie: no reader remains, every node is
            // reachable exactly once from the top level.
            unsafe {
                let child_bits = n.word(W_CHILD);
                let base = HEADER + (n.word(W_LEAF).count_ones() as usize).div_ceil(2);
                for k in 0..child_bits.count_ones() as usize {
                    free_tree(NodeRef(n.word(base + k) as *const u64));
                }
                n.free();
            }
        }
        for e in self.top.iter() {
            let e = e.load(Ordering::Relaxed);
            if e != 0 && e & 1 == 0 {
                free_tree(NodeRef(e as *const u64));
            }
        }
    }
}

/// Hints the CPU to fetch the line at `p`; never faults.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never dereferences or faults, whatever `p`.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
