//! The rtnetlink socket and the route messages rtm sends and reads.
//!
//! One request socket, connected to the kernel. Requests go out in
//! batches: many `RTM_NEWROUTE` / `RTM_DELROUTE` messages in one `send`,
//! each with `NLM_F_ACK`, and then one acknowledgement per message is read
//! back (`NETLINK_CAP_ACK` keeps them 36 bytes), so a batch of 512 costs two
//! system calls and a few ack reads instead of a thousand round trips.
//! Dumps (`RTM_GETROUTE` with `NLM_F_DUMP`) read a family's whole kernel
//! table; rtm keeps only the routes of its table id and protocol number.
//! A [`Monitor`] socket hears the kernel's route notifications, without
//! the echoes of rtm's own requests.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{KernelFamily, KernelRoute, Op, SyncConfig};
use crate::prefix::Prefix;

/// `RT_TABLE_COMPAT`: the header's table byte when the id needs `RTA_TABLE`.
const RT_TABLE_COMPAT: u8 = 252;

/// What the kernel answered to one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct BatchResult {
    /// Replaces the kernel accepted.
    pub(crate) replaced: usize,
    /// Deletes the kernel accepted.
    pub(crate) deleted: usize,
    /// Deletes of routes that were not there (`ESRCH`): already as wanted.
    pub(crate) already_gone: usize,
    /// Messages the kernel refused, with the last refusal's text.
    pub(crate) refused: usize,
    /// The last refusal: the operation and the kernel's error.
    pub(crate) last_refusal: Option<String>,
}

