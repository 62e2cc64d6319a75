//! IPv4's forwarding core: a direct-indexed top level of 2^20 entries over
//! 16-way, uncompressed, leaf-pushed nodes (a DIR-20-4-4-4 multibit trie).
//!
//! # Why IPv4 gets its own core
//! The poptrie-style [`Trie`](super::trie::Trie) reads a node's header to
//! find where a slot's leaf is (popcount over a bitmap), so a lookup that
//! ends in a node costs three dependent accesses (top entry, header, leaf
//! line) and some forty instructions of bookkeeping. An IPv4 table is
//! dense enough below /20 that the slots need no compression: a node is
//! sixteen 32-bit entries (one cache line's worth), indexed directly by
//! the next 4 address bits. A lookup is then DIR-24-8's own loop, with
//! one level more: **one top-level entry and one node entry per 4 bits
//! beyond /20**, every address computed from the previous entry alone. For
//! the RIS table (every prefix /24 or shorter) that is exactly two
//! accesses, into 4 MiB of top level plus ~10 MiB of nodes rather than 64
//! MiB.
//!
//! # Entries
//! A top-level entry and a node slot are the same 32-bit *entry*: `0` (no
//! route); a leaf, `(next-hop id << 6 | length) << 1`; or a node,
//! `arena id << 1 | 1`. Nodes are **leaf-pushed**: a slot without a
//! longer match holds the match inherited from above, so a lookup never
//! remembers a "best so far" and stops at the first leaf.
//!
//! # Node layout (32-bit words)
//! `[16 slot entries][inherited leaf][owned bitmap][owned leaves..]`: the
//! slots are all a lookup reads. The rest is the writer's: the leaf pushed
//! into empty slots, and the prefixes ending in the node (at most 30: 2 of
//! length +1, 4 of +2, 8 of +3, 16 of +4), listed in bitmap order.
//!
//! # Updates
//! As in the trie: path copying under the FIB's writer lock, publication
//! by one Release store (top entry or parent node slot, the parent being
//! itself freshly copied), replaced nodes retired through the FIB's QSBR
//! domain (`crate::qsbr`) into the arena. A change of a prefix of length <= 20 rewrites the top
//! entries it covers and re-pushes its leaf into the nodes below them; a
//! deeper change copies the nodes on its path and re-pushes into the
//! children of the slots whose match changed. Nothing is rebuilt
//! wholesale, but leaf pushing has its price: a short prefix shows through
//! in every node below it that has no longer match of its own, so adding or
//! removing a default route over the RIS table copies most of the ~150 k
//! nodes (40-50 ms measured; readers go on unaffected on the old nodes),
//! while a /8 touches only the nodes under it.

use std::sync::atomic::Ordering;

use super::{FibLimbo, Garbage};
use smallvec::SmallVec;

use super::arena::{Block, NodeStore};

/// The direct core's allocation unit in words (see `arena::NodeArena`).
const UNIT_WORDS: usize = 2;
use super::pages::ZeroedWords;
use super::trie::{TrieShadow, prefetch};
use crate::prefix::AddrBits as Word;

/// Bits of the direct top level.
pub(crate) const TOP_BITS: u32 = 20;
const STRIDE: u32 = 4;
const SLOTS: usize = 1 << STRIDE;
/// Node levels below the top: /21../24, /25../28, /29../32.
const LEVELS: u32 = 3;
/// 32-bit words before the owned leaves: slots, inherited, bitmap.
const W_INHERITED: usize = SLOTS;
const W_BITMAP: usize = SLOTS + 1;
const FIXED: usize = SLOTS + 2;
/// Possible prefixes ending in a node: 2 + 4 + 8 + 16.
const OWNABLE: usize = 30;

/// The entry of a leaf (`id << 8 | len`, 0 = none).
#[inline(always)]
fn leaf_entry(leaf: u32) -> u32 {
    ((leaf >> 8) << 6 | (leaf & 0x3f)) << 1
}

/// The leaf of a leaf entry (0 stays 0).
#[inline(always)]
fn entry_leaf(e: u32) -> u32 {
    let x = e >> 1;
    (x >> 6) << 8 | (x & 0x3f)
}

