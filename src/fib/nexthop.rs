//! Interned next hops: the FIB's leaves name a (next hop, interface,
//! protocol) tuple by a small id instead of carrying it.
//!
//! A full table has a million prefixes but only as many distinct tuples as
//! the router has neighbours, so interning keeps leaves at 32 bits (see
//! [`crate::intern`] for the ids' lifetime rules).

use crate::intern::{InternIds, InternTable};
use crate::route::ProtocolId;

/// What a leaf's id stands for.
/// Ordered by next hop, then interface, then protocol: an ECMP group's
/// paths are kept in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Nexthop<A> {
    pub(crate) next_hop: A,
    pub(crate) interface: u32,
    pub(crate) protocol: ProtocolId,
}

/// The id -> tuple table read by lookups.
pub(crate) type NexthopTable<A> = InternTable<Nexthop<A>>;

/// The writer's side, guarded by the FIB's writer lock.
pub(crate) type NexthopIds<A> = InternIds<Nexthop<A>>;

/// The table's placeholder for unused ids.
pub(crate) fn placeholder<A>(next_hop: A) -> Nexthop<A> {
    Nexthop {
        next_hop,
        interface: 0,
        protocol: ProtocolId(0),
    }
}
