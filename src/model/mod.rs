//! A sequential reference model of the RTM: plain `BTreeMap`s, no
//! concurrency, no cleverness.
//!
//! It implements the same contract as [`Rtm`](crate::Rtm) in the most
//! direct way, so differential tests and fuzzers can run the same
//! operations against both and compare every result, every queued message
//! and the final table. It shares only the plain data types with the engine
//! (routes, networks, criteria, changes, errors), not its algorithms.
//!
//! ```
//! use rtm::model::ModelRtm;
//! use rtm::{Ipv4, IpRouteData, ProtocolId, RegisterOptions, Route, Ttl};
//! let mut m = ModelRtm::new();
//! let c = m.register::<Ipv4>(ProtocolId(1), RegisterOptions::default()).unwrap();
//! let r = Route::<Ipv4>::new("10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap(), 1, IpRouteData::default());
//! assert_eq!(m.add_route(&c, &r, Ttl::Infinite).unwrap().flags(), 1);
//! assert_eq!(m.network_count::<Ipv4>(), 1);
//! ```

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::change::Change;
use crate::client::RegisterOptions;
use crate::clock::{TICKS_PER_SECOND, Timestamp};
use crate::criteria::Criteria;
use crate::engine_family::{Family, IpFamily};
use crate::error::RtmError;
use crate::family::{AddressFamily, FamilyId, Ipv4, Ipv6, Ipx};
use crate::fib::FibEntry;
use crate::notify::{DequeueStatus, Dequeued};
use crate::priority::PriorityTable;
use crate::route::{ProtocolId, Route, RouteData, RouteKey, Ttl};

/// A client of the model: its protocol and a registration generation, so
/// handles of earlier registrations are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelHandle<F: Family> {
    protocol: ProtocolId,
    generation: u64,
    _family: std::marker::PhantomData<F>,
}

impl<F: Family> ModelHandle<F> {
    /// The handle's protocol.
    pub fn protocol(&self) -> ProtocolId {
        self.protocol
    }
}

#[derive(Debug, Clone)]
struct ModelClient<F: Family> {
    generation: u64,
    single_route: bool,
    /// Pending messages, each with whether an ECMP paths change was folded
    /// into it (coalescing queues; always the message's own kind in FIFO).
    queue: Option<VecDeque<(Change<F>, bool)>>,
    /// The queue coalesces per network (see `fold_into`).
    coalesce: bool,
}

/// A coalescing queue's push, written the plain way: the network's pending
/// message, if any, becomes the change from its previous route to the new
/// current one (and leaves the queue if that is no change, unless an ECMP
/// paths change was ever folded in and a best route remains: then it is a
/// paths change); otherwise the change joins the back.
fn fold_into<F: Family>(q: &mut VecDeque<(Change<F>, bool)>, change: Change<F>) {
    match q.iter().position(|m| m.0.network() == change.network()) {
        Some(i) => {
            let paths = q[i].1 || change.is_paths_change();
            let folded = Change::between(q[i].0.previous(), change.current());
            match (folded, change.current()) {
                (Change::NoChange, Some(r)) if paths => {
                    q[i] = (
                        Change::Changed {
                            previous: *r,
                            current: *r,
                        },
                        true,
                    );
                }
                (Change::NoChange, _) => {
                    q.remove(i);
                }
                (folded, _) => q[i] = (folded, paths),
            }
        }
        None => q.push_back((change, change.is_paths_change())),
    }
}

#[derive(Debug, Clone, Copy)]
struct ModelEntry<F: Family> {
    route: Route<F>,
    priority: u32,
    expires: Option<Timestamp>,
    enabled: bool,
    /// Stale since a mark, not refreshed: `Some(yields)`, where `yields`
    /// is whether it loses to fresh routes of its priority.
    stale: Option<bool>,
    /// Written while its protocol had ECMP on.
    multipath: bool,
}

/// What forwarding sees of a best path: next hop, interface, protocol,
/// weight.
type PathKey<F> = (<F as AddressFamily>::NextHop, u32, ProtocolId, u16);

/// A network's state before an operation: its best route and best paths.
struct Before<F: Family> {
    best: Option<Route<F>>,
    paths: Vec<PathKey<F>>,
}

