//! The forwarding plane: compiled longest-prefix-match tables fed by
//! best-route changes.
//!
//! The RIB calls [`ForwardingTable::apply`] for every best-route change
//! while it still holds the destination's writer lock, so per prefix the
//! FIB sees changes in table order, and a change is in the FIB before the
//! RIB call that made it returns. Bulk calls (a batch of updates,
//! deregistration, block operations, aging) use
//! [`ForwardingTable::apply_deferred`] instead: the IPv4 core gathers the
//! changes of one /16 block in its writer-side list and compiles the
//! block's chunk once, when the writer moves on to another block, at the
//! end of each chunk of a few hundred networks, and before any other
//! write; a sorted table load then compiles each block once instead of
//! once per prefix in it.
//!
//! [`LpmFib`] runs one of two cores (module `core`): for IPv4 a 2^16-entry
//! root over one popcount-compressed chunk of runs per /16 block (module
//! `compact`: a root entry in L2, then one or two lines of the block's
//! chunk up to /24); for IPv6 a poptrie-family compressed trie (module
//! `trie`: an 18-bit top level, popcount-compressed 6-bit nodes, path
//! compression). Both keep their nodes in a huge-page arena (`arena`) and
//! their top level on huge pages (`pages`). Readers never lock, never retry
//! and never see a half-applied path: every update publishes each fully
//! built path with one atomic store (or, for a change that keeps a node's
//! or chunk's runs, stores the changed leaf words in place, one by one,
//! each answer still one word: a next hop's change of an existing prefix,
//! in IPv4 any /17-/24 change that keeps the runs, and a short prefix's
//! change of the match it passes to a block's chunk), and replaced nodes
//! and next-hop ids are reclaimed through the FIB's own quiescent-state
//! domain (`crate::qsbr`), by the writer, never by a reader. Throughout
//! these modules a caller *pinned* means an online reader of that domain
//! that has not reported a quiescent state since it loaded what it reads.
//! An update is atomic per address, not across addresses: a prefix
//! shorter than the top level (/16 for IPv4, /18 for IPv6) spans many
//! top-level entries (and, in IPv4, leaves of their chunks), and a change
//! in place many leaf words, stored one by one, so while it is added a
//! lookup of one address it covers can find it and a lookup of another
//! not yet (`tests/linearizability.rs` checks exactly this, address by
//! address).

mod arena;
mod compact;
mod core;
mod group;
mod next_hop_id;
mod nexthop;
pub(crate) mod pages;
mod trie;

pub use group::MAX_PATHS;
pub use next_hop_id::{FibNextHop, NextHopId};
// For the RIB's writers looking ahead and the benchmark's DIR-24-8.
pub(crate) use trie::prefetch;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smallvec::SmallVec;

use self::arena::Block;
use self::core::{Core, Shadow, Stages};
use self::group::{GROUP_BIT, GroupIds, GroupTable, Path};
use crate::family::{AddressFamily, IpAddressFamily};
use crate::prefix::{IpAddress, Prefix};
use crate::qsbr::{self, Domain, Limbo};
use crate::route::{ProtocolId, Route};
use nexthop::{Nexthop, NexthopIds, NexthopTable};

/// A forwarding structure the RIB feeds with best-route changes.
pub trait ForwardingTable<F: AddressFamily>: Send + Sync + 'static {
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
    /// Warms the cache line a change of `network` reads first (a hint:
    /// the RIB's batches call it some updates ahead). By default nothing.
    #[doc(hidden)]
    fn prefetch(&self, _network: &F::Network) {}
    /// Sets `network`'s equal-cost best routes (ECMP: two or more, see
    /// [`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)),
    /// deferred as [`apply_deferred`](Self::apply_deferred) with
    /// `deferred`. By default only the first is kept.
    fn apply_paths(&self, network: F::Network, paths: &[Route<F>], deferred: bool) {
        if deferred {
            self.apply_deferred(network, paths.first());
        } else {
            self.apply(network, paths.first());
        }
    }
}

/// The FIB of a family without longest-prefix matching (IPX).
#[derive(Debug, Default)]
pub struct NoFib;

