//! `rtm bench churn`: the control plane under a full table. One run, the
//! IPv4 table (then the IPv6 one for the IPv6 steps), steps timed one
//! after another while a reader thread looks up throughout (see
//! [`super::reader`]):
//!
//! - **U1** register client A (preferred) and load the table;
//! - **U2** replay the day of updates as A (`A` = add or refresh with a new
//!   metric, `W` = delete);
//! - **U3** register client B (less preferred) and load the same table;
//! - **W1** deregister A, whose routes are best everywhere, while two
//!   subscribers (one FIFO, one coalescing queue) drain their messages;
//!   afterwards (untimed) every prefix must be in the FIB on B's route;
//! - **W3** two seconds later: live bytes against the one-client state
//!   after U1, and the reader's longest pause while the frees ran;
//!
//! then a graceful restart of B, now the only client, the reader still
//! running:
//!
//! - **G1** deregister B gracefully: every route marked stale, kept in the
//!   FIB;
//! - **G2** register B again (adopting the routes) and announce 99% of the
//!   table again, in batches: refreshed, fresh again;
//! - **G3** end-of-RIB: sweep the 1% not announced (its cost against W1,
//!   a deregistration of the whole table, is the point);
//! - **G4** mark B's routes stale again, **G5** sweep them all;
//!
//! then, on a fresh table with a reader of its own, the orders a routing
//! daemon's writes really arrive in:
//!
//! - **U1r** register client A and load the table in a random order
//!   (batches of 1,024, as U1);
//! - **U2s** replay the day of updates as A with one `add_route` /
//!   `delete_route` call per update;
//!
//! then the IPv6 steps **U1r6**, **U2s6** and **M16** on the IPv6 table
//! and its updates (see [`super::churn_v6`]),
//!
//! and last the ECMP steps **E1** (FIB memory with 30% of prefixes on 2-4
//! equal-cost paths against the single-path FIB) and **E2** (one next hop
//! of a group every prefix uses going down), on tables of their own (see
//! [`super::ecmp`]).
//!
//! Memory comes from the live-bytes counter the caller passes (the `rtm`
//! binary's counting global allocator).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::churn_v6::{self, V6Figures};
use super::ecmp::{self, EcmpFigures};
use super::input::{self, Traffic};
use super::reader::{self, ReaderProbe, ReaderStats};
use super::workload::Workload;
use crate::client::{ClientHandle, RegisterOptions};
use crate::error::RtmError;
use crate::family::Ipv4;
use crate::notify::DequeueStatus;
use crate::route::ProtocolId;
use crate::rtm::Rtm;

/// Options of `rtm bench churn`.
#[derive(Debug, Clone, Default)]
pub struct TableChurnOptions {
    /// A prefix-per-line table (gzip allowed; its IPv6 prefixes feed the
    /// IPv6 steps); default: the RIS IPv4 and IPv6 tables or the synthetic
    /// ones.
    pub table: Option<PathBuf>,
    /// An `A,prefix` / `W,prefix` update stream (IPv4 and IPv6); default:
    /// the RIS days of updates or synthetic churn.
    pub updates: Option<PathBuf>,
    /// Seed of the synthetic inputs and the reader's traffic.
    pub seed: u64,
}

/// What a change subscriber saw during W1.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// "fifo" or "coalescing".
    pub mode: &'static str,
    /// Messages dequeued while W1 ran.
    pub drained_during: usize,
    /// Messages dequeued in all (W1 and the drain after it).
    pub drained_total: usize,
    /// Largest backlog the subscriber saw.
    pub peak_backlog: usize,
}

