//! The calls that take a client handle: registration, route writes, block
//! operations and the change queue.
//!
//! Each call checks every argument it reads before it touches the table
//! (a NULL required pointer, a dead handle, a malformed route is an error
//! and the table is unchanged), then runs the typed rtm call.

#![allow(non_snake_case)]

use std::sync::Arc;

use rtm::{ClientHandle, Family, ProtocolId, RegisterOptions, RtmError, Ttl};

use crate::convert::{CRoute, criteria, read, write_opt};
use crate::event::EventFd;
use crate::family::CFamily;
use crate::handles::{Client, add_client, client, remove_client, rtm};
use crate::outcome::{status, value};
use crate::types::*;

fn null(what: &str) -> RtmError {
    RtmError::InvalidParameter(format!("{what} is NULL"))
}

/// Registers a routing protocol as a client of a family's table.
///
/// `ChangeEvent` is NULL (no change messages; dequeue calls then fail with
/// `ERROR_INVALID_HANDLE`) or `RTM_EVENT_FD(fd)` of a non-blocking eventfd,
/// which rtm keeps readable exactly while the client has messages pending
/// (a copy of the descriptor; the caller may close its own). `Flags` is 0
/// or `RTM_PROTOCOL_SINGLE_ROUTE`.
///
/// Returns the client handle, or NULL with the last error set to
/// `ERROR_CLIENT_ALREADY_EXISTS` (a live client holds the protocol in the
/// family; one being deregistered does not: the call waits until its
/// routes are gone) or `ERROR_INVALID_PARAMETER` (family, flags, or an
/// event that is not `RTM_EVENT_FD` of a non-blocking eventfd the caller
/// owns).
#[unsafe(no_mangle)]
pub extern "C" fn RtmRegisterClient(
    ProtocolFamily: DWORD,
    RoutingProtocol: DWORD,
    ChangeEvent: HANDLE,
    Flags: DWORD,
) -> HANDLE {
    value(std::ptr::null_mut(), || {
        let family = CFamily::from_raw(ProtocolFamily)?;
        let notify = !ChangeEvent.is_null();
        let options = RegisterOptions::from_flags(Flags, notify)?;
        let event = if notify {
            Some(EventFd::adopt(ChangeEvent)?)
        } else {
            None
        };
        fn attach<F: Family>(c: &ClientHandle<F>, e: Option<EventFd>) -> Result<(), RtmError> {
            match e {
                Some(e) => c.set_notifier(Arc::new(e)),
                None => Ok(()),
            }
        }
        let protocol = ProtocolId(RoutingProtocol);
        let c = match family {
            CFamily::Ip => {
                let c = rtm().register::<rtm::Ipv4>(protocol, options)?;
                attach(&c, event)?;
                Client::Ip(c)
            }
            CFamily::Ipx => {
                let c = rtm().register::<rtm::Ipx>(protocol, options)?;
                attach(&c, event)?;
                Client::Ipx(c)
            }
        };
        Ok(add_client(c))
    })
}

/// Deregisters a client: removes every route it added (the other clients
/// are told of each best-route change), discards its messages and frees
/// its protocol for a new registration. Every later use of the handle is
/// `ERROR_INVALID_HANDLE`, a second deregistration included.
/// Forwarding lookups (`RtmLookupIPDestination`) never wait for it.
#[unsafe(no_mangle)]
pub extern "C" fn RtmDeregisterClient(ClientHandle: HANDLE) -> DWORD {
    status(|| {
        match remove_client(ClientHandle)? {
            Client::Ip(c) => rtm().deregister(&c)?,
            Client::Ipx(c) => rtm().deregister(&c)?,
        };
        Ok(NO_ERROR)
    })
}

/// Writes a change's flags and route images to C's buffers: `cur` when the
/// change has a current best route, `prev` when it has a previous one.
///
/// # Safety
/// `flags` non-NULL and writable; `cur`/`prev` NULL or writable `C`s.
unsafe fn report<C: CRoute>(
    change: &rtm::Change<C::F>,
    flags: *mut DWORD,
    cur: PVOID,
    prev: PVOID,
) {
    // SAFETY: the caller checked `flags` non-NULL; C promises it writable.
    unsafe { flags.write_unaligned(change.flags()) };
    if let Some(r) = change.current() {
        // SAFETY: the caller's promise for `cur`.
        unsafe { write_opt(cur, C::from_route(r)) };
    }
    if let Some(r) = change.previous() {
        // SAFETY: the caller's promise for `prev`.
        unsafe { write_opt(prev, C::from_route(r)) };
    }
}

/// # Safety
/// As [`RtmAddRoute`].
unsafe fn add<C: CRoute>(
    c: &ClientHandle<C::F>,
    route: PVOID,
    ttl: DWORD,
    flags: *mut DWORD,
    cur: PVOID,
    prev: PVOID,
) -> Result<DWORD, RtmError> {
    if flags.is_null() {
        return Err(null("Flags"));
    }
    // SAFETY: the header's contract: a non-NULL Route is the family's struct.
    let r: C = unsafe { read(route, "Route")? };
    let change = rtm().add_route(c, &r.to_route(true)?, Ttl::from_raw(ttl))?;
    // SAFETY: `flags` checked; the buffers are the caller's promise.
    unsafe { report::<C>(&change, flags, cur, prev) };
    Ok(NO_ERROR)
}

