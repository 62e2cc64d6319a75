//! rtnetlink route messages as bytes: the requests the sync writes, and a
//! reader for what comes back that trusts nothing it reads.
//!
//! **Why by hand.** The sync reads datagrams that any program can shape:
//! a dump holds every route some program wrote, a notification describes
//! another program's change, and a root process can forge either. A
//! parser that refuses one attribute it does not know refuses the whole
//! route, and with it, if errors travel with `?`, the whole dump: that is
//! how one `ip route add ... congctl cubic` in any table once stopped the
//! sync for good (netlink-packet-route 0.25 rejects `RTAX_CC_ALGO`). The
//! sync needs a dozen fields of a route message, so this module reads
//! exactly those and steps over every other attribute by its length.
//!
//! **What can go wrong, and what happens then.** A message whose length
//! field does not fit the datagram ends the datagram (nothing after it can
//! be found): [`Messages`] yields one [`WireError`] and stops. A route
//! message whose header is short or whose attributes do not fit it is a
//! [`WireError`] for that message alone; the next message is read as
//! usual. Nothing here panics or allocates on any input (the `netlink`
//! fuzz target feeds it arbitrary bytes).
//!
//! The layouts are Linux's (`linux/netlink.h`, `linux/rtnetlink.h`): a
//! 16-byte `nlmsghdr` (length, type, flags, sequence, port), then for
//! route messages a 12-byte `rtmsg` (family, destination length, source
//! length, tos, table, protocol, scope, type, flags) and 4-byte-aligned
//! attributes (length, type, value), all in host byte order except
//! addresses, which are in network order.
//!
//! ```
//! use rtm::netlink::wire::{self, RouteInfo};
//! let route = RouteInfo {
//!     table: 100,
//!     protocol: 201,
//!     priority: Some(20),
//!     oif: Some(2),
//!     gateway: Some("192.0.2.1".parse().unwrap()),
//!     ..RouteInfo::destination("10.0.0.0".parse().unwrap(), 8)
//! };
//! let mut datagram = Vec::new();
//! wire::push_route(&mut datagram, wire::RTM_NEWROUTE, wire::NLM_F_REQUEST, 7, &route);
//! let (header, body) = wire::messages(&datagram).next().unwrap().unwrap();
//! assert_eq!((header.kind, header.seq), (wire::RTM_NEWROUTE, 7));
//! assert_eq!(RouteInfo::parse(body).unwrap(), route);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An acknowledgement or error: `nlmsgerr`, a negated errno (0 for an ack).
pub const NLMSG_ERROR: u16 = 2;
/// The end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// A route created or replaced (a request, a dump entry, a notification).
pub const RTM_NEWROUTE: u16 = 24;
/// A route removed (a request, a notification).
pub const RTM_DELROUTE: u16 = 25;
/// A route query; with [`NLM_F_DUMP`], a dump of a family's routes.
pub const RTM_GETROUTE: u16 = 26;

/// A device created or changed (`ifinfomsg`).
pub const RTM_NEWLINK: u16 = 16;
/// A device removed.
pub const RTM_DELLINK: u16 = 17;
/// An address removed (`ifaddrmsg`).
pub const RTM_DELADDR: u16 = 21;
/// `IFF_UP`: the device is administratively up.
pub const IFF_UP: u32 = 0x1;

/// A request.
pub const NLM_F_REQUEST: u16 = 0x1;
/// Asks for an acknowledgement.
pub const NLM_F_ACK: u16 = 0x4;
/// The dump changed while it was read: read it again.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// Replace the route at the same key (table, prefix, tos, metric).
pub const NLM_F_REPLACE: u16 = 0x100;
/// Fail with `EEXIST` if a route has the same key.
pub const NLM_F_EXCL: u16 = 0x200;
/// Create the route if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// A dump (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;

/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

