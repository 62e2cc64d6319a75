//! The RIB of one address family: destinations, clients, the change stream.
//!
//! # Concurrency
//! - **Destinations** live in a lock-free skip list keyed by network.
//!   Readers (`is_route`, ordered walks, enumeration) pin an epoch, find the
//!   destination and load its published route set: no lock, no waiting.
//! - **Writers** serialise per network on its striped writer lock, decode
//!   the route set (stored routes are compact, their attributes interned:
//!   `route_set`, `crate::intern`), apply their change, select the best
//!   route and publish the new set. Different networks are written in
//!   parallel. A writer finds its destination from a cursor (batches and
//!   bulk walks step along the bottom level from the previous network),
//!   its stripe's destination cache (`stripes`) or, failing both, a
//!   search. Bulk operations walk their sorted networks along the skip
//!   list and wake waiting subscribers once per chunk (`bulk`, `Wakes`).
//! - **The sequencer** is a short per-family critical section around the
//!   publication and the enqueueing of the change message, so every client
//!   sees the family's changes in one order, and that order is the order in
//!   which the table changed (spec 3.4, A22).
//! - **The FIB** is told of each best-route change while the writer lock is
//!   still held, before the call returns (spec A23, design.md).
//! - **Clients** are in a sharded map; each has a gate (shared by its
//!   operations, exclusive for deregistration) and an index of its networks,
//!   so deregistration and block operations touch only that client's routes.

pub(crate) mod destination;
pub(crate) mod route_set;
mod stripes;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_epoch as epoch;
use crossbeam_skiplist::base::{self, SkipList};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::change::Change;
use crate::client::{ClientHandle, ClientState, RegisterOptions};
use crate::clock::Timestamp;
use crate::criteria::Criteria;
use crate::error::RtmError;
use crate::family::Family;
use crate::fib::ForwardingTable;
use crate::notify::{ChangeQueue, Dequeued};
use crate::route::{ProtocolId, Route, RouteData, RouteKey, RouteUpdate, Ttl};
use crate::rtm::Shared;
use crate::sync::{Arc, Mutex, lock};

use destination::Destination;
pub(crate) use route_set::MAX_ROUTES_PER_NETWORK;
use route_set::{
    Attrs, Entries, Entry, Lifetime, NewSet, RouteSet, Routes, Stored, Working, select_best,
};
use smallvec::SmallVec;
pub(crate) use stripes::DEFAULT_STRIPES as DEFAULT_WRITER_STRIPES;
use stripes::{Locked, WriterLocks};

use crate::intern::{InternIds, InternTable};

/// How many networks a bulk writer rewrites between two wakes of the
/// change queues it owes one (see [`Wakes`]): a waiting subscriber hears
/// of a burst within a millisecond, and the writer pays one futex wake per
/// this many messages instead of one per message. Each wake also puts the
/// subscriber on a core, ahead of a lookup thread there: at 256, the two
/// subscribers of `rtm bench churn` took the reader's core some 8,000
/// times a second during a deregistration.
const WAKE_EVERY: usize = 1024;

/// How many networks a bulk writer handles under one epoch pin (see
/// [`Table::bulk`]), and between two publications of its deferred FIB
/// changes.
const CHUNK: usize = 256;

/// Collections a bulk walk runs after each chunk of [`CHUNK`] networks: a
/// chunk retires a few hundred sets and FIB nodes, some 15 batches of
/// crossbeam-epoch's, and a collection frees up to eight.
const COLLECTS_PER_CHUNK: usize = 3;

/// The change queues a writer has pushed to while a thread waited on them,
/// and not yet woken (see `ChangeQueue::push_deferred`). Woken every
/// [`WAKE_EVERY`] networks, on [`flush`](Wakes::flush) and on drop, so no
/// return path, error or panic included, leaves a waiter asleep.
pub(crate) struct Wakes<F: Family> {
    owed: Vec<Arc<ClientState<F>>>,
    since_flush: usize,
}

impl<F: Family> Wakes<F> {
    pub(crate) fn new() -> Self {
        Wakes {
            owed: Vec::new(),
            since_flush: 0,
        }
    }

    fn owe(&mut self, client: &Arc<ClientState<F>>) {
        // A handful of subscribers at most: a scan beats a set.
        if !self.owed.iter().any(|c| Arc::ptr_eq(c, client)) {
            self.owed.push(client.clone());
        }
    }

    /// Counts one rewritten network; wakes every [`WAKE_EVERY`].
    fn step(&mut self) {
        self.since_flush += 1;
        if self.since_flush >= WAKE_EVERY {
            self.flush();
        }
    }

    /// Wakes every queue owed a wake.
    pub(crate) fn flush(&mut self) {
        self.since_flush = 0;
        for c in self.owed.drain(..) {
            if let Some(q) = &c.queue {
                q.wake();
            }
        }
    }
}

impl<F: Family> Drop for Wakes<F> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Who is writing, who hears of it, and the wakes it owes.
pub(crate) struct WriteCtx<'a, F: Family> {
    /// The calling client, if any: its index is updated without a registry
    /// lookup.
    caller: Option<&'a Arc<ClientState<F>>>,
    /// Whether the caller gets the change messages too (block operations)
    /// or not (add, delete: spec 3.4). Without a caller (aging), everyone.
    tell_caller: bool,
    /// Deregistration: the caller's index is discarded whole afterwards, so
    /// it is not maintained network by network.
    caller_leaving: bool,
    /// A bulk writer: FIB changes may be held back until its chunk ends
    /// (`ForwardingTable::apply_deferred`, [`PublishFib`]).
    defer_fib: bool,
    wakes: Wakes<F>,
}

impl<'a, F: Family> WriteCtx<'a, F> {
    /// An add or delete by `caller`: everyone else is told.
    fn own_route(caller: &'a Arc<ClientState<F>>) -> Self {
        WriteCtx {
            caller: Some(caller),
            tell_caller: false,
            caller_leaving: false,
            defer_fib: false,
            wakes: Wakes::new(),
        }
    }