/// One family's table in the model.
#[derive(Debug, Clone)]
struct ModelTable<F: Family> {
    clients: BTreeMap<ProtocolId, ModelClient<F>>,
    /// Every route, in RTMv1 key order.
    routes: BTreeMap<RouteKey<F>, ModelEntry<F>>,
    /// The best route's key per network that has one.
    best: BTreeMap<F::Network, RouteKey<F>>,
    /// Registered protocols with a mark in effect (not swept yet), and
    /// when its hold ends, if it does.
    marks: BTreeMap<ProtocolId, Option<Timestamp>>,
    /// Gracefully deregistered protocols nobody has registered again, and
    /// when their hold ends.
    orphans: BTreeMap<ProtocolId, Timestamp>,
    /// Protocols with ECMP on (their clients hear of paths changes).
    multipath: BTreeSet<ProtocolId>,
    /// Spec A6 (as the model's).
    exclude_invalid: bool,
}

impl<F: Family> Default for ModelTable<F> {
    fn default() -> Self {
        ModelTable {
            clients: BTreeMap::new(),
            routes: BTreeMap::new(),
            best: BTreeMap::new(),
            marks: BTreeMap::new(),
            orphans: BTreeMap::new(),
            multipath: BTreeSet::new(),
            exclude_invalid: true,
        }
    }
}

/// (protocol priority, stale and yielding, metric): lower wins.
type Rank<F> = (u32, bool, <<F as AddressFamily>::Data as RouteData>::Metric);

enum Notify {
    AllBut(ProtocolId),
    All,
}

impl<F: Family> ModelTable<F> {
    fn network_routes(
        &self,
        n: F::Network,
    ) -> impl Iterator<Item = (&RouteKey<F>, &ModelEntry<F>)> {
        self.routes.range(..).filter(move |(k, _)| k.network == n)
    }

    fn best_image(&self, n: F::Network) -> Option<Route<F>> {
        self.best.get(&n).map(|k| self.routes[k].route)
    }

    /// Re-selects the best route of `n`, given the incumbent's key.
    fn reselect(&mut self, n: F::Network, incumbent: Option<RouteKey<F>>, exclude_invalid: bool) {
        let candidates: Vec<(RouteKey<F>, Rank<F>)> = self
            .network_routes(n)
            .filter(|(_, e)| e.enabled && (!exclude_invalid || e.route.data.is_valid()))
            .map(|(k, e)| {
                let yields = e.stale == Some(true);
                (*k, (e.priority, yields, e.route.data.metric()))
            })
            .collect();
        let Some(min) = candidates.iter().map(|c| c.1).min() else {
            self.best.remove(&n);
            return;
        };
        let winner = candidates
            .iter()
            .find(|c| c.1 == min && Some(c.0) == incumbent)
            .or_else(|| candidates.iter().find(|c| c.1 == min))
            .map(|c| c.0);
        match winner {
            Some(k) => self.best.insert(n, k),
            None => self.best.remove(&n),
        };
    }

    /// The best paths of `n`, in key order: the best route, and when it is
    /// a multipath route every other enabled, selectable multipath route of
    /// its rank; past 128, the first in key order, the best kept.
    fn paths(&self, n: F::Network) -> Vec<Route<F>> {
        let Some(best) = self.best.get(&n) else {
            return Vec::new();
        };
        let lead = &self.routes[best];
        if !lead.multipath {
            return vec![lead.route];
        }
        let rank = |e: &ModelEntry<F>| (e.priority, e.stale == Some(true), e.route.data.metric());
        let peers: Vec<(RouteKey<F>, Route<F>)> = self
            .network_routes(n)
            .filter(|(k, e)| {
                *k == best
                    || (e.multipath
                        && e.enabled
                        && (!self.exclude_invalid || e.route.data.is_valid())
                        && rank(e) == rank(lead))
            })
            .map(|(k, e)| (*k, e.route))
            .collect();
        if peers.len() <= 128 {
            return peers.into_iter().map(|p| p.1).collect();
        }
        let others: Vec<RouteKey<F>> = peers
            .iter()
            .map(|p| p.0)
            .filter(|k| k != best)
            .take(127)
            .collect();
        peers
            .into_iter()
            .filter(|(k, _)| k == best || others.contains(k))
            .map(|p| p.1)
            .collect()
    }