impl<F: AddressFamily> ForwardingTable<F> for NoFib {
    fn empty() -> Self {
        NoFib
    }
    fn apply(&self, _network: F::Network, _best: Option<&Route<F>>) {}
}

/// What the forwarding path needs of a best route: small and copyable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FibEntry<F: IpAddressFamily> {
    /// The matched network.
    pub prefix: Prefix<F::Addr>,
    /// Where to send the packet.
    pub next_hop: F::Addr,
    /// Out of which interface.
    pub interface: u32,
    /// The protocol that owns the best route.
    pub protocol: ProtocolId,
}

impl<F: IpAddressFamily> FibEntry<F> {
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

/// What the FIB's writer has unlinked and frees once no reader can hold it.
pub(crate) enum Garbage {
    /// A replaced node's arena block.
    Node(Block),
    /// A next-hop id (or, with `GROUP_BIT`, a group id) no leaf names any
    /// more.
    Nexthop(u32),
    /// An ECMP group's members, replaced by a rewrite of the group: held
    /// only to be dropped once the grace period has passed (never read,
    /// hence the allowance).
    Members(#[allow(dead_code)] Box<group::Members>),
}

/// The FIB writer's limbo (see `crate::qsbr`).
pub(crate) type FibLimbo = Limbo<Garbage>;

/// Readers registered at once per FIB (lookups without a reader of their
/// own take one per thread; see [`LpmFib::lookup`]).
const READERS: usize = 1024;
/// Retired items after which a write tries to reclaim: each try costs a
/// heavy barrier and a scan of the reader slots, so it is amortised over
/// this many retirements (a few hundred writes).
const RECLAIM_EVERY: usize = 256;
/// Most items one reclaim frees: a large free never pauses the writer.
const FREE_LIMIT: usize = 4096;

/// The native bits of a family's addresses.
type Bits<F> = <<F as IpAddressFamily>::Addr as IpAddress>::Bits;

struct Writer<A: IpAddress> {
    shadow: Shadow<A::Bits>,
    /// The block the bulk writer's deferred changes are gathered in (IPv4),
    /// compiled by every other use of the writer (see [`LpmFib::writer`]).
    deferred: compact::Deferred,
    ids: NexthopIds<A>,
    /// ECMP groups: interning, reference counts, the next-hop index.
    groups: GroupIds<A>,
    /// Replaced nodes and released next-hop ids waiting for a grace period.
    limbo: FibLimbo,
    /// Next-hop ids released by deferred changes: the pending block's
    /// published chunk may still name them, so they go to the limbo only
    /// once the block is compiled and published.
    held: Vec<u32>,
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
/// let mut reader = fib.reader(); // a registered reader: plain loads
/// assert_eq!(reader.lookup("10.2.0.1".parse().unwrap()).unwrap().interface, 1);
/// reader.quiescent(); // between bursts: lets replaced nodes be freed
/// ```
pub struct LpmFib<F: IpAddressFamily> {
    core: Core<<F::Addr as IpAddress>::Bits>,
    nexthops: NexthopTable<F::Addr>,
    /// ECMP groups' published members, by group id.
    groups: GroupTable,
    domain: Arc<Domain>,
    writer: Mutex<Writer<F::Addr>>,
    prefixes: AtomicUsize,
}

impl<F: IpAddressFamily> fmt::Debug for LpmFib<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LpmFib")
            .field("family", &F::ID)
            .field("prefixes", &self.len())
            .field("nodes", &self.core.node_count())
            .field("node_bytes", &self.core.node_bytes())
            .finish()
    }
}

impl<F: IpAddressFamily> Default for LpmFib<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: IpAddressFamily> LpmFib<F> {
    /// An empty FIB.
    pub fn new() -> Self {
        let (core, shadow) = Core::new();
        LpmFib {
            core,
            nexthops: NexthopTable::new(nexthop::placeholder(<F::Addr as IpAddress>::from_native(
                Default::default(),
            ))),
            groups: GroupTable::new(),
            writer: Mutex::new(Writer {
                shadow,
                deferred: compact::Deferred::default(),
                // Ids from GROUP_BIT on name groups.
                ids: NexthopIds::with_limit(GROUP_BIT),
                groups: GroupIds::new(),
                limbo: FibLimbo::default(),
                held: Vec::new(),
                dropped: 0,
            }),
            domain: Arc::new(Domain::new(READERS)),
            prefixes: AtomicUsize::new(0),
        }
    }