    /// A block operation by `caller`: everyone is told.
    fn block(caller: &'a Arc<ClientState<F>>) -> Self {
        WriteCtx {
            tell_caller: true,
            ..Self::own_route(caller)
        }
    }

    /// Deregistration of `caller`.
    fn leaving(caller: &'a Arc<ClientState<F>>) -> Self {
        WriteCtx {
            caller_leaving: true,
            ..Self::block(caller)
        }
    }

    /// The RTM itself (aging): everyone is told.
    fn system() -> Self {
        WriteCtx {
            caller: None,
            tell_caller: true,
            caller_leaving: false,
            defer_fib: false,
            wakes: Wakes::new(),
        }
    }

    /// Whether `s` gets this writer's change messages.
    fn tells(&self, s: &Arc<ClientState<F>>) -> bool {
        self.tell_caller || !self.caller.is_some_and(|c| Arc::ptr_eq(c, s))
    }
}

/// An entry of the set a write replaces: its attributes, the id it holds a
/// reference on, and whether an entry of the new set took that reference
/// over.
struct OldRef<F: Family> {
    attrs: Attrs<F>,
    id: u32,
    kept: bool,
}

type OldRefs<F> = SmallVec<[OldRef<F>; 2]>;

/// A destination's node, valid while its guard is pinned.
type DestEntry<'a, 'g, F> = base::Entry<'a, 'g, <F as Family>::Network, Destination<F>>;

/// How many nodes a writer steps along the bottom level from its cursor
/// before it looks elsewhere: sorted input (a table load, a bulk walk)
/// finds its network, or the gap where it belongs, one or two nodes on;
/// a further step is as likely a cache miss as a step of a search.
const CURSOR_STEPS: usize = 2;

/// A writer's place in the skip list, carried from one network to the next
/// by a walk over many under one pin (a batch of updates, a bulk
/// operation), so that sorted input is not searched for from the top.
pub(crate) struct Cursor<'a, 'g, F: Family> {
    /// The walk's pin.
    guard: &'g epoch::Guard,
    /// A node at or before the networks to come, if the walk ascends.
    at: Option<DestEntry<'a, 'g, F>>,
    /// Whether to try `at` before the destination cache: after it placed
    /// the last network, or a search moved it there; not after it failed
    /// or the cache answered (random input).
    trusted: bool,
}

impl<'g, F: Family> Cursor<'_, 'g, F> {
    pub(crate) fn new(guard: &'g epoch::Guard) -> Self {
        Cursor {
            guard,
            at: None,
            trusted: true,
        }
    }
}

/// Where a network is, as a writer holding its lock found it.
enum Located<'a, 'g, F: Family> {
    /// Its node.
    Node(DestEntry<'a, 'g, F>),
    /// Its destination, from the stripe's cache (the node is linked).
    Cached(&'g Destination<F>),
    /// Not in the skip list.
    Absent,
}

/// A destination a writer found, or created, under its network's lock.
enum Found<'a, 'g, F: Family> {
    Existing(DestEntry<'a, 'g, F>),
    Cached(&'g Destination<F>),
    /// Inserting hands out a counted reference; released on drop.
    Created(
        Option<base::RefEntry<'a, F::Network, Destination<F>>>,
        &'g epoch::Guard,
    ),
}

impl<F: Family> Found<'_, '_, F> {
    fn value(&self) -> &Destination<F> {
        match self {
            Found::Existing(e) => e.value(),
            Found::Cached(d) => d,
            Found::Created(Some(r), _) => r.value(),
            Found::Created(None, _) => unreachable!("released only on drop"),
        }
    }
}

impl<F: Family> Drop for Found<'_, '_, F> {
    fn drop(&mut self) {
        if let Found::Created(r, guard) = self
            && let Some(r) = r.take()
        {
            r.release(guard);
        }
    }
}

/// Publishes the FIB changes a bulk writer held back, when its chunk ends
/// however it ends (an error or a panic included), so every change is in
/// the FIB before the call that made it returns. (Next-hop ids the held
/// changes released wait in the FIB until this publication: see
/// `Writer::held` in the FIB.)
struct PublishFib<'a, F: Family>(&'a F::Fib);

impl<F: Family> Drop for PublishFib<'_, F> {
    fn drop(&mut self) {
        self.0.publish();
    }
}

/// The clock reading and protocol priority an add stamps on its route.
#[derive(Clone, Copy)]
struct Stamp {
    now: Timestamp,
    priority: u32,
}

/// One family's routing table.
pub(crate) struct Table<F: Family> {
    pub(crate) shared: std::sync::Arc<Shared>,
    /// The destinations, in network order. The guard-based API: a reader
    /// or writer already pinned reads nodes without taking a reference
    /// count on each (the map API's per-lookup atomic increment and
    /// decrement on the node's cache line cost a fifth of a deregistration).
    pub(crate) destinations: SkipList<F::Network, Destination<F>>,
    /// The writers' per-network locks (striped).
    writers: WriterLocks<F>,
    /// Networks with at least one route.
    networks: AtomicUsize,
    clients: DashMap<ProtocolId, Arc<ClientState<F>>, foldhash::fast::RandomState>,
    /// The notifying clients; its lock is the sequencer.
    subscribers: Mutex<Vec<Arc<ClientState<F>>>>,
    pub(crate) fib: F::Fib,
    /// The interned route attributes stored routes name by id.
    attrs: InternTable<Attrs<F>>,
    /// Their reference counts; taken by writers after the destination's
    /// lock, and nothing is locked under it.
    attr_ids: Mutex<InternIds<Attrs<F>>>,
    /// Expiry time -> networks with a route expiring then. Entries may be
    /// stale (the route was refreshed or deleted); the sweep re-checks.
    expiries: Mutex<BTreeMap<Timestamp, Vec<F::Network>>>,
}

