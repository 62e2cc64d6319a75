//! Routes: the RTMv1 route structures as typed Rust values.

use std::fmt;
use std::hash::Hash;

use crate::clock::Timestamp;
use crate::error::RtmError;
use crate::family::AddressFamily;

/// A routing protocol id (`PROTO_IP_RIP`, `PROTO_IP_OSPF`, ...): opaque to the RTM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtocolId(pub u32);

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The largest finite TTL RTMv1 accepts: 2,147,483 s (about 24.8 days, the
/// most milliseconds a signed 32-bit value holds).
pub const MAX_TTL_SECONDS: u32 = 2_147_483;
/// RTMv1's `INFINITE` (0xFFFFFFFF), as a TTL or an age.
pub const INFINITE: u32 = u32::MAX;

/// How long a route lives without a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// Until explicitly deleted (`INFINITE`).
    Infinite,
    /// This many seconds after the add; at most [`MAX_TTL_SECONDS`], which
    /// `add_route` checks. Zero expires at the next aging sweep.
    Seconds(u32),
}

impl Ttl {
    /// The TTL for a raw RTMv1 value (`0xFFFFFFFF` = infinite).
    pub fn from_raw(raw: u32) -> Ttl {
        if raw == INFINITE {
            Ttl::Infinite
        } else {
            Ttl::Seconds(raw)
        }
    }

    /// Rejects finite values over [`MAX_TTL_SECONDS`].
    pub fn validate(self) -> Result<(), RtmError> {
        match self {
            Ttl::Seconds(s) if s > MAX_TTL_SECONDS => Err(RtmError::invalid(format!(
                "TTL {s} s exceeds the limit of {MAX_TTL_SECONDS} s (use Ttl::Infinite for no expiry)"
            ))),
            _ => Ok(()),
        }
    }
}

/// Family-specific route data: what best-route selection reads.
pub trait RouteData: Copy + Eq + Hash + fmt::Debug + Default + Send + Sync + 'static {
    /// The metric part of the rank, compared after the protocol priority;
    /// lower is better.
    type Metric: Ord + Copy + fmt::Debug;
    /// This route's metric.
    fn metric(&self) -> Self::Metric;
    /// Whether the route may be chosen as best (IP: the `IP_VALID_ROUTE` flag).
    fn is_valid(&self) -> bool;
    /// Records the RTM-assigned protocol priority in the data (IP: `FSD_Priority`).
    fn stamp_priority(&mut self, priority: u32);
    /// Rejects field values the RTM cannot accept.
    fn validate(&self) -> Result<(), RtmError>;
    /// The route's ECMP weight (IP: [`IpRouteData::weight`]); 1 where a
    /// family has none.
    fn weight(&self) -> u16 {
        1
    }
}

/// `IP_VALID_ROUTE`: the route may be used by others.
pub const IP_VALID_ROUTE: u32 = 0x1;
/// `IPX_GLOBAL_CLIENT_WAN_ROUTE`: the shared WAN-client network.
pub const IPX_GLOBAL_CLIENT_WAN_ROUTE: u32 = 0x1;

/// `IP_SPECIFIC_DATA`: the IPv4/IPv6 family-specific part of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRouteData {
    /// RFC 1354 route type: 1 other, 2 invalid (still selectable), 3 local, 4 remote.
    pub route_type: u32,
    /// Multipath policy (RFC 1354 TOS form).
    pub policy: u32,
    /// AS number of the next hop.
    pub next_hop_as: u32,
    /// Inter-protocol preference; set by the RTM from its priority table,
    /// whatever the caller put here. Lower wins.
    pub priority: u32,
    /// Intra-protocol metric set by the protocol. Lower wins.
    pub metric: u32,
    /// `FSD_Metric1..5`: for display only, never used in selection.
    pub display_metrics: [u32; 5],
    /// `FSD_Flags`: only [`IP_VALID_ROUTE`] is defined.
    pub flags: u32,
    /// Not in RTMv1: the route's share of the flows when it is one of
    /// several equal-cost best routes (weighted ECMP, see
    /// [`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)),
    /// 1 to 65,535; 1 by default. Unused otherwise.
    pub weight: u16,
}

impl Default for IpRouteData {
    /// A valid remote route with metric 0.
    fn default() -> Self {
        IpRouteData {
            route_type: 4,
            policy: 0,
            next_hop_as: 0,
            priority: 0,
            metric: 0,
            display_metrics: [0; 5],
            flags: IP_VALID_ROUTE,
            weight: 1,
        }
    }
}

impl IpRouteData {
    /// A valid remote route with this metric.
    pub fn with_metric(metric: u32) -> Self {
        IpRouteData {
            metric,
            ..IpRouteData::default()
        }
    }
}

