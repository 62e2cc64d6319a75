//! Clients of a family's table: registration, the gate every operation
//! of a client holds, deregistration (a bulk walk over the client's
//! networks) and its change queue.

use super::*;

impl<F: Family> Table<F> {
    /// Registers `protocol`, or adopts a gracefully deregistered
    /// predecessor's routes. A predecessor still leaving (its routes being
    /// removed by a deregistration or an expired hold, or marked by a
    /// graceful deregistration) is waited for: no live client holds the
    /// pair, so `ClientAlreadyExists` would be wrong, and a caller that
    /// treats it as fatal (as RTMv1 code does) would fail on a race.
    pub(crate) fn register(
        &self,
        protocol: ProtocolId,
        options: RegisterOptions,
    ) -> Result<ClientHandle<F>, RtmError> {
        loop {
            let seen = match self.clients.entry(protocol) {
                MapEntry::Occupied(mut slot) => {
                    // A gracefully deregistered client's routes wait for the
                    // protocol's next registration: it adopts them (and their
                    // index), stale until refreshed or swept.
                    let gone = slot.get();
                    if gone.restarting.swap(false, Ordering::Relaxed) {
                        let state = self.new_client(protocol, options, gone.index.clone());
                        slot.insert(state.clone());
                        return Ok(ClientHandle { state });
                    }
                    if !gone.leaving.load(Ordering::Relaxed) {
                        return Err(RtmError::ClientAlreadyExists {
                            family: F::ID,
                            protocol,
                        });
                    }
                    // Read under the entry's lock: the leaver counts its
                    // departure only after changing this entry, which waits
                    // for the lock, so the count moves after this read.
                    *lock(&self.departed)
                }
                MapEntry::Vacant(slot) => {
                    let state = self.new_client(protocol, options, Default::default());
                    slot.insert(state.clone());
                    return Ok(ClientHandle { state });
                }
            };
            let mut departed = lock(&self.departed);
            while *departed == seen {
                departed = self
                    .departure
                    .wait(departed)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// A leaving client has left: registrations waiting for it look again.
    fn departed(&self) {
        *lock(&self.departed) += 1;
        self.departure.notify_all();
    }

    /// Starts watching a closed client's leaving (see [`Departure`]).
    fn departure<'t>(&'t self, state: &'t ClientState<F>) -> Departure<'t, F> {
        Departure {
            table: self,
            state,
            finished: false,
        }
    }

    /// A registered client's state, subscribed if it notifies; under the
    /// clients map's lock on its protocol.
    fn new_client(
        &self,
        protocol: ProtocolId,
        options: RegisterOptions,
        index: Arc<crate::client_index::ClientIndex<F::Network>>,
    ) -> Arc<ClientState<F>> {
        let state = Arc::new(ClientState {
            rtm_id: self.shared.id,
            protocol,
            single_route: options.single_route,
            gate: crate::sync::RwLock::new(true),
            index,
            restarting: std::sync::atomic::AtomicBool::new(false),
            leaving: std::sync::atomic::AtomicBool::new(false),
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
        state
    }

    /// Checks that `handle` belongs to this table.
    pub(super) fn own<'h>(
        &self,
        handle: &'h ClientHandle<F>,
    ) -> Result<&'h Arc<ClientState<F>>, RtmError> {
        if handle.state.rtm_id != self.shared.id {
            return Err(RtmError::InvalidHandle(format!(
                "{} client handle of protocol {} belongs to another routing table",
                F::ID,
                handle.state.protocol
            )));
        }
        Ok(&handle.state)
    }

    pub(super) fn stale(state: &ClientState<F>) -> RtmError {
        RtmError::InvalidHandle(format!(
            "{} client of protocol {} is deregistered",
            F::ID,
            state.protocol
        ))
    }

    /// Runs `op` with the client's gate held shared, if it is registered.
    pub(super) fn with_client<R>(
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
        self.close(state)?;
        self.remove_client_routes(state)
    }

    /// Closes the client's gate (waiting for its in-flight operations; none
    /// starts after this), unsubscribes it and closes its queue.
    /// `InvalidHandle` if it is already deregistered.
    fn close(&self, state: &Arc<ClientState<F>>) -> Result<(), RtmError> {
        {
            let mut alive = state
                .gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !*alive {
                return Err(Self::stale(state));
            }
            *alive = false;
            state.leaving.store(true, Ordering::Relaxed);
        }
        lock(&self.subscribers).retain(|s| !Arc::ptr_eq(s, state));
        if let Some(q) = &state.queue {
            q.close();
        }
        Ok(())
    }

    /// Removes every route of a closed client's protocol and frees the
    /// (family, protocol) pair: the body of deregistration, and of a
    /// graceful one whose hold ended with nobody adopting the routes.
    fn remove_client_routes(&self, state: &Arc<ClientState<F>>) -> Result<usize, RtmError> {
        let mut departure = self.departure(state);
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
        departure.finished = true;
        Ok(removed)
    }

    /// Graceful deregistration: closes the client as `deregister` does,
    /// marks its routes stale (they stay in the table and the FIB) with
    /// `deadline`, and only then lets the protocol's next registration
    /// adopt them. Returns how many routes it kept.
    pub(crate) fn deregister_graceful(
        &self,
        handle: &ClientHandle<F>,
        deadline: Timestamp,
    ) -> Result<usize, RtmError> {
        let state = self.own(handle)?;
        self.close(state)?;
        let mut departure = self.departure(state);
        let kept = self.mark_walk(state, Some(deadline))?;
        // The map entry is still this client's: nothing removes it before
        // `restarting` is set (registration refuses the pair, expiry looks
        // only at restarting clients).
        if let Some(c) = self.clients.get(&state.protocol)
            && Arc::ptr_eq(&c, state)
        {
            c.restarting.store(true, Ordering::Relaxed);
        }
        departure.finished = true;
        Ok(kept)
    }

    /// Marks every route of the client stale with `deadline` (the mark's
    /// walk over its index): see `Rtm::mark_stale`.
    pub(crate) fn mark_stale(
        &self,
        handle: &ClientHandle<F>,
        deadline: Option<Timestamp>,
    ) -> Result<usize, RtmError> {
        self.with_client(handle, |state| self.mark_walk(state, deadline))
    }

    fn mark_walk(
        &self,
        state: &Arc<ClientState<F>>,
        deadline: Option<Timestamp>,
    ) -> Result<usize, RtmError> {
        let protocol = state.protocol;
        let yields = self.shared.priorities.load().stale_yields(protocol);
        let networks = state.index.networks();
        state.index.begin_stale(networks.clone(), deadline);
        let mut ctx = WriteCtx::block(state);
        // The general path: any rank may change (a yielding mark, or a
        // route that yields now and is marked without).
        let general = |w: &mut Working<F>| {
            let mut marked = 0;
            for e in w.entries.iter_mut() {
                if e.route.protocol == protocol {
                    marked += 1;
                    let stale = Freshness::Stale { yields };
                    if e.stale != stale {
                        e.stale = stale;
                        w.modified = true;
                    }
                }
            }
            Ok(marked)
        };
        let mut total = 0;
        self.in_chunks(
            &networks,
            &mut ctx,
            |&n| n,
            |cursor, ctx, &network| {
                let fast = (!yields)
                    .then(|| self.mark_in_place(network, protocol, cursor))
                    .flatten();
                let marked = match fast {
                    Some(n) => n,
                    None => self
                        .mutate(network, false, cursor, ctx, general)?
                        .map_or(0, |(n, _)| n),
                };
                if marked > 0 {
                    state.index.stale_marked(network);
                }
                total += marked;
                Ok::<(), RtmError>(())
            },
        )?;
        Ok(total)
    }

    /// Removes the client's routes still stale from its last mark, and
    /// ends the mark (and its hold): see `Rtm::sweep_stale`.
    pub(crate) fn sweep_stale(&self, handle: &ClientHandle<F>) -> Result<usize, RtmError> {
        self.with_client(handle, |state| self.sweep_walk(state))
    }

    fn sweep_walk(&self, state: &Arc<ClientState<F>>) -> Result<usize, RtmError> {
        let protocol = state.protocol;
        let networks = state.index.take_stale();
        let mut ctx = WriteCtx::block(state);
        self.bulk(&networks, &mut ctx, |w| {
            Ok(w.remove_where(|e| e.route.protocol == protocol && e.stale.is_stale()))
        })
    }

    /// The holds that end by `now`, in protocol order: a registered
    /// client's remaining stale routes are swept; a gracefully deregistered
    /// client nobody adopted is removed as `deregister` would have. Returns
    /// how many routes went.
    pub(crate) fn expire_holds(&self, now: Timestamp) -> Result<usize, RtmError> {
        let mut due: Vec<Arc<ClientState<F>>> = self
            .clients
            .iter()
            .filter(|c| c.index.stale_deadline().is_some_and(|t| t <= now))
            .map(|c| c.value().clone())
            .collect();
        due.sort_by_key(|c| c.protocol);
        let mut removed = 0;
        for state in &due {
            // A registered client: its gate, held shared, keeps it so for
            // the sweep.
            let alive = state
                .gate
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *alive {
                // Re-checked: the client may have swept or marked anew.
                if state.index.stale_deadline().is_some_and(|t| t <= now) {
                    removed += self.sweep_walk(state)?;
                }
                continue;
            }
            drop(alive);
            // Deregistered: claimed under the map's lock on the protocol,
            // against a registration adopting it at the same moment.
            let claimed = self.clients.get(&state.protocol).is_some_and(|c| {
                Arc::ptr_eq(&c, state) && c.restarting.swap(false, Ordering::Relaxed)
            });
            if claimed {
                removed += self.remove_client_routes(state)?;
            }
        }
        Ok(removed)
    }

    pub(crate) fn dequeue(&self, handle: &ClientHandle<F>) -> Result<Dequeued<F>, RtmError> {
        self.with_client(handle, |_| handle.queue()?.pop())
    }
}

/// A closed client's leaving (its routes' removal, or a graceful
/// deregistration's mark), watched for its end however it comes: when
/// dropped, registrations waiting for the client look again. A leaving
/// that did not finish (an error, a panic) leaves the client's routes and
/// registry entry behind: it then stops counting as leaving, so those
/// registrations answer `ClientAlreadyExists` instead of waiting for ever.
struct Departure<'t, F: Family> {
    table: &'t Table<F>,
    state: &'t ClientState<F>,
    finished: bool,
}

impl<F: Family> Drop for Departure<'_, F> {
    fn drop(&mut self) {
        if !self.finished {
            // Relaxed: `departed` below takes and releases its mutex after
            // this store, and a waiting registration takes that mutex
            // before it reads `leaving` again.
            self.state.leaving.store(false, Ordering::Relaxed);
        }
        self.table.departed();
    }
}
