//! A minimal epoch-based reclamation scheme on loom's atomics, standing in
//! for crossbeam-epoch in the publication models.
//!
//! crossbeam-epoch runs on std atomics and a global collector that loom
//! cannot instrument, so the models of route-set publication and FIB node
//! replacement check rtm's *protocol* against this stand-in: readers pin
//! before they load a published pointer and use it only while pinned;
//! writers unlink (swap out) before they retire, and a retired block is
//! reused only two epochs later. The scheme is the textbook one
//! crossbeam-epoch implements (global epoch, per-participant pinned epoch,
//! advance only when every pinned participant has seen the current epoch),
//! with crossbeam-epoch's orderings, except that its SeqCst fences become
//! read-modify-writes of the global epoch (see [`Collector::pin`]).
//!
//! Reuse is modelled as a *write* to the block through loom's `UnsafeCell`
//! (a poison value), so a reader still holding a block when it is reused
//! is a data race loom reports, and a poisoned read fails an assertion.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// What a reused (freed) block holds: a reader must never see it.
pub const POISON: u64 = u64::MAX;

/// A block's content at version `v`: the version and a check word, so a
/// torn or mixed read shows.
pub fn versioned(v: u64) -> [u64; 2] {
    [v, v * 7 + 1]
}

/// Fixed memory blocks of two words, written by one writer and read by
/// readers through published indexes: the route sets or FIB nodes of a
/// model. Access goes through loom's `UnsafeCell`, which reports any
/// read and write not ordered by happens-before.
pub struct Blocks {
    cells: Vec<UnsafeCell<[u64; 2]>>,
}

// SAFETY: every access goes through loom's UnsafeCell, which checks at run
// time (in the model) that no read and write of a block race; a race is a
// model failure, not undefined behaviour of the test.
unsafe impl Sync for Blocks {}

impl Blocks {
    /// `n` blocks, all poisoned (free).
    pub fn new(n: usize) -> Blocks {
        Blocks {
            cells: (0..n).map(|_| UnsafeCell::new([POISON; 2])).collect(),
        }
    }

    /// The writer fills block `b`.
    pub fn write(&self, b: usize, words: [u64; 2]) {
        // SAFETY: see `impl Sync`: loom checks this write against reads.
        self.cells[b].with_mut(|p| unsafe { *p = words });
    }

    /// A reader reads block `b`.
    pub fn read(&self, b: usize) -> [u64; 2] {
        // SAFETY: see `impl Sync`: loom checks this read against writes.
        self.cells[b].with(|p| unsafe { *p })
    }

    /// The block is freed for reuse: poisoned.
    pub fn free(&self, b: usize) {
        // SAFETY: see `impl Sync`: loom checks this write against reads.
        self.cells[b].with_mut(|p| unsafe { *p = [POISON; 2] });
    }
}

/// The collector: a global epoch and one pin slot per reader.
pub struct Collector {
    epoch: AtomicUsize,
    /// 0: not pinned; e + 1: pinned at epoch e.
    slots: Vec<AtomicUsize>,
}

/// A block retired at an epoch, waiting to be reused.
#[derive(Debug, Clone, Copy)]
pub struct Retired {
    /// The block (an index into the model's pool).
    pub block: usize,
    epoch: usize,
}

impl Collector {
    /// A collector for `readers` reader slots.
    pub fn new(readers: usize) -> Collector {
        Collector {
            epoch: AtomicUsize::new(0),
            slots: (0..readers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Pins reader `r`: announce the global epoch, then a read-modify-write
    /// of the global epoch.
    ///
    /// The announcement is an AcqRel swap, as crossbeam-epoch's on x86 (a
    /// SeqCst compare-and-swap of the participant's epoch): a collector
    /// that reads it then also acquires everything the reader did before,
    /// including the reads of its previous pin. With a Relaxed store there
    /// (crossbeam-epoch's other targets: store, then a SeqCst fence), an
    /// unbounded loom run finds a block reused while a read of the
    /// reader's previous pin is not ordered before the reuse: the
    /// collector saw the reader pinned at the current epoch, and under the
    /// C++20 model a later Relaxed store no longer carries the unpin's
    /// Release.
    ///
    /// The handshake with `collect` that crossbeam-epoch makes with SeqCst
    /// fences goes through an AcqRel read-modify-write of the global epoch
    /// instead (loom models SeqCst as acquire-release): whichever of the
    /// two comes second in the epoch's modification order sees what the
    /// first did before.
    pub fn pin(&self, r: usize) {
        let e = self.epoch.load(Ordering::Relaxed);
        self.slots[r].swap(e + 1, Ordering::AcqRel);
        self.epoch.fetch_add(0, Ordering::AcqRel);
    }

    /// Unpins reader `r`. Release: its reads of blocks happen before any
    /// reuse that observes the unpin (crossbeam-epoch's `Local::unpin`).
    pub fn unpin(&self, r: usize) {
        self.slots[r].store(0, Ordering::Release);
    }

    /// Retires `block`, already unlinked by the caller, tagged with the
    /// current epoch (read by the handshake read-modify-write, after the
    /// unlink).
    pub fn retire(&self, block: usize) -> Retired {
        Retired {
            block,
            epoch: self.epoch.fetch_add(0, Ordering::AcqRel),
        }
    }

    /// Tries to advance the epoch as crossbeam-epoch's `Global::try_advance`
    /// does (handshake, then every pinned reader must be at the current
    /// epoch), then returns the blocks of `pending` retired two or more
    /// epochs ago, removing them.
    pub fn collect(&self, pending: &mut Vec<Retired>) -> Vec<usize> {
        let e = self.epoch.fetch_add(0, Ordering::AcqRel);
        // Acquire pairs with `unpin`'s Release.
        if self.slots.iter().all(|s| {
            let v = s.load(Ordering::Acquire);
            v == 0 || v == e + 1
        }) {
            // Only the writer advances; AcqRel keeps the handshake chain.
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        let now = self.epoch.load(Ordering::Relaxed);
        let (ready, wait): (Vec<Retired>, Vec<Retired>) =
            pending.iter().partition(|r| r.epoch + 2 <= now);
        *pending = wait;
        ready.into_iter().map(|r| r.block).collect()
    }
}