impl<F: Family> Table<F> {
    pub(crate) fn new(shared: std::sync::Arc<Shared>) -> Self {
        Table {
            writers: WriterLocks::new(shared.writer_stripes),
            shared,
            destinations: SkipList::new(epoch::default_collector().clone()),
            networks: AtomicUsize::new(0),
            clients: DashMap::default(),
            subscribers: Mutex::new(Vec::new()),
            fib: F::Fib::empty(),
            attrs: InternTable::new(Attrs::default()),
            attr_ids: Mutex::new(InternIds::new()),
            expiries: Mutex::new(BTreeMap::new()),
        }
    }

    // ----- clients ---------------------------------------------------------

    pub(crate) fn register(
        &self,
        protocol: ProtocolId,
        options: RegisterOptions,
    ) -> Result<ClientHandle<F>, RtmError> {
        match self.clients.entry(protocol) {
            MapEntry::Occupied(_) => Err(RtmError::ClientAlreadyExists {
                family: F::ID,
                protocol,
            }),
            MapEntry::Vacant(slot) => {
                let state = Arc::new(ClientState {
                    rtm_id: self.shared.id,
                    protocol,
                    single_route: options.single_route,
                    gate: crate::sync::RwLock::new(true),
                    index: Default::default(),
                    queue: options.notify.then(|| {
                        if options.coalesce {
                            ChangeQueue::coalescing()
                        } else {
                            ChangeQueue::new()
                        }
                    }),
                });
                if options.notify {
                    // Under the sequencer: the client sees exactly the
                    // changes sequenced after its registration.
                    lock(&self.subscribers).push(state.clone());
                }
                slot.insert(state.clone());
                Ok(ClientHandle { state })
            }
        }
    }