/// The report.
#[derive(Debug, Clone)]
pub struct TableChurnReport {
    /// Table and update sources.
    pub source: String,
    /// Routes in the table.
    pub routes: usize,
    /// Reader phases: idle windows and the timed steps.
    pub phases: Vec<ReaderStats>,
    /// U1, U2, U3 rates (routes or operations per second).
    pub u1_per_sec: f64,
    /// U2 operations per second.
    pub u2_per_sec: f64,
    /// U3 routes per second.
    pub u3_per_sec: f64,
    /// U1r routes per second (random-order load into a fresh table).
    pub u1r_per_sec: f64,
    /// U2s operations per second (one call per update).
    pub u2s_per_sec: f64,
    /// Live bytes per route that U3 added (a second client's table).
    pub u3_bytes_per_route: f64,
    /// W1 wall time in seconds.
    pub w1_secs: f64,
    /// Prefixes not on B's route in the FIB after W1 (must be 0).
    pub w1_not_on_b: usize,
    /// Live bytes 2 s after W1 over live bytes after U1 (both one client).
    pub w3_ratio: f64,
    /// Longest sampled reader lookup during the W3 window, in ns.
    pub w3_max_pause_ns: u64,
    /// Live bytes per route after U1 (engine: RIB, FIB, indexes).
    pub m1_total_bytes_per_route: f64,
    /// The same, less the FIB's own memory: the RIB's share.
    pub m1_rib_bytes_per_route: f64,
    /// The two subscribers.
    pub subscribers: Vec<Subscriber>,
    /// The graceful-restart steps G1-G5.
    pub graceful: GracefulFigures,
    /// The ECMP steps E1-E2.
    pub ecmp: EcmpFigures,
    /// The IPv6 steps U1r6, U2s6, M16.
    pub v6: V6Figures,
}

/// What the graceful-restart steps measured.
#[derive(Debug, Clone, Default)]
pub struct GracefulFigures {
    /// G1: routes marked stale by the graceful deregistration, and seconds.
    pub marked: usize,
    /// G1 seconds.
    pub mark_secs: f64,
    /// G2: routes announced again by the adopting client, and seconds.
    pub refreshed: usize,
    /// G2 seconds (registration and the re-announcement).
    pub adopt_secs: f64,
    /// G3: routes end-of-RIB swept (those not announced again).
    pub eor_swept: usize,
    /// G3 seconds.
    pub eor_secs: f64,
    /// G4: routes marked stale by `mark_stale`.
    pub remarked: usize,
    /// G4 seconds.
    pub remark_secs: f64,
    /// G5: stale routes swept by `sweep_stale`.
    pub swept: usize,
    /// G5 seconds.
    pub sweep_secs: f64,
}

impl GracefulFigures {
    fn rate(n: usize, secs: f64) -> f64 {
        n as f64 / secs.max(1e-9)
    }
}

impl Subscriber {
    /// Messages per second drained during a W1 of `w1_secs`.
    pub fn rate_during(&self, w1_secs: f64) -> f64 {
        self.drained_during as f64 / w1_secs
    }
}

