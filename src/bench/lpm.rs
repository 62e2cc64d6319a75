//! `rtm bench lpm`: rtm's FIB against a static DIR-24-8 and two crates, in
//! one run, on the same table and traffic.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::Instant;

use super::competitors::{self, Lpm, RtmFib, RtmFibIds, RtmFibPerCall};
use super::dir24::Dir24_8;
use super::fib_writes::{self, WriteRow};
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
    /// An `A,prefix` / `W,prefix` update stream for the write rows (and
    /// `--churn`); default: the RIS days of updates or synthetic churn.
    pub updates: Option<PathBuf>,
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
    /// Million lookups per second, one address per call (all threads
    /// summed; best of three rounds, the structures taking turns).
    pub scalar_mlps: f64,
    /// The same through the structure's batched lookup; `None` if it has
    /// none.
    pub batch_mlps: Option<f64>,
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
    /// The write rows: each structure replaying the day of updates.
    pub writes: Vec<WriteRow>,
    /// Where the update streams came from.
    pub writes_source: String,
    /// Whether every measured path of every structure gave the same
    /// answers (see [`run`]).
    pub agree: bool,
    /// The first disagreement of each path that disagreed with rtm's
    /// scalar path ("family traffic structure path at address: rtm value
    /// vs its value").
    pub mismatches: Vec<String>,
}

/// The value a route carries: one of 64 next hops, like a router with 64
/// neighbours (every structure stores the same value).
pub(crate) fn value_of<A: IpAddress>(p: &Prefix<A>) -> u32 {
    let h = (p.addr().to_bits() as u64 ^ (p.addr().to_bits() >> 64) as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ p.len() as u64;
    1 + (h >> 58) as u32
}

/// Distinct values, one per prefix (its index in the table, plus one):
/// the check builds, on which an answer from the wrong prefix cannot pass
/// for the right one.
fn distinct_values<A: IpAddress>(table: &[Prefix<A>]) -> Vec<(Prefix<A>, u32)> {
    table.iter().zip(1..).map(|(p, v)| (*p, v)).collect()
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

/// The two measured paths of a structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Scalar,
    Batch,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Batch => "batch",
        }
    }

    /// Runs the path over `addrs` into `out`; `false` if the structure has
    /// no such path.
    fn run<A: IpAddress>(self, lpm: &dyn Lpm<A>, addrs: &[A], out: &mut [u32]) -> bool {
        match self {
            Path::Scalar => {
                lpm.scalar(addrs, out);
                true
            }
            Path::Batch => lpm.batch(addrs, out),
        }
    }
}

