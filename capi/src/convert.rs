//! Route images between the C structures and rtm's typed routes.
//!
//! A C buffer is read only after its pointer was checked non-NULL, and it
//! is read by value (`read_unaligned`: C owes us no alignment); a result is
//! written the same way. Conversions from C check every field the call
//! uses and name the one that is wrong.

use std::net::Ipv4Addr;

use rtm::{
    Criteria, IpRouteData, Ipv4, Ipv4Prefix, Ipx, IpxNetwork, IpxRouteData, MacAddr, ProtocolId,
    Route, RtmError, Timestamp,
};

use crate::types::*;

/// The address a `DWORD` holds in network byte order (module docs of
/// `types`).
pub(crate) fn addr(d: DWORD) -> Ipv4Addr {
    Ipv4Addr::from(d.to_ne_bytes())
}

/// The `DWORD` holding `a` in network byte order.
pub(crate) fn dword(a: Ipv4Addr) -> DWORD {
    DWORD::from_ne_bytes(a.octets())
}

fn filetime(t: Timestamp) -> FILETIME {
    FILETIME {
        dwLowDateTime: t.0 as u32,
        dwHighDateTime: (t.0 >> 32) as u32,
    }
}

pub(crate) fn timestamp(f: FILETIME) -> Timestamp {
    Timestamp(u64::from(f.dwHighDateTime) << 32 | u64::from(f.dwLowDateTime))
}

/// `IP_NETWORK` as a prefix: a contiguous mask and no host bits.
pub(crate) fn ip_network(n: IP_NETWORK, what: &str) -> Result<Ipv4Prefix, RtmError> {
    Ipv4Prefix::from_netmask(addr(n.N_NetNumber), addr(n.N_NetMask))
        .map_err(|e| RtmError::InvalidParameter(format!("{what}: {e}")))
}

/// A prefix as `IP_NETWORK`.
pub(crate) fn ip_network_c(p: Ipv4Prefix) -> IP_NETWORK {
    IP_NETWORK {
        N_NetNumber: dword(p.addr()),
        N_NetMask: dword(p.mask()),
    }
}

/// `IPX_NETWORK`'s number (wire order in memory).
pub(crate) fn ipx_network(n: IPX_NETWORK) -> IpxNetwork {
    IpxNetwork(u32::from_be_bytes(n.N_NetNumber.to_ne_bytes()))
}

fn ipx_network_c(n: IpxNetwork) -> IPX_NETWORK {
    IPX_NETWORK {
        N_NetNumber: DWORD::from_ne_bytes(n.0.to_be_bytes()),
    }
}

/// `r` with the common header's fields (both structures start with it):
/// timestamp, protocol, protocol-specific data.
fn with_header<F: rtm::Family>(
    mut r: Route<F>,
    time: FILETIME,
    protocol: DWORD,
    psd: PROTOCOL_SPECIFIC_DATA,
) -> Route<F> {
    r.timestamp = timestamp(time);
    r.protocol = ProtocolId(protocol);
    r.protocol_data = psd.PSD_Data;
    r
}

/// A C route structure: how to read one from C and write one back.
pub(crate) trait CRoute: Copy {
    /// The rtm family it stands for.
    type F: rtm::Family;
    /// The route it holds. `network` is `None` when the call does not use
    /// the network (criteria without `RTM_ONLY_THIS_NETWORK`): it is then
    /// not checked, and a placeholder stands for it.
    fn to_route(&self, use_network: bool) -> Result<Route<Self::F>, RtmError>;
    /// The structure for a route image.
    fn from_route(r: &Route<Self::F>) -> Self;
}

impl CRoute for RTM_IP_ROUTE {
    type F = Ipv4;
    fn to_route(&self, use_network: bool) -> Result<Route<Ipv4>, RtmError> {
        let network = if use_network {
            ip_network(self.RR_Network, "RR_Network")?
        } else {
            Ipv4Prefix::truncating(Ipv4Addr::UNSPECIFIED, 0)
        };
        let f = self.RR_FamilySpecificData;
        let data = IpRouteData {
            route_type: f.FSD_Type,
            policy: f.FSD_Policy,
            next_hop_as: f.FSD_NextHopAS,
            priority: f.FSD_Priority,
            metric: f.FSD_Metric,
            display_metrics: [
                f.FSD_Metric1,
                f.FSD_Metric2,
                f.FSD_Metric3,
                f.FSD_Metric4,
                f.FSD_Metric5,
            ],
            flags: f.FSD_Flags,
            weight: 1,
        };
        let r = Route::new(
            network,
            addr(self.RR_NextHopAddress.N_NetNumber),
            self.RR_InterfaceID,
            data,
        );
        Ok(with_header(
            r,
            self.RR_TimeStamp,
            self.RR_RoutingProtocol,
            self.RR_ProtocolSpecificData,
        ))
    }