    /// The writer, with any change held back by `apply_deferred`
    /// published: so every write but a deferred one, and every writer-side
    /// read, sees and leaves the lookup structure up to date.
    fn writer(&self) -> MutexGuard<'_, Writer<F::Addr>> {
        let mut w = self.writer_as_is();
        let w_ = &mut *w;
        if w_.deferred.is_pending() {
            self.core
                .publish_pending(&w_.shadow, &mut w_.deferred, &mut w_.limbo);
        }
        // Published: no lookup can reach the held ids through a new load.
        for id in w_.held.drain(..) {
            w_.limbo.retire(Garbage::Nexthop(id));
        }
        w
    }

    /// Frees what the limbo holds past its grace period (bounded).
    fn reclaim_locked(&self, w: &mut Writer<F::Addr>) -> usize {
        let Writer {
            limbo, ids, groups, ..
        } = w;
        limbo.reclaim(&self.domain, FREE_LIMIT, |g| {
            qsbr::count_free();
            match g {
                // SAFETY: retired by a core of this FIB after it was
                // unlinked, and the limbo hands it out only once every
                // reader online since has passed a quiescent state.
                Garbage::Node(b) => unsafe { self.core.free(b) },
                Garbage::Nexthop(id) if id & GROUP_BIT != 0 => groups.recycle(&self.groups, id),
                Garbage::Nexthop(id) => ids.recycle(id),
                Garbage::Members(m) => drop(m),
            }
        })
    }

    /// Frees, on the calling thread, what no reader can hold any more
    /// (replaced nodes, released next-hop ids), up to a few thousand
    /// items; returns how many. Writes call this every few hundred
    /// retirements, and bulk calls when they finish, so an embedder needs
    /// it only to return memory sooner after its readers report.
    pub fn reclaim(&self) -> usize {
        let mut w = self.writer();
        self.reclaim_locked(&mut w)
    }

