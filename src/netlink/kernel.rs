//! The rtnetlink sockets: the request socket rtm's changes and dumps go
//! through, and the monitor that hears everybody else's.
//!
//! Requests go out in batches: many `RTM_NEWROUTE` / `RTM_DELROUTE`
//! messages in one `send`, each with `NLM_F_ACK`, and then one
//! acknowledgement per message is read back (`NETLINK_CAP_ACK` keeps them
//! 36 bytes), so a batch of 512 costs two system calls and a few ack reads
//! instead of a thousand round trips. Dumps (`RTM_GETROUTE` with
//! `NLM_F_DUMP`) are strict (`NETLINK_GET_STRICT_CHK`): the kernel sends
//! rtm's table alone, so another table's size costs rtm nothing. The
//! request and dump sockets are connected to the kernel, which then
//! refuses datagrams from any other sender; the monitor, which listens to
//! groups, checks each datagram's source instead. Everything read is
//! decoded by [`wire`](super::wire),
//! which steps over what it does not know: a route rtm cannot read is
//! counted and skipped, never an error that ends the sync.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::view::Outcome;
use super::wire::{self, RouteInfo};
use super::{Held, KernelFamily, Observed, Op, SyncConfig};
use crate::prefix::Prefix;

/// What could not be read: how many messages, and the last one's fault.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) count: u64,
    pub(crate) last: Option<String>,
}

impl Unreadable {
    fn note(&mut self, what: impl std::fmt::Display) {
        self.count += 1;
        self.last = Some(what.to_string());
    }
}

/// The routes of rtm's table a dump found, with what it could not read.
#[derive(Debug, Default)]
pub(crate) struct Dump<F: KernelFamily> {
    pub(crate) routes: Vec<Observed<F>>,
    /// Route messages read, of any table (with strict dumps, rtm's alone).
    pub(crate) read: u64,
    pub(crate) unreadable: Unreadable,
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
        // Best effort: a kernel before 4.20 dumps every table, which the
        // reader filters instead.
        let _ = socket.set_netlink_get_strict_chk(true);
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

