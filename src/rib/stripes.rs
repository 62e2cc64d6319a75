//! The writers' striped locks, and the destination cache each stripe owns.
//!
//! A writer holds its network's stripe while it looks the destination up,
//! rewrites it and, if it emptied it, unlinks it, so no writer ever works on
//! an unlinked destination. A per-destination lock cost 8 bytes a network;
//! 4096 stripes make two writers of different networks meet rarely, and a
//! writer holds one stripe at a time, so stripes cannot deadlock.
//!
//! # The destination cache
//! Finding a destination in the skip list costs a cache miss per level of
//! its lower half: a third of a replayed BGP update. The networks a day of
//! updates touches are few and touched again and again (the RIS day: 1.39 M
//! updates on 135 k of 1.04 M networks), so each stripe keeps a small
//! direct-mapped cache from network to destination: 3 to 6 bytes a network
//! ([`CACHE_BYTES_PER_NETWORK`] rounded up to a power of two of slots; 4
//! for the RIS table, a slot per four networks), which keeps 8 to 9 in 10
//! of that day's lookups out of the skip list (measured by replaying it
//! through a model of this cache).
//!
//! It is a cache, not an index: a slot holds the last destination looked
//! up there; a miss costs a skip-list search as before. Being owned by the
//! stripe, it needs no synchronisation of its own: a slot holds only
//! networks of its stripe and is read and written under the stripe's lock.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use crossbeam_epoch::Guard;

use crate::family::Family;
use crate::rib::destination::Destination;
use crate::sync::{Mutex, MutexGuard, lock};

/// The default stripe count ([`crate::RtmBuilder::writer_stripes`]).
#[cfg(not(loom))]
pub(crate) const DEFAULT_STRIPES: NonZeroUsize = NonZeroUsize::new(4096).unwrap();
/// Few under loom, which tracks every lock it is given: two stripes still
/// let two networks share one or not.
#[cfg(loom)]
pub(crate) const DEFAULT_STRIPES: NonZeroUsize = NonZeroUsize::new(2).unwrap();

/// The cache's memory per network of its stripe: a stripe keeps this
/// budget in slots, rounded up to a power of two (a slot is a network and
/// a pointer: 16 bytes for IPv4, 32 for IPv6), so one slot at least while
/// it has a network.
pub(crate) const CACHE_BYTES_PER_NETWORK: usize = 3;

/// The writers' locks, one per stripe of networks.
pub(crate) struct WriterLocks<F: Family> {
    stripes: Box<[Mutex<Stripe<F>>]>,
}

impl<F: Family> WriterLocks<F> {
    pub(crate) fn new(stripes: NonZeroUsize) -> Self {
        WriterLocks {
            stripes: (0..stripes.get())
                .map(|_| Mutex::new(Stripe::new(stripes)))
                .collect(),
        }
    }

    /// Locks `network`'s stripe.
    pub(crate) fn lock(&self, network: &F::Network) -> Locked<'_, F> {
        let (stripe, slot_hash) = split_hash(network, self.stripes.len());
        Locked {
            stripe: lock(&self.stripes[stripe]),
            network: *network,
            slot_hash,
        }
    }
}

/// A network's stripe, and the hash bits its stripe's cache slot is taken
/// from (those the stripe did not use).
fn split_hash<N: Hash>(network: &N, stripes: usize) -> (usize, u64) {
    let h = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(network);
    ((h % stripes as u64) as usize, h / stripes as u64)
}

/// A cached destination: its network and where it lives.
struct Slot<F: Family> {
    network: F::Network,
    destination: NonNull<Destination<F>>,
}

/// One stripe's state: how many linked destinations it has, and its cache.
///
/// Invariant (kept under the stripe's lock, by every writer): a slot names
/// a destination whose skip-list node is linked and whose key is the slot's
/// network. Slots are filled only from a node found linked under the lock,
/// and only a holder of the lock unlinks a node of this stripe, clearing
/// its slot first ([`Locked::unlinking`]).
pub(crate) struct Stripe<F: Family> {
    /// How many stripes there are (to recompute slot hashes on a resize).
    stripes: NonZeroUsize,
    /// Linked destinations of this stripe's networks: sizes the cache.
    networks: usize,
    /// Empty, or a power of two of slots.
    slots: Box<[Option<Slot<F>>]>,
}

// SAFETY: the pointers name destinations owned by the table's skip list,
// which is itself `Send + Sync` for `Destination<F>: Send + Sync`; a stripe
// only stores them, and they are dereferenced under the stripe's lock (see
// `Locked::cached`), never through a `Stripe` moved or shared on its own.
unsafe impl<F: Family> Send for Stripe<F> where Destination<F>: Send + Sync {}

impl<F: Family> Stripe<F> {
    fn new(stripes: NonZeroUsize) -> Self {
        Stripe {
            stripes,
            networks: 0,
            slots: Box::new([]),
        }
    }

    /// The number of slots for `networks` networks: the budget rounded up
    /// to a power of two (none for no network).
    fn slots_for(networks: usize) -> usize {
        (networks * CACHE_BYTES_PER_NETWORK)
            .div_ceil(size_of::<Option<Slot<F>>>())
            .next_power_of_two()
            * usize::from(networks > 0)
    }

