//! One network's entry in the RIB: its published route set.
//!
//! Readers load the route set through crossbeam-epoch and take no lock.
//! Writers, holding the network's writer lock (one of the table's
//! [`WriterLocks`]), build a new set and swap it in; the old set is retired
//! to the epoch collector and freed once no reader pinned before the swap
//! can still hold it.

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use crate::family::Family;
use crate::rib::route_set::{NewSet, RouteSet};
use std::sync::atomic::Ordering;

use std::hash::{BuildHasher, Hash};

use crate::sync::{Mutex, MutexGuard, lock};

/// The writers' locks, one per stripe of networks: a writer holds its
/// network's stripe while it looks the destination up, rewrites it and, if
/// it emptied it, unlinks it, so no writer ever works on an unlinked
/// destination. A per-destination lock cost 8 bytes a network; 4096
/// stripes make two writers of different networks meet rarely, and a
/// writer holds one stripe at a time, so stripes cannot deadlock.
pub(crate) struct WriterLocks {
    stripes: Box<[Mutex<()>]>,
}

#[cfg(not(loom))]
const STRIPES: usize = 4096;
/// Few under loom, which tracks every lock it is given: two stripes still
/// let two networks share one or not.
#[cfg(loom)]
const STRIPES: usize = 2;

impl WriterLocks {
    pub(crate) fn new() -> Self {
        WriterLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Locks `network`'s stripe.
    pub(crate) fn lock<N: Hash>(&self, network: &N) -> MutexGuard<'_, ()> {
        let h = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(network);
        lock(&self.stripes[h as usize % STRIPES])
    }
}

pub(crate) struct Destination<F: Family> {
    /// The published route set; null means empty.
    routes: Atomic<RouteSet<F>>,
}

impl<F: Family> Destination<F> {
    pub(crate) fn new() -> Self {
        Destination {
            routes: Atomic::null(),
        }
    }

    /// The current route set, valid while `guard` is pinned.
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> Option<&'g RouteSet<F>> {
        // Acquire pairs with the Release in `publish`: the set's contents,
        // written before the swap, are visible to whoever sees the pointer.
        let p = self.routes.load(Ordering::Acquire, guard);
        // SAFETY: every non-null pointer stored here came from `Owned::new`
        // in `publish` and is freed only through `defer_destroy` after it
        // was unlinked, which cannot run while `guard` (pinned before our
        // load) is alive; or by `Drop`, which needs `&mut self`.
        unsafe { p.as_ref() }
    }

    /// Publishes `set` (or empty) and retires the previous set. Callers hold
    /// the writer lock.
    pub(crate) fn publish(&self, set: Option<NewSet<F>>, guard: &Guard) {
        let new = match set {
            Some(s) => Owned::<RouteSet<F>>::init(s).into_shared(guard),
            None => Shared::null(),
        };
        // Release publishes the new set's contents (see `load`); Acquire is
        // not needed for the old pointer because the writer lock already
        // ordered us after its writer.
        let old = self.routes.swap(new, Ordering::Release, guard);
        if !old.is_null() {
            // SAFETY: `old` is no longer reachable from this destination, so
            // only readers pinned before this point can hold it; the
            // collector frees it after they all unpin.
            unsafe { guard.defer_destroy(old) };
        }
    }
}

impl<F: Family> Drop for Destination<F> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no reader or writer can reach this
        // destination any more (the skip list drops values only after their
        // node is unlinked and every entry reference is gone), so the
        // current set is exclusively ours.
        unsafe {
            let guard = epoch::unprotected();
            let p = self.routes.load(Ordering::Relaxed, guard);
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}
