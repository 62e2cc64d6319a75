//! IPv4's forwarding core: a 2^16-entry root that stays in L2 over one
//! popcount-compressed chunk per /16 block.
//!
//! # Why this shape
//! A lookup costs what it misses in the cache. DIR-24-8 pays one miss into
//! a 64 MiB table; the DIR-20-4-4-4 core this replaces paid two (a 4 MiB
//! top level that does not stay in L2, then a node). Here the root is 2^16
//! 32-bit entries, 256 KiB, so it stays in L2 under traffic, and every
//! block's /17-/24 prefixes are compiled into one *chunk*: the 256 /24
//! slots of the block as runs of equal answers (a 256-bit bitmap marks
//! where a run starts, and a leaf vector holds each run's answer), as in
//! Poptrie's leaf vectors and DXR's range chunks.
//!
//! # Cost model
//! A lookup reads the root entry (an L2 hit), the chunk's first cache line
//! (bitmap, run counts and the first six runs) and, for a chunk of more
//! than six runs, the line of its run: **one L2 hit and one or two misses**,
//! the second in the same chunk, which the batch pipeline prefetches in a
//! stage of its own (the root needs no prefetch: it is in L2). Prefixes
//! longer than /24 hang a *sub-chunk* of the same layout under their /24
//! slot (one more miss, for those addresses only). In cycles, a scalar
//! lookup is bounded less by its misses than by how many lookups fit the
//! core's reorder window at once, so its instruction count matters as
//! much: about 25 from address to leaf, against about 10 for DIR-24-8,
//! whose single miss goes to memory. The RIS table (1,042,325 prefixes,
//! 26,502 blocks with /17-/24 prefixes, 44 runs a block on average)
//! compiles to about 6 bytes a prefix of chunks plus the 256 KiB root.
//!
//! # Chunk layout (32-bit words, 64-byte aligned)
//! `[bitmap: 8 words][run counts][inherited][leaves..]`. The bitmap's
//! 256 bits, read as four little-endian 64-bit words, mark the slots where
//! a run starts (slot 0 always does); the run counts are four bytes, the
//! number of runs starting before each 64-bit word, so a slot's run is one
//! popcount away: `counts[x / 64] + popcount(bitmap[x / 64] << (63 - x %
//! 64)) - 1` (the count a byte load, on the path of every lookup). A
//! leaf is the FIB's own `next-hop id << 8 | length` (lengths end at 32,
//! so bit 7 is clear), which a lookup hands on as it reads it: `0` is no
//! route, and a word with bit 7 set names a sub-chunk (`arena id << 8 |
//! 0x80`). Slots no /17-/24 prefix covers hold the block's *inherited*
//! match (the longest prefix of /16 or shorter covering it, or 0),
//! resolved into their leaves, so a lookup never reads a second word; the
//! `inherited` header word records it for the writer. In a sub-chunk, the
//! inherited match is the /24 slot's own: its /17-/24 match, else the
//! block's.
//!
//! # Updates
//! The bitmap, counts and run layout of a published chunk never change;
//! its leaves are atomic words, stored in place one word at a time, so
//! every answer is one word read once (see [`Compact::finish_span`]). The
//! writer keeps each block's prefixes longer than /16 in a sorted list. A
//! change of a /17-/24 prefix repaints the prefix's slots from the list
//! and either stores the leaves of the runs it changed in place (the runs
//! stay where they were: a next hop's change of an existing prefix, or a
//! removal whose slots fall back to a run that already holds its cover),
//! or publishes a copy of the chunk whose runs outside those slots are
//! copied whole, with one Release store into the root. A change of a /25-/32
//! prefix rebuilds its slot's sub-chunk and swaps the reference in place;
//! a slot's first long prefix or its last one goes through the chunk like
//! a /24. A change of a prefix of /16 or shorter stores, for each block it
//! covers whose match changes, the new match into the block's root entry,
//! or into each leaf of its chunk (and of the sub-chunks that fall through
//! to it) holding the old match: a leaf holds the inherited match exactly
//! when it equals it, as own leaves are longer and never 0, so the runs
//! stay canonical. Adding or removing a default route over the RIS table
//! copies nothing (1.6-2.8 ms measured, one scan and stores over the 4.7 MB
//! of leaves). Bulk writers gather a block's changes and compile it once
//! ([`Compact::update_deferred`]). Replaced chunks go to the FIB's QSBR
//! limbo and back to the arena after a grace period.
//!
//! # Proof
//! Loom cannot reach this core: its atomics are words of the huge-page
//! root and of arena blocks, reinterpreted in place, which loom's own
//! atomic types cannot stand for; the reclamation protocol they rely on is
//! loom-checked in `loom-tests/tests/fib_qsbr.rs`. The core is checked
//! against a brute-force longest match through random changes of every
//! length (the tests below, which also check every chunk's and
//! sub-chunk's canonical form and inherited match), and under concurrent
//! readers by `tests/fib.rs`'s `untouched_*_never_flickers_*` (a route no
//! write touches answers every lookup while chunks are patched, copied,
//! their sub-chunks swapped and their inherited leaves rewritten around
//! it), `tests/stress.rs` and `tests/linearizability.rs`. Why an
//! answer is never a mix of two moments is argued at
//! [`Compact::finish_span`].

use std::sync::atomic::{AtomicU32, Ordering};

use smallvec::SmallVec;

use super::arena::{Block, NodeStore};
use super::pages::ZeroedWords;
use super::trie::{TrieShadow, prefetch};
use super::{FibLimbo, Garbage};
use crate::prefix::AddrBits as Word;

/// Bits of the root.
pub(crate) const TOP_BITS: u32 = 16;
/// Slots of a chunk: the 256 /24s of a block, or the 256 addresses of a
/// /24 in a sub-chunk.
const SPAN: usize = 256;
/// The arena's unit in 64-bit words: 64 bytes, so a chunk's header and
/// first runs share one cache line.
const UNIT_WORDS: usize = 8;
/// Word of the run counts.
const W_COUNTS: usize = 8;
/// Word of the inherited match.
const W_INHERITED: usize = 9;
/// Word of the first run's leaf.
const W_LEAVES: usize = 10;
/// Bit 7: the entry names a chunk (`id << 8 | CHUNK`). Leaves are stored
/// as they are (`id << 8 | len`; IPv4 lengths end at 32, so bit 7 is
/// clear), so a lookup hands its word on without decoding it.
const CHUNK: u32 = 0x80;
/// Chunk ids fit the 24 bits above the flag: 512 of the arena's 2 MiB
/// chunks, 1 GiB of chunks (the RIS table takes 6 MiB; filling it takes
/// over ten million prefixes longer than /24 in distinct /24s). The FIB
/// refuses adds and changes before that (see [`Compact::is_full`]).
const MAX_CHUNK_ID: u32 = 1 << 24;
/// Arena chunks whose ids fit [`MAX_CHUNK_ID`].
const MAX_ARENA_CHUNKS: usize = (MAX_CHUNK_ID as usize * UNIT_WORDS * 8) >> 21;
// 2^24 units of 64 bytes are 512 chunks of 2 MiB, within the arena's own
// limit.
const _: () = assert!(MAX_ARENA_CHUNKS == 512 && MAX_ARENA_CHUNKS <= super::arena::MAX_CHUNKS);

