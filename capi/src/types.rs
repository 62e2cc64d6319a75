//! The C types of `rtm.h`: Win32's scalar names, RTMv1's constants and
//! route structures, laid out as the Windows SDK lays them out.
//!
//! Every structure is `repr(C)` with only 4-byte members (the SDK wraps each
//! field in a union with a `DWORD`), so the sizes are the SDK's:
//! `RTM_IP_ROUTE` 92 bytes, `RTM_IPX_ROUTE` 52. The size tests below pin
//! them, and the C tests check `sizeof` against the same numbers.
//!
//! **Byte order** (spec A1): every address, mask and network number is a
//! `DWORD` whose *memory* holds the value in network byte order, as
//! `struct in_addr`'s `s_addr` does: `inet_addr("10.0.0.0")` or
//! `htonl(0x0A000000)` is network 10.0.0.0 on any host. This is what the
//! SDK header's `IsRouteLoopback` (next hop `== 0x0100007F`) implies on a
//! little-endian Windows host. IPX network numbers follow the same rule
//! (their wire order).

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::c_void;

/// Win32 `DWORD`.
pub type DWORD = u32;
/// Win32 `ULONG` (32 bits, as on Windows).
pub type ULONG = u32;
/// Win32 `BOOL`: 0 is FALSE, anything else TRUE.
pub type BOOL = i32;
/// Win32 `HANDLE`: an opaque value, never dereferenced by rtm.
pub type HANDLE = *mut c_void;
/// Win32 `PVOID`: a route or network buffer whose type the family decides.
pub type PVOID = *mut c_void;

// TRUE and FALSE are defined in the header's preamble (cbindgen.toml)
// under #ifndef: C code may have its own (glib's), and a second
// definition would clash.
/// `FALSE`.
pub(crate) const FALSE: BOOL = 0;
/// `TRUE`.
pub(crate) const TRUE: BOOL = 1;
/// `INFINITE`: a TTL that never expires, or the age of an invalid route.
pub const INFINITE: DWORD = 0xFFFFFFFF;

// ----- result codes (spec section 0) ---------------------------------------

/// Success.
pub const NO_ERROR: DWORD = 0;
/// A handle that is not a live handle of the kind the call takes: NULL,
/// never issued, closed, deregistered, or of the other kind (a client
/// handle passed as an enumeration handle). Also a dequeue by a client
/// registered without a change event.
pub const ERROR_INVALID_HANDLE: DWORD = 6;
/// An allocation failed.
pub const ERROR_NOT_ENOUGH_MEMORY: DWORD = 8;
/// A bad argument: a NULL pointer where one is required, an unknown family,
/// undefined flag bits, a malformed network or route field, a TTL over
/// the limit, a change event that is not a non-blocking eventfd.
pub const ERROR_INVALID_PARAMETER: DWORD = 87;
/// `RtmGetLastErrorMessage`'s buffer cannot hold the message.
pub const ERROR_INSUFFICIENT_BUFFER: DWORD = 122;
/// The (family, protocol) pair is held by a live client.
pub const ERROR_CLIENT_ALREADY_EXISTS: DWORD = 183;
/// A message was dequeued and more remain (a success).
pub const ERROR_MORE_MESSAGES: DWORD = 234;
/// The change queue was empty.
pub const ERROR_NO_MESSAGES: DWORD = 259;
/// The enumeration is exhausted.
pub const ERROR_NO_MORE_ROUTES: DWORD = 259;
/// No route matched the criteria.
pub const ERROR_NO_ROUTES: DWORD = 259;
/// No route has the given key.
pub const ERROR_NO_SUCH_ROUTE: DWORD = 259;
/// Not a shortage here: rtm's own failure, a caught Rust panic (a bug in
/// rtm, reported instead of unwinding into C; the message says where).
pub const ERROR_INTERNAL_ERROR: DWORD = 1359;
/// A transient shortage; retry later.
pub const ERROR_NO_SYSTEM_RESOURCES: DWORD = 1450;

// ----- families, flags ----------------------------------------------------

/// The IPX family.
pub const RTM_PROTOCOL_FAMILY_IPX: DWORD = 0;
/// The IP (IPv4) family.
pub const RTM_PROTOCOL_FAMILY_IP: DWORD = 1;