    /// The next sequence number. It wraps through 0 too, so a batch's
    /// numbers are `first`, `first + 1`, ... modulo 2^32 (skipping 0 once
    /// put the acks of a batch across the wrap one place off, and the
    /// batch's last ack was never counted).
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `ops` as one batch and reads every acknowledgement: one
    /// outcome per operation, in order. `Err(ENOBUFS)` means
    /// acknowledgements were lost: what the kernel holds is unknown, and
    /// the caller resynchronises.
    pub(crate) fn apply<F: KernelFamily>(
        &mut self,
        ops: &[Op<F>],
        config: &SyncConfig,
    ) -> io::Result<Vec<Outcome>> {
        self.buf.clear();
        let first = self.seq.wrapping_add(1);
        for op in ops {
            let seq = self.next_seq();
            let (kind, flags, route) = request::<F>(op, config);
            wire::push_route(
                &mut self.buf,
                kind,
                flags | wire::NLM_F_REQUEST | wire::NLM_F_ACK,
                seq,
                &route,
            );
        }
        self.socket.send(&self.buf, 0)?;
        let mut outcomes = vec![None; ops.len()];
        let mut pending = ops.len();
        while pending > 0 {
            let (data, _) = self.socket.recv_from_full()?;
            for (header, body) in wire::messages(&data).flatten() {
                if header.kind != wire::NLMSG_ERROR {
                    continue;
                }
                let index = header.seq.wrapping_sub(first) as usize;
                let Some(slot) = outcomes.get_mut(index) else {
                    continue; // a late answer to an earlier, abandoned batch
                };
                if slot.is_some() {
                    continue;
                }
                let code = wire::error_code(body).unwrap_or(libc::EPROTO);
                *slot = Some(match (code, &ops[index]) {
                    (0, _) => Outcome::Done,
                    (libc::ESRCH, Op::Delete(..)) => Outcome::Gone,
                    (libc::EEXIST, Op::Create(_)) => Outcome::Exists,
                    (libc::ENOENT, Op::Replace(_)) => Outcome::Missing,
                    (code, _) => Outcome::Refused(code),
                });
                pending -= 1;
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Refused(libc::EPROTO)))
            .collect())
    }

    /// The routes of `F` in rtm's table, of every protocol. A dump the
    /// kernel marks interrupted (the table changed under it) is read
    /// again; a table the kernel never made is empty.
    pub(crate) fn dump<F: KernelFamily>(&mut self, config: &SyncConfig) -> io::Result<Dump<F>> {
        loop {
            self.buf.clear();
            let seq = self.next_seq();
            let request = RouteInfo {
                family: F::AF,
                dst_len: 0,
                table: config.table,
                kind: 0,
                dst: None,
                ..RouteInfo::destination(F::to_ip(F::UNSPECIFIED), 0)
            };
            wire::push_route(
                &mut self.buf,
                wire::RTM_GETROUTE,
                wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
                seq,
                &request,
            );
            self.socket.send(&self.buf, 0)?;
            let mut dump = Dump::default();
            // The table changed under the dump: read it to its end (a new
            // request while one runs is refused, EBUSY), then again.
            let mut interrupted = false;
            'read: loop {
                let (data, _) = self.socket.recv_from_full()?;
                for message in wire::messages(&data) {
                    let (header, body) = match message {
                        Ok(m) => m,
                        Err(e) => {
                            dump.unreadable.note(e);
                            continue;
                        }
                    };
                    if header.seq != seq {
                        continue;
                    }
                    interrupted |= header.flags & wire::NLM_F_DUMP_INTR != 0;
                    match header.kind {
                        // The dump's own error, if any, is in its end.
                        wire::NLMSG_DONE => match wire::error_code(body).unwrap_or(0) {
                            _ if interrupted => break 'read,
                            0 => return Ok(dump),
                            // A strict dump of a table never made.
                            libc::ENOENT => return Ok(Dump::default()),
                            code => return Err(io::Error::from_raw_os_error(code)),
                        },
                        wire::NLMSG_ERROR => match wire::error_code(body) {
                            Ok(0) => {}
                            Ok(code) => return Err(io::Error::from_raw_os_error(code)),
                            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                        },
                        wire::RTM_NEWROUTE => {
                            dump.read += 1;
                            let seen = RouteInfo::parse(body)
                                .map_err(|e| e.to_string())
                                .and_then(|r| observed::<F>(header, &r, config));
                            match seen {
                                Ok(seen) => dump.routes.extend(seen),
                                Err(e) => dump.unreadable.note(e),
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The message that carries `op`: type, flags, route.
fn request<F: KernelFamily>(op: &Op<F>, config: &SyncConfig) -> (u16, u16, RouteInfo) {
    let base = |prefix: Prefix<F::Addr>, metric: u32| RouteInfo {
        table: config.table,
        protocol: config.protocol,
        priority: Some(metric),
        ..RouteInfo::destination(F::to_ip(prefix.addr()), prefix.len())
    };
    match op {
        Op::Create(r) | Op::Replace(r) => {
            let mut m = base(r.prefix, config.metric);
            m.oif = Some(r.oif);
            match r.gateway {
                Some(gw) => {
                    // On-link: the RTM's interface is authoritative, so the
                    // gateway need not lie in a connected subnet.
                    m.flags = wire::RTNH_F_ONLINK;
                    m.gateway = Some(F::to_ip(gw));
                }
                None => m.scope = wire::RT_SCOPE_LINK,
            }
            let flags = match op {
                Op::Create(_) => wire::NLM_F_CREATE | wire::NLM_F_EXCL,
                _ => wire::NLM_F_REPLACE,
            };
            (wire::RTM_NEWROUTE, flags, m)
        }
        // Any scope (a connected route is `scope link`; the default,
        // universe, would match only routes through a gateway) and any
        // type, but rtm's protocol and the metric the route has.
        Op::Delete(p, metric, held) => {
            let mut m = RouteInfo {
                scope: wire::RT_SCOPE_NOWHERE,
                kind: 0,
                ..base(*p, *metric)
            };
            // IPv6: without a gateway the delete takes every route of
            // the sibling group, another program's appended one too.
            if let (true, Some(h)) = (F::AF == wire::AF_INET6, held) {
                m.gateway = h.gateway.map(F::to_ip);
                m.oif = Some(h.oif);
            }
            (wire::RTM_DELROUTE, 0, m)
        }
    }
}

/// A route message of rtm's table, as the view takes it in: `Ok(None)`
/// for another family, table, a tos or a source-specific route (none of
/// them hold rtm's keys), an error for one without a usable destination.
fn observed<F: KernelFamily>(
    header: wire::Header,
    r: &RouteInfo,
    config: &SyncConfig,
) -> Result<Option<Observed<F>>, String> {
    if r.family != F::AF || r.table != config.table || r.src_len != 0 || r.tos != 0 {
        return Ok(None);
    }
    let addr = r
        .destination_addr()
        .and_then(F::from_ip)
        .ok_or_else(|| format!("a route of table {} without its destination", r.table))?;
    let prefix =
        Prefix::new(addr, r.dst_len).map_err(|e| format!("a route of table {}: {e}", r.table))?;
    let plain = r.kind == wire::RTN_UNICAST && !r.multipath && !r.indirect;
    let gateway = r.gateway.map(F::from_ip);
    let held = match gateway {
        _ if !plain => None,
        Some(None) => None, // a gateway of the other family
        Some(Some(gw)) => Some(Held {
            gateway: Some(gw),
            oif: r.oif.unwrap_or(0),
        }),
        None => Some(Held {
            gateway: None,
            oif: r.oif.unwrap_or(0),
        }),
    };
    Ok(Some(Observed {
        prefix,
        present: header.kind == wire::RTM_NEWROUTE,
        ours: r.protocol == config.protocol,
        metric: r.priority.unwrap_or(0),
        held,
        replaced: header.flags & wire::NLM_F_REPLACE != 0,
    }))
}

/// What the monitor heard since it was last asked.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    /// Changes of IPv4 routes in rtm's table by other programs.
    pub(crate) v4: Vec<Observed<crate::family::Ipv4>>,
    /// Changes of IPv6 routes in rtm's table by other programs.
    pub(crate) v6: Vec<Observed<crate::family::Ipv6>>,
    /// Route notifications that reached the socket (the kernel's filter
    /// drops rtm's own and other tables').
    pub(crate) notifications: u64,
    /// Datagrams from a sender other than the kernel, dropped unread.
    pub(crate) spoofed: u64,
    /// Devices that went up or down or went away, and addresses removed:
    /// the kernel may have removed rtm's routes (or refused them until
    /// now) without a notification each, so the view asks for a resync.
    pub(crate) link_events: u64,
    /// Messages that did not read.
    pub(crate) unreadable: Unreadable,
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
        // A device going down or up, or losing an address, changes routes
        // without a notification for each (IPv4 flushes them silently).
        socket.add_membership(libc::RTNLGRP_LINK)?;
        socket.add_membership(libc::RTNLGRP_IPV4_IFADDR)?;
        socket.add_membership(libc::RTNLGRP_IPV6_IFADDR)?;
        socket.set_non_blocking(true)?;
        set_receive_buffer(&socket, DUMP_BUFFER);
        Ok(Monitor { socket })
    }

    /// Has the kernel drop, before they reach this socket, the
    /// notifications of `port`'s own changes (a socket filter, as FRR's
    /// zebra installs: a full table's load would otherwise send a million
    /// echoes, overflow the buffer and force resyncs for nothing) and
    /// those of tables other than `table` (another daemon's load into its
    /// own table is no work for rtm). Table ids above 255 share one header
    /// byte (`RT_TABLE_COMPAT`); those pass and are sorted out on reading.
    pub(crate) fn filter(&self, port: u32, table: u32) -> io::Result<()> {
        let insn = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        // BPF loads are big-endian; the header's fields are in host order,
        // so constants are compared as their host bytes read that way.
        let be16 = |v: u16| u32::from(u16::from_be_bytes(v.to_ne_bytes()));
        let table_byte = u32::from(u8::try_from(table).unwrap_or(wire::RT_TABLE_COMPAT));
        let (ld, jeq, ret) = (
            libc::BPF_LD | libc::BPF_ABS,
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::BPF_RET | libc::BPF_K,
        );
        let program = [
            // 0: A = nlmsg_pid (offset 12): rtm's own echo is dropped.
            insn(ld | libc::BPF_W, 0, 0, 12),
            insn(jeq, 6, 0, u32::from_be_bytes(port.to_ne_bytes())),
            // 2: A = nlmsg_type (offset 4): other messages pass.
            insn(ld | libc::BPF_H, 0, 0, 4),
            insn(jeq, 1, 0, be16(wire::RTM_NEWROUTE)),
            insn(jeq, 0, 4, be16(wire::RTM_DELROUTE)),
            // 5: A = rtm_table (16 + 4): rtm's table, or a large id's.
            insn(ld | libc::BPF_B, 0, 0, 20),
            insn(jeq, 2, 0, table_byte),
            insn(jeq, 1, 0, u32::from(wire::RT_TABLE_COMPAT)),
            insn(ret, 0, 0, 0),        // 8: drop
            insn(ret, 0, 0, u32::MAX), // 9: keep whole
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

    /// The changes to rtm's table by sockets other than `own_port` since
    /// the last call. `Err(ENOBUFS)` when notifications were lost.
    pub(crate) fn heard(&self, config: &SyncConfig, own_port: u32) -> io::Result<Heard> {
        let mut heard = Heard::default();
        loop {
            let (data, from) = match self.socket.recv_from_full() {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(heard),
                Err(e) => return Err(e),
            };
            // The datagram's source address is the kernel's proof of
            // origin (port 0 is the kernel); the header's port is only
            // what the sender wrote.
            if from.port_number() != 0 {
                heard.spoofed += 1;
                continue;
            }
            for message in wire::messages(&data) {
                let (header, body) = match message {
                    Ok(m) => m,
                    Err(e) => {
                        heard.unreadable.note(e);
                        continue;
                    }
                };
                if header.port == own_port {
                    continue;
                }
                if wire::link_event(header.kind, body) {
                    heard.link_events += 1;
                    continue;
                }
                if !matches!(header.kind, wire::RTM_NEWROUTE | wire::RTM_DELROUTE) {
                    continue;
                }
                heard.notifications += 1;
                let route = match RouteInfo::parse(body) {
                    Ok(r) => r,
                    Err(e) => {
                        heard.unreadable.note(e);
                        continue;
                    }
                };
                let seen = match route.family {
                    wire::AF_INET => observed::<crate::family::Ipv4>(header, &route, config)
                        .map(|s| heard.v4.extend(s)),
                    wire::AF_INET6 => observed::<crate::family::Ipv6>(header, &route, config)
                        .map(|s| heard.v6.extend(s)),
                    _ => Ok(()),
                };
                if let Err(e) = seen {
                    heard.unreadable.note(e);
                }
            }
        }
    }

    #[cfg(test)]
    fn port(&self) -> u32 {
        let mut addr = SocketAddr::new(0, 0);
        self.socket.get_address(&mut addr).expect("a bound socket");
        addr.port_number()
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

impl<F: KernelFamily> std::fmt::Display for Op<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Create(r) => write!(f, "create {r}"),
            Op::Replace(r) => write!(f, "replace {r}"),
            Op::Delete(p, metric, _) => write!(f, "delete {p} metric {metric}"),
        }
    }
}

impl<F: KernelFamily> std::fmt::Display for super::KernelRoute<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " oif {}", self.oif)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches a monitor that believes any sender (the header's port is
    /// written by the sender; only the datagram's source is the kernel's
    /// word): a unicast from another socket, shaped as the kernel's
    /// deletion of one of rtm's routes, must be dropped unread. Needs no
    /// privilege: any process may send to a netlink port.
    #[test]
    fn a_forged_notification_is_dropped() {
        let Ok(monitor) = Monitor::open() else {
            eprintln!("netlink test skipped: no rtnetlink socket here");
            return;
        };
        let config = SyncConfig::new(100);
        let mut forger = Socket::new(NETLINK_ROUTE).unwrap();
        forger.bind_auto().unwrap();
        let route = RouteInfo {
            table: 100,
            protocol: config.protocol,
            priority: Some(config.metric),
            ..RouteInfo::destination("10.0.0.0".parse().unwrap(), 8)
        };
        let mut datagram = Vec::new();
        wire::push_route(&mut datagram, wire::RTM_DELROUTE, 0, 0, &route);
        forger
            .send_to(&datagram, &SocketAddr::new(monitor.port(), 0), 0)
            .unwrap();
        let heard = monitor.heard(&config, 0).unwrap();
        assert_eq!(
            (heard.spoofed, heard.v4.len(), heard.notifications),
            (1, 0, 0)
        );
    }
}
