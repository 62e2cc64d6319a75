//! `rtm bench lpm --churn`: one reader looks up while one writer replays a
//! day of BGP updates through the RIB and then registers and deregisters a
//! client holding the whole table. Reports the reader's rate as a fraction
//! of its idle rate, and its latency percentiles from sampled lookups.
//!
//! The reader also runs alone for a second before, between and after the
//! writer phases, and each writer phase is compared with the mean of the
//! idle windows on either side of it: on a shared machine the neighbours'
//! load drifts over seconds, and one idle measurement at the start would
//! credit or charge that drift to the writer.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::input::{self, Traffic};
use super::lpm::LpmOptions;
use crate::client::RegisterOptions;
use crate::error::RtmError;
use crate::family::Ipv4;
use crate::prefix::Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, Ttl};
use crate::rtm::Rtm;
use crate::synth::SplitMix64;

/// Every `SAMPLE`-th lookup is timed on its own.
const SAMPLE: usize = 64;

/// What the reader saw during one phase.
#[derive(Debug, Clone)]
pub struct ReaderStats {
    /// Phase name.
    pub phase: &'static str,
    /// Seconds the phase lasted.
    pub secs: f64,
    /// Writer operations in the phase (0 when idle).
    pub writer_ops: usize,
    /// Reader lookups per second (million).
    pub mlps: f64,
    /// Latency percentiles of sampled single lookups, in ns (including the
    /// ~20-40 ns cost of reading the clock twice).
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Longest sampled lookup.
    pub max_ns: u64,
    /// For a writer phase, `mlps` over the mean rate of the idle windows
    /// before and after it; None for an idle window.
    pub of_idle: Option<f64>,
}

/// The churn report.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// Table and update sources.
    pub source: String,
    /// Idle windows and writer phases, alternating, idle first and last.
    pub phases: Vec<ReaderStats>,
}

fn percentile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as u64
}

fn route(p: Prefix<Ipv4Addr>, metric: u32) -> Route<Ipv4> {
    Route::new(
        p,
        Ipv4Addr::new(192, 0, 2, 1),
        1,
        IpRouteData::with_metric(metric),
    )
}