/// Whether an entry names a chunk.
#[inline(always)]
fn is_chunk(e: u32) -> bool {
    e & CHUNK != 0
}

/// A published chunk or sub-chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ChunkRef(*const u32);

impl ChunkRef {
    /// The atomic word `i` (the inherited match and the leaves, which the
    /// writer may store in place).
    ///
    /// # Safety
    /// The chunk must be live and `i` within it.
    #[inline(always)]
    unsafe fn atomic<'a>(self, i: usize) -> &'a AtomicU32 {
        // SAFETY: the caller's contract; the arena's words are u32-aligned
        // and `AtomicU32` has `u32`'s layout.
        unsafe { &*(self.0.add(i) as *const AtomicU32) }
    }

    /// The index of slot `x`'s run.
    ///
    /// # Safety
    /// As for `atomic`.
    #[inline(always)]
    unsafe fn rank(self, x: usize) -> usize {
        // SAFETY: the bitmap and counts are the first 9 words of every
        // chunk, written before publication and never after, so plain
        // reads race with nothing.
        unsafe {
            let bits = *(self.0 as *const u64).add(x >> 6);
            // One byte per 64-bit word (see `write_header`): a byte load
            // instead of a shift and a mask, on the path of every lookup.
            let before = *(self.0.add(W_COUNTS) as *const u8).add(x >> 6);
            before as usize + (bits << (63 - (x & 63))).count_ones() as usize - 1
        }
    }

    /// Slot `x`'s leaf or sub-chunk entry.
    ///
    /// # Safety
    /// As for `atomic`; the caller is pinned (or is the writer).
    #[inline(always)]
    unsafe fn slot(self, x: usize) -> u32 {
        // Acquire pairs with the writer's in-place Release stores: of a new
        // sub-chunk's entry (the sub-chunk's words are visible first) and
        // of a leaf naming a next-hop id (the id's entry is published
        // first).
        // SAFETY: forwarded; the run index is within the leaves.
        unsafe { self.atomic(W_LEAVES + self.rank(x)).load(Ordering::Acquire) }
    }

    /// The inherited match (writer side: lookups read the leaves it was
    /// resolved into).
    ///
    /// # Safety
    /// As for `slot`.
    unsafe fn inherited(self) -> u32 {
        // Relaxed: only the writer reads it, and only the writer stores.
        // SAFETY: forwarded.
        unsafe { self.atomic(W_INHERITED).load(Ordering::Relaxed) }
    }

    /// The address of slot `x`'s leaf, for a prefetch.
    ///
    /// # Safety
    /// As for `atomic`.
    #[inline(always)]
    unsafe fn slot_addr(self, x: usize) -> *const u8 {
        // SAFETY: forwarded.
        unsafe { self.0.add(W_LEAVES + self.rank(x)) as *const u8 }
    }

    /// Words in the chunk.
    ///
    /// # Safety
    /// As for `atomic`.
    unsafe fn len_words(self) -> usize {
        // SAFETY: forwarded; the bitmap is the first 4 u64 words.
        let runs: u32 = (0..4)
            .map(|i| unsafe { *(self.0 as *const u64).add(i) }.count_ones())
            .sum();
        W_LEAVES + runs as usize
    }

    /// Every slot's leaf.
    ///
    /// # Safety
    /// As for `slot`.
    unsafe fn decode(self) -> [u32; SPAN] {
        let mut vals = [0u32; SPAN];
        let mut run = W_LEAVES;
        let mut cur = 0;
        for (x, v) in vals.iter_mut().enumerate() {
            // SAFETY: as in `rank`; `run` stays within the leaves, as
            // there are as many leaves as set bits.
            unsafe {
                if *(self.0 as *const u64).add(x >> 6) >> (x & 63) & 1 == 1 {
                    cur = self.atomic(run).load(Ordering::Relaxed); // only the writer decodes
                    run += 1;
                }
            }
            *v = cur;
        }
        vals
    }
}

/// How many runs start before slot `x` (`x` <= 256).
fn runs_below(bits: &[u64; 4], x: usize) -> usize {
    let full: u32 = bits[..x >> 6].iter().map(|b| b.count_ones()).sum();
    let part = if x & 63 == 0 {
        0
    } else {
        (bits[x >> 6] << (64 - (x & 63))).count_ones()
    };
    (full + part) as usize
}

/// A chunk's words, on the stack: at most 256 runs.
type Words = SmallVec<[u32; W_LEAVES + SPAN]>;

/// Encodes slot leaves as a chunk inheriting `inherited`.
fn encode(vals: &[u32; SPAN], inherited: u32) -> Words {
    let mut bits = [0u64; 4];
    let mut words = Words::new();
    words.resize(W_LEAVES, 0);
    for (x, &v) in vals.iter().enumerate() {
        if x == 0 || v != vals[x - 1] {
            bits[x >> 6] |= 1 << (x & 63);
            words.push(v);
        }
    }
    write_header(&mut words, &bits, inherited);
    words
}

/// Fills a chunk's header (its first `W_LEAVES` words): the run-start
/// bitmap, the run counts before each 64-bit word, the inherited match.
fn write_header(words: &mut Words, bits: &[u64; 4], inherited: u32) {
    let mut counts = [0u8; 4];
    let mut before = 0u32;
    for (i, b) in bits.iter().enumerate() {
        words[2 * i] = *b as u32;
        words[2 * i + 1] = (*b >> 32) as u32;
        // At most 192 runs start before the last word: a byte holds it.
        counts[i] = before as u8;
        before += b.count_ones();
    }
    // Native byte order: byte `i` of the word in memory is count `i`,
    // which is how `ChunkRef::rank` reads it.
    words[W_COUNTS] = u32::from_ne_bytes(counts);
    words[W_INHERITED] = inherited;
}

/// The writer's list of each block's prefixes longer than /16: per block,
/// sorted `low 16 bits << 40 | length << 32 | leaf` words, so a block's
/// prefixes come in address-then-length order (every prefix before the
/// longer ones inside it), the order a compile paints them in.
#[derive(Default)]
pub(crate) struct BlockShadow {
    blocks: Vec<Vec<u64>>,
}

