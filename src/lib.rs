//! # rtm: a concurrent routing table manager with lock-free reads
//!
//! Routing protocols (clients) register, add and withdraw routes; rtm picks
//! the best route per destination network, tells the other protocols about
//! every best-route change, and answers the forwarding path's
//! longest-prefix-match lookups without ever making a reader wait for a
//! writer. The semantics are those of the Windows Routing Table Manager
//! version 1 (RTMv1), expressed as a typed Rust API, for IPv4, IPv6 and IPX.
//!
//! ```
//! use rtm::{Change, Criteria, Ipv4, IpRouteData, ProtocolId, RegisterOptions, Route, Rtm, Ttl};
//!
//! let rtm = Rtm::new();
//! let ospf = ProtocolId(13);
//! let rip = ProtocolId(8);
//! rtm.set_priority(ospf, 10); // lower wins
//! rtm.set_priority(rip, 120);
//!
//! let o = rtm.register::<Ipv4>(ospf, RegisterOptions::notifying())?;
//! let r = rtm.register::<Ipv4>(rip, RegisterOptions::notifying())?;
//!
//! let net = "10.1.0.0/16".parse()?;
//! let via_rip = Route::<Ipv4>::new(net, "192.0.2.1".parse()?, 1, IpRouteData::with_metric(2));
//! let via_ospf = Route::<Ipv4>::new(net, "192.0.2.9".parse()?, 2, IpRouteData::with_metric(20));
//!
//! assert!(matches!(rtm.add_route(&r, &via_rip, Ttl::Seconds(180))?, Change::Added { .. }));
//! // OSPF's priority beats RIP's better metric: the best route changes.
//! let change = rtm.add_route(&o, &via_ospf, Ttl::Infinite)?;
//! assert_eq!(change.flags(), 3); // RTM_ROUTE_CHANGED
//!
//! // The forwarding path: a lock-free longest-prefix match.
//! let hit = rtm.lookup::<Ipv4>("10.1.2.3".parse()?).unwrap();
//! assert_eq!(hit.next_hop, "192.0.2.9".parse::<std::net::Ipv4Addr>()?);
//!
//! // RIP heard about the change through its queue.
//! assert_eq!(rtm.dequeue(&r)?.change, change);
//!
//! // OSPF goes away: its routes go with it, and RIP's route is best again.
//! rtm.deregister(&o)?;
//! assert_eq!(rtm.is_route::<Ipv4>(&net).unwrap().protocol, rip);
//! assert_eq!(rtm.enumerate(&Criteria::<Ipv4>::all())?.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Which type do I want?
//! - [`Rtm`]: the table manager; every RTMv1 call is a method on it.
//! - [`ClientHandle`]: what registration gives a protocol; pass it to
//!   `add_route`, `delete_route`, the block operations and `dequeue`.
//! - [`Route`], with [`IpRouteData`] or [`IpxRouteData`]: a route.
//! - [`Ipv4Prefix`], [`Ipv6Prefix`], [`IpxNetwork`]: destination networks.
//! - [`Criteria`]: which routes an enumeration or block operation selects.
//! - [`Change`]: how a best route changed, returned by writes and queued
//!   for clients.
//! - [`RtmError`]: every failure, with its Win32 code.
//! - [`AnyClient`], [`AnyRoute`], [`AnyEnumeration`]: results of the raw
//!   calls ([`Rtm::register_raw`], [`Rtm::is_route_raw`],
//!   [`Rtm::enumerate_raw`], ...), which take RTMv1's family numbers, flag
//!   words and network bytes as a C caller has them.
//! - [`LpmFib`] (via [`Rtm::fib`]): the forwarding table itself; a
//!   forwarding thread registers a [`FibReader`] ([`LpmFib::reader`]) and
//!   reports quiescent states between bursts; also usable on its own.
//!   [`FibReader::lookup_id`] answers a [`NextHopId`] (the leaf alone, as
//!   DPDK's and Linux's FIBs answer), which [`NextHopId::resolve`] turns
//!   into a [`FibNextHop`].
//! - [`model::ModelRtm`]: a sequential reference implementation for tests.
//! - Beyond RTMv1: graceful restart ([`Rtm::deregister_graceful`],
//!   [`Rtm::mark_stale`], [`Rtm::end_of_rib`]: routes kept forwarding,
//!   stale, through a protocol's restart) and ECMP
//!   ([`PriorityTable::with_multipath`], [`Rtm::best_paths`],
//!   [`LpmFib::lookup_flow`]; [`LpmFib::next_hop_down`] moves every prefix
//!   off a next hop with one call).
//! - Beyond the process: `rtm::netlink::KernelSync` (feature `netlink`,
//!   Linux; in `cli`) programs a kernel routing table from the best
//!   routes; [`Notifier`] mirrors a client's queue into an outside event;
//!   the `capi/` crate (`librtm`, `rtm.h`) serves RTMv1's C API over the
//!   same engine.
//!
//! ## Guarantees
//! - **Forwarding lookups never wait, never retry, never reclaim.** A
//!   [`FibReader`] ([`LpmFib::reader`]) looks up with plain loads (one
//!   Acquire load, no read-modify-write, no lock, no allocation) and never
//!   runs anyone's deferred work; it reports a quiescent state between
//!   bursts ([`FibReader::quiescent`], one store) or goes offline.
//!   [`Rtm::lookup`] and [`LpmFib::lookup`] do the same through the calling
//!   thread's own slot, online only for the call. Replaced FIB nodes and
//!   next-hop ids are freed by writers through the FIB's quiescent-state
//!   domain ([`qsbr`]). (`loom-tests/tests/fib_qsbr.rs`,
//!   `tests/nexthop_reuse.rs`, `tests/fib.rs`.)
//! - **Control-plane reads never lock for the table.** `lookup_route`,
//!   `is_route`, `get_first`/`get_next` and enumeration read the RIB's
//!   prefix-keyed block index of destinations with plain loads (a /16
//!   root link, a copy-on-write leaf, the route set, each published with
//!   one atomic store and reclaimed through crossbeam-epoch): no lock, no
//!   retry; a pin may run other threads' deferred frees.
//!   (`tests/stress.rs`, the index's own tests.)
//! - **Linearizable writes, one change order.** Each write to a network is
//!   atomic; change messages are enqueued in the same critical section that
//!   publishes the change, so all clients see the changes in the order the
//!   table made them. (`tests/differential.rs`, `tests/stress.rs`.)
//! - **No route of a dead client.** Once `deregister` returns, no later
//!   lookup, query or enumeration returns a route of that client, and no
//!   operation of the client can add one (its gate is closed first).
//!   Deregistration is atomic per network, not for the whole call.
//!   (`tests/stress.rs`.)
//! - **Failed calls change nothing.** Every error leaves the table, the
//!   queues and the FIB as they were. (`tests/bad_input.rs`.)
//! - **The FIB follows the RIB.** A best-route change is in the FIB before
//!   the call that made it returns; during the call a lookup of any one
//!   address sees the old or the new answer, never a half-applied path
//!   (a prefix shorter than the top level, /16 in IPv4 and /18 in IPv6,
//!   or a next hop's change stored in place over several leaf words, may
//!   reach some addresses a moment before others). A bulk call (a batch of updates, deregistration, a block
//!   operation) publishes its FIB changes a node at a time, every few
//!   hundred networks and before it returns. ([`Rtm::verify_consistency`],
//!   which walks what lookups read; `tests/fib.rs`, `tests/stress.rs`,
//!   `tests/linearizability.rs`.)
//!
//! Writers do take locks: their network's (striped) writer lock, a short
//! per-family sequencer around publication, the attribute interner's lock
//! when a route brings new attributes, a per-client gate and the FIB's
//! writer lock. Lock-freedom is a property of the read side only.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

