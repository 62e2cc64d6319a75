//! The calls that read the table and need no registration: RtmIsRoute,
//! the network count, route age, both enumeration styles and the
//! longest-prefix-match lookup.

#![allow(non_snake_case)]

use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};

use rtm::{Ipv4, Route, RtmError};

use crate::convert::{CRoute, addr, criteria, ip_network, ipx_network, read, timestamp, write_opt};
use crate::family::CFamily;
use crate::handles::{Cursor, add_cursor, cursor, remove_cursor, rtm};
use crate::outcome::{status, value};
use crate::types::*;

/// Whether a network has a route. `Network` is an `IP_NETWORK` or
/// `IPX_NETWORK` by family; `BestRoute`, if not NULL, receives its best
/// route. FALSE with last error `NO_ERROR` means no route; FALSE with
/// `ERROR_INVALID_PARAMETER` a bad family or network.
///
/// # Safety
/// `Network` NULL or a readable network structure of the family;
/// `BestRoute` NULL or a writable route structure of the family.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmIsRoute(
    ProtocolFamily: DWORD,
    Network: PVOID,
    BestRoute: PVOID,
) -> BOOL {
    value(FALSE, || {
        let found = match CFamily::from_raw(ProtocolFamily)? {
            CFamily::Ip => {
                // SAFETY: the header's contract for Network.
                let n: IP_NETWORK = unsafe { read(Network, "Network")? };
                rtm()
                    .is_route::<Ipv4>(&ip_network(n, "Network")?)
                    // SAFETY: the caller's promise for BestRoute.
                    .map(|r| unsafe { write_opt(BestRoute, RTM_IP_ROUTE::from_route(&r)) })
            }
            CFamily::Ipx => {
                // SAFETY: as above.
                let n: IPX_NETWORK = unsafe { read(Network, "Network")? };
                rtm()
                    .is_route::<rtm::Ipx>(&ipx_network(n))
                    // SAFETY: as above.
                    .map(|r| unsafe { write_opt(BestRoute, RTM_IPX_ROUTE::from_route(&r)) })
            }
        };
        Ok(if found.is_some() { TRUE } else { FALSE })
    })
}

/// The number of networks with at least one route in the family's table.
/// 0 with last error `NO_ERROR` is an empty table; 0 with
/// `ERROR_INVALID_PARAMETER` a bad family.
#[unsafe(no_mangle)]
pub extern "C" fn RtmGetNetworkCount(ProtocolFamily: DWORD) -> ULONG {
    value(0, || {
        let n = match CFamily::from_raw(ProtocolFamily)? {
            CFamily::Ip => rtm().network_count::<Ipv4>(),
            CFamily::Ipx => rtm().network_count::<rtm::Ipx>(),
        };
        Ok(ULONG::try_from(n).unwrap_or(ULONG::MAX))
    })
}

/// The whole seconds since the route image's `RR_TimeStamp` (either
/// family: the timestamp starts both structures). `INFINITE` with last
/// error `ERROR_INVALID_PARAMETER` for a NULL route or a timestamp that is
/// zero or later than now. The table is not consulted.
///
/// # Safety
/// `Route` NULL or at least a readable `FILETIME`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmGetRouteAge(Route: PVOID) -> ULONG {
    value(INFINITE, || {
        // SAFETY: both route structures begin with the FILETIME.
        let t: FILETIME = unsafe { read(Route, "Route")? };
        // The age is a function of the timestamp alone: any family's image
        // carrying it will do.
        let mut r = Route::<Ipv4>::new(
            rtm::Prefix::truncating(Ipv4Addr::UNSPECIFIED, 0),
            Ipv4Addr::UNSPECIFIED,
            0,
            Default::default(),
        );
        r.timestamp = timestamp(t);
        rtm().route_age(&r)
    })
}

/// Opens a cursor over the family's routes matching `EnumerationFlags`
/// (`RTM_ONLY_THIS_NETWORK`, `_INTERFACE`, `_PROTOCOL` with the fields of
/// `CriteriaRoute`; `RTM_ONLY_BEST_ROUTES`; rtm's
/// `RTM_INCLUDE_DISABLED_ROUTES`). `CriteriaRoute` may be NULL when the
/// flags name no field. NULL with last error `ERROR_NO_ROUTES` when
/// nothing matches, `ERROR_INVALID_PARAMETER` for a bad family, flag or
/// criteria. The cursor tolerates concurrent changes and returns each
/// route at most once.
///
/// # Safety
/// `CriteriaRoute` NULL or a readable route structure of the family.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmCreateEnumerationHandle(
    ProtocolFamily: DWORD,
    EnumerationFlags: DWORD,
    CriteriaRoute: PVOID,
) -> HANDLE {
    value(std::ptr::null_mut(), || {
        let c = match CFamily::from_raw(ProtocolFamily)? {
            // SAFETY: the caller's promise for the criteria route.
            CFamily::Ip => Cursor::Ip(rtm().enumerate(&unsafe {
                criteria::<RTM_IP_ROUTE>(EnumerationFlags, CriteriaRoute)?
            })?),
            // SAFETY: as above.
            CFamily::Ipx => Cursor::Ipx(rtm().enumerate(&unsafe {
                criteria::<RTM_IPX_ROUTE>(EnumerationFlags, CriteriaRoute)?
            })?),
        };
        Ok(add_cursor(c))
    })
}