/// `RTA_DST`: the destination address.
pub const RTA_DST: u16 = 1;
/// `RTA_OIF`: the output interface index.
pub const RTA_OIF: u16 = 4;
/// `RTA_GATEWAY`: the next hop, of the route's family.
pub const RTA_GATEWAY: u16 = 5;
/// `RTA_PRIORITY`: the metric.
pub const RTA_PRIORITY: u16 = 6;
/// `RTA_MULTIPATH`: several next hops.
pub const RTA_MULTIPATH: u16 = 9;
/// `RTA_TABLE`: the table id, when it does not fit the header's byte.
pub const RTA_TABLE: u16 = 15;
/// `RTA_VIA`: a next hop of another family.
pub const RTA_VIA: u16 = 18;
/// `RTA_ENCAP`: a lightweight tunnel encapsulation.
pub const RTA_ENCAP: u16 = 22;
/// `RTA_NH_ID`: the route's next hop is a next-hop object.
pub const RTA_NH_ID: u16 = 30;

/// `RTN_UNICAST`: a gateway or direct route.
pub const RTN_UNICAST: u8 = 1;
/// `RT_SCOPE_UNIVERSE`: a route through a gateway.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`: a directly connected route.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_NOWHERE`: in a delete, "whatever the route's scope".
pub const RT_SCOPE_NOWHERE: u8 = 255;
/// `RTNH_F_ONLINK`: the gateway is on the link whatever the subnets say.
pub const RTNH_F_ONLINK: u32 = 4;
/// `RT_TABLE_COMPAT`: the header's table byte of a table id above 255.
pub const RT_TABLE_COMPAT: u8 = 252;

const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
/// Attribute type bits that are flags (`NLA_F_NESTED`,
/// `NLA_F_NET_BYTEORDER`), not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Why bytes are not a well-formed message: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The byte offset in the datagram (or message) of the fault.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed rtnetlink message at byte {}: {}",
            self.at, self.what
        )
    }
}

impl std::error::Error for WireError {}

/// A message's `nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type ([`RTM_NEWROUTE`], [`NLMSG_ERROR`], ...).
    pub kind: u16,
    /// `NLM_F_*` flags.
    pub flags: u16,
    /// The sequence number the request carried.
    pub seq: u32,
    /// The port of the socket whose request caused the message (0 for
    /// the kernel's own), as the *sender* wrote it: not a proof of origin
    /// (the datagram's source address is).
    pub port: u32,
}

/// The messages of a datagram, each a header and its payload. See the
/// [module docs](self) for what a fault ends.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    data: &'a [u8],
    at: usize,
}

/// The messages of `datagram`.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        data: datagram,
        at: 0,
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(Header, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.at.min(self.data.len())..];
        if rest.is_empty() {
            return None;
        }
        let at = self.at;
        let fail = |what| Some(Err(WireError { at, what }));
        if rest.len() < NLMSG_HDRLEN {
            self.at = self.data.len();
            return fail("fewer than 16 bytes left for a message header");
        }
        let len = u32_at(rest, 0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            self.at = self.data.len();
            return fail("the message's length does not fit the datagram");
        }
        let header = Header {
            kind: u16_at(rest, 4),
            flags: u16_at(rest, 6),
            seq: u32_at(rest, 8),
            port: u32_at(rest, 12),
        };
        // Messages are 4-byte aligned; the last one's padding may be cut.
        self.at += align4(len);
        Some(Ok((header, &rest[NLMSG_HDRLEN..len])))
    }
}

/// Whether a message of type `kind` with this payload says a device went
/// up or down (`RTM_NEWLINK` whose `ifi_change` has [`IFF_UP`]), went away
/// (`RTM_DELLINK`), or lost an address (`RTM_DELADDR`): the events after
/// which the kernel may have removed routes without notifying each one.
/// A `RTM_NEWLINK` too short for its `ifinfomsg` counts too (better a
/// needless resync than a missed one).
pub fn link_event(kind: u16, payload: &[u8]) -> bool {
    match kind {
        RTM_DELLINK | RTM_DELADDR => true,
        // ifinfomsg: family, pad, type (2), index (4), flags (4), change (4).
        RTM_NEWLINK => payload.len() < 16 || u32_at(payload, 12) & IFF_UP != 0,
        _ => false,
    }
}

/// The errno of an [`NLMSG_ERROR`] message's payload: 0 for an
/// acknowledgement, else the error's (positive) number.
pub fn error_code(payload: &[u8]) -> Result<i32, WireError> {
    if payload.len() < 4 {
        return Err(WireError {
            at: NLMSG_HDRLEN,
            what: "an error message without its error code",
        });
    }
    Ok(i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]).wrapping_neg())
}

