//! Benchmark inputs: prefix tables, update streams and lookup traffic.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::files::{self, Format};
use crate::prefix::{IpAddress, Ipv4Prefix, Ipv6Prefix, Prefix};
use crate::synth::{self, SplitMix64};

/// IPv4 and IPv6 prefixes read from one table.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// IPv4 prefixes.
    pub v4: Vec<Ipv4Prefix>,
    /// IPv6 prefixes.
    pub v6: Vec<Ipv6Prefix>,
    /// Where they came from.
    pub source: String,
}

/// Reads a table file in any format [`files`] reads (detected; gzip
/// allowed): its announced prefixes. An error names the file and line.
pub fn read_prefix_file(path: &Path) -> Result<Tables, String> {
    let t = files::read(path, None)?;
    Ok(Tables {
        v4: t
            .v4
            .iter()
            .filter(|i| i.announce)
            .map(|i| i.prefix)
            .collect(),
        v6: t
            .v6
            .iter()
            .filter(|i| i.announce)
            .map(|i| i.prefix)
            .collect(),
        source: path.display().to_string(),
    })
}

/// Reads an `A,prefix` / `W,prefix` update stream's IPv4 updates.
pub fn read_updates(path: &Path) -> Result<Vec<Update>, String> {
    let t = files::read(path, Some(Format::Updates))?;
    Ok(t.v4.iter().map(|i| (i.announce, i.prefix)).collect())
}

/// `../shared/routing-data` seen from the working directory or from this
/// crate's manifest directory, if it exists.
pub fn shared_data_dir() -> Option<PathBuf> {
    [
        PathBuf::from("../shared/routing-data"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/routing-data"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// The RIS IPv4 and IPv6 tables when present, else synthetic full-size
/// tables (1,000,000 IPv4, 200,000 IPv6) from `seed`.
pub fn default_tables(seed: u64) -> Tables {
    if let Some(dir) = shared_data_dir() {
        let v4 = read_prefix_file(&dir.join("ris-20260511-as3333-ipv4-table.txt.gz"));
        let v6 = read_prefix_file(&dir.join("ris-20260511-as3333-ipv6-table.txt.gz"));
        if let (Ok(a), Ok(b)) = (v4, v6) {
            return Tables {
                v4: a.v4,
                v6: b.v6,
                source: "RIS 2026-05-11 AS3333 (../shared/routing-data)".into(),
            };
        }
    }
    Tables {
        v4: synth::ipv4_table(1_000_000, seed),
        v6: synth::ipv6_table(200_000, seed),
        source: format!("synthetic (seed {seed})"),
    }
}

/// Lookup traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// A random address inside a uniformly chosen table prefix: deep and
    /// cache-hostile.
    Ann,
    /// Uniformly random addresses.
    Rnd,
    /// A random address inside a table prefix drawn by a Zipf law of
    /// exponent 1 over a random permutation of the table (the prefix of
    /// rank r with probability proportional to 1/r): a few destinations
    /// carry most packets, as in real traces.
    Zipf,
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Traffic::Ann => "ann",
            Traffic::Rnd => "rnd",
            Traffic::Zipf => "zipf",
        })
    }
}

/// `n` addresses of the given kind.
pub fn traffic<A: IpAddress>(table: &[Prefix<A>], kind: Traffic, n: usize, seed: u64) -> Vec<A> {
    let mut rng = SplitMix64::new(seed);
    let bits = A::BITS as u32;
    let rand = |rng: &mut SplitMix64| -> u128 {
        let x = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
        if bits == 128 {
            x
        } else {
            x & ((1u128 << bits) - 1)
        }
    };
    let inside = |rng: &mut SplitMix64, p: Prefix<A>| {
        let host = rand(rng) & !crate::prefix::mask_bits(A::BITS, p.len());
        A::from_bits(p.addr().to_bits() | host)
    };
    if table.is_empty() && kind != Traffic::Rnd {
        return (0..n).map(|_| A::from_bits(rand(&mut rng))).collect();
    }
    match kind {
        Traffic::Rnd => (0..n).map(|_| A::from_bits(rand(&mut rng))).collect(),
        Traffic::Ann => (0..n)
            .map(|_| {
                let p = table[rng.below(table.len() as u64) as usize];
                inside(&mut rng, p)
            })
            .collect(),
        Traffic::Zipf => {
            // Ranks over a shuffled table, drawn exactly: the cumulative
            // weights 1/1 + 1/2 + ... + 1/r, searched for a uniform draw.
            let mut order: Vec<usize> = (0..table.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let mut cumulative = Vec::with_capacity(order.len());
            let mut sum = 0.0f64;
            for r in 1..=order.len() {
                sum += 1.0 / r as f64;
                cumulative.push(sum);
            }
            (0..n)
                .map(|_| {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * sum;
                    let rank = cumulative.partition_point(|&c| c <= u).min(order.len() - 1);
                    inside(&mut rng, table[order[rank]])
                })
                .collect()
        }
    }
}

/// Ipv4 convenience for [`traffic`].
pub fn traffic_v4(table: &[Ipv4Prefix], kind: Traffic, n: usize, seed: u64) -> Vec<Ipv4Addr> {
    traffic(table, kind, n, seed)
}

/// Ipv6 convenience for [`traffic`].
pub fn traffic_v6(table: &[Ipv6Prefix], kind: Traffic, n: usize, seed: u64) -> Vec<Ipv6Addr> {
    traffic(table, kind, n, seed)
}

/// One update of a stream: announce (`true`) or withdraw a prefix.
pub type Update = (bool, Ipv4Prefix);

/// The IPv4 update stream from `path`, else the RIS day of updates in
/// `../shared/routing-data`, else synthetic churn over `table` (97%
/// announcements, 3% withdrawals) from `seed`; with a description.
pub fn updates_or_default(
    path: Option<&Path>,
    table: &[Ipv4Prefix],
    seed: u64,
) -> Result<(Vec<Update>, String), String> {
    if let Some(p) = path {
        return Ok((read_updates(p)?, p.display().to_string()));
    }
    if let Some(p) = shared_data_dir()
        .map(|d| d.join("ris-20260511-as3333-ipv4-updates.csv.gz"))
        .filter(|p| p.is_file())
    {
        return Ok((
            read_updates(&p)?,
            "RIS 2026-05-11 AS3333 IPv4 updates".to_string(),
        ));
    }
    if table.is_empty() {
        return Err("no update stream and an empty table to make one from".into());
    }
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let u = (0..1_000_000)
        .map(|_| {
            (
                rng.below(30) != 0,
                table[rng.below(table.len() as u64) as usize],
            )
        })
        .collect();
    Ok((u, "synthetic churn (97% announce, 3% withdraw)".to_string()))
}
