//! The FIB cores' node allocator: aligned blocks carved from 2 MiB
//! chunks on transparent huge pages.
//!
//! Why not the global allocator: a full table has 70-150 k nodes that
//! `malloc` scatters over 10-20 MiB of 4 KiB pages, so nearly every node a
//! lookup visits costs a TLB miss on top of its cache miss; and a trie
//! node starting mid-line makes a lookup touch one more line than it
//! needs. Here nodes start on a unit boundary (see [`NodeArena`]) and the
//! few chunks they live in are backed by huge pages where Linux offers
//! them (see [`super::pages`]).
//!
//! Blocks are sized in whole units; a freed block goes on its size class's
//! free list and is reused by the next node of that size. Allocations and
//! frees both come from the FIB's writer (frees when its QSBR limbo finds
//! a grace period over), so the mutex is never contended, and no reader
//! ever takes it. Chunks go back to the system when the core is dropped
//! (see [`NodeArena::release`]).

use std::alloc::{self, Layout};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::pages::advise_huge;

const CHUNK_BYTES: usize = 2 << 20;
/// Most chunks an arena can hold (8 GiB of nodes): ids fit in 29 bits.
pub(crate) const MAX_CHUNKS: usize = 4096;

/// The allocator. Blocks are raw word pointers; callers initialise every
/// word they later read.
///
/// A block also has a 29-bit *id* (chunk number, unit within the chunk),
/// so that the trie's top level can name nodes in 32-bit words: half the
/// size of a pointer, and the top level is what every lookup reads first.
/// The first unit of each chunk holds the chunk's number (so [`id_of`]
/// finds it from the 2 MiB-aligned base) and is never handed out, which
/// also keeps id 0 free to mean "none".
///
/// [`id_of`]: NodeArena::id_of
///
/// `U` is the allocation unit in 64-bit words: blocks start on a `U`-word
/// boundary and are sized in whole units. The trie uses 4 (32 bytes: a
/// node's 24-byte header never straddles two cache lines, and small
/// nodes waste at most 24 bytes), the IPv4 compact core 8 (64 bytes: a
/// chunk's 40-byte header and its first six runs share one line).
pub(crate) struct NodeArena<const U: usize> {
    state: Mutex<State>,
    /// Chunk bases by number, for [`NodeArena::resolve`]. A slot is stored
    /// once, before any block of its chunk is handed out.
    bases: Box<[AtomicPtr<u64>; MAX_CHUNKS]>,
    /// How many chunks `state` holds, readable without the lock (the
    /// compact core asks before every write whether its ids run out).
    chunk_count: AtomicUsize,
}

struct State {
    /// Every chunk, for `Drop`.
    chunks: Vec<*mut u64>,
    /// Next free unit of the newest chunk, and how many remain in it.
    bump: *mut u64,
    bump_left: usize,
    /// Per size (in units): the first freed block ready for reuse (null:
    /// none). Each free block's first word holds the next one's address:
    /// the lists live in the blocks themselves, so bookkeeping never
    /// grows (a vector per size doubled its capacity past what the table
    /// had freed before, and `tests/leak.rs` saw it as growth).
    free: Vec<*mut u64>,
    /// Lines handed out and not freed (statistics).
    live_units: usize,
    /// Set by `release`: the chunks are gone and late frees are ignored.
    released: bool,
}

// SAFETY: the raw pointers are owned by the arena (chunks it allocated);
// all access to them goes through the mutex.
unsafe impl Send for State {}

fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK_BYTES, CHUNK_BYTES).expect("constant layout")
}

impl<const U: usize> NodeArena<U> {
    /// Units per chunk.
    const CHUNK_UNITS: usize = CHUNK_BYTES / (U * 8);
    /// Bits of a block id that number the unit within its chunk.
    const UNIT_BITS: u32 = Self::CHUNK_UNITS.trailing_zeros();

