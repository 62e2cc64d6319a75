//! Next-hop ids recycled under bulk writes while readers look up.
//!
//! Every FIB leaf names its (next hop, interface, protocol) by an interned
//! id. The bulk paths (batches, block delete, deregistration) gather a FIB
//! node's changes in a writer-side copy and publish it later, so the node
//! readers still see names ids the writer has already let go of. Such an
//! id must not be recycled (and its entry overwritten with another
//! prefix's next hop) until the copy is published *and* every reader has
//! passed a quiescent state. Here every next hop encodes the prefix it
//! belongs to, the writer churns them so that ids are released and reused
//! all the time, and readers (per-call, batched and registered lookups,
//! more threads than cores) check that every answer belongs to the prefix
//! they asked about.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rtm::*;

/// Prefixes in four /20 slots, sixteen /24s each: one pending FIB node per
/// slot gathers sixteen changes before it is published.
const PREFIXES: u32 = 64;
const ORIGIN: u32 = 10 << 24;

fn prefix(i: u32) -> Ipv4Prefix {
    Ipv4Prefix::new(
        Ipv4Addr::from(ORIGIN + ((i / 16) << 12) + ((i % 16) << 8)),
        24,
    )
    .unwrap()
}

/// A next hop that names its prefix, a generation (so every batch brings
/// new tuples and releases the old ones) and its client.
fn next_hop(i: u32, generation: u32, client: u32) -> Ipv4Addr {
    Ipv4Addr::from(i << 24 | (generation & 0xffff) << 8 | client)
}

fn route(i: u32, generation: u32, client: u32) -> Route<Ipv4> {
    Route::new(
        prefix(i),
        next_hop(i, generation, client),
        client,
        IpRouteData::with_metric(1),
    )
}

/// Checks one answer for the probe of prefix `i`: a route of that prefix,
/// whose next hop and interface name it.
fn check(i: u32, hit: Option<FibEntry<Ipv4>>) {
    let e = hit.unwrap_or_else(|| panic!("{} lost its route", prefix(i)));
    assert_eq!(e.prefix, prefix(i), "matched the wrong prefix");
    let nh = u32::from(e.next_hop);
    assert_eq!(
        nh >> 24,
        i,
        "{}: next hop {} belongs to another prefix (a recycled id)",
        prefix(i),
        e.next_hop
    );
    assert_eq!(nh & 0xff, e.interface, "torn next-hop entry {e:?}");
}

/// How long the writer churns: `RTM_STRESS_MS` milliseconds, 1,500 by
/// default. The race the test exists for is a reader preempted between
/// loading a leaf and reading its next-hop entry while the id is recycled,
/// so a longer run finds rarer interleavings: the code before the QSBR
/// domain (fac2f52) failed 5 of 7 runs at 20,000 (release, two cores) and
/// 0 of 4 at 5,000.
fn stress_time() -> Duration {
    let ms = std::env::var("RTM_STRESS_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    Duration::from_millis(ms)
}

/// Would catch a next-hop id recycled while a published FIB node still
/// names it: an id released by a deferred (bulk) change going to the limbo
/// before its pending node is published (planted in `LpmFib::set`: the
/// `held` push replaced by an immediate retire), a limbo that frees a batch
/// before online readers report, or a lookup path that is not a reader.
#[test]
fn bulk_writes_never_recycle_an_id_a_reader_can_still_reach() {
    let rtm = Rtm::new();
    let (a_proto, b_proto) = (ProtocolId(20), ProtocolId(30));
    rtm.set_priority(a_proto, 10);
    rtm.set_priority(b_proto, 20);
    let b = rtm
        .register::<Ipv4>(b_proto, RegisterOptions::default())
        .unwrap();
    // B covers every prefix throughout, so a lookup always has an answer.
    let all: Vec<_> = (0..PREFIXES)
        .map(|i| RouteUpdate::Add {
            route: route(i, 0, 2),
            ttl: Ttl::Infinite,
        })
        .collect();
    rtm.update_routes(&b, &all, |r| {
        r.unwrap();
    })
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let probe = |i: u32| Ipv4Addr::from(u32::from(prefix(i).addr()) | 0x7f);
    // More readers than this machine's cores: a reader preempted between
    // loading a leaf and reading its next-hop entry is what a recycled id
    // catches, and preemption needs contention.
    let per_call = (0..2).map(|_| {
        let (rtm, stop, lookups) = (rtm.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..PREFIXES {
                    check(i, rtm.lookup::<Ipv4>(probe(i)));
                    n += 1;
                }
            }
            lookups.fetch_add(n, Ordering::Relaxed);
        })
    });
    let batched = {
        let (rtm, stop, lookups) = (rtm.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            let addrs: Vec<_> = (0..PREFIXES).map(probe).collect();
            let mut out = vec![None; addrs.len()];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let got = rtm.fib::<Ipv4>().lookup_batch(&addrs, &mut out);
                for (i, hit) in (0..PREFIXES).zip(&out[..got]) {
                    check(i, *hit);
                }
                n += got as u64;
            }
            lookups.fetch_add(n, Ordering::Relaxed);
        })
    };
    let registered = {
        let (rtm, stop, lookups) = (rtm.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            let fib = rtm.fib::<Ipv4>();
            let mut reader = fib.reader();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..PREFIXES {
                    check(i, reader.lookup(prefix(i).addr()));
                    n += 1;
                }
                reader.quiescent();
            }
            lookups.fetch_add(n, Ordering::Relaxed);
        })
    };
    let readers: Vec<_> = per_call.chain([batched, registered]).collect();

    // The writer: A comes and goes in bulk, with new next hops each time.
    let deadline = Instant::now() + stress_time();
    let mut generation = 1;
    let mut b_generation = 0;
    let mut cycles = 0;
    while Instant::now() < deadline {
        let a = rtm
            .register::<Ipv4>(a_proto, RegisterOptions::default())
            .unwrap();
        for _ in 0..4 {
            generation += 1;
            let batch: Vec<_> = (0..PREFIXES)
                .map(|i| RouteUpdate::Add {
                    route: route(i, generation, 1),
                    ttl: Ttl::Infinite,
                })
                .collect();
            rtm.update_routes(&a, &batch, |r| {
                r.unwrap();
            })
            .unwrap();
            // B's next hops churn too, in place (not best: the FIB keeps A's).
            let moved: Vec<_> = (0..PREFIXES)
                .flat_map(|i| {
                    [
                        RouteUpdate::Delete(route(i, b_generation, 2)),
                        RouteUpdate::Add {
                            route: route(i, generation, 2),
                            ttl: Ttl::Infinite,
                        },
                    ]
                })
                .collect();
            rtm.update_routes(&b, &moved, |r| {
                r.unwrap();
            })
            .unwrap();
            b_generation = generation;
        }
        if cycles % 2 == 0 {
            rtm.block_delete(&a, &Criteria::all()).unwrap();
        }
        rtm.deregister(&a).unwrap();
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    rtm.verify_consistency().unwrap();
    let n = lookups.load(Ordering::Relaxed);
    assert!(cycles > 3 && n > 10_000, "{cycles} cycles, {n} lookups");
    assert!(
        rtm.fib::<Ipv4>().next_hops() <= PREFIXES as usize,
        "ids leak: {} in use",
        rtm.fib::<Ipv4>().next_hops()
    );
}
