//! `rtm bench lpm`: rtm's FIB against a static DIR-24-8 and two crates, in
//! one run, on the same table and traffic.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::Instant;

use super::competitors::{self, Lpm, RtmFib, RtmFibPerCall};
use super::dir24::Dir24_8;
use super::input::{self, Tables, Traffic};
use crate::family::{Ipv4, Ipv6};
use crate::prefix::{IpAddress, Prefix};

/// Options of `rtm bench lpm`.
#[derive(Debug, Clone)]
pub struct LpmOptions {
    /// A prefix-per-line table (gzip allowed); default: the RIS tables or
    /// the synthetic ones.
    pub table: Option<PathBuf>,
    /// Traffic kinds to run.
    pub traffic: Vec<Traffic>,
    /// Lookups per measurement (per structure, traffic and mode).
    pub lookups: usize,
    /// Threads looking up concurrently (independent mode).
    pub threads: usize,
    /// Seed of traffic and synthetic tables.
    pub seed: u64,
}

/// One measured structure.
#[derive(Debug, Clone)]
pub struct LpmRow {
    /// Family: "ipv4" or "ipv6".
    pub family: &'static str,
    /// Structure name.
    pub name: &'static str,
    /// Traffic kind.
    pub traffic: Traffic,
    /// Million lookups per second, independent (all threads summed; best
    /// of three rounds, the structures taking turns).
    pub independent_mlps: f64,
    /// Million lookups per second, dependent chain (one thread; best of
    /// three runs of up to 2M lookups).
    pub dependent_mlps: f64,
    /// Bytes per prefix (live heap growth while building).
    pub bytes_per_prefix: f64,
    /// Build time in seconds.
    pub build_secs: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct LpmReport {
    /// Table source.
    pub source: String,
    /// IPv4 and IPv6 prefix counts.
    pub prefixes: (usize, usize),
    /// Threads used for independent lookups.
    pub threads: usize,
    /// Lookups per measurement.
    pub lookups: usize,
    /// The rows.
    pub rows: Vec<LpmRow>,
    /// Whether all structures returned the same answers on a traffic sample.
    pub agree: bool,
    /// The first disagreement of each structure that disagreed with rtm
    /// ("family traffic structure at address: rtm value vs its value").
    pub mismatches: Vec<String>,
}

/// The value a route carries: one of 64 next hops, like a router with 64
/// neighbours (every structure stores the same value).
fn value_of<A: IpAddress>(p: &Prefix<A>) -> u32 {
    let h = (p.addr().to_bits() as u64 ^ (p.addr().to_bits() >> 64) as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ p.len() as u64;
    1 + (h >> 58) as u32
}

struct Built<A: IpAddress> {
    name: &'static str,
    lpm: Box<dyn Lpm<A>>,
    bytes: usize,
    secs: f64,
}

fn build<A: IpAddress, T: Lpm<A> + 'static>(
    name: &'static str,
    live: &dyn Fn() -> usize,
    f: impl FnOnce() -> T,
) -> Built<A> {
    let before = live();
    let t = Instant::now();
    let lpm = f();
    let secs = t.elapsed().as_secs_f64();
    let bytes = live().saturating_sub(before);
    Built {
        name,
        lpm: Box::new(lpm),
        bytes,
        secs,
    }
}

fn rate(lookups: usize, secs: f64) -> f64 {
    lookups as f64 / secs / 1e6
}

/// Rounds of independent measurements; each structure keeps its best.
/// The structures take turns within a round, so a slow stretch of a shared
/// machine hits all of them rather than one.
const ROUNDS: usize = 3;

fn independent_once<A: IpAddress>(lpm: &dyn Lpm<A>, addrs: &[A], threads: usize) -> f64 {
    if threads <= 1 {
        let t = Instant::now();
        std::hint::black_box(lpm.run_independent(addrs));
        return rate(addrs.len(), t.elapsed().as_secs_f64());
    }
    let share = addrs.len().div_ceil(threads);
    let barrier = Barrier::new(threads + 1);
    let secs = std::thread::scope(|s| {
        for part in addrs.chunks(share) {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                std::hint::black_box(lpm.run_independent(part));
                barrier.wait();
            });
        }
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        t.elapsed().as_secs_f64()
    });
    rate(addrs.len(), secs)
}

