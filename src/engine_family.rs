//! The families as the engine uses them: the vocabulary of
//! [`crate::family`] bound to each family's forwarding table.
//!
//! Layering: `family` (and `route`) name what a route is made of; `fib`
//! builds forwarding tables over that vocabulary; this module, above both,
//! says which forwarding table each family's RIB feeds. Nothing below it
//! imports it, so the FIB depends on the vocabulary and never the reverse.

use crate::family::{AddressFamily, IpAddressFamily, Ipv4, Ipv6, Ipx};
use crate::fib::{ForwardingTable, LpmFib, NoFib};

/// An address family as the engine works over it: its vocabulary
/// ([`AddressFamily`], which declares `Network`, `NextHop`, `Data` and
/// `ID`: `F::Network` works with `F: Family`, a qualified path names
/// `<F as AddressFamily>::Network`) and the forwarding table its best
/// routes feed.
///
/// Sealed (through [`AddressFamily`]): implemented by [`Ipv4`], [`Ipv6`]
/// and [`Ipx`] only.
pub trait Family: AddressFamily {
    /// The forwarding structure fed by best-route changes.
    #[doc(hidden)]
    type Fib: ForwardingTable<Self>;
}

/// The IP families: networks are prefixes and the FIB ([`LpmFib`])
/// answers longest-prefix-match lookups.
pub trait IpFamily: Family<Fib = LpmFib<Self>> + IpAddressFamily {}

impl Family for Ipv4 {
    type Fib = LpmFib<Ipv4>;
}
impl IpFamily for Ipv4 {}

impl Family for Ipv6 {
    type Fib = LpmFib<Ipv6>;
}
impl IpFamily for Ipv6 {}

impl Family for Ipx {
    type Fib = NoFib;
}
