//! The administrator's protocol priority table (lower wins).

use std::collections::{HashMap, HashSet};

use crate::route::ProtocolId;

/// Priority of a protocol absent from the table, unless configured otherwise.
pub const DEFAULT_PRIORITY: u32 = 100;

/// Protocol priorities shared by all families. Immutable: the table publishes
/// a new one atomically on every change, so writers read a consistent table.
#[derive(Debug, Clone)]
pub struct PriorityTable {
    priorities: HashMap<ProtocolId, u32>,
    default: u32,
    /// Protocols whose stale routes lose to fresh routes of equal priority.
    stale_yielding: HashSet<ProtocolId>,
    /// Protocols whose equal-cost routes all forward (ECMP).
    multipath: HashSet<ProtocolId>,
}

impl Default for PriorityTable {
    fn default() -> Self {
        PriorityTable {
            priorities: HashMap::new(),
            default: DEFAULT_PRIORITY,
            stale_yielding: HashSet::new(),
            multipath: HashSet::new(),
        }
    }
}

impl PriorityTable {
    /// An empty table whose default is [`DEFAULT_PRIORITY`].
    pub fn new() -> Self {
        PriorityTable::default()
    }

    /// Sets a protocol's priority.
    pub fn with(mut self, protocol: ProtocolId, priority: u32) -> Self {
        self.priorities.insert(protocol, priority);
        self
    }

    /// Sets the priority of unlisted protocols.
    pub fn with_default(mut self, priority: u32) -> Self {
        self.default = priority;
        self
    }

    /// A protocol's priority.
    pub fn get(&self, protocol: ProtocolId) -> u32 {
        self.priorities
            .get(&protocol)
            .copied()
            .unwrap_or(self.default)
    }

    /// The priority of unlisted protocols.
    pub fn default_priority(&self) -> u32 {
        self.default
    }

    /// Whether `protocol`'s stale routes (graceful restart: see
    /// [`Rtm::mark_stale`](crate::Rtm::mark_stale)) lose to every fresh
    /// route of equal priority, whatever the metrics: the usual RIB
    /// preference, under which a route some other protocol of the same
    /// priority still vouches for wins over one kept only for a restart.
    /// Off by default: a stale route competes on its metric, so marking
    /// changes no best route and no forwarding entry. Routes take the
    /// setting when they are marked.
    pub fn with_stale_yielding(mut self, protocol: ProtocolId, yields: bool) -> Self {
        if yields {
            self.stale_yielding.insert(protocol);
        } else {
            self.stale_yielding.remove(&protocol);
        }
        self
    }

    /// Whether `protocol`'s stale routes yield to fresh ones of equal priority.
    pub fn stale_yields(&self, protocol: ProtocolId) -> bool {
        self.stale_yielding.contains(&protocol)
    }

    /// Opts `protocol` in to ECMP (off by default: RTMv1's single best
    /// route). A network whose best route is such a protocol's has as its
    /// *best paths* every candidate route of equal rank (protocol priority,
    /// stale preference, metric) whose protocol opted in too, at most
    /// [`MAX_PATHS`](crate::MAX_PATHS) in key order with the best route
    /// always among them: the FIB forwards on all of them as one interned
    /// next-hop group ([`LpmFib::lookup_flow`](crate::LpmFib::lookup_flow)),
    /// each by its [`IpRouteData::weight`](crate::IpRouteData::weight),
    /// and the protocol's client is told when that set changes while the
    /// best route stays (a change message whose two images are equal:
    /// [`Change::is_paths_change`](crate::Change::is_paths_change)). The
    /// single best route and every RTMv1 message and answer stay exactly
    /// as without ECMP. Routes take the setting when they are written.
    pub fn with_multipath(mut self, protocol: ProtocolId, on: bool) -> Self {
        if on {
            self.multipath.insert(protocol);
        } else {
            self.multipath.remove(&protocol);
        }
        self
    }

    /// Whether `protocol` opted in to ECMP.
    pub fn multipath(&self, protocol: ProtocolId) -> bool {
        self.multipath.contains(&protocol)
    }
}