fn dependent<A: IpAddress>(lpm: &dyn Lpm<A>, addrs: &[A]) -> f64 {
    let n = addrs.len().min(2_000_000);
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(lpm.run_dependent(&addrs[..n]));
            rate(n, t.elapsed().as_secs_f64())
        })
        .fold(0.0, f64::max)
}

fn measure<A: IpAddress>(
    family: &'static str,
    built: &[Built<A>],
    table: &[Prefix<A>],
    opts: &LpmOptions,
    rows: &mut Vec<LpmRow>,
    mismatches: &mut Vec<String>,
) {
    for &kind in &opts.traffic {
        let addrs = input::traffic(table, kind, opts.lookups, opts.seed ^ kind as u64);
        let sample = &addrs[..addrs.len().min(200_000)];
        if let Some((first, rest)) = built.split_first() {
            let want: Vec<u32> = sample.iter().map(|a| first.lpm.lookup(*a)).collect();
            for b in rest {
                let first_bad = sample
                    .iter()
                    .zip(&want)
                    .map(|(a, w)| (a, *w, b.lpm.lookup(*a)))
                    .find(|(_, w, got)| got != w);
                if let Some((a, w, got)) = first_bad {
                    mismatches.push(format!(
                        "{family} {kind} {} at {a}: rtm {w} vs {got}",
                        b.name
                    ));
                }
            }
        }
        let mut best = vec![0.0f64; built.len()];
        for _ in 0..ROUNDS {
            for (b, best) in built.iter().zip(&mut best) {
                // Warm up the structure's lines after the others ran.
                b.lpm.run_independent(&addrs[..addrs.len().min(100_000)]);
                *best = best.max(independent_once(b.lpm.as_ref(), &addrs, opts.threads));
            }
        }
        for (b, independent_mlps) in built.iter().zip(best) {
            rows.push(LpmRow {
                family,
                name: b.name,
                traffic: kind,
                independent_mlps,
                dependent_mlps: dependent(b.lpm.as_ref(), &addrs),
                bytes_per_prefix: b.bytes as f64 / table.len().max(1) as f64,
                build_secs: b.secs,
            });
        }
    }
}

fn routes<A: IpAddress>(table: &[Prefix<A>]) -> Vec<(Prefix<A>, u32)> {
    table.iter().map(|p| (*p, value_of(p))).collect()
}

/// Runs the benchmark. `live` reports the process's live heap bytes (a
/// counting global allocator in the binary); without one, pass `|| 0`.
pub fn run(opts: &LpmOptions, live: &dyn Fn() -> usize) -> Result<LpmReport, String> {
    let tables: Tables = match &opts.table {
        Some(p) => input::read_prefix_file(p)?,
        None => input::default_tables(opts.seed),
    };
    let mut rows = Vec::new();
    let mut mismatches = Vec::new();
    if !tables.v4.is_empty() {
        let r = routes(&tables.v4);
        let built: Vec<Built<Ipv4Addr>> = vec![
            build("rtm", live, || RtmFib(competitors::build_rtm::<Ipv4>(&r))),
            build("rtm (pin per lookup)", live, || {
                RtmFibPerCall(competitors::build_rtm::<Ipv4>(&r))
            }),
            build("dir-24-8 (static)", live, || Dir24_8::build(&r)),
            build("prefix-trie", live, || {
                competitors::build_prefix_trie_v4(&r)
            }),
            build("treebitmap", live, || competitors::build_treebitmap(&r)),
        ];
        measure("ipv4", &built, &tables.v4, opts, &mut rows, &mut mismatches);
    }
    if !tables.v6.is_empty() {
        let r = routes(&tables.v6);
        let built: Vec<Built<Ipv6Addr>> = vec![
            build("rtm", live, || RtmFib(competitors::build_rtm::<Ipv6>(&r))),
            build("rtm (pin per lookup)", live, || {
                RtmFibPerCall(competitors::build_rtm::<Ipv6>(&r))
            }),
            build("prefix-trie", live, || {
                competitors::build_prefix_trie_v6(&r)
            }),
            build("treebitmap", live, || competitors::build_treebitmap(&r)),
        ];
        measure("ipv6", &built, &tables.v6, opts, &mut rows, &mut mismatches);
    }
    Ok(LpmReport {
        source: tables.source,
        prefixes: (tables.v4.len(), tables.v6.len()),
        threads: opts.threads,
        lookups: opts.lookups,
        rows,
        agree: mismatches.is_empty(),
        mismatches,
    })
}