/// Adds a route, or updates the caller's route with the same key (network,
/// interface, next hop; the network alone for a single-route client).
/// `Route` is an `RTM_IP_ROUTE` or `RTM_IPX_ROUTE` by the client's family;
/// its timestamp, protocol and (IP) `FSD_Priority` are set by the RTM.
/// `TimeToLive` is seconds (at most 2,147,483) or `INFINITE`.
///
/// `*Flags` receives `RTM_NO_CHANGE`, `RTM_ROUTE_ADDED` or
/// `RTM_ROUTE_CHANGED` (or `RTM_ROUTE_DELETED` when an update made the
/// network's only valid route invalid); `CurBestRoute` (if not NULL) the
/// best route after the call when `RTM_CURRENT_BEST_ROUTE` is set,
/// `PrevBestRoute` (if not NULL) the one before it when
/// `RTM_PREVIOUS_BEST_ROUTE` is set. The other clients with a change event
/// get the same change as a message.
///
/// # Safety
/// `Route` and `Flags` must be NULL or valid; `CurBestRoute` and
/// `PrevBestRoute` NULL or writable buffers of the client's family's
/// route structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmAddRoute(
    ClientHandle: HANDLE,
    Route: PVOID,
    TimeToLive: DWORD,
    Flags: *mut DWORD,
    CurBestRoute: PVOID,
    PrevBestRoute: PVOID,
) -> DWORD {
    status(|| match client(ClientHandle)? {
        // SAFETY: the caller's promises, passed on.
        Client::Ip(c) => unsafe {
            add::<RTM_IP_ROUTE>(&c, Route, TimeToLive, Flags, CurBestRoute, PrevBestRoute)
        },
        // SAFETY: as above.
        Client::Ipx(c) => unsafe {
            add::<RTM_IPX_ROUTE>(&c, Route, TimeToLive, Flags, CurBestRoute, PrevBestRoute)
        },
    })
}

/// # Safety
/// As [`RtmDeleteRoute`].
unsafe fn delete<C: CRoute>(
    c: &ClientHandle<C::F>,
    route: PVOID,
    flags: *mut DWORD,
    cur: PVOID,
) -> Result<DWORD, RtmError> {
    if flags.is_null() {
        return Err(null("Flags"));
    }
    // SAFETY: the header's contract for Route.
    let r: C = unsafe { read(route, "Route")? };
    let change = rtm().delete_route(c, &r.to_route(true)?)?;
    // SAFETY: `flags` checked; no previous-best buffer (spec A16).
    unsafe { report::<C>(&change, flags, cur, std::ptr::null_mut()) };
    Ok(NO_ERROR)
}

/// Deletes the caller's route with the key in `Route` (network, interface,
/// next hop; the network alone for a single-route client; the data is
/// ignored). `*Flags` receives `RTM_NO_CHANGE`, `RTM_ROUTE_DELETED` (the
/// network's last route) or `RTM_ROUTE_CHANGED` (`CurBestRoute`, if not
/// NULL, receives the new best). `ERROR_NO_SUCH_ROUTE` if the caller has no
/// route with that key.
///
/// # Safety
/// As [`RtmAddRoute`], without a previous-best buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmDeleteRoute(
    ClientHandle: HANDLE,
    Route: PVOID,
    Flags: *mut DWORD,
    CurBestRoute: PVOID,
) -> DWORD {
    status(|| match client(ClientHandle)? {
        // SAFETY: the caller's promises, passed on.
        Client::Ip(c) => unsafe { delete::<RTM_IP_ROUTE>(&c, Route, Flags, CurBestRoute) },
        // SAFETY: as above.
        Client::Ipx(c) => unsafe { delete::<RTM_IPX_ROUTE>(&c, Route, Flags, CurBestRoute) },
    })
}

/// # Safety
/// As [`RtmDequeueRouteChangeMessage`].
unsafe fn dequeue<C: CRoute>(
    c: &ClientHandle<C::F>,
    flags: *mut DWORD,
    cur: PVOID,
    prev: PVOID,
) -> Result<DWORD, RtmError> {
    if flags.is_null() {
        return Err(null("Flags"));
    }
    let d = rtm().dequeue(c)?;
    // SAFETY: `flags` checked; the buffers are the caller's promise.
    unsafe { report::<C>(&d.change, flags, cur, prev) };
    Ok(d.status.code())
}