#[inline(always)]
fn is_node(e: u32) -> bool {
    e & 1 == 1
}

/// Bit of the owned bitmap for a prefix `r` bits (1..=4) into a node,
/// whose first `r` stride bits are `j`.
#[inline(always)]
fn owned_bit(r: u32, j: usize) -> usize {
    (1 << r) - 2 + j
}

/// A node being rebuilt.
struct NodeBuf {
    inherited: u32,
    /// Leaves of the prefixes ending here, by owned bit (0 = absent).
    owned: [u32; OWNABLE],
    /// Child node entries by slot (0 = none).
    children: [u32; SLOTS],
}

impl NodeBuf {
    fn new(inherited: u32) -> Self {
        NodeBuf {
            inherited,
            owned: [0; OWNABLE],
            children: [0; SLOTS],
        }
    }

    /// The longest prefix ending here that covers slot `v`, else the
    /// inherited leaf.
    fn value(&self, v: usize) -> u32 {
        (1..=STRIDE)
            .rev()
            .map(|r| self.owned[owned_bit(r, v >> (STRIDE - r))])
            .find(|&l| l != 0)
            .unwrap_or(self.inherited)
    }

    fn is_empty(&self) -> bool {
        self.owned.iter().all(|&l| l == 0) && self.children.iter().all(|&c| c == 0)
    }

    /// Every slot's value ([`value`](Self::value) for all sixteen at once):
    /// the inherited leaf, overwritten by each owned prefix, shortest
    /// first, over the slots it covers.
    fn values(&self) -> [u32; SLOTS] {
        let mut values = [self.inherited; SLOTS];
        for r in 1..=STRIDE {
            let span = SLOTS >> r;
            for j in 0..1usize << r {
                let leaf = self.owned[owned_bit(r, j)];
                if leaf != 0 {
                    values[j * span..(j + 1) * span].fill(leaf);
                }
            }
        }
        values
    }

    /// The node's words, on the stack: an update encodes a node per level
    /// it copies, and a heap buffer for each was a malloc and free per
    /// route written. Filled as an array (a tenth of a table load went to
    /// pushing word by word and finding each slot's value level by level).
    fn encode(&self) -> SmallVec<[u32; FIXED + OWNABLE]> {
        let mut words = [0u32; FIXED + OWNABLE];
        let values = self.values();
        for v in 0..SLOTS {
            words[v] = if self.children[v] != 0 {
                self.children[v]
            } else {
                leaf_entry(values[v])
            };
        }
        let mut bitmap = 0u32;
        let mut len = FIXED;
        for (i, &leaf) in self.owned.iter().enumerate() {
            if leaf != 0 {
                bitmap |= 1 << i;
                words[len] = leaf;
                len += 1;
            }
        }
        words[W_INHERITED] = self.inherited;
        words[W_BITMAP] = bitmap;
        SmallVec::from_buf_and_len(words, len)
    }
}

/// The nodes an update replaces (one per level it copies, more when a
/// short prefix re-pushes into many), inline for the common case.
type Retired = SmallVec<[NodeRef; LEVELS as usize]>;

/// A top-level slot's node being rebuilt by a bulk writer: its /21../24
/// prefixes set in a decoded copy, published as one node when the writer
/// moves to another slot or is done (see [`Direct::update_deferred`]).
pub(crate) struct PendingNode {
    slot: usize,
    buf: NodeBuf,
    /// The published node the copy replaces, if the slot had one.
    replaces: Option<NodeRef>,
    /// Whether any prefix actually changed.
    dirty: bool,
}

/// The FIB writer's pending node, if any.
#[derive(Default)]
pub(crate) struct Deferred(Option<PendingNode>);

// SAFETY: the only pointer inside is `replaces`, a published arena node
// that only the FIB's writer reads (it holds the writer lock, which owns
// this value) and retires; moving that duty to another thread is sound.
unsafe impl Send for Deferred {}

impl Deferred {
    /// Whether a node waits to be published.
    pub(crate) fn is_pending(&self) -> bool {
        self.0.is_some()
    }
}

