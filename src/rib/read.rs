//! The read path: lock-free point queries and ordered walks over the
//! destination index (see the module docs of `rib` for what they
//! guarantee).

use super::*;

/// What the table says of a stored route besides its fields: whether it
/// is its network's best route, enabled (`block_set_enable`) and stale
/// (graceful restart: [`Rtm::mark_stale`](crate::Rtm::mark_stale)).
/// Enumerations give them with each route
/// ([`Enumeration::next_marked`](crate::Enumeration::next_marked)),
/// [`Rtm::route_marks`](crate::Rtm::route_marks) for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteMarks {
    /// The network's best route.
    pub best: bool,
    /// Not disabled by `block_set_enable(false)`.
    pub enabled: bool,
    /// Marked stale and not refreshed since.
    pub stale: bool,
}

impl<F: Family> Table<F> {
    pub(crate) fn network_count(&self) -> usize {
        // Relaxed: see `mutate`.
        self.networks.load(Ordering::Relaxed)
    }

    /// `network`'s published route set, if it has routes.
    pub(crate) fn published<'g>(
        &self,
        network: &F::Network,
        guard: &'g epoch::Guard,
    ) -> Option<&'g RouteSet<F>> {
        self.index.get(network, guard)
    }

    pub(crate) fn is_route(&self, network: &F::Network) -> Option<Route<F>> {
        let guard = epoch::pin();
        let set = self.published(network, &guard)?;
        let s = &set.stored()[set.best()?];
        Some(s.entry(*network, self.attrs.get(s.attrs())).route)
    }

    /// The best paths of `network` (ECMP; see
    /// [`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)),
    /// in key order: the best route alone unless it is a multipath route.
    pub(crate) fn best_paths(&self, network: &F::Network) -> Vec<Route<F>> {
        let guard = epoch::pin();
        let Some(set) = self.published(network, &guard) else {
            return Vec::new();
        };
        let routes = self.decode(*network, set);
        routes
            .best_paths(self.shared.exclude_invalid)
            .into_iter()
            .map(|i| routes.entries[i].route)
            .collect()
    }

    /// Calls `f` with each destination's routes, in network order, from
    /// `start`, until it returns `Some`.
    pub(crate) fn scan<R>(
        &self,
        start: Bound<F::Network>,
        mut f: impl FnMut(F::Network, &Routes<F>) -> Option<R>,
    ) -> Option<R> {
        let guard = epoch::pin();
        self.index.scan(start.as_ref(), &guard, |network, set| {
            f(*network, &self.decode(*network, set))
        })
    }

    /// The matching routes of one destination, in key order, with keys
    /// strictly after `after`.
    pub(crate) fn matching(
        set: &Routes<F>,
        criteria: &Criteria<F>,
        after: Option<&RouteKey<F>>,
    ) -> impl Iterator<Item = Route<F>> {
        Self::matching_marked(set, criteria, after).map(|(r, _)| r)
    }

    /// [`Table::matching`] with each route's marks.
    pub(crate) fn matching_marked(
        set: &Routes<F>,
        criteria: &Criteria<F>,
        after: Option<&RouteKey<F>>,
    ) -> impl Iterator<Item = (Route<F>, RouteMarks)> {
        set.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e, Self::marks(set, i)))
            .filter(move |(e, m)| {
                criteria.matches(&e.route, m.best, m.enabled, m.stale)
                    && after.is_none_or(|a| e.route.key() > *a)
            })
            .map(|(e, m)| (e.route, m))
    }

    fn marks(set: &Routes<F>, i: usize) -> RouteMarks {
        let e = &set.entries[i];
        RouteMarks {
            best: set.best == Some(i),
            enabled: e.enabled,
            stale: e.stale.is_stale(),
        }
    }

    /// The marks of the stored route with `key`, if there is one.
    pub(crate) fn route_marks(&self, key: &RouteKey<F>) -> Option<RouteMarks> {
        let guard = epoch::pin();
        let set = self.decode(key.network, self.published(&key.network, &guard)?);
        let i = set.entries.iter().position(|e| e.route.key() == *key)?;
        Some(Self::marks(&set, i))
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
}
