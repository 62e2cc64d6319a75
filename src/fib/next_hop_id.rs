//! Lookups that answer a next-hop id, as DPDK's and Linux's FIBs do: the
//! leaf's own 32 bits (the id of its interned (next hop, interface,
//! protocol) tuple and the matched prefix length), without reading the
//! next-hop table or building a [`FibEntry`](super::FibEntry).
//!
//! An id is only meaningful while no writer can have recycled it, that is
//! while the reader that returned it has not reported a quiescent state.
//! [`NextHopId`] borrows that reader, so the compiler enforces exactly
//! this: [`FibReader::quiescent`] and [`FibReader::offline`] cannot run
//! while an id from the reader is alive, and resolving it
//! ([`NextHopId::resolve`]) reads an entry no writer may touch yet.
//!
//! ```compile_fail,E0502
//! # use rtm::{Ipv4, LpmFib, ProtocolId};
//! let fib = LpmFib::<Ipv4>::new();
//! fib.insert("10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap(), 1, ProtocolId(1));
//! let mut reader = fib.reader();
//! let id = reader.lookup_id("10.1.2.3".parse().unwrap()).unwrap();
//! reader.quiescent(); // refused: `id` still borrows the reader
//! id.resolve();
//! ```

use std::fmt;
use std::num::NonZeroU32;

use super::{Bits, FibReader, LpmFib};
use crate::family::IpAddressFamily;
use crate::route::ProtocolId;

/// What a next-hop id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FibNextHop<F: IpAddressFamily> {
    /// Where to send the packet.
    pub next_hop: F::Addr,
    /// Out of which interface.
    pub interface: u32,
    /// The protocol that owns the best route.
    pub protocol: ProtocolId,
}

/// A lookup's answer as a compact id (see the module docs): valid while
/// the reader that returned it is borrowed, which keeps the reader from
/// reporting a quiescent state meanwhile.
#[derive(Clone, Copy)]
pub struct NextHopId<'r, F: IpAddressFamily> {
    fib: &'r LpmFib<F>,
    /// The leaf: `id << 8 | prefix length`, never 0.
    leaf: NonZeroU32,
}

impl<F: IpAddressFamily> fmt::Debug for NextHopId<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextHopId")
            .field("id", &self.raw())
            .field("prefix_len", &self.prefix_len())
            .finish()
    }
}

impl<'r, F: IpAddressFamily> NextHopId<'r, F> {
    /// The id as a number: equal for every prefix whose best route has the
    /// same (next hop, interface, protocol), or the same ECMP group of
    /// them, below 2^24; ids of groups are 2^23 and above
    /// ([`NextHopId::is_group`]). It may name another tuple or group once
    /// the reader reports a quiescent state.
    #[inline]
    pub fn raw(self) -> u32 {
        self.leaf.get() >> 8
    }

    /// The length of the prefix that matched.
    #[inline]
    pub fn prefix_len(self) -> u8 {
        self.leaf.get() as u8
    }

    /// Whether the id names an ECMP group of paths
    /// ([`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)).
    #[inline]
    pub fn is_group(self) -> bool {
        self.raw() & super::GROUP_BIT != 0
    }

    /// The next hop, interface and protocol the id stands for: one read of
    /// the FIB's next-hop table; for a group, its first path that is up
    /// (as [`LpmFib::lookup`]).
    #[inline]
    pub fn resolve(self) -> FibNextHop<F> {
        self.resolve_flow(0)
    }

    /// As [`NextHopId::resolve`], a group's path picked by the flow's
    /// `hash` (as [`LpmFib::lookup_flow`]).
    #[inline]
    pub fn resolve_flow(self, hash: u32) -> FibNextHop<F> {
        // The reader that returned the id is online and has not reported
        // since (it is borrowed for 'r), so neither the id's entry nor its
        // group's members can have been recycled: see `crate::intern` and
        // the FIB's `group` module.
        let nh = self.fib.hop_of(self.raw(), hash);
        FibNextHop {
            next_hop: nh.next_hop,
            interface: nh.interface,
            protocol: nh.protocol,
        }
    }

    /// The answer for the leaf a lookup of this FIB found (`None` for 0).
    #[inline(always)]
    fn of(fib: &'r LpmFib<F>, leaf: u32) -> Option<Self> {
        NonZeroU32::new(leaf).map(|leaf| NextHopId { fib, leaf })
    }
}

impl<'a, F: IpAddressFamily> FibReader<'a, F> {
    /// The longest-prefix match for `addr` as a next-hop id: the top-level
    /// entry and the nodes below it, nothing else (no next-hop table read,
    /// no prefix built). `None` if no route covers `addr`.
    ///
    /// ```
    /// use rtm::{Ipv4, LpmFib, ProtocolId};
    /// let fib = LpmFib::<Ipv4>::new();
    /// fib.insert("10.0.0.0/8".parse()?, "192.0.2.1".parse()?, 3, ProtocolId(1));
    /// fib.insert("11.0.0.0/8".parse()?, "192.0.2.1".parse()?, 3, ProtocolId(1));
    /// let reader = fib.reader();
    /// let a = reader.lookup_id("10.1.2.3".parse()?).unwrap();
    /// let b = reader.lookup_id("11.9.9.9".parse()?).unwrap();
    /// assert_eq!(a.raw(), b.raw()); // one tuple, one id
    /// assert_eq!((a.prefix_len(), a.resolve().interface), (8, 3));
    /// assert!(reader.lookup_id("12.0.0.1".parse()?).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn lookup_id(&self, addr: F::Addr) -> Option<NextHopId<'_, F>> {
        let fib = self.reg.fib;
        // Online since registration or the last report, and no report can
        // run while `&self` (and so the id) is borrowed.
        NextHopId::of(
            fib,
            fib.core.lookup(crate::prefix::IpAddress::to_native(addr)),
        )
    }

    /// As [`FibReader::lookup_batch`], answering next-hop ids: every
    /// address of `addrs` into `out` (as many as the shorter holds; returns
    /// that count).
    pub fn lookup_batch_ids<'r>(
        &'r self,
        addrs: &[F::Addr],
        out: &mut [Option<NextHopId<'r, F>>],
    ) -> usize {
        let fib = self.reg.fib;
        fib.batch_leaves(addrs, out, |_: Bits<F>, leaf| NextHopId::of(fib, leaf))
    }
}
