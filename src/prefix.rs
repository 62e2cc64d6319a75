//! Networks and next-hop addresses: IP prefixes, IPX network numbers, MACs.
//!
//! An IP network is a prefix: an address and a length. A prefix is valid
//! only if its length is in range and it has no host bits set; constructors
//! reject anything else with an error naming the value, and never normalise
//! silently (see the README's "Departures from the spec": RTMv1's free
//! number/mask pairs, A7, are not representable here).

use crate::error::quoted;
use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::RtmError;

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u128 {}
}

/// The unsigned integer an address's bits are held in: `u32` for IPv4,
/// `u128` for IPv6, so the IPv4 forwarding path does 32-bit arithmetic.
/// Sealed; used by the FIB.
pub trait AddrBits: Copy + Eq + Default + Hash + Send + Sync + 'static + sealed::Sealed {
    /// Width in bits.
    const BITS: u32;
    /// The first `t` bits, as an index.
    fn top(self, t: u32) -> usize;
    /// The 6 bits from bit `offset` (MSB = 0); zero past the end.
    fn chunk(self, offset: u32) -> usize;
    /// The 4 bits from bit `offset` (MSB = 0); zero past the end.
    fn nibble(self, offset: u32) -> usize;
    /// The first `len` bits, the rest cleared.
    fn network(self, len: u32) -> Self;
    /// The `len` bits from bit `offset` (MSB = 0), right-aligned;
    /// `offset + len` must not exceed the width.
    fn bits(self, offset: u32, len: u32) -> u128;
}

impl AddrBits for u32 {
    const BITS: u32 = 32;
    #[inline(always)]
    fn top(self, t: u32) -> usize {
        (self >> (32 - t)) as usize
    }
    #[inline(always)]
    fn chunk(self, offset: u32) -> usize {
        // In 64 bits, so offsets up to 58 need no branch.
        (((self as u64) << 32 << offset) >> (64 - 6)) as usize
    }
    #[inline(always)]
    fn nibble(self, offset: u32) -> usize {
        // As `chunk`: offsets up to 60 need no branch.
        (((self as u64) << 32 << offset) >> (64 - 4)) as usize
    }
    #[inline(always)]
    fn network(self, len: u32) -> Self {
        self & (!0u64 << (32 - len.min(32))) as u32
    }
    #[inline(always)]
    fn bits(self, offset: u32, len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            (((self as u128) << 96) << offset) >> (128 - len)
        }
    }
}

impl AddrBits for u128 {
    const BITS: u32 = 128;
    #[inline(always)]
    fn top(self, t: u32) -> usize {
        (self >> (128 - t)) as usize
    }
    #[inline(always)]
    fn chunk(self, offset: u32) -> usize {
        if offset >= 128 {
            0
        } else {
            ((self << offset) >> (128 - 6)) as usize
        }
    }
    #[inline(always)]
    fn nibble(self, offset: u32) -> usize {
        if offset >= 128 {
            0
        } else {
            ((self << offset) >> (128 - 4)) as usize
        }
    }
    #[inline(always)]
    fn network(self, len: u32) -> Self {
        match len {
            0 => 0,
            l if l >= 128 => self,
            l => self & !(u128::MAX >> l),
        }
    }
    #[inline(always)]
    fn bits(self, offset: u32, len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            (self << offset) >> (128 - len)
        }
    }
}

/// An IP address type usable in a [`Prefix`]: `Ipv4Addr` or `Ipv6Addr`.
pub trait IpAddress:
    Copy + Ord + Hash + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static
{
    /// Address width in bits (32 or 128).
    const BITS: u8;
    /// The native integer of the address.
    type Bits: AddrBits;
    /// The address as its native integer.
    fn to_native(self) -> Self::Bits;
    /// The address from its native integer.
    fn from_native(bits: Self::Bits) -> Self;
    /// The address as an integer in its low `BITS` bits.
    fn to_bits(self) -> u128;
    /// The address from an integer's low `BITS` bits.
    fn from_bits(bits: u128) -> Self;
}

