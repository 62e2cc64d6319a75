//! `rtm demo`: the main job on a built-in synthetic full-size table.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use rtm::synth::{self, SplitMix64};
use rtm::{
    ClientHandle, Criteria, IpFamily, IpRouteData, Ipv4, Ipv6, Prefix, ProtocolId, RegisterOptions,
    Route, Rtm, RtmError, Ttl,
};

/// Options of `rtm demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seed of the synthetic tables.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// IPv4 prefixes in the BGP-like table.
    #[arg(long, default_value_t = 1_000_000)]
    ipv4: usize,
    /// IPv6 prefixes in the BGP-like table.
    #[arg(long, default_value_t = 200_000)]
    ipv6: usize,
    /// Lookup threads running throughout.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

const STATIC: ProtocolId = ProtocolId(3); // PROTO_IP_NETMGMT-like, best
const IGP: ProtocolId = ProtocolId(13); // OSPF-like
const BGP: ProtocolId = ProtocolId(14); // BGP-like, holds the full table

/// Counts lookups and misses between phase marks.
struct Readers {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    max_ns: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Readers {
    fn start(rtm: &Rtm, v4: Arc<Vec<Prefix<Ipv4Addr>>>, n: usize) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let max_ns = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|t| {
                let (rtm, v4, stop, done, max_ns) = (
                    rtm.clone(),
                    v4.clone(),
                    stop.clone(),
                    done.clone(),
                    max_ns.clone(),
                );
                thread::spawn(move || {
                    let mut rng = SplitMix64::new(t as u64 + 77);
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        for _ in 0..256 {
                            // A random address inside a random table prefix.
                            let p = v4[rng.below(v4.len() as u64) as usize];
                            let host = (rng.next_u64() as u32) & !u32::from(p.mask());
                            let a = Ipv4Addr::from(u32::from(p.addr()) | host);
                            std::hint::black_box(rtm.lookup::<Ipv4>(a));
                        }
                        // Relaxed: statistics only.
                        let ns = t0.elapsed().as_nanos() as u64 / 256;
                        max_ns.fetch_max(ns, Ordering::Relaxed);
                        done.fetch_add(256, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Readers {
            stop,
            done,
            max_ns,
            threads,
        }
    }

    /// Lookups and the worst 256-lookup-batch mean latency since the last mark.
    fn mark(&self) -> (u64, u64) {
        (
            self.done.swap(0, Ordering::Relaxed),
            self.max_ns.swap(0, Ordering::Relaxed),
        )
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Phase {
    name: &'static str,
    secs: f64,
    ops: Option<(u64, &'static str)>,
    lookups: u64,
    worst_batch_ns: u64,
}

fn route<F: IpFamily>(p: Prefix<F::Addr>, nh: F::Addr, iface: u32, metric: u32) -> Route<F> {
    Route::new(p, nh, iface, IpRouteData::with_metric(metric))
}

/// The BGP-like client's interface for a prefix: one of four peers.
fn peer<A: rtm::IpAddress>(p: &Prefix<A>) -> u32 {
    1 + (p.addr().to_bits() >> (A::BITS - p.len()).min(127)) as u32 % 4
}

/// Loads `table` as the BGP-like client's initial load: in prefix order
/// (as a RIB dump arrives; the synthetic generator's order is random, and
/// the sort is timed with the load) and through `update_routes` in batches
/// of 1,024, the bulk path.
fn load<F: IpFamily>(
    rtm: &Rtm,
    h: &ClientHandle<F>,
    table: &[Prefix<F::Addr>],
    nh: F::Addr,
) -> Result<(), RtmError> {
    let mut sorted = table.to_vec();
    sorted.sort_unstable();
    let mut batch = Vec::with_capacity(1024);
    for chunk in sorted.chunks(1024) {
        batch.clear();
        batch.extend(chunk.iter().map(|p| rtm::RouteUpdate::Add {
            route: route::<F>(*p, nh, peer(p), 20),
            ttl: Ttl::Infinite,
        }));
        let mut failed = None;
        rtm.update_routes(h, &batch, |r| {
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
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
            if !more && stop.load(Ordering::Relaxed) {
                return n;
            }
        }
    })
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

pub fn run(args: &DemoArgs) -> Result<(), RtmError> {
    let t = Instant::now();
    let v4 = Arc::new(synth::ipv4_table(args.ipv4, args.seed));
    let v6 = synth::ipv6_table(args.ipv6, args.seed);
    println!(
        "synthetic tables: {} IPv4 + {} IPv6 prefixes (seed {}) in {:.2}s",
        v4.len(),
        v6.len(),
        args.seed,
        t.elapsed().as_secs_f64()
    );
    let rss0 = rss_bytes();

    let rtm = Rtm::new();
    rtm.set_priority(STATIC, 1);
    rtm.set_priority(IGP, 110);
    rtm.set_priority(BGP, 200);
    let stat = rtm.register::<Ipv4>(STATIC, RegisterOptions::default())?;
    let igp = rtm.register::<Ipv4>(IGP, RegisterOptions::notifying())?;
    let bgp = rtm.register::<Ipv4>(BGP, RegisterOptions::default())?;
    let bgp6 = rtm.register::<Ipv6>(BGP, RegisterOptions::default())?;
    let nh_bgp = Ipv4Addr::new(192, 0, 2, 1);
    let nh_igp = Ipv4Addr::new(198, 51, 100, 1);

    let stop_drain = Arc::new(AtomicBool::new(false));
    let drainer = drain_in_background(&rtm, &igp, &stop_drain);
    let readers = Readers::start(&rtm, v4.clone(), args.threads.max(1));
    let mut phases = Vec::new();
    let mut phase = |name, start: Instant, ops: Option<(u64, &'static str)>, readers: &Readers| {
        let (lookups, worst) = readers.mark();
        phases.push(Phase {
            name,
            secs: start.elapsed().as_secs_f64(),
            ops,
            lookups,
            worst_batch_ns: worst,
        });
    };
    readers.mark();

    // 1. The BGP-like client loads the full tables.
    let s = Instant::now();
    load::<Ipv4>(&rtm, &bgp, &v4, nh_bgp)?;
    load::<Ipv6>(
        &rtm,
        &bgp6,
        &v6,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    )?;
    phase(
        "BGP full-table load",
        s,
        Some(((v4.len() + v6.len()) as u64, "routes")),
        &readers,
    );
    let rss_loaded = rss_bytes();

    // 2. The IGP and static clients cover part of the space; they win.
    let s = Instant::now();
    let mut n = 0u64;
    for p in v4.iter().step_by(50) {
        rtm.add_route(&igp, &route::<Ipv4>(*p, nh_igp, 9, 10), Ttl::Infinite)?;
        n += 1;
    }
    for p in v4.iter().step_by(5000) {
        rtm.add_route(
            &stat,
            &route::<Ipv4>(*p, Ipv4Addr::new(203, 0, 113, 1), 7, 0),
            Ttl::Infinite,
        )?;
        n += 1;
    }
    phase("IGP + static routes", s, Some((n, "routes")), &readers);

    // 3. Idle lookups.
    let s = Instant::now();
    thread::sleep(Duration::from_millis(500));
    phase("lookups only", s, None, &readers);

    // 4. BGP churn: a tenth of the table changes metric, a hundredth is withdrawn.
    let s = Instant::now();
    let mut rng = SplitMix64::new(args.seed ^ 0xc0ffee);
    let mut n = 0u64;
    for _ in 0..v4.len() / 10 {
        let p = v4[rng.below(v4.len() as u64) as usize];
        rtm.add_route(
            &bgp,
            &route::<Ipv4>(p, nh_bgp, peer(&p), 10 + rng.below(20) as u32),
            Ttl::Infinite,
        )?;
        n += 1;
    }
    for p in v4.iter().step_by(100) {
        rtm.delete_route(&bgp, &route::<Ipv4>(*p, nh_bgp, peer(p), 0))?;
        n += 1;
    }
    phase("BGP churn", s, Some((n, "updates")), &readers);

    // 5. The BGP-like client deregisters while lookups go on.
    let s = Instant::now();
    let removed = rtm.deregister(&bgp)? + rtm.deregister(&bgp6)?;
    let dereg = s.elapsed();
    phase(
        "BGP deregistration",
        s,
        Some((removed as u64, "routes removed")),
        &readers,
    );
    readers.stop();

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
    let igp_msgs = drainer.join().unwrap_or(0);
    rtm.verify_consistency()
        .map_err(RtmError::InvalidParameter)?;

    println!();
    println!(
        "{:<22} {:>9} {:>16} {:>14} {:>14} {:>16}",
        "phase", "seconds", "operations", "ops/s", "lookups/s", "worst batch ns"
    );
    for p in &phases {
        let (ops, rate) = match p.ops {
            Some((n, what)) => (format!("{n} {what}"), format!("{:.0}", n as f64 / p.secs)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<22} {:>9.3} {:>16} {:>14} {:>14.0} {:>16}",
            p.name,
            p.secs,
            ops,
            rate,
            p.lookups as f64 / p.secs,
            p.worst_batch_ns
        );
    }
    println!();
    println!(
        "deregistration of {removed} routes took {:.3}s",
        dereg.as_secs_f64()
    );
    println!(
        "IPv4 networks left: {left} (all IGP or static: {}), change messages the IGP drained: {igp_msgs}",
        foreign == 0
    );
    if let (Some(a), Some(b)) = (rss0, rss_loaded) {
        println!(
            "resident memory: {:.1} MiB before load, {:.1} MiB with {} routes ({:.0} bytes/route incl. the FIB)",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0,
            v4.len() + v6.len(),
            (b.saturating_sub(a)) as f64 / (v4.len() + v6.len()) as f64
        );
    }
    println!("consistency check: ok");
    if foreign != 0 {
        return Err(RtmError::InvalidParameter(format!(
            "{foreign} best routes of a deregistered client remain"
        )));
    }
    Ok(())
}