/// Runs the churn measurement on the IPv4 table.
pub fn run(opts: &LpmOptions, updates: Option<&Path>) -> Result<ChurnReport, String> {
    let tables = match &opts.table {
        Some(p) => input::read_prefix_file(p)?,
        None => input::default_tables(opts.seed),
    };
    let table = tables.v4;
    if table.is_empty() {
        return Err("the table has no IPv4 prefixes".into());
    }
    let (updates, upd_source) = match updates {
        Some(p) => (input::read_updates::<Ipv4Addr>(p)?, p.display().to_string()),
        None => match input::shared_data_dir()
            .map(|d| d.join("ris-20260511-as3333-ipv4-updates.csv.gz"))
        {
            Some(p) if p.is_file() => (
                input::read_updates::<Ipv4Addr>(&p)?,
                "RIS 2026-05-11 AS3333 IPv4 updates".to_string(),
            ),
            _ => {
                let mut rng = SplitMix64::new(opts.seed ^ 0x5eed);
                let u = (0..1_000_000)
                    .map(|_| {
                        (
                            rng.below(30) != 0,
                            table[rng.below(table.len() as u64) as usize],
                        )
                    })
                    .collect();
                (u, "synthetic churn (97% announce, 3% withdraw)".to_string())
            }
        },
    };
    let err = |e: RtmError| e.to_string();

    let rtm = Rtm::new();
    let a_proto = ProtocolId(1);
    let b_proto = ProtocolId(2);
    rtm.set_priority(a_proto, 20);
    rtm.set_priority(b_proto, 10); // B wins: its load and removal move every best route
    let a = rtm
        .register::<Ipv4>(a_proto, RegisterOptions::default())
        .map_err(err)?;
    for p in &table {
        rtm.add_route(&a, &route(*p, 1), Ttl::Infinite)
            .map_err(err)?;
    }

    let traffic = input::traffic_v4(&table, Traffic::Ann, 1 << 22, opts.seed);
    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // idle, replay, idle, load B, idle, deregister B, idle.
    const PHASES: usize = 7;
    let reader = {
        let (rtm, phase, stop) = (rtm.clone(), phase.clone(), stop.clone());
        std::thread::spawn(move || {
            let fib = rtm.fib::<Ipv4>();
            let mut counts = [0usize; PHASES];
            let mut samples: Vec<Vec<u32>> =
                (0..PHASES).map(|_| Vec::with_capacity(1 << 20)).collect();
            let mut reader = fib.reader();
            let mut i = 0usize;
            let mut sum = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Relaxed: the phase number only labels statistics.
                let ph = phase.load(Ordering::Relaxed).min(PHASES - 1);
                for _ in 0..256 {
                    let addr = traffic[i % traffic.len()];
                    if i.is_multiple_of(SAMPLE) {
                        let t = Instant::now();
                        let e = reader.lookup(addr);
                        let ns = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                        sum += e.map_or(0, |e| e.interface as u64);
                        samples[ph].push(ns);
                    } else {
                        sum += reader.lookup(addr).map_or(0, |e| e.interface as u64);
                    }
                    i += 1;
                }
                counts[ph] += 256;
                reader.repin();
            }
            std::hint::black_box(sum);
            (counts, samples)
        })
    };

    let mut timings: Vec<(&'static str, f64, usize)> = Vec::new();
    // The reader alone for a while, then on to the next phase.
    let idle = |timings: &mut Vec<(&'static str, f64, usize)>| {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        timings.push(("idle (no writer)", t.elapsed().as_secs_f64(), 0));
        // Relaxed: see the reader.
        phase.fetch_add(1, Ordering::Relaxed);
    };
    idle(&mut timings);

    let t = Instant::now();
    let mut metric = 2u32;
    for (announce, p) in &updates {
        if *announce {
            metric = metric % 64 + 1;
            rtm.add_route(&a, &route(*p, metric), Ttl::Infinite)
                .map_err(err)?;
        } else {
            match rtm.delete_route(&a, &route(*p, 0)) {
                Ok(_) | Err(RtmError::NoSuchRoute(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    timings.push(("replay updates", t.elapsed().as_secs_f64(), updates.len()));
    phase.fetch_add(1, Ordering::Relaxed);
    idle(&mut timings);

    let t = Instant::now();
    let b = rtm
        .register::<Ipv4>(b_proto, RegisterOptions::default())
        .map_err(err)?;
    for p in &table {
        rtm.add_route(&b, &route(*p, 1), Ttl::Infinite)
            .map_err(err)?;
    }
    timings.push(("register + load B", t.elapsed().as_secs_f64(), table.len()));
    phase.fetch_add(1, Ordering::Relaxed);
    idle(&mut timings);

    let t = Instant::now();
    let removed = rtm.deregister(&b).map_err(err)?;
    timings.push(("deregister B", t.elapsed().as_secs_f64(), removed));
    phase.fetch_add(1, Ordering::Relaxed);
    idle(&mut timings);
    stop.store(true, Ordering::Relaxed);
    let (counts, mut samples) = reader
        .join()
        .map_err(|_| "the reader thread panicked".to_string())?;

    let mut phases: Vec<ReaderStats> = timings
        .iter()
        .enumerate()
        .map(|(i, (name, secs, ops))| {
            samples[i].sort_unstable();
            let s = &samples[i];
            ReaderStats {
                phase: name,
                secs: *secs,
                writer_ops: *ops,
                mlps: counts[i] as f64 / secs / 1e6,
                p50_ns: percentile(s, 0.5),
                p99_ns: percentile(s, 0.99),
                p9999_ns: percentile(s, 0.9999),
                max_ns: s.last().copied().unwrap_or(0) as u64,
                of_idle: None,
            }
        })
        .collect();
    // Writer phases sit at odd indices, between two idle windows.
    for i in (1..phases.len().saturating_sub(1)).step_by(2) {
        let idle = (phases[i - 1].mlps + phases[i + 1].mlps) / 2.0;
        phases[i].of_idle = Some(phases[i].mlps / idle);
    }
    Ok(ChurnReport {
        source: format!(
            "{} ({} IPv4 prefixes); {upd_source} ({} updates)",
            tables.source,
            table.len(),
            updates.len()
        ),
        phases,
    })
}

impl ChurnReport {
    /// The reader's rate during the writer phases as a fraction of idle.
    pub fn worst_fraction(&self) -> f64 {
        self.phases
            .iter()
            .filter_map(|p| p.of_idle)
            .fold(f64::INFINITY, f64::min)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "churn: {}\none reader thread (rtm FIB, pinned reader), one writer thread (RIB calls)\n\n",
            self.source
        );
        s += &format!(
            "{:<20} {:>8} {:>12} {:>12} {:>10} {:>9} {:>9} {:>11} {:>9}\n",
            "phase",
            "secs",
            "writer ops",
            "writer op/s",
            "read Mlps",
            "of idle",
            "p50 ns",
            "p99.99 ns",
            "max ns"
        );
        for p in &self.phases {
            s += &format!(
                "{:<20} {:>8.3} {:>12} {:>12.0} {:>10.2} {:>9} {:>9} {:>11} {:>9}\n",
                p.phase,
                p.secs,
                p.writer_ops,
                p.writer_ops as f64 / p.secs,
                p.mlps,
                p.of_idle.map_or("-".to_string(), |f| format!("{f:.2}")),
                p.p50_ns,
                p.p9999_ns,
                p.max_ns
            );
        }
        s += &format!(
            "\nworst reader rate during churn: {:.2} of idle (each writer phase against the idle windows around it)\n",
            self.worst_fraction()
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{{\"phase\":{:?},\"secs\":{:.4},\"writer_ops\":{},\"reader_mlps\":{:.3},\"of_idle\":{},\"p50_ns\":{},\"p99_ns\":{},\"p9999_ns\":{},\"max_ns\":{}}}",
                    p.phase, p.secs, p.writer_ops, p.mlps,
                    p.of_idle.map_or("null".to_string(), |f| format!("{f:.3}")),
                    p.p50_ns, p.p99_ns, p.p9999_ns, p.max_ns
                )
            })
            .collect();
        format!(
            "{{\"source\":{:?},\"worst_fraction_of_idle\":{:.3},\"phases\":[{}]}}",
            self.source,
            self.worst_fraction(),
            phases.join(",")
        )
    }
}