impl RouteData for IpRouteData {
    type Metric = u32;
    fn metric(&self) -> u32 {
        self.metric
    }
    fn is_valid(&self) -> bool {
        self.flags & IP_VALID_ROUTE != 0
    }
    fn stamp_priority(&mut self, priority: u32) {
        self.priority = priority;
    }
    fn weight(&self) -> u16 {
        self.weight
    }
    fn validate(&self) -> Result<(), RtmError> {
        if !(1..=4).contains(&self.route_type) {
            return Err(RtmError::invalid(format!(
                "route type {} is not an RFC 1354 type (1 other, 2 invalid, 3 local, 4 remote)",
                self.route_type
            )));
        }
        if self.flags & !IP_VALID_ROUTE != 0 {
            return Err(RtmError::invalid(format!(
                "route flags {:#x} have undefined bits (only IP_VALID_ROUTE = 0x1 exists)",
                self.flags
            )));
        }
        if self.weight == 0 {
            return Err(RtmError::invalid(
                "ECMP weight 0: a route's weight is 1 to 65535 (1 by default)",
            ));
        }
        Ok(())
    }
}

/// `IPX_SPECIFIC_DATA`: the IPX family-specific part of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IpxRouteData {
    /// 0 or [`IPX_GLOBAL_CLIENT_WAN_ROUTE`].
    pub flags: u32,
    /// Delay to the destination in ticks: the primary metric.
    pub ticks: u16,
    /// Hop count: the secondary metric.
    pub hops: u16,
}

impl RouteData for IpxRouteData {
    type Metric = (u16, u16);
    fn metric(&self) -> (u16, u16) {
        (self.ticks, self.hops)
    }
    fn is_valid(&self) -> bool {
        true
    }
    fn stamp_priority(&mut self, _priority: u32) {}
    fn validate(&self) -> Result<(), RtmError> {
        if self.flags & !IPX_GLOBAL_CLIENT_WAN_ROUTE != 0 {
            return Err(RtmError::invalid(format!(
                "IPX route flags {:#x} have undefined bits (only IPX_GLOBAL_CLIENT_WAN_ROUTE = 0x1 exists)",
                self.flags
            )));
        }
        Ok(())
    }
}

/// A route: RTMv1's `RTM_IP_ROUTE` / `RTM_IPX_ROUTE`.
///
/// On input to `add_route`, `protocol` and `timestamp` are ignored (the RTM
/// takes them from the client handle and the clock) and, for IP, so is
/// `data.priority`. Route images returned by the RTM carry the stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route<F: AddressFamily> {
    /// The destination network.
    pub network: F::Network,
    /// The next-hop router.
    pub next_hop: F::NextHop,
    /// Index of the interface the route was learned on.
    pub interface: u32,
    /// The owning protocol (set by the RTM).
    pub protocol: ProtocolId,
    /// When the route was added or last updated (set by the RTM).
    pub timestamp: Timestamp,
    /// Private to the owning protocol; stored and returned, never compared.
    pub protocol_data: [u32; 4],
    /// The family-specific data.
    pub data: F::Data,
}

impl<F: AddressFamily> Route<F> {
    /// A route to `network` via `next_hop` on `interface` with this data.
    pub fn new(network: F::Network, next_hop: F::NextHop, interface: u32, data: F::Data) -> Self {
        Route {
            network,
            next_hop,
            interface,
            protocol: ProtocolId::default(),
            timestamp: Timestamp::default(),
            protocol_data: [0; 4],
            data,
        }
    }

    /// The route's key in RTMv1's total order: (network, protocol, interface, next hop).
    pub fn key(&self) -> RouteKey<F> {
        RouteKey {
            network: self.network,
            protocol: self.protocol,
            interface: self.interface,
            next_hop: self.next_hop,
        }
    }

    /// Whether the significant fields (protocol, interface, next hop and the
    /// family data) equal `other`'s: a change in any of them on a best route
    /// is what RTMv1 reports.
    pub fn same_significant_fields(&self, other: &Route<F>) -> bool {
        self.network == other.network
            && self.protocol == other.protocol
            && self.interface == other.interface
            && self.next_hop == other.next_hop
            && self.data == other.data
    }
}

/// One update of a batch given to [`Rtm::update_routes`](crate::Rtm::update_routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteUpdate<F: AddressFamily> {
    /// `add_route(route, ttl)`.
    Add {
        /// The route to add or update.
        route: Route<F>,
        /// Its time to live.
        ttl: Ttl,
    },
    /// `delete_route(route)`: the route with this key (for a single-route
    /// client, the client's route to this network).
    Delete(Route<F>),
}

/// A route's identity and position in RTMv1's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey<F: AddressFamily> {
    /// First: the network.
    pub network: F::Network,
    /// Second: the owning protocol.
    pub protocol: ProtocolId,
    /// Third: the interface.
    pub interface: u32,
    /// Fourth: the next hop.
    pub next_hop: F::NextHop,
}