    /// The forwarding of `n`'s best paths, sorted.
    fn path_keys(&self, n: F::Network) -> Vec<PathKey<F>> {
        let mut keys: Vec<PathKey<F>> = self
            .paths(n)
            .iter()
            .map(|r| (r.next_hop, r.interface, r.protocol, r.data.weight()))
            .collect();
        keys.sort();
        keys
    }

    fn before(&self, n: F::Network) -> Before<F> {
        Before {
            best: self.best_image(n),
            paths: self.path_keys(n),
        }
    }

    /// After an operation changed `n`: its change message to everyone per
    /// `who`, and where only the best paths changed (ECMP), a paths change
    /// to the clients of multipath protocols. Returns the change.
    fn settle(&mut self, n: F::Network, before: Before<F>, who: Notify) -> Change<F> {
        let after = self.best_image(n);
        let change = Change::between(before.best.as_ref(), after.as_ref());
        if change.is_no_change()
            && let Some(r) = after
            && before.paths != self.path_keys(n)
        {
            self.notify_paths(
                Change::Changed {
                    previous: r,
                    current: r,
                },
                who,
            );
        } else {
            self.notify(change, who);
        }
        change
    }

    /// A paths change: only to the clients of multipath protocols.
    fn notify_paths(&mut self, change: Change<F>, who: Notify) {
        let multipath = self.multipath.clone();
        self.deliver(change, who, |p| multipath.contains(p));
    }

    fn notify(&mut self, change: Change<F>, who: Notify) {
        if !change.is_no_change() {
            self.deliver(change, who, |_| true);
        }
    }

    /// Queues `change` for every client per `who` whose protocol `to`
    /// accepts.
    fn deliver(&mut self, change: Change<F>, who: Notify, to: impl Fn(&ProtocolId) -> bool) {
        for (p, c) in self.clients.iter_mut() {
            if matches!(who, Notify::AllBut(caller) if caller == *p) || !to(p) {
                continue;
            }
            if let Some(q) = &mut c.queue {
                if c.coalesce {
                    fold_into(q, change);
                } else {
                    q.push_back((change, change.is_paths_change()));
                }
            }
        }
    }

    fn networks(&self) -> BTreeSet<F::Network> {
        self.routes.keys().map(|k| k.network).collect()
    }

    fn matching(&self, criteria: &Criteria<F>) -> Vec<Route<F>> {
        self.routes
            .iter()
            .filter(|(k, e)| {
                criteria.matches(
                    &e.route,
                    self.best.get(&k.network) == Some(*k),
                    e.enabled,
                    e.stale.is_some(),
                )
            })
            .map(|(_, e)| e.route)
            .collect()
    }
}

/// The sequential reference RTM. Time moves only through [`ModelRtm::advance_secs`].
#[derive(Debug, Clone)]
pub struct ModelRtm {
    now: Timestamp,
    priorities: PriorityTable,
    exclude_invalid: bool,
    generation: u64,
    ipv4: ModelTable<Ipv4>,
    ipv6: ModelTable<Ipv6>,
    ipx: ModelTable<Ipx>,
}

impl Default for ModelRtm {
    fn default() -> Self {
        ModelRtm::new()
    }
}

impl ModelRtm {
    /// A model starting at the same instant as [`ManualClock::new`](crate::ManualClock::new).
    pub fn new() -> Self {
        ModelRtm::starting_at(crate::clock::ManualClock::new().now_value())
    }

    /// A model starting at `now`.
    pub fn starting_at(now: Timestamp) -> Self {
        ModelRtm {
            now,
            priorities: PriorityTable::default(),
            exclude_invalid: true,
            generation: 0,
            ipv4: ModelTable::default(),
            ipv6: ModelTable::default(),
            ipx: ModelTable::default(),
        }
    }

    fn table<F: Family>(&mut self) -> &mut ModelTable<F> {
        let t: &mut dyn Any = match F::ID {
            FamilyId::Ipv4 => &mut self.ipv4,
            FamilyId::Ipv6 => &mut self.ipv6,
            FamilyId::Ipx => &mut self.ipx,
        };
        t.downcast_mut().expect("one table type per family")
    }