/// Takes the oldest change message from the client's queue: `*Flags`, and
/// the route images as `RtmAddRoute` gives them (NULL buffers are allowed;
/// the message is consumed all the same). Returns `NO_ERROR` (that was the
/// last message; the change event is reset), `ERROR_MORE_MESSAGES` (more
/// remain; it stays set), `ERROR_NO_MESSAGES` (the queue was empty; it is
/// reset), or `ERROR_INVALID_HANDLE` (also for a client registered without
/// an event).
///
/// # Safety
/// `Flags` NULL or writable; the route buffers NULL or writable buffers of
/// the client's family's route structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmDequeueRouteChangeMessage(
    ClientHandle: HANDLE,
    Flags: *mut DWORD,
    CurBestRoute: PVOID,
    PrevBestRoute: PVOID,
) -> DWORD {
    status(|| match client(ClientHandle)? {
        // SAFETY: the caller's promises, passed on.
        Client::Ip(c) => unsafe { dequeue::<RTM_IP_ROUTE>(&c, Flags, CurBestRoute, PrevBestRoute) },
        // SAFETY: as above.
        Client::Ipx(c) => unsafe {
            dequeue::<RTM_IPX_ROUTE>(&c, Flags, CurBestRoute, PrevBestRoute)
        },
    })
}

/// Which block operation to run.
#[derive(Clone, Copy)]
enum Block {
    Delete,
    Enable(bool),
    ConvertToStatic,
}

/// # Safety
/// `criteria_route` NULL or a readable route structure of the client's
/// family.
unsafe fn block(h: HANDLE, flags: DWORD, criteria_route: PVOID, op: Block) -> DWORD {
    /// # Safety
    /// As `block`.
    unsafe fn run<C: CRoute>(
        c: &ClientHandle<C::F>,
        flags: DWORD,
        route: PVOID,
        op: Block,
    ) -> Result<DWORD, RtmError> {
        // SAFETY: the caller's promise for the criteria route.
        let criteria = unsafe { criteria::<C>(flags, route)? };
        match op {
            Block::Delete => rtm().block_delete(c, &criteria)?,
            Block::Enable(on) => rtm().block_set_enable(c, &criteria, on)?,
            Block::ConvertToStatic => rtm().block_convert_to_static(c, &criteria)?,
        };
        Ok(NO_ERROR)
    }
    status(|| match client(h)? {
        // SAFETY: passed on.
        Client::Ip(c) => unsafe { run::<RTM_IP_ROUTE>(&c, flags, criteria_route, op) },
        // SAFETY: passed on.
        Client::Ipx(c) => unsafe { run::<RTM_IPX_ROUTE>(&c, flags, criteria_route, op) },
    })
}

/// Deletes the caller's routes that match `EnumerationFlags` and the
/// fields of `CriteriaRoute` they name (`RTM_ONLY_THIS_NETWORK`,
/// `RTM_ONLY_THIS_INTERFACE`; `RTM_ONLY_BEST_ROUTES` changes nothing, and
/// `RTM_ONLY_THIS_PROTOCOL` with another protocol matches nothing).
/// `CriteriaRoute` may be NULL when the flags name no field. Every client
/// with an event, the caller included, gets one message per network whose
/// best route changed. `ERROR_NO_ROUTES` if nothing matched.
///
/// # Safety
/// `CriteriaRoute` NULL or a readable route structure of the client's
/// family.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmBlockDeleteRoutes(
    ClientHandle: HANDLE,
    EnumerationFlags: DWORD,
    CriteriaRoute: PVOID,
) -> DWORD {
    // SAFETY: passed on.
    unsafe { block(ClientHandle, EnumerationFlags, CriteriaRoute, Block::Delete) }
}

/// Undocumented in RTMv1 (rtm.dll exports it): disables (`Enable` FALSE)
/// or enables the caller's matching routes. A disabled route is kept but
/// takes no part in best-route selection, and enumeration skips it unless
/// `RTM_INCLUDE_DISABLED_ROUTES` is given; the usual messages follow.
/// Criteria as `RtmBlockDeleteRoutes`.
///
/// # Safety
/// As [`RtmBlockDeleteRoutes`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmBlockSetRouteEnable(
    ClientHandle: HANDLE,
    EnumerationFlags: DWORD,
    CriteriaRoute: PVOID,
    Enable: BOOL,
) -> DWORD {
    // SAFETY: passed on.
    unsafe {
        block(
            ClientHandle,
            EnumerationFlags,
            CriteriaRoute,
            Block::Enable(Enable != FALSE),
        )
    }
}

/// Undocumented in RTMv1 (rtm.dll exports it): the "autostatic"
/// conversion. Every other protocol's route of the family that matches
/// the criteria is re-owned by the calling client's protocol, data
/// unchanged, never expiring (`RTM_ROUTE_CHANGED` messages follow for the
/// best routes).
/// Criteria as `RtmBlockDeleteRoutes`.
///
/// # Safety
/// As [`RtmBlockDeleteRoutes`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmBlockConvertRoutesToStatic(
    ClientHandle: HANDLE,
    EnumerationFlags: DWORD,
    CriteriaRoute: PVOID,
) -> DWORD {
    // SAFETY: passed on.
    unsafe {
        block(
            ClientHandle,
            EnumerationFlags,
            CriteriaRoute,
            Block::ConvertToStatic,
        )
    }
}