/// A published node, read through its arena block.
#[derive(Clone, Copy)]
struct NodeRef(*const u32);

impl NodeRef {
    /// # Safety
    /// The node must be live and `i` within it.
    #[inline(always)]
    unsafe fn word(self, i: usize) -> u32 {
        // SAFETY: the caller's contract.
        unsafe { *self.0.add(i) }
    }

    /// # Safety
    /// As for `word`.
    unsafe fn len_words32(self) -> usize {
        // SAFETY: forwarded.
        FIXED + unsafe { self.word(W_BITMAP) }.count_ones() as usize
    }

    /// # Safety
    /// As for `word`.
    unsafe fn decode(self) -> NodeBuf {
        // SAFETY: forwarded; every index is within the node.
        unsafe {
            let mut buf = NodeBuf::new(self.word(W_INHERITED));
            let bitmap = self.word(W_BITMAP);
            let mut k = FIXED;
            for (i, l) in buf.owned.iter_mut().enumerate() {
                if bitmap >> i & 1 == 1 {
                    *l = self.word(k);
                    k += 1;
                }
            }
            for (v, c) in buf.children.iter_mut().enumerate() {
                let e = self.word(v);
                if is_node(e) {
                    *c = e;
                }
            }
            buf
        }
    }
}

/// The IPv4 core. Addresses are passed as their [`Word`] (only 32-bit
/// words are used with it).
pub(crate) struct Direct<W> {
    _word: std::marker::PhantomData<W>,
    top: ZeroedWords,
    nodes: NodeStore<UNIT_WORDS>,
}

impl<W: Word> Direct<W> {
    pub(crate) fn new() -> Self {
        debug_assert_eq!(W::BITS, 32, "the direct core is for IPv4");
        Direct {
            _word: std::marker::PhantomData,
            top: ZeroedWords::new(1 << TOP_BITS),
            nodes: NodeStore::new(),
        }
    }

    /// The top-level entry of `a`, without a bounds check: the lookup path
    /// runs it once per address, and a lookup's instruction count bounds
    /// how many lookups a core keeps in flight (the check is a compare
    /// and a branch of some thirty).
    #[inline(always)]
    fn top_slot(&self, a: W) -> &std::sync::atomic::AtomicU32 {
        let i = a.top(TOP_BITS);
        debug_assert!(i < self.top.len());
        // SAFETY: `top` has `1 << TOP_BITS` words, and the first TOP_BITS
        // bits of an address are below that.
        unsafe { self.top.get_unchecked(i) }
    }

    #[inline(always)]
    fn node(&self, e: u32) -> NodeRef {
        NodeRef(self.nodes.resolve(e >> 1) as *const u32)
    }

