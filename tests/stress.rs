//! Concurrency stress: writers add, delete, block-delete and deregister
//! while readers look up; invariants are checked during the run and at
//! quiescence.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rtm::synth::SplitMix64;
use rtm::*;

const ANCHOR: ProtocolId = ProtocolId(100);
const CYCLER: ProtocolId = ProtocolId(3);

/// A route whose fields check each other, so a torn read is detectable:
/// the interface and metric are functions of the next hop.
fn checked_route(network: Ipv4Prefix, nh_octet: u8) -> Route<Ipv4> {
    let mut data = IpRouteData::with_metric(nh_octet as u32 % 7);
    data.display_metrics = [nh_octet as u32; 5];
    let mut r = Route::new(
        network,
        Ipv4Addr::new(192, 0, 2, nh_octet),
        nh_octet as u32,
        data,
    );
    r.protocol_data = [nh_octet as u32 ^ 0xdead_beef; 4];
    r
}

fn assert_untorn(r: &Route<Ipv4>) {
    let o = r.next_hop.octets()[3];
    assert_eq!(r.interface, o as u32, "torn route {r:?}");
    assert_eq!(r.data.metric, o as u32 % 7, "torn route {r:?}");
    assert_eq!(r.data.display_metrics, [o as u32; 5], "torn route {r:?}");
    assert_eq!(
        r.protocol_data,
        [o as u32 ^ 0xdead_beef; 4],
        "torn route {r:?}"
    );
}

/// Networks inside 10.0.0.0/8: /16s and /24s, nested.
fn churn_net(rng: &mut SplitMix64) -> Ipv4Prefix {
    let b = rng.below(4) as u8;
    if rng.below(2) == 0 {
        Prefix::new(Ipv4Addr::new(10, b, 0, 0), 16).unwrap()
    } else {
        Prefix::new(Ipv4Addr::new(10, b, rng.below(8) as u8, 0), 24).unwrap()
    }
}

