//! Kernel FIB sync: rtm's best routes programmed into a Linux routing
//! table over rtnetlink (feature `netlink`, Linux only).
//!
//! **What holds** once the sync is idle ([`KernelSync::wait_synced`]) and
//! the RIB has converged ([`KernelSync::converged`], or
//! [`SyncConfig::stale_hold`] after start):
//! - rtm's routes in table `config.table` are the routes of protocol
//!   `config.protocol` there, whatever their metric, and they are exactly
//!   one per IPv4 and IPv6 network with a best route in rtm, at
//!   `config.metric`, with that route's next hop (on-link) and interface;
//! - except where another protocol's route already holds that key
//!   (table, prefix, metric): rtm does not overwrite or delete a route of
//!   another protocol, so it leaves that prefix to it and counts a
//!   conflict ([`SyncStats::conflicts`]); when that route goes, rtm's is
//!   written. (Two narrow exceptions, from what the kernel does not say:
//!   another program's replace of rtm's route in the instant before rtm
//!   rewrites that prefix, before its notification is read; and an IPv6
//!   route appended beside rtm's at rtm's metric, which a dump after a
//!   restart shows as one multipath route of rtm's protocol.)
//! - after a device goes down or up, or loses an address (the kernel
//!   drops IPv4 routes through it without a notification each), a
//!   resynchronisation brings rtm's routes back once the device can take
//!   them ([`SyncStats::link_events`]).
//!
//! Routes of other protocols, other tables and other metrics are not
//! touched, so an operator tells rtm's routes apart with `ip route show
//! table N proto P` and keeps their own beside them. Before the RIB has
//! converged, rtm's routes found in the kernel at start stay even where
//! rtm has none yet (stale, still forwarding); nothing is withdrawn and
//! written again, and a restart against a kernel table that is already
//! right sends no change at all.
//!
//! **How** (as FRR's zebra dataplane does):
//! - The sync registers in each IP family as an ordinary client with a
//!   *coalescing* change queue ([`RegisterOptions::coalescing`](crate::RegisterOptions::coalescing)) and adds
//!   no routes, so it is told of every best-route change. It registers
//!   before it reads the table, so no change falls between the two.
//! - A worker thread drains the queues in batches ([`SyncConfig::batch`]
//!   messages per `send`): for each changed network it reads the best
//!   route *now* and brings the kernel's route for it there, so a
//!   replayed or stale message only rewrites the current state.
//! - It keeps a view of what the kernel holds at rtm's keys (`view.rs`),
//!   built from a dump and kept by acknowledgements and notifications:
//!   rtm's route is created with `NLM_F_EXCL` (another program's route at
//!   the key answers `EEXIST` and stays), replaced only where the view
//!   holds rtm's own, not sent when the kernel already has it, and
//!   deleted with rtm's protocol, the metric it has and any scope.
//! - **Back-pressure** never reaches the forwarding path or the RIB's
//!   writers: a writer's share of the work is one push into a queue that
//!   holds at most one message per network, so when the kernel is slower
//!   than the churn the backlog folds instead of growing, and lookups do
//!   not see the sync at all.
//! - **Changes behind its back**: a second socket listens to the kernel's
//!   IPv4 and IPv6 route notifications. A socket filter in the kernel drops
//!   the echoes of rtm's own requests (by the request socket's port, as
//!   FRR's zebra does) and every other table's changes, so neither a full
//!   table's load nor another daemon's floods it; datagrams that do not
//!   come from the kernel are dropped unread. Another program's change in
//!   rtm's table (`ip route del`, a replace, a route of its own at rtm's
//!   metric) updates the view and re-programs that prefix (at the
//!   worker's next round: at once when rtm's changes keep it busy, within
//!   200 ms when idle, since the monitor does not wake it).
//! - **Input it does not trust**: every datagram is read by [`wire`],
//!   which steps over attributes it does not know; a message that does not
//!   read at all is counted and skipped ([`SyncStats::unreadable`]), so no
//!   route any program writes can stop the sync.
//! - **Resynchronisation**: at start, after `ENOBUFS` (acknowledgements or
//!   notifications were lost, so what the kernel holds is unknown), and on
//!   [`KernelSync::resync`], the worker dumps rtm's table (a strict dump:
//!   that table alone), rebuilds its view and sends only the difference.
//! - ECMP: the kernel gets each network's best route (one path); rtm's
//!   next-hop groups stay in its own FIB.
//!
//! ```no_run
//! # #[cfg(all(feature = "netlink", target_os = "linux"))] {
//! use rtm::netlink::{KernelSync, SyncConfig};
//! let rtm = rtm::Rtm::new();
//! let sync = KernelSync::start(&rtm, SyncConfig::new(100)).unwrap();
//! // ... protocols add and withdraw routes; table 100 follows ...
//! // ... and once they have loaded (end-of-RIB), routes an earlier run
//! // left that rtm no longer has may go:
//! sync.converged();
//! assert!(sync.wait_synced(std::time::Duration::from_secs(5)));
//! println!("{:?}", sync.stop().unwrap());
//! # }
//! ```

