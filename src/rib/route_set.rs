//! A destination's route set and best-route selection (spec 3.1).
//!
//! A route set is an immutable value: writers build a new one and publish it
//! whole, so readers see either the old set with its best route or the new
//! one, never a mix.

use std::num::NonZeroU64;

use crate::clock::Timestamp;
use crate::family::Family;
use crate::route::{Route, RouteData, RouteKey};

/// When a route ages out, in 8 bytes where `Option<Timestamp>` takes 16
/// (a full table stores a million): a timestamp is never zero (FILETIME,
/// and every `Clock` here starts above it), so zero means "never". A zero
/// deadline from a clock that does return zero is kept as one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Expiry(Option<NonZeroU64>);

impl Expiry {
    /// `Ttl::Infinite`.
    pub(crate) const NEVER: Expiry = Expiry(None);

    /// Ages out at `t`.
    pub(crate) fn at(t: Timestamp) -> Expiry {
        Expiry(NonZeroU64::new(t.0.max(1)))
    }

    /// The deadline, if any.
    pub(crate) fn get(self) -> Option<Timestamp> {
        self.0.map(|n| Timestamp(n.get()))
    }

    /// Whether the deadline has come at `now`.
    pub(crate) fn is_due(self, now: Timestamp) -> bool {
        self.get().is_some_and(|t| t <= now)
    }
}

/// One stored route with the RTM's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<F: Family> {
    pub(crate) route: Route<F>,
    /// The owning protocol's priority when the route was last written.
    pub(crate) priority: u32,
    /// When the route ages out, if it does.
    pub(crate) expires: Expiry,
    /// `false` after `block_set_enable(false)`: kept, but never best.
    pub(crate) enabled: bool,
}

impl<F: Family> Entry<F> {
    /// The selection rank: (protocol priority, metric), lower wins.
    pub(crate) fn rank(&self) -> (u32, <F::Data as RouteData>::Metric) {
        (self.priority, self.route.data.metric())
    }

    pub(crate) fn is_candidate(&self, exclude_invalid: bool) -> bool {
        self.enabled && (!exclude_invalid || self.route.data.is_valid())
    }
}

/// The routes to one network, sorted by key, with the best one marked.
#[derive(Debug, Clone)]
pub(crate) struct RouteSet<F: Family> {
    pub(crate) entries: Vec<Entry<F>>,
    pub(crate) best: Option<usize>,
}

impl<F: Family> RouteSet<F> {
    pub(crate) fn best_route(&self) -> Option<&Route<F>> {
        self.best.map(|i| &self.entries[i].route)
    }
}

/// The index of the best entry among `entries` (sorted by key).
///
/// Candidates are the enabled routes (and, with `exclude_invalid`, only
/// those with the valid flag: spec A6). The lowest (priority, metric) wins;
/// on a tie the incumbent stays best (A4), and with no incumbent among the
/// winners the lowest key wins.
pub(crate) fn select_best<F: Family>(
    entries: &[Entry<F>],
    incumbent: Option<RouteKey<F>>,
    exclude_invalid: bool,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, e) in entries.iter().enumerate() {
        if !e.is_candidate(exclude_invalid) {
            continue;
        }
        match best {
            None => best = Some(i),
            Some(b) => {
                let (rb, re) = (entries[b].rank(), e.rank());
                if re < rb || (re == rb && Some(e.route.key()) == incumbent) {
                    best = Some(i);
                }
            }
        }
    }
    best
}

/// A route set being rewritten by one operation.
pub(crate) struct Working<F: Family> {
    pub(crate) entries: Vec<Entry<F>>,
    /// The key of the best route before the operation, followed through key
    /// changes of that same entry (single-route updates, conversion).
    pub(crate) incumbent: Option<RouteKey<F>>,
    pub(crate) modified: bool,
}

impl<F: Family> Working<F> {
    /// Adds or updates the entry whose key is `key_of_existing` matches;
    /// returns whether an existing entry was replaced.
    pub(crate) fn upsert(&mut self, entry: Entry<F>, existing: impl Fn(&Entry<F>) -> bool) -> bool {
        self.modified = true;
        match self.entries.iter().position(existing) {
            Some(i) => {
                let old = self.entries[i];
                if Some(old.route.key()) == self.incumbent {
                    self.incumbent = Some(entry.route.key());
                }
                self.entries[i] = Entry {
                    enabled: old.enabled,
                    ..entry
                };
                true
            }
            None => {
                self.entries.push(entry);
                false
            }
        }
    }

    /// Removes every entry matching `pred`; returns how many.
    pub(crate) fn remove_where(&mut self, pred: impl Fn(&Entry<F>) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !pred(e));
        let n = before - self.entries.len();
        if n > 0 {
            self.modified = true;
        }
        n
    }

    /// Whether the entry at `i` (current order) was the best before.
    pub(crate) fn was_best(&self, e: &Entry<F>) -> bool {
        self.incumbent == Some(e.route.key())
    }
}
