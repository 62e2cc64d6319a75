//! The line formats: prefixes, `A,`/`W,` updates and `net,len,asn` CSV.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Format, Item, TableFile};
use crate::prefix::Prefix;

/// An IPv4 or IPv6 prefix from text.
enum AnyPrefix {
    V4(Prefix<Ipv4Addr>),
    V6(Prefix<Ipv6Addr>),
}

fn prefix(s: &str) -> Result<AnyPrefix, String> {
    Ok(if s.contains(':') {
        AnyPrefix::V6(s.parse().map_err(|e| format!("{e}"))?)
    } else {
        AnyPrefix::V4(s.parse().map_err(|e| format!("{e}"))?)
    })
}

fn push(t: &mut TableFile, p: AnyPrefix, announce: bool, origin_as: Option<u32>) {
    match p {
        AnyPrefix::V4(prefix) => t.v4.push(Item {
            announce,
            origin_as,
            ..Item::announce(prefix)
        }),
        AnyPrefix::V6(prefix) => t.v6.push(Item {
            announce,
            origin_as,
            ..Item::announce(prefix)
        }),
    }
}

/// One `net,len,asn` row.
fn csv_row(s: &str) -> Result<(AnyPrefix, u32), String> {
    let mut cols = s.split(',').map(str::trim);
    let (Some(net), Some(len), Some(asn), None) =
        (cols.next(), cols.next(), cols.next(), cols.next())
    else {
        return Err(format!("expected net,len,asn, got {s:?}"));
    };
    let addr: IpAddr = net
        .parse()
        .map_err(|_| format!("{net:?} is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{len:?} is not a prefix length"))?;
    let asn: u32 = asn
        .parse()
        .map_err(|_| format!("{asn:?} is not an AS number"))?;
    let p = match addr {
        IpAddr::V4(a) => AnyPrefix::V4(Prefix::new(a, len).map_err(|e| e.to_string())?),
        IpAddr::V6(a) => AnyPrefix::V6(Prefix::new(a, len).map_err(|e| e.to_string())?),
    };
    Ok((p, asn))
}

pub(super) fn read(
    input: Box<dyn BufRead>,
    name: &str,
    format: Format,
) -> Result<TableFile, String> {
    let mut t = TableFile::new(format);
    for (i, line) in input.lines().enumerate() {
        let at = |e: String| format!("{name} line {}: {e}", i + 1);
        let line = line.map_err(|e| at(e.to_string()))?;
        let s = line.trim_start_matches('\u{feff}').trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        match format {
            Format::Prefixes => push(&mut t, prefix(s).map_err(at)?, true, None),
            Format::Updates => {
                let (op, p) = s
                    .split_once(',')
                    .ok_or_else(|| at(format!("expected A,prefix or W,prefix, got {s:?}")))?;
                let announce = match op {
                    "A" => true,
                    "W" => false,
                    other => return Err(at(format!("operation {other:?} is not A or W"))),
                };
                push(&mut t, prefix(p.trim()).map_err(at)?, announce, None);
            }
            Format::Csv => {
                if i == 0 && s.eq_ignore_ascii_case("net,len,asn") {
                    continue;
                }
                let (p, asn) = csv_row(s).map_err(at)?;
                push(&mut t, p, true, Some(asn));
            }
            Format::Mrt => unreachable!("MRT is not a line format"),
        }
    }
    Ok(t)
}
