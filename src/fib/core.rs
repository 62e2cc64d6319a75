//! The lookup structure behind a FIB, chosen per address width: the
//! direct DIR-20-4-4-4 core for IPv4 ([`Direct`]), the poptrie-style
//! compressed trie for IPv6 ([`Trie`]), whose sparse 128-bit space needs
//! compression.

use super::FibLimbo;
use super::arena::Block;

use super::direct::{self, Direct};
use super::trie::{Trie, TrieShadow};
use crate::prefix::AddrBits as Word;

/// Bits of either core's direct top level (20: the trie's IPv6 top level
/// saves most /32 and /48 lookups a level; the direct core's is 4 MiB).
pub(crate) const TOP_BITS: u32 = 20;

/// The stages of a batched lookup (see `LpmFib::lookup_batch`), which both
/// cores provide, so the pipeline is written once.
pub(crate) trait Stages<W> {
    /// Stage 1: prefetch the top-level line of `a`.
    fn prefetch_top(&self, a: W);
    /// Stage 2: load the group's top-level entries into `words` and
    /// prefetch the next line each lookup reads.
    fn load_group(&self, addrs: &[W], words: &mut [u64]);
    /// Stage 3: prefetch lines that the stage-2 lines tell.
    ///
    /// # Safety
    /// `words` come from `load_group`, and the caller has been pinned since.
    unsafe fn prefetch_leaves(&self, addrs: &[W], words: &[u64]);
    /// Stage 4: finish the lookups into leaves.
    ///
    /// # Safety
    /// As for `prefetch_leaves`.
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
    unsafe fn prefetch_leaves(&self, addrs: &[W], words: &[u64]) {
        // SAFETY: forwarded.
        unsafe { Trie::prefetch_leaves(self, addrs, words) }
    }
    #[inline(always)]
    unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        // SAFETY: forwarded.
        unsafe { Trie::walk_group(self, addrs, words, leaves) }
    }
}

impl<W: Word> Stages<W> for Direct<W> {
    #[inline(always)]
    fn prefetch_top(&self, a: W) {
        Direct::prefetch_top(self, a)
    }
    #[inline(always)]
    fn load_group(&self, addrs: &[W], words: &mut [u64]) {
        Direct::load_group(self, addrs, words)
    }
    #[inline(always)]
    unsafe fn prefetch_leaves(&self, _addrs: &[W], _words: &[u64]) {
        // Stage 2 already prefetched the one node slot a lookup reads.
    }
    #[inline(always)]
    unsafe fn walk_group(&self, addrs: &[W], words: &[u64], leaves: &mut [u32]) {
        // SAFETY: forwarded.
        unsafe { Direct::walk_group(self, addrs, words, leaves) }
    }
}

/// One of the two cores.
pub(crate) enum Core<W> {
    /// 128-bit addresses.
    Trie(Trie<W>),
    /// 32-bit addresses.
    Direct(Direct<W>),
}

impl<W: Word> Core<W> {
    /// The core for `W`'s width, and its writer shadow.
    pub(crate) fn new() -> (Self, TrieShadow<W>) {
        let core = if W::BITS == 32 {
            debug_assert_eq!(direct::TOP_BITS, TOP_BITS);
            Core::Direct(Direct::new())
        } else {
            Core::Trie(Trie::new(TOP_BITS))
        };
        (core, TrieShadow::new(TOP_BITS))
    }

    /// Prefetches the top-level line of `a` (a writer's hint).
    pub(crate) fn prefetch_top(&self, a: W) {
        match self {
            Core::Direct(d) => d.prefetch_top(a),
            Core::Trie(t) => t.prefetch_top(a),
        }
    }

    /// The leaf of the longest prefix covering `a` (0: none). The caller
    /// must be pinned while it uses the leaf's next-hop id.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: W) -> u32 {
        match self {
            Core::Trie(t) => t.lookup(a),
            Core::Direct(d) => d.lookup(a),
        }
    }

    /// The leaf for `a` and how many leading bits decided it (see
    /// `Direct::lookup_span`). The caller must be pinned.
    pub(crate) fn lookup_span(&self, a: W) -> (u32, u32) {
        match self {
            Core::Trie(t) => t.lookup_span(a),
            Core::Direct(d) => d.lookup_span(a),
        }
    }

    /// The raw top-level entry of slot `s`.
    pub(crate) fn top_entry(&self, s: usize) -> u32 {
        match self {
            Core::Trie(t) => t.top_entry(s),
            Core::Direct(d) => d.top_entry(s),
        }
    }

    /// Sets (`leaf != 0`) or removes the prefix `a/len`; the old leaf.
    /// Given `pending`, the direct core may hold the change back there
    /// (see `Direct::update_deferred`); the trie always applies it now.
    pub(crate) fn update(
        &self,
        shadow: &mut TrieShadow<W>,
        pending: Option<&mut direct::Deferred>,
        a: W,
        len: u32,
        leaf: u32,
        limbo: &mut FibLimbo,
    ) -> u32 {
        match (self, pending) {
            (Core::Trie(t), _) => t.update(shadow, a, len, leaf, limbo),
            (Core::Direct(d), None) => d.update(shadow, a, len, leaf, limbo),
            (Core::Direct(d), Some(p)) => d.update_deferred(shadow, p, a, len, leaf, limbo),
        }
    }

    /// Publishes what `update_deferred` held back.
    pub(crate) fn publish_pending(&self, pending: &mut direct::Deferred, limbo: &mut FibLimbo) {
        if let Core::Direct(d) = self {
            d.publish_pending(pending, limbo);
        }
    }

    /// The leaf of exactly `a/len` (writer side).
    pub(crate) fn exact(&self, shadow: &TrieShadow<W>, a: W, len: u32) -> u32 {
        match self {
            Core::Trie(t) => t.exact(shadow, a, len),
            Core::Direct(d) => d.exact(shadow, a, len),
        }
    }

    /// Bytes of the lookup structure.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            Core::Trie(t) => t.memory_bytes(),
            Core::Direct(d) => d.memory_bytes(),
        }
    }

    /// Bytes in live nodes.
    pub(crate) fn node_bytes(&self) -> usize {
        match self {
            Core::Trie(t) => t.node_bytes(),
            Core::Direct(d) => d.node_bytes(),
        }
    }

    /// Live nodes.
    pub(crate) fn node_count(&self) -> usize {
        match self {
            Core::Trie(t) => t.node_count(),
            Core::Direct(d) => d.node_count(),
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
                Core::Direct(d) => d.free(b),
            }
        }
    }
}