impl BlockShadow {
    fn for_blocks(n: usize) -> Self {
        BlockShadow {
            blocks: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    fn key(low: u32, len: u32) -> u64 {
        (low as u64) << 8 | len as u64
    }

    /// The leaf of exactly `low/len` in block `b` (0: absent).
    fn get(&self, b: usize, low: u32, len: u32) -> u32 {
        let list = &self.blocks[b];
        let k = Self::key(low, len);
        list.binary_search_by_key(&k, |e| e >> 32)
            .map_or(0, |i| list[i] as u32)
    }

    /// The leaf of the longest prefix in block `b` that contains
    /// `low/len` and is shorter, if any. Entries before `low/len` in the
    /// list, scanned backwards, meet the containing prefixes longest first
    /// (a containing prefix's low bits are `low` masked to its length,
    /// which grows with the length), and all lie in `low`'s /17: a scan of
    /// that half block's entries at most, in lines the search has just
    /// read.
    fn cover(&self, b: usize, low: u32, len: u32) -> Option<u32> {
        let list = &self.blocks[b];
        let at = list.partition_point(|e| e >> 32 < Self::key(low, len));
        let floor = low & 0x8000;
        list[..at]
            .iter()
            .rev()
            .take_while(|e| (**e >> 40) as u32 >= floor)
            .find(|e| {
                let l = (*e >> 32) as u32 & 0xff;
                let mask = (0xffff_u32 << (32 - l)) & 0xffff;
                l < len && (*e >> 40) as u32 == low & mask
            })
            .map(|e| *e as u32)
    }

    /// Sets (`leaf != 0`) or removes `low/len` in block `b`; the old leaf.
    fn set(&mut self, b: usize, low: u32, len: u32, leaf: u32) -> u32 {
        let list = &mut self.blocks[b];
        let k = Self::key(low, len);
        match list.binary_search_by_key(&k, |e| e >> 32) {
            Ok(i) => {
                let old = list[i] as u32;
                if leaf == 0 {
                    list.remove(i);
                    if list.is_empty() {
                        *list = Vec::new(); // an emptied block holds nothing
                    } else if list.capacity() - list.len() > Self::headroom(list.len()) * 2 {
                        list.shrink_to(list.len() + Self::headroom(list.len()));
                    }
                } else {
                    list[i] = k << 32 | leaf as u64;
                }
                old
            }
            Err(i) => {
                if leaf != 0 {
                    if list.len() == list.capacity() {
                        list.reserve_exact(Self::headroom(list.len()));
                    }
                    list.insert(i, k << 32 | leaf as u64);
                }
                0
            }
        }
    }

    /// Room a list of `len` entries grows by: a quarter, not the doubling
    /// of `Vec::push`. The lists are most of the writer's memory (8 bytes
    /// a prefix), and doubling left about 3.6 MB of the RIS table's
    /// 13.5 MB idle; a quarter leaves about 1.1 MB and keeps the table's
    /// build time (an eighth left 0.5 MB but took 60% longer to build).
    fn headroom(len: usize) -> usize {
        (len / 4).max(4)
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Vec<u64>>()
            + self.blocks.iter().map(|b| b.capacity() * 8).sum::<usize>()
    }
}

/// The block a bulk writer's changes wait in (see
/// [`Compact::update_deferred`]).
#[derive(Default)]
pub(crate) struct Deferred(Option<Pending>);

/// A block's held-back changes.
struct Pending {
    block: usize,
    /// The /24 slots whose sub-chunks the changes touched.
    dirty: [u64; 4],
    /// The first change's slot and prefix length, and how many changes
    /// there were: a lone change is published as [`Compact::update`]
    /// would (a random-order load holds one change per block).
    first: (usize, u32),
    changes: u32,
}

impl Deferred {
    /// Whether a block waits to be compiled.
    pub(crate) fn is_pending(&self) -> bool {
        self.0.is_some()
    }
}

/// The chunks one compile replaces.
type Retired = SmallVec<[ChunkRef; 4]>;

/// The IPv4 core. Addresses are passed as their [`Word`] (only 32-bit
/// words are used with it).
pub(crate) struct Compact<W> {
    _word: std::marker::PhantomData<W>,
    top: ZeroedWords,
    chunks: NodeStore<UNIT_WORDS>,
}

impl<W: Word> Compact<W> {
    pub(crate) fn new() -> Self {
        debug_assert_eq!(W::BITS, 32, "the compact core is for IPv4");
        Compact {
            _word: std::marker::PhantomData,
            top: ZeroedWords::new(1 << TOP_BITS),
            chunks: NodeStore::new(),
        }
    }

    /// The writer's block lists for this core.
    pub(crate) fn new_shadow() -> BlockShadow {
        BlockShadow::for_blocks(1 << TOP_BITS)
    }

    /// The root entry of `a`, without a bounds check (a lookup's
    /// instruction count bounds how many lookups a core keeps in flight).
    #[inline(always)]
    fn top_slot(&self, a: W) -> &AtomicU32 {
        let i = a.top(TOP_BITS);
        debug_assert!(i < self.top.len());
        // SAFETY: `top` has `1 << TOP_BITS` words, and the first TOP_BITS
        // bits of an address are below that.
        unsafe { self.top.get_unchecked(i) }
    }

    #[inline(always)]
    fn chunk(&self, e: u32) -> ChunkRef {
        ChunkRef(self.chunks.resolve(e >> 8) as *const u32)
    }

    /// Stores a chunk's words; the entry naming it.
    fn store_chunk(&self, words: &[u32]) -> u32 {
        let p = self.chunks.store(words);
        // SAFETY: `p` was just stored.
        let id = unsafe { self.chunks.id_of(p) };
        // Unreachable while writers honour `is_full`: one write allocates
        // at most a chunk and 256 sub-chunks (under 300 KB), and
        // `is_full` keeps a whole 2 MiB chunk in reserve.
        assert!(id < MAX_CHUNK_ID, "IPv4 FIB chunks past 1 GiB");
        id << 8 | CHUNK
    }

    /// Whether the chunk ids are nearly spent: the last 2 MiB chunk the
    /// ids can name is kept in reserve, so the FIB refuses adds and
    /// changes from here on (counted as dropped, like an exhausted next-hop
    /// id) and still takes removals, whose copies the reserve covers.
    pub(crate) fn is_full(&self) -> bool {
        self.chunks.chunks() + 1 >= MAX_ARENA_CHUNKS
    }

    /// The low 16 bits of the network `a/len`: its key within its block.
    fn low16(a: W, len: u32) -> u32 {
        a.network(len).top(32) as u32 & 0xffff
    }

    /// The third and fourth bytes of `a`.
    #[inline(always)]
    fn bytes34(a: W) -> (usize, usize) {
        (a.top(24) & 0xff, a.top(32) & 0xff)
    }

    /// The leaf of the longest prefix covering `a` (0 if none). The caller
    /// must be pinned for as long as it uses the result's next-hop id.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: W) -> u32 {
        // Acquire pairs with the writer's Release stores: a chunk (and
        // every sub-chunk it names) is fully written before its entry is
        // published.
        let e = self.top_slot(a).load(Ordering::Acquire);
        if !is_chunk(e) {
            return e;
        }
        // SAFETY: the entry was published while we were pinned; chunks are
        // freed a grace period after being unlinked.
        unsafe { self.finish(self.chunk(e), a) }
    }

    /// The lookup's leaf from its block's chunk on.
    ///
    /// # Safety
    /// `c` must be live, and the caller pinned, for the whole walk.
    #[inline(always)]
    unsafe fn finish(&self, c: ChunkRef, a: W) -> u32 {
        // SAFETY: forwarded.
        unsafe { self.finish_span(c, a).0 }
    }

    /// [`finish`](Self::finish), and whether a sub-chunk decided it.
    ///
    /// Every answer is one word read once: a run's leaf, or a sub-chunk
    /// run's leaf when the run names a sub-chunk. Inherited matches are
    /// resolved into the leaves, so a lookup racing any number of writes
    /// answers what that one word held at one instant: the answer of some
    /// moment of the lookup, never a mix of two.
    ///
    /// # Safety
    /// As for `finish`.
    #[inline(always)]
    unsafe fn finish_span(&self, c: ChunkRef, a: W) -> (u32, bool) {
        let (x, y) = Self::bytes34(a);
        // SAFETY: the caller's contract; a sub-chunk named by a live chunk
        // is live (it is retired only after being unlinked).
        unsafe {
            let v = c.slot(x);
            (self.below(v, y), is_chunk(v))
        }
    }

    /// The answer of a run's word `v` for last byte `y`: `v` itself, or
    /// the leaf of its sub-chunk.
    ///
    /// # Safety
    /// `v` was read from a live chunk by a caller pinned since.
    #[inline(always)]
    unsafe fn below(&self, v: u32, y: usize) -> u32 {
        if is_chunk(v) {
            // SAFETY: the caller's contract; a sub-chunk named by a live
            // chunk is live (it is retired only after being unlinked).
            unsafe { self.chunk(v).slot(y) }
        } else {
            v
        }
    }

    /// As [`lookup`](Self::lookup), also returning how many leading bits
    /// of `a` decided the answer: every address sharing them gets the same
    /// leaf (the walk of `LpmFib::walk_lookups`).
    pub(crate) fn lookup_span(&self, a: W) -> (u32, u32) {
        // Acquire: see `lookup`.
        let e = self.top_slot(a).load(Ordering::Acquire);
        if !is_chunk(e) {
            return (e, TOP_BITS);
        }
        // SAFETY: as in `lookup` (the caller is pinned).
        let (leaf, sub) = unsafe { self.finish_span(self.chunk(e), a) };
        (leaf, if sub { 32 } else { 24 })
    }

    /// The raw root entry of slot `s` (for the walk: equal entries give
    /// equal answers).
    pub(crate) fn top_entry(&self, s: usize) -> u32 {
        // Acquire: see `lookup`.
        self.top[s].load(Ordering::Acquire)
    }

    /// Prefetches the root entry of `a` (the writer's hint; the batch
    /// pipeline needs none, see `Stages for Compact`).
    #[inline(always)]
    pub(crate) fn prefetch_top(&self, a: W) {
        prefetch(self.top_slot(a).as_ptr() as *const u8);
    }

    /// Loads the root entries of a group and prefetches each chunk's first
    /// line (batch stage 2). A chunk entry is handed on resolved, as its
    /// address (64-byte aligned, so bit 0 clear), a leaf as `leaf << 1 |
    /// 1`.
    #[inline(always)]
    pub(crate) fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        for (w, a) in words.iter_mut().zip(addrs) {
            // Acquire: see `lookup`.
            let e = self.top_slot(*a).load(Ordering::Acquire);
            *w = if is_chunk(e) {
                let c = self.chunk(e);
                prefetch(c.0 as *const u8);
                c.0 as u64
            } else {
                (e as u64) << 1 | 1
            };
        }
    }

