//! The forwarding plane: compiled longest-prefix-match tables fed by
//! best-route changes.
//!
//! The RIB calls [`ForwardingTable::apply`] for every best-route change
//! while it still holds the destination's writer lock, so per prefix the
//! FIB sees changes in table order, and a change is in the FIB before the
//! RIB call that made it returns. Bulk calls (a batch of updates,
//! deregistration, block operations, aging) use
//! [`ForwardingTable::apply_deferred`] instead: the IPv4 core gathers the
//! changes of one top-level slot's node in a writer-side copy and publishes
//! it once, when the writer moves on to another slot, at the end of each
//! chunk of a few hundred networks, and before any other write; a sorted
//! table load then copies each node once instead of once per prefix in it.
//!
//! [`LpmFib`] runs one of two cores (module `core`): for IPv4 a direct,
//! leaf-pushed DIR-20-4-4-4 trie (module `direct`: one top-level entry
//! and one node entry per lookup up to /24, each address computed from the
//! previous entry alone); for IPv6 a poptrie-family compressed trie (module
//! `trie`: a 20-bit top level, popcount-compressed 6-bit nodes, path
//! compression). Both keep their nodes in a huge-page arena (`arena`) and
//! their top level on huge pages (`pages`). Readers never lock, never retry
//! and never see a half-applied path: every update publishes each fully
//! built path with one atomic store, and replaced nodes are reclaimed
//! through crossbeam-epoch. An update is atomic per address, not across
//! addresses: a prefix shorter than the top level (/20) spans many
//! top-level entries, stored one by one, so while it is added a lookup of
//! one address it covers can find it and a lookup of another not yet
//! (`tests/linearizability.rs` checks exactly this, address by address).

mod arena;
mod core;
mod direct;
mod nexthop;
mod pages;
mod trie;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crossbeam_epoch::{self as epoch, Guard};

use self::core::{Core, Stages};
use crate::family::{Family, IpFamily};
use crate::prefix::{IpAddress, Prefix};
use crate::route::{ProtocolId, Route};
use nexthop::{Nexthop, NexthopIds, NexthopTable};
use trie::TrieShadow;

/// A forwarding structure the RIB feeds with best-route changes.
pub trait ForwardingTable<F: Family>: Send + Sync + 'static {
    /// An empty structure.
    fn empty() -> Self;
    /// Sets (`Some`) or removes (`None`) the best route of `network`.
    fn apply(&self, network: F::Network, best: Option<&Route<F>>);
    /// As [`apply`](Self::apply), but the structure may hold the change
    /// back from its readers until [`publish`](Self::publish) or its next
    /// `apply`: the RIB's bulk writers (batches, deregistration, block
    /// operations, aging) call this and publish every few hundred
    /// networks, and always before their call returns, so neighbouring
    /// prefixes share one copy of their node. Changes still take effect in
    /// the order they were applied. By default, applied at once.
    fn apply_deferred(&self, network: F::Network, best: Option<&Route<F>>) {
        self.apply(network, best);
    }
    /// Publishes every change [`apply_deferred`](Self::apply_deferred)
    /// held back.
    fn publish(&self) {}
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

/// How much memory a FIB holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibMemory {
    /// What lookups read: the top level, the nodes and the next-hop table.
    pub lookup_bytes: usize,
    /// What only writers read: the top-level shadow and the next-hop map.
    pub writer_bytes: usize,
}

impl FibMemory {
    /// Everything.
    pub fn total(&self) -> usize {
        self.lookup_bytes + self.writer_bytes
    }
}

/// The native bits of a family's addresses.
type Bits<F> = <<F as IpFamily>::Addr as IpAddress>::Bits;

struct Writer<A: IpAddress> {
    shadow: TrieShadow<A::Bits>,
    /// A node the bulk writer's deferred changes are gathered in, published
    /// by every other use of the writer (see [`LpmFib::writer`]).
    deferred: direct::Deferred,
    ids: NexthopIds<A>,
    /// Routes that could not be installed because all 2^24 - 1 next-hop
    /// ids were in use (never expected: that needs 16M distinct next hops).
    dropped: usize,
}