#[cfg(feature = "batch")]
pub mod batch;
#[cfg(feature = "cli")]
pub mod bench;
mod change;
mod client;
mod client_index;
mod clock;
mod criteria;
mod engine_family;
mod enumerate;
mod error;
mod family;
mod fib;
#[cfg(feature = "files")]
pub mod files;
mod intern;
pub mod model;
#[cfg(all(feature = "netlink", target_os = "linux"))]
pub mod netlink;
mod notify;
mod prefix;
mod priority;
pub mod qsbr;
mod raw;
mod rib;
mod route;
mod rtm;
mod sync;
pub mod synth;

pub use change::{Change, RTM_NO_CHANGE, RTM_ROUTE_ADDED, RTM_ROUTE_CHANGED, RTM_ROUTE_DELETED};
pub use client::{ClientHandle, RegisterOptions};
pub use clock::{Clock, ManualClock, SystemClock, TICKS_PER_SECOND, Timestamp};
pub use criteria::{
    Criteria, RTM_INCLUDE_DISABLED_ROUTES, RTM_ONLY_BEST_ROUTES, RTM_ONLY_FRESH_ROUTES,
    RTM_ONLY_STALE_ROUTES, RTM_ONLY_THIS_INTERFACE, RTM_ONLY_THIS_NETWORK, RTM_ONLY_THIS_PROTOCOL,
    RTM_PROTOCOL_SINGLE_ROUTE,
};
pub use engine_family::{Family, IpFamily};
pub use enumerate::Enumeration;
pub use error::{ERROR_MORE_MESSAGES, NO_ERROR, Result, RtmError};
pub use family::{AddressFamily, FamilyId, IpAddressFamily, Ipv4, Ipv6, Ipx};
pub use fib::{
    FibEntry, FibMemory, FibNextHop, FibPath, FibReader, ForwardingTable, LpmFib, MAX_PATHS,
    NextHopId, NoFib, OfflineFibReader,
};
pub use notify::{ChangeQueue, DequeueStatus, Dequeued, Notifier};
pub use prefix::{IpAddress, Ipv4Prefix, Ipv6Prefix, IpxNetwork, MacAddr, Prefix};
pub use priority::{DEFAULT_PRIORITY, PriorityTable};
pub use raw::{AnyClient, AnyEnumeration, AnyRoute};
pub use rib::RouteMarks;
pub use route::{
    INFINITE, IP_VALID_ROUTE, IPX_GLOBAL_CLIENT_WAN_ROUTE, IpRouteData, IpxRouteData,
    MAX_TTL_SECONDS, ProtocolId, Route, RouteData, RouteKey, RouteUpdate, Ttl,
};
pub use rtm::{Rtm, RtmBuilder, Sweeper};

/// The README's Rust examples, compiled and run as doctests (`cargo test
/// --doc`), so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
