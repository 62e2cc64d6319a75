//! Selection criteria for enumeration and block operations
//! (RTMv1's `RTM_ONLY_*` flags plus the matching fields of a criteria route).

use std::fmt;

use crate::engine_family::Family;
use crate::error::RtmError;
use crate::route::{ProtocolId, Route};

/// `RTM_ONLY_THIS_NETWORK`.
pub const RTM_ONLY_THIS_NETWORK: u32 = 0x1;
/// `RTM_ONLY_THIS_INTERFACE`.
pub const RTM_ONLY_THIS_INTERFACE: u32 = 0x2;
/// `RTM_ONLY_THIS_PROTOCOL`.
pub const RTM_ONLY_THIS_PROTOCOL: u32 = 0x4;
/// `RTM_ONLY_BEST_ROUTES`.
pub const RTM_ONLY_BEST_ROUTES: u32 = 0x8;
/// Include disabled routes (see `block_set_enable`). Not in RTMv1's header:
/// our bit, chosen outside 0x1..0x8.
pub const RTM_INCLUDE_DISABLED_ROUTES: u32 = 0x100;
/// Only routes marked stale by a graceful restart (see
/// [`Rtm::mark_stale`](crate::Rtm::mark_stale)). Our bit, as
/// [`RTM_INCLUDE_DISABLED_ROUTES`].
pub const RTM_ONLY_STALE_ROUTES: u32 = 0x1_0000;
/// Only routes not marked stale. Our bit; with [`RTM_ONLY_STALE_ROUTES`]
/// it is `InvalidParameter`.
pub const RTM_ONLY_FRESH_ROUTES: u32 = 0x2_0000;
/// `RTM_PROTOCOL_SINGLE_ROUTE` (registration flag).
pub const RTM_PROTOCOL_SINGLE_ROUTE: u32 = 0x1;

const KNOWN_ENUM_FLAGS: u32 = RTM_ONLY_THIS_NETWORK
    | RTM_ONLY_THIS_INTERFACE
    | RTM_ONLY_THIS_PROTOCOL
    | RTM_ONLY_BEST_ROUTES
    | RTM_INCLUDE_DISABLED_ROUTES
    | RTM_ONLY_STALE_ROUTES
    | RTM_ONLY_FRESH_ROUTES;

/// Which routes an enumeration or block operation selects; the filters
/// combine by intersection. The default selects every enabled route.
///
/// ```
/// use rtm::{Criteria, Ipv4, ProtocolId};
/// let c = Criteria::<Ipv4>::all()
///     .network("10.0.0.0/8".parse().unwrap())
///     .protocol(ProtocolId(8))
///     .best_only();
/// assert_eq!(c.flags(), 0x1 | 0x4 | 0x8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Criteria<F: Family> {
    /// Only routes to exactly this network.
    pub network: Option<F::Network>,
    /// Only routes on this interface.
    pub interface: Option<u32>,
    /// Only routes owned by this protocol.
    pub protocol: Option<ProtocolId>,
    /// Only the network's current best route.
    pub best_only: bool,
    /// Also routes disabled by `block_set_enable(false)`.
    pub include_disabled: bool,
    /// `Some(true)`: only stale routes (graceful restart); `Some(false)`:
    /// only fresh ones; `None`: both.
    pub stale: Option<bool>,
}

impl<F: Family> Default for Criteria<F> {
    fn default() -> Self {
        Criteria {
            network: None,
            interface: None,
            protocol: None,
            best_only: false,
            include_disabled: false,
            stale: None,
        }
    }
}

impl<F: Family> Criteria<F> {
    /// Every enabled route of the family (flags 0).
    pub fn all() -> Self {
        Criteria::default()
    }

    /// Restricts to one network.
    pub fn network(mut self, network: F::Network) -> Self {
        self.network = Some(network);
        self
    }

    /// Restricts to one interface.
    pub fn interface(mut self, interface: u32) -> Self {
        self.interface = Some(interface);
        self
    }

    /// Restricts to one protocol.
    pub fn protocol(mut self, protocol: ProtocolId) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Restricts to best routes.
    pub fn best_only(mut self) -> Self {
        self.best_only = true;
        self
    }

    /// Includes disabled routes.
    pub fn include_disabled(mut self) -> Self {
        self.include_disabled = true;
        self
    }

    /// Restricts to routes marked stale and not refreshed since.
    pub fn stale_only(mut self) -> Self {
        self.stale = Some(true);
        self
    }

    /// Restricts to routes not marked stale.
    pub fn fresh_only(mut self) -> Self {
        self.stale = Some(false);
        self
    }