/// The lock-free longest-prefix-match FIB of an IP family.
///
/// ```
/// use rtm::{Ipv4, LpmFib, ProtocolId};
/// let fib = LpmFib::<Ipv4>::new();
/// fib.insert("10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap(), 1, ProtocolId(2));
/// fib.insert("10.1.0.0/16".parse().unwrap(), "192.0.2.9".parse().unwrap(), 2, ProtocolId(2));
/// let hit = fib.lookup("10.1.2.3".parse().unwrap()).unwrap();
/// assert_eq!(hit.prefix.to_string(), "10.1.0.0/16");
/// let reader = fib.reader(); // pin once, look up many
/// assert_eq!(reader.lookup("10.2.0.1".parse().unwrap()).unwrap().interface, 1);
/// ```
pub struct LpmFib<F: IpFamily> {
    core: Core<<F::Addr as IpAddress>::Bits>,
    nexthops: NexthopTable<F::Addr>,
    writer: Mutex<Writer<F::Addr>>,
    prefixes: AtomicUsize,
}

impl<F: IpFamily> fmt::Debug for LpmFib<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LpmFib")
            .field("family", &F::ID)
            .field("prefixes", &self.len())
            .field("nodes", &self.core.node_count())
            .field("node_bytes", &self.core.node_bytes())
            .finish()
    }
}

impl<F: IpFamily> Default for LpmFib<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: IpFamily> LpmFib<F> {
    /// An empty FIB.
    pub fn new() -> Self {
        let (core, shadow) = Core::new();
        LpmFib {
            core,
            nexthops: NexthopTable::new(nexthop::placeholder(<F::Addr as IpAddress>::from_native(
                Default::default(),
            ))),
            writer: Mutex::new(Writer {
                shadow,
                deferred: direct::Deferred::default(),
                ids: NexthopIds::new(),
                dropped: 0,
            }),
            prefixes: AtomicUsize::new(0),
        }
    }

