//! The forwarding-path probe of the churn benchmarks and the demo: threads
//! doing IPv4 lookups through a registered FIB reader (QSBR) while the main thread runs
//! writer phases, with per-phase rates and sampled latencies.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::family::Ipv4;
use crate::rtm::Rtm;
use crate::synth::SplitMix64;

/// Every `SAMPLE`-th lookup is timed on its own.
const SAMPLE: usize = 64;

/// Latency samples kept per phase and thread: a uniform sample of the
/// phase's timed lookups once there are more (reservoir sampling), so the
/// buffers are allocated once, before the benchmark's first memory reading,
/// and never grow: the churn benchmarks' memory figures count the table,
/// not the probe.
const KEPT: usize = 1 << 18;

/// A phase's latency samples: at most [`KEPT`], uniform over all `seen`,
/// and the longest of them all (so the reported maximum is exact).
struct Reservoir {
    kept: Vec<u32>,
    seen: u64,
    max: u32,
}

impl Reservoir {
    fn new() -> Self {
        Reservoir {
            kept: Vec::with_capacity(KEPT),
            seen: 0,
            max: 0,
        }
    }

    /// Offers one sample; `rng` is the thread's generator.
    fn offer(&mut self, ns: u32, rng: &mut SplitMix64) {
        self.seen += 1;
        self.max = self.max.max(ns);
        if self.kept.len() < KEPT {
            self.kept.push(ns);
            return;
        }
        // Kept with probability KEPT / seen, in place of a uniform victim
        // (Algorithm R).
        let j = rng.below(self.seen) as usize;
        if j < KEPT {
            self.kept[j] = ns;
        }
    }

    /// The kept samples, with the longest one among them (added once the
    /// probe is done, when a reallocation no longer matters).
    fn into_samples(mut self) -> Vec<u32> {
        if self.seen > self.kept.len() as u64 && !self.kept.contains(&self.max) {
            self.kept.push(self.max);
        }
        self.kept
    }
}

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
    /// For a writer phase, `mlps` over the mean rate of the phases without
    /// writer operations next to it (before and after, or the one there
    /// is); None for those phases themselves.
    pub of_idle: Option<f64>,
    /// Deferred frees (FIB nodes and next-hop ids, RIB sets and ids) the
    /// reader threads ran themselves during the phase: 0 by design, since
    /// FIB readers never reclaim (see `rtm::qsbr`).
    pub reader_frees: u64,
}

/// Name of the idle windows.
pub const IDLE: &str = "idle (no writer)";

/// A running reader thread and the phases timed so far.
pub struct ReaderProbe {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<PerPhase>>,
    timings: Vec<(&'static str, f64, usize)>,
    started: Instant,
}

fn percentile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as u64
}

/// One reader's lookups per phase, its latency samples per phase, and the
/// deferred frees it ran per phase.
type PerPhase = (Vec<usize>, Vec<Vec<u32>>, Vec<u64>);

/// One reader thread's loop: lookups in blocks of 256, every
/// [`SAMPLE`]-th timed alone, counted per phase, until `stop`.
fn read_until_stopped(
    rtm: &Rtm,
    traffic: &[Ipv4Addr],
    start: usize,
    mut samples: Vec<Reservoir>,
    phase: &AtomicUsize,
    stop: &AtomicBool,
) -> PerPhase {
    let fib = rtm.fib::<Ipv4>();
    let max_phases = samples.len();
    let mut counts = vec![0usize; max_phases];
    let mut frees = vec![0u64; max_phases];
    let mut rng = SplitMix64::new(start as u64);
    let mut frees_seen = crate::qsbr::frees_on_this_thread();
    let mut reader = fib.reader();
    let mut i = start;
    let mut sum = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Relaxed: the phase number only labels statistics.
        let ph = phase.load(Ordering::Relaxed).min(max_phases - 1);
        for _ in 0..256 {
            let addr = traffic[i % traffic.len()];
            if i.is_multiple_of(SAMPLE) {
                let t = Instant::now();
                let e = reader.lookup(addr);
                let ns = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                sum += e.map_or(0, |e| e.interface as u64);
                samples[ph].offer(ns, &mut rng);
            } else {
                sum += reader.lookup(addr).map_or(0, |e| e.interface as u64);
            }
            i += 1;
        }
        counts[ph] += 256;
        // Let memory retired meanwhile be reclaimed.
        reader.quiescent();
        // Reclamation work this thread ran (must stay 0: writers free).
        let f = crate::qsbr::frees_on_this_thread();
        frees[ph] += f - frees_seen;
        frees_seen = f;
    }
    std::hint::black_box(sum);
    (
        counts,
        samples.into_iter().map(Reservoir::into_samples).collect(),
        frees,
    )
}

