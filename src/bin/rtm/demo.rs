//! `rtm demo`: the main job. Three protocols share a full-size table while
//! lookup threads run throughout; the BGP-like one loads, churns and
//! deregisters; a report gives every phase's update rate and the lookups'
//! rate and latency during it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rtm::bench::input::{Tables, Traffic, read_prefix_file, traffic_v4};
use rtm::bench::reader::{ReaderProbe, ReaderStats, phase_json, phase_table};
use rtm::bench::workload::{BATCH, update_in_batches};
use rtm::synth::{self, SplitMix64};
use rtm::{
    ClientHandle, Criteria, IpFamily, IpRouteData, Ipv4, Ipv6, Prefix, ProtocolId, RegisterOptions,
    Route, RouteUpdate, Rtm, RtmError, Ttl,
};

/// Options of `rtm demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seed of the synthetic tables and the churn.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// IPv4 prefixes in the synthetic BGP-like table.
    #[arg(long, default_value_t = 1_000_000)]
    ipv4: usize,
    /// IPv6 prefixes in the synthetic BGP-like table.
    #[arg(long, default_value_t = 200_000)]
    ipv6: usize,
    /// Use this table file (any format `rtm load` reads) for the BGP-like
    /// client instead of the synthetic tables.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Lookup threads running throughout.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds of BGP churn (default: one pass, a tenth of the table).
    #[arg(long)]
    duration: Option<f64>,
    /// Print one JSON object instead of the report (no progress bars).
    #[arg(long)]
    json: bool,
}

const STATIC: ProtocolId = ProtocolId(3); // PROTO_IP_NETMGMT-like, best
const IGP: ProtocolId = ProtocolId(13); // OSPF-like
const BGP: ProtocolId = ProtocolId(14); // BGP-like, holds the full table

fn route<F: IpFamily>(p: Prefix<F::Addr>, nh: F::Addr, iface: u32, metric: u32) -> Route<F> {
    Route::new(p, nh, iface, IpRouteData::with_metric(metric))
}

/// The BGP-like client's interface for a prefix: one of four peers.
fn peer<A: rtm::IpAddress>(p: &Prefix<A>) -> u32 {
    1 + (p.addr().to_bits() >> (A::BITS - p.len()).min(127)) as u32 % 4
}

/// A progress bar on stderr (hidden when stderr is not a terminal, or
/// under `--json`).
fn progress(json: bool, len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{msg:<22} [{bar:40}] {pos}/{len} {per_sec} {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Loads `table` (sorted: a RIB dump arrives in prefix order) as the
/// BGP-like client's initial load.
fn load<F: IpFamily>(
    rtm: &Rtm,
    h: &ClientHandle<F>,
    table: &[Prefix<F::Addr>],
    nh: F::Addr,
    bar: &ProgressBar,
) -> Result<u64, RtmError> {
    let adds = table.iter().map(|&p| RouteUpdate::Add {
        route: route::<F>(p, nh, peer(&p), 20),
        ttl: Ttl::Infinite,
    });
    update_in_batches(rtm, h, adds, |_, r| {
        bar.inc(1);
        r.map(drop)
    })?;
    Ok(table.len() as u64)
}

/// Drains a client's change queue the way a protocol would: wait, then
/// dequeue until the queue is empty. Returns the number of messages.
fn drain_in_background(
    rtm: &Rtm,
    h: &ClientHandle<Ipv4>,
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    let (rtm, h, stop) = (rtm.clone(), h.clone(), stop.clone());
    thread::spawn(move || {
        let mut n = 0;
        loop {
            let more = h
                .wait_for_messages(Duration::from_millis(20))
                .unwrap_or(false);
            while rtm.dequeue(&h).is_ok() {
                n += 1;
            }
            // Relaxed: a stop flag; the join below orders everything else.
            if !more && stop.load(Ordering::Relaxed) {
                return n;
            }
        }
    })
}

/// Waits (at most 30 s) until the drainer has emptied `h`'s queue, so an
/// idle window measures lookups alone, not lookups beside a backlog drain.
fn wait_drained(h: &ClientHandle<Ipv4>) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while h.pending().unwrap_or(0) > 0 && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(5));
    }
}

/// The BGP-like client's tables: `--table`, else the synthetic ones; one
/// route per prefix (the counts in the report are networks), sorted (a RIB
/// dump arrives in prefix order).
fn tables(args: &DemoArgs) -> Result<Tables, String> {
    let mut t = match &args.table {
        Some(path) => {
            let t = read_prefix_file(path)?;
            if t.v4.is_empty() {
                return Err(format!(
                    "{}: no IPv4 prefixes to load (the lookup threads need some)",
                    path.display()
                ));
            }
            t
        }
        None => Tables {
            v4: synth::ipv4_table(args.ipv4.max(1), args.seed),
            v6: synth::ipv6_table(args.ipv6, args.seed),
            source: format!("synthetic (seed {})", args.seed),
        },
    };
    t.v4.sort_unstable();
    t.v4.dedup();
    t.v6.sort_unstable();
    t.v6.dedup();
    Ok(t)
}

