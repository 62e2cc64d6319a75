//! The RIB of one address family: destinations, clients, the change stream.
//!
//! # Concurrency
//! - **Destinations** live in a prefix-keyed block index (`index`): a
//!   root link per /16 block of addresses, under it sorted copy-on-write
//!   leaves holding each network's published route set. Readers
//!   (`is_route`, ordered walks, enumeration) pin an epoch and load: no
//!   lock, no retry, no waiting.
//! - **Writers** lock their network's block (striped locks over the
//!   root), decode the route set (stored routes are compact, their
//!   attributes interned: `route_set`, `crate::intern`), apply their
//!   change, select the best route and publish the new set in the leaf.
//!   Networks of different blocks are written in parallel. A walk over
//!   many networks (a batch, a bulk operation) keeps its block locked
//!   from one network to the next while they share it ([`Cursor`]), so a
//!   block's removals are compacted out of its leaf once, and wakes
//!   waiting subscribers once per chunk (`bulk`, `Wakes`).
//! - **The sequencer** is a short per-family critical section around the
//!   publication and the enqueueing of the change message, so every client
//!   sees the family's changes in one order, and that order is the order in
//!   which the table changed (spec 3.4, A22).
//! - **The FIB** is told of each best-route change while the block's lock
//!   is still held, before the call returns (spec A23, design.md).
//! - **Clients** are in a sharded map; each has a gate (shared by its
//!   operations, exclusive for deregistration) and an index of its networks,
//!   so deregistration and block operations touch only that client's routes.
//!
//! # Files
//! This file holds the table's state and the types its paths share;
//! `clients` registration, the gate and deregistration; `write` the write
//! path and the calls on it; `bulk` the chunked walks and the block
//! operations; `aging` the expiry sweep; `read` the lock-free reads;
//! `verify` the invariants; `index` the destination index and
//! `route_set` the packed route set it publishes.

mod aging;
mod bulk;
mod clients;
pub(crate) mod index;
mod read;
pub(crate) mod route_set;
mod settings;
mod verify;
mod write;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_epoch::{self as epoch, Owned};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::change::Change;
use crate::client::{ClientHandle, ClientState, RegisterOptions};
use crate::clock::Timestamp;
use crate::criteria::Criteria;
use crate::engine_family::Family;
use crate::error::RtmError;
use crate::fib::ForwardingTable;
use crate::notify::{ChangeQueue, Dequeued};
use crate::route::{ProtocolId, Route, RouteData, RouteKey, RouteUpdate, Ttl};
use crate::sync::{Arc, Mutex, lock};

use index::{BlockIndex, BlockLock, Shape};
pub use read::RouteMarks;
pub(crate) use route_set::MAX_ROUTES_PER_NETWORK;
use route_set::{
    Attrs, Entries, Entry, Freshness, Lifetime, NewSet, RouteSet, Routes, Stored, Working,
    best_paths, select_best,
};
pub(crate) use settings::Settings;
use smallvec::SmallVec;

/// The default writer-lock stripe count ([`crate::RtmBuilder::writer_stripes`]).
#[cfg(not(loom))]
pub(crate) const DEFAULT_WRITER_STRIPES: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(4096).unwrap();
/// Few under loom, which tracks every lock it is given (the index's shape
/// under loom has two blocks anyway).
#[cfg(loom)]
pub(crate) const DEFAULT_WRITER_STRIPES: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(2).unwrap();

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

/// How many items apart a walk's prefetch stages run (see
/// [`Table::in_chunks`]): each stage's lines arrive while this many items
/// are written (a write takes a few hundred nanoseconds, a miss 100-200).
const PREFETCH_STEP: usize = 4;

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

/// A writer's held block, carried from one network to the next by a walk
/// over many under one pin (a batch of updates, a bulk operation): while
/// the networks stay in one block it stays locked, and its leaf is
/// compacted once when the walk leaves it (see `index`).
pub(crate) struct Cursor<'a, 'g, F: Family> {
    /// The walk's pin.
    guard: &'g epoch::Guard,
    held: Option<BlockLock<'a, F, RouteSet<F>>>,
    /// The table outlives the pin (`'a: 'g`, implied where a cursor is
    /// named): what the writers' signatures rely on.
    _outlives: std::marker::PhantomData<&'g &'a ()>,
}

impl<'a, 'g, F: Family> Cursor<'a, 'g, F> {
    pub(crate) fn new(guard: &'g epoch::Guard) -> Self {
        Cursor {
            guard,
            held: None,
            _outlives: std::marker::PhantomData,
        }
    }

    /// `network`'s block, locked: the held one if it is the same, or else
    /// (after releasing the held one: a writer holds one block at a time,
    /// so block locks cannot deadlock) a newly locked one.
    fn block(
        &mut self,
        index: &'a BlockIndex<F, RouteSet<F>>,
        network: &F::Network,
    ) -> &mut BlockLock<'a, F, RouteSet<F>> {
        let b = index.block(network);
        if self.held.as_ref().is_none_or(|h| h.block() != b) {
            self.held = None;
        }
        self.held.get_or_insert_with(|| index.lock(network))
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
    /// The protocol opted in to ECMP.
    multipath: bool,
}

/// One family's routing table.
pub(crate) struct Table<F: Family> {
    pub(crate) shared: std::sync::Arc<Settings>,
    /// The destinations' route sets, in network order, with the writers'
    /// block locks.
    index: BlockIndex<F, RouteSet<F>>,
    /// Networks with at least one route.
    networks: AtomicUsize,
    clients: DashMap<ProtocolId, Arc<ClientState<F>>, foldhash::fast::RandomState>,
    /// The notifying clients; its lock is the sequencer.
    subscribers: Mutex<Vec<Arc<ClientState<F>>>>,
    /// How many leaving clients have finished leaving (their routes removed
    /// or marked, their registry entry freed or left for adoption): a
    /// registration that found one leaving waits for this to move.
    departed: Mutex<u64>,
    departure: crate::sync::Condvar,
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
    pub(crate) fn new(shared: std::sync::Arc<Settings>) -> Self {
        let shape = Shape::for_family::<F>(shared.writer_stripes.get());
        let shape = match shared.small_blocks {
            Some((top_bits, leaf_max)) => shape.small(top_bits, leaf_max),
            None => shape,
        };
        Table {
            index: BlockIndex::new(shape),
            shared,
            networks: AtomicUsize::new(0),
            clients: DashMap::default(),
            subscribers: Mutex::new(Vec::new()),
            departed: Mutex::new(0),
            departure: crate::sync::Condvar::new(),
            fib: F::Fib::empty(),
            attrs: InternTable::new(Attrs::placeholder()),
            attr_ids: Mutex::new(InternIds::new()),
            expiries: Mutex::new(BTreeMap::new()),
        }
    }
}