impl ReaderProbe {
    /// Starts one reader on `rtm`'s IPv4 FIB, cycling through `traffic`,
    /// for at most `max_phases` phases (later phases are merged into the
    /// last).
    pub fn spawn(rtm: &Rtm, traffic: Vec<Ipv4Addr>, max_phases: usize) -> Self {
        Self::spawn_threads(rtm, traffic, max_phases, 1)
    }

    /// Starts `threads` readers (at least one), each cycling through
    /// `traffic` from its own offset; their counts and samples are merged
    /// per phase. Everything the probe allocates is allocated before this
    /// returns (a memory reading taken then counts none of it later).
    pub fn spawn_threads(
        rtm: &Rtm,
        traffic: Vec<Ipv4Addr>,
        max_phases: usize,
        threads: usize,
    ) -> Self {
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let traffic = Arc::new(traffic);
        let handles = (0..threads.max(1))
            .map(|t| {
                let (rtm, phase, stop, traffic) =
                    (rtm.clone(), phase.clone(), stop.clone(), traffic.clone());
                let start = t * traffic.len() / threads.max(1);
                let samples = (0..max_phases.max(1)).map(|_| Reservoir::new()).collect();
                std::thread::spawn(move || {
                    read_until_stopped(&rtm, &traffic, start, samples, &phase, &stop)
                })
            })
            .collect();
        ReaderProbe {
            phase,
            stop,
            handles,
            timings: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Ends the current phase: it was `name`, with `ops` writer operations.
    pub fn end_phase(&mut self, name: &'static str, ops: usize) {
        self.timings
            .push((name, self.started.elapsed().as_secs_f64(), ops));
        self.started = Instant::now();
        // Relaxed: see the reader.
        self.phase.fetch_add(1, Ordering::Relaxed);
    }

    /// Lets the reader run alone for `ms` milliseconds as an idle window.
    pub fn idle(&mut self, ms: u64) {
        self.started = Instant::now();
        std::thread::sleep(Duration::from_millis(ms));
        self.end_phase(IDLE, 0);
    }

    /// Restarts the current phase's clock (after untimed work).
    pub fn restart_clock(&mut self) {
        self.started = Instant::now();
    }

    /// Stops the reader; the statistics of every phase ended. Each writer
    /// phase gets `of_idle` against the mean of its writer-free neighbours.
    pub fn finish(self) -> Result<Vec<ReaderStats>, String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut counts: Vec<usize> = Vec::new();
        let mut samples: Vec<Vec<u32>> = Vec::new();
        let mut frees: Vec<u64> = Vec::new();
        for h in self.handles {
            let (c, s, fr) = h
                .join()
                .map_err(|_| "a reader thread panicked".to_string())?;
            counts.resize(c.len().max(counts.len()), 0);
            samples.resize_with(s.len().max(samples.len()), Vec::new);
            for (total, n) in counts.iter_mut().zip(c) {
                *total += n;
            }
            for (all, mut mine) in samples.iter_mut().zip(s) {
                all.append(&mut mine);
            }
            frees.resize(fr.len().max(frees.len()), 0);
            for (total, n) in frees.iter_mut().zip(fr) {
                *total += n;
            }
        }
        let mut stats: Vec<ReaderStats> = self
            .timings
            .iter()
            .enumerate()
            .map(|(i, (name, secs, ops))| {
                let s = samples.get_mut(i).map(std::mem::take).unwrap_or_default();
                let mut s = s;
                s.sort_unstable();
                ReaderStats {
                    phase: name,
                    secs: *secs,
                    writer_ops: *ops,
                    mlps: counts.get(i).copied().unwrap_or(0) as f64 / secs / 1e6,
                    p50_ns: percentile(&s, 0.5),
                    p99_ns: percentile(&s, 0.99),
                    p9999_ns: percentile(&s, 0.9999),
                    max_ns: s.last().copied().unwrap_or(0) as u64,
                    of_idle: None,
                    reader_frees: frees.get(i).copied().unwrap_or(0),
                }
            })
            .collect();
        for i in 0..stats.len() {
            if stats[i].writer_ops == 0 {
                continue;
            }
            let quiet: Vec<f64> = [i.checked_sub(1), Some(i + 1)]
                .into_iter()
                .flatten()
                .filter_map(|j| stats.get(j))
                .filter(|p| p.writer_ops == 0)
                .map(|p| p.mlps)
                .collect();
            if !quiet.is_empty() {
                let idle = quiet.iter().sum::<f64>() / quiet.len() as f64;
                stats[i].of_idle = Some(stats[i].mlps / idle);
            }
        }
        Ok(stats)
    }
}

/// The phases as a table (one line each).
pub fn phase_table(phases: &[ReaderStats]) -> String {
    let mut s = format!(
        "{:<24} {:>8} {:>12} {:>12} {:>10} {:>9} {:>9} {:>11} {:>9} {:>6}\n",
        "phase",
        "secs",
        "writer ops",
        "writer op/s",
        "read Mlps",
        "of idle",
        "p50 ns",
        "p99.99 ns",
        "max ns",
        "frees"
    );
    for p in phases {
        s += &format!(
            "{:<24} {:>8.3} {:>12} {:>12.0} {:>10.2} {:>9} {:>9} {:>11} {:>9} {:>6}\n",
            p.phase,
            p.secs,
            p.writer_ops,
            p.writer_ops as f64 / p.secs,
            p.mlps,
            p.of_idle.map_or("-".to_string(), |f| format!("{f:.2}")),
            p.p50_ns,
            p.p9999_ns,
            p.max_ns,
            p.reader_frees
        );
    }
    s
}

/// The phases as a JSON array.
pub fn phase_json(phases: &[ReaderStats]) -> String {
    let items: Vec<String> = phases
        .iter()
        .map(|p| {
            format!(
                "{{\"phase\":{:?},\"secs\":{:.4},\"writer_ops\":{},\"reader_mlps\":{:.3},\"of_idle\":{},\"p50_ns\":{},\"p99_ns\":{},\"p9999_ns\":{},\"max_ns\":{},\"reader_frees\":{}}}",
                p.phase,
                p.secs,
                p.writer_ops,
                p.mlps,
                p.of_idle.map_or("null".to_string(), |f| format!("{f:.3}")),
                p.p50_ns,
                p.p99_ns,
                p.p9999_ns,
                p.max_ns,
                p.reader_frees
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Deferred frees the reader threads ran, over every phase (0 expected).
pub fn reader_frees(phases: &[ReaderStats]) -> u64 {
    phases.iter().map(|p| p.reader_frees).sum()
}

/// The worst `of_idle` of the writer phases (infinity if none).
pub fn worst_fraction(phases: &[ReaderStats]) -> f64 {
    phases
        .iter()
        .filter_map(|p| p.of_idle)
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase with four times more timed lookups than the reservoir
    /// holds: the buffer never grows (a growing one was counted in the
    /// churn benchmark's memory figures as bytes of the table), the
    /// maximum stays exact, and the kept samples are uniform over the
    /// whole phase (a reservoir that kept only the first ones, or only the
    /// last, would put their mean far from the middle).
    #[test]
    fn the_reservoir_keeps_a_uniform_sample_without_growing() {
        let mut r = Reservoir::new();
        let capacity = r.kept.capacity();
        let mut rng = SplitMix64::new(1);
        let n = 4 * KEPT as u32;
        for ns in 0..n {
            // The longest lookup comes early, where a first-come reservoir
            // would keep it and a uniform one most likely drops it.
            r.offer(if ns == 1000 { u32::MAX } else { ns }, &mut rng);
        }
        assert_eq!(r.kept.capacity(), capacity);
        assert_eq!(r.kept.len(), KEPT);
        let mean = r
            .kept
            .iter()
            .filter(|&&x| x != u32::MAX)
            .map(|&x| x as f64)
            .sum::<f64>()
            / KEPT as f64;
        let middle = n as f64 / 2.0;
        assert!(
            (mean - middle).abs() < middle * 0.02,
            "mean {mean}, middle {middle}"
        );
        let samples = r.into_samples();
        assert_eq!(samples.iter().max(), Some(&u32::MAX));
    }
}
