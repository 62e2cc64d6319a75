//! The forwarding boundary: structures fed by best-route changes that answer
//! the forwarding path's longest-prefix-match lookups.
//!
//! The RIB calls [`ForwardingTable::apply`] for every best-route change while
//! it still holds the destination's writer lock, so per prefix the FIB sees
//! changes in table order, and a change is in the FIB before the RIB call
//! that made it returns.
//!
//! [`LpmFib`] is the simple, correct, lock-free structure of this version:
//! one lock-free ordered map of prefixes, probed from the longest populated
//! prefix length down. Cost model: up to one map probe (O(log n) pointer
//! hops) per populated prefix length, so about 25 probes for a full IPv4
//! table. A compiled structure (poptrie family) replaces it behind the same
//! boundary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use crossbeam_skiplist::SkipMap;

use crate::family::{Family, IpFamily};
use crate::prefix::{IpAddress, Prefix};
use crate::route::{ProtocolId, Route};

/// A forwarding structure the RIB feeds with best-route changes.
pub trait ForwardingTable<F: Family>: Send + Sync + 'static {
    /// An empty structure.
    fn empty() -> Self;
    /// Sets (`Some`) or removes (`None`) the best route of `network`. Called
    /// with the destination's writer lock held: never concurrently for one
    /// network.
    fn apply(&self, network: F::Network, best: Option<&Route<F>>);
}

/// The FIB of a family without longest-prefix matching (IPX).
#[derive(Debug, Default)]
pub struct NoFib;

impl<F: Family> ForwardingTable<F> for NoFib {
    fn empty() -> Self {
        NoFib
    }
    fn apply(&self, _network: F::Network, _best: Option<&Route<F>>) {}
}

/// What the forwarding path needs of a best route: small and copyable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FibEntry<F: IpFamily> {
    /// The matched network.
    pub prefix: Prefix<F::Addr>,
    /// Where to send the packet.
    pub next_hop: F::Addr,
    /// Out of which interface.
    pub interface: u32,
    /// The protocol that owns the best route.
    pub protocol: ProtocolId,
}

impl<F: IpFamily> FibEntry<F> {
    pub(crate) fn of(route: &Route<F>) -> Self {
        FibEntry {
            prefix: route.network,
            next_hop: route.next_hop,
            interface: route.interface,
            protocol: route.protocol,
        }
    }
}

/// A lock-free longest-prefix-match table of best routes.
///
/// Readers never lock: the skip list is lock-free and each prefix's entry is
/// an `ArcSwap` replaced in place, so a lookup sees either the old or the new
/// entry of a changing prefix, never a gap (crossbeam-skiplist's own
/// replace-insert would briefly leave none).
pub struct LpmFib<F: IpFamily> {
    entries: SkipMap<Prefix<F::Addr>, ArcSwap<FibEntry<F>>>,
    /// Number of prefixes of each length; lets lookups skip empty lengths.
    per_length: Vec<AtomicUsize>,
}

impl<F: IpFamily> LpmFib<F> {
    /// The longest-prefix match for `addr`.
    pub fn lookup(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        for len in (0..=<F::Addr as IpAddress>::BITS).rev() {
            // Acquire pairs with the Release increment in `apply`, which
            // precedes the insert: a non-zero count is never older than the
            // entries it counts. A stale zero only hides a prefix whose
            // insertion is still in progress (its RIB call has not returned).
            if self.per_length[len as usize].load(Ordering::Acquire) == 0 {
                continue;
            }
            if let Some(e) = self.entries.get(&Prefix::truncating(addr, len)) {
                return Some(**e.value().load());
            }
        }
        None
    }

    /// The entry of exactly `prefix`.
    pub fn get(&self, prefix: &Prefix<F::Addr>) -> Option<FibEntry<F>> {
        self.entries.get(prefix).map(|e| **e.value().load())
    }

    /// Number of prefixes in the FIB.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the FIB is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<F: IpFamily> ForwardingTable<F> for LpmFib<F> {
    fn empty() -> Self {
        LpmFib {
            entries: SkipMap::new(),
            per_length: (0..=<F::Addr as IpAddress>::BITS)
                .map(|_| AtomicUsize::new(0))
                .collect(),
        }
    }

    fn apply(&self, network: Prefix<F::Addr>, best: Option<&Route<F>>) {
        let count = &self.per_length[network.len() as usize];
        match best {
            Some(route) => {
                let entry = FibEntry::of(route);
                if let Some(slot) = self.entries.get(&network) {
                    slot.value().store(Arc::new(entry));
                } else {
                    // Release: see `lookup`.
                    count.fetch_add(1, Ordering::Release);
                    self.entries.insert(network, ArcSwap::from_pointee(entry));
                }
            }
            None => {
                if self.entries.remove(&network).is_some() {
                    // Release: the removal is visible before the count drops.
                    count.fetch_sub(1, Ordering::Release);
                }
            }
        }
    }
}