impl IpAddress for Ipv4Addr {
    const BITS: u8 = 32;
    type Bits = u32;
    #[inline(always)]
    fn to_native(self) -> u32 {
        u32::from(self)
    }
    #[inline(always)]
    fn from_native(bits: u32) -> Self {
        Ipv4Addr::from(bits)
    }
    fn to_bits(self) -> u128 {
        u32::from(self) as u128
    }
    fn from_bits(bits: u128) -> Self {
        Ipv4Addr::from(bits as u32)
    }
}

impl IpAddress for Ipv6Addr {
    const BITS: u8 = 128;
    type Bits = u128;
    #[inline(always)]
    fn to_native(self) -> u128 {
        u128::from(self)
    }
    #[inline(always)]
    fn from_native(bits: u128) -> Self {
        Ipv6Addr::from(bits)
    }
    fn to_bits(self) -> u128 {
        u128::from(self)
    }
    fn from_bits(bits: u128) -> Self {
        Ipv6Addr::from(bits)
    }
}

/// The netmask of a `len`-bit prefix in an address of `bits` bits.
pub(crate) fn mask_bits(bits: u8, len: u8) -> u128 {
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    match len {
        0 => 0,
        l if l >= bits => all,
        l => all & !(all >> l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_at_every_edge() {
        assert_eq!(mask_bits(32, 0), 0);
        assert_eq!(mask_bits(32, 8), 0xFF00_0000);
        assert_eq!(mask_bits(32, 32), 0xFFFF_FFFF);
        assert_eq!(mask_bits(128, 128), u128::MAX);
        assert_eq!(mask_bits(128, 1), 1 << 127);
        assert!("2001:db8::1/128".parse::<Ipv6Prefix>().is_ok());
        assert!("10.0.0.1/32".parse::<Ipv4Prefix>().is_ok());
        assert_eq!(
            Ipv6Prefix::truncating("2001:db8::1".parse().unwrap(), 200).len(),
            128
        );
    }
}

/// An IP prefix (network): address plus length, with no host bits set.
///
/// Ordered by address, then length (so `10.0.0.0/8 < 10.0.0.0/16 < 10.1.0.0/16`),
/// which is the "network" component of the RTMv1 route order.
///
/// ```
/// use rtm::Ipv4Prefix;
/// let p: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
/// assert_eq!(p.len(), 8);
/// assert!(p.contains("10.1.2.3".parse().unwrap()));
/// assert!("10.0.0.1/8".parse::<Ipv4Prefix>().is_err()); // host bits set
/// assert!("10.0.0.0/33".parse::<Ipv4Prefix>().is_err()); // length out of range
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix<A: IpAddress> {
    addr: A,
    len: u8,
}

/// An IPv4 network.
pub type Ipv4Prefix = Prefix<Ipv4Addr>;
/// An IPv6 network.
pub type Ipv6Prefix = Prefix<Ipv6Addr>;

impl<A: IpAddress> Prefix<A> {
    /// The prefix `addr/len`; rejects a length over the address width and an
    /// address with bits set beyond the length.
    pub fn new(addr: A, len: u8) -> Result<Self, RtmError> {
        if len > A::BITS {
            return Err(RtmError::invalid(format!(
                "prefix {addr}/{len}: length {len} is out of range 0..={}",
                A::BITS
            )));
        }
        let network = addr.to_native().network(len as u32);
        if network != addr.to_native() {
            return Err(RtmError::invalid(format!(
                "prefix {addr}/{len}: host bits are set outside the /{len} mask (the network is {}/{len})",
                A::from_native(network)
            )));
        }
        Ok(Prefix { addr, len })
    }

    /// The `len`-bit prefix containing `addr` (host bits cleared); `len` is
    /// capped at the address width.
    pub fn truncating(addr: A, len: u8) -> Self {
        Prefix::of_native(addr.to_native(), len.min(A::BITS))
    }

    /// The `len`-bit prefix containing `addr`, for `len` at most the width
    /// (the forwarding path's fast form of [`Prefix::truncating`]).
    #[inline(always)]
    pub(crate) fn of_native(addr: A::Bits, len: u8) -> Self {
        Prefix {
            addr: A::from_native(addr.network(len as u32)),
            len,
        }
    }

    /// The network address.
    pub fn addr(&self) -> A {
        self.addr
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// The netmask as an address (`255.255.0.0` for a /16).
    pub fn mask(&self) -> A {
        A::from_bits(mask_bits(A::BITS, self.len))
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: A) -> bool {
        addr.to_native().network(self.len as u32) == self.addr.to_native()
    }

    /// Whether `other` is equal to or more specific than this prefix.
    pub fn covers(&self, other: &Prefix<A>) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// The prefix from an address and a contiguous netmask
    /// (`10.0.0.0` + `255.0.0.0`), as RTMv1's `IP_NETWORK` carries it.
    pub fn from_netmask(addr: A, mask: A) -> Result<Self, RtmError> {
        let m = mask.to_bits();
        let len = m.count_ones() as u8;
        if mask_bits(A::BITS, len) != m {
            return Err(RtmError::invalid(format!(
                "network {addr} mask {mask}: the mask is not contiguous"
            )));
        }
        Prefix::new(addr, len)
    }
}

impl<A: IpAddress> fmt::Display for Prefix<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl<A: IpAddress> fmt::Debug for Prefix<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<A: IpAddress> FromStr for Prefix<A> {
    type Err = RtmError;

    fn from_str(s: &str) -> Result<Self, RtmError> {
        let (a, l) = s.split_once('/').ok_or_else(|| {
            RtmError::invalid(format!(
                "prefix {s}: expected ADDRESS/LENGTH",
                s = quoted(s)
            ))
        })?;
        let addr: A = a.parse().map_err(|_| {
            RtmError::invalid(format!(
                "prefix {s}: {a} is not an IPv{} address",
                if A::BITS == 32 { 4 } else { 6 },
                s = quoted(s),
                a = quoted(a)
            ))
        })?;
        let len: u8 = l.parse().map_err(|_| {
            RtmError::invalid(format!(
                "prefix {s}: {l} is not a prefix length",
                s = quoted(s),
                l = quoted(l)
            ))
        })?;
        Prefix::new(addr, len)
    }
}

/// An IPX network number (32 bits, no mask). Written `ipx:0000abcd`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpxNetwork(pub u32);

impl fmt::Display for IpxNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipx:{:08x}", self.0)
    }
}

impl fmt::Debug for IpxNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for IpxNetwork {
    type Err = RtmError;

    /// Parses `ipx:` followed by exactly 8 hex digits.
    fn from_str(s: &str) -> Result<Self, RtmError> {
        let hex = s.strip_prefix("ipx:").ok_or_else(|| {
            RtmError::invalid(format!(
                "IPX network {s}: expected ipx:<8 hex digits>",
                s = quoted(s)
            ))
        })?;
        if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RtmError::invalid(format!(
                "IPX network {s}: {hex} is not 8 hex digits",
                s = quoted(s),
                hex = quoted(hex)
            )));
        }
        u32::from_str_radix(hex, 16).map(IpxNetwork).map_err(|_| {
            RtmError::invalid(format!("IPX network {s}: bad hex digits", s = quoted(s)))
        })
    }
}

/// A 6-byte MAC address: an IPX next hop. Written `00:11:22:33:44:55`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = RtmError;

    fn from_str(s: &str) -> Result<Self, RtmError> {
        let bad = || {
            RtmError::invalid(format!(
                "MAC address {s}: expected six hex pairs like 00:11:22:33:44:55",
                s = quoted(s)
            ))
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}
