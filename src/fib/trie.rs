//! The compiled longest-prefix-match trie behind [`LpmFib`](super::LpmFib).
//!
//! # Layout (poptrie family)
//! - **Top level**: a direct-indexed array of `2^T` 32-bit atomic entries,
//!   indexed by the address's first `T` bits (the IPv6 core's T is 18:
//!   1 MiB; see `core::TRIE_TOP_BITS` for why), on transparent huge pages
//!   where Linux offers them (`pages`), so the top-level access never misses the TLB. An entry is
//!   `0` (no route), a *leaf* (the longest prefix of length <= T covering
//!   the slot), or the arena id of a *node* (see `leaf_entry`).
//! - **Nodes** consume 6 address bits each (64 slots) and are
//!   popcount-compressed: `child_bits` marks slots with a child node, whose
//!   pointers are stored densely; `leaf_bits` marks where a run of equal
//!   leaf values starts, and only run heads are stored. A node's slot value
//!   is the longest prefix *ending in that node* that covers the slot, so a
//!   change never has to be pushed down into child nodes. The node the
//!   top-level word points to also carries the top-level leaf of its slot.
//! - **Path compression**: a node that would hold no prefix and have one
//!   child is never built; its child records the address bits of the
//!   skipped strides instead (`skip`, up to 112 bits), and a lookup whose
//!   bits differ there stops with the best leaf so far. An IPv6 /48 under a
//!   lone /32 then costs one node below the /32's, not three.
//! - **Nodes live in an arena** (`arena`) of 2 MiB huge-page chunks,
//!   32-byte aligned, so a node's header never straddles two cache lines
//!   and a full table's nodes sit in a few TLB entries.
//! - **Leaves** are 32 bits: an interned next-hop id (24 bits) and the
//!   matched prefix length (8 bits), so the matched prefix is rebuilt from
//!   the address.
//!
//! # Cost model
//! A lookup reads one top-level word; if it is a node, it reads per level
//! one node header (two bitmaps), one leaf word and, when descending, one
//! child pointer, all within the node's single allocation. For the RIS
//! IPv6 table's /48s that is the top word and up to five nodes (strides
//! 18-24, ..., 42-48), fewer where a path is compressed: one node per 6
//! bits where prefixes branch (skipped strides cost nothing), plus the
//! next-hop table (a few KiB, cache-resident).
//! `LpmFib::lookup_batch` pipelines groups of addresses through four
//! stages (prefetch the top-level line; load the top word and prefetch the
//! node header; prefetch the exact leaf line; walk, levels interleaved), so
//! a lookup's dependent accesses overlap with other lookups' instead of
//! stalling it.
//!
//! # Updates
//! A node's bitmaps, children and run layout never change once published;
//! only its leaf words (and its writer-only owned entries) may, in one
//! case. A new next hop for an existing prefix (most of a day of BGP
//! updates) whose runs stay as they are (the new leaf neither merges with
//! a neighbouring run nor splits one) is stored in place: one
//! atomic store per changed leaf word, never turning a leaf to or from 0,
//! so a racing lookup still answers from one word read once (see
//! `Trie::update_in_place`). Over the RIS IPv6 day this took the FIB
//! alone from 0.65 to 1.6-2.3 M updates a second. Every other change is path
//! copying: the writer (serialised by the FIB's writer lock) rebuilds the
//! nodes on the path from the top slot to the
//! node where the prefix ends (siblings are shared), publishes
//! the new path with one atomic store into the top-level word, and retires
//! the replaced nodes to the FIB's QSBR limbo (`crate::qsbr`). A prefix of length <= T rewrites
//! the top-level words it covers whose longest match changes (a root node
//! is copied shallowly to carry the new top-level leaf). Nothing is ever
//! rebuilt wholesale. The writer returns retired nodes to the arena's free
//! lists in bounded steps, once no reader can hold them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FibLimbo, Garbage};
use smallvec::SmallVec;

use super::arena::{Block, NodeStore};

/// The trie's allocation unit in words (see `arena::NodeArena`).
const UNIT_WORDS: usize = 4;
use super::pages::ZeroedWords;
use crate::prefix::AddrBits as Word;

const STRIDE: u32 = 6;
const SLOTS: usize = 1 << STRIDE;

/// Rank of slot `v` among the set bits of `bits` up to and including `v`.
#[inline(always)]
fn rank_incl(bits: u64, v: usize) -> usize {
    (bits << (63 - v)).count_ones() as usize
}

// Node words: [child_bits, leaf_bits, meta, children.., leaves (2 per
//              word).., (expected bits: one word if 0 < skip <= 64, two
//              if skip > 64),
//              owned prefixes (2 per word)..]
// meta = top_leaf (bits 0..32) | owned count (32..48) | skip length (48..56).
// Children come right after the 24-byte header: a lookup passing through
// the node (every level but the last) reads a child pointer at an offset
// one popcount gives, usually in the header's line; the leaf it also reads
// is independent of the pointer, so the two loads overlap. The skip's
// expected bits, read only on compressed paths, and the writer's section
// come last and take no room where unused.
const W_CHILD: usize = 0;
const W_LEAF: usize = 1;
const W_META: usize = 2;
const HEADER: usize = 3;
/// Words of the expected bits of a skip of `skip` bits: none, one for up
/// to 64 bits (nearly every skip of a real table), two beyond.
#[inline(always)]
fn expected_words(skip: u32) -> usize {
    (skip as usize).div_ceil(64)
}

#[inline(always)]
fn meta_owned(meta: u64) -> usize {
    (meta >> 32 & 0xffff) as usize
}

