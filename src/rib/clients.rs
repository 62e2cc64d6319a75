//! Clients of a family's table: registration, the gate every operation
//! of a client holds, deregistration (a bulk walk over the client's
//! networks) and its change queue.

use super::*;

impl<F: Family> Table<F> {
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
}
