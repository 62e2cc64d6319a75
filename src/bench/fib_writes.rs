//! `rtm bench lpm`'s write rows: the FIB alone takes a day of updates.
//!
//! rtm's [`LpmFib`](crate::LpmFib) and the two mutable crates (prefix-trie,
//! treebitmap) are each built from the full table, then replay the same
//! update stream in arrival order, one call per update (`insert` /
//! `remove`, what a routing daemon's single changes cost). The static
//! DIR-24-8 has no incremental write, so it has no row.
//!
//! An announcement sets its prefix to one of 64 next hops drawn from the
//! update's position and prefix, so nearly every announcement changes the
//! answer (a refresh that keeps the next hop would cost rtm a comparison
//! and the crates a full write); a withdrawal removes its prefix (a prefix
//! not in the table is a no-op for every structure). Every structure is
//! rebuilt for each of two rounds, the structures taking turns, and
//! keeps its best rate.
//!
//! What the rows leave out: nothing looks up during a replay, so rtm's
//! grace periods end at once and no reader shares the caches; and
//! announcements here change the next hop 63 times in 64 (most of them
//! take rtm's in-place path), where a real day also refreshes many routes
//! with the next hop they had (a comparison in rtm, a full write in the
//! crates).
//!
//! After each replay every structure answers the same addresses (random
//! ones inside the table's and the stream's prefixes), which must agree
//! with rtm's; a second, untimed replay gives every update a value of its
//! own, so an answer from the wrong prefix cannot pass for the right one.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ip_network_table_deps_treebitmap::IpLookupTable;

use super::competitors::{self, Lpm, PrefixTrie, RtmFib, TreeBitmap};
use super::input::{self, Traffic};
use crate::engine_family::IpFamily;
use crate::family::{Ipv4, Ipv6};
use crate::prefix::{IpAddress, Prefix};

/// Rounds of each replay; each structure keeps its best.
const ROUNDS: usize = 2;
/// Addresses each agreement check looks up.
const CHECK_ADDRESSES: usize = 200_000;

/// One structure's replay of the stream.
#[derive(Debug, Clone)]
pub struct WriteRow {
    /// "ipv4" or "ipv6".
    pub family: &'static str,
    /// Structure name (as in the lookup rows).
    pub name: &'static str,
    /// Updates replayed.
    pub updates: usize,
    /// Updates per second, one call each (the best of two rounds).
    pub ops_per_sec: f64,
}

/// A structure that takes single writes.
trait Writable<A: IpAddress>: Lpm<A> {
    /// Announces `p` with `value` (replacing any) or withdraws it.
    fn write(&mut self, announce: bool, p: Prefix<A>, value: u32);
}

impl<F: IpFamily> Writable<F::Addr> for RtmFib<F> {
    fn write(&mut self, announce: bool, p: Prefix<F::Addr>, value: u32) {
        if announce {
            competitors::set_rtm(&self.0, p, value);
        } else {
            self.0.remove(p);
        }
    }
}

impl Writable<Ipv4Addr> for PrefixTrie<(u32, u8)> {
    fn write(&mut self, announce: bool, p: Prefix<Ipv4Addr>, value: u32) {
        let key = (u32::from(p.addr()), p.len());
        if announce {
            self.0.insert(key, value);
        } else {
            self.0.remove(&key);
        }
    }
}

impl Writable<Ipv6Addr> for PrefixTrie<(u128, u8)> {
    fn write(&mut self, announce: bool, p: Prefix<Ipv6Addr>, value: u32) {
        let key = (u128::from(p.addr()), p.len());
        if announce {
            self.0.insert(key, value);
        } else {
            self.0.remove(&key);
        }
    }
}

impl<A> Writable<A> for TreeBitmap<A>
where
    A: IpAddress + ip_network_table_deps_treebitmap::address::Address,
    IpLookupTable<A, u32>: Send + Sync,
    TreeBitmap<A>: Lpm<A>,
{
    fn write(&mut self, announce: bool, p: Prefix<A>, value: u32) {
        if announce {
            self.0.insert(p.addr(), p.len() as u32, value);
        } else {
            self.0.remove(p.addr(), p.len() as u32);
        }
    }
}

/// Builds every writable structure of one family from `routes`.
type Builders<A> = Vec<(
    &'static str,
    fn(&[(Prefix<A>, u32)]) -> Box<dyn Writable<A>>,
)>;

fn builders_v4() -> Builders<Ipv4Addr> {
    vec![
        ("rtm", |r| {
            Box::new(RtmFib(competitors::build_rtm::<Ipv4>(r)))
        }),
        ("prefix-trie", |r| {
            Box::new(competitors::build_prefix_trie_v4(r))
        }),
        ("treebitmap", |r| Box::new(competitors::build_treebitmap(r))),
    ]
}

fn builders_v6() -> Builders<Ipv6Addr> {
    vec![
        ("rtm", |r| {
            Box::new(RtmFib(competitors::build_rtm::<Ipv6>(r)))
        }),
        ("prefix-trie", |r| {
            Box::new(competitors::build_prefix_trie_v6(r))
        }),
        ("treebitmap", |r| Box::new(competitors::build_treebitmap(r))),
    ]
}