    /// The writer, with any change held back by `apply_deferred`
    /// published: so every write but a deferred one, and every writer-side
    /// read, sees and leaves the lookup structure up to date.
    fn writer(&self) -> MutexGuard<'_, Writer<F::Addr>> {
        let mut w = self.writer_as_is();
        if w.deferred.is_pending() {
            let guard = epoch::pin();
            self.core.publish_pending(&mut w.deferred, &guard);
        }
        w
    }

    /// The writer, deferred changes left pending.
    fn writer_as_is(&self) -> MutexGuard<'_, Writer<F::Addr>> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the entry of `prefix` (replacing any).
    pub fn insert(
        &self,
        prefix: Prefix<F::Addr>,
        next_hop: F::Addr,
        interface: u32,
        protocol: ProtocolId,
    ) {
        self.set(
            prefix,
            Some(Nexthop {
                next_hop,
                interface,
                protocol,
            }),
            false,
        );
    }

    /// Removes the entry of `prefix`, if any.
    pub fn remove(&self, prefix: Prefix<F::Addr>) {
        self.set(prefix, None, false);
    }

    /// Sets or removes `prefix`'s entry; with `defer`, possibly held back
    /// from readers (see [`ForwardingTable::apply_deferred`]).
    fn set(&self, prefix: Prefix<F::Addr>, nh: Option<Nexthop<F::Addr>>, defer: bool) {
        let mut w = if defer {
            self.writer_as_is()
        } else {
            self.writer()
        };
        let w = &mut *w;
        let guard = epoch::pin();
        let leaf = match nh {
            Some(nh) => match w.ids.acquire(&self.nexthops, nh) {
                Some(id) => id << 8 | prefix.len() as u32,
                None => {
                    w.dropped += 1;
                    return;
                }
            },
            None => 0,
        };
        let (a, len) = (prefix.addr().to_native(), prefix.len() as u32);
        // A next-hop id released here may still be read from the pending
        // node's predecessor until it is published; ids are reused only a
        // grace period after release, which cannot end before the bulk
        // writer (pinned across its chunk) publishes and unpins.
        let pending = defer.then_some(&mut w.deferred);
        let old = self
            .core
            .update(&mut w.shadow, pending, a, len, leaf, &guard);
        if old != 0 {
            w.ids.release(&self.nexthops, old >> 8, &guard);
        }
        // Relaxed: a statistic; the trie's own publication orders lookups.
        match (old != 0, leaf != 0) {
            (false, true) => {
                self.prefixes.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.prefixes.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    #[inline(always)]
    fn entry(&self, addr: <F::Addr as IpAddress>::Bits, leaf: u32) -> Option<FibEntry<F>> {
        if leaf == 0 {
            return None;
        }
        let nh = self.nexthops.get(leaf >> 8);
        Some(FibEntry {
            prefix: Prefix::of_native(addr, leaf as u8),
            next_hop: nh.next_hop,
            interface: nh.interface,
            protocol: nh.protocol,
        })
    }

    /// The longest-prefix match for `addr`. Pins the epoch for the call;
    /// use [`LpmFib::reader`] or [`LpmFib::lookup_batch`] to pin once for
    /// many lookups.
    #[inline]
    pub fn lookup(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        let guard = epoch::pin();
        self.lookup_pinned(addr, &guard)
    }

    #[inline(always)]
    fn lookup_pinned(&self, addr: F::Addr, _guard: &Guard) -> Option<FibEntry<F>> {
        let a = addr.to_native();
        self.entry(a, self.core.lookup(a))
    }

    /// A reader that keeps the epoch pinned: lookups through it skip the
    /// pinning cost. Drop it between bursts so memory can be reclaimed.
    pub fn reader(&self) -> FibReader<'_, F> {
        FibReader {
            fib: self,
            guard: epoch::pin(),
        }
    }

    /// Looks up every address of `addrs` into `out` (as many as the shorter
    /// of the two holds; returns that count). Pins once and overlaps the
    /// memory accesses of groups of addresses with prefetches.
    pub fn lookup_batch(&self, addrs: &[F::Addr], out: &mut [Option<FibEntry<F>>]) -> usize {
        let guard = epoch::pin();
        let n = match &self.core {
            Core::Trie(t) => self.pipeline(t, addrs, out),
            Core::Direct(d) => self.pipeline(d, addrs, out),
        };
        drop(guard);
        n
    }

    /// The batch pipeline over either core. The caller is pinned.
    #[inline(always)]
    fn pipeline<C: Stages<Bits<F>>>(
        &self,
        core: &C,
        addrs: &[F::Addr],
        out: &mut [Option<FibEntry<F>>],
    ) -> usize {
        // A four-stage pipeline over groups of GROUP addresses. In one
        // round, group g is walked (its walks interleaved level by level),
        // group g+1 gets the lines holding its leaves prefetched (their
        // node headers arrived meanwhile), group g+2 has its top-level
        // words loaded and its node headers prefetched, and group g+3 has
        // its top-level lines prefetched. Every access thus has a group's
        // worth of work to hide behind.
        const GROUP: usize = 32;
        const STAGES: usize = 3;
        let n = addrs.len().min(out.len());
        let group = |g: usize| &addrs[(g * GROUP).min(n)..((g + 1) * GROUP).min(n)];
        let prefetch_tops = |g: usize| {
            for a in group(g) {
                core.prefetch_top(a.to_native());
            }
        };
        let groups = n.div_ceil(GROUP);
        // Ring of the groups in flight: native addresses, their count and
        // their top-level words.
        let mut native = [[Bits::<F>::default(); GROUP]; STAGES];
        let mut lens = [0usize; STAGES];
        let mut words = [[0u64; GROUP]; STAGES];
        let mut leaves = [0u32; GROUP];
        // Loads group g into its ring slot: native addresses, top-level
        // words (prefetching the node lines they name).
        #[inline(always)]
        fn load<F: IpFamily, C: Stages<Bits<F>>>(
            core: &C,
            src: &[F::Addr],
            native: &mut [Bits<F>],
            words: &mut [u64],
        ) -> usize {
            for (x, a) in native.iter_mut().zip(src) {
                *x = a.to_native();
            }
            core.load_group(&native[..src.len()], &mut words[..src.len()]);
            src.len()
        }
        for g in 0..3 {
            prefetch_tops(g);
        }
        for g in 0..2 {
            lens[g] = load::<F, C>(core, group(g), &mut native[g], &mut words[g]);
        }
        // SAFETY: the words came from `load_group`, and the caller is pinned
        // for the whole batch.
        unsafe { core.prefetch_leaves(&native[0][..lens[0]], &words[0][..lens[0]]) };
        for g in 0..groups {
            prefetch_tops(g + 3);
            let r2 = (g + 2) % STAGES;
            lens[r2] = load::<F, C>(core, group(g + 2), &mut native[r2], &mut words[r2]);
            let r1 = (g + 1) % STAGES;
            // SAFETY: as above.
            unsafe { core.prefetch_leaves(&native[r1][..lens[r1]], &words[r1][..lens[r1]]) };
            let r = g % STAGES;
            let len = lens[r];
            // SAFETY: as above.
            unsafe { core.walk_group(&native[r][..len], &words[r][..len], &mut leaves) };
            for i in 0..len {
                out[g * GROUP + i] = self.entry(native[r][i], leaves[i]);
            }
        }
        n
    }

    /// The entry of exactly `prefix` (not a longest match).
    pub fn get(&self, prefix: &Prefix<F::Addr>) -> Option<FibEntry<F>> {
        let w = self.writer();
        let leaf = self
            .core
            .exact(&w.shadow, prefix.addr().to_native(), prefix.len() as u32);
        let guard = epoch::pin();
        let e = self.entry(prefix.addr().to_native(), leaf);
        drop(guard);
        e
    }

    /// Number of prefixes in the FIB.
    pub fn len(&self) -> usize {
        // Relaxed: see `set`.
        self.prefixes.load(Ordering::Relaxed)
    }

    /// Whether the FIB is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held, split into what lookups read and what only writers read.
    pub fn memory(&self) -> FibMemory {
        let w = self.writer();
        FibMemory {
            lookup_bytes: self.core.memory_bytes() + self.nexthops.memory_bytes(),
            writer_bytes: w.shadow.memory_bytes() + w.ids.memory_bytes(),
        }
    }

    /// Number of distinct (next hop, interface, protocol) tuples in use.
    pub fn next_hops(&self) -> usize {
        self.writer().ids.len()
    }

    /// Routes that could not be installed (see [`FibMemory`]): always 0
    /// unless 16M distinct next hops were in use at once.
    pub fn dropped(&self) -> usize {
        self.writer().dropped
    }
}

impl<F: IpFamily> ForwardingTable<F> for LpmFib<F> {
    fn empty() -> Self {
        LpmFib::new()
    }

    fn apply(&self, network: Prefix<F::Addr>, best: Option<&Route<F>>) {
        self.set(network, best.map(forwarding_of), false);
    }

    fn apply_deferred(&self, network: Prefix<F::Addr>, best: Option<&Route<F>>) {
        self.set(network, best.map(forwarding_of), true);
    }

    fn publish(&self) {
        drop(self.writer());
    }
}

/// What the FIB keeps of a best route.
fn forwarding_of<F: IpFamily>(r: &Route<F>) -> Nexthop<F::Addr> {
    Nexthop {
        next_hop: r.next_hop,
        interface: r.interface,
        protocol: r.protocol,
    }
}

/// A pinned reader of an [`LpmFib`] (see [`LpmFib::reader`]).
pub struct FibReader<'a, F: IpFamily> {
    fib: &'a LpmFib<F>,
    guard: Guard,
}

impl<F: IpFamily> fmt::Debug for FibReader<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FibReader").finish_non_exhaustive()
    }
}

impl<F: IpFamily> FibReader<'_, F> {
    /// The longest-prefix match for `addr`.
    #[inline]
    pub fn lookup(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        self.fib.lookup_pinned(addr, &self.guard)
    }

    /// Re-pins the epoch (lets memory retired since the last pin be freed).
    pub fn repin(&mut self) {
        self.guard.repin();
    }
}
