//! The lookup structure behind a FIB, chosen per address width: the
//! compact core for IPv4 ([`Compact`]: a 2^16 root over per-block chunks),
//! the poptrie-style compressed trie for IPv6 ([`Trie`]), whose sparse
//! 128-bit space needs a trie's compression.

use super::FibLimbo;
use super::arena::Block;

use super::compact::{self, BlockShadow, Compact, Deferred};
use super::trie::{Trie, TrieShadow};
use crate::prefix::AddrBits as Word;

/// Bits of the IPv6 trie's direct top level. 18 (1 MiB), so that a /48,
/// half of a real IPv6 table, ends exactly at a stride's end (18 + 5 * 6)
/// and owns one slot rather than a run of them. Measured on the RIS IPv6
/// table against 16, 17, 19 and 20: the fewest bytes (39.7 a prefix; 20
/// took 61.0, 16 45.0) and lookups no slower than 20's.
const TRIE_TOP_BITS: u32 = 18;

/// What only the FIB's writer reads: the prefixes of the root's length or
/// shorter, and (IPv4) each block's longer prefixes.
pub(crate) struct Shadow<W> {
    top: TrieShadow<W>,
    blocks: BlockShadow,
}

impl<W: Word> Shadow<W> {
    /// Bytes held (approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.top.memory_bytes() + self.blocks.memory_bytes()
    }
}

/// The stages of a batched lookup (see `LpmFib::lookup_batch`), which both
/// cores provide, so the pipeline is written once.
pub(crate) trait Stages<W> {
    /// Stage 1: prefetch the top-level line of `a`.
    fn prefetch_top(&self, a: W);
    /// Stage 2: load the group's top-level entries into `words` and
    /// prefetch the next line each lookup reads.
    fn load_group(&self, addrs: &[W], words: &mut [u64]);
    /// Stage 3: prefetch lines that the stage-2 lines tell; a core may
    /// rewrite `words` into what stage 4 then needs (so it does not redo
    /// stage 3's work).
    ///
    /// # Safety
    /// `words` come from `load_group`, and the caller has been pinned since.
    unsafe fn prefetch_leaves(&self, addrs: &[W], words: &mut [u64]);
    /// Stage 4: finish the lookups into leaves.
    ///
    /// # Safety
    /// `words` come from `prefetch_leaves`, and the caller has been pinned
    /// since `load_group`.
    unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]);
}

impl<W: Word> Stages<W> for Trie<W> {
    #[inline(always)]
    fn prefetch_top(&self, a: W) {
        Trie::prefetch_top(self, a)
    }
    #[inline(always)]
    fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        Trie::load_group(self, addrs, words)
    }
    #[inline(always)]
    unsafe fn prefetch_leaves(&self, addrs: &[W], words: &mut [u64]) {
        // SAFETY: forwarded.
        unsafe { Trie::prefetch_leaves(self, addrs, words) }
    }
    #[inline(always)]
    unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        // SAFETY: forwarded.
        unsafe { Trie::walk_group(self, addrs, words, leaves) }
    }
}

impl<W: Word> Stages<W> for Compact<W> {
    #[inline(always)]
    fn prefetch_top(&self, _a: W) {
        // Nothing: the compact core's root is 256 KiB and stays in L2, so
        // stage 2's load of it is a hit; a prefetch would only add
        // instructions to every lookup of the batch.
    }
    #[inline(always)]
    fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        Compact::load_group(self, addrs, words)
    }
    #[inline(always)]
    unsafe fn prefetch_leaves(&self, addrs: &[W], words: &mut [u64]) {
        // SAFETY: forwarded.
        unsafe { Compact::prefetch_leaves(self, addrs, words) }
    }
    #[inline(always)]
    unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        // SAFETY: forwarded.
        unsafe { Compact::walk_group(self, addrs, words, leaves) }
    }
}

/// One of the two cores.
pub(crate) enum Core<W> {
    /// 128-bit addresses.
    Trie(Trie<W>),
    /// 32-bit addresses.
    Compact(Compact<W>),
}

impl<W: Word> Core<W> {
    /// The core for `W`'s width, and its writer shadow.
    pub(crate) fn new() -> (Self, Shadow<W>) {
        if W::BITS == 32 {
            let shadow = Shadow {
                top: TrieShadow::new(compact::TOP_BITS),
                blocks: Compact::<W>::new_shadow(),
            };
            (Core::Compact(Compact::new()), shadow)
        } else {
            let shadow = Shadow {
                top: TrieShadow::new(TRIE_TOP_BITS),
                blocks: BlockShadow::default(),
            };
            (Core::Trie(Trie::new(TRIE_TOP_BITS)), shadow)
        }
    }