/// Registration: at most one route per network for this protocol.
pub const RTM_PROTOCOL_SINGLE_ROUTE: DWORD = 0x1;

/// Change flags: the current-best buffer was filled.
pub const RTM_CURRENT_BEST_ROUTE: DWORD = 0x1;
/// Change flags: the previous-best buffer was filled.
pub const RTM_PREVIOUS_BEST_ROUTE: DWORD = 0x2;
/// Change flags: the best route did not change.
pub const RTM_NO_CHANGE: DWORD = 0;
/// Change flags: the first route of a network.
pub const RTM_ROUTE_ADDED: DWORD = RTM_CURRENT_BEST_ROUTE;
/// Change flags: the last route of a network went.
pub const RTM_ROUTE_DELETED: DWORD = RTM_PREVIOUS_BEST_ROUTE;
/// Change flags: the best route changed.
pub const RTM_ROUTE_CHANGED: DWORD = RTM_CURRENT_BEST_ROUTE | RTM_PREVIOUS_BEST_ROUTE;

/// Criteria: the criteria route's network.
pub const RTM_ONLY_THIS_NETWORK: DWORD = 0x1;
/// Criteria: the criteria route's interface.
pub const RTM_ONLY_THIS_INTERFACE: DWORD = 0x2;
/// Criteria: the criteria route's protocol.
pub const RTM_ONLY_THIS_PROTOCOL: DWORD = 0x4;
/// Criteria: only each network's best route.
pub const RTM_ONLY_BEST_ROUTES: DWORD = 0x8;
/// Criteria (rtm's, not in the SDK header): include routes disabled by
/// `RtmBlockSetRouteEnable`, which enumeration otherwise skips.
pub const RTM_INCLUDE_DISABLED_ROUTES: DWORD = 0x100;

/// `FSD_Flags`: the route may be used by others.
pub const IP_VALID_ROUTE: DWORD = 0x1;
/// IPX `FSD_Flags`: the shared network allocated to WAN clients.
pub const IPX_GLOBAL_CLIENT_WAN_ROUTE: DWORD = 0x1;

// ----- structures -----------------------------------------------------------

/// Win32 `FILETIME`: 100 ns units since 1601-01-01 UTC, low word first.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FILETIME {
    /// The low 32 bits.
    pub dwLowDateTime: DWORD,
    /// The high 32 bits.
    pub dwHighDateTime: DWORD,
}

/// `PROTOCOL_SPECIFIC_DATA`: private to the owning protocol.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PROTOCOL_SPECIFIC_DATA {
    /// Stored and returned, never compared.
    pub PSD_Data: [DWORD; 4],
}

/// `IP_NETWORK`: a network number and its mask (network byte order in
/// memory, as `s_addr`). The mask must be contiguous and the number
/// must have no bits outside it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IP_NETWORK {
    /// The network number.
    pub N_NetNumber: DWORD,
    /// The network mask.
    pub N_NetMask: DWORD,
}

/// `IP_NEXT_HOP_ADDRESS`: the next hop in `N_NetNumber`. rtm keeps no
/// next-hop mask (spec A8 leaves it meaningless): `N_NetMask` is ignored on
/// input and returned as 255.255.255.255.
pub type IP_NEXT_HOP_ADDRESS = IP_NETWORK;

/// `IP_SPECIFIC_DATA`: the IP family-specific part of a route.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IP_SPECIFIC_DATA {
    /// RFC 1354 route type: 1 other, 2 invalid, 3 local, 4 remote.
    pub FSD_Type: DWORD,
    /// Multipath policy (RFC 1354 TOS form).
    pub FSD_Policy: DWORD,
    /// AS number of the next hop.
    pub FSD_NextHopAS: DWORD,
    /// Inter-protocol preference, set by the RTM (input ignored).
    pub FSD_Priority: DWORD,
    /// Intra-protocol metric; lower wins.
    pub FSD_Metric: DWORD,
    /// Display-only metric.
    pub FSD_Metric1: DWORD,
    /// Display-only metric.
    pub FSD_Metric2: DWORD,
    /// Display-only metric.
    pub FSD_Metric3: DWORD,
    /// Display-only metric.
    pub FSD_Metric4: DWORD,
    /// Display-only metric.
    pub FSD_Metric5: DWORD,
    /// 0 or `IP_VALID_ROUTE`; a route without it is stored but never best.
    pub FSD_Flags: DWORD,
}