mod kernel;
mod view;
pub mod wire;
mod worker;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::engine_family::IpFamily;
use crate::family::{Ipv4, Ipv6};
use crate::prefix::Prefix;
use crate::route::ProtocolId;

pub use worker::{KernelSync, SyncStats};

/// Which kernel device a route's RTMv1 interface id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interfaces {
    /// The interface id is the kernel's ifindex (RTMv1's interface index
    /// is the stack's own, as it is on Windows).
    SameIndex,
    /// Every route goes out of this one device (by ifindex): for a table
    /// whose interface ids mean nothing to this host, or a test.
    Device(u32),
}

/// How the sync programs the kernel.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The kernel routing table (1 to 2^32-1; 254 is `main`; 0 is refused).
    pub table: u32,
    /// The route protocol number that marks rtm's routes (`proto` in `ip
    /// route`; `/etc/iproute2/rt_protos`); 201 by default, outside the
    /// numbers Linux and iproute2 assign. Every route of this protocol in
    /// the table is rtm's, whatever its metric.
    pub protocol: u8,
    /// The kernel route metric (priority) rtm writes its routes at: routes
    /// of other daemons with a lower metric win over rtm's. rtm's routes
    /// found at another metric (a run with another setting) are deleted
    /// as their prefixes are programmed, and the rest once the RIB has
    /// converged.
    pub metric: u32,
    /// Interface ids to kernel devices.
    pub interfaces: Interfaces,
    /// Messages per batch (per `send`), 1 to 1,024 (larger values are
    /// taken as 1,024: a batch must fit the socket's send buffer).
    pub batch: usize,
    /// The protocol id the sync registers as in rtm (it adds no routes).
    pub client_protocol: ProtocolId,
    /// The socket's receive buffer in bytes (8 MiB; the kernel may cap it
    /// at `net.core.rmem_max`). Acknowledgements that overflow it are lost
    /// (`ENOBUFS`), which costs a resynchronisation, not correctness.
    pub receive_buffer: usize,
    /// How long rtm's routes found in the kernel at start stay when rtm
    /// has no route for their prefix (stale, forwarding, as zebra's `-K`
    /// keeps them), unless [`KernelSync::converged`] says the RIB has
    /// loaded sooner: 120 s, a BGP speaker's usual restart time. Zero
    /// withdraws them at once.
    pub stale_hold: Duration,
}

impl SyncConfig {
    /// Table `table`, protocol 201, metric 20, interface ids as ifindexes,
    /// batches of 512, registered as protocol `0x7274_6d6b` ("rtmk"), an
    /// 8 MiB receive buffer, stale routes held 120 s.
    pub fn new(table: u32) -> SyncConfig {
        SyncConfig {
            table,
            protocol: 201,
            metric: 20,
            interfaces: Interfaces::SameIndex,
            batch: 512,
            client_protocol: ProtocolId(0x7274_6d6b),
            receive_buffer: 8 << 20,
            stale_hold: Duration::from_secs(120),
        }
    }
}

/// How the kernel holds a route at rtm's key: on-link gateway (none for a
/// directly connected route) and output device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held<F: IpFamily> {
    pub(crate) gateway: Option<F::Addr>,
    pub(crate) oif: u32,
}

