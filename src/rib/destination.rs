//! One network's entry in the RIB: its published route set.
//!
//! Readers load the route set through crossbeam-epoch and take no lock.
//! Writers, holding the network's writer lock (one of the table's
//! [`WriterLocks`](super::stripes::WriterLocks)), build a new set and swap
//! it in; the old set is retired to the epoch collector and freed once no
//! reader pinned before the swap can still hold it.

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use crate::family::Family;
use crate::rib::route_set::{NewSet, RouteSet};
use std::sync::atomic::Ordering;

/// A network's node value in the skip list.
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
        // in `publish` and is freed only through the deferred drop in `publish` after it
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
            // collector frees it after they all unpin (what `defer_destroy`
            // does, counted as a free of the thread that runs it).
            unsafe {
                guard.defer_unchecked(move || {
                    crate::qsbr::count_free();
                    drop(old.into_owned());
                })
            };
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
