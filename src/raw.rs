//! RTMv1's calls as its C API has them: the protocol family a number, the
//! options a flag word, a network as the bytes of `IP_NETWORK` or
//! `IPX_NETWORK`.
//!
//! The typed API cannot be handed an unknown family or an undefined flag:
//! the family is a type parameter and the options are values. These entry
//! points are where such inputs arrive (a C caller, a configuration file, a
//! wire protocol). Each checks everything it was given before it touches the
//! table, so a refused call is `InvalidParameter` and changes nothing, then
//! runs the typed call. They are the calls behind RTMv1's behaviours 5, 6,
//! 65, 81, 83 and 85.
//!
//! ```
//! use rtm::{AnyClient, ProtocolId, Rtm};
//! let rtm = Rtm::new();
//! assert_eq!(rtm.register_raw(2, ProtocolId(8), 0, true).unwrap_err().code(), 87);
//! let rip = rtm.register_raw(1, ProtocolId(8), 0x1, true).unwrap();
//! assert!(matches!(&rip, AnyClient::Ipv4(c) if c.single_route()));
//! // 10.0.0.0/8 as IP_NETWORK: number, then mask, both in network order.
//! let net = [10, 0, 0, 0, 255, 0, 0, 0];
//! assert_eq!(rtm.is_route_raw(1, &net).unwrap(), None);
//! assert_eq!(rtm.is_route_raw(7, &net).unwrap_err().code(), 87);
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::client::{ClientHandle, RegisterOptions};
use crate::criteria::Criteria;
use crate::engine_family::Family;
use crate::enumerate::Enumeration;
use crate::error::RtmError;
use crate::family::{FamilyId, Ipv4, Ipv6, Ipx, for_family_id};
use crate::prefix::{IpxNetwork, Prefix};
use crate::route::{ProtocolId, Route};
use crate::rtm::Rtm;

/// A client handle of any family, as [`Rtm::register_raw`] returns it.
#[derive(Debug, Clone)]
pub enum AnyClient {
    /// An IPv4 client.
    Ipv4(ClientHandle<Ipv4>),
    /// An IPv6 client.
    Ipv6(ClientHandle<Ipv6>),
    /// An IPX client.
    Ipx(ClientHandle<Ipx>),
}

/// A route image of any family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyRoute {
    /// An IPv4 route.
    Ipv4(Route<Ipv4>),
    /// An IPv6 route.
    Ipv6(Route<Ipv6>),
    /// An IPX route.
    Ipx(Route<Ipx>),
}

/// An enumeration handle of any family, as [`Rtm::enumerate_raw`] returns it.
#[derive(Debug)]
pub enum AnyEnumeration {
    /// Over IPv4 routes.
    Ipv4(Enumeration<Ipv4>),
    /// Over IPv6 routes.
    Ipv6(Enumeration<Ipv6>),
    /// Over IPX routes.
    Ipx(Enumeration<Ipx>),
}

impl AnyClient {
    /// The client's family.
    pub fn family(&self) -> FamilyId {
        match self {
            AnyClient::Ipv4(_) => FamilyId::Ipv4,
            AnyClient::Ipv6(_) => FamilyId::Ipv6,
            AnyClient::Ipx(_) => FamilyId::Ipx,
        }
    }
}

impl AnyRoute {
    /// The route's family.
    pub fn family(&self) -> FamilyId {
        match self {
            AnyRoute::Ipv4(_) => FamilyId::Ipv4,
            AnyRoute::Ipv6(_) => FamilyId::Ipv6,
            AnyRoute::Ipx(_) => FamilyId::Ipx,
        }
    }
}

impl AnyEnumeration {
    /// The next route (RtmEnumerateGetNextRoute); see
    /// [`Enumeration::next_route`].
    pub fn next_route(&mut self) -> Result<AnyRoute, RtmError> {
        Ok(match self {
            AnyEnumeration::Ipv4(e) => AnyRoute::Ipv4(e.next_route()?),
            AnyEnumeration::Ipv6(e) => AnyRoute::Ipv6(e.next_route()?),
            AnyEnumeration::Ipx(e) => AnyRoute::Ipx(e.next_route()?),
        })
    }

    /// Closes the handle (RtmCloseEnumerationHandle); see
    /// [`Enumeration::close`].
    pub fn close(&mut self) -> Result<(), RtmError> {
        match self {
            AnyEnumeration::Ipv4(e) => e.close(),
            AnyEnumeration::Ipv6(e) => e.close(),
            AnyEnumeration::Ipx(e) => e.close(),
        }
    }
}

/// What a family needs to be reached from the raw calls: its variants of
/// the `Any*` enums and its network's byte layout.
trait RawFamily: Family {
    fn client(client: ClientHandle<Self>) -> AnyClient;
    fn route(route: Route<Self>) -> AnyRoute;
    fn enumeration(e: Enumeration<Self>) -> AnyEnumeration;
    /// The route if it is of this family.
    fn route_of(route: &AnyRoute) -> Option<&Route<Self>>;
    /// The network from its C layout; a wrong length or a bad mask is
    /// `InvalidParameter`.
    fn network(bytes: &[u8]) -> Result<Self::Network, RtmError>;
}

/// `bytes` as an `N`-byte array, or `InvalidParameter` naming the layout.
fn exactly<const N: usize>(bytes: &[u8], layout: &str) -> Result<[u8; N], RtmError> {
    bytes.try_into().map_err(|_| {
        RtmError::invalid(format!(
            "a network given as {} bytes; {layout} is {N}",
            bytes.len()
        ))
    })
}

