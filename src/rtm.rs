//! [`Rtm`]: the routing table manager, one table per family.

use std::any::Any;
use std::fmt;
use std::num::NonZeroUsize;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::change::Change;
use crate::client::{ClientHandle, RegisterOptions};
use crate::clock::{Clock, SystemClock, TICKS_PER_SECOND};
use crate::criteria::Criteria;
use crate::engine_family::{Family, IpFamily};
use crate::enumerate::Enumeration;
use crate::error::RtmError;
use crate::family::{FamilyId, Ipv4, Ipv6, Ipx};
use crate::fib::{FibEntry, LpmFib};
use crate::notify::Dequeued;
use crate::prefix::{IpAddress, Prefix};
use crate::priority::PriorityTable;
use crate::rib::RouteMarks;
use crate::rib::{Settings, Table};
use crate::route::{ProtocolId, Route, RouteUpdate, Ttl};

/// Locks a std mutex, ignoring poisoning (the flag it guards stays valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Inner {
    shared: Arc<Settings>,
    ipv4: Arc<Table<Ipv4>>,
    ipv6: Arc<Table<Ipv6>>,
    ipx: Arc<Table<Ipx>>,
}

/// Configures an [`Rtm`].
#[derive(Debug)]
pub struct RtmBuilder {
    clock: Arc<dyn Clock>,
    priorities: PriorityTable,
    exclude_invalid: bool,
    writer_stripes: NonZeroUsize,
    small_blocks: Option<(u32, usize)>,
    max_routes_per_network: usize,
}

impl Default for RtmBuilder {
    fn default() -> Self {
        RtmBuilder {
            clock: Arc::new(SystemClock),
            priorities: PriorityTable::default(),
            exclude_invalid: true,
            writer_stripes: crate::rib::DEFAULT_WRITER_STRIPES,
            small_blocks: None,
            max_routes_per_network: crate::rib::MAX_ROUTES_PER_NETWORK,
        }
    }
}

impl RtmBuilder {
    /// The clock for timestamps, ages and expiry (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The initial protocol priority table.
    pub fn priorities(mut self, priorities: PriorityTable) -> Self {
        self.priorities = priorities;
        self
    }

    /// Whether routes without `IP_VALID_ROUTE` are excluded from best-route
    /// selection (spec A6; default `true`). With `false` they compete like
    /// any other route.
    pub fn exclude_invalid_routes(mut self, exclude: bool) -> Self {
        self.exclude_invalid = exclude;
        self
    }

    /// How many writer locks each family's table stripes its address
    /// blocks over (default 4096; 2 when model-checked under loom). A
    /// writer locks its network's block (a /16 of IPv4, IPv6 or IPX
    /// addresses: see the RIB's index); writers of blocks in different
    /// stripes never wait for each other, so more stripes mean less
    /// contention, at 8 bytes each. One stripe serialises a family's
    /// writers.
    pub fn writer_stripes(mut self, stripes: NonZeroUsize) -> Self {
        self.writer_stripes = stripes;
        self
    }

    /// Shrinks the RIB's destination index to a `top_bits`-bit root
    /// (1 to 16; default 16) and leaves of `leaf_max` networks (at least
    /// 2; default about 8 KiB's worth), so that tests reach its leaf
    /// copies, splits and merges on a handful of networks. Not for
    /// production: behaviour is the same, only slower and smaller.
    #[doc(hidden)]
    pub fn small_blocks(mut self, top_bits: u8, leaf_max: u16) -> Self {
        self.small_blocks = Some((top_bits as u32, leaf_max as usize));
        self
    }

    /// Lowers the most routes one network may hold (default and maximum
    /// 65,534, the route set's 16-bit index with one value reserved; values
    /// above are taken as the maximum). An add past the limit fails with
    /// `NoSystemResources` and changes nothing. Tests and `rtm batch
    /// --max-routes-per-network` use a small one to reach that error without
    /// writing 65,535 routes one copy of a growing set at a time.
    pub fn max_routes_per_network(mut self, max: u16) -> Self {
        self.max_routes_per_network = (max as usize).min(crate::rib::MAX_ROUTES_PER_NETWORK);
        self
    }

    /// Builds the table manager.
    pub fn build(self) -> Rtm {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Settings {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            clock: self.clock,
            priorities: ArcSwap::from_pointee(self.priorities),
            exclude_invalid: self.exclude_invalid,
            writer_stripes: self.writer_stripes,
            small_blocks: self.small_blocks,
            max_routes_per_network: self.max_routes_per_network,
        });
        Rtm {
            inner: Arc::new(Inner {
                ipv4: Arc::new(Table::new(shared.clone())),
                ipv6: Arc::new(Table::new(shared.clone())),
                ipx: Arc::new(Table::new(shared.clone())),
                shared,
            }),
        }
    }
}

