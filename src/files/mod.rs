//! Route table files as operators have them: one prefix per line,
//! `A,prefix` / `W,prefix` update streams, `net,len,asn` CSV, and MRT
//! TABLE_DUMP_V2 RIB dumps (RFC 6396). gzip'd files are read transparently;
//! the format is detected from the content unless given.
//!
//! Every rejection names the file and the line (text) or the record and
//! byte offset (MRT), and what was wrong there.

mod mrt;
mod text;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

use crate::prefix::{IpAddress, Prefix};

/// A table file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One prefix per line (`10.0.0.0/8`, `2001:db8::/32`); `#` comments.
    Prefixes,
    /// An update stream: `A,prefix` (announce) or `W,prefix` (withdraw).
    Updates,
    /// `net,len,asn` rows (a header row and a byte-order mark are skipped).
    Csv,
    /// MRT TABLE_DUMP_V2 (RFC 6396), as RIPE RIS and RouteViews publish.
    Mrt,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Prefixes => "prefixes",
            Format::Updates => "updates",
            Format::Csv => "csv",
            Format::Mrt => "mrt",
        })
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "prefixes" => Ok(Format::Prefixes),
            "updates" => Ok(Format::Updates),
            "csv" => Ok(Format::Csv),
            "mrt" => Ok(Format::Mrt),
            _ => Err(format!("format {s:?} is not prefixes, updates, csv or mrt")),
        }
    }
}

/// One route read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<A: IpAddress> {
    /// The prefix.
    pub prefix: Prefix<A>,
    /// `false` for a withdrawal (update streams only).
    pub announce: bool,
    /// The origin AS, where the format carries it (CSV, MRT).
    pub origin_as: Option<u32>,
    /// The next hop, where the format carries it (MRT).
    pub next_hop: Option<A>,
    /// The AS path length, where the format carries it (MRT).
    pub path_len: Option<u32>,
}

impl<A: IpAddress> Item<A> {
    /// An announcement with nothing but the prefix.
    pub fn announce(prefix: Prefix<A>) -> Item<A> {
        Item {
            prefix,
            announce: true,
            origin_as: None,
            next_hop: None,
            path_len: None,
        }
    }
}

/// What one file held, in file order.
#[derive(Debug, Clone)]
pub struct TableFile {
    /// The format it was read as.
    pub format: Format,
    /// Its IPv4 routes.
    pub v4: Vec<Item<Ipv4Addr>>,
    /// Its IPv6 routes.
    pub v6: Vec<Item<Ipv6Addr>>,
    /// Entries the format allows but a routing table cannot use, skipped
    /// (MRT: records of other types, RIB entries of other families).
    pub skipped: usize,
}

impl TableFile {
    fn new(format: Format) -> TableFile {
        TableFile {
            format,
            v4: Vec::new(),
            v6: Vec::new(),
            skipped: 0,
        }
    }
}

/// A buffered reader over `inner`, through a gzip decoder if `gzip`.
fn buffered(inner: impl Read + 'static, gzip: bool) -> Box<dyn BufRead> {
    if gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(inner),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, inner))
    }
}

/// Opens `path` for reading, through a gzip decoder if it starts with the
/// gzip magic bytes.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::open(path).map_err(at)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(at)?;
    let f = File::open(path).map_err(at)?;
    Ok(buffered(f, n == 2 && magic == GZIP_MAGIC))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Detects the format from the (decompressed) start of the file: an MRT
/// common header of a known type, else the first line that is not a
/// comment: `A,`/`W,` is an update stream, another comma is CSV, anything
/// else one prefix per line.
pub fn detect(path: &Path) -> Result<Format, String> {
    detect_in(&mut *open(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn detect_in(r: &mut dyn BufRead) -> std::io::Result<Format> {
    let head = r.fill_buf()?;
    if mrt::looks_like_mrt(head) {
        return Ok(Format::Mrt);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]).into_owned();
    let first = text
        .lines()
        .map(|l| l.trim_start_matches('\u{feff}').trim())
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    Ok(if first.starts_with("A,") || first.starts_with("W,") {
        Format::Updates
    } else if first.contains(',') {
        Format::Csv
    } else {
        Format::Prefixes
    })
}

/// Reads a whole file, in `format` or the detected one.
pub fn read(path: &Path, format: Option<Format>) -> Result<TableFile, String> {
    read_from(open(path)?, &path.display().to_string(), format)
}

/// Reads a table from bytes in memory (gzip'd or not), naming it `name` in
/// errors: what [`read`] does to a file's contents.
pub fn read_bytes(bytes: &[u8], name: &str, format: Option<Format>) -> Result<TableFile, String> {
    let gzip = bytes.starts_with(&GZIP_MAGIC);
    read_from(
        buffered(std::io::Cursor::new(bytes.to_vec()), gzip),
        name,
        format,
    )
}

fn read_from(
    mut input: Box<dyn BufRead>,
    name: &str,
    format: Option<Format>,
) -> Result<TableFile, String> {
    let format = match format {
        Some(f) => f,
        None => detect_in(&mut *input).map_err(|e| format!("{name}: {e}"))?,
    };
    match format {
        Format::Mrt => mrt::read(input, name),
        text => text::read(input, name, text),
    }
}
