//! The write path: locking a network's block, rewriting its route set,
//! publishing it with its change message, and the calls built on it (add,
//! delete, batches).

use super::*;
use crate::family::AddressFamily;

impl<F: Family> Table<F> {
    /// Rewrites one destination's route set with `op` and publishes the
    /// result: best-route selection, client indexes, network count,
    /// change messages and the FIB. Locks the network's block through
    /// `cursor`, under its pin. Returns `None` when the network has no
    /// routes and `create` is false. On error nothing is changed.
    pub(super) fn mutate<'a: 'g, 'g, R>(
        &'a self,
        network: F::Network,
        create: bool,
        cursor: &mut Cursor<'a, 'g, F>,
        ctx: &mut WriteCtx<'_, F>,
        op: impl FnOnce(&mut Working<F>) -> Result<R, RtmError>,
    ) -> Result<Option<(R, Change<F>)>, RtmError> {
        let guard = cursor.guard;
        let block = cursor.block(&self.index, &network);
        let current = block.get(&network, guard);
        if current.is_none() && !create {
            return Ok(None);
        }
        let before = match current {
            Some(set) => self.decode(network, set),
            None => Routes {
                entries: Entries::new(),
                best: None,
            },
        };
        let before_best = before.best_route().copied();
        let exclude_invalid = self.shared.exclude_invalid;
        // ECMP: the best paths' forwarding, only where the best route is a
        // multipath one (RTMv1 tables never compute this).
        let before_paths = before
            .best
            .filter(|&b| before.entries[b].multipath)
            .map(|_| paths_of(&before.entries, before.best, exclude_invalid));
        // What the rest needs of the old set once its entries move into the
        // working copy: its protocols (for the indexes) and each entry's
        // interned attributes with their id, so an entry that keeps its
        // attributes keeps its reference (see `encode`).
        let before_protocols: SmallVec<[ProtocolId; 2]> =
            before.entries.iter().map(|e| e.route.protocol).collect();
        // Whether the caller had a stale route here: its refresh may end
        // that (see `ClientIndex::stale_cleared`).
        let stale_of = |entries: &[Entry<F>], c: &ClientState<F>| {
            entries
                .iter()
                .any(|e| e.route.protocol == c.protocol && e.stale.is_stale())
        };
        let caller_had_stale = ctx
            .caller
            .is_some_and(|c| !ctx.caller_leaving && stale_of(&before.entries, c));
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
                return match failed {
                    Some(Err(e)) => Err(e),
                    _ => result.map(|r| Some((r, Change::NoChange))),
                };
            }
        };
        let r = result?;
        let best = select_best(&work.entries, work.incumbent, exclude_invalid);
        let after_best = best.map(|i| work.entries[i].route);
        let change = Change::between(before_best.as_ref(), after_best.as_ref());
        let after_paths = best
            .filter(|&b| work.entries[b].multipath)
            .map(|_| paths_of(&work.entries, best, exclude_invalid));
        // Whether the best paths forward differently, where either side is
        // multipath (a side that is not has its best route as its one path).
        let paths_changed = (before_paths.is_some() || after_paths.is_some()) && {
            let keys = |paths: &Option<(_, PathKeys<F>)>, best: Option<&Route<F>>| match paths {
                Some((_, keys)) => keys.clone(),
                None => best.iter().map(|r| path_key(r)).collect(),
            };
            keys(&before_paths, before_best.as_ref()) != keys(&after_paths, after_best.as_ref())
        };
        // The set of best paths changed while the best route stayed: only
        // clients of multipath protocols hear of it (below).
        let paths_change = after_best
            .filter(|_| change.is_no_change() && paths_changed)
            .map(|r| Change::Changed {
                previous: r,
                current: r,
            });

        self.update_indexes(network, &before_protocols, &work.entries, ctx);
        if caller_had_stale
            && let Some(c) = ctx.caller
            && !stale_of(&work.entries, c)
        {
            c.index.stale_cleared(network);
        }
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
        // The message, if any: the best-route change, told to every
        // subscriber, or else a paths change, told only to the clients of
        // multipath protocols.
        let message = if change.is_no_change() {
            paths_change
        } else {
            Some(change)
        };
        match message {
            // No message: the change's place in the family's order is
            // unobservable, so publish without the sequencer.
            None => {
                block.set(&network, new_set.map(Owned::init), guard);
            }
            Some(message) => {
                let subscribers = lock(&self.subscribers);
                block.set(&network, new_set.map(Owned::init), guard);
                let multipath_only = paths_change
                    .is_some()
                    .then(|| self.shared.priorities.load());
                for s in subscribers.iter() {
                    if let Some(q) = &s.queue
                        && ctx.tells(s)
                        && multipath_only
                            .as_ref()
                            .is_none_or(|t| t.multipath(s.protocol))
                        && q.push_deferred(message)
                    {
                        ctx.wakes.owe(s);
                    }
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
        if let Some((routes, _)) = after_paths.as_ref().filter(|p| p.0.len() > 1) {
            if paths_changed {
                self.fib.apply_paths(network, routes, ctx.defer_fib);
            }
        } else if paths_changed
            || before_best.as_ref().map(forwarding) != after_best.as_ref().map(forwarding)
        {
            if ctx.defer_fib {
                self.fib.apply_deferred(network, after_best.as_ref());
            } else {
                self.fib.apply(network, after_best.as_ref());
            }
        }
        ctx.wakes.step();
        Ok(Some((r, change)))
    }

    /// The mark's fast path (`mark_walk` with yielding off): marks
    /// `protocol`'s routes at `network` stale by rewriting their mark bits
    /// in a copy of the stored set, with no decode, no attribute lookup
    /// but the protocol's, and no reference taken or dropped. A mark that
    /// does not yield changes no rank, so no best route, path, FIB entry,
    /// index entry or message changes: only the set is published. Returns
    /// how many routes of the protocol are here, or `None` when one of them
    /// yields now (re-marking it changes its rank): the caller takes the
    /// general path (`mutate`).
    pub(super) fn mark_in_place<'a: 'g, 'g>(
        &'a self,
        network: F::Network,
        protocol: ProtocolId,
        cursor: &mut Cursor<'a, 'g, F>,
    ) -> Option<usize> {
        let guard = cursor.guard;
        let block = cursor.block(&self.index, &network);
        let Some(set) = block.get(&network, guard) else {
            return Some(0);
        };
        let mut entries: SmallVec<[Stored<F>; 2]> = SmallVec::from_slice(set.stored());
        let (mut marked, mut changed) = (0, false);
        for s in entries.iter_mut() {
            if self.attrs.get(s.attrs()).protocol != protocol {
                continue;
            }
            if s.yields() {
                return None;
            }
            marked += 1;
            // Not yielding (checked above): only an unmarked route changes.
            if !s.is_stale() {
                *s = s.marked_stale();
                changed = true;
            }
        }
        if changed {
            // No message: nothing any client is told about changed.
            block.set(
                &network,
                Some(Owned::init(NewSet {
                    entries,
                    best: set.best(),
                })),
                guard,
            );
        }
        Some(marked)
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
    pub(super) fn encode(
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
    pub(super) fn release(&self, ids: impl Iterator<Item = u32>, guard: &epoch::Guard) {
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
    pub(super) fn update_indexes(
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
    pub(super) fn stamp(&self, state: &ClientState<F>) -> Stamp {
        let table = self.shared.priorities.load();
        Stamp {
            now: self.shared.clock.now(),
            priority: table.get(state.protocol),
            multipath: table.multipath(state.protocol),
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
    pub(super) fn add_one<'a: 'g, 'g>(
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
            stale: Freshness::Fresh,
            multipath: stamp.multipath,
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
    pub(super) fn delete_one<'a: 'g, 'g>(
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
    pub(super) fn update_chunk(
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
        let network_of = |u: &RouteUpdate<F>| match u {
            RouteUpdate::Add { route, .. } | RouteUpdate::Delete(route) => route.network,
        };
        let Ok(()) = self.in_chunks(
            chunk,
            &mut WriteCtx::own_route(state),
            network_of,
            |cursor, ctx, u| {
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
            },
        );
        if !expiring.is_empty() {
            let mut expiries = lock(&self.expiries);
            for (t, n) in expiring {
                expiries.entry(t).or_default().push(n);
            }
        }
    }
}

/// What forwarding sees of one best path: next hop, interface, protocol
/// and ECMP weight.
type PathKey<F> = (<F as AddressFamily>::NextHop, u32, ProtocolId, u16);

/// Sorted path keys: a set of best paths' identity (two sets forward
/// alike exactly when these are equal).
type PathKeys<F> = SmallVec<[PathKey<F>; 4]>;

fn path_key<F: Family>(r: &Route<F>) -> PathKey<F> {
    (r.next_hop, r.interface, r.protocol, r.data.weight())
}

/// The best paths of `entries` (see [`best_paths`]): the routes, in key
/// order, and their keys, sorted.
fn paths_of<F: Family>(
    entries: &[Entry<F>],
    best: Option<usize>,
    exclude_invalid: bool,
) -> (SmallVec<[Route<F>; 4]>, PathKeys<F>) {
    let routes: SmallVec<[Route<F>; 4]> = best_paths(entries, best, exclude_invalid)
        .into_iter()
        .map(|i| entries[i].route)
        .collect();
    let mut keys: PathKeys<F> = routes.iter().map(path_key).collect();
    keys.sort_unstable();
    (routes, keys)
}