    fn from_route(r: &Route<Ipv4>) -> Self {
        let d = &r.data;
        RTM_IP_ROUTE {
            RR_TimeStamp: filetime(r.timestamp),
            RR_RoutingProtocol: r.protocol.0,
            RR_InterfaceID: r.interface,
            RR_ProtocolSpecificData: PROTOCOL_SPECIFIC_DATA {
                PSD_Data: r.protocol_data,
            },
            RR_Network: ip_network_c(r.network),
            RR_NextHopAddress: IP_NETWORK {
                N_NetNumber: dword(r.next_hop),
                N_NetMask: DWORD::MAX,
            },
            RR_FamilySpecificData: IP_SPECIFIC_DATA {
                FSD_Type: d.route_type,
                FSD_Policy: d.policy,
                FSD_NextHopAS: d.next_hop_as,
                FSD_Priority: d.priority,
                FSD_Metric: d.metric,
                FSD_Metric1: d.display_metrics[0],
                FSD_Metric2: d.display_metrics[1],
                FSD_Metric3: d.display_metrics[2],
                FSD_Metric4: d.display_metrics[3],
                FSD_Metric5: d.display_metrics[4],
                FSD_Flags: d.flags,
            },
        }
    }
}

impl CRoute for RTM_IPX_ROUTE {
    type F = Ipx;
    fn to_route(&self, use_network: bool) -> Result<Route<Ipx>, RtmError> {
        let network = if use_network {
            ipx_network(self.RR_Network)
        } else {
            IpxNetwork(0)
        };
        let f = self.RR_FamilySpecificData;
        let data = IpxRouteData {
            flags: f.FSD_Flags,
            ticks: f.FSD_TickCount,
            hops: f.FSD_HopCount,
        };
        let r = Route::new(
            network,
            MacAddr(self.RR_NextHopAddress.NHA_Mac),
            self.RR_InterfaceID,
            data,
        );
        Ok(with_header(
            r,
            self.RR_TimeStamp,
            self.RR_RoutingProtocol,
            self.RR_ProtocolSpecificData,
        ))
    }

    fn from_route(r: &Route<Ipx>) -> Self {
        RTM_IPX_ROUTE {
            RR_TimeStamp: filetime(r.timestamp),
            RR_RoutingProtocol: r.protocol.0,
            RR_InterfaceID: r.interface,
            RR_ProtocolSpecificData: PROTOCOL_SPECIFIC_DATA {
                PSD_Data: r.protocol_data,
            },
            RR_Network: ipx_network_c(r.network),
            RR_NextHopAddress: IPX_NEXT_HOP_ADDRESS {
                NHA_Mac: r.next_hop.0,
                NHA_Reserved: [0; 2],
            },
            RR_FamilySpecificData: IPX_SPECIFIC_DATA {
                FSD_Flags: r.data.flags,
                FSD_TickCount: r.data.ticks,
                FSD_HopCount: r.data.hops,
            },
        }
    }
}