    /// The criteria for RTMv1 flags and a criteria route supplying the
    /// fields the flags name. Unknown bits, or a flag needing a field with no
    /// criteria route, are `InvalidParameter`.
    pub fn from_flags(flags: u32, criteria: Option<&Route<F>>) -> Result<Self, RtmError> {
        if flags & !KNOWN_ENUM_FLAGS != 0 {
            return Err(RtmError::invalid(format!(
                "enumeration flags {flags:#x} have undefined bits {:#x}",
                flags & !KNOWN_ENUM_FLAGS
            )));
        }
        if flags & RTM_ONLY_STALE_ROUTES != 0 && flags & RTM_ONLY_FRESH_ROUTES != 0 {
            return Err(RtmError::invalid(format!(
                "enumeration flags {flags:#x} ask for only stale (0x10000) and only fresh (0x20000) routes at once"
            )));
        }
        let needs =
            flags & (RTM_ONLY_THIS_NETWORK | RTM_ONLY_THIS_INTERFACE | RTM_ONLY_THIS_PROTOCOL);
        let route = match (needs, criteria) {
            (0, _) => None,
            (_, Some(r)) => Some(r),
            (_, None) => {
                return Err(RtmError::invalid(format!(
                    "enumeration flags {flags:#x} name criteria fields but no criteria route was given"
                )));
            }
        };
        Ok(Criteria {
            network: route
                .filter(|_| flags & RTM_ONLY_THIS_NETWORK != 0)
                .map(|r| r.network),
            interface: route
                .filter(|_| flags & RTM_ONLY_THIS_INTERFACE != 0)
                .map(|r| r.interface),
            protocol: route
                .filter(|_| flags & RTM_ONLY_THIS_PROTOCOL != 0)
                .map(|r| r.protocol),
            best_only: flags & RTM_ONLY_BEST_ROUTES != 0,
            include_disabled: flags & RTM_INCLUDE_DISABLED_ROUTES != 0,
            stale: if flags & RTM_ONLY_STALE_ROUTES != 0 {
                Some(true)
            } else if flags & RTM_ONLY_FRESH_ROUTES != 0 {
                Some(false)
            } else {
                None
            },
        })
    }

    /// The RTMv1 flags these criteria correspond to.
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.network.is_some() {
            f |= RTM_ONLY_THIS_NETWORK;
        }
        if self.interface.is_some() {
            f |= RTM_ONLY_THIS_INTERFACE;
        }
        if self.protocol.is_some() {
            f |= RTM_ONLY_THIS_PROTOCOL;
        }
        if self.best_only {
            f |= RTM_ONLY_BEST_ROUTES;
        }
        if self.include_disabled {
            f |= RTM_INCLUDE_DISABLED_ROUTES;
        }
        match self.stale {
            Some(true) => f |= RTM_ONLY_STALE_ROUTES,
            Some(false) => f |= RTM_ONLY_FRESH_ROUTES,
            None => {}
        }
        f
    }

    /// Whether a route matches on its own fields (network, interface,
    /// protocol); the best/enabled conditions are checked by the caller that
    /// knows them.
    pub(crate) fn matches_fields(&self, route: &Route<F>) -> bool {
        self.network.is_none_or(|n| n == route.network)
            && self.interface.is_none_or(|i| i == route.interface)
            && self.protocol.is_none_or(|p| p == route.protocol)
    }

    /// Whether a route with the given state matches entirely.
    pub(crate) fn matches(
        &self,
        route: &Route<F>,
        is_best: bool,
        enabled: bool,
        stale: bool,
    ) -> bool {
        self.matches_fields(route)
            && (!self.best_only || is_best)
            && (enabled || self.include_disabled)
            && self.stale.is_none_or(|s| s == stale)
    }
}

impl<F: Family> fmt::Display for Criteria<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.network {
            parts.push(format!("network {n}"));
        }
        if let Some(i) = self.interface {
            parts.push(format!("interface {i}"));
        }
        if let Some(p) = self.protocol {
            parts.push(format!("protocol {p}"));
        }
        if self.best_only {
            parts.push("best only".into());
        }
        if self.include_disabled {
            parts.push("including disabled".into());
        }
        match self.stale {
            Some(true) => parts.push("stale only".into()),
            Some(false) => parts.push("fresh only".into()),
            None => {}
        }
        if parts.is_empty() {
            write!(f, "all {} routes", F::ID)
        } else {
            write!(f, "{} routes with {}", F::ID, parts.join(", "))
        }
    }
}