/// A route rtm wants in the kernel: destination and how it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelRoute<F: IpFamily> {
    pub(crate) prefix: Prefix<F::Addr>,
    pub(crate) gateway: Option<F::Addr>,
    pub(crate) oif: u32,
}

impl<F: IpFamily> KernelRoute<F> {
    pub(crate) fn held(&self) -> Held<F> {
        Held {
            gateway: self.gateway,
            oif: self.oif,
        }
    }
}

/// A route of rtm's table the kernel reported: a dump's entry, or another
/// program's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observed<F: IpFamily> {
    pub(crate) prefix: Prefix<F::Addr>,
    /// There now (a dump's entry, `RTM_NEWROUTE`), or gone (`RTM_DELROUTE`).
    pub(crate) present: bool,
    /// Of rtm's protocol.
    pub(crate) ours: bool,
    pub(crate) metric: u32,
    /// How it is held, if it is a route rtm could have written (one
    /// unicast path of the family, no encapsulation or next-hop object).
    pub(crate) held: Option<Held<F>>,
    /// It replaced the route at its key (`NLM_F_REPLACE` on the
    /// notification).
    pub(crate) replaced: bool,
}

/// One change to the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<F: IpFamily> {
    /// Create rtm's route where the kernel has none at rtm's key
    /// (`NLM_F_EXCL`: another program's route there is never overwritten).
    Create(KernelRoute<F>),
    /// Rewrite rtm's route at its key (`NLM_F_REPLACE`, without create).
    Replace(KernelRoute<F>),
    /// Remove rtm's route to the prefix at this metric, as the kernel holds
    /// it if known: IPv6 deletes name its gateway and device, since one
    /// without them removes every route of the sibling group rtm's is in
    /// (another program's appended route too).
    Delete(Prefix<F::Addr>, u32, Option<Held<F>>),
}

impl<F: IpFamily> Op<F> {
    fn prefix(&self) -> Prefix<F::Addr> {
        match self {
            Op::Create(r) | Op::Replace(r) => r.prefix,
            Op::Delete(p, ..) => *p,
        }
    }
}

/// An IP family as rtnetlink carries it.
pub(crate) trait KernelFamily: IpFamily {
    const AF: u8;
    const UNSPECIFIED: Self::Addr;
    fn to_ip(a: Self::Addr) -> IpAddr;
    fn from_ip(a: IpAddr) -> Option<Self::Addr>;
    /// The metric the kernel stores for a route written at `metric`: IPv6
    /// takes 0 as "the default", 1024 (`IP6_RT_PRIO_USER`).
    fn stored_metric(metric: u32) -> u32 {
        metric
    }
}

impl KernelFamily for Ipv4 {
    const AF: u8 = wire::AF_INET;
    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    fn to_ip(a: Ipv4Addr) -> IpAddr {
        a.into()
    }
    fn from_ip(a: IpAddr) -> Option<Ipv4Addr> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
}

impl KernelFamily for Ipv6 {
    const AF: u8 = wire::AF_INET6;
    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    fn stored_metric(metric: u32) -> u32 {
        if metric == 0 { 1024 } else { metric }
    }
    fn to_ip(a: Ipv6Addr) -> IpAddr {
        a.into()
    }
    fn from_ip(a: IpAddr) -> Option<Ipv6Addr> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
}

/// Why the sync could not start or stopped.
#[derive(Debug)]
pub enum SyncError {
    /// A setting the kernel cannot take (table 0 is `RT_TABLE_UNSPEC`).
    Config(String),
    /// rtm refused the sync's registration (its protocol id is taken).
    Register(crate::RtmError),
    /// The rtnetlink socket failed: opening it (no privilege:
    /// `CAP_NET_ADMIN` is needed to program routes), or a send, receive or
    /// dump.
    Netlink(std::io::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Config(e) => write!(f, "kernel sync: {e}"),
            SyncError::Register(e) => write!(f, "kernel sync: registering its client: {e}"),
            SyncError::Netlink(e) => write!(f, "kernel sync: rtnetlink: {e}"),
        }
    }
}

impl std::error::Error for SyncError {}
