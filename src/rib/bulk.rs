//! Bulk walks: many networks under one pin, a chunk at a time, with the
//! FIB's deferred changes published per chunk; and the block operations
//! that run on them.

use super::*;

impl<F: Family> Table<F> {
    /// Runs `op` on each of `networks` (ascending) that has routes, one
    /// atomic mutation each, and sums what it reports: deregistration,
    /// block operations, aging. Walks the index block by block along with
    /// the networks ([`Cursor`]): a block stays locked while its networks
    /// last, and the next network is usually the next slot of the same
    /// leaf. Pinned per few hundred networks, not for the whole walk,
    /// which would hold back every free retired meanwhile.
    pub(super) fn bulk(
        &self,
        networks: &[F::Network],
        ctx: &mut WriteCtx<'_, F>,
        mut op: impl FnMut(&mut Working<F>) -> Result<usize, RtmError>,
    ) -> Result<usize, RtmError> {
        let mut total = 0;
        self.in_chunks(
            networks,
            ctx,
            |&n| n,
            |cursor, ctx, &network| {
                if let Some((n, _)) = self.mutate(network, false, cursor, ctx, &mut op)? {
                    total += n;
                }
                Ok(())
            },
        )?;
        Ok(total)
    }

    /// Runs `each` on `items` in order, [`CHUNK`] at a time, as a bulk
    /// writer: one epoch pin and one [`Cursor`] per chunk, FIB changes
    /// deferred and published when the chunk ends however it ends
    /// ([`PublishFib`]), then crossbeam-epoch's collections. The walk of
    /// bulk operations and of batches of updates.
    pub(super) fn in_chunks<'s, 'c, T, E>(
        &'s self,
        items: &[T],
        ctx: &mut WriteCtx<'c, F>,
        network_of: impl Fn(&T) -> F::Network,
        mut each: impl FnMut(&mut Cursor<'s, '_, F>, &mut WriteCtx<'c, F>, &T) -> Result<(), E>,
    ) -> Result<(), E> {
        ctx.defer_fib = true;
        for (c, chunk) in items.chunks(CHUNK).enumerate() {
            {
                let guard = epoch::pin();
                let _publish = PublishFib::<F>(&self.fib);
                let mut cursor = Cursor::new(&guard);
                for (i, item) in chunk.iter().enumerate() {
                    // Three prefetch stages, each a few items after the
                    // one before, so each item's misses (its block's root
                    // link, its leaf, its route set, the FIB's top line)
                    // are in flight while earlier items are written.
                    let at = c * CHUNK + i;
                    if let Some(x) = items.get(at + 3 * PREFETCH_STEP) {
                        self.index.prefetch_root(&network_of(x));
                    }
                    if let Some(x) = items.get(at + 2 * PREFETCH_STEP) {
                        let n = network_of(x);
                        self.index.prefetch_leaf(&n, &guard);
                        self.fib.prefetch(&n);
                    }
                    if let Some(x) = items.get(at + PREFETCH_STEP) {
                        self.index.prefetch_value(&network_of(x), &guard);
                    }
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
    pub(super) fn collect_after_chunk() {
        let guard = epoch::pin();
        for _ in 0..COLLECTS_PER_CHUNK {
            guard.flush();
        }
    }

    /// The networks a block operation visits: the criteria's one network,
    /// or the given client indexes merged in network order.
    pub(super) fn block_networks(
        criteria: &Criteria<F>,
        owners: &[Arc<ClientState<F>>],
    ) -> Vec<F::Network> {
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
    pub(super) fn block_own(
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
            let table = self.shared.priorities.load();
            let (priority, multipath) = (table.get(protocol), table.multipath(protocol));
            let mut ctx = WriteCtx::block(state);
            let networks = Self::block_networks(criteria, &owners);
            let converted = self.bulk(&networks, &mut ctx, |w| {
                let (take, keep): (Entries<F>, Entries<F>) =
                    w.entries.iter().copied().partition(|e| {
                        e.route.protocol != protocol
                            && criteria.matches(
                                &e.route,
                                w.was_best(e),
                                e.enabled,
                                e.stale.is_stale(),
                            )
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
                            // The caller's own route now, vouched for by it.
                            stale: Freshness::Fresh,
                            multipath,
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
}