/// A thread running RTMv1's client loop on `client` until `stop`: wait on
/// the notifier, then dequeue until the status says no more remain. Counts
/// what it drained while `during` was set, and the largest backlog it saw:
/// sampled on each wake-up (the backlog only grows while the client
/// sleeps) and every 256 messages while it drains.
fn drainer(
    rtm: Rtm,
    client: ClientHandle<Ipv4>,
    mode: &'static str,
    during: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Subscriber> {
    std::thread::spawn(move || {
        let mut sub = Subscriber {
            mode,
            drained_during: 0,
            drained_total: 0,
            peak_backlog: 0,
        };
        loop {
            sub.peak_backlog = sub.peak_backlog.max(client.pending().unwrap_or(0));
            loop {
                match rtm.dequeue(&client) {
                    Ok(d) => {
                        sub.drained_total += 1;
                        // Relaxed: a label for statistics.
                        if during.load(Ordering::Relaxed) {
                            sub.drained_during += 1;
                        }
                        if d.status == DequeueStatus::Last {
                            break;
                        }
                        if sub.drained_total.is_multiple_of(256) {
                            sub.peak_backlog = sub.peak_backlog.max(client.pending().unwrap_or(0));
                        }
                    }
                    Err(RtmError::NoMessages) => break,
                    Err(_) => return sub,
                }
            }
            // Relaxed: the flag only ends the loop, and it is set after the
            // last write, so a queue empty then stays empty.
            if stop.load(Ordering::Relaxed) && client.pending().unwrap_or(0) == 0 {
                return sub;
            }
            let _ = client.wait_for_messages(Duration::from_millis(10));
        }
    })
}

/// Runs the benchmark; `live` reports the process's live heap bytes.
pub fn run(opts: &TableChurnOptions, live: &dyn Fn() -> usize) -> Result<TableChurnReport, String> {
    let work = Workload::load(opts.table.as_ref(), opts.updates.as_deref(), opts.seed)?;
    let err = |e: RtmError| e.to_string();
    let n = work.table.len();

    let rtm = Rtm::new();
    let (pa, pb) = (ProtocolId(1), ProtocolId(2));
    rtm.set_priority(pa, 10); // lower wins: A is best everywhere
    rtm.set_priority(pb, 20);
    let traffic = input::traffic_v4(&work.table, Traffic::Ann, 1 << 22, opts.seed);
    let traffic_again = traffic.clone();
    // The reader starts with U1 (an idle window on the empty table would be
    // no yardstick); U1 is compared with the idle window after it. The
    // baseline is read after the probe has allocated its buffers: the
    // memory figures count the table, not the probe's latency samples
    // (16 MiB, which until 2026-12-03 were counted as 16 bytes a route).
    let mut probe = ReaderProbe::spawn(&rtm, traffic, 16);
    let live0 = live();

    // U1
    let t = Instant::now();
    let a = work.register_and_load(&rtm, pa)?;
    let u1 = t.elapsed().as_secs_f64();
    probe.end_phase("U1 register + load A", n);
    let live1 = super::settled(live);
    let fib1 = rtm.fib::<Ipv4>().memory().total();
    probe.idle(1000);

    // U2
    let t = Instant::now();
    work.replay(&rtm, &a)?;
    let u2 = t.elapsed().as_secs_f64();
    probe.end_phase("U2 replay updates (A)", work.updates.len());
    probe.idle(1000);

    // U3
    let live2 = super::settled(live);
    probe.restart_clock();
    let t = Instant::now();
    let b = work.register_and_load(&rtm, pb)?;
    let u3 = t.elapsed().as_secs_f64();
    probe.end_phase("U3 register + load B", n);
    let live3 = super::settled(live);
    probe.idle(1000);

    // W1, with two subscribers draining.
    let during = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let subs = [
        ("fifo", RegisterOptions::notifying(), ProtocolId(3)),
        ("coalescing", RegisterOptions::coalescing(), ProtocolId(4)),
    ]
    .into_iter()
    .map(|(mode, o, p)| {
        let c = rtm.register::<Ipv4>(p, o).map_err(err)?;
        Ok((
            c.clone(),
            drainer(rtm.clone(), c, mode, during.clone(), stop.clone()),
        ))
    })
    .collect::<Result<Vec<_>, String>>()?;
    probe.restart_clock();
    // Relaxed: a statistics label.
    during.store(true, Ordering::Relaxed);
    let t = Instant::now();
    let removed = rtm.deregister(&a).map_err(err)?;
    let w1 = t.elapsed().as_secs_f64();
    during.store(false, Ordering::Relaxed);
    probe.end_phase("W1 deregister A", removed);
    let fib = rtm.fib::<Ipv4>();
    let w1_not_on_b = work
        .table
        .iter()
        .filter(|p| fib.get(p).is_none_or(|e| e.protocol != pb))
        .count();
    // Let the subscribers finish their backlog, then stop them.
    for (c, _) in &subs {
        while c.pending().unwrap_or(0) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut subscribers = Vec::new();
    for (c, h) in subs {
        subscribers.push(h.join().map_err(|_| "a subscriber panicked".to_string())?);
        rtm.deregister(&c).map_err(err)?;
    }

    // W3: two seconds for deferred frees to run.
    probe.restart_clock();
    std::thread::sleep(Duration::from_secs(2));
    probe.end_phase("W3 2 s after W1", 0);
    let live_w3 = super::settled(live);

    // G1-G5: a graceful restart of B, the reader still running.
    let mut g = GracefulFigures::default();
    probe.restart_clock();
    let t = Instant::now();
    g.marked = rtm
        .deregister_graceful(&b, Duration::from_secs(3600))
        .map_err(err)?;
    g.mark_secs = t.elapsed().as_secs_f64();
    probe.end_phase("G1 graceful dereg B", g.marked);
    probe.restart_clock();
    let t = Instant::now();
    let b = rtm
        .register::<Ipv4>(pb, RegisterOptions::default())
        .map_err(err)?;
    g.refreshed = work.refresh(&rtm, &b, |i| i % 100 != 0)?;
    g.adopt_secs = t.elapsed().as_secs_f64();
    probe.end_phase("G2 adopt, refresh 99%", g.refreshed);
    probe.restart_clock();
    let t = Instant::now();
    g.eor_swept = rtm.end_of_rib(&b).map_err(err)?;
    g.eor_secs = t.elapsed().as_secs_f64();
    probe.end_phase("G3 end-of-RIB (1% stale)", g.eor_swept);
    probe.restart_clock();
    let t = Instant::now();
    g.remarked = rtm.mark_stale(&b, None).map_err(err)?;
    g.remark_secs = t.elapsed().as_secs_f64();
    probe.end_phase("G4 mark B stale", g.remarked);
    probe.restart_clock();
    let t = Instant::now();
    g.swept = rtm.sweep_stale(&b).map_err(err)?;
    g.sweep_secs = t.elapsed().as_secs_f64();
    probe.end_phase("G5 sweep B's stale", g.swept);
    if rtm.network_count::<Ipv4>() != 0 || g.eor_swept + g.refreshed != g.marked {
        return Err(format!(
            "graceful restart: {} marked, {} refreshed, {} swept at end-of-RIB, {} networks left after the last sweep",
            g.marked,
            g.refreshed,
            g.eor_swept,
            rtm.network_count::<Ipv4>()
        ));
    }

    let mut phases = probe.finish()?;
    let w3_max_pause_ns = phases
        .iter()
        .find(|p| p.phase.starts_with("W3"))
        .map_or(0, |p| p.max_ns);
    drop(b);
    drop(rtm);

    // U1r, U2s: a fresh table, and a reader on it.
    let rtm = Rtm::new();
    rtm.set_priority(pa, 10);
    let mut probe = ReaderProbe::spawn(&rtm, traffic_again, 8);
    let t = Instant::now();
    let a = work.register_and_load_shuffled(&rtm, pa, opts.seed)?;
    let u1r = t.elapsed().as_secs_f64();
    probe.end_phase("U1r load A, random order", n);
    probe.idle(1000);
    let t = Instant::now();
    work.replay_one_by_one(&rtm, &a)?;
    let u2s = t.elapsed().as_secs_f64();
    probe.end_phase("U2s replay, one per call", work.updates.len());
    probe.idle(1000);
    phases.extend(probe.finish()?);
    drop(a);
    drop(rtm);

    let v6 = churn_v6::run(
        opts.table.as_ref(),
        opts.updates.as_deref(),
        opts.seed,
        live,
    )?;
    let ecmp = ecmp::run(&work.table, opts.seed)?;

    let per = |bytes: usize| bytes as f64 / n as f64;
    Ok(TableChurnReport {
        source: work.source.clone(),
        routes: n,
        phases,
        u1_per_sec: n as f64 / u1,
        u2_per_sec: work.updates.len() as f64 / u2,
        u3_per_sec: n as f64 / u3,
        u1r_per_sec: n as f64 / u1r,
        u2s_per_sec: work.updates.len() as f64 / u2s,
        u3_bytes_per_route: per(live3.saturating_sub(live2)),
        w1_secs: w1,
        w1_not_on_b,
        w3_ratio: live_w3.saturating_sub(live0) as f64 / live1.saturating_sub(live0).max(1) as f64,
        w3_max_pause_ns,
        m1_total_bytes_per_route: per(live1.saturating_sub(live0)),
        m1_rib_bytes_per_route: per(live1.saturating_sub(live0).saturating_sub(fib1)),
        subscribers,
        graceful: g,
        ecmp,
        v6,
    })
}

impl TableChurnReport {
    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut s = format!(
            "churn: {}\nreader: one thread, rtm FIB, registered QSBR reader; writer: the main thread (RIB calls)\n\n",
            self.source
        );
        s += &reader::phase_table(&self.phases);
        s += &format!(
            "\nU1 load A              {:>12.0} routes/s\n\
             U2 replay              {:>12.0} ops/s\n\
             U3 load B              {:>12.0} routes/s, {:.1} extra live bytes/route\n\
             U1r load, random order {:>12.0} routes/s (fresh table)\n\
             U2s replay, one a call {:>12.0} ops/s\n\
             W1 deregister A        {:>12.3} s, prefixes not on B afterwards: {}\n\
             W3 live after 2 s      {:>12.2} x the one-client state after U1; longest reader lookup {} ns\n\
             M1 bytes/route (U1)    {:>12.1} total, {:.1} without the FIB\n",
            self.u1_per_sec,
            self.u2_per_sec,
            self.u3_per_sec,
            self.u3_bytes_per_route,
            self.u1r_per_sec,
            self.u2s_per_sec,
            self.w1_secs,
            self.w1_not_on_b,
            self.w3_ratio,
            self.w3_max_pause_ns,
            self.m1_total_bytes_per_route,
            self.m1_rib_bytes_per_route,
        );
        for sub in &self.subscribers {
            s += &format!(
                "N1 {:<10} subscriber: drained {:.0} msgs/s during W1 ({} then, {} in all), peak backlog {}\n",
                sub.mode,
                sub.rate_during(self.w1_secs),
                sub.drained_during,
                sub.drained_total,
                sub.peak_backlog
            );
        }
        let g = &self.graceful;
        let rate = GracefulFigures::rate;
        s += &format!(
            "G1 graceful dereg B    {:>12.0} routes/s marked stale ({} in {:.3} s)\n\
             G2 adopt + refresh 99% {:>12.0} routes/s ({} announced again)\n\
             G3 end-of-RIB          {:>12.4} s for {} stale routes: {:.2}% of W1\n\
             G4 mark stale          {:>12.0} routes/s ({} routes)\n\
             G5 sweep stale         {:>12.0} routes/s ({} routes)\n",
            rate(g.marked, g.mark_secs),
            g.marked,
            g.mark_secs,
            rate(g.refreshed, g.adopt_secs),
            g.refreshed,
            g.eor_secs,
            g.eor_swept,
            100.0 * g.eor_secs / self.w1_secs,
            rate(g.remarked, g.remark_secs),
            g.remarked,
            rate(g.swept, g.sweep_secs),
            g.swept,
        );
        let v6 = &self.v6;
        if let Some(why) = &v6.skipped {
            s += &format!("U1r6, U2s6, M16 (IPv6) skipped: {why}\n");
        } else {
            s += &format!(
                "U1r6 IPv6 random load  {:>12.0} routes/s ({} prefixes: {})\n\
             U2s6 IPv6 one a call   {:>12.0} ops/s ({} updates)\n\
             M16 IPv6 bytes/route   {:>12.1} total (RIB and FIB)\n",
                v6.u1r_per_sec,
                v6.routes,
                v6.source,
                v6.u2s_per_sec,
                v6.updates,
                v6.bytes_per_route,
            );
        }
        let e = &self.ecmp;
        s += &format!(
            "E1 ECMP FIB memory     {:>12.3} x the single-path FIB ({} of {} prefixes on 2-4 paths, {} groups; {:.1} MB against {:.1} MB)\n\
             E2 next hop down       {:>12.1} us for {} prefixes over one group ({} lookups checked after); withdrawing them: {:.3} s\n",
            e.memory_ratio(),
            e.multipath_prefixes,
            self.routes,
            e.groups,
            e.ecmp_fib_bytes as f64 / 1e6,
            e.single_fib_bytes as f64 / 1e6,
            e.pic_secs * 1e6,
            e.pic_prefixes,
            e.pic_checked,
            e.withdraw_secs,
        );
        s += &format!(
            "reader: worst {:.2} of idle over the steps; deferred frees it ran: {}\n",
            reader::worst_fraction(&self.phases),
            reader::reader_frees(&self.phases)
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let subs: Vec<String> = self
            .subscribers
            .iter()
            .map(|s| {
                format!(
                    "{{\"mode\":{:?},\"drained_during_w1\":{},\"drained_total\":{},\"msgs_per_sec_during_w1\":{:.0},\"peak_backlog\":{}}}",
                    s.mode,
                    s.drained_during,
                    s.drained_total,
                    s.rate_during(self.w1_secs),
                    s.peak_backlog
                )
            })
            .collect();
        format!(
            "{{\"source\":{:?},\"routes\":{},\"u1_routes_per_sec\":{:.0},\"u2_ops_per_sec\":{:.0},\"u3_routes_per_sec\":{:.0},\"u1r_routes_per_sec\":{:.0},\"u2s_ops_per_sec\":{:.0},\"u3_bytes_per_route\":{:.2},\"w1_secs\":{:.4},\"w1_not_on_b\":{},\"w3_live_ratio\":{:.3},\"w3_max_pause_ns\":{},\"m1_total_bytes_per_route\":{:.2},\"m1_rib_bytes_per_route\":{:.2},\"reader_worst_of_idle\":{:.3},\"reader_frees\":{},\"subscribers\":[{}],\"gr_mark_routes_per_sec\":{:.0},\"gr_adopt_routes_per_sec\":{:.0},\"gr_eor_secs\":{:.5},\"gr_eor_swept\":{},\"gr_eor_of_w1\":{:.4},\"gr_remark_routes_per_sec\":{:.0},\"gr_sweep_routes_per_sec\":{:.0},\"ecmp_memory_ratio\":{:.4},\"ecmp_groups\":{},\"ecmp_multipath_prefixes\":{},\"pic_next_hop_down_secs\":{:.7},\"pic_prefixes\":{},\"pic_lookups_checked\":{},\"pic_withdraw_secs\":{:.4},\"v6_skipped\":{},\"v6_source\":{:?},\"v6_routes\":{},\"v6_updates\":{},\"u1r6_routes_per_sec\":{:.0},\"u2s6_ops_per_sec\":{:.0},\"m16_total_bytes_per_route\":{:.2},\"phases\":{}}}",
            self.source,
            self.routes,
            self.u1_per_sec,
            self.u2_per_sec,
            self.u3_per_sec,
            self.u1r_per_sec,
            self.u2s_per_sec,
            self.u3_bytes_per_route,
            self.w1_secs,
            self.w1_not_on_b,
            self.w3_ratio,
            self.w3_max_pause_ns,
            self.m1_total_bytes_per_route,
            self.m1_rib_bytes_per_route,
            reader::worst_fraction(&self.phases),
            reader::reader_frees(&self.phases),
            subs.join(","),
            GracefulFigures::rate(self.graceful.marked, self.graceful.mark_secs),
            GracefulFigures::rate(self.graceful.refreshed, self.graceful.adopt_secs),
            self.graceful.eor_secs,
            self.graceful.eor_swept,
            self.graceful.eor_secs / self.w1_secs,
            GracefulFigures::rate(self.graceful.remarked, self.graceful.remark_secs),
            GracefulFigures::rate(self.graceful.swept, self.graceful.sweep_secs),
            self.ecmp.memory_ratio(),
            self.ecmp.groups,
            self.ecmp.multipath_prefixes,
            self.ecmp.pic_secs,
            self.ecmp.pic_prefixes,
            self.ecmp.pic_checked,
            self.ecmp.withdraw_secs,
            self.v6
                .skipped
                .as_ref()
                .map_or("null".to_string(), |w| format!("{w:?}")),
            self.v6.source,
            self.v6.routes,
            self.v6.updates,
            self.v6.u1r_per_sec,
            self.v6.u2s_per_sec,
            self.v6.bytes_per_route,
            reader::phase_json(&self.phases)
        )
    }
}