/// The cursor's next route into `Route` (the family's structure).
/// `ERROR_NO_MORE_ROUTES` once it is exhausted (and on every later call),
/// `ERROR_INVALID_HANDLE` for a closed or foreign handle.
///
/// # Safety
/// `Route` NULL or a writable route structure of the cursor's family.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmEnumerateGetNextRoute(
    EnumerationHandle: HANDLE,
    Route: PVOID,
) -> DWORD {
    status(|| {
        let c = cursor(EnumerationHandle)?;
        if Route.is_null() {
            return Err(RtmError::InvalidParameter("Route is NULL".into()));
        }
        let mut c = c.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *c {
            // SAFETY: non-NULL; the caller's promise of a writable buffer.
            Cursor::Ip(e) => unsafe {
                write_opt(Route, RTM_IP_ROUTE::from_route(&e.next_route()?))
            },
            // SAFETY: as above.
            Cursor::Ipx(e) => unsafe {
                write_opt(Route, RTM_IPX_ROUTE::from_route(&e.next_route()?))
            },
        }
        Ok(NO_ERROR)
    })
}

/// Closes a cursor (before its end is allowed). Closing it again, or any
/// later use, is `ERROR_INVALID_HANDLE`.
#[unsafe(no_mangle)]
pub extern "C" fn RtmCloseEnumerationHandle(EnumerationHandle: HANDLE) -> DWORD {
    status(|| {
        let c: std::sync::Arc<Mutex<Cursor>> = remove_cursor(EnumerationHandle)?;
        match &mut *c.lock().unwrap_or_else(PoisonError::into_inner) {
            Cursor::Ip(e) => e.close()?,
            Cursor::Ipx(e) => e.close()?,
        }
        Ok(NO_ERROR)
    })
}

/// GetFirst (`next` false) or GetNext for the family `family` names.
///
/// # Safety
/// As [`RtmGetFirstRoute`].
unsafe fn walk(family: DWORD, flags: DWORD, route: PVOID, next: bool) -> DWORD {
    status(|| match CFamily::from_raw(family)? {
        // SAFETY: passed on.
        CFamily::Ip => unsafe { first_or_next::<RTM_IP_ROUTE>(flags, route, next) },
        // SAFETY: passed on.
        CFamily::Ipx => unsafe { first_or_next::<RTM_IPX_ROUTE>(flags, route, next) },
    })
}

/// # Safety
/// `route` NULL or a readable and writable `C`.
unsafe fn first_or_next<C: CRoute>(
    flags: DWORD,
    route: PVOID,
    next: bool,
) -> Result<DWORD, RtmError> {
    // SAFETY: the header's contract: Route is the family's structure.
    let c: C = unsafe { read(route, "Route")? };
    // SAFETY: as above.
    let criteria = unsafe { criteria::<C>(flags, route)? };
    let found = if next {
        // The position is the route's whole key, network included.
        rtm().get_next(&criteria, &c.to_route(true)?)?
    } else {
        rtm().get_first(&criteria)?
    };
    // SAFETY: non-NULL (read above); the caller's promise of writability.
    unsafe { write_opt(route, C::from_route(&found)) };
    Ok(NO_ERROR)
}

/// The lowest matching route in the order (network, protocol, interface,
/// next hop). `Route` carries the criteria fields the flags name and
/// receives the route. `ERROR_NO_ROUTES` if nothing matches.
///
/// # Safety
/// `Route` NULL or a readable and writable route structure of the family.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmGetFirstRoute(
    ProtocolFamily: DWORD,
    EnumerationFlags: DWORD,
    Route: PVOID,
) -> DWORD {
    // SAFETY: passed on.
    unsafe { walk(ProtocolFamily, EnumerationFlags, Route, false) }
}

/// The first matching route whose key is strictly after `Route`'s (which
/// need not exist), into `Route`; `Route` also carries the criteria
/// fields. `ERROR_NO_ROUTES` when there is none. Stateless: safe to
/// interleave with changes.
///
/// # Safety
/// As [`RtmGetFirstRoute`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmGetNextRoute(
    ProtocolFamily: DWORD,
    EnumerationFlags: DWORD,
    Route: PVOID,
) -> DWORD {
    // SAFETY: passed on.
    unsafe { walk(ProtocolFamily, EnumerationFlags, Route, true) }
}

/// Undocumented in RTMv1 (declared in rtm.h): the longest-prefix match of
/// the IPv4 address `dwDestAddr` (network byte order in memory, as
/// `s_addr`). TRUE with the best route of the most specific matching
/// network in `*pRtmIpRoute`; FALSE with last error `NO_ERROR` if no
/// network matches, `ERROR_INVALID_PARAMETER` if `pRtmIpRoute` is NULL.
/// The forwarding path: it never waits for a writer, not even for a
/// deregistration of a million routes.
///
/// # Safety
/// `pRtmIpRoute` NULL or a writable `RTM_IP_ROUTE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmLookupIPDestination(
    dwDestAddr: DWORD,
    pRtmIpRoute: *mut RTM_IP_ROUTE,
) -> BOOL {
    value(FALSE, || {
        if pRtmIpRoute.is_null() {
            return Err(RtmError::InvalidParameter("pRtmIpRoute is NULL".into()));
        }
        Ok(match rtm().lookup_route::<Ipv4>(addr(dwDestAddr)) {
            Some(r) => {
                // SAFETY: non-NULL; the caller's promise of writability.
                unsafe { write_opt(pRtmIpRoute.cast(), RTM_IP_ROUTE::from_route(&r)) };
                TRUE
            }
            None => FALSE,
        })
    })
}