#[inline(always)]
fn meta_skip(meta: u64) -> u32 {
    (meta >> 48 & 0xff) as u32
}

/// Word offsets of a node's sections, from its header words.
#[derive(Clone, Copy)]
struct Sections {
    expected: usize,
    owned: usize,
    end: usize,
}

#[inline(always)]
fn sections(child_bits: u64, leaf_bits: u64, meta: u64) -> Sections {
    let leaves = HEADER + child_bits.count_ones() as usize;
    let expected = leaves + (leaf_bits.count_ones() as usize).div_ceil(2);
    let owned = expected + expected_words(meta_skip(meta));
    Sections {
        expected,
        owned,
        end: owned + meta_owned(meta).div_ceil(2),
    }
}

/// A prefix ending in a node: its length and first slot, and its leaf.
/// Kept in the node's writer section, 32 bits each; lookups never read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owned {
    len: u8,
    slot: u8,
    leaf: u32,
}

impl Owned {
    /// Packed for a node whose stride starts at `start`: the leaf's
    /// next-hop id (24 bits) above 7 bits that name the prefix within the
    /// stride, `1 << r | its r first slot bits` for its `r` = 1..=6 bits
    /// past `start` (126 codes; the leaf's length is `start + r`). Half the
    /// 64 bits this took: the RIS IPv6 table's live nodes went from 7.6 to
    /// 6.7 MB with the one-word skip below.
    fn pack(self, start: u32) -> u32 {
        let r = self.len as u32 - start;
        debug_assert!(
            (1..=STRIDE).contains(&r),
            "owned length {r} past the stride's start"
        );
        debug_assert_eq!(
            self.leaf & 0xff,
            self.len as u32,
            "a leaf carries its length"
        );
        (self.leaf >> 8) << 7 | 1 << r | (self.slot as u32) >> (STRIDE - r)
    }

    /// The inverse of [`Owned::pack`] for the same `start`.
    fn unpack(w: u32, start: u32) -> Owned {
        let code = w & 0x7f;
        let r = 31 - code.leading_zeros();
        let len = start + r;
        Owned {
            len: len as u8,
            slot: ((code & ((1 << r) - 1)) << (STRIDE - r)) as u8,
            leaf: (w >> 7) << 8 | len,
        }
    }
}

/// A node being rebuilt: the decoded contents.
struct NodeBuf {
    /// The top-level leaf (meaningful only in the node the top word names).
    top_leaf: u32,
    /// Offset of the node's own stride (after its skip).
    start: u32,
    /// Bits skipped before the stride, and their expected value.
    skip: u32,
    expected: u128,
    children: [u64; SLOTS],
    /// Inline up to 16 (most nodes own fewer): a write decodes and
    /// re-encodes a node per level, and heap buffers here were a fifth of
    /// an IPv6 load's time.
    owned: SmallVec<[Owned; 16]>,
}

/// An encoded node on the stack (most nodes are under 64 words).
type Words = SmallVec<[u64; 64]>;
/// The nodes one update replaces (one per level it rewrites).
type Retired = SmallVec<[NodeRef; 8]>;

// `NodeBuf::encode` pushes the header in this order.
const _: () = assert!(W_CHILD == 0 && W_LEAF == 1 && W_META == 2 && HEADER == 3);

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

    /// Word `i` as an atomic (the leaf words, which the writer may store
    /// in place). Invariant: once a node is published, its leaf words are
    /// read and written only through this, never by a plain access (a
    /// plain read racing an in-place store would be a data race).
    ///
    /// # Safety
    /// As for `word`.
    #[inline(always)]
    unsafe fn atomic<'a>(self, i: usize) -> &'a AtomicU64 {
        // SAFETY: forwarded; arena words are u64-aligned and `AtomicU64`
        // has `u64`'s layout.
        unsafe { &*(self.0.add(i) as *const AtomicU64) }
    }

    /// The node's section offsets.
    ///
    /// # Safety
    /// As for `word`.
    #[inline(always)]
    unsafe fn sections(self) -> Sections {
        // SAFETY: forwarded; the header is always present.
        unsafe { sections(self.word(W_CHILD), self.word(W_LEAF), self.word(W_META)) }
    }

    /// # Safety
    /// As for `word`.
    unsafe fn len_words(self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.sections().end }
    }

    /// The owned prefixes, read in place, of the node whose stride starts
    /// at `start`.
    ///
    /// # Safety
    /// As for `word`, for as long as the iterator is used.
    unsafe fn owned(self, start: u32) -> impl Iterator<Item = Owned> {
        // SAFETY: forwarded; the owned section ends the node.
        unsafe {
            let sec = self.sections();
            let count = meta_owned(self.word(W_META));
            // SAFETY: `sec.owned + i / 2` is inside the node for i < the
            // count.
            (0..count).map(move |i| {
                let w = (self.word(sec.owned + i / 2) >> (32 * (i & 1))) as u32;
                Owned::unpack(w, start)
            })
        }
    }

    /// The skip length and the expected bits.
    ///
    /// # Safety
    /// As for `word`.
    #[inline(always)]
    unsafe fn skip(self) -> (u32, u128) {
        // SAFETY: forwarded; the expected words exist as `expected_words`
        // says.
        unsafe {
            let skip = meta_skip(self.word(W_META));
            if skip == 0 {
                return (0, 0);
            }
            let at = self.sections().expected;
            let high = if skip > 64 {
                (self.word(at + 1) as u128) << 64
            } else {
                0
            };
            (skip, self.word(at) as u128 | high)
        }
    }

    /// Decodes the node reached with its skip beginning at `offset`.
    ///
    /// # Safety
    /// As for `word`.
    unsafe fn decode(self, offset: u32) -> NodeBuf {
        // SAFETY: forwarded; all indices stay inside the node.
        unsafe {
            let child_bits = self.word(W_CHILD);
            let meta = self.word(W_META);
            let mut children = [0u64; SLOTS];
            let mut k = 0;
            for (v, child) in children.iter_mut().enumerate() {
                if child_bits >> v & 1 == 1 {
                    *child = self.word(HEADER + k);
                    k += 1;
                }
            }
            let (skip, expected) = self.skip();
            let owned = self.owned(offset + skip).collect();
            NodeBuf {
                top_leaf: meta as u32,
                start: offset + skip,
                skip,
                expected,
                children,
                owned,
            }
        }
    }
}