/// The structure `ptr` points to; `InvalidParameter` naming `what` if NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to `size_of::<T>()` readable bytes (the
/// caller's promise in the header: a buffer of the family's structure).
pub(crate) unsafe fn read<T: Copy>(
    ptr: *const std::ffi::c_void,
    what: &str,
) -> Result<T, RtmError> {
    if ptr.is_null() {
        return Err(RtmError::InvalidParameter(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a readable T there; read
    // unaligned because C owes us no alignment beyond its own types'.
    Ok(unsafe { std::ptr::read_unaligned(ptr.cast::<T>()) })
}

/// Writes `value` to `ptr` unless it is NULL (an optional out buffer).
///
/// # Safety
/// A non-NULL `ptr` must point to `size_of::<T>()` writable bytes.
pub(crate) unsafe fn write_opt<T>(ptr: *mut std::ffi::c_void, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL, and the caller promises a writable T there.
        unsafe { std::ptr::write_unaligned(ptr.cast::<T>(), value) }
    }
}

/// The criteria for `flags` and an optional criteria route from C: the
/// route's network is read only when `RTM_ONLY_THIS_NETWORK` asks for it.
///
/// # Safety
/// As [`read`], for a non-NULL `route`.
pub(crate) unsafe fn criteria<C: CRoute>(
    flags: DWORD,
    route: *const std::ffi::c_void,
) -> Result<Criteria<C::F>, RtmError> {
    let route = if route.is_null() {
        None
    } else {
        // SAFETY: the caller's promise, passed on.
        let c: C = unsafe { read(route, "CriteriaRoute")? };
        Some(c.to_route(flags & RTM_ONLY_THIS_NETWORK != 0)?)
    };
    Criteria::from_flags(flags, route.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches a byte-order slip at the boundary: C's `inet_addr("10.1.2.0")`
    /// must be 10.1.2.0 here, and come back as the same DWORD.
    #[test]
    fn dwords_hold_addresses_in_network_order() {
        let n = IP_NETWORK {
            N_NetNumber: u32::from_ne_bytes([10, 1, 2, 0]),
            N_NetMask: u32::from_ne_bytes([255, 255, 255, 0]),
        };
        let p = ip_network(n, "RR_Network").unwrap();
        assert_eq!(p.to_string(), "10.1.2.0/24");
        assert_eq!(ip_network_c(p), n);
        let x = IPX_NETWORK {
            N_NetNumber: u32::from_ne_bytes([0, 0, 0x12, 0x34]),
        };
        assert_eq!(ipx_network(x), IpxNetwork(0x1234));
        assert_eq!(ipx_network_c(IpxNetwork(0x1234)), x);
    }

    /// Catches a field dropped or swapped on the way through (a C caller
    /// would get back a route other than the one it added).
    #[test]
    #[allow(clippy::field_reassign_with_default)] // field by field reads like C
    fn an_ip_route_survives_the_round_trip() {
        let mut c = RTM_IP_ROUTE::default();
        c.RR_Network = IP_NETWORK {
            N_NetNumber: u32::from_ne_bytes([192, 0, 2, 0]),
            N_NetMask: u32::from_ne_bytes([255, 255, 255, 0]),
        };
        c.RR_NextHopAddress.N_NetNumber = u32::from_ne_bytes([10, 0, 0, 1]);
        c.RR_NextHopAddress.N_NetMask = DWORD::MAX;
        c.RR_InterfaceID = 7;
        c.RR_RoutingProtocol = 8;
        c.RR_TimeStamp = FILETIME {
            dwLowDateTime: 5,
            dwHighDateTime: 9,
        };
        c.RR_ProtocolSpecificData.PSD_Data = [1, 2, 3, 4];
        c.RR_FamilySpecificData = IP_SPECIFIC_DATA {
            FSD_Type: 3,
            FSD_Policy: 1,
            FSD_NextHopAS: 64512,
            FSD_Priority: 10,
            FSD_Metric: 20,
            FSD_Metric1: 21,
            FSD_Metric2: 22,
            FSD_Metric3: 23,
            FSD_Metric4: 24,
            FSD_Metric5: 25,
            FSD_Flags: IP_VALID_ROUTE,
        };
        let r = c.to_route(true).unwrap();
        assert_eq!(RTM_IP_ROUTE::from_route(&r), c);
        let mut x = RTM_IPX_ROUTE::default();
        x.RR_Network.N_NetNumber = 0x0403_0201;
        x.RR_NextHopAddress.NHA_Mac = [1, 2, 3, 4, 5, 6];
        x.RR_FamilySpecificData = IPX_SPECIFIC_DATA {
            FSD_Flags: 1,
            FSD_TickCount: 3,
            FSD_HopCount: 2,
        };
        x.RR_InterfaceID = 4;
        assert_eq!(RTM_IPX_ROUTE::from_route(&x.to_route(true).unwrap()), x);
    }
}