    /// Replaced nodes and next-hop ids waiting for readers' quiescent
    /// states.
    pub fn unreclaimed(&self) -> usize {
        let w = self.writer_as_is();
        w.limbo.len() + w.held.len()
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
            Target::One(Nexthop {
                next_hop,
                interface,
                protocol,
            }),
            false,
        );
    }

    /// Removes the entry of `prefix`, if any.
    pub fn remove(&self, prefix: Prefix<F::Addr>) {
        self.set(prefix, Target::Remove, false);
    }

    /// Sets `prefix` to the group of `key` (or its one path).
    fn set_paths(&self, prefix: Prefix<F::Addr>, mut key: Vec<Path<F::Addr>>, defer: bool) {
        key.sort_unstable();
        key.truncate(MAX_PATHS);
        match key.as_slice() {
            [] => self.set(prefix, Target::Remove, defer),
            [one] => self.set(prefix, Target::One(one.hop), defer),
            _ => self.set(prefix, Target::Group(&key), defer),
        }
    }

    /// Sets or removes `prefix`'s entry; with `defer`, possibly held back
    /// from readers (see [`ForwardingTable::apply_deferred`]).
    fn set(&self, prefix: Prefix<F::Addr>, target: Target<'_, F::Addr>, defer: bool) {
        let mut w = if defer {
            self.writer_as_is()
        } else {
            self.writer()
        };
        let w = &mut *w;
        if !matches!(target, Target::Remove) && self.core.is_full() {
            w.dropped += 1;
            return;
        }
        let id = match target {
            Target::Remove => Some(0),
            Target::One(nh) => w.ids.acquire(&self.nexthops, nh),
            Target::Group(key) => w
                .groups
                .acquire(&self.groups, &self.nexthops, &mut w.ids, key),
        };
        let Some(id) = id else {
            w.dropped += 1;
            return;
        };
        let leaf = if id == 0 {
            0
        } else {
            id << 8 | prefix.len() as u32
        };
        let (a, len) = (prefix.addr().to_native(), prefix.len() as u32);
        let pending = defer.then_some(&mut w.deferred);
        let old = self
            .core
            .update(&mut w.shadow, pending, a, len, leaf, &mut w.limbo);
        if old != 0 {
            self.release_id(w, old >> 8, defer);
        }
        if w.limbo.open_len() >= RECLAIM_EVERY {
            self.reclaim_locked(w);
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

    /// Drops an unlinked leaf's reference on its id (a next hop's or a
    /// group's), retiring what loses its last one.
    fn release_id(&self, w: &mut Writer<F::Addr>, id: u32, defer: bool) {
        let mut freed: SmallVec<[u32; 4]> = SmallVec::new();
        if id & GROUP_BIT != 0 {
            if let Some(r) = w.groups.release(&self.nexthops, &mut w.ids, id) {
                freed.push(r.group);
                freed.extend(r.next_hops);
            }
        } else if let Some(id) = w.ids.unreference(&self.nexthops, id) {
            freed.push(id);
        }
        for id in freed {
            if defer {
                // The pending block's published chunk may still name it:
                // see `Writer::held`.
                w.held.push(id);
            } else {
                w.limbo.retire(Garbage::Nexthop(id));
            }
        }
    }

    /// Marks the next hop `next_hop` on `interface` down (prefix-independent
    /// convergence): every ECMP group with a path through it is rewritten
    /// at once to forward on its other paths, and so is every prefix using
    /// those groups, without touching one prefix. Returns how many groups
    /// were rewritten. Lookups that start after the call returns never
    /// answer the next hop for those groups; a group whose every path is
    /// down keeps forwarding on all of them until its routes are withdrawn
    /// (a FIB cannot fall back to a shorter prefix without touching the
    /// prefix). Prefixes whose only path is this next hop are left as they
    /// are: they have no other path to take. Routes added later through
    /// it are installed with it down.
    pub fn next_hop_down(&self, next_hop: F::Addr, interface: u32) -> usize {
        self.set_down(Some(next_hop), interface, true)
    }

    /// Undoes [`LpmFib::next_hop_down`]: the groups through the next hop
    /// forward on it again. Returns how many groups were rewritten.
    pub fn next_hop_up(&self, next_hop: F::Addr, interface: u32) -> usize {
        self.set_down(Some(next_hop), interface, false)
    }

    /// As [`LpmFib::next_hop_down`] for every next hop on `interface`.
    pub fn interface_down(&self, interface: u32) -> usize {
        self.set_down(None, interface, true)
    }

    /// Undoes [`LpmFib::interface_down`].
    pub fn interface_up(&self, interface: u32) -> usize {
        self.set_down(None, interface, false)
    }

    fn set_down(&self, next_hop: Option<F::Addr>, interface: u32, down: bool) -> usize {
        let mut w = self.writer();
        let w = &mut *w;
        let limbo = &mut w.limbo;
        let n = w
            .groups
            .set_down(&self.groups, next_hop, interface, down, |old| {
                limbo.retire(Garbage::Members(old))
            });
        if w.limbo.open_len() >= RECLAIM_EVERY {
            self.reclaim_locked(w);
        }
        n
    }

    /// The next hop a lookup answers for leaf id `id` and flow `hash`: the
    /// id's own next hop, or the path of its group that `hash` picks. The
    /// caller is an online reader that loaded the id from a published leaf
    /// and has not reported since, or holds the writer lock.
    #[inline(always)]
    fn hop_of(&self, id: u32, hash: u32) -> Nexthop<F::Addr> {
        if id & GROUP_BIT == 0 {
            return self.nexthops.get(id);
        }
        self.group_hop(id, hash)
    }

    /// [`LpmFib::hop_of`] for a group: out of line, so single-path lookups
    /// carry only the test of one bit.
    #[inline(never)]
    fn group_hop(&self, id: u32, hash: u32) -> Nexthop<F::Addr> {
        // SAFETY: the caller's contract (see `hop_of`): online since it
        // loaded the id, or the writer, which alone retires members.
        match unsafe { self.groups.get(id & !GROUP_BIT) } {
            Some(m) => self.nexthops.get(m.pick(hash)),
            None => self.nexthops.get(0),
        }
    }

    #[inline(always)]
    fn entry(&self, addr: <F::Addr as IpAddress>::Bits, leaf: u32) -> Option<FibEntry<F>> {
        self.entry_flow(addr, leaf, 0)
    }

    /// The answer for `leaf`, an ECMP group's path picked by `hash`; the
    /// caller is online (see `hop_of`).
    #[inline(always)]
    fn entry_flow(
        &self,
        addr: <F::Addr as IpAddress>::Bits,
        leaf: u32,
        hash: u32,
    ) -> Option<FibEntry<F>> {
        if leaf == 0 {
            return None;
        }
        let nh = self.hop_of(leaf >> 8, hash);
        Some(FibEntry {
            prefix: Prefix::of_native(addr, leaf as u8),
            next_hop: nh.next_hop,
            interface: nh.interface,
            protocol: nh.protocol,
        })
    }

    /// The longest-prefix match for `addr`, for callers without a reader
    /// of their own: the call goes online and offline again through this
    /// thread's slot in the FIB's QSBR domain (two stores and a light
    /// barrier: no lock, no read-modify-write, nobody's deferred work), so
    /// an idle thread never holds reclamation back. A forwarding loop
    /// should hold a [`FibReader`] ([`LpmFib::reader`]) instead, whose
    /// lookups are plain loads.
    #[inline]
    pub fn lookup(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        // SAFETY (of the reads inside): online for the closure's duration.
        qsbr::read_locally(&self.domain, || self.lookup_online(addr))
    }

    /// The longest-prefix match for `addr`, an ECMP group's path picked by
    /// the flow's `hash` (any 32-bit hash of the flow's 5-tuple: one hash,
    /// one path; each path gets its weight's share of the hash space).
    /// Without a group, the same answer as [`LpmFib::lookup`], which
    /// answers a group's first path that is up (in next hop, interface,
    /// protocol order). Online as [`LpmFib::lookup`].
    #[inline]
    pub fn lookup_flow(&self, addr: F::Addr, hash: u32) -> Option<FibEntry<F>> {
        // SAFETY (of the reads inside): online for the closure's duration.
        qsbr::read_locally(&self.domain, || self.lookup_flow_online(addr, hash))
    }

    /// The lookup proper. The caller must be an online reader of this
    /// FIB's domain that does not report a quiescent state before it is
    /// done with the result (which it copies out of the table).
    #[inline(always)]
    fn lookup_online(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        self.lookup_flow_online(addr, 0)
    }

    /// [`LpmFib::lookup_online`], a group's path picked by `hash`.
    #[inline(always)]
    fn lookup_flow_online(&self, addr: F::Addr, hash: u32) -> Option<FibEntry<F>> {
        let a = addr.to_native();
        self.entry_flow(a, self.core.lookup(a), hash)
    }

    /// A registered reader of this FIB, online: its lookups are plain
    /// loads. It must report a quiescent state ([`FibReader::quiescent`])
    /// between bursts of lookups, or go offline ([`FibReader::offline`])
    /// when idle; until it does, nothing retired after its last report is
    /// freed. At most 1,024 readers are registered at once (lookups through
    /// [`LpmFib::lookup`] take one per thread); beyond that this waits for
    /// one to be dropped.
    pub fn reader(&self) -> FibReader<'_, F> {
        FibReader {
            reg: Registration {
                fib: self,
                slot: self.domain.register_waiting(),
            },
        }
    }

    /// Looks up every address of `addrs` into `out` (as many as the shorter
    /// of the two holds; returns that count), overlapping the memory
    /// accesses of groups of addresses with prefetches. Online once for the
    /// batch through this thread's slot, as [`LpmFib::lookup`];
    /// [`FibReader::lookup_batch`] is the same for a registered reader.
    pub fn lookup_batch(&self, addrs: &[F::Addr], out: &mut [Option<FibEntry<F>>]) -> usize {
        qsbr::read_locally(&self.domain, || self.batch_online(addrs, out))
    }

    /// The batch proper; the caller is online (as for `lookup_online`).
    fn batch_online(&self, addrs: &[F::Addr], out: &mut [Option<FibEntry<F>>]) -> usize {
        self.batch_leaves(addrs, out, |a, leaf| self.entry(a, leaf))
    }

    /// The batch pipeline over either core, `emit` turning each address's
    /// leaf into its answer; the caller is online.
    fn batch_leaves<T>(
        &self,
        addrs: &[F::Addr],
        out: &mut [T],
        emit: impl Fn(Bits<F>, u32) -> T,
    ) -> usize {
        match &self.core {
            Core::Trie(t) => self.pipeline(t, addrs, out, emit),
            Core::Compact(d) => self.pipeline(d, addrs, out, emit),
        }
    }

    /// The batch pipeline over either core. The caller is online.
    #[inline(always)]
    fn pipeline<C: Stages<Bits<F>>, T>(
        &self,
        core: &C,
        addrs: &[F::Addr],
        out: &mut [T],
        emit: impl Fn(Bits<F>, u32) -> T,
    ) -> usize {
        // A four-stage pipeline over groups of GROUP addresses. In one
        // round, group g is walked (its walks interleaved level by level),
        // group g+1 gets the lines holding its leaves prefetched (their
        // node headers arrived meanwhile; a core may rewrite its words into
        // what the walk needs), group g+2 has its top-level words loaded
        // and its node headers prefetched, and group g+3 has its top-level
        // lines prefetched (by the trie; the compact core's root is in L2).
        // Every access thus has a group's worth of work to hide behind.
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
        // their top-level words (after stage 3, what the core's walk
        // needs).
        let mut native = [[Bits::<F>::default(); GROUP]; STAGES];
        let mut lens = [0usize; STAGES];
        let mut words = [[0u64; GROUP]; STAGES];
        let mut leaves = [0u32; GROUP];
        // Loads group g into its ring slot: native addresses, top-level
        // words (prefetching the node lines they name).
        #[inline(always)]
        fn load<F: IpAddressFamily, C: Stages<Bits<F>>>(
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
        // SAFETY: the words came from `load_group`, and the caller is online
        // for the whole batch.
        unsafe { core.prefetch_leaves(&native[0][..lens[0]], &mut words[0][..lens[0]]) };
        for g in 0..groups {
            prefetch_tops(g + 3);
            let r2 = (g + 2) % STAGES;
            lens[r2] = load::<F, C>(core, group(g + 2), &mut native[r2], &mut words[r2]);
            let r1 = (g + 1) % STAGES;
            // SAFETY: as above.
            unsafe { core.prefetch_leaves(&native[r1][..lens[r1]], &mut words[r1][..lens[r1]]) };
            let r = g % STAGES;
            let len = lens[r];
            // SAFETY: as above.
            unsafe { core.walk_group(&native[r][..len], &words[r][..len], &mut leaves) };
            for i in 0..len {
                out[g * GROUP + i] = emit(native[r][i], leaves[i]);
            }
        }
        n
    }

    /// The entry of exactly `prefix` (not a longest match), from the
    /// writer's side of the table.
    pub fn get(&self, prefix: &Prefix<F::Addr>) -> Option<FibEntry<F>> {
        let w = self.writer();
        let leaf = self
            .core
            .exact(&w.shadow, prefix.addr().to_native(), prefix.len() as u32);
        // The writer lock keeps the leaf's id from being recycled.
        self.entry(prefix.addr().to_native(), leaf)
    }

    /// Walks the whole address space the way lookups see it: calls `f`
    /// with consecutive ranges (first and last address as bits, the answer
    /// every address in it gets), read through the same entries and nodes
    /// lookups read, not the writer's bookkeeping. Runs of equal top-level
    /// leaf entries come as one range. For `Rtm::verify_consistency`;
    /// online through this thread's slot for the whole walk.
    pub(crate) fn walk_lookups(&self, mut f: impl FnMut(u128, u128, Option<FibEntry<F>>)) {
        let width = <F::Addr as IpAddress>::BITS as u32;
        let top_bits = self.core.top_bits();
        let slot_bits = width - top_bits;
        let slots = 1usize << top_bits;
        qsbr::read_locally(&self.domain, || {
            let mut start: u128 = 0;
            loop {
                let a = <F::Addr as IpAddress>::from_bits(start).to_native();
                let (leaf, depth) = self.core.lookup_span(a);
                let mut size = 1u128.checked_shl(width - depth).unwrap_or(0);
                if depth == top_bits {
                    // Decided at the top level: so is every following slot
                    // holding the same entry inside the same prefix (equal
                    // leaves name one next hop and one length, not one
                    // prefix: two adjacent /12s with one next hop have the
                    // same leaf, and their answers differ in the prefix).
                    let s = (start >> slot_bits) as usize;
                    let e = self.core.top_entry(s);
                    let outside = top_bits - (leaf as u8 as u32).min(top_bits);
                    let same_prefix = |t: usize| leaf == 0 || t >> outside == s >> outside;
                    let run = (s + 1..slots)
                        .take_while(|&t| self.core.top_entry(t) == e && same_prefix(t))
                        .count();
                    size = (run as u128 + 1) << slot_bits;
                }
                let last = start.wrapping_add(size).wrapping_sub(1);
                f(start, last, self.entry(a, leaf));
                match start.checked_add(size) {
                    Some(next) if size != 0 && next >> (width - 1) >> 1 == 0 => start = next,
                    _ => return,
                }
            }
        });
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
        let (group_lookup, group_writer) = w.groups.memory_bytes(&self.groups);
        FibMemory {
            lookup_bytes: self.core.memory_bytes() + self.nexthops.memory_bytes() + group_lookup,
            writer_bytes: w.shadow.memory_bytes() + w.ids.memory_bytes() + group_writer,
        }
    }

    /// Number of distinct (next hop, interface, protocol) tuples in use.
    pub fn next_hops(&self) -> usize {
        self.writer().ids.len()
    }

    /// Number of ECMP groups in use.
    pub fn groups(&self) -> usize {
        self.writer().groups.len()
    }

    /// The paths of exactly `prefix`'s entry (writer side), each with its
    /// weight and whether it is down ([`LpmFib::next_hop_down`]), in the
    /// group's order: one path without weight for a plain entry.
    pub fn paths(&self, prefix: &Prefix<F::Addr>) -> Vec<FibPath<F>> {
        let w = self.writer();
        let leaf = self
            .core
            .exact(&w.shadow, prefix.addr().to_native(), prefix.len() as u32);
        let id = leaf >> 8;
        let of = |hop: &Nexthop<F::Addr>, weight: u16| FibPath {
            next_hop: FibNextHop {
                next_hop: hop.next_hop,
                interface: hop.interface,
                protocol: hop.protocol,
            },
            weight,
            down: w.groups.is_down(hop),
        };
        if leaf == 0 {
            Vec::new()
        } else if id & GROUP_BIT == 0 {
            // The writer lock keeps the id from being recycled.
            vec![of(&self.nexthops.get(id), 1)]
        } else {
            w.groups
                .key(id)
                .unwrap_or_default()
                .iter()
                .map(|p| of(&p.hop, p.weight))
                .collect()
        }
    }

    /// Routes that could not be installed (see [`FibMemory`]): always 0
    /// unless 16M distinct next hops were in use at once, or (IPv4) the
    /// lookup structure reached 1 GiB, which takes over ten million
    /// prefixes longer than /24 in distinct /24s.
    pub fn dropped(&self) -> usize {
        self.writer().dropped
    }
}

impl<F: IpAddressFamily> ForwardingTable<F> for LpmFib<F> {
    fn empty() -> Self {
        LpmFib::new()
    }

    fn apply(&self, network: Prefix<F::Addr>, best: Option<&Route<F>>) {
        self.set(network, Target::of(best), false);
    }

    fn apply_deferred(&self, network: Prefix<F::Addr>, best: Option<&Route<F>>) {
        self.set(network, Target::of(best), true);
    }

    fn publish(&self) {
        drop(self.writer());
    }

    fn prefetch(&self, network: &Prefix<F::Addr>) {
        self.core.prefetch_top(network.addr().to_native());
    }

    fn apply_paths(&self, network: Prefix<F::Addr>, paths: &[Route<F>], deferred: bool) {
        let key = paths
            .iter()
            .map(|r| Path {
                hop: forwarding_of(r),
                weight: r.data.weight,
            })
            .collect();
        self.set_paths(network, key, deferred);
    }
}

/// What [`LpmFib::set`] installs.
enum Target<'k, A> {
    Remove,
    One(Nexthop<A>),
    /// A group of these paths (sorted, two or more).
    Group(&'k [Path<A>]),
}

impl<A: IpAddress> Target<'_, A> {
    /// A single best route's entry, or none.
    fn of<F: IpAddressFamily<Addr = A>>(best: Option<&Route<F>>) -> Self {
        best.map_or(Target::Remove, |r| Target::One(forwarding_of(r)))
    }
}

