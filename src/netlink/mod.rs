//! Kernel FIB sync: rtm's best routes programmed into a Linux routing
//! table over rtnetlink (feature `netlink`, Linux only).
//!
//! **The invariant**: once the sync is idle ([`KernelSync::wait_synced`]),
//! the kernel table `config.table` holds, among its routes of protocol
//! number `config.protocol`, exactly one route per IPv4 and IPv6 network
//! that has a best route in rtm: that route's next hop (on-link) and
//! interface. Routes of other protocols in that table are never touched,
//! so an operator can tell rtm's routes apart (`ip route show table N
//! proto P`) and keep their own beside them.
//!
//! **How** (as FRR's zebra dataplane does):
//! - The sync registers in each IP family as an ordinary client with a
//!   *coalescing* change queue ([`RegisterOptions::coalescing`](crate::RegisterOptions::coalescing)) and adds
//!   no routes, so it is told of every best-route change. It registers
//!   before it reads the table, so no change falls between the two.
//! - A worker thread drains the queues in batches ([`SyncConfig::batch`]
//!   messages per `send`): for each changed network it reads the best
//!   route *now* and sends `RTM_NEWROUTE` with `NLM_F_REPLACE` (or
//!   `RTM_DELROUTE` when the network has none), so a replayed or stale
//!   message only rewrites the current state.
//! - **Back-pressure** never reaches the forwarding path or the RIB's
//!   writers: a writer's share of the work is one push into a queue that
//!   holds at most one message per network, so when the kernel is slower
//!   than the churn the backlog folds instead of growing, and lookups do
//!   not see the sync at all.
//! - **Changes behind its back**: a second socket listens to the kernel's
//!   IPv4 and IPv6 route notifications. A socket filter in the kernel drops
//!   the echoes of rtm's own requests (by the request socket's port, as
//!   FRR's zebra does), so a full table's load does not flood it; any
//!   other program's change in rtm's table (`ip route del`, a replace)
//!   makes the worker re-program that prefix from rtm's state (at its
//!   next round: at once when rtm's changes keep it busy, within 200 ms
//!   when idle, since the monitor does not wake it).
//! - **Resynchronisation**: at start, after `ENOBUFS` (acknowledgements or
//!   notifications were lost, so what the kernel holds is unknown), and on
//!   [`KernelSync::resync`], the worker dumps the kernel table, diffs it
//!   against rtm's best routes and sends only the difference: a restarted
//!   sync repairs whatever changed behind its back without reloading what
//!   is already right.
//! - ECMP: the kernel gets each network's best route (one path); rtm's
//!   next-hop groups stay in its own FIB.
//!
//! ```no_run
//! # #[cfg(all(feature = "netlink", target_os = "linux"))] {
//! use rtm::netlink::{KernelSync, SyncConfig};
//! let rtm = rtm::Rtm::new();
//! let sync = KernelSync::start(&rtm, SyncConfig::new(100)).unwrap();
//! // ... protocols add and withdraw routes; table 100 follows ...
//! assert!(sync.wait_synced(std::time::Duration::from_secs(5)));
//! println!("{:?}", sync.stop().unwrap());
//! # }
//! ```

mod diff;
mod kernel;
mod worker;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::RouteAddress;

use crate::family::{IpFamily, Ipv4, Ipv6};
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
    /// numbers Linux and iproute2 assign.
    pub protocol: u8,
    /// The kernel route metric (priority) of every route: routes of other
    /// daemons with a lower metric win over rtm's.
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
}

impl SyncConfig {
    /// Table `table`, protocol 201, metric 20, interface ids as ifindexes,
    /// batches of 512, registered as protocol `0x7274_6d6b` ("rtmk"), an
    /// 8 MiB receive buffer.
    pub fn new(table: u32) -> SyncConfig {
        SyncConfig {
            table,
            protocol: 201,
            metric: 20,
            interfaces: Interfaces::SameIndex,
            batch: 512,
            client_protocol: ProtocolId(0x7274_6d6b),
            receive_buffer: 8 << 20,
        }
    }
}

/// A route as the kernel holds it: destination, on-link gateway (none for
/// a directly connected route), output device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelRoute<F: IpFamily> {
    pub(crate) prefix: Prefix<F::Addr>,
    pub(crate) gateway: Option<F::Addr>,
    pub(crate) oif: u32,
}

/// One change to the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<F: IpFamily> {
    /// Create or replace the route to its prefix.
    Replace(KernelRoute<F>),
    /// Remove rtm's route to the prefix.
    Delete(Prefix<F::Addr>),
}

impl<F: IpFamily> Op<F> {
    fn prefix(&self) -> Prefix<F::Addr> {
        match self {
            Op::Replace(r) => r.prefix,
            Op::Delete(p) => *p,
        }
    }
}

/// An IP family as rtnetlink carries it.
pub(crate) trait KernelFamily: IpFamily {
    const AF: AddressFamily;
    const UNSPECIFIED: Self::Addr;
    fn address(a: Self::Addr) -> RouteAddress;
    fn from_address(a: &RouteAddress) -> Option<Self::Addr>;
}

impl KernelFamily for Ipv4 {
    const AF: AddressFamily = AddressFamily::Inet;
    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    fn address(a: Ipv4Addr) -> RouteAddress {
        RouteAddress::Inet(a)
    }
    fn from_address(a: &RouteAddress) -> Option<Ipv4Addr> {
        match a {
            RouteAddress::Inet(a) => Some(*a),
            _ => None,
        }
    }
}

impl KernelFamily for Ipv6 {
    const AF: AddressFamily = AddressFamily::Inet6;
    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    fn address(a: Ipv6Addr) -> RouteAddress {
        RouteAddress::Inet6(a)
    }
    fn from_address(a: &RouteAddress) -> Option<Ipv6Addr> {
        match a {
            RouteAddress::Inet6(a) => Some(*a),
            _ => None,
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