#[test]
fn readers_never_see_dead_clients_torn_routes_or_holes() {
    let rtm = Rtm::new();
    rtm.set_priority(ANCHOR, 1000); // worst: only a fallback
    let anchor = rtm
        .register::<Ipv4>(ANCHOR, RegisterOptions::default())
        .unwrap();
    let slash8: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
    rtm.add_route(&anchor, &checked_route(slash8, 1), Ttl::Infinite)
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // Odd while the cycler client is (being) registered, even once its
    // deregistration has returned.
    let phase = Arc::new(AtomicU64::new(0));
    let lookups = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();

    for (i, p) in [ProtocolId(1), ProtocolId(2)].into_iter().enumerate() {
        let (rtm, stop) = (rtm.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            let h = rtm
                .register::<Ipv4>(p, RegisterOptions::notifying())
                .unwrap();
            let mut rng = SplitMix64::new(i as u64 + 7);
            while !stop.load(Ordering::Relaxed) {
                let n = churn_net(&mut rng);
                let nh = 2 + rng.below(4) as u8;
                match rng.below(10) {
                    0..=5 => {
                        rtm.add_route(&h, &checked_route(n, nh), Ttl::Infinite)
                            .unwrap();
                    }
                    6..=8 => match rtm.delete_route(&h, &checked_route(n, nh)) {
                        Ok(_) | Err(RtmError::NoSuchRoute(_)) => {}
                        Err(e) => panic!("{e}"),
                    },
                    _ => match rtm.block_delete(&h, &Criteria::all().interface(nh as u32)) {
                        Ok(_) | Err(RtmError::NoRoutes(_)) => {}
                        Err(e) => panic!("{e}"),
                    },
                }
                // Keep the queue short; the content is checked elsewhere.
                while rtm.dequeue(&h).is_ok() {}
            }
            h
        }));
    }
    {
        let (rtm, stop, phase) = (rtm.clone(), stop.clone(), phase.clone());
        threads.push(thread::spawn(move || {
            let mut rng = SplitMix64::new(99);
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) || rounds < 3 {
                phase.fetch_add(1, Ordering::SeqCst); // odd: registering
                rtm.set_priority(CYCLER, 1); // best when present
                let h = rtm
                    .register::<Ipv4>(CYCLER, RegisterOptions::default())
                    .unwrap();
                for _ in 0..40 {
                    rtm.add_route(&h, &checked_route(churn_net(&mut rng), 9), Ttl::Infinite)
                        .unwrap();
                }
                rtm.deregister(&h).unwrap();
                phase.fetch_add(1, Ordering::SeqCst); // even: gone
                rounds += 1;
            }
            rtm.register::<Ipv4>(ProtocolId(0), RegisterOptions::default())
                .unwrap()
        }));
    }
    let mut readers = Vec::new();
    for seed in 0..2u64 {
        let (rtm, stop, phase, lookups) =
            (rtm.clone(), stop.clone(), phase.clone(), lookups.clone());
        readers.push(thread::spawn(move || {
            let mut rng = SplitMix64::new(seed + 1000);
            while !stop.load(Ordering::Relaxed) {
                let addr = Ipv4Addr::new(
                    10,
                    rng.below(4) as u8,
                    rng.below(8) as u8,
                    rng.below(256) as u8,
                );
                let before = phase.load(Ordering::SeqCst);
                let hit = rtm.lookup::<Ipv4>(addr);
                let best = rtm.is_route::<Ipv4>(&churn_net(&mut rng));
                let after = phase.load(Ordering::SeqCst);
                // Covered throughout by the untouched 10.0.0.0/8: never a hole.
                let hit = hit.unwrap_or_else(|| panic!("no route for {addr}"));
                assert!(hit.prefix.contains(addr));
                assert_eq!(
                    hit.interface,
                    hit.next_hop.octets()[3] as u32,
                    "torn FIB entry {hit:?}"
                );
                if let Some(r) = &best {
                    assert_untorn(r);
                }
                if before == after && before % 2 == 0 {
                    assert_ne!(hit.protocol, CYCLER, "route of a deregistered client");
                    assert!(
                        best.is_none_or(|r| r.protocol != CYCLER),
                        "route of a deregistered client"
                    );
                }
                lookups.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let handles: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        lookups.load(Ordering::Relaxed) > 1000,
        "readers made too little progress"
    );

    // Quiescence: the invariant set.
    rtm.verify_consistency().unwrap();
    let best = rtm
        .enumerate(&Criteria::<Ipv4>::all().best_only())
        .unwrap()
        .count();
    assert_eq!(best, rtm.network_count::<Ipv4>());
    for r in common::all_routes::<Ipv4>(&rtm) {
        assert_ne!(r.protocol, CYCLER);
        assert_untorn(&r);
    }
    // The FIB agrees with a brute-force LPM over the best routes.
    let bests: Vec<Route<Ipv4>> = rtm
        .enumerate(&Criteria::<Ipv4>::all().best_only())
        .unwrap()
        .collect();
    let mut rng = SplitMix64::new(5);
    for _ in 0..2000 {
        let addr = Ipv4Addr::new(
            10,
            rng.below(4) as u8,
            rng.below(8) as u8,
            rng.below(256) as u8,
        );
        let want = bests
            .iter()
            .filter(|r| r.network.contains(addr))
            .max_by_key(|r| r.network.len())
            .unwrap();
        let got = rtm.lookup::<Ipv4>(addr).unwrap();
        assert_eq!(
            (got.prefix, got.next_hop, got.protocol),
            (want.network, want.next_hop, want.protocol)
        );
    }
    drop(handles);
}

#[test]
fn deregistration_racing_the_clients_own_adds_leaves_no_orphan() {
    for round in 0..30u64 {
        let rtm = Rtm::new();
        let p = ProtocolId(5);
        let h = rtm.register::<Ipv4>(p, RegisterOptions::default()).unwrap();
        let adder = {
            let (rtm, h) = (rtm.clone(), h.clone());
            thread::spawn(move || {
                let mut rng = SplitMix64::new(round);
                let mut refused = false;
                for _ in 0..2000 {
                    match rtm.add_route(&h, &checked_route(churn_net(&mut rng), 2), Ttl::Infinite) {
                        Ok(_) => assert!(!refused, "an add succeeded after one was refused"),
                        Err(e) => {
                            assert_eq!(e.code(), 6);
                            refused = true;
                        }
                    }
                }
            })
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(200 * (round % 5)) {}
        rtm.deregister(&h).unwrap();
        adder.join().unwrap();
        assert_eq!(
            rtm.network_count::<Ipv4>(),
            0,
            "orphan routes left in round {round}"
        );
        rtm.verify_consistency().unwrap();
        // The pair is free again.
        rtm.register::<Ipv4>(p, RegisterOptions::default()).unwrap();
    }
}

#[test]
fn concurrent_writers_on_one_destination_lose_no_update() {
    let rtm = Rtm::new();
    let n: Ipv4Prefix = "10.0.0.0/24".parse().unwrap();
    let observer = rtm
        .register::<Ipv4>(ProtocolId(99), RegisterOptions::notifying())
        .unwrap();
    let writers: Vec<_> = (0..4u32)
        .map(|i| {
            let rtm = rtm.clone();
            thread::spawn(move || {
                let h = rtm
                    .register::<Ipv4>(ProtocolId(i), RegisterOptions::default())
                    .unwrap();
                for k in 0..500u32 {
                    let mut r = checked_route(n, (k % 50) as u8 + 2);
                    r.data.metric = k;
                    rtm.add_route(&h, &r, Ttl::Infinite).unwrap();
                }
                h
            })
        })
        .collect();
    let handles: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    // Each writer's 50 distinct keys are all there: no lost insert.
    assert_eq!(common::all_routes::<Ipv4>(&rtm).len(), 4 * 50);
    rtm.verify_consistency().unwrap();
    // The observer's messages chain: each previous image is the last current.
    let msgs = common::drain(&rtm, &observer);
    assert_eq!(msgs[0].flags(), RTM_ROUTE_ADDED);
    for w in msgs.windows(2) {
        assert!(
            w[0].current()
                .unwrap()
                .same_significant_fields(w[1].previous().unwrap())
        );
    }
    assert_eq!(
        msgs.last().unwrap().current(),
        rtm.is_route::<Ipv4>(&n).as_ref()
    );
    drop(handles);
}

/// The aging sweep expires a client's routes while that client
/// deregisters: both walk its networks, each route goes exactly once, and
/// the table ends consistent (the sweep's removals of the leaving client's
/// routes must not be recorded in its discarded index).
#[test]
fn aging_racing_a_deregistration_leaves_a_consistent_table() {
    for round in 0..20u8 {
        let clock = ManualClock::new();
        let rtm = Rtm::builder().clock(clock.clone()).build();
        let a = rtm
            .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
            .unwrap();
        let routes: Vec<RouteUpdate<Ipv4>> = (0..4000u32)
            .map(|i| RouteUpdate::Add {
                route: Route::new(
                    Prefix::new(Ipv4Addr::from(0x0a00_0000 | i << 8), 24).unwrap(),
                    Ipv4Addr::new(192, 0, 2, 1),
                    1,
                    IpRouteData::default(),
                ),
                // Every other route expires at the next sweep.
                ttl: if i % 2 == 0 {
                    Ttl::Seconds(1)
                } else {
                    Ttl::Infinite
                },
            })
            .collect();
        rtm.update_routes(&a, &routes, |r| assert!(r.is_ok()))
            .unwrap();
        clock.advance_secs(2);
        let sweeper = {
            let rtm = rtm.clone();
            thread::spawn(move || rtm.sweep_expired())
        };
        if round % 2 == 0 {
            thread::yield_now();
        }
        let removed = rtm.deregister(&a).unwrap();
        let expired = sweeper.join().unwrap();
        assert_eq!(removed + expired, 4000, "round {round}");
        assert_eq!(rtm.network_count::<Ipv4>(), 0);
        rtm.verify_consistency().unwrap();
    }
}

/// Readers through graceful-restart cycles (mark stale, graceful
/// deregistration, re-registration, a refresh of 99% of the routes in
/// random order, end-of-RIB), with an aging sweeper running: every prefix
/// the restarted client refreshes stays covered throughout, so every
/// lookup of it must answer it, and after end-of-RIB exactly the
/// refreshed prefixes remain. Would catch a mark or an adoption that takes
/// a route out of the FIB even for a moment (the reader would miss), and a
/// sweep that removes refreshed routes or leaves stale ones.
#[test]
fn readers_keep_forwarding_through_graceful_restarts() {
    const ROUTES: u32 = 20_000;
    let clock = ManualClock::new();
    let rtm = Rtm::builder().clock(clock.clone()).build();
    let bgp = ProtocolId(14);
    let prefix = |i: u32| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap();
    // The prefixes every cycle refreshes: all but each hundredth.
    let kept = |i: u32| !i.is_multiple_of(100);
    let route = |i: u32| {
        Route::<Ipv4>::new(
            prefix(i),
            Ipv4Addr::new(192, 0, 2, 1),
            1,
            IpRouteData::with_metric(5),
        )
    };
    let add_all = |h: &ClientHandle<Ipv4>, pick: &dyn Fn(u32) -> bool, seed: u64| {
        let mut order: Vec<u32> = (0..ROUTES).filter(|&i| pick(i)).collect();
        let mut rng = SplitMix64::new(seed);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let updates: Vec<RouteUpdate<Ipv4>> = order
            .iter()
            .map(|&i| RouteUpdate::Add {
                route: route(i),
                ttl: Ttl::Infinite,
            })
            .collect();
        rtm.update_routes(h, &updates, |r| {
            r.unwrap();
        })
        .unwrap();
    };
    let mut h = rtm
        .register::<Ipv4>(bgp, RegisterOptions::default())
        .unwrap();
    add_all(&h, &|_| true, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicU64::new(0));
    let lookups = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (rtm, stop, misses, lookups) =
                (rtm.clone(), stop.clone(), misses.clone(), lookups.clone());
            thread::spawn(move || {
                let mut rng = SplitMix64::new(100 + t);
                let mut reader = rtm.fib::<Ipv4>().reader();
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(ROUTES as u64) as u32;
                    if !kept(i) {
                        continue;
                    }
                    let addr = Ipv4Addr::from(0x0a00_0000 | (i << 8) | 7);
                    match reader.lookup(addr) {
                        Some(e) if e.prefix == prefix(i) => {}
                        _ => {
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lookups.fetch_add(1, Ordering::Relaxed);
                    reader.quiescent();
                }
            })
        })
        .collect();
    let sweeper = {
        let (rtm, stop) = (rtm.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Holds are long: nothing may expire, but the walk of the
                // holds races every adoption.
                assert_eq!(rtm.sweep_expired(), 0);
                thread::yield_now();
            }
        })
    };
    for cycle in 0..4u64 {
        // The session drops: routes marked, then the process restarts.
        assert_eq!(rtm.mark_stale(&h, None).unwrap(), ROUTES as usize);
        assert_eq!(
            rtm.deregister_graceful(&h, Duration::from_secs(3600))
                .unwrap(),
            ROUTES as usize
        );
        h = rtm
            .register::<Ipv4>(bgp, RegisterOptions::default())
            .unwrap();
        add_all(&h, &kept, cycle + 1);
        let swept = rtm.end_of_rib(&h).unwrap();
        assert_eq!(swept, (ROUTES / 100) as usize, "cycle {cycle}");
        assert_eq!(
            rtm.network_count::<Ipv4>(),
            (ROUTES - ROUTES / 100) as usize
        );
        // The next cycle starts from the full table again.
        add_all(&h, &|i| !kept(i), cycle + 10);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    sweeper.join().unwrap();
    assert!(lookups.load(Ordering::Relaxed) > 0);
    assert_eq!(
        misses.load(Ordering::Relaxed),
        0,
        "lookups of refreshed prefixes missed during a graceful restart"
    );
    rtm.verify_consistency().unwrap();
}

/// A hold that ends at once, its expiry racing the protocol's
/// re-registration: either the registration adopts the routes (and the
/// expiry sweeps them from the adopter, still stale) or the expiry claims
/// the orphan first and the registration waits for the pair and is a
/// fresh one; every route goes exactly once, and the adopter is a live
/// client either way. Would catch an adoption and an expiry that both
/// claim the routes (the expiry would clear the adopter's index, so its
/// next route would be unindexed and its deregistration remove nothing).
#[test]
fn hold_expiry_racing_readoption_claims_the_routes_once() {
    for round in 0..40u64 {
        let rtm = Rtm::new();
        let p = ProtocolId(14);
        let h = rtm.register::<Ipv4>(p, RegisterOptions::default()).unwrap();
        let mut rng = SplitMix64::new(round);
        let mut added = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let r = checked_route(churn_net(&mut rng), 2);
            rtm.add_route(&h, &r, Ttl::Infinite).unwrap();
            added.insert(r.network);
        }
        assert_eq!(
            rtm.deregister_graceful(&h, Duration::ZERO).unwrap(),
            added.len()
        );
        let expirer = {
            let rtm = rtm.clone();
            thread::spawn(move || rtm.sweep_expired())
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(50 * (round % 4)) {}
        // If the expiry is removing the routes, the registration waits
        // for it (no live client holds the pair).
        let adopter = rtm
            .register::<Ipv4>(p, RegisterOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: register: {e}"));
        // The hold ended before either ran: whichever came first, the
        // expiry removes every route once (the orphan's, or the adopter's
        // still stale), and end-of-RIB finds nothing.
        let expired = expirer.join().unwrap() + rtm.sweep_expired();
        assert_eq!(expired, added.len(), "round {round}");
        assert_eq!(rtm.end_of_rib(&adopter).unwrap(), 0);
        assert_eq!(rtm.network_count::<Ipv4>(), 0);
        rtm.verify_consistency().unwrap();
        // The adopter is a live client with a live index.
        let r = checked_route(churn_net(&mut rng), 3);
        rtm.add_route(&adopter, &r, Ttl::Infinite).unwrap();
        rtm.verify_consistency().unwrap();
        assert_eq!(rtm.deregister(&adopter).unwrap(), 1, "round {round}");
    }
}

/// Catches a registration that reports the pair taken
/// (`ClientAlreadyExists`, 183, which RTMv1 code treats as fatal) while the
/// protocol's previous client is being deregistered or gracefully
/// deregistered: no live client holds the pair, so it must wait for the
/// removal (or the mark) to end. When it returns, a deregistered
/// predecessor's routes are all gone, and a graceful one's are all
/// adopted.
#[test]
fn registering_while_the_predecessor_leaves_waits_instead_of_failing() {
    for round in 0..12u64 {
        let graceful = round % 2 == 1;
        let rtm = Rtm::new();
        let p = ProtocolId(9);
        let old = rtm
            .register::<Ipv4>(p, RegisterOptions::notifying())
            .unwrap();
        let n = 20_000u32;
        for k in 0..n {
            let net = Prefix::new(Ipv4Addr::from(0x0a00_0000 + (k << 8)), 24).unwrap();
            rtm.add_route(&old, &checked_route(net, 1), Ttl::Infinite)
                .unwrap();
        }
        let leaver = {
            let (rtm, old) = (rtm.clone(), old.clone());
            thread::spawn(move || {
                if graceful {
                    rtm.deregister_graceful(&old, Duration::from_secs(600))
                } else {
                    rtm.deregister(&old)
                }
            })
        };
        // Once the old client is closed (its calls fail), it is leaving.
        while !matches!(rtm.dequeue(&old), Err(RtmError::InvalidHandle(_))) {
            thread::yield_now();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let rtm = rtm.clone();
            thread::spawn(move || {
                let _ = tx.send(rtm.register::<Ipv4>(p, RegisterOptions::default()));
            });
        }
        let new = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the registration never returned"))
            .unwrap_or_else(|e| panic!("round {round}: register while the old client leaves: {e}"));
        let left = if graceful { n as usize } else { 0 };
        assert_eq!(rtm.network_count::<Ipv4>(), left, "round {round}");
        assert_eq!(leaver.join().unwrap().unwrap(), n as usize);
        assert_eq!(rtm.end_of_rib(&new).unwrap(), left, "round {round}");
        rtm.verify_consistency().unwrap();
    }
}

/// A notifier that panics once armed: a bug in an embedder's callback.
struct Tripwire(AtomicBool);

impl Notifier for Tripwire {
    fn set(&self) {
        if self.0.load(Ordering::SeqCst) {
            panic!("the embedder's notifier failed");
        }
    }
    fn reset(&self) {}
}

/// Catches a registration that waits for ever for a predecessor whose
/// leaving failed (here a panic out of another client's notifier during
/// the removal): the removal did not finish, so the pair is still held
/// and the answer is `ClientAlreadyExists`, at once.
#[test]
fn a_failed_leave_makes_registration_answer_not_wait() {
    let rtm = Rtm::new();
    let p = ProtocolId(9);
    let old = rtm.register::<Ipv4>(p, RegisterOptions::default()).unwrap();
    let listener = rtm
        .register::<Ipv4>(ProtocolId(10), RegisterOptions::notifying())
        .unwrap();
    let tripwire = Arc::new(Tripwire(AtomicBool::new(false)));
    listener.set_notifier(tripwire.clone()).unwrap();
    for k in 0..100u32 {
        let net = Prefix::new(Ipv4Addr::from(0x0a00_0000 + (k << 8)), 24).unwrap();
        rtm.add_route(&old, &checked_route(net, 1), Ttl::Infinite)
            .unwrap();
    }
    while rtm.dequeue(&listener).is_ok() {}
    tripwire.0.store(true, Ordering::SeqCst);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rtm.deregister(&old)));
    assert!(failed.is_err(), "the notifier's panic came through");
    tripwire.0.store(false, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let rtm = rtm.clone();
        thread::spawn(move || {
            let _ = tx.send(
                rtm.register::<Ipv4>(p, RegisterOptions::default())
                    .map(|_| ()),
            );
        });
    }
    let answer = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the registration answered instead of waiting for ever");
    assert!(
        matches!(answer, Err(RtmError::ClientAlreadyExists { .. })),
        "{answer:?}"
    );
}

/// Readers looking up per flow while ECMP groups churn (a third path
/// joins and leaves prefixes in random order, so leaves move between
/// groups and groups are made and freed) and one next hop goes down and
/// up again: every lookup answers its prefix on one of its paths, and a
/// lookup that runs wholly while the next hop is down (the writer's
/// generation odd and unchanged around it) never takes it. Would catch a
/// group's members freed while a reader can still load them (a torn or
/// foreign next hop), a leaf naming a recycled group, and a next-hop-down
/// whose rewrite readers can miss after it returned.
#[test]
fn readers_follow_group_churn_and_next_hops_going_down() {
    const NETS: u32 = 5_000;
    let rtm = Rtm::builder()
        .priorities(
            PriorityTable::new()
                .with(ProtocolId(13), 20)
                .with(ProtocolId(14), 20)
                .with_multipath(ProtocolId(13), true)
                .with_multipath(ProtocolId(14), true),
        )
        .build();
    let hop = |i: u8| Ipv4Addr::new(192, 0, 2, i);
    let prefix = |i: u32| Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap();
    let route =
        |i: u32, h: u8| Route::<Ipv4>::new(prefix(i), hop(h), 1, IpRouteData::with_metric(5));
    let isis = rtm
        .register::<Ipv4>(ProtocolId(13), RegisterOptions::default())
        .unwrap();
    let bgp = rtm
        .register::<Ipv4>(ProtocolId(14), RegisterOptions::default())
        .unwrap();
    let all = |h: u8| -> Vec<RouteUpdate<Ipv4>> {
        (0..NETS)
            .map(|i| RouteUpdate::Add {
                route: route(i, h),
                ttl: Ttl::Infinite,
            })
            .collect()
    };
    rtm.update_routes(&isis, &all(1), |r| {
        r.unwrap();
    })
    .unwrap();
    rtm.update_routes(&bgp, &all(2), |r| {
        r.unwrap();
    })
    .unwrap();
    // Odd while 192.0.2.2 is down.
    let generation = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (rtm, stop, generation) = (rtm.clone(), stop.clone(), generation.clone());
            thread::spawn(move || {
                let mut rng = SplitMix64::new(7 + t);
                let mut reader = rtm.fib::<Ipv4>().reader();
                let (mut lookups, mut while_down) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(NETS as u64) as u32;
                    let hash = rng.next_u64() as u32;
                    let addr = Ipv4Addr::from(0x0a00_0000 | (i << 8) | 9);
                    // SeqCst: the check below reasons about the order of
                    // these loads and the writer's stores around its calls.
                    let g1 = generation.load(Ordering::SeqCst);
                    let e = reader.lookup_flow(addr, hash);
                    let g2 = generation.load(Ordering::SeqCst);
                    let e = e.unwrap_or_else(|| panic!("{addr} not covered"));
                    assert_eq!(e.prefix, prefix(i));
                    assert!(
                        (1..=6).map(hop).any(|h| h == e.next_hop),
                        "{addr}: foreign next hop {e:?}"
                    );
                    if g1 == g2 && g1 % 2 == 1 {
                        while_down += 1;
                        assert_ne!(
                            e.next_hop,
                            hop(2),
                            "{addr} hash {hash:#x} took a down next hop"
                        );
                    }
                    lookups += 1;
                    if lookups % 64 == 0 {
                        reader.quiescent();
                    }
                }
                (lookups, while_down)
            })
        })
        .collect();
    let fib = rtm.fib::<Ipv4>();
    let mut rng = SplitMix64::new(99);
    for cycle in 0..24 {
        // A third path (another next hop each cycle, so groups are made
        // and freed) joins a random half of the prefixes...
        let third = 3 + (cycle % 4) as u8;
        let joins: Vec<RouteUpdate<Ipv4>> = (0..NETS)
            .filter(|_| rng.below(2) == 0)
            .map(|i| RouteUpdate::Add {
                route: route(i, third),
                ttl: Ttl::Infinite,
            })
            .collect();
        rtm.update_routes(&bgp, &joins, |r| {
            r.unwrap();
        })
        .unwrap();
        // ...192.0.2.2 goes down: generation odd only once it returned...
        assert!(fib.next_hop_down(hop(2), 1) >= 1, "cycle {cycle}");
        generation.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(5));
        // ...the third path leaves, one route at a time, while it is down...
        for u in &joins {
            if let RouteUpdate::Add { route, .. } = u {
                rtm.delete_route(&bgp, route).unwrap();
            }
        }
        // ...and it comes back: generation even before the rewrite.
        generation.fetch_add(1, Ordering::SeqCst);
        assert!(fib.next_hop_up(hop(2), 1) >= 1);
        thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let mut down_total = 0;
    for r in readers {
        let (lookups, while_down) = r.join().unwrap();
        assert!(lookups > 1000, "a reader made only {lookups} lookups");
        down_total += while_down;
    }
    assert!(down_total > 0, "no lookup ran while the next hop was down");
    rtm.verify_consistency().unwrap();
    assert_eq!(fib.groups(), 1);
}