/// One path of a FIB entry ([`LpmFib::paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FibPath<F: IpAddressFamily> {
    /// Where it forwards.
    pub next_hop: FibNextHop<F>,
    /// Its share of the flows (1 for a plain entry).
    pub weight: u16,
    /// Whether its next hop or interface is down, so lookups skip it.
    pub down: bool,
}

/// What the FIB keeps of a best route.
fn forwarding_of<F: IpAddressFamily>(r: &Route<F>) -> Nexthop<F::Addr> {
    Nexthop {
        next_hop: r.next_hop,
        interface: r.interface,
        protocol: r.protocol,
    }
}

/// A slot registered in a FIB's QSBR domain, given back when dropped: what
/// [`FibReader`] and [`OfflineFibReader`] both hold, so that turning one
/// into the other moves the registration instead of re-registering.
struct Registration<'a, F: IpAddressFamily> {
    fib: &'a LpmFib<F>,
    slot: usize,
}

impl<F: IpAddressFamily> Drop for Registration<'_, F> {
    fn drop(&mut self) {
        self.fib.domain.unregister(self.slot);
    }
}

impl<F: IpAddressFamily> fmt::Debug for Registration<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// A registered, online reader of an [`LpmFib`] (see [`LpmFib::reader`]):
/// its lookups are plain loads (one Acquire load of the top-level entry,
/// then plain loads), with no read-modify-write, lock or allocation, and
/// it never runs anyone's deferred work.
///
/// It holds reclamation back until it reports a quiescent state
/// ([`quiescent`](Self::quiescent)) or goes offline
/// ([`offline`](Self::offline)); dropping it unregisters it. Reporting and
/// going offline take `&mut self` / `self`, so no lookup through it can be
/// in flight meanwhile.
#[derive(Debug)]
pub struct FibReader<'a, F: IpAddressFamily> {
    reg: Registration<'a, F>,
}