    /// Grows the cache when the network count has outgrown it, shrinks it
    /// when the count is down to a quarter (so a count wavering at a
    /// boundary does not resize it back and forth). Cached entries are
    /// carried over.
    fn resize_if_needed(&mut self) {
        let want = Self::slots_for(self.networks);
        let have = self.slots.len();
        if want > have || want <= have / 4 {
            let old = std::mem::replace(
                &mut self.slots,
                (0..want).map(|_| None).collect::<Box<[_]>>(),
            );
            if want > 0 {
                for s in old.into_vec().into_iter().flatten() {
                    let (_, slot_hash) = split_hash(&s.network, self.stripes.get());
                    self.slots[slot_hash as usize & (want - 1)] = Some(s);
                }
            }
        }
    }
}

/// A held stripe lock, for one network.
pub(crate) struct Locked<'a, F: Family> {
    stripe: MutexGuard<'a, Stripe<F>>,
    network: F::Network,
    slot_hash: u64,
}

impl<F: Family> Locked<'_, F> {
    fn slot_index(&self) -> Option<usize> {
        let n = self.stripe.slots.len();
        (n > 0).then(|| self.slot_hash as usize & (n - 1))
    }

    /// The network's destination, if the cache has it.
    pub(crate) fn cached<'g>(&self, _guard: &'g Guard) -> Option<&'g Destination<F>> {
        let slot = self.stripe.slots[self.slot_index()?].as_ref()?;
        if slot.network != self.network {
            return None;
        }
        // SAFETY: by the stripe's invariant the node holding this
        // destination is linked now, and we hold the lock only whose
        // holders unlink it; crossbeam-skiplist frees a node only through
        // the epoch collector after it is unlinked, so it outlives `guard`,
        // which is pinned now.
        Some(unsafe { slot.destination.as_ref() })
    }

    /// Remembers `destination`, whose node the caller found linked under
    /// this lock with the lock's network as key.
    pub(crate) fn remember(&mut self, destination: &Destination<F>) {
        if let Some(i) = self.slot_index() {
            self.stripe.slots[i] = Some(Slot {
                network: self.network,
                destination: NonNull::from(destination),
            });
        }
    }

    /// Counts a destination the caller has just linked.
    pub(crate) fn linked(&mut self) {
        self.stripe.networks += 1;
        self.stripe.resize_if_needed();
    }

    /// Forgets the network's destination: called before its node is
    /// unlinked, so no slot ever names an unlinked node.
    pub(crate) fn unlinking(&mut self) {
        if let Some(i) = self.slot_index()
            && self.stripe.slots[i]
                .as_ref()
                .is_some_and(|s| s.network == self.network)
        {
            self.stripe.slots[i] = None;
        }
        self.stripe.networks -= 1;
        self.stripe.resize_if_needed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Ipv4;
    use crate::prefix::Ipv4Prefix;

    fn network(i: u32) -> Ipv4Prefix {
        Ipv4Prefix::new(std::net::Ipv4Addr::from(i << 8), 24).unwrap()
    }

    #[test]
    fn the_cache_keeps_to_its_budget() {
        let slot = size_of::<Option<Slot<Ipv4>>>();
        assert_eq!(Stripe::<Ipv4>::slots_for(0), 0);
        assert_eq!(Stripe::<Ipv4>::slots_for(1), 1);
        for n in 1..5000 {
            let slots = Stripe::<Ipv4>::slots_for(n);
            assert!(slots.is_power_of_two(), "{n}: {slots}");
            // Rounded up to a power of two: at most twice the budget.
            assert!(slots * slot >= n * CACHE_BYTES_PER_NETWORK, "{n}: {slots}");
            assert!(
                slots * slot < 2 * (n * CACHE_BYTES_PER_NETWORK).max(slot),
                "{n}: {slots}"
            );
        }
    }

    /// Fills one stripe's cache past several resizes, then empties it: a
    /// lookup answers the network's own destination or nothing, entries
    /// survive a resize, and the memory goes back with the networks.
    #[test]
    fn the_cache_answers_only_its_own_network_and_shrinks_back() {
        let locks = WriterLocks::<Ipv4>::new(NonZeroUsize::MIN);
        let destinations: Vec<Destination<Ipv4>> = (0..2000).map(|_| Destination::new()).collect();
        let guard = crossbeam_epoch::pin();
        for (i, d) in destinations.iter().enumerate() {
            let mut locked = locks.lock(&network(i as u32));
            locked.linked();
            locked.remember(d);
        }
        let slots = lock(&locks.stripes[0]).slots.len();
        assert_eq!(slots, Stripe::<Ipv4>::slots_for(2000));
        let mut hits = 0;
        for (i, d) in destinations.iter().enumerate() {
            let locked = locks.lock(&network(i as u32));
            if let Some(c) = locked.cached(&guard) {
                assert!(
                    std::ptr::eq(c, d),
                    "network {i} answered another destination"
                );
                hits += 1;
            }
        }
        // Direct-mapped, last writer wins: at most one hit per slot, and a
        // slot written last by a later network answers only that one.
        assert!(
            hits > slots / 2 && hits <= slots,
            "{hits} hits in {slots} slots"
        );
        for i in 0..2000 {
            let mut locked = locks.lock(&network(i));
            locked.unlinking();
            assert!(
                locked.cached(&guard).is_none(),
                "network {i} unlinked but cached"
            );
        }
        let stripe = lock(&locks.stripes[0]);
        assert_eq!((stripe.networks, stripe.slots.len()), (0, 0));
    }
}
