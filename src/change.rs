//! Best-route changes: the outcome of a table operation and the change
//! messages queued for clients.

use crate::engine_family::Family;
use crate::route::Route;

/// `RTM_NO_CHANGE`.
pub const RTM_NO_CHANGE: u32 = 0;
/// `RTM_CURRENT_BEST_ROUTE` = `RTM_ROUTE_ADDED`.
pub const RTM_ROUTE_ADDED: u32 = 0x1;
/// `RTM_PREVIOUS_BEST_ROUTE` = `RTM_ROUTE_DELETED`.
pub const RTM_ROUTE_DELETED: u32 = 0x2;
/// `RTM_ROUTE_CHANGED`: both images are given.
pub const RTM_ROUTE_CHANGED: u32 = 0x3;

/// How a network's best route changed: RTMv1's flags with the route images.
///
/// `add_route`, `delete_route` return one; change queues hold the ones that
/// are not [`Change::NoChange`]. The images are copies taken at the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<F: Family> {
    /// No significant field of the best route changed (`RTM_NO_CHANGE`).
    NoChange,
    /// The network got its first (best) route (`RTM_ROUTE_ADDED`).
    Added {
        /// The new best route.
        current: Route<F>,
    },
    /// The network lost its last (best) route (`RTM_ROUTE_DELETED`).
    Deleted {
        /// The best route before the change.
        previous: Route<F>,
    },
    /// The best route changed in a significant field (`RTM_ROUTE_CHANGED`).
    Changed {
        /// The best route before the change.
        previous: Route<F>,
        /// The best route after it.
        current: Route<F>,
    },
}

impl<F: Family> Change<F> {
    /// The change between two best-route states of one network.
    pub fn between(before: Option<&Route<F>>, after: Option<&Route<F>>) -> Change<F> {
        match (before, after) {
            (None, None) => Change::NoChange,
            (None, Some(c)) => Change::Added { current: *c },
            (Some(p), None) => Change::Deleted { previous: *p },
            (Some(p), Some(c)) if p.same_significant_fields(c) => Change::NoChange,
            (Some(p), Some(c)) => Change::Changed {
                previous: *p,
                current: *c,
            },
        }
    }

    /// RTMv1's flags value: 0, 1 (added), 2 (deleted) or 3 (changed).
    pub fn flags(&self) -> u32 {
        match self {
            Change::NoChange => RTM_NO_CHANGE,
            Change::Added { .. } => RTM_ROUTE_ADDED,
            Change::Deleted { .. } => RTM_ROUTE_DELETED,
            Change::Changed { .. } => RTM_ROUTE_CHANGED,
        }
    }

    /// The best route after the change, if one was reported.
    pub fn current(&self) -> Option<&Route<F>> {
        match self {
            Change::Added { current } | Change::Changed { current, .. } => Some(current),
            _ => None,
        }
    }

    /// The best route before the change, if one was reported.
    pub fn previous(&self) -> Option<&Route<F>> {
        match self {
            Change::Deleted { previous } | Change::Changed { previous, .. } => Some(previous),
            _ => None,
        }
    }

    /// Whether this is the message an ECMP client gets when its network's
    /// set of best paths changed while the best route stayed
    /// ([`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)):
    /// a [`Change::Changed`] whose two images are the same route. RTMv1
    /// never sends one (its `Changed` always differs in a significant
    /// field), and clients of protocols that did not opt in never get one.
    pub fn is_paths_change(&self) -> bool {
        matches!(self, Change::Changed { previous, current } if previous == current)
    }

    /// Whether this is [`Change::NoChange`].
    pub fn is_no_change(&self) -> bool {
        matches!(self, Change::NoChange)
    }

    /// The network the change is about, if any.
    pub fn network(&self) -> Option<F::Network> {
        self.current().or(self.previous()).map(|r| r.network)
    }
}