/// The routing table manager: one route table per family (IPv4, IPv6, IPX),
/// the RTMv1 operations on them, and the forwarding lookup.
///
/// Cloning is cheap and shares the tables. All methods take `&self` and may
/// be called from any number of threads; every operation is linearizable,
/// and readers (lookups, `is_route`, enumeration, ordered walks) never take a
/// lock or wait for a writer.
#[derive(Clone)]
pub struct Rtm {
    inner: Arc<Inner>,
}

impl fmt::Debug for Rtm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rtm")
            .field("ipv4_networks", &self.inner.ipv4.network_count())
            .field("ipv6_networks", &self.inner.ipv6.network_count())
            .field("ipx_networks", &self.inner.ipx.network_count())
            .finish()
    }
}

impl Default for Rtm {
    fn default() -> Self {
        Rtm::new()
    }
}

impl Rtm {
    /// A table manager with the system clock and default settings.
    pub fn new() -> Rtm {
        RtmBuilder::default().build()
    }

    /// A builder for a configured table manager.
    pub fn builder() -> RtmBuilder {
        RtmBuilder::default()
    }

    pub(crate) fn table<F: Family>(&self) -> &Arc<Table<F>> {
        let t: &dyn Any = match F::ID {
            FamilyId::Ipv4 => &self.inner.ipv4,
            FamilyId::Ipv6 => &self.inner.ipv6,
            FamilyId::Ipx => &self.inner.ipx,
        };
        t.downcast_ref()
            .expect("Family is sealed: each FamilyId has exactly one Family type")
    }

    /// Sets a protocol's priority (lower wins) for all families. Routes
    /// already stored keep the priority they were written with until they
    /// are next added or updated.
    pub fn set_priority(&self, protocol: ProtocolId, priority: u32) {
        self.inner
            .shared
            .priorities
            .rcu(|t| PriorityTable::clone(t).with(protocol, priority));
    }

    /// Sets the priority of protocols without one of their own.
    pub fn set_default_priority(&self, priority: u32) {
        self.inner
            .shared
            .priorities
            .rcu(|t| PriorityTable::clone(t).with_default(priority));
    }

    /// The priority a protocol's routes get.
    pub fn priority(&self, protocol: ProtocolId) -> u32 {
        self.inner.shared.priorities.load().get(protocol)
    }

    /// Sets whether `protocol`'s stale routes lose to every fresh route of
    /// equal priority (see [`PriorityTable::with_stale_yielding`]); routes
    /// take it when they are next marked.
    pub fn set_stale_yielding(&self, protocol: ProtocolId, yields: bool) {
        self.inner
            .shared
            .priorities
            .rcu(|t| PriorityTable::clone(t).with_stale_yielding(protocol, yields));
    }