    /// Whether the core refuses adds and changes (see
    /// `Compact::is_full`; the trie's ids cover its whole arena).
    pub(crate) fn is_full(&self) -> bool {
        match self {
            Core::Compact(d) => d.is_full(),
            Core::Trie(_) => false,
        }
    }

    /// Bits of the core's direct top level.
    pub(crate) fn top_bits(&self) -> u32 {
        match self {
            Core::Compact(_) => compact::TOP_BITS,
            Core::Trie(_) => TRIE_TOP_BITS,
        }
    }

    /// Prefetches the top-level line of `a` (a writer's hint).
    pub(crate) fn prefetch_top(&self, a: W) {
        match self {
            Core::Compact(d) => d.prefetch_top(a),
            Core::Trie(t) => t.prefetch_top(a),
        }
    }

    /// The leaf of the longest prefix covering `a` (0: none). The caller
    /// must be pinned while it uses the leaf's next-hop id.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: W) -> u32 {
        // The width decides the core at compile time, so the lookup loop
        // of a router does not load and test the variant per packet (two
        // more instructions in the window that bounds how many lookups a
        // core keeps in flight).
        if W::BITS == 32 {
            match self {
                Core::Compact(d) => d.lookup(a),
                // SAFETY: `Core::new`, the only constructor, builds the
                // compact core exactly when `W::BITS == 32`.
                Core::Trie(_) => unsafe { std::hint::unreachable_unchecked() },
            }
        } else {
            match self {
                Core::Trie(t) => t.lookup(a),
                // SAFETY: as above, the trie exactly otherwise.
                Core::Compact(_) => unsafe { std::hint::unreachable_unchecked() },
            }
        }
    }

    /// The leaf for `a` and how many leading bits decided it (see
    /// `Compact::lookup_span`). The caller must be pinned.
    pub(crate) fn lookup_span(&self, a: W) -> (u32, u32) {
        match self {
            Core::Trie(t) => t.lookup_span(a),
            Core::Compact(d) => d.lookup_span(a),
        }
    }

    /// The raw top-level entry of slot `s`.
    pub(crate) fn top_entry(&self, s: usize) -> u32 {
        match self {
            Core::Trie(t) => t.top_entry(s),
            Core::Compact(d) => d.top_entry(s),
        }
    }

    /// Sets (`leaf != 0`) or removes the prefix `a/len`; the old leaf.
    /// Given `pending`, the compact core may hold the change back there
    /// (see `Compact::update_deferred`); the trie always applies it now.
    pub(crate) fn update(
        &self,
        shadow: &mut Shadow<W>,
        pending: Option<&mut Deferred>,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        let Shadow { top, blocks } = shadow;
        match (self, pending) {
            (Core::Trie(t), _) => t.update(top, a, len, leaf, limbo),
            (Core::Compact(d), None) => d.update(top, blocks, a, len, leaf, limbo),
            (Core::Compact(d), Some(p)) => d.update_deferred(top, blocks, p, a, len, leaf, limbo),
        }
    }

    /// Publishes what `update_deferred` held back.
    pub(crate) fn publish_pending(
        &self,
        shadow: &Shadow<W>,
        pending: &mut Deferred,
        limbo: &mut FibLimbo,
    ) {
        if let Core::Compact(d) = self {
            d.publish_pending(&shadow.blocks, pending, limbo);
        }
    }

    /// The leaf of exactly `a/len` (writer side).
    pub(crate) fn exact(&self, shadow: &Shadow<W>, a: W, len: u32) -> u32 {
        match self {
            Core::Trie(t) => t.exact(&shadow.top, a, len),
            Core::Compact(d) => d.exact(&shadow.top, &shadow.blocks, a, len),
        }
    }

    /// Bytes of the lookup structure.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            Core::Trie(t) => t.memory_bytes(),
            Core::Compact(d) => d.memory_bytes(),
        }
    }

    /// Bytes in live nodes.
    pub(crate) fn node_bytes(&self) -> usize {
        match self {
            Core::Trie(t) => t.node_bytes(),
            Core::Compact(d) => d.node_bytes(),
        }
    }

    /// Live nodes.
    pub(crate) fn node_count(&self) -> usize {
        match self {
            Core::Trie(t) => t.node_count(),
            Core::Compact(d) => d.node_count(),
        }
    }

    /// Returns a retired node's block to its core's arena.
    ///
    /// # Safety
    /// As for `NodeStore::free`.
    pub(crate) unsafe fn free(&self, b: Block) {
        // SAFETY: forwarded.
        unsafe {
            match self {
                Core::Trie(t) => t.free(b),
                Core::Compact(d) => d.free(b),
            }
        }
    }
}