    fn table_ref<F: Family>(&self) -> &ModelTable<F> {
        let t: &dyn Any = match F::ID {
            FamilyId::Ipv4 => &self.ipv4,
            FamilyId::Ipv6 => &self.ipv6,
            FamilyId::Ipx => &self.ipx,
        };
        t.downcast_ref().expect("one table type per family")
    }

    /// The model's current time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Moves time forward (no aging happens until [`ModelRtm::sweep_expired`]).
    pub fn advance_secs(&mut self, secs: u64) {
        self.now = self.now.plus_seconds(secs);
    }

    /// Sets a protocol's priority.
    pub fn set_priority(&mut self, protocol: ProtocolId, priority: u32) {
        self.priorities = self.priorities.clone().with(protocol, priority);
    }

    fn live<F: Family>(&self, h: &ModelHandle<F>) -> Result<&ModelClient<F>, RtmError> {
        match self.table_ref::<F>().clients.get(&h.protocol) {
            Some(c) if c.generation == h.generation => Ok(c),
            _ => Err(RtmError::InvalidHandle(format!(
                "{} protocol {} is not registered",
                F::ID,
                h.protocol
            ))),
        }
    }

    /// RtmRegisterClient.
    pub fn register<F: Family>(
        &mut self,
        protocol: ProtocolId,
        options: RegisterOptions,
    ) -> Result<ModelHandle<F>, RtmError> {
        self.generation += 1;
        let generation = self.generation;
        let t = self.table::<F>();
        if t.clients.contains_key(&protocol) {
            return Err(RtmError::ClientAlreadyExists {
                family: F::ID,
                protocol,
            });
        }
        // Adopting a graceful deregistration's routes, and its hold.
        if let Some(deadline) = t.orphans.remove(&protocol) {
            t.marks.insert(protocol, Some(deadline));
        }
        t.clients.insert(
            protocol,
            ModelClient {
                generation,
                single_route: options.single_route,
                queue: options.notify.then(VecDeque::new),
                coalesce: options.coalesce,
            },
        );
        Ok(ModelHandle {
            protocol,
            generation,
            _family: std::marker::PhantomData,
        })
    }

    /// Removes the routes selected by `pick` network by network in network
    /// order, notifying per `who`; returns how many.
    fn remove_routes<F: Family>(
        &mut self,
        pick: impl Fn(&ModelEntry<F>) -> bool,
        who: impl Fn() -> Notify,
    ) -> usize {
        let exclude = self.exclude_invalid;
        let t = self.table::<F>();
        let mut removed = 0;
        for n in t.networks() {
            let doomed: Vec<RouteKey<F>> = t
                .network_routes(n)
                .filter(|(_, e)| pick(e))
                .map(|(k, _)| *k)
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let before = t.before(n);
            let incumbent = t.best.get(&n).copied();
            for k in &doomed {
                t.routes.remove(k);
            }
            removed += doomed.len();
            t.reselect(n, incumbent, exclude);
            t.settle(n, before, who());
        }
        removed
    }

    /// RtmDeregisterClient.
    pub fn deregister<F: Family>(&mut self, h: &ModelHandle<F>) -> Result<usize, RtmError> {
        self.live(h)?;
        let p = h.protocol;
        self.table::<F>().clients.remove(&p);
        self.table::<F>().marks.remove(&p);
        Ok(self.remove_routes::<F>(|e| e.route.protocol == p, || Notify::All))
    }

    /// Marks every route of `p` stale, network by network, everyone told.
    fn mark_routes<F: Family>(&mut self, p: ProtocolId) -> usize {
        let exclude = self.exclude_invalid;
        let yields = self.priorities.stale_yields(p);
        let t = self.table::<F>();
        let mut marked = 0;
        for n in t.networks() {
            let mine: Vec<RouteKey<F>> = t
                .network_routes(n)
                .filter(|(k, _)| k.protocol == p)
                .map(|(k, _)| *k)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let before = t.before(n);
            let incumbent = t.best.get(&n).copied();
            for k in &mine {
                if let Some(e) = t.routes.get_mut(k) {
                    e.stale = Some(yields);
                }
            }
            marked += mine.len();
            t.reselect(n, incumbent, exclude);
            t.settle(n, before, Notify::All);
        }
        marked
    }