    /// Opts `protocol` in to or out of ECMP (see
    /// [`PriorityTable::with_multipath`]); routes take it when they are
    /// next written.
    ///
    /// ```
    /// use rtm::{IpRouteData, Ipv4, ProtocolId, RegisterOptions, Route, Rtm, Ttl};
    /// let rtm = Rtm::new();
    /// let bgp = ProtocolId(14);
    /// rtm.set_multipath(bgp, true);
    /// let c = rtm.register::<Ipv4>(bgp, RegisterOptions::default())?;
    /// let net = "203.0.113.0/24".parse()?;
    /// for (hop, weight) in [("192.0.2.1", 1), ("192.0.2.2", 3)] {
    ///     let data = IpRouteData { weight, ..IpRouteData::with_metric(10) };
    ///     rtm.add_route(&c, &Route::new(net, hop.parse()?, 1, data), Ttl::Infinite)?;
    /// }
    /// assert_eq!(rtm.best_paths::<Ipv4>(&net).len(), 2);
    /// // One lookup per packet, the path picked by the flow's hash: a
    /// // quarter of the hash space to the first, three quarters to the second.
    /// let addr = "203.0.113.9".parse()?;
    /// let via = |hash| rtm.lookup_flow::<Ipv4>(addr, hash).unwrap().next_hop.to_string();
    /// assert_eq!((via(0), via(u32::MAX)), ("192.0.2.1".into(), "192.0.2.2".into()));
    /// // A next hop goes down: one call, every prefix through the group moves.
    /// assert_eq!(rtm.fib::<Ipv4>().next_hop_down("192.0.2.2".parse()?, 1), 1);
    /// assert_eq!(via(u32::MAX), "192.0.2.1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_multipath(&self, protocol: ProtocolId, on: bool) {
        self.inner
            .shared
            .priorities
            .rcu(|t| PriorityTable::clone(t).with_multipath(protocol, on));
    }

    /// The best paths of `network`, in key order: its best route alone,
    /// or with every equal-cost route of a multipath protocol (see
    /// [`PriorityTable::with_multipath`]); empty without a best route.
    pub fn best_paths<F: Family>(&self, network: &F::Network) -> Vec<Route<F>> {
        self.table::<F>().best_paths(network)
    }

    /// The clock's current time.
    pub fn now(&self) -> crate::clock::Timestamp {
        self.inner.shared.clock.now()
    }

    // ----- clients (2.1, 2.2) ------------------------------------------------

    /// Registers a client (RtmRegisterClient): protocol `protocol` in family
    /// `F`. `ClientAlreadyExists` if a live client holds the pair. A
    /// client of the protocol that is still leaving (a deregistration or an
    /// expired hold removing its routes, a graceful deregistration marking
    /// them) holds it no longer: the call waits until that ends, then
    /// registers (or adopts the gracefully deregistered client's routes).
    ///
    /// ```
    /// use rtm::{Ipv4, ProtocolId, RegisterOptions, Rtm};
    /// let rtm = Rtm::new();
    /// let rip = rtm.register::<Ipv4>(ProtocolId(8), RegisterOptions::notifying()).unwrap();
    /// let again = rtm.register::<Ipv4>(ProtocolId(8), RegisterOptions::default());
    /// assert_eq!(again.unwrap_err().code(), 183);
    /// rtm.deregister(&rip).unwrap();
    /// ```
    pub fn register<F: Family>(
        &self,
        protocol: ProtocolId,
        options: RegisterOptions,
    ) -> Result<ClientHandle<F>, RtmError> {
        self.table::<F>().register(protocol, options)
    }

    /// Deregisters a client (RtmDeregisterClient): removes every route it
    /// added, notifying the other clients of each best-route change, and
    /// discards its queue. Returns the number of routes removed. Every later
    /// call with the handle is `InvalidHandle`.
    pub fn deregister<F: Family>(&self, client: &ClientHandle<F>) -> Result<usize, RtmError> {
        self.table::<F>().deregister(client)
    }

    // ----- graceful restart (beyond RTMv1) -------------------------------------

    /// Deregisters a client gracefully, for a protocol process that is
    /// restarting (BGP graceful restart, RFC 4724; FRR zebra's client
    /// graceful restart): the client's handle and queue go as with
    /// [`deregister`](Rtm::deregister), but its routes stay in the table
    /// and in the FIB, forwarding, marked stale, for at most `hold`.
    ///
    /// As soon as this returns, the (family, protocol) pair can be
    /// registered again; that registration **adopts** the routes: each
    /// one it adds again becomes fresh (with a change message only where
    /// the route actually changed), and its
    /// [`end_of_rib`](Rtm::end_of_rib) or the end of `hold` removes every
    /// one still stale, visiting only those. If nobody registers before
    /// `hold` ends, [`sweep_expired`](Rtm::sweep_expired) removes them
    /// exactly as `deregister` would have (same messages, same table).
    /// Returns how many routes were kept.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtm::{Criteria, Ipv4, IpRouteData, ProtocolId, RegisterOptions, Route, Rtm, Ttl};
    /// let rtm = Rtm::new();
    /// let bgp = rtm.register::<Ipv4>(ProtocolId(14), RegisterOptions::default())?;
    /// let route = |net: &str| Route::<Ipv4>::new(net.parse().unwrap(),
    ///     "192.0.2.1".parse().unwrap(), 1, IpRouteData::with_metric(1));
    /// rtm.add_route(&bgp, &route("10.0.0.0/8"), Ttl::Infinite)?;
    /// rtm.add_route(&bgp, &route("10.1.0.0/16"), Ttl::Infinite)?;
    ///
    /// // The process restarts: its routes keep forwarding, stale.
    /// assert_eq!(rtm.deregister_graceful(&bgp, Duration::from_secs(120))?, 2);
    /// assert!(rtm.lookup::<Ipv4>("10.1.2.3".parse().unwrap()).is_some());
    ///
    /// // The new process adopts them, refreshes one, and ends its RIB.
    /// let bgp = rtm.register::<Ipv4>(ProtocolId(14), RegisterOptions::default())?;
    /// rtm.add_route(&bgp, &route("10.0.0.0/8"), Ttl::Infinite)?;
    /// assert_eq!(rtm.enumerate(&Criteria::<Ipv4>::all().stale_only())?.count(), 1);
    /// assert_eq!(rtm.end_of_rib(&bgp)?, 1); // 10.1.0.0/16 was not re-announced
    /// assert_eq!(rtm.network_count::<Ipv4>(), 1);
    /// # Ok::<(), rtm::RtmError>(())
    /// ```
    pub fn deregister_graceful<F: Family>(
        &self,
        client: &ClientHandle<F>,
        hold: Duration,
    ) -> Result<usize, RtmError> {
        let deadline = self.deadline_after(hold);
        self.table::<F>().deregister_graceful(client, deadline)
    }

    /// Marks every route of a registered client stale (a router does this
    /// when a peering session drops and its routes are kept through the
    /// peer's restart). Stale routes forward and compete as before (unless
    /// the protocol's stale routes yield to fresh ones:
    /// [`set_stale_yielding`](Rtm::set_stale_yielding)); each one the
    /// client adds again becomes fresh, and [`sweep_stale`](Rtm::sweep_stale)
    /// removes the rest. With `hold`, `sweep_expired` sweeps them once it
    /// has passed. A later mark replaces this one and its hold. Returns how
    /// many routes the client has, all stale now.
    pub fn mark_stale<F: Family>(
        &self,
        client: &ClientHandle<F>,
        hold: Option<Duration>,
    ) -> Result<usize, RtmError> {
        let deadline = hold.map(|h| self.deadline_after(h));
        self.table::<F>().mark_stale(client, deadline)
    }

    /// Removes the client's routes still stale from its last mark (or the
    /// graceful deregistration it adopted), notifying every client, the
    /// caller included, of each best-route change; ends the mark and its
    /// hold. Visits only the networks where a stale route may remain, not
    /// all of the client's. Returns how many routes went (0 when every
    /// route was refreshed: not an error).
    pub fn sweep_stale<F: Family>(&self, client: &ClientHandle<F>) -> Result<usize, RtmError> {
        self.table::<F>().sweep_stale(client)
    }

    /// End-of-RIB from a restarted client: [`sweep_stale`](Rtm::sweep_stale)
    /// under the name routing daemons use for it.
    pub fn end_of_rib<F: Family>(&self, client: &ClientHandle<F>) -> Result<usize, RtmError> {
        self.sweep_stale(client)
    }

    /// What the table says of the stored route with `route`'s key (best,
    /// enabled, stale), or `None` if there is no such route.
    pub fn route_marks<F: Family>(&self, route: &Route<F>) -> Option<RouteMarks> {
        self.table::<F>().route_marks(&route.key())
    }

    /// The clock's now plus `hold`, saturating.
    fn deadline_after(&self, hold: Duration) -> crate::clock::Timestamp {
        let ticks = hold
            .as_nanos()
            .saturating_mul(TICKS_PER_SECOND as u128)
            .div_ceil(1_000_000_000)
            .min(u64::MAX as u128) as u64;
        crate::clock::Timestamp(self.now().0.saturating_add(ticks))
    }

    // ----- routes (2.3 - 2.5, 2.15) --------------------------------------------

    /// Adds or updates a route (RtmAddRoute) and returns how the network's
    /// best route changed. The caller gets no message; every other notifying
    /// client gets the same change.
    pub fn add_route<F: Family>(
        &self,
        client: &ClientHandle<F>,
        route: &Route<F>,
        ttl: Ttl,
    ) -> Result<Change<F>, RtmError> {
        self.table::<F>().add_route(client, route, ttl)
    }

    /// Deletes the caller's route with `route`'s key (RtmDeleteRoute); for a
    /// single-route client only the network counts. `NoSuchRoute` if absent.
    pub fn delete_route<F: Family>(
        &self,
        client: &ClientHandle<F>,
        route: &Route<F>,
    ) -> Result<Change<F>, RtmError> {
        self.table::<F>().delete_route(client, route)
    }

    /// Applies a batch of adds and deletes in order (a routing protocol's
    /// initial load, or the prefixes of one BGP UPDATE): each update has
    /// exactly the outcome, change messages and effect on the table that
    /// [`add_route`](Rtm::add_route) or [`delete_route`](Rtm::delete_route)
    /// would have at that point, and `each` receives the outcomes in order.
    ///
    /// Cheaper than the calls one by one: per chunk of 256 updates the
    /// client is checked, the clock and the protocol's priority are read
    /// once (every add of a chunk gets the same timestamp), and waiting
    /// subscribers are woken once per few hundred messages rather than once
    /// per message. Each update is atomic on its own; the batch is not
    /// (readers may see part of it).
    ///
    /// `each` runs after its update's chunk is applied, outside the
    /// client's gate and every epoch pin, so it may call back into the
    /// table, this client included: if it deregisters the client, the rest
    /// of the batch fails with `InvalidHandle`. An add past a network's
    /// route limit reports `NoSystemResources` through `each` and changes
    /// nothing.
    ///
    /// Every add is validated before anything is applied: an invalid TTL or
    /// route data refuses the whole batch with `InvalidParameter` naming the
    /// update, and leaves the table as it was. A delete of an absent route
    /// is reported through `each` (`NoSuchRoute`) and does not stop the batch.
    ///
    /// ```
    /// use rtm::{Ipv4, IpRouteData, ProtocolId, RegisterOptions, Route, RouteUpdate, Rtm, Ttl};
    /// let rtm = Rtm::new();
    /// let bgp = rtm.register::<Ipv4>(ProtocolId(14), RegisterOptions::default())?;
    /// let route = |net: &str| {
    ///     Route::<Ipv4>::new(net.parse().unwrap(), "192.0.2.1".parse().unwrap(), 1,
    ///                        IpRouteData::with_metric(1))
    /// };
    /// let batch = [
    ///     RouteUpdate::Add { route: route("10.0.0.0/8"), ttl: Ttl::Infinite },
    ///     RouteUpdate::Add { route: route("10.1.0.0/16"), ttl: Ttl::Infinite },
    ///     RouteUpdate::Delete(route("192.168.0.0/16")),
    /// ];
    /// let mut outcomes = Vec::new();
    /// rtm.update_routes(&bgp, &batch, |r| outcomes.push(r.map(|c| c.flags())))?;
    /// assert_eq!(outcomes.len(), 3);
    /// assert!(outcomes[2].is_err()); // nothing to delete there
    /// assert_eq!(rtm.network_count::<Ipv4>(), 2);
    /// # Ok::<(), rtm::RtmError>(())
    /// ```
    pub fn update_routes<F: Family>(
        &self,
        client: &ClientHandle<F>,
        updates: &[RouteUpdate<F>],
        each: impl FnMut(Result<Change<F>, RtmError>),
    ) -> Result<(), RtmError> {
        self.table::<F>().update_routes(client, updates, each)
    }

    /// Deletes the caller's routes matching `criteria` (RtmBlockDeleteRoutes);
    /// returns how many. Every notifying client, the caller included, gets
    /// one message per affected network. `NoRoutes` if nothing matched.
    pub fn block_delete<F: Family>(
        &self,
        client: &ClientHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        self.table::<F>().block_delete(client, criteria)
    }

    /// Disables or enables the caller's routes matching `criteria`
    /// (RtmBlockSetRouteEnable, our semantics: spec 2.15). A disabled route
    /// is kept and counted but never best, and enumerations skip it unless
    /// asked to include disabled routes. Returns how many routes changed state
    /// (enabling an enabled route counts nothing); `NoRoutes` if none matched.
    pub fn block_set_enable<F: Family>(
        &self,
        client: &ClientHandle<F>,
        criteria: &Criteria<F>,
        enable: bool,
    ) -> Result<usize, RtmError> {
        self.table::<F>().block_set_enable(client, criteria, enable)
    }

    /// Re-owns every other protocol's route matching `criteria` to the
    /// caller, data unchanged, timestamp now, never expiring
    /// (RtmBlockConvertRoutesToStatic, our semantics: spec 2.15). A converted
    /// route whose key the caller already has replaces that route. Returns
    /// how many routes were converted.
    pub fn block_convert_to_static<F: Family>(
        &self,
        client: &ClientHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        self.table::<F>().block_convert_to_static(client, criteria)
    }

    // ----- messages (2.6) ------------------------------------------------------

    /// Takes the oldest change message of the client's queue
    /// (RtmDequeueRouteChangeMessage). `NoMessages` when empty;
    /// `InvalidHandle` for a client registered without notifications.
    pub fn dequeue<F: Family>(&self, client: &ClientHandle<F>) -> Result<Dequeued<F>, RtmError> {
        self.table::<F>().dequeue(client)
    }

    // ----- queries (2.7 - 2.9) -------------------------------------------------

    /// The best route of exactly `network` (RtmIsRoute), or `None`.
    pub fn is_route<F: Family>(&self, network: &F::Network) -> Option<Route<F>> {
        self.table::<F>().is_route(network)
    }

    /// Number of networks with at least one route (RtmGetNetworkCount).
    pub fn network_count<F: Family>(&self) -> usize {
        self.table::<F>().network_count()
    }

    /// Whole seconds since `route.timestamp` (RtmGetRouteAge); a pure
    /// function of the route image. `InvalidParameter` for a zero timestamp
    /// or one later than now (spec A20).
    pub fn route_age<F: Family>(&self, route: &Route<F>) -> Result<u32, RtmError> {
        let now = self.now();
        let ts = route.timestamp;
        if ts.0 == 0 || ts > now {
            return Err(RtmError::invalid(format!(
                "route timestamp {ts} is {} (now is {now})",
                if ts.0 == 0 { "zero" } else { "later than now" }
            )));
        }
        Ok(((now.0 - ts.0) / TICKS_PER_SECOND).min(u32::MAX as u64 - 1) as u32)
    }

    // ----- enumeration (2.10 - 2.14) -------------------------------------------

    /// Opens an enumeration of the routes matching `criteria`
    /// (RtmCreateEnumerationHandle). `NoRoutes` if none matches now.
    pub fn enumerate<F: Family>(&self, criteria: &Criteria<F>) -> Result<Enumeration<F>, RtmError> {
        Enumeration::open(self.table::<F>().clone(), *criteria)
    }

    /// The lowest matching route in (network, protocol, interface, next hop)
    /// order (RtmGetFirstRoute). `NoRoutes` if none.
    pub fn get_first<F: Family>(&self, criteria: &Criteria<F>) -> Result<Route<F>, RtmError> {
        self.table::<F>()
            .first_after(criteria, None)
            .ok_or_else(|| RtmError::NoRoutes(criteria.to_string()))
    }

    /// The first matching route whose key is strictly greater than
    /// `after`'s (RtmGetNextRoute); `after` need not exist. `NoRoutes` at the end.
    pub fn get_next<F: Family>(
        &self,
        criteria: &Criteria<F>,
        after: &Route<F>,
    ) -> Result<Route<F>, RtmError> {
        self.table::<F>()
            .first_after(criteria, Some(&after.key()))
            .ok_or_else(|| RtmError::NoRoutes(format!("{criteria} after {}", after.network)))
    }

    // ----- forwarding (2.15) ---------------------------------------------------

    /// The forwarding lookup: the longest-prefix match for `addr` in the FIB.
    /// Wait-free, no read-modify-write (see [`LpmFib::lookup`]); sees every
    /// best-route change whose RIB call has returned. A forwarding loop
    /// should register a [`crate::FibReader`] instead.
    pub fn lookup<F: IpFamily>(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        self.table::<F>().fib.lookup(addr)
    }

    /// As [`Rtm::lookup`], an ECMP group's path picked by the flow's `hash`
    /// (see [`LpmFib::lookup_flow`]).
    pub fn lookup_flow<F: IpFamily>(&self, addr: F::Addr, hash: u32) -> Option<FibEntry<F>> {
        self.table::<F>().fib.lookup_flow(addr, hash)
    }

    /// The family's FIB itself: forwarding threads register readers on it
    /// ([`LpmFib::reader`]) or look up in batches ([`LpmFib::lookup_batch`]).
    pub fn fib<F: IpFamily>(&self) -> &LpmFib<F> {
        &self.table::<F>().fib
    }

    /// RtmLookupIPDestination: the best route of the most specific network
    /// containing `addr`.
    pub fn lookup_route<F: IpFamily>(&self, addr: F::Addr) -> Option<Route<F>> {
        let table = self.table::<F>();
        if let Some(e) = table.fib.lookup(addr)
            && let Some(r) = table.is_route(&e.prefix)
        {
            return Some(r);
        }
        // The FIB missed, or its match was withdrawn in between: probe the
        // RIB itself, longest length first.
        (0..=<F::Addr as IpAddress>::BITS)
            .rev()
            .find_map(|len| table.is_route(&Prefix::truncating(addr, len)))
    }

    // ----- aging (3.2) -----------------------------------------------------------

    /// Removes every route whose TTL has run out by the clock's now, in all
    /// families, notifying every client (owners included), and then ends
    /// the graceful-restart holds that have passed (see
    /// [`deregister_graceful`](Rtm::deregister_graceful),
    /// [`mark_stale`](Rtm::mark_stale)), in protocol order. Returns how many
    /// routes went.
    pub fn sweep_expired(&self) -> usize {
        let now = self.now();
        // A sweep only removes routes; the mutation path reports no error for it.
        self.inner.ipv4.sweep(now).unwrap_or(0)
            + self.inner.ipv6.sweep(now).unwrap_or(0)
            + self.inner.ipx.sweep(now).unwrap_or(0)
    }

    /// Starts a background thread that calls [`Rtm::sweep_expired`] every
    /// `interval` (the aging granularity). It stops when the returned
    /// [`Sweeper`] is dropped or the `Rtm` is gone.
    pub fn spawn_sweeper(&self, interval: Duration) -> Sweeper {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rtm-sweeper".into())
            .spawn(move || {
                let (flag, cv) = &*stop2;
                let mut stopped = lock(flag);
                loop {
                    let (s, _) = cv
                        .wait_timeout_while(stopped, interval, |s| !*s)
                        .unwrap_or_else(PoisonError::into_inner);
                    stopped = s;
                    if *stopped {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    drop(stopped);
                    Rtm { inner }.sweep_expired();
                    stopped = lock(flag);
                }
            })
            .ok();
        Sweeper { stop, thread }
    }

    /// Checks the internal invariants of every table: sorted route sets, a
    /// best route that is a best candidate, the network count, every route
    /// indexed under its client and no index entry without a route, and the
    /// FIB equal to the best routes. O(table size); for tests and debugging.
    pub fn verify_consistency(&self) -> Result<(), String> {
        // First what lookups read: the writer-side reads of the rest
        // publish any change a bulk writer held back, which would hide one
        // it forgot.
        self.verify_lookups::<Ipv4>()?;
        self.verify_lookups::<Ipv6>()?;
        self.verify_invariants()
    }

    /// [`Rtm::verify_consistency`] without the walk of the lookup path:
    /// the RIB's invariants and the FIB's writer side against the best
    /// routes, O(table size) instead of O(address space blocks). For tests
    /// that check after every step and walk now and then.
    pub fn verify_invariants(&self) -> Result<(), String> {
        self.inner.ipv4.verify()?;
        self.inner.ipv6.verify()?;
        self.inner.ipx.verify()?;
        self.verify_fib::<Ipv4>()?;
        self.verify_fib::<Ipv6>()
    }

    fn verify_fib<F: IpFamily>(&self) -> Result<(), String> {
        let table = self.table::<F>();
        let mut bests = 0;
        let exclude_invalid = table.shared.exclude_invalid;
        let mismatch = table.scan(Bound::Unbounded, |network, set| {
            let best = set.best_route()?;
            bests += 1;
            let paths = set.best_paths(exclude_invalid);
            if paths.len() > 1 {
                let mut want: Vec<_> = paths
                    .iter()
                    .map(|&i| {
                        let r = &set.entries[i].route;
                        (r.next_hop, r.interface, r.protocol, r.data.weight)
                    })
                    .collect();
                want.sort_unstable();
                let got: Vec<_> = table
                    .fib
                    .paths(&network)
                    .iter()
                    .map(|p| {
                        let h = p.next_hop;
                        (h.next_hop, h.interface, h.protocol, p.weight)
                    })
                    .collect();
                if got != want {
                    return Some(format!(
                        "{}: FIB paths of {network} are {got:?}, the RIB's {want:?}",
                        F::ID
                    ));
                }
            }
            let e = table.fib.get(&network);
            let expected = expected_entry(&table.fib, network, best, paths.len());
            (e != Some(expected)).then(|| {
                format!(
                    "{}: FIB has {e:?} for {network}, RIB best is {best:?}",
                    F::ID
                )
            })
        });
        if let Some(m) = mismatch {
            return Err(m);
        }
        if table.fib.len() != bests {
            return Err(format!(
                "{}: FIB holds {} prefixes, RIB has {bests} best routes",
                F::ID,
                table.fib.len()
            ));
        }
        Ok(())
    }

    /// What lookups read, against the RIB: the address space is walked
    /// block by block through the FIB's own lookup path (the entries and
    /// nodes readers load), and every block must lie inside one interval
    /// of the longest-prefix partition the RIB's best routes make, with
    /// that interval's answer. Together the blocks cover every address, so
    /// this checks every lookup's answer, not only each prefix's entry.
    fn verify_lookups<F: IpFamily>(&self) -> Result<(), String> {
        let table = self.table::<F>();
        let mut bests = Vec::new();
        let exclude_invalid = table.shared.exclude_invalid;
        table.scan(Bound::Unbounded, |network: Prefix<F::Addr>, set| {
            if let Some(best) = set.best_route() {
                let paths = set.best_paths(exclude_invalid).len();
                bests.push(expected_entry(&table.fib, network, best, paths));
            }
            None::<()>
        });
        let expected = lpm_intervals::<F>(bests);
        let mut at = 0;
        let mut failure = None;
        table.fib.walk_lookups(|start, last, got| {
            if failure.is_some() {
                return;
            }
            while at < expected.len() && expected[at].1 < start {
                at += 1;
            }
            let ok = expected
                .get(at)
                .is_some_and(|&(lo, hi, want)| lo <= start && last <= hi && want == got);
            if !ok {
                let want = expected.get(at).and_then(|e| e.2);
                failure = Some(format!(
                    "{}: lookups of {} to {} answer {got:?}, the RIB's best routes {want:?}",
                    F::ID,
                    <F::Addr as IpAddress>::from_bits(start),
                    <F::Addr as IpAddress>::from_bits(last),
                ));
            }
        });
        failure.map_or(Ok(()), Err)
    }
}