    /// Checks that `handle` belongs to this table.
    fn own<'h>(&self, handle: &'h ClientHandle<F>) -> Result<&'h Arc<ClientState<F>>, RtmError> {
        if handle.state.rtm_id != self.shared.id {
            return Err(RtmError::InvalidHandle(format!(
                "{} client handle of protocol {} belongs to another routing table",
                F::ID,
                handle.state.protocol
            )));
        }
        Ok(&handle.state)
    }

    fn stale(state: &ClientState<F>) -> RtmError {
        RtmError::InvalidHandle(format!(
            "{} client of protocol {} is deregistered",
            F::ID,
            state.protocol
        ))
    }

    /// Runs `op` with the client's gate held shared, if it is registered.
    fn with_client<R>(
        &self,
        handle: &ClientHandle<F>,
        op: impl FnOnce(&Arc<ClientState<F>>) -> Result<R, RtmError>,
    ) -> Result<R, RtmError> {
        let state = self.own(handle)?;
        let alive = state
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*alive {
            return Err(Self::stale(state));
        }
        op(state)
    }

    pub(crate) fn deregister(&self, handle: &ClientHandle<F>) -> Result<usize, RtmError> {
        let state = self.own(handle)?;
        {
            // Exclusive: waits for the client's in-flight operations; none
            // starts after this.
            let mut alive = state
                .gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !*alive {
                return Err(Self::stale(state));
            }
            *alive = false;
        }
        lock(&self.subscribers).retain(|s| !Arc::ptr_eq(s, state));
        if let Some(q) = &state.queue {
            q.close();
        }
        let protocol = state.protocol;
        let networks = state.index.networks();
        // The index is not maintained from here on (see `WriteCtx::leaving`);
        // its memory goes back now, not when the last handle drops.
        state.index.clear();
        let mut ctx = WriteCtx::leaving(state);
        let removed = self.bulk(&networks, &mut ctx, |w| {
            Ok(w.remove_where(|e| e.route.protocol == protocol))
        })?;
        // Only now is the (family, protocol) pair free again: until every
        // route of the old client is gone, a new client of that protocol
        // would share its route keys.
        self.clients
            .remove_if(&protocol, |_, v| Arc::ptr_eq(v, state));
        Ok(removed)
    }

    pub(crate) fn dequeue(&self, handle: &ClientHandle<F>) -> Result<Dequeued<F>, RtmError> {
        self.with_client(handle, |_| handle.queue()?.pop())
    }

    // ----- the write path --------------------------------------------------

    /// Where `network` is: from the cursor (when trusted), the stripe's
    /// cache, or a search, which also moves the cursor to the network or
    /// the node before it.
    fn locate<'a: 'g, 'g>(
        &'a self,
        locked: &mut Locked<'_, F>,
        network: F::Network,
        cursor: &mut Cursor<'a, 'g, F>,
    ) -> Located<'a, 'g, F> {
        if cursor.trusted {
            if let Some(found) = Self::from_cursor(cursor, network) {
                return found;
            }
            cursor.trusted = false;
        }
        if let Some(d) = locked.cached(cursor.guard) {
            return Located::Cached(d);
        }
        cursor.trusted = true;
        match self
            .destinations
            .upper_bound(Bound::Included(&network), cursor.guard)
        {
            Some(e) if *e.key() == network => {
                // Linked, found under the lock: what the cache may hold.
                locked.remember(e.value());
                cursor.at = Some(e.clone());
                Located::Node(e)
            }
            before => {
                cursor.at = before;
                Located::Absent
            }
        }
    }

    /// `network` placed by stepping from the cursor: its node, or absent
    /// (a node before it is followed by one after it, or by none); `None`
    /// when the cursor is past it or too far before it. Sound because the
    /// caller holds the network's lock, and only its holders link or
    /// unlink the network's node.
    fn from_cursor<'a: 'g, 'g>(
        cursor: &mut Cursor<'a, 'g, F>,
        network: F::Network,
    ) -> Option<Located<'a, 'g, F>> {
        let mut at = cursor.at.clone()?;
        for step in 0..=CURSOR_STEPS {
            match at.key().cmp(&network) {
                std::cmp::Ordering::Equal if !at.is_removed() => {
                    cursor.at = Some(at.clone());
                    return Some(Located::Node(at));
                }
                std::cmp::Ordering::Less if step < CURSOR_STEPS => match at.next() {
                    Some(next) if *next.key() <= network => at = next,
                    _ => {
                        cursor.at = Some(at);
                        return Some(Located::Absent);
                    }
                },
                _ => return None,
            }
        }
        None
    }

    /// Rewrites one destination's route set with `op` and publishes the
    /// result: best-route selection, client indexes, network count,
    /// change messages and the FIB. Finds the destination through (and
    /// moves) `cursor`, under its pin. Returns `None` when the destination
    /// does not exist and `create` is false. On error nothing is changed.
    fn mutate<'a: 'g, 'g, R>(
        &'a self,
        network: F::Network,
        create: bool,
        cursor: &mut Cursor<'a, 'g, F>,
        ctx: &mut WriteCtx<'_, F>,
        op: impl FnOnce(&mut Working<F>) -> Result<R, RtmError>,
    ) -> Result<Option<(R, Change<F>)>, RtmError> {
        let guard = cursor.guard;
        let mut locked = self.writers.lock(&network);
        let node = match self.locate(&mut locked, network, cursor) {
            Located::Node(e) => Found::Existing(e),
            Located::Cached(d) => Found::Cached(d),
            Located::Absent if create => {
                let r = self
                    .destinations
                    .get_or_insert_with(network, Destination::new, guard);
                locked.linked();
                Found::Created(Some(r), guard)
            }
            Located::Absent => return Ok(None),
        };
        let dest = node.value();
        let current = dest.load(guard);
        let before = match current {
            Some(set) => self.decode(network, set),
            None => Routes {
                entries: Entries::new(),
                best: None,
            },
        };
        let before_best = before.best_route().copied();
        // What the rest needs of the old set once its entries move into the
        // working copy: its protocols (for the indexes) and each entry's
        // interned attributes with their id, so an entry that keeps its
        // attributes keeps its reference (see `encode`).
        let before_protocols: SmallVec<[ProtocolId; 2]> =
            before.entries.iter().map(|e| e.route.protocol).collect();
        let mut old_refs: OldRefs<F> = match current {
            Some(set) => set
                .stored()
                .iter()
                .zip(&before.entries)
                .map(|(s, e)| OldRef {
                    attrs: Attrs::of(e),
                    id: s.attrs(),
                    kept: false,
                })
                .collect(),
            None => SmallVec::new(),
        };
        let mut work = Working {
            entries: before.entries,
            incumbent: before_best.map(|r| r.key()),
            modified: false,
        };
        let result = op(&mut work);
        let unchanged = result.is_err() || !work.modified;
        let encoded = if unchanged {
            None
        } else {
            work.entries.sort_unstable_by_key(|e| e.route.key());
            Some(self.encode(&work.entries, &mut old_refs))
        };
        let stored = match encoded {
            Some(Ok(stored)) => stored,
            failed => {
                if before_protocols.is_empty() {
                    // We created it for an operation that added nothing.
                    self.unlink(&node, &mut locked, network, cursor);
                }
                return match failed {
                    Some(Err(e)) => Err(e),
                    _ => result.map(|r| Some((r, Change::NoChange))),
                };
            }
        };
        let r = result?;
        let best = select_best(&work.entries, work.incumbent, self.shared.exclude_invalid);
        let after_best = best.map(|i| work.entries[i].route);
        let change = Change::between(before_best.as_ref(), after_best.as_ref());

        self.update_indexes(network, &before_protocols, &work.entries, ctx);
        match (before_protocols.is_empty(), work.entries.is_empty()) {
            // Relaxed: a statistic read on its own; no data hangs off it.
            (true, false) => {
                self.networks.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.networks.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let now_empty = work.entries.is_empty();
        let new_set = (!now_empty).then_some(NewSet {
            entries: stored,
            best,
        });
        if change.is_no_change() {
            // No message: the change's place in the family's order is
            // unobservable, so publish without the sequencer.
            dest.publish(new_set, guard);
        } else {
            let subscribers = lock(&self.subscribers);
            dest.publish(new_set, guard);
            for s in subscribers.iter() {
                if let Some(q) = &s.queue
                    && ctx.tells(s)
                    && q.push_deferred(change)
                {
                    ctx.wakes.owe(s);
                }
            }
        }
        // After the publication: the old set's ids stay valid for the
        // readers that may still hold it (see `crate::intern`).
        self.release(old_refs.iter().filter(|o| !o.kept).map(|o| o.id), guard);
        // The FIB holds (next hop, interface, protocol) per network: a
        // change of anything else (a metric, the route's data) leaves its
        // entry as it is, so it is not rewritten (a BGP day of updates is
        // mostly such changes).
        let forwarding = |r: &Route<F>| (r.next_hop, r.interface, r.protocol);
        if before_best.as_ref().map(forwarding) != after_best.as_ref().map(forwarding) {
            if ctx.defer_fib {
                self.fib.apply_deferred(network, after_best.as_ref());
            } else {
                self.fib.apply(network, after_best.as_ref());
            }
        }
        if now_empty {
            self.unlink(&node, &mut locked, network, cursor);
        }
        ctx.wakes.step();
        Ok(Some((r, change)))
    }

    /// Unlinks `network`'s node, which its writer (holding `locked`)
    /// emptied or created for nothing: out of the stripe's cache first, so
    /// no slot ever names an unlinked node.
    fn unlink<'a: 'g, 'g>(
        &'a self,
        node: &Found<'a, 'g, F>,
        locked: &mut Locked<'_, F>,
        network: F::Network,
        cursor: &mut Cursor<'a, 'g, F>,
    ) {
        locked.unlinking();
        match node {
            Found::Existing(e) => {
                e.remove();
            }
            Found::Cached(_) => {
                let linked = self.destinations.get(&network, cursor.guard);
                debug_assert!(linked.is_some(), "a cached destination is linked");
                if let Some(e) = linked {
                    e.remove();
                }
            }
            Found::Created(Some(r), guard) => {
                r.remove(guard);
            }
            Found::Created(None, _) => {}
        }
        // Stepping from an unlinked node costs a search: do not try.
        cursor.trusted = false;
    }

    /// Runs `op` on each of `networks` (ascending) that has routes, one
    /// atomic mutation each, and sums what it reports: deregistration,
    /// block operations, aging. Walks the skip list along with the
    /// networks ([`Cursor`]): the next network's node is usually the next
    /// node, one pointer away, where a lookup searches from the top (a
    /// fifth of a deregistration's time). Pinned per few hundred networks,
    /// not for the whole walk, which would hold back every free retired
    /// meanwhile.
    fn bulk(
        &self,
        networks: &[F::Network],
        ctx: &mut WriteCtx<'_, F>,
        mut op: impl FnMut(&mut Working<F>) -> Result<usize, RtmError>,
    ) -> Result<usize, RtmError> {
        let mut total = 0;
        self.in_chunks(networks, ctx, |cursor, ctx, &network| {
            if let Some((n, _)) = self.mutate(network, false, cursor, ctx, &mut op)? {
                total += n;
            }
            Ok(())
        })?;
        Ok(total)
    }

    /// Runs `each` on `items` in order, [`CHUNK`] at a time, as a bulk
    /// writer: one epoch pin and one [`Cursor`] per chunk, FIB changes
    /// deferred and published when the chunk ends however it ends
    /// ([`PublishFib`]), then crossbeam-epoch's collections. The walk of
    /// bulk operations and of batches of updates.
    fn in_chunks<'s, 'c, T, E>(
        &'s self,
        items: &[T],
        ctx: &mut WriteCtx<'c, F>,
        mut each: impl FnMut(&mut Cursor<'s, '_, F>, &mut WriteCtx<'c, F>, &T) -> Result<(), E>,
    ) -> Result<(), E> {
        ctx.defer_fib = true;
        for chunk in items.chunks(CHUNK) {
            {
                let guard = epoch::pin();
                let _publish = PublishFib::<F>(&self.fib);
                let mut cursor = Cursor::new(&guard);
                for item in chunk {
                    each(&mut cursor, ctx, item)?;
                }
            }
            Self::collect_after_chunk();
        }
        Ok(())
    }

    /// Runs crossbeam-epoch's collections after a chunk of a walk pinned
    /// once per chunk: one pin per chunk instead of one per network also
    /// means far fewer of the collections crossbeam-epoch runs every so
    /// many pins; without these the sets and FIB nodes retired by a
    /// million-network walk would wait for some later thread to pin (each
    /// flush hands the retired batch over and frees up to eight batches
    /// whose grace period has passed).
    fn collect_after_chunk() {
        let guard = epoch::pin();
        for _ in 0..COLLECTS_PER_CHUNK {
            guard.flush();
        }
    }

    /// A published set's full entries.
    pub(crate) fn decode(&self, network: F::Network, set: &RouteSet<F>) -> Routes<F> {
        Routes {
            entries: set
                .stored()
                .iter()
                .map(|s| s.entry(network, self.attrs.get(s.attrs())))
                .collect(),
            best: set.best(),
        }
    }

    /// The stored form of `entries`, each holding a reference on its
    /// interned attributes: taken over from an entry of the old set with
    /// the same attributes (marked `kept`), or else acquired. On error
    /// nothing new is held and nothing is marked.
    fn encode(
        &self,
        entries: &[Entry<F>],
        old: &mut OldRefs<F>,
    ) -> Result<SmallVec<[Stored<F>; 2]>, RtmError> {
        let max = self.shared.max_routes_per_network;
        if entries.len() > max {
            return Err(RtmError::NoSystemResources(format!(
                "{} {} would hold {} routes; one network holds at most {max}",
                F::ID,
                entries[0].route.network,
                entries.len()
            )));
        }
        let mut stored: SmallVec<[Stored<F>; 2]> = SmallVec::with_capacity(entries.len());
        // Only taken when some entry has new attributes: a write that keeps
        // every route's attributes (another client's route, a delete, an
        // enable) does not touch the interner.
        let mut ids = None;
        let mut fresh: SmallVec<[u32; 2]> = SmallVec::new();
        for e in entries {
            let attrs = Attrs::of(e);
            if let Some(o) = old.iter_mut().find(|o| !o.kept && o.attrs == attrs) {
                o.kept = true;
                stored.push(Stored::of(e, o.id));
                continue;
            }
            let ids = ids.get_or_insert_with(|| lock(&self.attr_ids));
            match ids.acquire(&self.attrs, attrs) {
                Some(id) => {
                    fresh.push(id);
                    stored.push(Stored::of(e, id));
                }
                None => {
                    let guard = epoch::pin();
                    for id in fresh {
                        ids.release(&self.attrs, id, &guard);
                    }
                    for o in old.iter_mut() {
                        o.kept = false;
                    }
                    return Err(RtmError::NoSystemResources(format!(
                        "{}: all {} route attribute ids are in use",
                        F::ID,
                        crate::intern::MAX_IDS - 1
                    )));
                }
            }
        }
        Ok(stored)
    }

    /// Drops the references of entries no longer published.
    fn release(&self, ids: impl Iterator<Item = u32>, guard: &epoch::Guard) {
        let mut ids = ids.peekable();
        if ids.peek().is_none() {
            return;
        }
        let mut table = lock(&self.attr_ids);
        for id in ids {
            table.release(&self.attrs, id, guard);
        }
    }

    /// Keeps each client's index in step with the protocols present at
    /// `network` before and after a change.
    fn update_indexes(
        &self,
        network: F::Network,
        before: &[ProtocolId],
        after: &[Entry<F>],
        ctx: &WriteCtx<'_, F>,
    ) {
        let after_has = |p: ProtocolId| after.iter().any(|e| e.route.protocol == p);
        // The caller's own index needs no registry lookup; a leaving
        // caller's index is dropped whole.
        let with_index = |p: ProtocolId, f: &dyn Fn(&ClientState<F>)| match ctx.caller {
            Some(c) if c.protocol == p => {
                if !ctx.caller_leaving {
                    f(c)
                }
            }
            _ => {
                if let Some(c) = self.clients.get(&p) {
                    f(&c)
                }
            }
        };
        // A protocol may hold several routes here: each gain or loss is
        // recorded once (the index counts events per network).
        for (i, e) in after.iter().enumerate() {
            let p = e.route.protocol;
            if !before.contains(&p) && !after[..i].iter().any(|x| x.route.protocol == p) {
                with_index(p, &|c| c.index.gained(network));
            }
        }
        for (i, &p) in before.iter().enumerate() {
            if !after_has(p) && !before[..i].contains(&p) {
                with_index(p, &|c| c.index.lost(network));
            }
        }
    }

    /// The timestamp and priority an add stamps on its route, read once
    /// per call (once per batch for `update_routes`).
    fn stamp(&self, state: &ClientState<F>) -> Stamp {
        Stamp {
            now: self.shared.clock.now(),
            priority: self.shared.priorities.load().get(state.protocol),
        }
    }

    pub(crate) fn add_route(
        &self,
        handle: &ClientHandle<F>,
        route: &Route<F>,
        ttl: Ttl,
    ) -> Result<Change<F>, RtmError> {
        ttl.validate()?;
        route.data.validate()?;
        self.with_client(handle, |state| {
            let stamp = self.stamp(state);
            let guard = epoch::pin();
            let (change, expires) = self.add_one(
                state,
                route,
                ttl,
                stamp,
                &mut Cursor::new(&guard),
                &mut WriteCtx::own_route(state),
            )?;
            if let Some(t) = expires {
                lock(&self.expiries)
                    .entry(t)
                    .or_default()
                    .push(route.network);
            }
            Ok(change)
        })
    }

    /// One validated add (RtmAddRoute's body): returns the change and the
    /// route's expiry time, which the caller records. Fails only with
    /// `NoSystemResources` (the network's route limit, or attribute ids
    /// exhausted), having changed nothing.
    fn add_one<'a: 'g, 'g>(
        &'a self,
        state: &Arc<ClientState<F>>,
        route: &Route<F>,
        ttl: Ttl,
        stamp: Stamp,
        cursor: &mut Cursor<'a, 'g, F>,
        ctx: &mut WriteCtx<'_, F>,
    ) -> Result<(Change<F>, Option<Timestamp>), RtmError> {
        let mut stored = *route;
        stored.protocol = state.protocol;
        stored.timestamp = stamp.now;
        stored.data.stamp_priority(stamp.priority);
        let lifetime = Lifetime::of(ttl);
        let entry = Entry {
            route: stored,
            priority: stamp.priority,
            lifetime,
            enabled: true,
        };
        let key = stored.key();
        let single = state.single_route;
        let outcome = self.mutate(route.network, true, cursor, ctx, |w| {
            w.upsert(entry, |e| {
                if single {
                    e.route.protocol == key.protocol
                } else {
                    e.route.key() == key
                }
            });
            Ok(())
        });
        // The upsert itself cannot fail; storing the result can (`encode`:
        // too many routes on the network, attribute ids exhausted), and
        // then `mutate` has changed nothing.
        match outcome? {
            Some(((), change)) => Ok((change, entry.expires())),
            // With `create`, `mutate` always finds the destination.
            None => unreachable!("an upsert into a created destination"),
        }
    }

    pub(crate) fn delete_route(
        &self,
        handle: &ClientHandle<F>,
        route: &Route<F>,
    ) -> Result<Change<F>, RtmError> {
        self.with_client(handle, |state| {
            let guard = epoch::pin();
            self.delete_one(
                state,
                route,
                &mut Cursor::new(&guard),
                &mut WriteCtx::own_route(state),
            )
        })
    }

    /// RtmDeleteRoute's body.
    fn delete_one<'a: 'g, 'g>(
        &'a self,
        state: &Arc<ClientState<F>>,
        route: &Route<F>,
        cursor: &mut Cursor<'a, 'g, F>,
        ctx: &mut WriteCtx<'_, F>,
    ) -> Result<Change<F>, RtmError> {
        let protocol = state.protocol;
        let single = state.single_route;
        let matches = |e: &Entry<F>| {
            e.route.protocol == protocol
                && (single
                    || (e.route.interface == route.interface && e.route.next_hop == route.next_hop))
        };
        let missing = || {
            RtmError::NoSuchRoute(if single {
                format!("protocol {protocol} has no route to {}", route.network)
            } else {
                format!(
                    "protocol {protocol} has no route to {} via {} on interface {}",
                    route.network, route.next_hop, route.interface
                )
            })
        };
        match self.mutate(route.network, false, cursor, ctx, |w| {
            match w.remove_where(matches) {
                0 => Err(missing()),
                _ => Ok(()),
            }
        })? {
            Some(((), change)) => Ok(change),
            None => Err(missing()),
        }
    }

    /// Adds and deletes in order, each exactly as `add_route` /
    /// `delete_route` would, [`CHUNK`] updates at a time: per chunk one
    /// check of the client, one clock read, one priority read and batched
    /// wakes. `each` gets every update's outcome in order, after its chunk
    /// is done, outside the client's gate and any epoch pin, so it may call
    /// back into the table, the same client included (deregistering it
    /// makes the rest of the batch fail with `InvalidHandle`). Every update
    /// is validated first: an invalid one refuses the whole batch before
    /// anything changes.
    pub(crate) fn update_routes(
        &self,
        handle: &ClientHandle<F>,
        updates: &[RouteUpdate<F>],
        mut each: impl FnMut(Result<Change<F>, RtmError>),
    ) -> Result<(), RtmError> {
        for (i, u) in updates.iter().enumerate() {
            if let RouteUpdate::Add { route, ttl } = u {
                ttl.validate()
                    .and_then(|()| route.data.validate())
                    .map_err(|e| {
                        let what = match e {
                            RtmError::InvalidParameter(m) => m,
                            other => other.to_string(),
                        };
                        RtmError::invalid(format!(
                            "update {i} of {} (add {}): {what}",
                            updates.len(),
                            route.network
                        ))
                    })?;
            }
        }
        let mut outcomes = Vec::with_capacity(updates.len().min(CHUNK));
        for chunk in updates.chunks(CHUNK) {
            self.with_client(handle, |state| {
                self.update_chunk(state, chunk, &mut outcomes);
                Ok(())
            })?;
            outcomes.drain(..).for_each(&mut each);
        }
        Ok(())
    }

    /// One chunk of `update_routes`, under the client's gate: outcomes in
    /// order into `outcomes`.
    fn update_chunk(
        &self,
        state: &Arc<ClientState<F>>,
        chunk: &[RouteUpdate<F>],
        outcomes: &mut Vec<Result<Change<F>, RtmError>>,
    ) {
        let stamp = self.stamp(state);
        let mut expiring: Vec<(Timestamp, F::Network)> = Vec::new();
        // With a cursor: a sorted load steps from one network to the next
        // instead of searching for each. Each update's failure is its
        // outcome, not the batch's.
        let Ok(()) = self.in_chunks(chunk, &mut WriteCtx::own_route(state), |cursor, ctx, u| {
            outcomes.push(match u {
                RouteUpdate::Add { route, ttl } => self
                    .add_one(state, route, *ttl, stamp, cursor, ctx)
                    .map(|(change, expires)| {
                        if let Some(t) = expires {
                            expiring.push((t, route.network));
                        }
                        change
                    }),
                RouteUpdate::Delete(route) => self.delete_one(state, route, cursor, ctx),
            });
            Ok::<(), std::convert::Infallible>(())
        });
        if !expiring.is_empty() {
            let mut expiries = lock(&self.expiries);
            for (t, n) in expiring {
                expiries.entry(t).or_default().push(n);
            }
        }
    }

    /// The networks a block operation visits: the criteria's one network,
    /// or the given client indexes merged in network order.
    fn block_networks(criteria: &Criteria<F>, owners: &[Arc<ClientState<F>>]) -> Vec<F::Network> {
        match criteria.network {
            Some(n) => vec![n],
            None => {
                let mut v: Vec<F::Network> =
                    owners.iter().flat_map(|c| c.index.networks()).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }

    /// Runs `op` on each network where the caller has routes selected by
    /// `criteria` (one atomic mutation per network, every notifying client
    /// told); `op` reports the routes it matched and those it changed.
    /// Returns the routes changed; `NoRoutes` if none matched.
    /// RTM_ONLY_THIS_PROTOCOL intersects with the caller's protocol (A12).
    fn block_own(
        &self,
        state: &Arc<ClientState<F>>,
        criteria: &Criteria<F>,
        op: impl Fn(&mut Working<F>) -> (usize, usize),
    ) -> Result<usize, RtmError> {
        let protocol = state.protocol;
        let (mut matched, mut total) = (0, 0);
        if criteria.protocol.is_none_or(|p| p == protocol) {
            let mut ctx = WriteCtx::block(state);
            let networks = Self::block_networks(criteria, std::slice::from_ref(state));
            total = self.bulk(&networks, &mut ctx, |w| {
                let (m, changed) = op(w);
                matched += m;
                Ok(changed)
            })?;
        }
        if matched == 0 {
            return Err(RtmError::NoRoutes(format!(
                "{criteria} of protocol {protocol}"
            )));
        }
        Ok(total)
    }

    pub(crate) fn block_delete(
        &self,
        handle: &ClientHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        self.with_client(handle, |state| {
            let protocol = state.protocol;
            self.block_own(state, criteria, |w| {
                let n = w.remove_where(|e| {
                    e.route.protocol == protocol && criteria.matches_fields(&e.route)
                });
                (n, n)
            })
        })
    }

    pub(crate) fn block_set_enable(
        &self,
        handle: &ClientHandle<F>,
        criteria: &Criteria<F>,
        enable: bool,
    ) -> Result<usize, RtmError> {
        self.with_client(handle, |state| {
            let protocol = state.protocol;
            self.block_own(state, criteria, |w| {
                let incumbent = w.incumbent;
                let (mut matched, mut changed) = (0, 0);
                for e in w.entries.iter_mut() {
                    if e.route.protocol == protocol
                        && criteria.matches_fields(&e.route)
                        && (!criteria.best_only || Some(e.route.key()) == incumbent)
                    {
                        matched += 1;
                        // Only a route whose state flips is counted (and
                        // rewritten): enabling an enabled route is no change.
                        if e.enabled != enable {
                            changed += 1;
                            e.enabled = enable;
                        }
                    }
                }
                w.modified |= changed > 0;
                (matched, changed)
            })
        })
    }

    pub(crate) fn block_convert_to_static(
        &self,
        handle: &ClientHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        self.with_client(handle, |state| {
            let protocol = state.protocol;
            let single = state.single_route;
            let owners: Vec<Arc<ClientState<F>>> = self
                .clients
                .iter()
                .filter(|c| {
                    c.protocol != protocol && criteria.protocol.is_none_or(|p| p == c.protocol)
                })
                .map(|c| c.value().clone())
                .collect();
            let now = self.shared.clock.now();
            let priority = self.shared.priorities.load().get(protocol);
            let mut ctx = WriteCtx::block(state);
            let networks = Self::block_networks(criteria, &owners);
            let converted = self.bulk(&networks, &mut ctx, |w| {
                let (take, keep): (Entries<F>, Entries<F>) =
                    w.entries.iter().copied().partition(|e| {
                        e.route.protocol != protocol
                            && criteria.matches(&e.route, w.was_best(e), e.enabled)
                    });
                if take.is_empty() {
                    return Ok(0);
                }
                w.entries = keep;
                w.modified = true;
                for old in &take {
                    let mut route = old.route;
                    route.protocol = protocol;
                    route.timestamp = now;
                    route.data.stamp_priority(priority);
                    let key = route.key();
                    if Some(old.route.key()) == w.incumbent {
                        w.incumbent = Some(key);
                    }
                    w.upsert(
                        Entry {
                            route,
                            priority,
                            lifetime: Lifetime::NEVER,
                            enabled: old.enabled,
                        },
                        |e| {
                            if single {
                                e.route.protocol == protocol
                            } else {
                                e.route.key() == key
                            }
                        },
                    );
                }
                Ok(take.len())
            })?;
            if converted == 0 {
                return Err(RtmError::NoRoutes(format!(
                    "{criteria} of protocols other than {protocol}"
                )));
            }
            Ok(converted)
        })
    }

    /// Removes every route whose expiry is at or before `now`; returns how many.
    pub(crate) fn sweep(&self, now: Timestamp) -> Result<usize, RtmError> {
        let due: Vec<F::Network> = {
            let mut expiries = lock(&self.expiries);
            let later = expiries.split_off(&Timestamp(now.0.saturating_add(1)));
            let due = std::mem::replace(&mut *expiries, later);
            let mut v: Vec<F::Network> = due.into_values().flatten().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut ctx = WriteCtx::system();
        self.bulk(&due, &mut ctx, |w| Ok(w.remove_where(|e| e.is_due(now))))
    }

    // ----- the read path ---------------------------------------------------

    pub(crate) fn network_count(&self) -> usize {
        // Relaxed: see `mutate`.
        self.networks.load(Ordering::Relaxed)
    }

    pub(crate) fn is_route(&self, network: &F::Network) -> Option<Route<F>> {
        let guard = epoch::pin();
        let node = self.destinations.get(network, &guard)?;
        let set = node.value().load(&guard)?;
        let s = &set.stored()[set.best()?];
        Some(s.entry(*network, self.attrs.get(s.attrs())).route)
    }

    /// Calls `f` with each destination's routes, in network order, from
    /// `start`, until it returns `Some`.
    pub(crate) fn scan<R>(
        &self,
        start: Bound<F::Network>,
        mut f: impl FnMut(F::Network, &Routes<F>) -> Option<R>,
    ) -> Option<R> {
        let guard = epoch::pin();
        for node in self
            .destinations
            .range::<F::Network, _>((start, Bound::Unbounded), &guard)
        {
            if let Some(set) = node.value().load(&guard)
                && let Some(r) = f(*node.key(), &self.decode(*node.key(), set))
            {
                return Some(r);
            }
        }
        None
    }

    /// The matching routes of one destination, in key order, with keys
    /// strictly after `after`.
    pub(crate) fn matching(
        set: &Routes<F>,
        criteria: &Criteria<F>,
        after: Option<&RouteKey<F>>,
    ) -> impl Iterator<Item = Route<F>> {
        set.entries
            .iter()
            .enumerate()
            .filter(move |(i, e)| {
                criteria.matches(&e.route, set.best == Some(*i), e.enabled)
                    && after.is_none_or(|a| e.route.key() > *a)
            })
            .map(|(_, e)| e.route)
    }

    /// The first matching route whose key is after `after` (or the first
    /// of all): GetFirst / GetNext.
    pub(crate) fn first_after(
        &self,
        criteria: &Criteria<F>,
        after: Option<&RouteKey<F>>,
    ) -> Option<Route<F>> {
        let start = match (criteria.network, after) {
            (Some(n), Some(a)) if a.network > n => return None,
            (Some(n), _) => Bound::Included(n),
            (None, Some(a)) => Bound::Included(a.network),
            (None, None) => Bound::Unbounded,
        };
        self.scan(start, |network, set| {
            if criteria.network.is_some_and(|n| n != network) {
                // Past the only network asked for: stop with "no route".
                return Some(None);
            }
            Self::matching(set, criteria, after).next().map(Some)
        })
        .flatten()
    }

    /// Checks the table's invariants; see `Rtm::verify_consistency`.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let guard = epoch::pin();
        let mut networks = 0;
        let mut owned: BTreeMap<ProtocolId, Vec<F::Network>> = BTreeMap::new();
        for node in self.destinations.iter(&guard) {
            let Some(set) = node.value().load(&guard) else {
                continue;
            };
            let n = *node.key();
            let set = self.decode(n, set);
            networks += 1;
            if set
                .entries
                .windows(2)
                .any(|w| w[0].route.key() >= w[1].route.key())
            {
                return Err(format!(
                    "{} {n}: routes not sorted or duplicate keys",
                    F::ID
                ));
            }
            if set.entries.iter().any(|e| e.route.network != n) {
                return Err(format!(
                    "{} {n}: a route of another network is stored here",
                    F::ID
                ));
            }
            let cands: Vec<_> = set
                .entries
                .iter()
                .filter(|e| e.is_candidate(self.shared.exclude_invalid))
                .collect();
            match set.best {
                None if !cands.is_empty() => {
                    return Err(format!("{} {n}: candidates but no best route", F::ID));
                }
                Some(b) => {
                    let e = &set.entries[b];
                    if !e.is_candidate(self.shared.exclude_invalid)
                        || cands.iter().any(|c| c.rank() < e.rank())
                    {
                        return Err(format!("{} {n}: best route is not a best candidate", F::ID));
                    }
                }
                None => {}
            }
            for e in &set.entries {
                let v = owned.entry(e.route.protocol).or_default();
                if v.last() != Some(&n) {
                    v.push(n);
                }
            }
        }
        if networks != self.network_count() {
            return Err(format!(
                "{}: network count {} but {networks} networks hold routes",
                F::ID,
                self.network_count()
            ));
        }
        for (p, nets) in &owned {
            let Some(c) = self.clients.get(p) else {
                return Err(format!(
                    "{}: routes of protocol {p}, which has no client",
                    F::ID
                ));
            };
            let indexed = c.index.networks();
            if &indexed != nets || c.index.len() != nets.len() {
                return Err(format!(
                    "{}: protocol {p} owns routes at {} networks, its index lists {}",
                    F::ID,
                    nets.len(),
                    indexed.len()
                ));
            }
        }
        for c in self.clients.iter() {
            if !owned.contains_key(c.key()) && c.index.len() != 0 {
                return Err(format!(
                    "{}: protocol {} indexes networks it has no route to",
                    F::ID,
                    c.key()
                ));
            }
        }
        Ok(())
    }
}