fn ratio(rows: &[LpmRow], r: &LpmRow, other: &str) -> Option<f64> {
    rows.iter()
        .find(|o| o.family == r.family && o.traffic == r.traffic && o.name == other)
        .map(|o| r.independent_mlps / o.independent_mlps)
}

impl LpmReport {
    /// The human-readable table, with ratios of rtm to each competitor.
    pub fn table(&self) -> String {
        let mut s = format!(
            "table: {} ({} IPv4, {} IPv6 prefixes); {} lookups per run, {} thread(s) independent, 1 dependent\n\n",
            self.source, self.prefixes.0, self.prefixes.1, self.lookups, self.threads
        );
        s += &format!(
            "{:<5} {:<4} {:<22} {:>12} {:>12} {:>10} {:>9} {:>10}\n",
            "fam", "traf", "structure", "indep Mlps", "dep Mlps", "B/prefix", "build s", "rtm/this"
        );
        for r in &self.rows {
            let rtm = self
                .rows
                .iter()
                .find(|o| o.family == r.family && o.traffic == r.traffic && o.name == "rtm");
            let rel = rtm.map_or(String::from("-"), |o| {
                format!("{:.2}x", o.independent_mlps / r.independent_mlps)
            });
            s += &format!(
                "{:<5} {:<4} {:<22} {:>12.1} {:>12.1} {:>10.1} {:>9.3} {:>10}\n",
                r.family,
                r.traffic,
                r.name,
                r.independent_mlps,
                r.dependent_mlps,
                r.bytes_per_prefix,
                r.build_secs,
                rel
            );
        }
        s += &format!(
            "\nall structures agree on a 200k-address sample: {}\n",
            if self.agree { "yes" } else { "NO" }
        );
        for m in &self.mismatches {
            s += &format!("  mismatch: {m}\n");
        }
        for r in self.rows.iter().filter(|r| r.name == "rtm") {
            let d = ratio(&self.rows, r, "dir-24-8 (static)")
                .map_or(String::new(), |x| format!(" {x:.2}x dir-24-8,"));
            let p = ratio(&self.rows, r, "prefix-trie")
                .map_or(String::new(), |x| format!(" {x:.2}x prefix-trie,"));
            let t = ratio(&self.rows, r, "treebitmap")
                .map_or(String::new(), |x| format!(" {x:.2}x treebitmap"));
            s += &format!("rtm {} {}:{d}{p}{t}\n", r.family, r.traffic);
        }
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"family\":\"{}\",\"traffic\":\"{}\",\"structure\":\"{}\",\"independent_mlps\":{:.3},\"dependent_mlps\":{:.3},\"bytes_per_prefix\":{:.2},\"build_secs\":{:.4}}}",
                    r.family, r.traffic, r.name, r.independent_mlps, r.dependent_mlps, r.bytes_per_prefix, r.build_secs
                )
            })
            .collect();
        format!(
            "{{\"source\":{:?},\"ipv4_prefixes\":{},\"ipv6_prefixes\":{},\"threads\":{},\"lookups\":{},\"agree\":{},\"mismatches\":[{}],\"rows\":[{}]}}",
            self.source,
            self.prefixes.0,
            self.prefixes.1,
            self.threads,
            self.lookups,
            self.agree,
            self.mismatches
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(","),
            rows.join(",")
        )
    }
}