/// `RTM_IP_ROUTE` (92 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RTM_IP_ROUTE {
    /// When the route was added or last updated (set by the RTM).
    pub RR_TimeStamp: FILETIME,
    /// The owning protocol (set by the RTM from the client handle).
    pub RR_RoutingProtocol: DWORD,
    /// The interface the route was learned on.
    pub RR_InterfaceID: DWORD,
    /// Private to the owning protocol.
    pub RR_ProtocolSpecificData: PROTOCOL_SPECIFIC_DATA,
    /// The destination network.
    pub RR_Network: IP_NETWORK,
    /// The next-hop router.
    pub RR_NextHopAddress: IP_NEXT_HOP_ADDRESS,
    /// The family-specific data.
    pub RR_FamilySpecificData: IP_SPECIFIC_DATA,
}

/// `IPX_NETWORK`: an IPX network number (wire order in memory).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IPX_NETWORK {
    /// The network number.
    pub N_NetNumber: DWORD,
}

/// `IPX_NEXT_HOP_ADDRESS`: the next hop's MAC address. The SDK pads it to a
/// `DWORD` boundary through a union; here the two padding bytes are named
/// (ignored on input, returned as zero), which gives the same 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IPX_NEXT_HOP_ADDRESS {
    /// The MAC address.
    pub NHA_Mac: [u8; 6],
    /// Padding to the SDK's layout.
    pub NHA_Reserved: [u8; 2],
}

/// `IPX_SPECIFIC_DATA`: the IPX family-specific part of a route.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IPX_SPECIFIC_DATA {
    /// 0 or `IPX_GLOBAL_CLIENT_WAN_ROUTE`.
    pub FSD_Flags: DWORD,
    /// Delay in ticks: the primary metric.
    pub FSD_TickCount: u16,
    /// Hop count: the secondary metric.
    pub FSD_HopCount: u16,
}

/// `RTM_IPX_ROUTE` (52 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RTM_IPX_ROUTE {
    /// When the route was added or last updated (set by the RTM).
    pub RR_TimeStamp: FILETIME,
    /// The owning protocol (set by the RTM from the client handle).
    pub RR_RoutingProtocol: DWORD,
    /// The interface the route was learned on.
    pub RR_InterfaceID: DWORD,
    /// Private to the owning protocol.
    pub RR_ProtocolSpecificData: PROTOCOL_SPECIFIC_DATA,
    /// The destination network.
    pub RR_Network: IPX_NETWORK,
    /// The next-hop router.
    pub RR_NextHopAddress: IPX_NEXT_HOP_ADDRESS,
    /// The family-specific data.
    pub RR_FamilySpecificData: IPX_SPECIFIC_DATA,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    /// Catches a layout that drifted from the SDK's (a reordered field, a
    /// padding change): C code compiled against rtm.h would read garbage.
    #[test]
    fn route_structures_have_the_sdk_layout() {
        assert_eq!(size_of::<RTM_IP_ROUTE>(), 92);
        assert_eq!(size_of::<RTM_IPX_ROUTE>(), 52);
        assert_eq!(align_of::<RTM_IP_ROUTE>(), 4);
        assert_eq!(offset_of!(RTM_IP_ROUTE, RR_RoutingProtocol), 8);
        assert_eq!(offset_of!(RTM_IP_ROUTE, RR_Network), 32);
        assert_eq!(offset_of!(RTM_IP_ROUTE, RR_NextHopAddress), 40);
        assert_eq!(offset_of!(RTM_IP_ROUTE, RR_FamilySpecificData), 48);
        assert_eq!(offset_of!(RTM_IPX_ROUTE, RR_NextHopAddress), 36);
        assert_eq!(offset_of!(RTM_IPX_ROUTE, RR_FamilySpecificData), 44);
    }
}