/// The value update `i` announces `p` with: one of 64 next hops.
fn announced_value<A: IpAddress>(i: usize, p: &Prefix<A>) -> u32 {
    let h = (i as u64 ^ p.addr().to_bits() as u64 ^ (p.addr().to_bits() >> 64) as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    1 + (h >> 58) as u32
}

/// Replays `stream` into `s`, with `value` giving each update's value;
/// returns the seconds it took.
fn replay<A: IpAddress>(
    s: &mut dyn Writable<A>,
    stream: &[(bool, Prefix<A>)],
    value: impl Fn(usize, &Prefix<A>) -> u32,
) -> f64 {
    let t = Instant::now();
    for (i, (announce, p)) in stream.iter().enumerate() {
        s.write(*announce, *p, value(i, p));
    }
    t.elapsed().as_secs_f64()
}

/// The first address where `s` answers differently from `want` (as the
/// lookup rows report it).
fn disagreement<A: IpAddress>(
    what: String,
    s: &dyn Writable<A>,
    addrs: &[A],
    want: &[u32],
) -> Option<String> {
    let mut got = vec![0u32; addrs.len()];
    s.scalar(addrs, &mut got);
    super::lpm::first_mismatch(what, addrs, want, &got)
}

/// Replays one family's stream into each structure: rows into `rows`, the
/// first disagreement of each structure with rtm into `mismatches`.
fn measure_family<A: IpAddress>(
    family: &'static str,
    builders: &Builders<A>,
    table: &[Prefix<A>],
    stream: &[(bool, Prefix<A>)],
    seed: u64,
    rows: &mut Vec<WriteRow>,
    mismatches: &mut Vec<String>,
) {
    if table.is_empty() || stream.is_empty() {
        return;
    }
    // Addresses inside the table's prefixes and inside the stream's.
    let mut addrs = input::traffic(table, Traffic::Ann, CHECK_ADDRESSES / 2, seed);
    let streamed: Vec<Prefix<A>> = stream.iter().map(|(_, p)| *p).collect();
    addrs.extend(input::traffic(
        &streamed,
        Traffic::Ann,
        CHECK_ADDRESSES / 2,
        seed ^ 1,
    ));

    // Checked, untimed: a value per table prefix and per update.
    let distinct: Vec<(Prefix<A>, u32)> = table.iter().zip(1..).map(|(p, v)| (*p, v)).collect();
    let first = table.len() as u32 + 1;
    let distinct_value = |i: usize, _: &Prefix<A>| first + i as u32;
    let mut want: Option<Vec<u32>> = None;
    for (name, build) in builders {
        let mut s = build(&distinct);
        replay(s.as_mut(), stream, distinct_value);
        match &want {
            None => {
                let mut w = vec![0u32; addrs.len()];
                s.scalar(&addrs, &mut w);
                want = Some(w);
            }
            Some(w) => mismatches.extend(disagreement(
                format!("{family} writes {name} (distinct values)"),
                s.as_ref(),
                &addrs,
                w,
            )),
        }
    }

    // Timed, with 64 next hops as the lookup rows use.
    let routes: Vec<(Prefix<A>, u32)> = table
        .iter()
        .map(|p| (*p, super::lpm::value_of(p)))
        .collect();
    let mut best = vec![0f64; builders.len()];
    let mut want: Option<Vec<u32>> = None;
    let mut reported = vec![false; builders.len()];
    for _ in 0..ROUNDS {
        for (i, (name, build)) in builders.iter().enumerate() {
            let mut s = build(&routes);
            let secs = replay(s.as_mut(), stream, announced_value);
            best[i] = best[i].max(stream.len() as f64 / secs);
            match &want {
                None => {
                    let mut w = vec![0u32; addrs.len()];
                    s.scalar(&addrs, &mut w);
                    want = Some(w);
                }
                Some(w) if !reported[i] => {
                    if let Some(m) =
                        disagreement(format!("{family} writes {name}"), s.as_ref(), &addrs, w)
                    {
                        reported[i] = true;
                        mismatches.push(m);
                    }
                }
                Some(_) => {}
            }
        }
    }
    for ((name, _), ops) in builders.iter().zip(best) {
        rows.push(WriteRow {
            family,
            name,
            updates: stream.len(),
            ops_per_sec: ops,
        });
    }
}

/// The write rows of both families, and where the streams came from.
pub(crate) fn run(
    tables: &input::Tables,
    updates: Option<&std::path::Path>,
    seed: u64,
    mismatches: &mut Vec<String>,
) -> Result<(Vec<WriteRow>, String), String> {
    let mut rows = Vec::new();
    let mut sources = Vec::new();
    if !tables.v4.is_empty() {
        let (stream, source) = input::updates_or_default(updates, &tables.v4, seed)?;
        measure_family(
            "ipv4",
            &builders_v4(),
            &tables.v4,
            &stream,
            seed,
            &mut rows,
            mismatches,
        );
        sources.push(format!("{source} ({} updates)", stream.len()));
    }
    if !tables.v6.is_empty() {
        let (stream, source) = super::churn_v6::updates_v6(updates, &tables.v6, seed)?;
        measure_family(
            "ipv6",
            &builders_v6(),
            &tables.v6,
            &stream,
            seed,
            &mut rows,
            mismatches,
        );
        sources.push(format!("{source} ({} updates)", stream.len()));
    }
    Ok((rows, sources.join("; ")))
}