/// The fields of a route message (`rtmsg` and the attributes the sync
/// reads or writes). Other attributes are stepped over; the flags below
/// say whether the route holds something this type cannot describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The address family ([`AF_INET`], [`AF_INET6`], or another).
    pub family: u8,
    /// The destination prefix's length.
    pub dst_len: u8,
    /// The source prefix's length (source-specific routes; 0 for most).
    pub src_len: u8,
    /// The type of service (IPv4).
    pub tos: u8,
    /// The table id: `RTA_TABLE` where present, else the header's byte.
    pub table: u32,
    /// The route protocol (`proto` in `ip route`).
    pub protocol: u8,
    /// The scope ([`RT_SCOPE_UNIVERSE`], [`RT_SCOPE_LINK`], ...).
    pub scope: u8,
    /// The route type ([`RTN_UNICAST`], blackhole, ...).
    pub kind: u8,
    /// `rtm_flags` ([`RTNH_F_ONLINK`], ...).
    pub flags: u32,
    /// `RTA_DST` (absent for a default route).
    pub dst: Option<IpAddr>,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`.
    pub oif: Option<u32>,
    /// `RTA_PRIORITY`, the metric (absent is 0 in IPv4).
    pub priority: Option<u32>,
    /// It has `RTA_MULTIPATH` (several next hops).
    pub multipath: bool,
    /// It has a next hop of another family (`RTA_VIA`), an encapsulation
    /// (`RTA_ENCAP`) or a next-hop object (`RTA_NH_ID`).
    pub indirect: bool,
}

impl RouteInfo {
    /// A unicast route of table 0 to `addr`/`len`, universe scope, no
    /// other field set: a base to fill in (`..RouteInfo::destination(..)`).
    pub fn destination(addr: IpAddr, len: u8) -> RouteInfo {
        RouteInfo {
            family: match addr {
                IpAddr::V4(_) => AF_INET,
                IpAddr::V6(_) => AF_INET6,
            },
            dst_len: len,
            src_len: 0,
            tos: 0,
            table: 0,
            protocol: 0,
            scope: RT_SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
            flags: 0,
            dst: Some(addr),
            gateway: None,
            oif: None,
            priority: None,
            multipath: false,
            indirect: false,
        }
    }

    /// Reads a route message's payload (after the `nlmsghdr`). Offsets in
    /// errors count from the payload's start.
    pub fn parse(payload: &[u8]) -> Result<RouteInfo, WireError> {
        if payload.len() < RTMSG_LEN {
            return Err(WireError {
                at: 0,
                what: "a route message shorter than its 12-byte header",
            });
        }
        let mut r = RouteInfo {
            family: payload[0],
            dst_len: payload[1],
            src_len: payload[2],
            tos: payload[3],
            table: u32::from(payload[4]),
            protocol: payload[5],
            scope: payload[6],
            kind: payload[7],
            flags: u32_at(payload, 8),
            dst: None,
            gateway: None,
            oif: None,
            priority: None,
            multipath: false,
            indirect: false,
        };
        let mut at = RTMSG_LEN;
        // `at` may pass the end by the last attribute's padding, which a
        // sender may leave out.
        while at + 4 <= payload.len() {
            let len = usize::from(u16_at(payload, at));
            if len < 4 || len > payload.len() - at {
                return Err(WireError {
                    at,
                    what: "an attribute's length does not fit its message",
                });
            }
            let value = &payload[at + 4..at + len];
            match u16_at(payload, at + 2) & NLA_TYPE_MASK {
                RTA_DST => r.dst = Some(address(r.family, value, at)?),
                RTA_GATEWAY => r.gateway = Some(address(r.family, value, at)?),
                RTA_OIF => r.oif = Some(u32_value(value, at)?),
                RTA_PRIORITY => r.priority = Some(u32_value(value, at)?),
                RTA_TABLE => r.table = u32_value(value, at)?,
                RTA_MULTIPATH => r.multipath = true,
                RTA_VIA | RTA_ENCAP | RTA_NH_ID => r.indirect = true,
                _ => {}
            }
            at += align4(len);
        }
        Ok(r)
    }

    /// The destination prefix's address: `RTA_DST`, or the family's
    /// unspecified address for a default route (length 0, no `RTA_DST`);
    /// `None` for another family or a non-default route without one.
    pub fn destination_addr(&self) -> Option<IpAddr> {
        match (self.dst, self.family) {
            (Some(a), _) => Some(a),
            (None, AF_INET) if self.dst_len == 0 => Some(Ipv4Addr::UNSPECIFIED.into()),
            (None, AF_INET6) if self.dst_len == 0 => Some(Ipv6Addr::UNSPECIFIED.into()),
            _ => None,
        }
    }
}

/// Appends one route message to `buf`: header (type `kind`, `flags`,
/// `seq`, port 0), `rtmsg`, then the attributes `route` has
/// (`RTA_TABLE` always, so any table id works). `multipath` and
/// `indirect` are not written: this writes single-path routes only.
pub fn push_route(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, route: &RouteInfo) {
    let start = buf.len();
    buf.extend_from_slice(&[0; NLMSG_HDRLEN]); // the length is set below
    buf[start + 4..start + 6].copy_from_slice(&kind.to_ne_bytes());
    buf[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
    buf[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
    let table_byte = u8::try_from(route.table).unwrap_or(RT_TABLE_COMPAT);
    buf.extend_from_slice(&[
        route.family,
        route.dst_len,
        route.src_len,
        route.tos,
        table_byte,
        route.protocol,
        route.scope,
        route.kind,
    ]);
    buf.extend_from_slice(&route.flags.to_ne_bytes());
    if let Some(a) = route.dst {
        push_address(buf, RTA_DST, a);
    }
    push_attr(buf, RTA_TABLE, &route.table.to_ne_bytes());
    if let Some(p) = route.priority {
        push_attr(buf, RTA_PRIORITY, &p.to_ne_bytes());
    }
    if let Some(o) = route.oif {
        push_attr(buf, RTA_OIF, &o.to_ne_bytes());
    }
    if let Some(g) = route.gateway {
        push_address(buf, RTA_GATEWAY, g);
    }
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn push_address(buf: &mut Vec<u8>, kind: u16, a: IpAddr) {
    match a {
        IpAddr::V4(a) => push_attr(buf, kind, &a.octets()),
        IpAddr::V6(a) => push_attr(buf, kind, &a.octets()),
    }
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + (align4(len) - len), 0);
}

fn address(family: u8, value: &[u8], at: usize) -> Result<IpAddr, WireError> {
    let bad = |what| WireError { at, what };
    match family {
        AF_INET => <[u8; 4]>::try_from(value)
            .map(|b| IpAddr::from(Ipv4Addr::from(b)))
            .map_err(|_| bad("an address attribute of an IPv4 route is not 4 bytes")),
        AF_INET6 => <[u8; 16]>::try_from(value)
            .map(|b| IpAddr::from(Ipv6Addr::from(b)))
            .map_err(|_| bad("an address attribute of an IPv6 route is not 16 bytes")),
        _ => Err(bad(
            "an address attribute in a route of a family other than IPv4 and IPv6",
        )),
    }
}

fn u32_value(value: &[u8], at: usize) -> Result<u32, WireError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| WireError {
            at,
            what: "a 32-bit attribute (RTA_OIF, RTA_PRIORITY, RTA_TABLE) is not 4 bytes",
        })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `ip route add 10.99.2.0/24 via 192.0.2.1 dev veth0
    /// table 200 congctl cubic` as the kernel dumps it: an `RTA_METRICS`
    /// nest holding `RTAX_CC_ALGO` ("cubic"), which netlink-packet-route
    /// 0.25 refuses.
    fn congctl_route() -> Vec<u8> {
        let mut buf = Vec::new();
        let r = RouteInfo {
            table: 200,
            protocol: 3,
            oif: Some(2),
            gateway: Some("192.0.2.1".parse().unwrap()),
            ..RouteInfo::destination("10.99.2.0".parse().unwrap(), 24)
        };
        push_route(&mut buf, RTM_NEWROUTE, 0x2, 9, &r);
        // RTA_METRICS (8), nested, holding RTAX_CC_ALGO (16) = "cubic\0".
        let mut nest = Vec::new();
        push_attr(&mut nest, 16, b"cubic\0");
        push_attr(&mut buf, 8 | 0x8000, &nest);
        let len = buf.len() as u32;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        buf
    }

    /// Catches a reader that refuses a route for an attribute it does not
    /// know (the `congctl` route that stopped the sync) or loses the
    /// fields around it.
    #[test]
    fn unknown_attributes_are_stepped_over() {
        let buf = congctl_route();
        let (h, body) = messages(&buf).next().unwrap().unwrap();
        assert_eq!(h.kind, RTM_NEWROUTE);
        let r = RouteInfo::parse(body).unwrap();
        assert_eq!(r.table, 200);
        assert_eq!(r.dst, Some("10.99.2.0".parse().unwrap()));
        assert_eq!(r.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.oif, Some(2));
    }

    /// Catches a reader that trusts lengths: every truncation of a valid
    /// datagram, and a length field of 0 or past the end, must give an
    /// error or fewer messages, never a panic or bytes read out of place.
    #[test]
    fn truncations_and_bad_lengths_are_errors() {
        let one = congctl_route().len();
        let mut two = congctl_route();
        two.extend(congctl_route());
        for cut in 0..=two.len() {
            let read: Vec<_> = messages(&two[..cut]).collect();
            let whole = usize::from(cut >= one) + usize::from(cut == 2 * one);
            let oks = read.iter().filter(|m| m.is_ok()).count();
            assert_eq!(oks, whole, "cut at {cut}");
            assert_eq!(
                read.len() - oks,
                usize::from(cut != one && cut % one != 0),
                "cut at {cut}"
            );
            for (_, body) in read.into_iter().flatten() {
                assert_eq!(RouteInfo::parse(body).unwrap().table, 200);
            }
        }
        let mut zero = two.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        let got: Vec<_> = messages(&zero).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        // An attribute whose length runs past its message.
        let mut long = congctl_route();
        long[16 + 12..16 + 14].copy_from_slice(&u16::MAX.to_ne_bytes());
        let (_, body) = messages(&long).next().unwrap().unwrap();
        assert_eq!(
            RouteInfo::parse(body).unwrap_err().what,
            "an attribute's length does not fit its message"
        );
    }

    /// Catches a reader that steps past the end: a last attribute whose
    /// length is not a multiple of 4, with its padding left out (the
    /// kernel pads; a forger need not), once made `payload.len() - at`
    /// underflow.
    #[test]
    fn an_unpadded_last_attribute_is_read_whole() {
        let mut buf = Vec::new();
        let r = RouteInfo {
            table: 7,
            ..RouteInfo::destination("10.0.0.0".parse().unwrap(), 8)
        };
        push_route(&mut buf, RTM_NEWROUTE, 0, 1, &r);
        push_attr(&mut buf, 99, &[1, 2, 3, 4, 5]); // 9 bytes and 3 of padding
        buf.truncate(buf.len() - 3);
        let len = buf.len() as u32;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        let (_, body) = messages(&buf).next().unwrap().unwrap();
        assert_eq!(RouteInfo::parse(body).unwrap(), r);
    }

    /// Catches an encoder and reader that disagree (byte order, the
    /// table byte of ids above 255, a dropped attribute): what is written
    /// reads back the same, in both families.
    #[test]
    fn routes_round_trip() {
        for r in [
            RouteInfo {
                table: 1000,
                protocol: 201,
                scope: RT_SCOPE_LINK,
                priority: Some(20),
                oif: Some(7),
                ..RouteInfo::destination("203.0.113.0".parse().unwrap(), 24)
            },
            RouteInfo {
                table: 100,
                flags: RTNH_F_ONLINK,
                gateway: Some("fe80::1".parse().unwrap()),
                ..RouteInfo::destination("2001:db8::".parse().unwrap(), 32)
            },
        ] {
            let mut buf = Vec::new();
            push_route(&mut buf, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, 3, &r);
            let (h, body) = messages(&buf).next().unwrap().unwrap();
            assert_eq!((h.kind, h.flags, h.seq), (RTM_DELROUTE, 5, 3));
            assert_eq!(RouteInfo::parse(body).unwrap(), r);
            let table_byte = body[4];
            assert_eq!(
                table_byte,
                if r.table > 255 { RT_TABLE_COMPAT } else { 100 }
            );
        }
    }
}