impl NodeBuf {
    /// An empty node whose stride starts at `start`, reached through
    /// `skip` bits of value `expected`.
    fn empty(start: u32, skip: u32, expected: u128) -> NodeBuf {
        NodeBuf {
            top_leaf: 0,
            start,
            skip,
            expected,
            children: [0; SLOTS],
            owned: SmallVec::new(),
        }
    }

    /// The only child, if the node owns nothing and has exactly one.
    fn sole_child(&self) -> Option<(usize, u64)> {
        if !self.owned.is_empty() {
            return None;
        }
        let mut it = self.children.iter().enumerate().filter(|(_, c)| **c != 0);
        match (it.next(), it.next()) {
            (Some((v, c)), None) => Some((v, *c)),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.children.iter().all(|c| *c == 0)
    }

    /// Encodes the node's words.
    fn encode(&self) -> Words {
        let vals = slot_values_of(&self.owned, self.start);
        let leaf_bits = run_starts(&vals);
        let mut leaves = [0u32; SLOTS];
        let mut n_leaves = 0;
        for (v, &val) in vals.iter().enumerate() {
            if leaf_bits >> v & 1 == 1 {
                leaves[n_leaves] = val;
                n_leaves += 1;
            }
        }
        let child_bits = self
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .fold(0u64, |bits, (v, _)| bits | 1 << v);
        let expected = expected_words(self.skip);
        let mut words = Words::with_capacity(
            HEADER
                + child_bits.count_ones() as usize
                + n_leaves.div_ceil(2)
                + expected
                + self.owned.len().div_ceil(2),
        );
        words.push(child_bits);
        words.push(leaf_bits);
        words.push(
            self.top_leaf as u64 | (self.owned.len() as u64) << 32 | (self.skip as u64) << 48,
        );
        words.extend(self.children.iter().copied().filter(|c| *c != 0));
        for pair in leaves[..n_leaves].chunks(2) {
            words.push(pair[0] as u64 | (pair.get(1).copied().unwrap_or(0) as u64) << 32);
        }
        for i in 0..expected {
            words.push((self.expected >> (64 * i)) as u64);
        }
        for pair in self.owned.chunks(2) {
            let second = pair.get(1).map_or(0, |o| o.pack(self.start));
            words.push(pair[0].pack(self.start) as u64 | (second as u64) << 32);
        }
        words
    }
}

/// The slot values of a node whose stride starts at `start` and which owns
/// `owned`: each slot's longest owned prefix (0 if none).
fn slot_values_of(owned: &[Owned], start: u32) -> [u32; SLOTS] {
    let end = start + STRIDE;
    let mut vals = [0u32; SLOTS];
    // Shorter prefixes first, so longer ones overwrite them; owned lengths
    // are the stride's, start + 1 ..= end.
    for len in start + 1..=end {
        for o in owned.iter().filter(|o| o.len as u32 == len) {
            let count = 1usize << (end - len);
            vals[o.slot as usize..o.slot as usize + count].fill(o.leaf);
        }
    }
    vals
}

/// The bitmap of the slots where a run of equal values starts.
fn run_starts(vals: &[u32; SLOTS]) -> u64 {
    (0..SLOTS)
        .filter(|&v| v == 0 || vals[v] != vals[v - 1])
        .fold(0, |bits, v| bits | 1 << v)
}

/// The trie's shared part: everything lookups read. Addresses are passed
/// as their [`Word`].
pub(crate) struct Trie<W> {
    _word: std::marker::PhantomData<W>,
    /// Bits of the direct top level.
    top_bits: u32,
    top: ZeroedWords,
    /// Where the nodes live.
    nodes: NodeStore<UNIT_WORDS>,
}

// Top-level entries are 32 bits (IPv6's 18-bit top level is then 1 MiB):
// 0 = no route; `leaf entry << 1 | 1`, where a leaf entry packs a leaf
// of length <= T (<= 31) as `id << 5 | len`; or a node's arena id `<< 1`. Readers decode an entry into a *top word*: 0, a leaf as
// `leaf << 32 | 1`, or the node's pointer (nodes are 32-byte aligned, so
// bit 0 is clear).

/// The entry of a top-level leaf (len <= T).
#[inline(always)]
fn leaf_entry(leaf: u32) -> u32 {
    if leaf == 0 {
        0
    } else {
        debug_assert!(leaf & 0xff < 32, "top-level leaves are at most /31");
        ((leaf >> 8) << 5 | (leaf & 0x1f)) << 1 | 1
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

    /// Bytes held (approximately): std's map keeps about 8 buckets per 7
    /// entries of capacity, each bucket an entry and a control byte. (It
    /// was counted at 24 bytes an entry, more than twice what a 32-bit
    /// map holds: with the old IPv4 core's /20 top level, the RIS table's
    /// 110,887 prefixes of /20 or shorter, that moved megabytes of the
    /// RIB's memory to the FIB's side of `rtm bench churn`'s M1 split.)
    pub(crate) fn memory_bytes(&self) -> usize {
        let bucket = std::mem::size_of::<(W, u32)>() + 1;
        self.top_prefixes
            .iter()
            .map(|m| m.capacity() * 8 / 7 * bucket)
            .sum()
    }

    /// The leaf of exactly `net/len`, 0 if absent.
    pub(crate) fn get(&self, net: W, len: u32) -> u32 {
        self.top_prefixes[len as usize]
            .get(&net)
            .copied()
            .unwrap_or(0)
    }

    /// Sets (`leaf != 0`) or removes the top-level prefix `net/len`.
    /// Returns the leaf it replaced and, if that differs, the rule by which
    /// the top-level slots it covers change.
    pub(crate) fn update(&mut self, net: W, len: u32, leaf: u32) -> (u32, Option<TopRule>) {
        let map = &mut self.top_prefixes[len as usize];
        let old = if leaf == 0 {
            map.remove(&net)
        } else {
            map.insert(net, leaf)
        }
        .unwrap_or(0);
        if old == leaf {
            return (old, None);
        }
        // On removal, every slot the prefix held falls back to the same
        // shorter prefix: the longest one covering `net`.
        let fallback = if leaf == 0 {
            (0..len)
                .rev()
                .map(|l| self.get(net.network(l), l))
                .find(|&leaf| leaf != 0)
                .unwrap_or(0)
        } else {
            0
        };
        let rule = TopRule {
            len,
            leaf,
            fallback,
        };
        (old, Some(rule))
    }
}

/// How a top-level prefix's change moves the top-level match of each slot
/// it covers (both cores apply it slot by slot).
pub(crate) struct TopRule {
    len: u32,
    leaf: u32,
    fallback: u32,
}

impl TopRule {
    /// The slot's new top-level match, given its current one; None if it
    /// keeps it. Within the prefix's slots the prefix wins unless a longer
    /// top-level prefix covers the slot; leaves carry their length, so no
    /// slot needs a search.
    pub(crate) fn apply(&self, cur: u32) -> Option<u32> {
        let cur_len = cur & 0xff;
        if self.leaf != 0 {
            (cur == 0 || cur_len <= self.len).then_some(self.leaf)
        } else {
            (cur != 0 && cur_len == self.len).then_some(self.fallback)
        }
    }
}

impl<W: Word> Trie<W> {
    pub(crate) fn new(top_bits: u32) -> Self {
        Trie {
            _word: std::marker::PhantomData,
            top_bits,
            top: ZeroedWords::new(1usize << top_bits),
            nodes: NodeStore::new(),
        }
    }

    /// The leaf of the longest prefix covering `a` (0 if none).
    ///
    /// The caller must be an online reader of the FIB's QSBR domain for as long as it uses
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
        // entry is stored.
        self.decode(self.top[a.top(self.top_bits)].load(Ordering::Acquire))
    }

    /// The top word of a top-level entry.
    #[inline(always)]
    fn decode(&self, e: u32) -> u64 {
        if e & 1 == 1 {
            let leaf = (e >> 6) << 8 | (e >> 1) & 0x1f;
            (leaf as u64) << 32 | 1
        } else if e == 0 {
            0
        } else {
            self.nodes.resolve(e >> 1) as u64
        }
    }

    /// The entry naming a root node.
    fn node_entry(&self, p: *const u64) -> u32 {
        // SAFETY: `p` was just allocated from the arena by the writer.
        unsafe { self.nodes.id_of(p) << 1 }
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
            shadow.get(a.network(len), len)
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
                let (b, next, o) = Self::step(node, a, offset, best);
                best = b;
                if next.is_null() {
                    return best;
                }
                node = NodeRef(next);
                offset = o;
            }
        }
    }

    /// One level of a lookup at `node`, whose skip begins at `offset`: the
    /// improved best leaf, the child to descend to (null: done) and the
    /// offset where the child's skip begins.
    ///
    /// # Safety
    /// `node` must be live (the caller is pinned).
    #[inline(always)]
    unsafe fn step(node: NodeRef, a: W, offset: u32, mut best: u32) -> (u32, *const u64, u32) {
        // SAFETY: the caller's contract; the indices computed from the
        // node's bitmaps stay within it.
        unsafe {
            let skip = meta_skip(node.word(W_META));
            let mut o = offset;
            if skip != 0 {
                if a.bits(o, skip) != node.skip().1 {
                    // Off the compressed path: nothing below matches.
                    return (best, std::ptr::null(), 0);
                }
                o += skip;
            }
            let v = a.chunk(o);
            let child_bits = node.word(W_CHILD);
            let li = rank_incl(node.word(W_LEAF), v) - 1;
            let at = HEADER + child_bits.count_ones() as usize + li / 2;
            // Acquire pairs with the writer's in-place Release store of a
            // leaf word (`update_in_place`): the next-hop entry the leaf
            // names is visible first.
            let leaf = (node.atomic(at).load(Ordering::Acquire) >> (32 * (li & 1))) as u32;
            if leaf != 0 {
                best = leaf;
            }
            if child_bits >> v & 1 == 0 {
                return (best, std::ptr::null(), 0);
            }
            let child = node.word(HEADER + rank_incl(child_bits, v) - 1);
            (best, child as *const u64, o + STRIDE)
        }
    }

    /// As [`lookup`](Self::lookup), also returning how many leading bits
    /// of `a` decided the answer: every address sharing them gets the same
    /// leaf (the walk of `LpmFib::walk_lookups`). The same loads and the
    /// same steps as a lookup.
    pub(crate) fn lookup_span(&self, a: W) -> (u32, u32) {
        let e = self.top_word(a);
        if e & 1 == 1 || e == 0 {
            return ((e >> 32) as u32, self.top_bits);
        }
        let mut node = NodeRef(e as *const u64);
        // SAFETY: loaded from the top level while pinned; every node below
        // a live one is live.
        unsafe {
            let mut best = node.word(W_META) as u32;
            let mut offset = self.top_bits;
            loop {
                let skip = meta_skip(node.word(W_META));
                if skip != 0 {
                    let diff = a.bits(offset, skip) ^ node.skip().1;
                    if diff != 0 {
                        // Off the compressed path at its first differing
                        // bit: so is every address sharing the bits to it.
                        let j = diff.leading_zeros() - (128 - skip);
                        return (best, offset + j + 1);
                    }
                }
                let (b, next, o) = Self::step(node, a, offset, best);
                best = b;
                if next.is_null() {
                    return (best, (offset + skip + STRIDE).min(W::BITS));
                }
                node = NodeRef(next);
                offset = o;
            }
        }
    }

    /// The raw top-level entry of slot `s` (for the walk: equal entries
    /// give equal answers).
    pub(crate) fn top_entry(&self, s: usize) -> u32 {
        // Acquire: see `lookup`.
        self.top[s].load(Ordering::Acquire)
    }

    /// Loads the top-level words of a group of addresses (their lines
    /// should have been prefetched) and prefetches the headers of the
    /// nodes they name: the first stage of [`Trie::walk_group`].
    #[inline(always)]
    pub(crate) fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        for (w, a) in words.iter_mut().zip(addrs) {
            *w = self.top_word(*a);
            if *w & 1 == 0 && *w != 0 {
                prefetch(*w as *const u8);
            }
        }
    }

    /// Prefetches the line holding each address's leaf (and, when the walk
    /// goes on, its child pointer) in the node its top-level word names: the
    /// second stage of [`Trie::walk_group`]. The node's header line should
    /// have been prefetched by [`Trie::load_group`] a group earlier; big
    /// nodes keep their leaves on later lines that the header alone tells.
    ///
    /// # Safety
    /// `words` must come from [`Trie::load_group`] and the caller must have
    /// been pinned since.
    #[inline(always)]
    pub(crate) unsafe fn prefetch_leaves(&self, addrs: &[W], words: &[u64]) {
        for (a, &e) in addrs.iter().zip(words) {
            if e & 1 == 1 || e == 0 {
                continue;
            }
            let node = NodeRef(e as *const u64);
            // SAFETY: loaded from the top level while pinned; the indices
            // computed from the node's bitmaps stay within it.
            unsafe {
                let skip = meta_skip(node.word(W_META));
                let v = a.chunk(self.top_bits + skip);
                let child_bits = node.word(W_CHILD);
                let li = rank_incl(node.word(W_LEAF), v) - 1;
                let at = HEADER + child_bits.count_ones() as usize + li / 2;
                prefetch(node.0.add(at) as *const u8);
                if child_bits >> v & 1 == 1 {
                    prefetch(node.0.add(HEADER + rank_incl(child_bits, v) - 1) as *const u8);
                }
            }
        }
    }

    /// Finishes the lookups of a group from their top-level words, with the
    /// walks interleaved level by level: each level issues the group's node
    /// loads together (after prefetching them), so a group's cache misses
    /// are in flight at once instead of one walk's worth.
    ///
    /// # Safety
    /// `words` must come from [`Trie::load_group`] and the caller must have
    /// been pinned since.
    #[inline(always)]
    pub(crate) unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        const MAX: usize = 32;
        let n = addrs.len().min(words.len()).min(leaves.len()).min(MAX);
        let mut nodes = [std::ptr::null::<u64>(); MAX];
        let mut offsets = [self.top_bits; MAX];
        let mut active = false;
        for i in 0..n {
            let e = words[i];
            if e & 1 == 1 || e == 0 {
                leaves[i] = (e >> 32) as u32;
            } else {
                nodes[i] = e as *const u64;
                // The node a top-level word names carries the top-level leaf.
                // SAFETY: loaded from the top level while pinned.
                leaves[i] = unsafe { NodeRef(nodes[i]).word(W_META) } as u32;
                active = true;
            }
        }
        while active {
            active = false;
            for i in 0..n {
                if nodes[i].is_null() {
                    continue;
                }
                // SAFETY: reached from the top level while pinned.
                let (best, next, o) =
                    unsafe { Self::step(NodeRef(nodes[i]), addrs[i], offsets[i], leaves[i]) };
                leaves[i] = best;
                nodes[i] = next;
                offsets[i] = o;
                if !next.is_null() {
                    // The header; the rest of the node's lines as needed.
                    prefetch(next as *const u8);
                    active = true;
                }
            }
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
        limbo: &mut FibLimbo,
    ) -> u32 {
        if len <= self.top_bits {
            self.update_top(shadow, a, len, leaf, limbo)
        } else {
            self.update_deep(a, len, leaf, limbo)
        }
    }

    fn net(a: W, len: u32) -> W {
        a.network(len)
    }

    /// The top-level leaf of slot `s` and the root node there, if any.
    fn top_slot(&self, s: usize) -> (u32, Option<NodeRef>) {
        let e = self.decode(self.top[s].load(Ordering::Relaxed)); // only the writer stores
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
        limbo: &mut FibLimbo,
    ) -> u32 {
        let net = a.network(len);
        let (old, rule) = shadow.update(net, len, leaf);
        let Some(rule) = rule else { return old };
        let first = net.top(self.top_bits);
        for s in first..first + (1usize << (self.top_bits - len)) {
            let (cur, root) = self.top_slot(s);
            let Some(want) = rule.apply(cur) else {
                continue;
            };
            match root {
                None => self.top[s].store(leaf_entry(want), Ordering::Release), // Release: see `lookup`
                Some(node) => {
                    // SAFETY: the writer only reads nodes it has not retired.
                    let mut buf = unsafe { node.decode(self.top_bits) };
                    buf.top_leaf = want;
                    self.replace_root(s, node, buf, limbo);
                }
            }
        }
        old
    }

    /// The leaf of exactly `a/len` (len > T) in the nodes, 0 if absent.
    fn find_deep(&self, a: W, len: u32) -> u32 {
        self.find_owner(a, len).map_or(0, |(_, _, o)| o.leaf)
    }

    /// The node owning the prefix `a/len` (len > T), its stride's start and
    /// the prefix's owned entry; None if the prefix is absent.
    fn find_owner(&self, a: W, len: u32) -> Option<(NodeRef, u32, Owned)> {
        let (_, mut node) = self.top_slot(a.top(self.top_bits));
        let mut o = self.top_bits;
        while let Some(n) = node {
            // SAFETY: the writer only reads nodes it has not retired.
            let (skip, expected) = unsafe { n.skip() };
            if skip != 0 {
                // A prefix ending inside a skipped run would own a node,
                // and a path off the run has no node: absent either way.
                if len <= o + skip || a.bits(o, skip) != expected {
                    return None;
                }
                o += skip;
            }
            if len <= o + STRIDE {
                let first = Self::net(a, len).chunk(o) as u8;
                // SAFETY: as above; the owned section lies within the node.
                return unsafe { n.owned(o) }
                    .find(|w| w.len as u32 == len && w.slot == first)
                    .map(|w| (n, o, w));
            }
            // SAFETY: as above.
            let child_bits = unsafe { n.word(W_CHILD) };
            let v = a.chunk(o);
            node = (child_bits >> v & 1 == 1)
                // SAFETY: as above; the index is within the node.
                .then(|| {
                    NodeRef(unsafe { n.word(HEADER + rank_incl(child_bits, v) - 1) } as *const u64)
                });
            o += STRIDE;
        }
        None
    }

    /// Changes the leaf of an existing deep prefix from `old` to `leaf`
    /// (both non-zero) in place, if the node's runs stay as they are (the
    /// new leaf neither merges with a neighbouring run nor splits one): the changed leaf words
    /// are stored with one atomic store each, and the owned entry is
    /// rewritten in the writer section. Returns whether it did; if not,
    /// nothing was written and the caller rebuilds the path.
    ///
    /// Why a lookup racing this still answers one moment: it reads each
    /// leaf word once, and whether a slot's leaf is 0 (falls through to
    /// the best leaf above) is unchanged, since both leaves are non-zero.
    /// So the word that decides a lookup is the same before and after, and
    /// the lookup answers what that word held at one instant.
    fn update_in_place(&self, n: NodeRef, start: u32, owned: Owned, leaf: u32) -> bool {
        // SAFETY: the writer only reads nodes it has not retired; every
        // index below is within the node's sections. The node is an arena
        // block, writable memory (`NodeRef` is `*const` by convention
        // only); the writer lock keeps other writers out; readers touch
        // its leaf words only atomically (see `NodeRef::atomic`) and never
        // its owned section, so neither store below races a plain access.
        unsafe {
            let sec = n.sections();
            let mut list: SmallVec<[Owned; 16]> = n.owned(start).collect();
            let Some(k) = list.iter().position(|w| *w == owned) else {
                return false;
            };
            let before = slot_values_of(&list, start);
            list[k].leaf = leaf;
            let after = slot_values_of(&list, start);
            let leaf_bits = n.word(W_LEAF);
            if run_starts(&after) != leaf_bits {
                return false;
            }
            let leaves = HEADER + n.word(W_CHILD).count_ones() as usize;
            let mut run = 0;
            let mut dirty = 0u64; // leaf words (pairs of runs) to store
            let mut values = [0u32; SLOTS];
            for v in 0..SLOTS {
                if leaf_bits >> v & 1 == 1 {
                    values[run] = after[v];
                    if after[v] != before[v] {
                        dirty |= 1 << (run / 2);
                    }
                    run += 1;
                }
            }
            while dirty != 0 {
                let pair = dirty.trailing_zeros() as usize;
                dirty &= dirty - 1;
                let word = values[2 * pair] as u64 | (values[2 * pair + 1] as u64) << 32;
                // Release pairs with the lookup's Acquire load of the word:
                // the new leaf's next-hop entry was published before it.
                n.atomic(leaves + pair).store(word, Ordering::Release);
            }
            // Lookups never read the owned section: a plain write of the
            // word holding the entry, its other half as it was.
            let at = sec.owned + k / 2;
            let shift = 32 * (k & 1);
            let word =
                n.word(at) & !(0xffff_ffff_u64 << shift) | (list[k].pack(start) as u64) << shift;
            *(n.0 as *mut u64).add(at) = word;
        }
        true
    }

    fn update_deep(&self, a: W, len: u32, leaf: u32, limbo: &mut FibLimbo) -> u32 {
        let found = self.find_owner(a, len);
        let old = found.map_or(0, |(_, _, o)| o.leaf);
        if old == leaf {
            return old;
        }
        // A new next hop for an existing prefix (most of a day of BGP
        // updates) usually leaves the node's runs as they are.
        if let Some((n, start, owned)) = found
            && leaf != 0
            && self.update_in_place(n, start, owned, leaf)
        {
            return old;
        }
        let s = a.top(self.top_bits);
        let (top_leaf, root) = self.top_slot(s);
        let mut retired = Retired::new();
        match self.rebuild(root, self.top_bits, a, len, leaf, &mut retired) {
            Some(mut buf) => {
                // Whatever node now hangs from the top word carries the
                // slot's top-level leaf.
                buf.top_leaf = top_leaf;
                let w = self.encode_root(&buf);
                // Release: see `lookup`.
                self.top[s].store(w, Ordering::Release);
            }
            // No more-specifics left in the slot: back to a plain leaf.
            None => self.top[s].store(leaf_entry(top_leaf), Ordering::Release),
        }
        self.retire(retired, limbo);
        old
    }

    /// The node that replaces `node` (None: absent), whose skip begins at
    /// offset `o`, after setting (`leaf != 0`) or removing the prefix
    /// `a/len` (`len > o`); None if nothing is left. Returned unencoded so
    /// the caller can stamp it; nodes it replaces are pushed to `retired`.
    /// The caller has checked that the update changes something.
    fn rebuild(
        &self,
        node: Option<NodeRef>,
        o: u32,
        a: W,
        len: u32,
        leaf: u32,
        retired: &mut Retired,
    ) -> Option<NodeBuf> {
        let Some(n) = node else {
            if leaf == 0 {
                return None;
            }
            // A fresh node at the stride where the prefix ends, reached by
            // skipping the strides in between.
            let start = o + STRIDE * ((len - 1 - o) / STRIDE);
            let mut buf = NodeBuf::empty(start, start - o, a.bits(o, start - o));
            buf.owned.push(Owned {
                len: len as u8,
                slot: Self::net(a, len).chunk(start) as u8,
                leaf,
            });
            return Some(buf);
        };
        // SAFETY: the writer only reads nodes it has not retired.
        let mut buf = unsafe { n.decode(o) };
        retired.push(n);
        let skip = buf.skip;
        // How many of the prefix's bits agree with the skipped run.
        let defined = skip.min(len - o);
        let diff = a.bits(o, defined) ^ (buf.expected >> (skip - defined));
        let agree = if diff == 0 {
            defined
        } else {
            diff.leading_zeros() - (128 - defined)
        };
        if agree == skip && len > o + skip {
            // The prefix lies at or below this node's stride.
            let start = buf.start;
            if len <= start + STRIDE {
                let first = Self::net(a, len).chunk(start) as u8;
                buf.owned
                    .retain(|w| !(w.len as u32 == len && w.slot == first));
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
                    .rebuild(child, start + STRIDE, a, len, leaf, retired)
                    .map_or(0, |c| self.encode_child(c) as u64);
            }
            return self.normalize(buf, retired);
        }
        if leaf == 0 {
            // Removing a prefix that is not here (callers check first):
            // keep the node as it was.
            return Some(buf);
        }
        // The prefix leaves the skipped run (or ends inside it): split the
        // run at the stride where that happens.
        let at = agree.min(len - 1 - o);
        let split = o + STRIDE * (at / STRIDE);
        let above = split - o;
        let mut top = NodeBuf::empty(split, above, buf.expected >> (skip - above));
        let below = skip - above - STRIDE;
        let old_slot = (buf.expected >> below) as usize & (SLOTS - 1);
        buf.skip = below;
        buf.expected &= if below == 0 {
            0
        } else {
            u128::MAX >> (128 - below)
        };
        top.children[old_slot] = self.encode_child(buf) as u64;
        if len <= split + STRIDE {
            top.owned.push(Owned {
                len: len as u8,
                slot: Self::net(a, len).chunk(split) as u8,
                leaf,
            });
        } else {
            let fresh = self.rebuild(None, split + STRIDE, a, len, leaf, retired);
            top.children[a.chunk(split)] = fresh.map_or(0, |c| self.encode_child(c) as u64);
        }
        Some(top)
    }

    /// Applies path compression to a rebuilt node: None if empty; if it
    /// owns nothing and has one child, that child takes its place with the
    /// node's skip, stride bits and its own skip as one longer skip.
    fn normalize(&self, buf: NodeBuf, retired: &mut Retired) -> Option<NodeBuf> {
        if buf.is_empty() {
            return None;
        }
        let Some((v, child)) = buf.sole_child() else {
            return Some(buf);
        };
        let c = NodeRef(child as *const u64);
        // SAFETY: the child is live and not yet retired (the writer only
        // retires what it replaces, and it is replaced right here).
        let mut merged = unsafe { c.decode(buf.start + STRIDE) };
        retired.push(c);
        // The child's pointer was counted when it was encoded; it is now
        // retired and re-encoded by the caller.
        merged.expected |= ((buf.expected << STRIDE) | v as u128) << merged.skip;
        merged.skip += buf.skip + STRIDE;
        Some(merged)
    }

    /// Encodes a node that a top-level entry will name; returns the entry.
    fn encode_root(&self, buf: &NodeBuf) -> u32 {
        let p = self.nodes.store(&buf.encode());
        self.node_entry(p)
    }

    /// Encodes a node below a root; returns its pointer.
    fn encode_child(&self, mut buf: NodeBuf) -> *const u64 {
        // A former root (split below a new one) gives up its top leaf,
        // which only a root's readers use.
        buf.top_leaf = 0;
        self.nodes.store(&buf.encode())
    }

    fn replace_root(&self, s: usize, old: NodeRef, buf: NodeBuf, limbo: &mut FibLimbo) {
        let w = self.encode_root(&buf);
        // Release: see `lookup`.
        self.top[s].store(w, Ordering::Release);
        self.retire(smallvec::smallvec![old], limbo);
    }

    fn retire(&self, nodes: Retired, limbo: &mut FibLimbo) {
        for n in nodes {
            // SAFETY: still live (only now handed to the FIB's QSBR limbo, which
            // frees it once every reader has passed a quiescent state), stored
            // by `store` with exactly `len_words` words; unlinked before
            // this call (the new path or leaf is already published).
            limbo.retire(Garbage::Node(unsafe {
                self.nodes.retire(n.0, n.len_words() * 8)
            }));
        }
    }

    /// Bytes held by the lookup structure: the top level and the node
    /// arena's chunks.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.top.bytes() + self.nodes.bytes()
    }

    /// Bytes in live nodes (the arena holds them and free blocks).
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::synth::SplitMix64;

    /// The IPv6 trie through a day's worth of next-hop changes on nested
    /// prefixes sharing nodes, against brute force; and whether the
    /// changes were made in place.
    struct Harness {
        trie: Trie<u128>,
        shadow: TrieShadow<u128>,
        limbo: FibLimbo,
        model: HashMap<(u128, u32), u32>,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                trie: Trie::new(18),
                shadow: TrieShadow::new(18),
                limbo: FibLimbo::default(),
                model: HashMap::new(),
            }
        }

        /// Sets `net/len` to `leaf`; returns whether the write copied no
        /// node (nothing allocated, nothing retired).
        fn set(&mut self, net: u128, len: u32, leaf: u32) -> bool {
            let (nodes, retired) = (self.trie.nodes.count(), self.limbo.open_len());
            let old = self
                .trie
                .update(&mut self.shadow, net, len, leaf, &mut self.limbo);
            let want = self.model.get(&(net, len)).copied().unwrap_or(0);
            assert_eq!(old, want, "old leaf of {net:#x}/{len}");
            if leaf == 0 {
                self.model.remove(&(net, len));
            } else {
                self.model.insert((net, len), leaf);
            }
            nodes == self.trie.nodes.count() && retired == self.limbo.open_len()
        }

        fn check(&self, probes: &[u128]) {
            for &a in probes {
                let want = self
                    .model
                    .iter()
                    .filter(|((net, len), _)| a.network(*len) == *net)
                    .max_by_key(|((_, len), _)| *len)
                    .map_or(0, |(_, leaf)| *leaf);
                assert_eq!(self.trie.lookup(a), want, "lookup {a:#x}");
            }
        }
    }

    /// Would catch a packed owned entry that decodes to another length,
    /// slot or next-hop id, for any stride start, code or id up to 24 bits
    /// (group ids included) (planted: `unpack` reading the slot one bit
    /// short fails at once).
    #[test]
    fn owned_entries_round_trip_through_their_packing() {
        for start in [18u32, 24, 120, 126] {
            for r in 1..=STRIDE {
                for first in 0..1u32 << r {
                    for id in [1u32, 0x7f_ffff, 0x80_0000, 0xff_ffff] {
                        let len = start + r;
                        let o = Owned {
                            len: len as u8,
                            slot: (first << (STRIDE - r)) as u8,
                            leaf: id << 8 | len,
                        };
                        assert_eq!(Owned::unpack(o.pack(start), start), o, "{o:?} at {start}");
                    }
                }
            }
        }
    }

    /// Would catch an in-place next-hop change that stores a wrong leaf
    /// word or the wrong half of a pair, that leaves the writer's owned
    /// entry stale (a later rebuild or removal then brings back the old
    /// leaf, and `update` returns it), or that keeps two equal runs apart
    /// instead of rebuilding; and, by counting, a fast path never taken
    /// (planted: the pair's second leaf stored as 0 fails the lookup
    /// check at once); and a writer section whose packed 32-bit entries
    /// decode to another length or slot (planted: `Owned::unpack` off by
    /// one length for the longest prefixes fails here and in
    /// `tests/fib.rs`).
    #[test]
    fn next_hop_changes_in_place_agree_with_brute_force() {
        let mut rng = SplitMix64::new(7);
        let mut h = Harness::new();
        let base = 0x2001_0db8_u128 << 96;
        let mut prefixes = Vec::new();
        for _ in 0..200 {
            // /21../64 under one /32 (shared nodes, nested strides), and a
            // few host routes.
            let len = if rng.below(10) == 0 {
                128
            } else {
                21 + rng.below(44) as u32
            };
            let bits = base | (rng.next_u64() as u128) << 32 | rng.next_u64() as u128;
            let net = bits.network(len);
            prefixes.push((net, len));
        }
        let leaf = |rng: &mut SplitMix64, len: u32| (1 + rng.below(6) as u32) << 8 | len;
        for &(net, len) in &prefixes {
            let l = leaf(&mut rng, len);
            h.set(net, len, l);
        }
        let probes: Vec<u128> = prefixes
            .iter()
            .flat_map(|&(net, len)| {
                let span = u128::MAX.checked_shr(len).unwrap_or(0);
                [
                    net,
                    net | span,
                    net.wrapping_sub(1),
                    (net | span).wrapping_add(1),
                ]
            })
            .collect();
        h.check(&probes);
        let (mut in_place, mut changes) = (0, 0);
        for i in 0..3000 {
            let (net, len) = prefixes[rng.below(prefixes.len() as u64) as usize];
            let before = h.model.get(&(net, len)).copied();
            let l = if rng.below(8) == 0 {
                0
            } else {
                leaf(&mut rng, len)
            };
            let copied_nothing = h.set(net, len, l);
            if before.is_some_and(|b| b != l) && l != 0 {
                changes += 1;
                in_place += copied_nothing as usize;
            }
            if i % 16 == 0 {
                h.check(&probes);
            }
        }
        h.check(&probes);
        assert!(
            in_place * 2 > changes,
            "only {in_place} of {changes} next-hop changes were made in place"
        );
    }
}