    /// Graceful deregistration: the client goes, its routes stay, stale,
    /// for the next registration of its protocol to adopt until `hold_secs`
    /// pass.
    pub fn deregister_graceful<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        hold_secs: u64,
    ) -> Result<usize, RtmError> {
        self.live(h)?;
        let p = h.protocol;
        let deadline = self.now.plus_seconds(hold_secs);
        let t = self.table::<F>();
        t.clients.remove(&p);
        t.marks.remove(&p);
        t.orphans.insert(p, deadline);
        Ok(self.mark_routes::<F>(p))
    }

    /// Marks the client's routes stale, with a hold of `hold_secs` if given.
    pub fn mark_stale<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        hold_secs: Option<u64>,
    ) -> Result<usize, RtmError> {
        self.live(h)?;
        let deadline = hold_secs.map(|s| self.now.plus_seconds(s));
        self.table::<F>().marks.insert(h.protocol, deadline);
        Ok(self.mark_routes::<F>(h.protocol))
    }

    /// Removes the client's stale routes and ends its mark.
    pub fn sweep_stale<F: Family>(&mut self, h: &ModelHandle<F>) -> Result<usize, RtmError> {
        self.live(h)?;
        Ok(self.sweep_protocol::<F>(h.protocol))
    }

    fn sweep_protocol<F: Family>(&mut self, p: ProtocolId) -> usize {
        self.table::<F>().marks.remove(&p);
        self.remove_routes::<F>(
            |e| e.route.protocol == p && e.stale.is_some(),
            || Notify::All,
        )
    }

    /// The holds ended by now, in protocol order: a registered protocol's
    /// stale routes are swept, an orphan's routes all go.
    fn expire_holds<F: Family>(&mut self) -> usize {
        let now = self.now;
        let t = self.table_ref::<F>();
        let mut due: Vec<(ProtocolId, bool)> = t
            .marks
            .iter()
            .filter(|(_, d)| d.is_some_and(|d| d <= now))
            .map(|(p, _)| (*p, true))
            .chain(
                t.orphans
                    .iter()
                    .filter(|(_, d)| **d <= now)
                    .map(|(p, _)| (*p, false)),
            )
            .collect();
        due.sort();
        let mut removed = 0;
        for (p, registered) in due {
            if registered {
                removed += self.sweep_protocol::<F>(p);
            } else {
                self.table::<F>().orphans.remove(&p);
                removed += self.remove_routes::<F>(|e| e.route.protocol == p, || Notify::All);
            }
        }
        removed
    }

    /// Sets whether a protocol's stale routes yield to fresh ones of equal
    /// priority (taken when marked).
    pub fn set_stale_yielding(&mut self, protocol: ProtocolId, yields: bool) {
        self.priorities = self
            .priorities
            .clone()
            .with_stale_yielding(protocol, yields);
    }

    /// Opts a protocol in to or out of ECMP (taken when routes are
    /// written; its clients hear of paths changes while it is on).
    pub fn set_multipath(&mut self, protocol: ProtocolId, on: bool) {
        self.priorities = self.priorities.clone().with_multipath(protocol, on);
        for set in [
            &mut self.ipv4.multipath,
            &mut self.ipv6.multipath,
            &mut self.ipx.multipath,
        ] {
            if on {
                set.insert(protocol);
            } else {
                set.remove(&protocol);
            }
        }
    }

    /// The best paths of a network, in key order.
    pub fn best_paths<F: Family>(&self, network: &F::Network) -> Vec<Route<F>> {
        self.table_ref::<F>().paths(*network)
    }

    /// RtmAddRoute.
    pub fn add_route<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        route: &Route<F>,
        ttl: Ttl,
    ) -> Result<Change<F>, RtmError> {
        ttl.validate()?;
        route.data.validate()?;
        let single = self.live(h)?.single_route;
        let priority = self.priorities.get(h.protocol);
        let multipath = self.priorities.multipath(h.protocol);
        let now = self.now;
        let exclude = self.exclude_invalid;
        let mut stored = *route;
        stored.protocol = h.protocol;
        stored.timestamp = now;
        stored.data.stamp_priority(priority);
        let expires = match ttl {
            Ttl::Infinite => None,
            Ttl::Seconds(s) => Some(now.plus_seconds(s as u64)),
        };
        let t = self.table::<F>();
        let n = route.network;
        let before = t.before(n);
        let mut incumbent = t.best.get(&n).copied();
        // The routes this add replaces: the one with its key, or for a
        // single-route client every route of its protocol here (several
        // only after adopting a multi-route predecessor's routes); the
        // lowest-keyed one gives its enabled state.
        let replaced: Vec<RouteKey<F>> = t
            .network_routes(n)
            .filter(|(k, _)| {
                if single {
                    k.protocol == h.protocol
                } else {
                    **k == stored.key()
                }
            })
            .map(|(k, _)| *k)
            .collect();
        let mut enabled = true;
        for (i, k) in replaced.iter().enumerate() {
            let e = t.routes.remove(k).expect("listed");
            if i == 0 {
                enabled = e.enabled;
            }
            if incumbent == Some(*k) {
                incumbent = Some(stored.key());
            }
        }
        t.routes.insert(
            stored.key(),
            ModelEntry {
                route: stored,
                priority,
                expires,
                enabled,
                stale: None,
                multipath,
            },
        );
        t.reselect(n, incumbent, exclude);
        Ok(t.settle(n, before, Notify::AllBut(h.protocol)))
    }

    /// RtmDeleteRoute.
    pub fn delete_route<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        route: &Route<F>,
    ) -> Result<Change<F>, RtmError> {
        let single = self.live(h)?.single_route;
        let exclude = self.exclude_invalid;
        let t = self.table::<F>();
        let n = route.network;
        // A single-route client's delete takes every route of its protocol
        // here (several only after adopting a multi-route predecessor's).
        let keys: Vec<RouteKey<F>> = t
            .network_routes(n)
            .filter(|(k, _)| {
                k.protocol == h.protocol
                    && (single || (k.interface == route.interface && k.next_hop == route.next_hop))
            })
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return Err(RtmError::NoSuchRoute(format!(
                "protocol {} has no such route to {n}",
                h.protocol
            )));
        }
        let before = t.before(n);
        let incumbent = t.best.get(&n).copied();
        for k in &keys {
            t.routes.remove(k);
        }
        t.reselect(n, incumbent, exclude);
        Ok(t.settle(n, before, Notify::AllBut(h.protocol)))
    }

    /// RtmBlockDeleteRoutes.
    pub fn block_delete<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        self.live(h)?;
        let p = h.protocol;
        let c = *criteria;
        let n = self.remove_routes::<F>(
            |e| e.route.protocol == p && c.matches_fields(&e.route),
            || Notify::All,
        );
        if n == 0 {
            return Err(RtmError::NoRoutes(c.to_string()));
        }
        Ok(n)
    }

    /// RtmBlockSetRouteEnable (our semantics).
    pub fn block_set_enable<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        criteria: &Criteria<F>,
        enable: bool,
    ) -> Result<usize, RtmError> {
        self.live(h)?;
        let exclude = self.exclude_invalid;
        let t = self.table::<F>();
        let (mut matched, mut changed) = (0, 0);
        for n in t.networks() {
            let incumbent = t.best.get(&n).copied();
            let hits: Vec<RouteKey<F>> = t
                .network_routes(n)
                .filter(|(k, e)| {
                    k.protocol == h.protocol
                        && criteria.matches_fields(&e.route)
                        && (!criteria.best_only || Some(**k) == incumbent)
                })
                .map(|(k, _)| *k)
                .collect();
            if hits.is_empty() {
                continue;
            }
            let before = t.before(n);
            for k in &hits {
                if let Some(e) = t.routes.get_mut(k)
                    && e.enabled != enable
                {
                    e.enabled = enable;
                    changed += 1;
                }
            }
            matched += hits.len();
            t.reselect(n, incumbent, exclude);
            t.settle(n, before, Notify::All);
        }
        if matched == 0 {
            return Err(RtmError::NoRoutes(criteria.to_string()));
        }
        // Only the routes whose state flipped count (as `Rtm`'s).
        Ok(changed)
    }

    /// RtmBlockConvertRoutesToStatic (our semantics).
    pub fn block_convert_to_static<F: Family>(
        &mut self,
        h: &ModelHandle<F>,
        criteria: &Criteria<F>,
    ) -> Result<usize, RtmError> {
        let single = self.live(h)?.single_route;
        let exclude = self.exclude_invalid;
        let p = h.protocol;
        let priority = self.priorities.get(p);
        let multipath = self.priorities.multipath(p);
        let now = self.now;
        let t = self.table::<F>();
        let mut converted = 0;
        for n in t.networks() {
            let mut incumbent = t.best.get(&n).copied();
            let take: Vec<ModelEntry<F>> = t
                .network_routes(n)
                .filter(|(k, e)| {
                    k.protocol != p
                        && criteria.matches(
                            &e.route,
                            Some(**k) == incumbent,
                            e.enabled,
                            e.stale.is_some(),
                        )
                })
                .map(|(_, e)| *e)
                .collect();
            if take.is_empty() {
                continue;
            }
            let before = t.before(n);
            for old in &take {
                t.routes.remove(&old.route.key());
            }
            for old in &take {
                let mut route = old.route;
                route.protocol = p;
                route.timestamp = now;
                route.data.stamp_priority(priority);
                let key = route.key();
                if incumbent == Some(old.route.key()) {
                    incumbent = Some(key);
                }
                let existing: Vec<RouteKey<F>> = t
                    .network_routes(n)
                    .filter(|(k, _)| if single { k.protocol == p } else { **k == key })
                    .map(|(k, _)| *k)
                    .collect();
                let mut enabled = old.enabled;
                for (i, k) in existing.iter().enumerate() {
                    let e = t.routes.remove(k).expect("listed");
                    if i == 0 {
                        enabled = e.enabled;
                    }
                    if incumbent == Some(*k) {
                        incumbent = Some(key);
                    }
                }
                t.routes.insert(
                    key,
                    ModelEntry {
                        route,
                        priority,
                        expires: None,
                        enabled,
                        stale: None,
                        multipath,
                    },
                );
            }
            converted += take.len();
            t.reselect(n, incumbent, exclude);
            t.settle(n, before, Notify::All);
        }
        if converted == 0 {
            return Err(RtmError::NoRoutes(criteria.to_string()));
        }
        Ok(converted)
    }

    /// RtmDequeueRouteChangeMessage.
    pub fn dequeue<F: Family>(&mut self, h: &ModelHandle<F>) -> Result<Dequeued<F>, RtmError> {
        self.live(h)?;
        let c = self
            .table::<F>()
            .clients
            .get_mut(&h.protocol)
            .expect("live");
        let q = c
            .queue
            .as_mut()
            .ok_or_else(|| RtmError::InvalidHandle("registered without notifications".into()))?;
        let (change, _) = q.pop_front().ok_or(RtmError::NoMessages)?;
        let status = if q.is_empty() {
            DequeueStatus::Last
        } else {
            DequeueStatus::MoreMessages
        };
        Ok(Dequeued { change, status })
    }

    /// Pending messages of a client, oldest first (without dequeueing).
    pub fn pending<F: Family>(&self, h: &ModelHandle<F>) -> Result<Vec<Change<F>>, RtmError> {
        let c = self.live(h)?;
        Ok(c.queue.iter().flatten().map(|m| m.0).collect())
    }

    /// Removes expired routes, then ends the holds that have passed, per
    /// family; returns how many routes went.
    pub fn sweep_expired(&mut self) -> usize {
        let now = self.now;
        let expired = move |e_expires: Option<Timestamp>| e_expires.is_some_and(|t| t <= now);
        let mut n = self.remove_routes::<Ipv4>(|e| expired(e.expires), || Notify::All);
        n += self.expire_holds::<Ipv4>();
        n += self.remove_routes::<Ipv6>(|e| expired(e.expires), || Notify::All);
        n += self.expire_holds::<Ipv6>();
        n += self.remove_routes::<Ipx>(|e| expired(e.expires), || Notify::All);
        n + self.expire_holds::<Ipx>()
    }

    /// RtmIsRoute.
    pub fn is_route<F: Family>(&self, network: &F::Network) -> Option<Route<F>> {
        self.table_ref::<F>().best_image(*network)
    }

    /// RtmGetNetworkCount.
    pub fn network_count<F: Family>(&self) -> usize {
        self.table_ref::<F>().networks().len()
    }

    /// RtmGetRouteAge.
    pub fn route_age<F: Family>(&self, route: &Route<F>) -> Result<u32, RtmError> {
        let ts = route.timestamp;
        if ts.0 == 0 || ts > self.now {
            return Err(RtmError::invalid(format!(
                "route timestamp {ts} is invalid"
            )));
        }
        Ok(((self.now.0 - ts.0) / TICKS_PER_SECOND).min(u32::MAX as u64 - 1) as u32)
    }

    /// All routes an enumeration with `criteria` returns, in key order;
    /// `NoRoutes` if none.
    pub fn enumerate<F: Family>(&self, criteria: &Criteria<F>) -> Result<Vec<Route<F>>, RtmError> {
        let v = self.table_ref::<F>().matching(criteria);
        if v.is_empty() {
            return Err(RtmError::NoRoutes(criteria.to_string()));
        }
        Ok(v)
    }

    /// RtmGetFirstRoute.
    pub fn get_first<F: Family>(&self, criteria: &Criteria<F>) -> Result<Route<F>, RtmError> {
        self.table_ref::<F>()
            .matching(criteria)
            .first()
            .copied()
            .ok_or_else(|| RtmError::NoRoutes(criteria.to_string()))
    }

    /// RtmGetNextRoute.
    pub fn get_next<F: Family>(
        &self,
        criteria: &Criteria<F>,
        after: &Route<F>,
    ) -> Result<Route<F>, RtmError> {
        let k = after.key();
        self.table_ref::<F>()
            .matching(criteria)
            .into_iter()
            .find(|r| r.key() > k)
            .ok_or_else(|| RtmError::NoRoutes(criteria.to_string()))
    }

    /// The forwarding lookup by brute force: the best route of the longest
    /// network containing `addr`; with several best paths (ECMP), the
    /// lowest (next hop, interface, protocol, weight).
    pub fn lookup<F: IpFamily>(&self, addr: F::Addr) -> Option<FibEntry<F>> {
        self.lookup_flow::<F>(addr, 0)
    }

    /// As [`ModelRtm::lookup`], a flow of `hash` over several best paths:
    /// with the paths sorted by (next hop, interface, protocol, weight),
    /// the one whose running sum of weights first exceeds
    /// `hash * total weight / 2^32`.
    pub fn lookup_flow<F: IpFamily>(&self, addr: F::Addr, hash: u32) -> Option<FibEntry<F>> {
        let best = self.lookup_route::<F>(addr)?;
        let paths = self.table_ref::<F>().path_keys(best.network);
        let total: u64 = paths.iter().map(|p| p.3 as u64).sum();
        let point = (hash as u64 * total) >> 32;
        let mut sum = 0u64;
        let pick = paths
            .iter()
            .find(|p| {
                sum += p.3 as u64;
                sum > point
            })
            .or(paths.last())?;
        Some(FibEntry {
            prefix: best.network,
            next_hop: pick.0,
            interface: pick.1,
            protocol: pick.2,
        })
    }

    /// RtmLookupIPDestination by brute force.
    pub fn lookup_route<F: IpFamily>(&self, addr: F::Addr) -> Option<Route<F>> {
        let t = self.table_ref::<F>();
        t.best
            .iter()
            .filter(|(n, _)| n.contains(addr))
            .max_by_key(|(n, _)| n.len())
            .map(|(_, k)| t.routes[k].route)
    }

    /// Every route of the family in key order, with its enabled flag.
    pub fn routes<F: Family>(&self) -> Vec<(Route<F>, bool)> {
        self.table_ref::<F>()
            .routes
            .values()
            .map(|e| (e.route, e.enabled))
            .collect()
    }

    /// Every route of the family in key order, with whether it is stale.
    pub fn stale_marks<F: Family>(&self) -> Vec<(Route<F>, bool)> {
        self.table_ref::<F>()
            .routes
            .values()
            .map(|e| (e.route, e.stale.is_some()))
            .collect()
    }
}

pub mod differential;