/// Million lookups per second of `path` over `addrs` on `threads` threads
/// (each its share), answers into `out`; `None` if there is no such path.
fn timed<A: IpAddress>(
    lpm: &dyn Lpm<A>,
    path: Path,
    addrs: &[A],
    out: &mut [u32],
    threads: usize,
) -> Option<f64> {
    if threads <= 1 {
        let t = Instant::now();
        let ran = path.run(lpm, addrs, out);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(&out);
        return ran.then(|| rate(addrs.len(), secs));
    }
    let share = addrs.len().div_ceil(threads);
    let barrier = Barrier::new(threads + 1);
    let (secs, ran) = std::thread::scope(|s| {
        let workers: Vec<_> = addrs
            .chunks(share)
            .zip(out.chunks_mut(share))
            .map(|(part, out)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let ran = path.run(lpm, part, out);
                    barrier.wait();
                    ran
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        let secs = t.elapsed().as_secs_f64();
        let ran = workers.into_iter().all(|w| w.join().unwrap_or(false));
        (secs, ran)
    });
    ran.then(|| rate(addrs.len(), secs))
}

/// The first address where `got` differs from `want`, as a mismatch line.
pub(crate) fn first_mismatch<A: IpAddress>(
    what: String,
    addrs: &[A],
    want: &[u32],
    got: &[u32],
) -> Option<String> {
    addrs
        .iter()
        .zip(want.iter().zip(got))
        .find(|(_, (w, g))| w != g)
        .map(|(a, (w, g))| format!("{what} at {a}: rtm {w} vs {g}"))
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

/// Checks every path of every structure of `check` (built with a distinct
/// value per prefix) against the first one's scalar path, on a
/// 200,000-address sample of each traffic kind.
fn check_paths<A: IpAddress>(
    family: &'static str,
    check: &[Built<A>],
    table: &[Prefix<A>],
    opts: &LpmOptions,
    mismatches: &mut Vec<String>,
) {
    let Some(reference) = check.first() else {
        return;
    };
    for &kind in &opts.traffic {
        let addrs = input::traffic(table, kind, opts.lookups, opts.seed ^ kind as u64);
        let sample = &addrs[..addrs.len().min(200_000)];
        let mut want = vec![0u32; sample.len()];
        reference.lpm.scalar(sample, &mut want);
        let mut got = vec![0u32; sample.len()];
        for c in check {
            for path in [Path::Scalar, Path::Batch] {
                if path.run(c.lpm.as_ref(), sample, &mut got) {
                    let what = format!(
                        "{family} {kind} {} {} (distinct values)",
                        c.name,
                        path.name()
                    );
                    mismatches.extend(first_mismatch(what, sample, &want, &got));
                }
            }
        }
    }
}

/// Measures every structure of `built` on every traffic kind, and checks
/// the answers of every timed run, address by address, against the first
/// timed run (rtm's scalar path).
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
        let warm = &addrs[..addrs.len().min(100_000)];
        let mut scratch = vec![0u32; warm.len()];
        let mut out = vec![0u32; addrs.len()];
        let mut reference: Option<Vec<u32>> = None;
        // The first disagreement of each (structure, path) only.
        let mut reported = vec![[false; 2]; built.len()];
        let mut best = vec![[None::<f64>; 2]; built.len()];
        for _ in 0..ROUNDS {
            for ((b, best), reported) in built.iter().zip(&mut best).zip(&mut reported) {
                for (i, path) in [Path::Scalar, Path::Batch].into_iter().enumerate() {
                    // Warm up the structure's lines after the others ran.
                    path.run(b.lpm.as_ref(), warm, &mut scratch);
                    let Some(r) = timed(b.lpm.as_ref(), path, &addrs, &mut out, opts.threads)
                    else {
                        continue;
                    };
                    best[i] = Some(best[i].map_or(r, |x: f64| x.max(r)));
                    let want = reference.get_or_insert_with(|| out.clone());
                    let what = format!("{family} {kind} {} {}", b.name, path.name());
                    if let Some(m) = first_mismatch(what, &addrs, want, &out)
                        && !reported[i]
                    {
                        reported[i] = true;
                        mismatches.push(m);
                    }
                }
            }
        }
        for (b, best) in built.iter().zip(best) {
            rows.push(LpmRow {
                family,
                name: b.name,
                traffic: kind,
                scalar_mlps: best[0].unwrap_or(0.0),
                batch_mlps: best[1],
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

/// The IPv4 structures, each built from `r`.
fn structures_v4(r: &[(Prefix<Ipv4Addr>, u32)], live: &dyn Fn() -> usize) -> Vec<Built<Ipv4Addr>> {
    vec![
        build("rtm", live, || RtmFib(competitors::build_rtm::<Ipv4>(r))),
        build("rtm (next-hop id)", live, || {
            RtmFibIds::new(competitors::build_rtm::<Ipv4>(r))
        }),
        build("rtm (per call)", live, || {
            RtmFibPerCall(competitors::build_rtm::<Ipv4>(r))
        }),
        build("dir-24-8 (static)", live, || Dir24_8::build(r)),
        build("prefix-trie", live, || competitors::build_prefix_trie_v4(r)),
        build("treebitmap", live, || competitors::build_treebitmap(r)),
    ]
}

/// The IPv6 structures, each built from `r`.
fn structures_v6(r: &[(Prefix<Ipv6Addr>, u32)], live: &dyn Fn() -> usize) -> Vec<Built<Ipv6Addr>> {
    vec![
        build("rtm", live, || RtmFib(competitors::build_rtm::<Ipv6>(r))),
        build("rtm (next-hop id)", live, || {
            RtmFibIds::new(competitors::build_rtm::<Ipv6>(r))
        }),
        build("rtm (per call)", live, || {
            RtmFibPerCall(competitors::build_rtm::<Ipv6>(r))
        }),
        build("prefix-trie", live, || competitors::build_prefix_trie_v6(r)),
        build("treebitmap", live, || competitors::build_treebitmap(r)),
    ]
}

/// Runs the benchmark. `live` reports the process's live heap bytes (a
/// counting global allocator in the binary); without one, pass `|| 0`.
///
/// Each structure is built twice: with one of 64 values per prefix (a
/// router with 64 neighbours; these are measured) and with a distinct value
/// per prefix (checked only). `agree` holds when every path of every
/// structure matched rtm's scalar path on both.
pub fn run(opts: &LpmOptions, live: &dyn Fn() -> usize) -> Result<LpmReport, String> {
    let mut tables: Tables = match &opts.table {
        Some(p) => input::read_prefix_file(p)?,
        None => input::default_tables(opts.seed),
    };
    // One value per prefix: a table listing a prefix twice would leave the
    // structures free to keep either.
    tables.v4.sort_unstable();
    tables.v4.dedup();
    tables.v6.sort_unstable();
    tables.v6.dedup();
    let mut rows = Vec::new();
    let mut mismatches = Vec::new();
    if !tables.v4.is_empty() {
        // The check builds go before the measured ones are built, so they
        // neither share the caches nor count in the measured live bytes.
        let check = structures_v4(&distinct_values(&tables.v4), &|| 0);
        check_paths("ipv4", &check, &tables.v4, opts, &mut mismatches);
        drop(check);
        let built = structures_v4(&routes(&tables.v4), live);
        measure("ipv4", &built, &tables.v4, opts, &mut rows, &mut mismatches);
    }
    if !tables.v6.is_empty() {
        let check = structures_v6(&distinct_values(&tables.v6), &|| 0);
        check_paths("ipv6", &check, &tables.v6, opts, &mut mismatches);
        drop(check);
        let built = structures_v6(&routes(&tables.v6), live);
        measure("ipv6", &built, &tables.v6, opts, &mut rows, &mut mismatches);
        drop(built);
    }
    let (writes, writes_source) =
        fib_writes::run(&tables, opts.updates.as_deref(), opts.seed, &mut mismatches)?;
    Ok(LpmReport {
        source: tables.source,
        prefixes: (tables.v4.len(), tables.v6.len()),
        threads: opts.threads,
        lookups: opts.lookups,
        rows,
        writes,
        writes_source,
        agree: mismatches.is_empty(),
        mismatches,
    })
}

/// `rtm`'s rate over `other`'s on the same family and traffic, for the
/// paths `pick` takes from each row (`None` where either has no such path).
fn ratio(
    rows: &[LpmRow],
    rtm: &LpmRow,
    other: &str,
    pick: impl Fn(&LpmRow) -> Option<f64>,
) -> Option<f64> {
    let o = rows
        .iter()
        .find(|o| o.family == rtm.family && o.traffic == rtm.traffic && o.name == other)?;
    Some(pick(rtm)? / pick(o)?)
}

fn fmt_rate(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.1}"))
}

impl LpmReport {
    /// The human-readable table, with ratios of rtm to each competitor.
    pub fn table(&self) -> String {
        let mut s = format!(
            "table: {} ({} IPv4, {} IPv6 prefixes); {} lookups per run, {} thread(s) scalar and batch, 1 dependent\n\
             every structure answers a u32 value per address into an output slice; arrays on huge pages (madvise) for rtm and dir-24-8\n\n",
            self.source, self.prefixes.0, self.prefixes.1, self.lookups, self.threads
        );
        s += &format!(
            "{:<5} {:<4} {:<20} {:>12} {:>11} {:>10} {:>9} {:>8}\n",
            "fam",
            "traf",
            "structure",
            "scalar Mlps",
            "batch Mlps",
            "dep Mlps",
            "B/prefix",
            "build s"
        );
        for r in &self.rows {
            s += &format!(
                "{:<5} {:<4} {:<20} {:>12.1} {:>11} {:>10.1} {:>9.1} {:>8.3}\n",
                r.family,
                r.traffic,
                r.name,
                r.scalar_mlps,
                fmt_rate(r.batch_mlps),
                r.dependent_mlps,
                r.bytes_per_prefix,
                r.build_secs,
            );
        }
        s += &format!(
            "\nthe FIB alone replays the day of updates, one call per update in arrival order, from the full table ({}):\n{:<5} {:<20} {:>10} {:>12}\n",
            self.writes_source, "fam", "structure", "updates", "M ops/s"
        );
        for w in &self.writes {
            s += &format!(
                "{:<5} {:<20} {:>10} {:>12.2}\n",
                w.family,
                w.name,
                w.updates,
                w.ops_per_sec / 1e6
            );
        }
        s += &format!(
            "\nevery path of every structure agrees with rtm's scalar path (measured answers, and distinct values per prefix on a 200k sample; after the replays too): {}\n",
            if self.agree { "yes" } else { "NO" }
        );
        for m in &self.mismatches {
            s += &format!("  mismatch: {m}\n");
        }
        let scalar = |r: &LpmRow| Some(r.scalar_mlps);
        let batch = |r: &LpmRow| r.batch_mlps;
        for r in self
            .rows
            .iter()
            .filter(|r| r.name == "rtm" || r.name == "rtm (next-hop id)")
        {
            let mut parts = Vec::new();
            for other in ["dir-24-8 (static)", "prefix-trie", "treebitmap"] {
                if let Some(x) = ratio(&self.rows, r, other, scalar) {
                    parts.push(format!("scalar {x:.2}x {other}"));
                }
                if let Some(x) = ratio(&self.rows, r, other, batch) {
                    parts.push(format!("batch {x:.2}x {other}"));
                }
            }
            s += &format!(
                "{} {} {}: {}\n",
                r.name,
                r.family,
                r.traffic,
                parts.join(", ")
            );
        }
        for w in self.writes.iter().filter(|w| w.name == "rtm") {
            let parts: Vec<String> = self
                .writes
                .iter()
                .filter(|o| o.family == w.family && o.name != w.name && o.ops_per_sec > 0.0)
                .map(|o| format!("{:.2}x {}", w.ops_per_sec / o.ops_per_sec, o.name))
                .collect();
            s += &format!("rtm {} writes: {}\n", w.family, parts.join(", "));
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
                    "{{\"family\":\"{}\",\"traffic\":\"{}\",\"structure\":\"{}\",\"scalar_mlps\":{:.3},\"batch_mlps\":{},\"dependent_mlps\":{:.3},\"bytes_per_prefix\":{:.2},\"build_secs\":{:.4}}}",
                    r.family,
                    r.traffic,
                    r.name,
                    r.scalar_mlps,
                    r.batch_mlps.map_or("null".to_string(), |x| format!("{x:.3}")),
                    r.dependent_mlps,
                    r.bytes_per_prefix,
                    r.build_secs
                )
            })
            .collect();
        let writes: Vec<String> = self
            .writes
            .iter()
            .map(|w| {
                format!(
                    "{{\"family\":\"{}\",\"structure\":\"{}\",\"updates\":{},\"ops_per_sec\":{:.0}}}",
                    w.family, w.name, w.updates, w.ops_per_sec
                )
            })
            .collect();
        format!(
            "{{\"source\":{:?},\"ipv4_prefixes\":{},\"ipv6_prefixes\":{},\"threads\":{},\"lookups\":{},\"agree\":{},\"mismatches\":[{}],\"rows\":[{}],\"writes_source\":{:?},\"writes\":[{}]}}",
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
            rows.join(","),
            self.writes_source,
            writes.join(",")
        )
    }
}