/// What a lookup of `network` must answer given its best route and its
/// number of best paths: the best route's forwarding, or for an ECMP group
/// the first of its paths (in the group's order) that is up, as
/// [`LpmFib::lookup`] answers groups (the members themselves are checked
/// against the RIB by `verify_fib`).
fn expected_entry<F: IpFamily>(
    fib: &LpmFib<F>,
    network: Prefix<F::Addr>,
    best: &Route<F>,
    paths: usize,
) -> FibEntry<F> {
    if paths < 2 {
        return FibEntry::of(best);
    }
    let group = fib.paths(&network);
    let first = group.iter().find(|p| !p.down).or(group.first());
    first.map_or(FibEntry::of(best), |p| FibEntry {
        prefix: network,
        next_hop: p.next_hop.next_hop,
        interface: p.next_hop.interface,
        protocol: p.next_hop.protocol,
    })
}

/// The longest-prefix partition of the address space by `entries` (one
/// per prefix): sorted, disjoint `(first, last, answer)` intervals covering
/// every address, `None` where no prefix does.
fn lpm_intervals<F: IpFamily>(
    mut entries: Vec<FibEntry<F>>,
) -> Vec<(u128, u128, Option<FibEntry<F>>)> {
    let width = <F::Addr as IpAddress>::BITS as u32;
    let span = |e: &FibEntry<F>| {
        let lo = e.prefix.addr().to_bits();
        let hi = lo
            | (u128::MAX >> (128 - width))
                .checked_shr(e.prefix.len() as u32)
                .unwrap_or(0);
        (lo, hi)
    };
    entries.sort_by_key(|e| (e.prefix.addr().to_bits(), e.prefix.len()));
    let mut out = Vec::with_capacity(2 * entries.len() + 1);
    // The prefixes covering `next`, innermost last, and the first address
    // not yet emitted (None: past the end of the space).
    let mut open: Vec<(u128, FibEntry<F>)> = Vec::new();
    let mut next = Some(0u128);
    let mut close_to =
        |limit: u128, open: &mut Vec<(u128, FibEntry<F>)>, next: &mut Option<u128>| {
            // Emits up to (not including) `limit`, closing prefixes that end first.
            while let Some(cur) = *next {
                let end = open.last().map_or(u128::MAX, |&(hi, _)| hi);
                if cur >= limit {
                    return;
                }
                let stop = end.min(limit - 1);
                out.push((cur, stop, open.last().map(|&(_, e)| e)));
                *next = stop.checked_add(1);
                if stop == end {
                    open.pop();
                }
            }
        };
    for e in entries {
        let (lo, hi) = span(&e);
        close_to(lo, &mut open, &mut next);
        open.push((hi, e));
    }
    let end = u128::MAX >> (128 - width);
    while let Some(cur) = next {
        let stop = open.last().map_or(end, |&(hi, _)| hi);
        out.push((cur, stop, open.last().map(|&(_, e)| e)));
        next = if stop == end { None } else { Some(stop + 1) };
        open.pop();
    }
    out
}

/// The background aging thread of [`Rtm::spawn_sweeper`]; stops on drop.
#[derive(Debug)]
pub struct Sweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
