//! Address families: one generic core, three instantiations.
//!
//! [`AddressFamily`] ties a network type, a next-hop type and the
//! family-specific route data together: the vocabulary every layer shares.
//! This module depends on no layer above it; the engine's
//! [`Family`](crate::Family), which also names each family's forwarding
//! table, is `crate::engine_family`'s.
//! [`Ipv4`] and [`Ipx`] are RTMv1's two families; [`Ipv6`] is our extension
//! with IPv4's semantics on 128-bit prefixes.

use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::RtmError;
use crate::prefix::{IpAddress, IpxNetwork, MacAddr, Prefix};
use crate::route::{IpRouteData, IpxRouteData, RouteData};

/// The numeric protocol-family identifiers of RTMv1, plus our IPv6.
///
/// ```
/// use rtm::FamilyId;
/// assert_eq!(FamilyId::from_raw(1).unwrap(), FamilyId::Ipv4);
/// assert_eq!(FamilyId::from_raw(2).unwrap_err().code(), 87);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FamilyId {
    /// `RTM_PROTOCOL_FAMILY_IPX` = 0.
    Ipx,
    /// `RTM_PROTOCOL_FAMILY_IP` = 1.
    Ipv4,
    /// IPv6: not in RTMv1; numbered 23 (Windows' `AF_INET6`) so that no RTMv1
    /// value, nor the spec's invalid example 2, is taken.
    Ipv6,
}

impl FamilyId {
    /// The family for a raw RTMv1 family number; anything but 0, 1 and 23 is
    /// `InvalidParameter`.
    pub fn from_raw(raw: u32) -> Result<FamilyId, RtmError> {
        match raw {
            0 => Ok(FamilyId::Ipx),
            1 => Ok(FamilyId::Ipv4),
            23 => Ok(FamilyId::Ipv6),
            other => Err(RtmError::invalid(format!(
                "protocol family {other} is not supported (0 = IPX, 1 = IPv4, 23 = IPv6)"
            ))),
        }
    }

    /// The raw family number.
    pub fn raw(self) -> u32 {
        match self {
            FamilyId::Ipx => 0,
            FamilyId::Ipv4 => 1,
            FamilyId::Ipv6 => 23,
        }
    }
}

/// Runs `$body` with `$F` bound to the family type the [`FamilyId`] `$id`
/// names: one dispatch from a runtime family to the generic code.
macro_rules! for_family_id {
    ($id:expr, |$F:ident| $body:expr) => {
        match $id {
            $crate::family::FamilyId::Ipv4 => {
                type $F = $crate::family::Ipv4;
                $body
            }
            $crate::family::FamilyId::Ipv6 => {
                type $F = $crate::family::Ipv6;
                $body
            }
            $crate::family::FamilyId::Ipx => {
                type $F = $crate::family::Ipx;
                $body
            }
        }
    };
}
pub(crate) use for_family_id;

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FamilyId::Ipx => "IPX",
            FamilyId::Ipv4 => "IPv4",
            FamilyId::Ipv6 => "IPv6",
        })
    }
}

impl FromStr for FamilyId {
    type Err = RtmError;
    /// Parses `ipv4`, `ipv6` or `ipx` (any case).
    fn from_str(s: &str) -> Result<Self, RtmError> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" | "ip" => Ok(FamilyId::Ipv4),
            "ipv6" => Ok(FamilyId::Ipv6),
            "ipx" => Ok(FamilyId::Ipx),
            _ => Err(RtmError::invalid(format!(
                "family {s:?}: expected ipv4, ipv6 or ipx"
            ))),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Ipv4 {}
    impl Sealed for super::Ipv6 {}
    impl Sealed for super::Ipx {}
}

/// An address family: the types its routes are made of (the vocabulary;
/// the engine works over [`Family`](crate::Family), which adds the
/// family's forwarding table).
///
/// Sealed: implemented by [`Ipv4`], [`Ipv6`] and [`Ipx`] only.
pub trait AddressFamily:
    sealed::Sealed + Copy + Eq + Ord + Hash + fmt::Debug + Default + Send + Sync + 'static
{
    /// The family's identifier.
    const ID: FamilyId;
    /// A destination network.
    type Network: Copy
        + Ord
        + Hash
        + fmt::Debug
        + fmt::Display
        + FromStr<Err = RtmError>
        + Send
        + Sync
        + 'static;
    /// A next-hop address.
    type NextHop: Copy + Ord + Hash + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static;
    /// The family-specific route data (`IP_SPECIFIC_DATA`, `IPX_SPECIFIC_DATA`).
    type Data: RouteData;
    /// A next hop that is no address (what unused entries of the RIB's
    /// attribute table hold).
    #[doc(hidden)]
    const UNSPECIFIED_NEXT_HOP: Self::NextHop;
    /// The width of a network's address in bits (the RIB's index splits
    /// its blocks no deeper).
    #[doc(hidden)]
    const NETWORK_WIDTH: u32;
    /// A network's address bits, most significant first, left-aligned in
    /// 128 bits: the RIB's index orders and blocks networks by them, which
    /// agrees with `Ord` (address first, then length).
    #[doc(hidden)]
    fn network_path(network: &Self::Network) -> u128;
}

/// The IP families' vocabulary: networks are prefixes of an address type
/// (the engine works over [`IpFamily`](crate::IpFamily), whose forwarding
/// table answers longest-prefix-match lookups).
pub trait IpAddressFamily:
    AddressFamily<Network = Prefix<Self::Addr>, NextHop = Self::Addr, Data = IpRouteData>
{
    /// The address type.
    type Addr: IpAddress;
}

/// IPv4 (`RTM_PROTOCOL_FAMILY_IP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipv4;
/// IPv6 (our extension of the IP family to 128-bit prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipv6;
/// IPX (`RTM_PROTOCOL_FAMILY_IPX`): 32-bit network numbers, MAC next hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipx;

impl AddressFamily for Ipv4 {
    const ID: FamilyId = FamilyId::Ipv4;
    type Network = Prefix<Ipv4Addr>;
    type NextHop = Ipv4Addr;
    type Data = IpRouteData;
    const UNSPECIFIED_NEXT_HOP: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const NETWORK_WIDTH: u32 = 32;
    #[inline(always)]
    fn network_path(network: &Self::Network) -> u128 {
        (u32::from(network.addr()) as u128) << 96
    }
}
impl IpAddressFamily for Ipv4 {
    type Addr = Ipv4Addr;
}

impl AddressFamily for Ipv6 {
    const ID: FamilyId = FamilyId::Ipv6;
    type Network = Prefix<Ipv6Addr>;
    type NextHop = Ipv6Addr;
    type Data = IpRouteData;
    const UNSPECIFIED_NEXT_HOP: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    const NETWORK_WIDTH: u32 = 128;
    #[inline(always)]
    fn network_path(network: &Self::Network) -> u128 {
        u128::from(network.addr())
    }
}
impl IpAddressFamily for Ipv6 {
    type Addr = Ipv6Addr;
}

impl AddressFamily for Ipx {
    const ID: FamilyId = FamilyId::Ipx;
    type Network = IpxNetwork;
    type NextHop = MacAddr;
    type Data = IpxRouteData;
    const UNSPECIFIED_NEXT_HOP: MacAddr = MacAddr([0; 6]);
    const NETWORK_WIDTH: u32 = 32;
    #[inline(always)]
    fn network_path(network: &Self::Network) -> u128 {
        (network.0 as u128) << 96
    }
}