impl<'a, F: IpAddressFamily> FibReader<'a, F> {
    /// The longest-prefix match for `addr`.
    #[inline]
    pub fn lookup(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        // Online since registration or the last `online`/`quiescent`, and
        // neither can run while `&self` is borrowed.
        self.reg.fib.lookup_online(addr)
    }

    /// As [`LpmFib::lookup_flow`], through this reader.
    #[inline]
    pub fn lookup_flow(&self, addr: F::Addr, hash: u32) -> Option<FibEntry<F>> {
        // Online: as `lookup`.
        self.reg.fib.lookup_flow_online(addr, hash)
    }

    /// As [`LpmFib::lookup_batch`], through this reader.
    pub fn lookup_batch(&self, addrs: &[F::Addr], out: &mut [Option<FibEntry<F>>]) -> usize {
        self.reg.fib.batch_online(addrs, out)
    }

    /// Reports a quiescent state: the reader holds nothing it looked up
    /// before (results are copies), so what was replaced before now can
    /// be freed. One load and one store.
    #[inline]
    pub fn quiescent(&mut self) {
        self.reg.fib.domain.quiescent(self.reg.slot);
    }

    /// Goes offline (one store): an idle reader holds nothing back.
    pub fn offline(self) -> OfflineFibReader<'a, F> {
        self.reg.fib.domain.offline(self.reg.slot);
        OfflineFibReader { reg: self.reg }
    }
}

/// A registered reader gone offline ([`FibReader::offline`]): it keeps its
/// slot and holds no reclamation back; dropping it unregisters it.
#[derive(Debug)]
pub struct OfflineFibReader<'a, F: IpAddressFamily> {
    reg: Registration<'a, F>,
}

impl<'a, F: IpAddressFamily> OfflineFibReader<'a, F> {
    /// Comes online again (a store and a light barrier).
    pub fn online(self) -> FibReader<'a, F> {
        self.reg.fib.domain.online(self.reg.slot);
        FibReader { reg: self.reg }
    }
}