    /// An arena holding no chunk yet.
    pub(crate) fn new() -> Self {
        NodeArena {
            // A fixed-size array, so `resolve`'s masked index needs no
            // bounds check on the lookup path.
            bases: Box::new([const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS]),
            chunk_count: AtomicUsize::new(0),
            state: Mutex::new(State {
                chunks: Vec::new(),
                bump: std::ptr::null_mut(),
                bump_left: 0,
                free: Vec::new(),
                live_units: 0,
                released: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the lists half
        // updated (every update is a single push/pop or bump), so a
        // poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A block of `units` units (`1..=` a chunk's worth), `U`-word aligned
    /// and uninitialised.
    pub(crate) fn alloc(&self, units: usize) -> *mut u64 {
        assert!(
            (1..=Self::CHUNK_UNITS).contains(&units),
            "node of {units} units cannot exist"
        );
        let mut s = self.state();
        s.live_units += units;
        if let Some(head) = s.free.get_mut(units)
            && !head.is_null()
        {
            let p = *head;
            // SAFETY: a free block of this arena, whose first word `free`
            // set to the next free block of its size.
            *head = unsafe { p.read() } as *mut u64;
            return p;
        }
        if s.bump_left < units {
            // The tail of the old chunk (< `units` units) goes to waste, so
            // at most one node's worth per chunk.
            let layout = chunk_layout();
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc::alloc(layout) };
            if raw.is_null() {
                alloc::handle_alloc_error(layout);
            }
            let number = s.chunks.len();
            assert!(
                number < MAX_CHUNKS,
                "FIB node arena full ({MAX_CHUNKS} chunks)"
            );
            advise_huge(raw, CHUNK_BYTES);
            let base: *mut u64 = raw.cast();
            // SAFETY: the chunk is ours; its first word is in bounds.
            unsafe { base.write(number as u64) };
            // Release: a reader that resolves an id of this chunk got the id
            // from a word published (Release) after this store, so the
            // Relaxed load in `resolve` sees it; Release costs nothing here
            // and keeps the chunk header visible to any other path.
            self.bases[number].store(base, Ordering::Release);
            s.chunks.push(base);
            // Relaxed: a count, read by the same writer that allocates.
            self.chunk_count.store(s.chunks.len(), Ordering::Relaxed);
            // Unit 0 holds the chunk number.
            // SAFETY: one unit into the chunk.
            s.bump = unsafe { base.add(U) };
            s.bump_left = Self::CHUNK_UNITS - 1;
        }
        let p = s.bump;
        // SAFETY: `units <= bump_left`, so the result stays inside the chunk
        // (or one past its end).
        s.bump = unsafe { p.add(units * U) };
        s.bump_left -= units;
        p
    }

    /// Returns a block of `units` units from [`NodeArena::alloc`].
    ///
    /// # Safety
    /// `p` must come from `alloc(units)` on this arena, not be freed yet,
    /// and no one may use it afterwards.
    pub(crate) unsafe fn free(&self, p: *mut u64, units: usize) {
        let mut s = self.state();
        if s.released {
            return;
        }
        s.live_units -= units;
        if s.free.len() <= units {
            s.free.resize(units + 1, std::ptr::null_mut());
        }
        // SAFETY: the caller's contract: the block is ours again, and it
        // is at least one unit long.
        unsafe { p.write(s.free[units] as u64) };
        s.free[units] = p;
    }

    /// The id of a block from [`NodeArena::alloc`] (never 0).
    ///
    /// # Safety
    /// `p` must be a live block of this arena.
    pub(crate) unsafe fn id_of(&self, p: *const u64) -> u32 {
        let base = (p as usize & !(CHUNK_BYTES - 1)) as *const u64;
        // SAFETY: chunks are CHUNK_BYTES-aligned, so `base` is the block's
        // chunk, whose first word holds its number.
        let number = unsafe { *base } as u32;
        let unit = (p as usize - base as usize) / (U * 8);
        number << Self::UNIT_BITS | unit as u32
    }

    /// The block of a non-zero id from [`NodeArena::id_of`].
    #[inline(always)]
    pub(crate) fn resolve(&self, id: u32) -> *const u64 {
        // Relaxed: the caller got `id` through an Acquire load of a word
        // the writer published after allocating the block, and the chunk's
        // base was stored before that. The mask keeps a corrupt id inside
        // the table (it would resolve to null, never out of bounds).
        let base =
            self.bases[(id >> Self::UNIT_BITS) as usize % MAX_CHUNKS].load(Ordering::Relaxed);
        base.wrapping_add((id as usize & (Self::CHUNK_UNITS - 1)) * U)
    }

    /// Chunks the arena holds from the system.
    pub(crate) fn chunks(&self) -> usize {
        // Relaxed: see `alloc`.
        self.chunk_count.load(Ordering::Relaxed)
    }

    /// Bytes the arena holds from the system (whole chunks).
    pub(crate) fn bytes(&self) -> usize {
        self.state().chunks.len() * CHUNK_BYTES + self.bases.len() * 8
    }

    /// Bytes in live blocks.
    pub(crate) fn live_bytes(&self) -> usize {
        self.state().live_units * U * 8
    }

    /// Gives every chunk back to the system; later frees are ignored
    /// (blocks still in a dropped FIB's limbo are simply forgotten).
    ///
    /// # Safety
    /// No block may be used afterwards, and `alloc` may not be called
    /// again. The arena's `Drop` calls this.
    pub(crate) unsafe fn release(&self) {
        let mut s = self.state();
        for b in self.bases.iter() {
            b.store(std::ptr::null_mut(), Ordering::Relaxed);
        }
        // Relaxed: see `alloc`.
        self.chunk_count.store(0, Ordering::Relaxed);
        for c in std::mem::take(&mut s.chunks) {
            // SAFETY: allocated in `alloc` with `chunk_layout()`; the caller
            // guarantees no block is in use.
            unsafe { alloc::dealloc(c.cast(), chunk_layout()) };
        }
        s.free = Vec::new();
        s.bump = std::ptr::null_mut();
        s.bump_left = 0;
        s.live_units = 0;
        s.released = true;
    }
}

impl<const U: usize> Drop for NodeArena<U> {
    fn drop(&mut self) {
        // SAFETY: the arena's last owner is going: nothing uses its blocks.
        unsafe { self.release() }
    }
}

/// A retired node's block, waiting in the FIB's limbo (an address, so the
/// limbo is `Send`).
#[derive(Debug)]
pub(crate) struct Block {
    addr: usize,
    units: usize,
}

/// A core's nodes, as both cores use them: the arena, a node's size in units worked out in one
/// place from its length in bytes, a live-node count, and the release of
/// every chunk when the core is dropped.
pub(crate) struct NodeStore<const U: usize> {
    arena: NodeArena<U>,
    /// Nodes stored and not yet retired (statistics).
    nodes: AtomicUsize,
}

impl<const U: usize> NodeStore<U> {
    /// An empty store.
    pub(crate) fn new() -> Self {
        NodeStore {
            arena: NodeArena::new(),
            nodes: AtomicUsize::new(0),
        }
    }

    fn units(bytes: usize) -> usize {
        bytes.div_ceil(U * 8).max(1)
    }

    /// Copies a node (plain integers) into a fresh block and returns it.
    /// The block is unpublished until the caller stores a reference to it
    /// with Release. Only the core's single writer calls this.
    pub(crate) fn store<T: Copy>(&self, words: &[T]) -> *mut u64 {
        let bytes = std::mem::size_of_val(words);
        let p = self.arena.alloc(Self::units(bytes));
        // SAFETY: the block is fresh and at least `bytes` long; blocks are
        // `U`-word aligned, enough for any integer type.
        unsafe {
            std::ptr::copy_nonoverlapping(words.as_ptr().cast::<u8>(), p.cast::<u8>(), bytes)
        };
        // Relaxed: statistics, written by the single writer.
        self.nodes.fetch_add(1, Ordering::Relaxed);
        p
    }

    /// Takes an unlinked node out of the live count and returns its block,
    /// for the FIB's QSBR limbo to [`free`](Self::free) once no reader can
    /// hold it.
    ///
    /// # Safety
    /// `p` must come from [`NodeStore::store`] of `bytes` bytes, be retired
    /// once, and already be unlinked (its replacement published).
    pub(crate) unsafe fn retire(&self, p: *const u64, bytes: usize) -> Block {
        // Relaxed: statistics, written by the single writer.
        self.nodes.fetch_sub(1, Ordering::Relaxed);
        Block {
            addr: p as usize,
            units: Self::units(bytes),
        }
    }

    /// Returns a retired block to the arena's free lists.
    ///
    /// # Safety
    /// `b` must come from [`retire`](Self::retire) on this store, be freed
    /// once, and no reader may hold it any more (a grace period of the
    /// FIB's QSBR domain has passed since it was retired).
    pub(crate) unsafe fn free(&self, b: Block) {
        // SAFETY: the caller's contract; `units` is what `store` took.
        unsafe { self.arena.free(b.addr as *mut u64, b.units) }
    }

    /// The id of a stored node (never 0).
    ///
    /// # Safety
    /// `p` must be a live node of this store.
    pub(crate) unsafe fn id_of(&self, p: *const u64) -> u32 {
        // SAFETY: forwarded.
        unsafe { self.arena.id_of(p) }
    }

    /// The node of a non-zero id (see [`NodeArena::resolve`]).
    #[inline(always)]
    pub(crate) fn resolve(&self, id: u32) -> *const u64 {
        self.arena.resolve(id)
    }

    /// Chunks the store holds from the system.
    pub(crate) fn chunks(&self) -> usize {
        self.arena.chunks()
    }

    /// Bytes the store holds from the system.
    pub(crate) fn bytes(&self) -> usize {
        self.arena.bytes()
    }

    /// Bytes in live blocks (stored nodes and retired ones not yet freed).
    pub(crate) fn live_bytes(&self) -> usize {
        self.arena.live_bytes()
    }

    /// Nodes stored and not retired.
    pub(crate) fn count(&self) -> usize {
        self.nodes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches misaligned or overlapping blocks, a freed block not reused,
    /// an id that does not resolve back to its block, and a lock-free chunk
    /// count that does not follow the chunks (the IPv4 core's `is_full`
    /// reads it).
    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let a = NodeArena::<4>::new();
        const UNIT_WORDS: usize = 4;
        let chunk_units = NodeArena::<4>::CHUNK_UNITS;
        let mut blocks = Vec::new();
        for units in [1usize, 3, 29, 1, 3] {
            let p = a.alloc(units);
            assert_eq!(p as usize % (UNIT_WORDS * 8), 0);
            // SAFETY: the block is ours, `units` units long.
            unsafe { std::ptr::write_bytes(p, 0xab, units * UNIT_WORDS) };
            blocks.push((p as usize, units));
        }
        let mut sorted = blocks.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0].0 + w[0].1 * UNIT_WORDS * 8 <= w[1].0, "blocks overlap");
        }
        assert_eq!(a.live_bytes(), 37 * UNIT_WORDS * 8);
        for &(p, _) in &blocks {
            // SAFETY: live blocks of `a`.
            let id = unsafe { a.id_of(p as *const u64) };
            assert_ne!(id, 0);
            assert_eq!(a.resolve(id) as usize, p);
        }
        let (p, units) = blocks[2];
        // SAFETY: from `alloc(units)`, freed once.
        unsafe { a.free(p as *mut u64, units) };
        assert_eq!(a.alloc(29) as usize, p, "a freed block is reused");
        // Chunks fill up and new ones are added.
        for _ in 0..(chunk_units / 29 + 1) {
            a.alloc(29);
        }
        assert_eq!(a.bytes(), 2 * CHUNK_BYTES + MAX_CHUNKS * 8);
        assert_eq!(a.chunks(), 2, "the lock-free chunk count follows");
        let p = a.alloc(1);
        // SAFETY: a live block of `a`.
        let id = unsafe { a.id_of(p) };
        assert_eq!(id >> NodeArena::<4>::UNIT_BITS, 1, "in the second chunk");
        assert_eq!(a.resolve(id), p as *const u64);
    }
}