/// `RawFamily`'s methods that pick the family's variant of each `Any*`.
macro_rules! any_variants {
    ($F:ident) => {
        fn client(client: ClientHandle<Self>) -> AnyClient {
            AnyClient::$F(client)
        }
        fn route(route: Route<Self>) -> AnyRoute {
            AnyRoute::$F(route)
        }
        fn enumeration(e: Enumeration<Self>) -> AnyEnumeration {
            AnyEnumeration::$F(e)
        }
        fn route_of(route: &AnyRoute) -> Option<&Route<Self>> {
            match route {
                AnyRoute::$F(r) => Some(r),
                _ => None,
            }
        }
    };
}

impl RawFamily for Ipv4 {
    any_variants!(Ipv4);
    fn network(bytes: &[u8]) -> Result<Self::Network, RtmError> {
        let b: [u8; 8] = exactly(bytes, "IP_NETWORK (number, mask, network order)")?;
        let addr = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let mask = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        Prefix::from_netmask(addr, mask)
    }
}

impl RawFamily for Ipv6 {
    any_variants!(Ipv6);
    fn network(bytes: &[u8]) -> Result<Self::Network, RtmError> {
        let b: [u8; 17] = exactly(bytes, "an IPv6 network (16 address bytes, prefix length)")?;
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&b[..16]);
        Prefix::new(Ipv6Addr::from(addr), b[16])
    }
}

impl RawFamily for Ipx {
    any_variants!(Ipx);
    fn network(bytes: &[u8]) -> Result<Self::Network, RtmError> {
        let b: [u8; 4] = exactly(bytes, "IPX_NETWORK (network order)")?;
        Ok(IpxNetwork(u32::from_be_bytes(b)))
    }
}

/// The criteria for `flags` and a criteria route of family `F`: a route of
/// another family is `InvalidParameter`, then as [`Criteria::from_flags`].
fn criteria<F: RawFamily>(flags: u32, route: Option<&AnyRoute>) -> Result<Criteria<F>, RtmError> {
    let route = match route {
        None => None,
        Some(any) => Some(F::route_of(any).ok_or_else(|| {
            RtmError::invalid(format!(
                "the criteria route is {}, the call is for {}",
                any.family(),
                F::ID
            ))
        })?),
    };
    Criteria::from_flags(flags, route)
}

impl Rtm {
    /// RtmRegisterClient with a raw family number and flag word. An unknown
    /// family or any flag but `RTM_PROTOCOL_SINGLE_ROUTE` (0x1) is
    /// `InvalidParameter`, and nothing is registered. `notify` stands for
    /// the event handle (RTMv1 notifies a client that passed one).
    pub fn register_raw(
        &self,
        family: u32,
        protocol: ProtocolId,
        flags: u32,
        notify: bool,
    ) -> Result<AnyClient, RtmError> {
        let family = FamilyId::from_raw(family)?;
        let options = RegisterOptions::from_flags(flags, notify)?;
        for_family_id!(family, |F| Ok(F::client(
            self.register::<F>(protocol, options)?
        )))
    }

    /// RtmBlockDeleteRoutes with a raw flag word and criteria route. Unknown
    /// flag bits, a flag naming a field with no criteria route, or a
    /// criteria route of another family than the client's is
    /// `InvalidParameter`, and nothing is deleted.
    pub fn block_delete_raw(
        &self,
        client: &AnyClient,
        flags: u32,
        criteria_route: Option<&AnyRoute>,
    ) -> Result<usize, RtmError> {
        match client {
            AnyClient::Ipv4(c) => self.block_delete(c, &criteria::<Ipv4>(flags, criteria_route)?),
            AnyClient::Ipv6(c) => self.block_delete(c, &criteria::<Ipv6>(flags, criteria_route)?),
            AnyClient::Ipx(c) => self.block_delete(c, &criteria::<Ipx>(flags, criteria_route)?),
        }
    }

    /// RtmIsRoute with a raw family number and the network in its C layout:
    /// IPv4 8 bytes (`IP_NETWORK`: number, mask, network order), IPv6 17
    /// (address, prefix length), IPX 4 (`IPX_NETWORK`, network order).
    /// `Ok(Some(best))` if the network has routes, `Ok(None)` if not (FALSE
    /// with `NO_ERROR`), `InvalidParameter` for an unknown family or a
    /// malformed network (FALSE with `ERROR_INVALID_PARAMETER`).
    pub fn is_route_raw(&self, family: u32, network: &[u8]) -> Result<Option<AnyRoute>, RtmError> {
        let family = FamilyId::from_raw(family)?;
        for_family_id!(family, |F| {
            let network = F::network(network)?;
            Ok(self.is_route::<F>(&network).map(F::route))
        })
    }

    /// RtmGetNetworkCount for a raw family number: `InvalidParameter` for an
    /// unknown family.
    pub fn network_count_raw(&self, family: u32) -> Result<usize, RtmError> {
        let family = FamilyId::from_raw(family)?;
        for_family_id!(family, |F| Ok(self.network_count::<F>()))
    }

    /// RtmCreateEnumerationHandle with a raw family number, flag word and
    /// criteria route. An unknown family, unknown flag bits, a flag naming a
    /// field with no criteria route, or a criteria route of another family
    /// is `InvalidParameter`; criteria matching nothing is `NoRoutes`.
    pub fn enumerate_raw(
        &self,
        family: u32,
        flags: u32,
        criteria_route: Option<&AnyRoute>,
    ) -> Result<AnyEnumeration, RtmError> {
        let family = FamilyId::from_raw(family)?;
        for_family_id!(family, |F| {
            let criteria = criteria::<F>(flags, criteria_route)?;
            Ok(F::enumeration(self.enumerate::<F>(&criteria)?))
        })
    }
}