    /// The leaf of the longest prefix covering `a` (0 if none). The caller
    /// must be pinned for as long as it uses the result's next-hop id.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: W) -> u32 {
        // Acquire pairs with the writer's Release stores: a node (and every
        // node below it) is fully written before its entry is published.
        let e = self.top_slot(a).load(Ordering::Acquire);
        if !is_node(e) {
            return entry_leaf(e);
        }
        // SAFETY: the entry was published while we were pinned; nodes are
        // freed a grace period after being unlinked.
        unsafe { self.descend(self.node(e), a) }
    }

    /// The lookup's leaf from the root node of its top-level slot down.
    ///
    /// # Safety
    /// `root` must be live, and the caller pinned, for the whole walk.
    #[inline(always)]
    unsafe fn descend(&self, root: NodeRef, a: W) -> u32 {
        let mut node = root;
        let mut o = TOP_BITS;
        for _ in 1..LEVELS {
            // SAFETY: the caller's contract; every node below a live one is
            // live too (a node is retired only after its parent is replaced).
            let e = unsafe { node.word(a.nibble(o)) };
            if !is_node(e) {
                return entry_leaf(e);
            }
            node = self.node(e);
            o += STRIDE;
        }
        // SAFETY: as above; the last level holds only leaves.
        entry_leaf(unsafe { node.word(a.nibble(o)) })
    }

    /// As [`lookup`](Self::lookup), also returning how many leading bits
    /// of `a` decided the answer: every address sharing them gets the same
    /// leaf (the walk of `LpmFib::walk_lookups`). The same loads as a
    /// lookup.
    pub(crate) fn lookup_span(&self, a: W) -> (u32, u32) {
        // Acquire: see `lookup`.
        let mut e = self.top_slot(a).load(Ordering::Acquire);
        let mut o = TOP_BITS;
        while is_node(e) && o < W::BITS {
            // SAFETY: as in `descend` (the caller is pinned).
            e = unsafe { self.node(e).word(a.nibble(o)) };
            o += STRIDE;
        }
        (entry_leaf(e), o)
    }

    /// The raw top-level entry of slot `s` (for the walk: equal entries
    /// give equal answers).
    pub(crate) fn top_entry(&self, s: usize) -> u32 {
        // Acquire: see `lookup`.
        self.top[s].load(Ordering::Acquire)
    }

    /// Prefetches the top-level entry of `a` (batch stage 1).
    #[inline(always)]
    pub(crate) fn prefetch_top(&self, a: W) {
        prefetch(self.top_slot(a).as_ptr() as *const u8);
    }

    /// Loads the top-level entries of a group and prefetches the node slot
    /// each will read next (batch stage 2). A node entry is handed on
    /// already resolved, as its node's address with bit 0 set (nodes are
    /// 16-byte aligned; leaf entries have bit 0 clear), so the walk does
    /// not look the chunk up again.
    #[inline(always)]
    pub(crate) fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        for (w, a) in words.iter_mut().zip(addrs) {
            // Acquire: see `lookup`.
            let e = self.top_slot(*a).load(Ordering::Acquire);
            *w = if is_node(e) {
                let node = self.node(e);
                prefetch(node.0.wrapping_add(a.nibble(TOP_BITS)) as *const u8);
                node.0 as u64 | 1
            } else {
                e as u64
            };
        }
    }

    /// Finishes the lookups of a group from their top-level entries.
    ///
    /// # Safety
    /// `words` must come from [`Direct::load_group`] and the caller must
    /// have been pinned since.
    #[inline(always)]
    pub(crate) unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        for ((a, &w), leaf) in addrs.iter().zip(words).zip(leaves.iter_mut()) {
            *leaf = if w & 1 == 1 {
                // SAFETY: the caller's contract, as in `lookup`; `w` is a
                // node's address tagged by `load_group`.
                unsafe { self.descend(NodeRef((w & !1) as *const u32), *a) }
            } else {
                entry_leaf(w as u32)
            };
        }
    }

    /// Sets (`leaf != 0`) or removes (`leaf == 0`) the prefix `a/len`;
    /// returns the leaf it replaced (0 if none). Callers serialise writes.
    pub(crate) fn update(
        &self,
        shadow: &mut TrieShadow<W>,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        if len <= TOP_BITS {
            self.update_top(shadow, a, len, leaf, limbo)
        } else {
            self.update_deep(a, len, leaf, limbo)
        }
    }

    /// As [`update`](Self::update), holding the change back from readers
    /// where it can: a /21../24 prefix is set in a decoded copy of its
    /// top-level slot's node, which the following updates of the same slot
    /// extend, and the copy is published (one node copy, one store) when an
    /// update goes elsewhere or [`publish_pending`](Self::publish_pending)
    /// is called. A sorted table load puts some seven prefixes into each
    /// node this way, and copied the node for each. The writer's own reads
    /// stay exact: every other path publishes the pending node first.
    pub(crate) fn update_deferred(
        &self,
        shadow: &mut TrieShadow<W>,
        pending: &mut Deferred,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        if len <= TOP_BITS || len > TOP_BITS + STRIDE {
            self.publish_pending(pending, limbo);
            return self.update(shadow, a, len, leaf, limbo);
        }
        let s = a.top(TOP_BITS);
        if pending.0.as_ref().is_some_and(|p| p.slot != s) {
            self.publish_pending(pending, limbo);
        }
        let p = pending.0.get_or_insert_with(|| self.start_pending(s));
        let r = len - TOP_BITS;
        let bit = owned_bit(r, a.nibble(TOP_BITS) >> (STRIDE - r));
        let old = p.buf.owned[bit];
        if old != leaf {
            p.buf.owned[bit] = leaf;
            p.dirty = true;
        }
        old
    }

    /// A pending copy of slot `s`'s node (an empty one inheriting the
    /// slot's leaf if it has none).
    fn start_pending(&self, s: usize) -> PendingNode {
        let e = self.top[s].load(Ordering::Relaxed); // only the writer stores
        let (buf, replaces) = if is_node(e) {
            let n = self.node(e);
            // SAFETY: the writer only reads nodes it has not retired; this
            // one is retired only when its replacement is published.
            (unsafe { n.decode() }, Some(n))
        } else {
            (NodeBuf::new(entry_leaf(e)), None)
        };
        PendingNode {
            slot: s,
            buf,
            replaces,
            dirty: false,
        }
    }

    /// Publishes the pending node, if any: its children re-pushed, one
    /// Release store into its top-level slot, the node it replaces (and
    /// any child replaced) retired.
    pub(crate) fn publish_pending(&self, pending: &mut Deferred, limbo: &mut FibLimbo) {
        let Some(p) = pending.0.take() else { return };
        if !p.dirty {
            return;
        }
        let mut retired = Retired::new();
        retired.extend(p.replaces);
        let new = self.finish(p.buf, &mut retired);
        // Release: see `lookup`.
        self.top[p.slot].store(new, Ordering::Release);
        self.retire(retired, limbo);
    }

    /// The leaf of exactly `a/len` (writer side).
    pub(crate) fn exact(&self, shadow: &TrieShadow<W>, a: W, len: u32) -> u32 {
        if len <= TOP_BITS {
            shadow.get(a.network(len), len)
        } else {
            self.find_deep(a, len)
        }
    }

    /// The leaf of exactly `a/len`, `len > TOP_BITS` (writer side).
    fn find_deep(&self, a: W, len: u32) -> u32 {
        let mut e = self.top[a.top(TOP_BITS)].load(Ordering::Relaxed); // only the writer stores
        let mut o = TOP_BITS;
        while is_node(e) {
            let node = self.node(e);
            if len <= o + STRIDE {
                let r = len - o;
                let bit = owned_bit(r, a.nibble(o) >> (STRIDE - r));
                // SAFETY: the writer only reads nodes it has not retired.
                let bitmap = unsafe { node.word(W_BITMAP) };
                if bitmap >> bit & 1 == 0 {
                    return 0;
                }
                let k = (bitmap & ((1u32 << bit) - 1)).count_ones() as usize;
                // SAFETY: as above; the owned leaves end the node.
                return unsafe { node.word(FIXED + k) };
            }
            // SAFETY: as above.
            e = unsafe { node.word(a.nibble(o)) };
            o += STRIDE;
        }
        0
    }

    /// The top-level match of slot `s` (the leaf a root node inherits).
    fn top_match(&self, s: usize) -> u32 {
        let e = self.top[s].load(Ordering::Relaxed); // only the writer stores
        if is_node(e) {
            // SAFETY: the writer only reads nodes it has not retired.
            unsafe { self.node(e).word(W_INHERITED) }
        } else {
            entry_leaf(e)
        }
    }

    fn update_top(
        &self,
        shadow: &mut TrieShadow<W>,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        let net = a.network(len);
        let (old, rule) = shadow.update(net, len, leaf);
        let Some(rule) = rule else { return old };
        let mut retired = Retired::new();
        let first = net.top(TOP_BITS);
        for s in first..first + (1usize << (TOP_BITS - len)) {
            let Some(want) = rule.apply(self.top_match(s)) else {
                continue;
            };
            let e = self.top[s].load(Ordering::Relaxed);
            let new = if is_node(e) {
                self.repush(e, want, &mut retired)
            } else {
                leaf_entry(want)
            };
            // Release: see `lookup`.
            self.top[s].store(new, Ordering::Release);
        }
        self.retire(retired, limbo);
        old
    }

    fn update_deep(&self, a: W, len: u32, leaf: u32, limbo: &mut FibLimbo) -> u32 {
        let old = self.find_deep(a, len);
        if old == leaf {
            return old;
        }
        let s = a.top(TOP_BITS);
        let e = self.top[s].load(Ordering::Relaxed);
        let inherited = self.top_match(s);
        let mut retired = Retired::new();
        let new = self.set(e, TOP_BITS, inherited, a, len, leaf, &mut retired);
        // Release: see `lookup`.
        self.top[s].store(new, Ordering::Release);
        self.retire(retired, limbo);
        old
    }

    /// The entry replacing `e` (the position whose stride starts at `o`
    /// and inherits `inherited`) after setting or removing `a/len`.
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        e: u32,
        o: u32,
        inherited: u32,
        a: W,
        len: u32,
        leaf: u32,
        retired: &mut Retired,
    ) -> u32 {
        let mut buf = if is_node(e) {
            let n = self.node(e);
            retired.push(n);
            // SAFETY: the writer only reads nodes it has not retired (it is
            // retired only after this update publishes).
            unsafe { n.decode() }
        } else {
            if leaf == 0 {
                return e; // removing what is not there (callers check first)
            }
            NodeBuf::new(inherited)
        };
        let v = a.nibble(o);
        if len <= o + STRIDE {
            let r = len - o;
            buf.owned[owned_bit(r, v >> (STRIDE - r))] = leaf;
        } else {
            let below = buf.value(v);
            buf.children[v] =
                match self.set(buf.children[v], o + STRIDE, below, a, len, leaf, retired) {
                    c if is_node(c) => c,
                    _ => 0,
                };
        }
        self.finish(buf, retired)
    }

    /// Re-pushes `inherited` into the node `e` and, where it shows through,
    /// into its children; returns the (possibly unchanged) entry.
    fn repush(&self, e: u32, inherited: u32, retired: &mut Retired) -> u32 {
        let n = self.node(e);
        // SAFETY: the writer only reads nodes it has not retired.
        if unsafe { n.word(W_INHERITED) } == inherited {
            return e;
        }
        retired.push(n);
        // SAFETY: as above.
        let mut buf = unsafe { n.decode() };
        buf.inherited = inherited;
        self.finish(buf, retired)
    }

    /// Publishes a rebuilt node: its children first get the values their
    /// slots now push down; an empty node becomes the leaf it inherits.
    fn finish(&self, mut buf: NodeBuf, retired: &mut Retired) -> u32 {
        if buf.is_empty() {
            return leaf_entry(buf.inherited);
        }
        for v in 0..SLOTS {
            if buf.children[v] != 0 {
                buf.children[v] = self.repush(buf.children[v], buf.value(v), retired);
            }
        }
        let p = self.nodes.store(&buf.encode());
        // SAFETY: `p` was just stored.
        unsafe { self.nodes.id_of(p) << 1 | 1 }
    }

    fn retire(&self, nodes: Retired, limbo: &mut FibLimbo) {
        for n in nodes {
            // SAFETY: still live (only now handed to the FIB's QSBR limbo, which
            // frees it once every reader has passed a quiescent state), stored
            // by `finish` with exactly `len_words32` words; unlinked before
            // this call (its replacement is already published).
            limbo.retire(Garbage::Node(unsafe {
                self.nodes.retire(n.0.cast(), n.len_words32() * 4)
            }));
        }
    }

    /// Bytes held by the lookup structure: the top level and the arena.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.top.bytes() + self.nodes.bytes()
    }

    /// Bytes in live nodes.
    pub(crate) fn node_bytes(&self) -> usize {
        self.nodes.live_bytes()
    }

    /// Number of live nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.count()
    }

    /// Returns a retired node's block to the arena.
    ///
    /// # Safety
    /// As for `NodeStore::free`.
    pub(crate) unsafe fn free(&self, b: Block) {
        // SAFETY: forwarded.
        unsafe { self.nodes.free(b) }
    }
}