    /// Prefetches the line of each lookup's run (batch stage 3), and hands
    /// stage 4 that run's address in place of the chunk's (4-byte aligned,
    /// so bit 0 clear), so stage 4 need not rank the slot again.
    ///
    /// # Safety
    /// `words` must come from [`Compact::load_group`], untouched since
    /// (called once: the rewritten words are no chunk addresses), and the
    /// caller must have been pinned since.
    #[inline(always)]
    pub(crate) unsafe fn prefetch_leaves(&self, addrs: &[W], words: &mut [u64]) {
        for (a, w) in addrs.iter().zip(words) {
            if *w & 1 == 0 {
                let c = ChunkRef(*w as *const u32);
                // SAFETY: the caller's contract: `c` is live.
                let run = unsafe { c.slot_addr(Self::bytes34(*a).0) };
                prefetch(run);
                *w = run as u64;
            }
        }
    }

    /// Finishes the lookups of a group from stage 3's words: a run's
    /// address (then, as in [`finish_span`](Self::finish_span), its leaf
    /// or its sub-chunk's) or a leaf.
    ///
    /// # Safety
    /// `words` must come from [`Compact::prefetch_leaves`] and the caller
    /// must have been pinned since `load_group`.
    #[inline(always)]
    pub(crate) unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        for ((a, &w), leaf) in addrs.iter().zip(words).zip(leaves.iter_mut()) {
            *leaf = if w & 1 == 0 {
                // SAFETY: the caller's contract: the run is a live chunk's
                // leaf word, and a sub-chunk it names is live (as in
                // `finish_span`).
                unsafe {
                    // Acquire: see `ChunkRef::slot`.
                    let v = (*(w as *const AtomicU32)).load(Ordering::Acquire);
                    self.below(v, Self::bytes34(*a).1)
                }
            } else {
                (w >> 1) as u32
            };
        }
    }

    /// Sets (`leaf != 0`) or removes (`leaf == 0`) the prefix `a/len`;
    /// returns the leaf it replaced (0 if none). Callers serialise writes.
    pub(crate) fn update(
        &self,
        top: &mut TrieShadow<W>,
        blocks: &mut BlockShadow,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        Self::check_leaf(len, leaf);
        if len <= TOP_BITS {
            return self.update_top(top, a, len, leaf);
        }
        let b = a.top(TOP_BITS);
        let low = Self::low16(a, len);
        let old = blocks.set(b, low, len, leaf);
        if old == leaf {
            return old;
        }
        self.publish_one(blocks, b, (low >> 8) as usize, len, limbo);
        old
    }

    /// Publishes one change of a prefix of length `len` (> 16) in /24
    /// slot `x` of block `b`: its sub-chunk rebuilt in place, else the
    /// chunk patched over the prefix's slots, else (no chunk yet) compiled.
    fn publish_one(
        &self,
        blocks: &BlockShadow,
        b: usize,
        x: usize,
        len: u32,
        limbo: &mut FibLimbo,
    ) {
        if len > 24 && self.replace_sub(blocks, b, x, limbo) {
            return;
        }
        let span = 1usize << (24 - len.min(24));
        if !self.patch(blocks, b, x, x + span, limbo) {
            let mut dirty = [0u64; 4];
            dirty[x >> 6] |= 1 << (x & 63);
            self.compile(blocks, b, &dirty, limbo);
        }
    }

    /// As [`update`](Self::update), holding a /17-/32 change back from
    /// readers: the block's list changes now, and the block is compiled
    /// once when an update goes to another block, a shorter prefix changes
    /// or [`publish_pending`](Self::publish_pending) is called. A sorted
    /// table load compiles each block once per batch this way instead of
    /// once per prefix. The writer's own reads stay exact: they read the
    /// lists, and every other path publishes the pending block first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update_deferred(
        &self,
        top: &mut TrieShadow<W>,
        blocks: &mut BlockShadow,
        pending: &mut Deferred,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        Self::check_leaf(len, leaf);
        if len <= TOP_BITS {
            self.publish_pending(blocks, pending, limbo);
            return self.update_top(top, a, len, leaf);
        }
        let b = a.top(TOP_BITS);
        if pending.0.as_ref().is_some_and(|p| p.block != b) {
            self.publish_pending(blocks, pending, limbo);
        }
        let low = Self::low16(a, len);
        let old = blocks.set(b, low, len, leaf);
        if old != leaf {
            let x = (low >> 8) as usize;
            let p = pending.0.get_or_insert(Pending {
                block: b,
                dirty: [0; 4],
                first: (x, len),
                changes: 0,
            });
            p.changes += 1;
            if len > 24 {
                p.dirty[x >> 6] |= 1 << (x & 63);
            }
        }
        old
    }

    /// Compiles and publishes the pending block, if any.
    pub(crate) fn publish_pending(
        &self,
        blocks: &BlockShadow,
        pending: &mut Deferred,
        limbo: &mut FibLimbo,
    ) {
        match pending.0.take() {
            None => {}
            Some(p) if p.changes == 1 => {
                self.publish_one(blocks, p.block, p.first.0, p.first.1, limbo)
            }
            Some(p) => self.compile(blocks, p.block, &p.dirty, limbo),
        }
    }

    /// Asserts a leaf's format: 0, or `id << 8 | len`. Lookups read a
    /// word with bit 7 set as a chunk's id, and a short prefix's change
    /// tells inherited leaves from own ones by their length, so a leaf
    /// of any other form would be memory-unsafe, not merely wrong.
    fn check_leaf(len: u32, leaf: u32) {
        assert!(
            leaf == 0 || (leaf & 0xff == len && len <= 32),
            "IPv4 leaf {leaf:#x} is not `id << 8 | {len}`"
        );
    }

    /// The leaf of exactly `a/len` (writer side).
    pub(crate) fn exact(&self, top: &TrieShadow<W>, blocks: &BlockShadow, a: W, len: u32) -> u32 {
        if len <= TOP_BITS {
            top.get(a.network(len), len)
        } else {
            let low = Self::low16(a, len);
            blocks.get(a.top(TOP_BITS), low, len)
        }
    }

    /// The top-level match of block `s`: the root's leaf, or its chunk's
    /// inherited match.
    fn top_match(&self, s: usize) -> u32 {
        let e = self.top[s].load(Ordering::Relaxed); // only the writer stores
        if is_chunk(e) {
            // SAFETY: the writer only reads chunks it has not retired.
            unsafe { self.chunk(e).inherited() }
        } else {
            e
        }
    }

    /// Stores `new` over chunk `c`'s inherited match: in its header, in
    /// every leaf that holds the old one, in place, and in each sub-chunk
    /// whose slot falls through to it (whose own inherited match is the
    /// old one). A leaf holds the inherited match exactly when it equals
    /// it: own leaves are longer than the match (/17-/24 in a chunk over a
    /// /16-or-shorter match, /25-/32 in a sub-chunk over a /24-or-shorter
    /// one) and never 0, so no leaf is mistaken for it (nor is a sub-chunk
    /// entry, which has bit 7 set), no sub-chunk whose slot has its own
    /// /17-/24 match is taken for one that falls through, and no two
    /// adjacent runs come to hold equal leaves (the runs stay canonical).
    ///
    /// # Safety
    /// `c` must be live, and the caller its writer.
    unsafe fn retarget(&self, c: ChunkRef, new: u32) {
        // SAFETY: forwarded; the leaves are the chunk's `len_words`, and a
        // sub-chunk a live chunk names is live.
        unsafe {
            let old = c.inherited();
            if old == new {
                return;
            }
            for i in W_LEAVES..c.len_words() {
                let leaf = c.atomic(i);
                // Relaxed: only the writer stores leaves; it reads its own
                // stores.
                let l = leaf.load(Ordering::Relaxed);
                if l == old {
                    // Release: see `ChunkRef::slot` (a new next-hop id's
                    // entry is published before a leaf naming it).
                    leaf.store(new, Ordering::Release);
                } else if is_chunk(l) && self.chunk(l).inherited() == old {
                    // One level deep: a sub-chunk's leaves name no chunk.
                    self.retarget(self.chunk(l), new);
                }
            }
            // Relaxed: the header's match is read by the writer only.
            c.atomic(W_INHERITED).store(new, Ordering::Relaxed);
        }
    }

    /// A change of a prefix of /16 or shorter: for each block whose match
    /// changes, one store into its root entry, or, for a block with a
    /// chunk, a store into each leaf that holds the old match (the chunk's
    /// and those of its sub-chunks whose slots fall through to it).
    fn update_top(&self, top: &mut TrieShadow<W>, a: W, len: u32, leaf: u32) -> u32 {
        let net = a.network(len);
        let (old, rule) = top.update(net, len, leaf);
        let Some(rule) = rule else { return old };
        let first = net.top(TOP_BITS);
        for s in first..first + (1usize << (TOP_BITS - len)) {
            let Some(want) = rule.apply(self.top_match(s)) else {
                continue;
            };
            let e = self.top[s].load(Ordering::Relaxed); // only the writer stores
            if is_chunk(e) {
                // SAFETY: the writer only writes chunks it has not retired.
                unsafe { self.retarget(self.chunk(e), want) };
            } else {
                // Release: see `lookup`.
                self.top[s].store(want, Ordering::Release);
            }
        }
        old
    }

    /// Rebuilds the sub-chunk of /24 slot `x` of block `b` in place of the
    /// published one (one store into the chunk), if the block has a chunk
    /// with a sub-chunk there and the slot still has prefixes longer than
    /// /24. False if the chunk itself must be recompiled.
    fn replace_sub(&self, blocks: &BlockShadow, b: usize, x: usize, limbo: &mut FibLimbo) -> bool {
        let e = self.top[b].load(Ordering::Relaxed); // only the writer stores
        if !is_chunk(e) {
            return false;
        }
        let c = self.chunk(e);
        // SAFETY: the writer only reads chunks it has not retired.
        let (run, old) = unsafe {
            let run = W_LEAVES + c.rank(x);
            (run, c.atomic(run).load(Ordering::Relaxed))
        };
        if !is_chunk(old) {
            return false;
        }
        let old = self.chunk(old);
        let list = &blocks.blocks[b];
        if !list
            .iter()
            .any(|w| Self::slot_of(*w) == x && Self::len_of(*w) > 24)
        {
            return false;
        }
        // SAFETY: as above.
        let inherited = unsafe { old.inherited() };
        let sub = self.compile_sub(list, x, inherited);
        // Release: see `ChunkRef::slot`.
        // SAFETY: as above; `run` is the slot's run in this chunk.
        unsafe { c.atomic(run) }.store(sub, Ordering::Release);
        self.retire(&[old], limbo);
        true
    }

    fn slot_of(w: u64) -> usize {
        (w >> 48) as usize & 0xff
    }

    fn len_of(w: u64) -> u32 {
        (w >> 32) as u32 & 0xff
    }

    /// A fresh sub-chunk for /24 slot `x` from the block's list, inheriting
    /// `inherited` (the slot's match); its entry.
    fn compile_sub(&self, list: &[u64], x: usize, inherited: u32) -> u32 {
        let mut vals = [inherited; SPAN];
        // The list is sorted by low bits: slot x's prefixes are contiguous.
        let start = list.partition_point(|w| ((w >> 48) as usize) < x);
        for &w in list[start..].iter().take_while(|w| Self::slot_of(**w) == x) {
            let len = Self::len_of(w);
            if len > 24 {
                let y = (w >> 40) as usize & 0xff;
                vals[y..y + (1 << (32 - len))].fill(w as u32);
            }
        }
        self.store_chunk(&encode(&vals, inherited))
    }

    /// Recompiles slots `x0..x1` of block `b`'s chunk (the slots of the
    /// prefix that changed): in place if the runs stay as they are, else
    /// as a copy whose runs outside them are copied whole, so a write costs
    /// a pass over the block's runs, not over its 256 slots and its list.
    /// False (nothing done) if the block has no chunk or no prefix left
    /// (then [`compile`](Self::compile) builds or drops the chunk).
    fn patch(
        &self,
        blocks: &BlockShadow,
        b: usize,
        x0: usize,
        x1: usize,
        limbo: &mut FibLimbo,
    ) -> bool {
        let e = self.top[b].load(Ordering::Relaxed); // only the writer stores
        if !is_chunk(e) {
            return false;
        }
        let list = &blocks.blocks[b];
        if list.is_empty() {
            return false; // the chunk goes: `compile` returns the slot to a leaf
        }
        let c = self.chunk(e);
        let mut retired = Retired::new();
        // SAFETY: as below.
        let inherited = unsafe { c.inherited() };
        // SAFETY (of every read of `c` and its sub-chunks below): the
        // writer only reads chunks it has not retired, and `c` is retired
        // only after its replacement is published.
        let old_at = |x: usize| unsafe { c.atomic(W_LEAVES + c.rank(x)).load(Ordering::Relaxed) };
        // The range's slots: the longest /17-/24 prefix containing the
        // whole range (or the block's match), then every prefix inside it,
        // in list order.
        let n = x1 - x0;
        let len = 24 - n.trailing_zeros();
        let low = (x0 as u32) << 8;
        let cover = blocks.cover(b, low, len).unwrap_or(inherited);
        let mut vals = [cover; SPAN];
        let vals = &mut vals[..n];
        let mut long = [0u64; 4];
        let start = list.partition_point(|w| Self::slot_of(*w) < x0);
        for &w in list[start..].iter().take_while(|w| Self::slot_of(**w) < x1) {
            let l = Self::len_of(w);
            let x = Self::slot_of(w);
            if l <= 24 {
                let end = (x + (1 << (24 - l))).min(x1);
                vals[x - x0..end - x0].fill(w as u32);
            } else {
                long[x >> 6] |= 1 << (x & 63);
            }
        }
        for x in x0..x1 {
            let was = old_at(x);
            let has_long = long[x >> 6] >> (x & 63) & 1 == 1;
            if has_long {
                let slot_match = vals[x - x0];
                vals[x - x0] = if is_chunk(was) {
                    // SAFETY: as above; the kept sub-chunk is live.
                    unsafe { self.retarget(self.chunk(was), slot_match) };
                    was
                } else {
                    self.compile_sub(list, x, slot_match)
                };
            } else if is_chunk(was) {
                retired.push(self.chunk(was));
            }
        }
        // The new run starts: unchanged outside the range and past its
        // end, recomputed inside it and at its end.
        // SAFETY: as above; the bitmap is the first 4 u64 words.
        let old_bits: [u64; 4] = std::array::from_fn(|i| unsafe { *(c.0 as *const u64).add(i) });
        let mut bits = old_bits;
        let value = |x: usize| {
            if (x0..x1).contains(&x) {
                vals[x - x0]
            } else {
                old_at(x)
            }
        };
        let end = (x1 + 1).min(SPAN);
        for x in x0..end {
            let starts = x == 0 || value(x) != value(x - 1);
            let bit = 1u64 << (x & 63);
            if starts {
                bits[x >> 6] |= bit;
            } else {
                bits[x >> 6] &= !bit;
            }
        }
        if bits == old_bits {
            // The same runs: only the leaves of runs starting in the range
            // change, each stored in place (a lookup sees its address's old
            // answer or its new one; see `finish_span`). A next hop's
            // change of an existing prefix lands here.
            for x in x0..x1 {
                if bits[x >> 6] >> (x & 63) & 1 == 1 && value(x) != old_at(x) {
                    // Release: see `ChunkRef::slot` (a new sub-chunk's
                    // words, a new next-hop id's entry, come first).
                    // SAFETY: as above; the run of `x` is within the leaves.
                    unsafe { c.atomic(W_LEAVES + c.rank(x)) }.store(value(x), Ordering::Release);
                }
            }
            self.retire(&retired, limbo);
            return true;
        }
        retired.push(c);
        // The runs starting before the range and after its end are the old
        // chunk's, copied whole; the ones in between are new.
        // SAFETY: as above; the old chunk has `runs_below(SPAN)` leaves,
        // which only this writer stores to (plain reads race with no
        // write).
        let old_leaves =
            unsafe { std::slice::from_raw_parts(c.0.add(W_LEAVES), runs_below(&old_bits, SPAN)) };
        let mut words = Words::new();
        words.resize(W_LEAVES, 0);
        words.extend_from_slice(&old_leaves[..runs_below(&old_bits, x0)]);
        for x in x0..end {
            if bits[x >> 6] >> (x & 63) & 1 == 1 {
                words.push(value(x));
            }
        }
        words.extend_from_slice(&old_leaves[runs_below(&old_bits, end)..]);
        write_header(&mut words, &bits, inherited);
        let entry = self.store_chunk(&words);
        // Release: see `lookup`.
        self.top[b].store(entry, Ordering::Release);
        self.retire(&retired, limbo);
        true
    }

    /// Compiles block `b` from its list and publishes it: one Release
    /// store into the root. Sub-chunks are kept unless their slot's bit is
    /// set in `dirty` (their inherited match is updated in place).
    fn compile(&self, blocks: &BlockShadow, b: usize, dirty: &[u64; 4], limbo: &mut FibLimbo) {
        let e = self.top[b].load(Ordering::Relaxed); // only the writer stores
        let mut retired = Retired::new();
        let (old, inherited) = if is_chunk(e) {
            let c = self.chunk(e);
            retired.push(c);
            // SAFETY: the writer only reads chunks it has not retired.
            (Some(c), unsafe { c.inherited() })
        } else {
            (None, e)
        };
        // SAFETY: as above.
        let old_vals = old.map(|c| unsafe { c.decode() });
        let list = &blocks.blocks[b];
        let new = if list.is_empty() {
            inherited
        } else {
            let mut vals = [inherited; SPAN];
            let mut long = [0u64; 4];
            // Address-then-length order: a prefix paints after every
            // shorter one containing it.
            for &w in list {
                let len = Self::len_of(w);
                let x = Self::slot_of(w);
                if len <= 24 {
                    vals[x..x + (1 << (24 - len))].fill(w as u32);
                } else {
                    long[x >> 6] |= 1 << (x & 63);
                }
            }
            for x in 0..SPAN {
                if long[x >> 6] >> (x & 63) & 1 == 0 {
                    continue;
                }
                let slot_match = vals[x];
                let kept = old_vals
                    .map(|o| o[x])
                    .filter(|&s| is_chunk(s) && dirty[x >> 6] >> (x & 63) & 1 == 0);
                vals[x] = match kept {
                    Some(s) => {
                        // SAFETY: as above; the kept sub-chunk is live.
                        unsafe { self.retarget(self.chunk(s), slot_match) };
                        s
                    }
                    None => self.compile_sub(list, x, slot_match),
                };
            }
            // Sub-chunks the new chunk no longer names.
            if let Some(o) = &old_vals {
                for (x, &s) in o.iter().enumerate() {
                    if is_chunk(s) && vals[x] != s && (x == 0 || o[x - 1] != s) {
                        retired.push(self.chunk(s));
                    }
                }
            }
            self.store_chunk(&encode(&vals, inherited))
        };
        if list.is_empty()
            && let Some(o) = &old_vals
        {
            for (x, &s) in o.iter().enumerate() {
                if is_chunk(s) && (x == 0 || o[x - 1] != s) {
                    retired.push(self.chunk(s));
                }
            }
        }
        // Release: see `lookup`.
        self.top[b].store(new, Ordering::Release);
        self.retire(&retired, limbo);
    }

    fn retire(&self, chunks: &[ChunkRef], limbo: &mut FibLimbo) {
        for c in chunks {
            // SAFETY: still live (only now handed to the FIB's QSBR limbo,
            // which frees it once every reader has passed a quiescent
            // state), stored by `NodeStore::store` with exactly
            // `len_words` words; unlinked before this call (its
            // replacement is already published).
            limbo.retire(Garbage::Node(unsafe {
                self.chunks.retire(c.0.cast(), c.len_words() * 4)
            }));
        }
    }

    /// Bytes held by the lookup structure: the root and the arena.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.top.bytes() + self.chunks.bytes()
    }

    /// Bytes in live chunks.
    pub(crate) fn node_bytes(&self) -> usize {
        self.chunks.live_bytes()
    }

    /// Number of live chunks.
    pub(crate) fn node_count(&self) -> usize {
        self.chunks.count()
    }

    /// Returns a retired chunk's block to the arena.
    ///
    /// # Safety
    /// As for `NodeStore::free`.
    pub(crate) unsafe fn free(&self, b: Block) {
        // SAFETY: forwarded.
        unsafe { self.chunks.free(b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::synth::SplitMix64;

    struct Harness {
        core: Compact<u32>,
        top: TrieShadow<u32>,
        blocks: BlockShadow,
        pending: Deferred,
        limbo: FibLimbo,
        model: HashMap<(u32, u32), u32>,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                core: Compact::new(),
                top: TrieShadow::new(TOP_BITS),
                blocks: Compact::<u32>::new_shadow(),
                pending: Deferred::default(),
                limbo: FibLimbo::default(),
                model: HashMap::new(),
            }
        }

        fn set(&mut self, net: u32, len: u32, leaf: u32, deferred: bool) {
            let before = self.model.get(&(net, len)).copied().unwrap_or(0);
            let old = if deferred {
                self.core.update_deferred(
                    &mut self.top,
                    &mut self.blocks,
                    &mut self.pending,
                    net,
                    len,
                    leaf,
                    &mut self.limbo,
                )
            } else {
                self.core.update(
                    &mut self.top,
                    &mut self.blocks,
                    net,
                    len,
                    leaf,
                    &mut self.limbo,
                )
            };
            assert_eq!(old, before, "old leaf of {net:#x}/{len}");
            if leaf == 0 {
                self.model.remove(&(net, len));
            } else {
                self.model.insert((net, len), leaf);
            }
        }

        fn publish(&mut self) {
            self.core
                .publish_pending(&self.blocks, &mut self.pending, &mut self.limbo);
        }

        fn expected(&self, a: u32) -> u32 {
            self.match_within(a, 32)
        }
        /// The longest match of `a` among prefixes of at most `max_len`.
        fn match_within(&self, a: u32, max_len: u32) -> u32 {
            (0..=max_len)
                .rev()
                .find_map(|len| self.model.get(&(a.network(len), len)).copied())
                .unwrap_or(0)
        }

        /// Every address of the probes' /24s agrees with the model, every
        /// chunk is in canonical form (a run starts exactly where the
        /// answer changes) and `exact` answers every prefix.
        fn check(&self, probes: &[u32]) {
            for &p in probes {
                for a in (p & !0xff..=p | 0xff).step_by(7).chain([p]) {
                    assert_eq!(self.core.lookup(a), self.expected(a), "lookup {a:#x}");
                }
            }
            for (&(net, len), &leaf) in &self.model {
                assert_eq!(self.core.exact(&self.top, &self.blocks, net, len), leaf);
            }
            for b in 0..1usize << TOP_BITS {
                let e = self.core.top_entry(b);
                if is_chunk(e) {
                    let c = self.core.chunk(e);
                    // SAFETY: nothing is freed in these tests.
                    let (vals, inherited) = unsafe { (c.decode(), c.inherited()) };
                    let len = unsafe { c.len_words() };
                    let words = encode(&vals, inherited);
                    // SAFETY: as above; `len` words are the chunk's.
                    let stored = unsafe { std::slice::from_raw_parts(c.0, len) };
                    assert_eq!(&words[..], stored, "block {b:#x} is not canonical");
                    let block = (b as u32) << 16;
                    assert_eq!(
                        inherited,
                        self.match_within(block, 16),
                        "block {b:#x}'s match"
                    );
                    for (x, &v) in vals.iter().enumerate() {
                        if !is_chunk(v) || (x > 0 && vals[x - 1] == v) {
                            continue;
                        }
                        let sub = self.core.chunk(v);
                        // SAFETY: as above.
                        let (svals, sinh, slen) =
                            unsafe { (sub.decode(), sub.inherited(), sub.len_words()) };
                        // SAFETY: as above.
                        let stored = unsafe { std::slice::from_raw_parts(sub.0, slen) };
                        let at = block | (x as u32) << 8;
                        assert_eq!(&encode(&svals, sinh)[..], stored, "{at:#x} not canonical");
                        assert_eq!(sinh, self.match_within(at, 24), "{at:#x}'s slot match");
                    }
                }
            }
        }
    }

    /// Random prefixes of every length from /0 to /32 crowded into four
    /// blocks (so chunks, sub-chunks and patches meet), set and removed
    /// one by one and in deferred batches, checked against a brute-force
    /// longest match after every step. Catches a patch that leaves a run
    /// boundary wrong at the end of the changed range, a sub-chunk kept
    /// after its slot lost its long prefixes (or never inheriting the
    /// slot's new match), a short prefix's store into the wrong word, and
    /// any rank off by one.
    #[test]
    fn agrees_with_brute_force_through_random_changes() {
        let mut rng = SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        let mut h = Harness::new();
        let mut live: Vec<(u32, u32)> = Vec::new();
        for step in 0..3000 {
            let deferred = step % 500 >= 250;
            let remove = !live.is_empty() && rng.below(3) == 0;
            let (net, len) = if remove {
                live.swap_remove(rng.below(live.len() as u64) as usize)
            } else {
                let len = match rng.below(10) {
                    0 => rng.below(17) as u32,
                    1..=2 => 25 + rng.below(8) as u32,
                    _ => 17 + rng.below(8) as u32,
                };
                let a = 0x0a00_0000 | (rng.below(4) as u32) << 16 | rng.next_u64() as u32 & 0xffff;
                let a = if len < 16 { rng.next_u64() as u32 } else { a };
                (a.network(len), len)
            };
            let leaf = if remove {
                0
            } else {
                (1 + rng.below(5) as u32) << 8 | len
            };
            if !remove && !live.contains(&(net, len)) {
                live.push((net, len));
            }
            h.set(net, len, leaf, deferred);
            if !deferred || step % 7 == 0 {
                h.publish();
                let probes = [
                    net,
                    net | 0xff,
                    rng.next_u64() as u32 & 0x0a03_ffff | 0x0a00_0000,
                ];
                h.check(&probes);
            }
        }
        h.publish();
        let probes: Vec<u32> = (0..4u32)
            .flat_map(|b| (0..256u32).map(move |x| 0x0a00_0000 | b << 16 | x << 8))
            .collect();
        h.check(&probes);
        for (net, len) in live {
            h.set(net, len, 0, false);
        }
        h.check(&probes);
        assert_eq!(h.core.node_count(), 0, "every chunk retired once empty");
    }

    /// A leaf that is not `id << 8 | len` (here, bit 7 set, which
    /// lookups would follow as a chunk id) is refused before anything
    /// changes. Catches a core that trusts the leaf's format.
    #[test]
    #[should_panic(expected = "is not `id << 8 | 24`")]
    fn a_leaf_of_another_form_is_refused() {
        let mut h = Harness::new();
        h.set(0x0a00_0100, 24, 1 << 8 | 0x80 | 24, false);
    }

    /// A default route over blocks with chunks changes only the leaves
    /// that hold their inherited match (the chunk's, and a sub-chunk's
    /// when its slot falls through to it), in place: no chunk is copied.
    /// Catches a short prefix that recompiles (or forgets) the chunks under
    /// it, one that leaves a sub-chunk's copy of the block's match stale,
    /// and one that overwrites the match of a sub-chunk whose slot has its
    /// own /24.
    #[test]
    fn a_short_prefix_updates_chunks_in_place() {
        let mut h = Harness::new();
        for x in 0..64u32 {
            h.set(0x0a00_0000 | x << 10, 22, 1 << 8 | 22, false);
        }
        h.set(0x0a05_0710, 28, 4 << 8 | 28, false);
        h.set(0x0a05_0900, 24, 5 << 8 | 24, false);
        h.set(0x0a05_0910, 28, 6 << 8 | 28, false);
        let chunks = h.core.node_count();
        let live = h.core.node_bytes();
        h.set(0, 0, 2 << 8, false);
        h.set(0x0a00_0000, 8, 3 << 8 | 8, false);
        assert_eq!((h.core.node_count(), h.core.node_bytes()), (chunks, live));
        let probes = [
            0x0a00_0000,
            0x0a00_ff00,
            0x0a01_0000,
            0x0b00_0000,
            0x0a05_0700,
            0x0a05_0900,
        ];
        h.check(&probes);
        h.set(0x0a00_0000, 8, 0, false);
        h.check(&probes);
        h.set(0, 0, 0, false);
        h.check(&probes);
    }
}
