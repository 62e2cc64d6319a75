//! MRT TABLE_DUMP_V2 RIB dumps (RFC 6396) through `bgpkit-parser`.
//!
//! One route per prefix: of the prefix's RIB entries (one per collector
//! peer), the one with the shortest AS path, first among equals, as a
//! router's best path would roughly be; its next hop (the NEXT_HOP or
//! MP_REACH next hop, else the peer's address), origin AS and path length.

use std::io::{BufRead, Read};
use std::net::IpAddr;

use bgpkit_parser::error::ParserError;
use bgpkit_parser::models::{MrtMessage, PeerIndexTable, RibAfiEntries, TableDumpV2Message};
use ipnet::IpNet;

use super::{Format, Item, TableFile};
use crate::prefix::{IpAddress, Prefix};

/// Whether `head` starts with an MRT common header: a 4-byte timestamp,
/// then a type RFC 6396 defines (TABLE_DUMP 12, TABLE_DUMP_V2 13, BGP4MP
/// 16/17, ISIS 32/33, OSPFv3 48/49). Text never has a zero byte there.
pub(super) fn looks_like_mrt(head: &[u8]) -> bool {
    head.len() >= 12 && head[4] == 0 && matches!(head[5], 11..=13 | 16 | 17 | 32 | 33 | 48 | 49)
}

/// Counts the bytes read, so an error can say where its record began.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

pub(super) fn read(input: Box<dyn BufRead>, name: &str) -> Result<TableFile, String> {
    let mut t = TableFile::new(Format::Mrt);
    let mut input = Counting {
        inner: input,
        read: 0,
    };
    let mut peers: Option<PeerIndexTable> = None;
    for record in 1.. {
        let offset = input.read;
        let at = |what: String| format!("{name} MRT record {record} (byte {offset}): {what}");
        let rec = match bgpkit_parser::parse_mrt_record(&mut input) {
            Ok(rec) => rec,
            Err(e) if matches!(e.error, ParserError::EofExpected) => break,
            Err(e) if matches!(e.error, ParserError::EofError(_)) => {
                return Err(at("the file ends inside this record (truncated)".into()));
            }
            // bgpkit-parser's messages start with "Error: ", which ours say.
            Err(e) => {
                let what = e.error.to_string();
                return Err(at(what.trim_start_matches("Error: ").to_string()));
            }
        };
        match rec.message {
            MrtMessage::TableDumpV2Message(TableDumpV2Message::PeerIndexTable(p)) => {
                peers = Some(p);
            }
            MrtMessage::TableDumpV2Message(TableDumpV2Message::RibAfi(rib)) => {
                add_rib(&mut t, &rib, peers.as_ref()).map_err(at)?;
            }
            _ => t.skipped += 1,
        }
    }
    if t.v4.is_empty() && t.v6.is_empty() && t.skipped > 0 {
        return Err(format!(
            "{name}: no TABLE_DUMP_V2 RIB records ({} MRT records of other types)",
            t.skipped
        ));
    }
    Ok(t)
}

/// Adds the prefix of one RIB record with its shortest-path entry.
fn add_rib(
    t: &mut TableFile,
    rib: &RibAfiEntries,
    peers: Option<&PeerIndexTable>,
) -> Result<(), String> {
    let Some(best) = rib
        .rib_entries
        .iter()
        .min_by_key(|e| e.attributes.as_path().map_or(usize::MAX, |p| p.route_len()))
    else {
        t.skipped += 1; // a prefix with no entries
        return Ok(());
    };
    let path = best.attributes.as_path();
    let origin_as = path.and_then(|p| p.get_origin_opt()).map(u32::from);
    let path_len = path.map(|p| p.route_len() as u32);
    let next_hop = best.attributes.next_hop().or_else(|| {
        peers
            .and_then(|p| p.id_peer_map.get(&best.peer_index))
            .map(|p| p.peer_ip)
    });
    let bad = |e: crate::RtmError| format!("prefix {}: {e}", rib.prefix.prefix);
    // A next hop of the other family (an IPv6 prefix with an IPv4 peer's
    // address) is no next hop for the route.
    let (nh4, nh6) = match next_hop {
        Some(IpAddr::V4(a)) => (Some(a), None),
        Some(IpAddr::V6(a)) => (None, Some(a)),
        None => (None, None),
    };
    match rib.prefix.prefix {
        IpNet::V4(n) => {
            let prefix = Prefix::new(n.addr(), n.prefix_len()).map_err(bad)?;
            t.v4.push(announced(prefix, nh4, origin_as, path_len));
        }
        IpNet::V6(n) => {
            let prefix = Prefix::new(n.addr(), n.prefix_len()).map_err(bad)?;
            t.v6.push(announced(prefix, nh6, origin_as, path_len));
        }
    }
    Ok(())
}

/// A RIB entry's route.
fn announced<A: IpAddress>(
    prefix: Prefix<A>,
    next_hop: Option<A>,
    origin_as: Option<u32>,
    path_len: Option<u32>,
) -> Item<A> {
    Item {
        next_hop,
        origin_as,
        path_len,
        ..Item::announce(prefix)
    }
}