/// What the demo measured besides the reader phases.
struct Outcome {
    removed: usize,
    dereg_secs: f64,
    left: usize,
    foreign: usize,
    igp_messages: u64,
    live_before: usize,
    live_loaded: usize,
    live_after: usize,
    consistent: Result<(), String>,
}

pub fn run(args: &DemoArgs, live: &dyn Fn() -> usize) -> Result<(), String> {
    run_demo(args, live).map_err(|e| e.0)
}

/// An error of the demo, from the table or from reading its input.
struct Failed(String);

impl From<RtmError> for Failed {
    fn from(e: RtmError) -> Failed {
        Failed(e.to_string())
    }
}

impl From<String> for Failed {
    fn from(e: String) -> Failed {
        Failed(e)
    }
}

fn run_demo(args: &DemoArgs, live: &dyn Fn() -> usize) -> Result<(), Failed> {
    let deadline = match args.duration {
        None => None,
        Some(s) => Some(Duration::try_from_secs_f64(s).map_err(|_| {
            Failed(format!(
                "--duration {s}: expected a finite, non-negative number of seconds"
            ))
        })?),
    };
    let t = Instant::now();
    let tables = tables(args)?;
    let (v4, v6) = (&tables.v4, &tables.v6);
    if !args.json {
        println!(
            "tables: {} IPv4 + {} IPv6 prefixes, {}, in {:.2}s",
            v4.len(),
            v6.len(),
            tables.source,
            t.elapsed().as_secs_f64()
        );
    }
    let live_before = rtm::bench::settled(live);

    let rtm = Rtm::new();
    rtm.set_priority(STATIC, 1);
    rtm.set_priority(IGP, 110);
    rtm.set_priority(BGP, 200);
    let stat = rtm.register::<Ipv4>(STATIC, RegisterOptions::default())?;
    let igp = rtm.register::<Ipv4>(IGP, RegisterOptions::notifying())?;
    let bgp = rtm.register::<Ipv4>(BGP, RegisterOptions::default())?;
    let bgp6 = rtm.register::<Ipv6>(BGP, RegisterOptions::default())?;
    let nh_bgp = Ipv4Addr::new(192, 0, 2, 1);
    let nh_bgp6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let nh_igp = Ipv4Addr::new(198, 51, 100, 1);

    let stop_drain = Arc::new(AtomicBool::new(false));
    let drainer = drain_in_background(&rtm, &igp, &stop_drain);
    let traffic = traffic_v4(v4, Traffic::Ann, 1 << 20, args.seed);
    // No idle window before the load: lookups in an empty table say
    // nothing about the loaded one.
    let mut probe = ReaderProbe::spawn_threads(&rtm, traffic, 12, args.threads);

    // 1. The BGP-like client loads the full tables.
    let bar = progress(
        args.json,
        (v4.len() + v6.len()) as u64,
        "BGP full-table load",
    );
    probe.restart_clock();
    let n =
        load::<Ipv4>(&rtm, &bgp, v4, nh_bgp, &bar)? + load::<Ipv6>(&rtm, &bgp6, v6, nh_bgp6, &bar)?;
    probe.end_phase("BGP full-table load", n as usize);
    bar.finish_and_clear();
    let live_loaded = rtm::bench::settled(live);

    // 2. The IGP and static clients cover part of the space; they win.
    probe.restart_clock();
    let mut n = 0usize;
    for p in v4.iter().step_by(50) {
        rtm.add_route(&igp, &route::<Ipv4>(*p, nh_igp, 9, 10), Ttl::Infinite)?;
        n += 1;
    }
    for p in v4.iter().step_by(5000) {
        let nh = Ipv4Addr::new(203, 0, 113, 1);
        rtm.add_route(&stat, &route::<Ipv4>(*p, nh, 7, 0), Ttl::Infinite)?;
        n += 1;
    }
    probe.end_phase("IGP + static routes", n);
    wait_drained(&igp);
    probe.idle(500);

    // 3. BGP churn: metric changes on random prefixes and withdrawals of
    // every hundredth, one pass or for --duration seconds.
    let mut rng = SplitMix64::new(args.seed ^ 0xc0ffee);
    let pass = (v4.len() / 10).max(1);
    let bar = progress(
        args.json,
        deadline.map_or(pass as u64, |d| d.as_millis() as u64),
        "BGP churn",
    );
    let start = Instant::now();
    probe.restart_clock();
    let mut n = 0usize;
    loop {
        for _ in 0..BATCH {
            let p = v4[rng.below(v4.len() as u64) as usize];
            let r = route::<Ipv4>(p, nh_bgp, peer(&p), 10 + rng.below(20) as u32);
            if rng.below(100) == 0 {
                // An absent route is a normal outcome of random churn.
                let _ = rtm.delete_route(&bgp, &r);
            } else {
                rtm.add_route(&bgp, &r, Ttl::Infinite)?;
            }
        }
        n += BATCH;
        match deadline {
            Some(d) => {
                bar.set_position(start.elapsed().as_millis() as u64);
                if start.elapsed() >= d {
                    break;
                }
            }
            None => {
                bar.set_position(n as u64);
                if n >= pass {
                    break;
                }
            }
        }
    }
    probe.end_phase("BGP churn", n);
    bar.finish_and_clear();
    wait_drained(&igp);
    probe.idle(500);

    // 4. The BGP-like client deregisters while lookups go on.
    probe.restart_clock();
    let s = Instant::now();
    let removed = rtm.deregister(&bgp)? + rtm.deregister(&bgp6)?;
    let dereg_secs = s.elapsed().as_secs_f64();
    probe.end_phase("BGP deregistration", removed);
    wait_drained(&igp);
    probe.idle(300);
    let phases = probe.finish()?;

    // What is left must be exactly the IGP and static routes.
    let left = rtm.network_count::<Ipv4>();
    let foreign = rtm
        .enumerate(&Criteria::<Ipv4>::all().best_only())
        .map(|e| {
            e.filter(|r| r.protocol != IGP && r.protocol != STATIC)
                .count()
        })
        .unwrap_or(0);
    stop_drain.store(true, Ordering::Relaxed);
    let igp_messages = drainer.join().unwrap_or(0);
    let consistent = rtm.verify_consistency();
    let outcome = Outcome {
        removed,
        dereg_secs,
        left,
        foreign,
        igp_messages,
        live_before,
        live_loaded,
        live_after: rtm::bench::settled(live),
        consistent,
    };
    let routes = v4.len() + v6.len();
    if args.json {
        println!("{}", json(&tables, &phases, &outcome, args.threads));
    } else {
        report(&phases, &outcome, routes, args.threads);
    }
    if let Err(e) = outcome.consistent {
        return Err(Failed(format!("consistency check failed: {e}")));
    }
    if outcome.foreign != 0 {
        return Err(Failed(format!(
            "{} best routes of a deregistered client remain",
            outcome.foreign
        )));
    }
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn report(phases: &[ReaderStats], o: &Outcome, routes: usize, threads: usize) {
    println!();
    println!(
        "lookups: {} thread(s); rates are all threads together, latencies per sampled lookup",
        threads.max(1)
    );
    print!("{}", phase_table(phases));
    println!();
    println!(
        "deregistration of {} routes took {:.3}s",
        o.removed, o.dereg_secs
    );
    println!(
        "IPv4 networks left: {} (all IGP or static: {}), change messages the IGP drained: {}",
        o.left,
        o.foreign == 0,
        o.igp_messages
    );
    println!(
        "live heap: {:.1} MiB before, {:.1} MiB with {} routes ({:.0} bytes/route incl. the FIB), {:.1} MiB after deregistration",
        mib(o.live_before),
        mib(o.live_loaded),
        routes,
        o.live_loaded.saturating_sub(o.live_before) as f64 / routes.max(1) as f64,
        mib(o.live_after)
    );
    match &o.consistent {
        Ok(()) => println!("consistency check: ok"),
        Err(e) => println!("consistency check: FAILED: {e}"),
    }
}

fn json(t: &Tables, phases: &[ReaderStats], o: &Outcome, threads: usize) -> String {
    format!(
        "{{\"tables\":{{\"source\":{},\"ipv4\":{},\"ipv6\":{}}},\"threads\":{},\"phases\":{},\"deregistration\":{{\"routes\":{},\"secs\":{:.4}}},\"ipv4_networks_left\":{},\"deregistered_best_routes_left\":{},\"igp_messages\":{},\"live_bytes\":{{\"before\":{},\"loaded\":{},\"after\":{}}},\"consistent\":{}}}",
        rtm::batch::Json::from(t.source.as_str()),
        t.v4.len(),
        t.v6.len(),
        threads.max(1),
        phase_json(phases),
        o.removed,
        o.dereg_secs,
        o.left,
        o.foreign,
        o.igp_messages,
        o.live_before,
        o.live_loaded,
        o.live_after,
        o.consistent.is_ok()
    )
}