/// A connected rtnetlink request socket.
pub(crate) struct Kernel {
    socket: Socket,
    /// The socket's netlink port: the kernel's notifications of rtm's own
    /// changes carry it.
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl Kernel {
    /// Opens and connects the socket, with a receive buffer for large
    /// dumps and acknowledgements without the echoed request.
    pub(crate) fn open(receive_buffer: usize) -> io::Result<Kernel> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let port = socket.bind_auto()?.port_number();
        socket.connect(&SocketAddr::new(0, 0))?;
        set_receive_buffer(&socket, receive_buffer);
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        Ok(Kernel {
            socket,
            port,
            seq: 1,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// The port the kernel's notifications of this socket's changes carry.
    pub(crate) fn port(&self) -> u32 {
        self.port
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn push(&mut self, mut msg: NetlinkMessage<RouteNetlinkMessage>, flags: u16) -> u32 {
        let seq = self.next_seq();
        msg.header.flags = flags;
        msg.header.sequence_number = seq;
        msg.finalize();
        let at = self.buf.len();
        self.buf.resize(at + msg.buffer_len(), 0);
        msg.serialize(&mut self.buf[at..]);
        seq
    }

    /// Sends `ops` as one batch and reads every acknowledgement.
    /// `Err(ENOBUFS)` means acknowledgements were lost: what the kernel
    /// holds is unknown, and the caller resynchronises.
    pub(crate) fn apply<F: KernelFamily>(
        &mut self,
        ops: &[Op<F>],
        config: &SyncConfig,
    ) -> io::Result<BatchResult> {
        self.buf.clear();
        let first = self.seq.wrapping_add(1).max(1);
        for op in ops {
            let (msg, flags) = match op {
                Op::Replace(r) => (
                    route_message::<F>(RouteNetlinkMessage::NewRoute, r.prefix, Some(r), config),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                ),
                Op::Delete(p) => (
                    route_message::<F>(RouteNetlinkMessage::DelRoute, *p, None, config),
                    NLM_F_REQUEST | NLM_F_ACK,
                ),
            };
            self.push(msg, flags);
        }
        self.socket.send(&self.buf, 0)?;
        let mut result = BatchResult::default();
        let mut pending = ops.len();
        while pending > 0 {
            let (data, _) = self.socket.recv_from_full()?;
            for msg in messages(&data)? {
                let NetlinkPayload::Error(e) = msg.payload else {
                    continue;
                };
                let seq = msg.header.sequence_number;
                let index = seq.wrapping_sub(first) as usize;
                if index >= ops.len() {
                    continue; // a late answer to an earlier, abandoned batch
                }
                pending -= 1;
                match e.code {
                    None if matches!(ops[index], Op::Replace(_)) => result.replaced += 1,
                    None => result.deleted += 1,
                    Some(code)
                        if -code.get() == libc::ESRCH && matches!(ops[index], Op::Delete(_)) =>
                    {
                        result.already_gone += 1
                    }
                    Some(code) => {
                        result.refused += 1;
                        result.last_refusal = Some(format!(
                            "{}: {}",
                            ops[index],
                            io::Error::from_raw_os_error(-code.get())
                        ));
                    }
                }
            }
        }
        Ok(result)
    }

    /// The routes of `F` in the kernel table with rtm's table id and
    /// protocol number. A dump the kernel marks interrupted (the table
    /// changed under it) is read again.
    pub(crate) fn dump<F: KernelFamily>(
        &mut self,
        config: &SyncConfig,
    ) -> io::Result<HashMap<Prefix<F::Addr>, KernelRoute<F>>> {
        'again: loop {
            self.buf.clear();
            let mut m = RouteMessage::default();
            m.header.address_family = F::AF;
            let seq = self.push(
                NetlinkMessage::from(RouteNetlinkMessage::GetRoute(m)),
                NLM_F_REQUEST | NLM_F_DUMP,
            );
            self.socket.send(&self.buf, 0)?;
            let mut routes = HashMap::new();
            loop {
                let (data, _) = self.socket.recv_from_full()?;
                for msg in messages(&data)? {
                    if msg.header.sequence_number != seq {
                        continue;
                    }
                    if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                        continue 'again;
                    }
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(routes),
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                            if let Some(k) = parse_route::<F>(&r, config) {
                                routes.insert(k.prefix, k);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A prefix of rtm's table someone else changed: the kernel's route
/// notification named it, and it came from another socket than rtm's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// An IPv4 prefix.
    V4(Prefix<std::net::Ipv4Addr>),
    /// An IPv6 prefix.
    V6(Prefix<std::net::Ipv6Addr>),
}

/// A socket subscribed to the kernel's IPv4 and IPv6 route notifications
/// (`RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`), read without blocking: how
/// the sync notices `ip route del` of its routes while it runs. Its
/// `ENOBUFS` (notifications lost: the classic netlink listener's overflow)
/// asks for a full resynchronisation.
pub(crate) struct Monitor {
    socket: Socket,
}

impl Monitor {
    pub(crate) fn open() -> io::Result<Monitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(libc::RTNLGRP_IPV4_ROUTE)?;
        socket.add_membership(libc::RTNLGRP_IPV6_ROUTE)?;
        socket.set_non_blocking(true)?;
        set_receive_buffer(&socket, DUMP_BUFFER);
        Ok(Monitor { socket })
    }

    /// Has the kernel drop the notifications of `port`'s own changes
    /// before they reach this socket (a socket filter, as FRR's zebra
    /// installs): a full table's load would otherwise send a million
    /// echoes, overflow the buffer and force resyncs for nothing.
    pub(crate) fn ignore(&self, port: u32) -> io::Result<()> {
        let insn = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        let program = [
            // A = nlmsg_pid, at offset 12 of the header. BPF loads words
            // big-endian, so `port` is compared as its bytes read that way.
            insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 12),
            insn(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                0,
                1,
                u32::from_be_bytes(port.to_ne_bytes()),
            ),
            insn(libc::BPF_RET | libc::BPF_K, 0, 0, 0), // ours: drop
            insn(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX), // keep whole
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `program`, both alive across the call,
        // which copies the program into the kernel and keeps no pointer.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The prefixes of `config.table` that sockets other than `own_port`
    /// changed since the last call (routes of any protocol: a replace by
    /// another protocol's route removes rtm's). `Err(ENOBUFS)` when
    /// notifications were lost.
    pub(crate) fn changed(&self, config: &SyncConfig, own_port: u32) -> io::Result<Vec<Foreign>> {
        let mut out = Vec::new();
        loop {
            let data = match self.socket.recv_from_full() {
                Ok((data, _)) => data,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(e),
            };
            for msg in messages(&data)? {
                if msg.header.port_number == own_port {
                    continue;
                }
                let (NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m))
                | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m))) = &msg.payload
                else {
                    continue;
                };
                if let Some(p) = table_prefix::<crate::family::Ipv4>(m, config.table) {
                    out.push(Foreign::V4(p));
                } else if let Some(p) = table_prefix::<crate::family::Ipv6>(m, config.table) {
                    out.push(Foreign::V6(p));
                }
            }
        }
    }
}

/// The receive buffer of a dump's or the monitor's socket.
pub(crate) const DUMP_BUFFER: usize = 8 << 20;

/// Sets a socket's receive buffer: past `net.core.rmem_max` where the
/// process may (`SO_RCVBUFFORCE`, `CAP_NET_ADMIN`, which programming
/// routes needs anyway), else as far as the limit allows. Best effort: a
/// smaller buffer only makes `ENOBUFS`, and with it a resync, likelier.
fn set_receive_buffer(socket: &Socket, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: passes a pointer to `value`, alive across the call, with its
    // size; the kernel copies it.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_rx_buf_sz(bytes);
    }
}

/// The messages in one datagram.
fn messages(data: &[u8]) -> io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= data.len() {
        let len = NetlinkBuffer::new(&data[at..]).length() as usize;
        if len < 16 || at + len > data.len() {
            break;
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..at + len])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {e}")))?;
        out.push(msg);
        // Messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    Ok(out)
}

/// The header fields that mark a route as rtm's: family, length, table,
/// protocol.
fn header<F: KernelFamily>(prefix: Prefix<F::Addr>, config: &SyncConfig) -> RouteHeader {
    RouteHeader {
        address_family: F::AF,
        destination_prefix_length: prefix.len(),
        table: u8::try_from(config.table)
            .ok()
            .filter(|t| *t != 0)
            .unwrap_or(RT_TABLE_COMPAT),
        protocol: RouteProtocol::from(config.protocol),
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    }
}

/// An `RTM_NEWROUTE` (with `route`) or `RTM_DELROUTE` for `prefix`.
fn route_message<F: KernelFamily>(
    kind: fn(RouteMessage) -> RouteNetlinkMessage,
    prefix: Prefix<F::Addr>,
    route: Option<&KernelRoute<F>>,
    config: &SyncConfig,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = RouteMessage::default();
    m.header = header::<F>(prefix, config);
    m.attributes
        .push(RouteAttribute::Destination(F::address(prefix.addr())));
    m.attributes.push(RouteAttribute::Table(config.table));
    m.attributes.push(RouteAttribute::Priority(config.metric));
    if let Some(r) = route {
        m.attributes.push(RouteAttribute::Oif(r.oif));
        match r.gateway {
            Some(gw) => {
                // On-link: the RTM's interface is authoritative, so the
                // gateway need not lie in a connected subnet.
                m.header.flags = RouteFlags::Onlink;
                m.attributes.push(RouteAttribute::Gateway(F::address(gw)));
            }
            None => m.header.scope = RouteScope::Link,
        }
    }
    NetlinkMessage::from(kind(m))
}

/// The route's prefix if it is of family `F` and in table `table`.
fn table_prefix<F: KernelFamily>(m: &RouteMessage, table: u32) -> Option<Prefix<F::Addr>> {
    if m.header.address_family != F::AF {
        return None;
    }
    let mut in_table = u32::from(m.header.table);
    let mut dst = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => in_table = *t,
            RouteAttribute::Destination(d) => dst = F::from_address(d),
            _ => {}
        }
    }
    if in_table != table {
        return None;
    }
    let len = m.header.destination_prefix_length;
    match dst {
        Some(a) => Prefix::new(a, len).ok(),
        None if len == 0 => Some(Prefix::truncating(F::UNSPECIFIED, 0)),
        None => None,
    }
}

/// A dumped route, if it is one of rtm's (its table and protocol).
fn parse_route<F: KernelFamily>(m: &RouteMessage, config: &SyncConfig) -> Option<KernelRoute<F>> {
    if u8::from(m.header.protocol) != config.protocol {
        return None;
    }
    let prefix = table_prefix::<F>(m, config.table)?;
    let mut gateway = None;
    let mut oif = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Gateway(g) => gateway = F::from_address(g),
            RouteAttribute::Oif(o) => oif = *o,
            _ => {}
        }
    }
    Some(KernelRoute {
        prefix,
        gateway,
        oif,
    })
}

impl<F: KernelFamily> std::fmt::Display for Op<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Replace(r) => write!(f, "replace {r}"),
            Op::Delete(p) => write!(f, "delete {p}"),
        }
    }
}

impl<F: KernelFamily> std::fmt::Display for KernelRoute<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " oif {}", self.oif)
    }
}
