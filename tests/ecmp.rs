//! ECMP (beyond RTMv1): equal-cost best routes of multipath protocols all
//! forward, as one interned next-hop group per set of paths, picked per
//! flow by hash and weight; a next hop going down rewrites its groups, not
//! the prefixes (prefix-independent convergence).

mod common;

use std::net::Ipv4Addr;

use common::*;
use rtm::{Change, Ipv4, PriorityTable, ProtocolId, RegisterOptions, Route, Rtm, RtmError, Ttl};

/// Two protocols of equal priority, both multipath, a third that is not.
const BGP: ProtocolId = ProtocolId(14);
const ISIS: ProtocolId = ProtocolId(13);
const RIP: ProtocolId = ProtocolId(8);

fn ecmp_rtm() -> Rtm {
    Rtm::builder()
        .priorities(
            PriorityTable::new()
                .with(BGP, 20)
                .with(ISIS, 20)
                .with(RIP, 20)
                .with_multipath(BGP, true)
                .with_multipath(ISIS, true),
        )
        .build()
}

fn weighted(
    network: &str,
    next_hop: &str,
    interface: u32,
    metric: u32,
    weight: u16,
) -> Route<Ipv4> {
    let mut r = route(network, next_hop, interface, metric);
    r.data.weight = weight;
    r
}

/// The next hop each of `n` evenly spread flow hashes (`i * 2^32 / n`)
/// takes to `a`.
fn flows(rtm: &Rtm, a: &str, n: u32) -> Vec<Ipv4Addr> {
    (0..n as u64)
        .map(|i| {
            let hash = ((i << 32) / n as u64) as u32;
            rtm.lookup_flow::<Ipv4>(addr(a), hash).unwrap().next_hop
        })
        .collect()
}

fn count(hops: &[Ipv4Addr], h: &str) -> usize {
    hops.iter().filter(|x| **x == addr(h)).count()
}

/// Equal-cost routes of a multipath protocol are all best paths and all
/// forward, split by flow; a worse metric is not a path; the RTMv1 best
/// route and `lookup` stay single. Would catch a path set that ignores the
/// rank (the metric-30 route forwarding) or the multipath stamp, and a
/// FIB that keeps only the best route.
#[test]
fn equal_cost_routes_of_a_multipath_protocol_all_forward() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    for (nh, metric) in [("192.0.2.1", 10), ("192.0.2.2", 10), ("192.0.2.3", 30)] {
        rtm.add_route(&c, &route("10.0.0.0/8", nh, 1, metric), Ttl::Infinite)
            .unwrap();
    }
    let paths = rtm.best_paths::<Ipv4>(&net("10.0.0.0/8"));
    let hops: Vec<_> = paths.iter().map(|r| r.next_hop.to_string()).collect();
    assert_eq!(hops, ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(rtm.fib::<Ipv4>().paths(&net("10.0.0.0/8")).len(), 2);
    assert_eq!(rtm.fib::<Ipv4>().groups(), 1);
    let f = flows(&rtm, "10.9.9.9", 64);
    assert_eq!((count(&f, "192.0.2.1"), count(&f, "192.0.2.2")), (32, 32));
    // RTMv1's answers: one best route, `lookup` its group's first path.
    assert_eq!(
        rtm.is_route::<Ipv4>(&net("10.0.0.0/8")).unwrap().next_hop,
        addr("192.0.2.1")
    );
    assert_eq!(
        rtm.lookup::<Ipv4>(addr("10.9.9.9")).unwrap().next_hop,
        addr("192.0.2.1")
    );
    rtm.verify_consistency().unwrap();
}

/// A protocol that did not opt in keeps RTMv1's single best route
/// everywhere, even tied with a multipath protocol's route of the same
/// rank, and a multipath best route takes no non-multipath peer. Would
/// catch ECMP on by default, or a set that admits routes of protocols that
/// did not opt in.
#[test]
fn protocols_that_did_not_opt_in_keep_the_single_best_route() {
    let rtm = ecmp_rtm();
    let rip = rtm
        .register::<Ipv4>(RIP, RegisterOptions::default())
        .unwrap();
    let bgp = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    rtm.add_route(
        &rip,
        &route("10.0.0.0/8", "192.0.2.1", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    rtm.add_route(
        &rip,
        &route("10.0.0.0/8", "192.0.2.2", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    assert_eq!(rtm.best_paths::<Ipv4>(&net("10.0.0.0/8")).len(), 1);
    assert_eq!(rtm.fib::<Ipv4>().groups(), 0);
    let f = flows(&rtm, "10.1.1.1", 16);
    assert_eq!(count(&f, "192.0.2.1"), 16);
    // A BGP route of the same rank: RIP's incumbent stays best (A4) and,
    // not being multipath, forwards alone.
    rtm.add_route(
        &bgp,
        &route("10.0.0.0/8", "192.0.2.9", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    assert_eq!(rtm.best_paths::<Ipv4>(&net("10.0.0.0/8")).len(), 1);
    // Where BGP's route is best, RIP's equal routes are no paths of it.
    rtm.add_route(
        &bgp,
        &route("11.0.0.0/8", "192.0.2.9", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    rtm.add_route(
        &rip,
        &route("11.0.0.0/8", "192.0.2.1", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    let p = rtm.best_paths::<Ipv4>(&net("11.0.0.0/8"));
    assert_eq!((p.len(), p[0].protocol), (1, BGP));
    rtm.verify_consistency().unwrap();
}

/// The client of a multipath protocol hears when the set of best paths
/// changes while the best route stays (a `Changed` with equal images);
/// an RTMv1 client hears nothing, exactly as without ECMP. Would catch a
/// paths change sent to every client, or to none.
#[test]
fn only_multipath_clients_hear_of_paths_changes() {
    let rtm = ecmp_rtm();
    let bgp = rtm
        .register::<Ipv4>(BGP, RegisterOptions::notifying())
        .unwrap();
    let isis = rtm
        .register::<Ipv4>(ISIS, RegisterOptions::default())
        .unwrap();
    let rip = rtm
        .register::<Ipv4>(RIP, RegisterOptions::notifying())
        .unwrap();
    let best = route("10.0.0.0/8", "192.0.2.1", 1, 10);
    rtm.add_route(&isis, &best, Ttl::Infinite).unwrap();
    let added = drain(&rtm, &bgp);
    assert_eq!(drain(&rtm, &rip), added, "both hear of the first route");
    // BGP's own equal-cost route joins: ISIS's route stays best; BGP made
    // the change, so it is not told; RIP is not multipath.
    rtm.add_route(
        &bgp,
        &route("10.0.0.0/8", "192.0.2.2", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    assert_eq!(rtm.best_paths::<Ipv4>(&net("10.0.0.0/8")).len(), 2);
    assert!(drain(&rtm, &rip).is_empty());
    assert!(drain(&rtm, &bgp).is_empty(), "the caller is not told");
    // ISIS adds a second equal path: BGP hears of the paths change.
    rtm.add_route(
        &isis,
        &route("10.0.0.0/8", "192.0.2.3", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    let got = drain(&rtm, &bgp);
    assert_eq!(got.len(), 1);
    assert!(got[0].is_paths_change(), "{got:?}");
    assert_eq!(got[0].current().unwrap().next_hop, addr("192.0.2.1"));
    assert!(
        drain(&rtm, &rip).is_empty(),
        "RTMv1 clients see no paths change"
    );
    // A metric change of a non-best path that leaves the set: a paths change.
    rtm.add_route(
        &isis,
        &route("10.0.0.0/8", "192.0.2.3", 1, 40),
        Ttl::Infinite,
    )
    .unwrap();
    assert!(drain(&rtm, &bgp)[0].is_paths_change());
    assert!(drain(&rtm, &rip).is_empty());
    rtm.verify_consistency().unwrap();
}

/// A coalescing queue keeps a paths change alive when later changes of
/// the best route fold back to no change: the client must still re-read
/// the paths. Would catch a fold that forgets the paths change (the
/// message would vanish while the paths differ from what the client saw).
#[test]
fn a_coalesced_paths_change_survives_a_best_route_that_returns() {
    let rtm = ecmp_rtm();
    let bgp = rtm
        .register::<Ipv4>(BGP, RegisterOptions::coalescing())
        .unwrap();
    let isis = rtm
        .register::<Ipv4>(ISIS, RegisterOptions::default())
        .unwrap();
    rtm.add_route(
        &isis,
        &route("10.0.0.0/8", "192.0.2.1", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    drain(&rtm, &bgp);
    // The client saw 192.0.2.1 alone. The best route changes (metric 5),
    // a second path joins at 5 (a paths change folded into that message),
    // leaves again, and both settle at metric 10: the best route is back
    // as the client saw it, but its set of paths is not.
    let isis_route = |nh, metric| route("10.0.0.0/8", nh, 1, metric);
    for (nh, metric) in [
        ("192.0.2.1", 5),
        ("192.0.2.2", 5),
        ("192.0.2.2", 10),
        ("192.0.2.1", 10),
    ] {
        rtm.add_route(&isis, &isis_route(nh, metric), Ttl::Infinite)
            .unwrap();
    }
    let got = drain(&rtm, &bgp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].is_paths_change(), "{got:?}");
    assert_eq!(rtm.best_paths::<Ipv4>(&net("10.0.0.0/8")).len(), 2);
    // Without a paths change, a change and its reversal still fold away.
    rtm.add_route(
        &isis,
        &route("20.0.0.0/8", "192.0.2.1", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    drain(&rtm, &bgp);
    rtm.add_route(
        &isis,
        &route("20.0.0.0/8", "192.0.2.1", 1, 11),
        Ttl::Infinite,
    )
    .unwrap();
    rtm.add_route(
        &isis,
        &route("20.0.0.0/8", "192.0.2.1", 1, 10),
        Ttl::Infinite,
    )
    .unwrap();
    assert_eq!(drain(&rtm, &bgp), Vec::<Change<Ipv4>>::new());
}

/// Every prefix with the same paths shares one group, and a group's
/// churn for one prefix touches only that prefix's leaf; withdrawing the
/// routes frees the groups. Would catch groups allocated per prefix (the
/// memory bar) or leaked on release.
#[test]
fn prefixes_with_the_same_paths_share_one_group() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    let nets: Vec<String> = (0..1000u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    for n in &nets {
        for nh in ["192.0.2.1", "192.0.2.2"] {
            rtm.add_route(&c, &route(n, nh, 1, 10), Ttl::Infinite)
                .unwrap();
        }
    }
    let fib = rtm.fib::<Ipv4>();
    assert_eq!((fib.len(), fib.groups(), fib.next_hops()), (1000, 1, 2));
    rtm.delete_route(&c, &route(&nets[7], "192.0.2.2", 1, 0))
        .unwrap();
    assert_eq!(fib.groups(), 1);
    assert_eq!(fib.paths(&net(&nets[7])).len(), 1);
    assert_eq!(fib.paths(&net(&nets[8])).len(), 2);
    rtm.verify_consistency().unwrap();
    rtm.deregister(&c).unwrap();
    assert_eq!((fib.len(), fib.groups()), (0, 0));
}

/// Weighted ECMP: each path's share of the flows is its weight's share.
/// Would catch weights ignored (an even split) or misapplied.
#[test]
fn weights_split_the_flows() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    rtm.add_route(
        &c,
        &weighted("10.0.0.0/8", "192.0.2.1", 1, 10, 1),
        Ttl::Infinite,
    )
    .unwrap();
    rtm.add_route(
        &c,
        &weighted("10.0.0.0/8", "192.0.2.2", 1, 10, 3),
        Ttl::Infinite,
    )
    .unwrap();
    let f = flows(&rtm, "10.1.2.3", 400);
    assert_eq!((count(&f, "192.0.2.1"), count(&f, "192.0.2.2")), (100, 300));
    let w: Vec<u16> = rtm
        .fib::<Ipv4>()
        .paths(&net("10.0.0.0/8"))
        .iter()
        .map(|p| p.weight)
        .collect();
    assert_eq!(w, [1, 3]);
    rtm.verify_consistency().unwrap();
}

/// A weight of 0 is refused with a typed error naming the field, and the
/// table is left as it was. Would catch a zero weight accepted (a path no
/// flow can take, or a division by zero in selection).
#[test]
fn a_zero_weight_is_refused_and_changes_nothing() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    rtm.add_route(&c, &route("10.0.0.0/8", "192.0.2.1", 1, 10), Ttl::Infinite)
        .unwrap();
    let err = rtm
        .add_route(
            &c,
            &weighted("10.0.0.0/8", "192.0.2.2", 1, 10, 0),
            Ttl::Infinite,
        )
        .unwrap_err();
    assert!(
        matches!(&err, RtmError::InvalidParameter(m) if m.contains("weight")),
        "{err}"
    );
    assert_eq!(rtm.best_paths::<Ipv4>(&net("10.0.0.0/8")).len(), 1);
    assert_eq!(rtm.fib::<Ipv4>().groups(), 0);
}

/// More equal-cost routes than a group holds: the first 128 in key order,
/// the best route always among them. Would catch an unbounded group or
/// one that drops the best route.
#[test]
fn a_set_keeps_at_most_128_paths_and_always_the_best() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    // The last-keyed route goes in first, so it is the incumbent best.
    for i in (0..200u32).rev() {
        let nh = format!("192.0.{}.{}", 2 + i / 200, 1 + i % 200);
        rtm.add_route(&c, &route("10.0.0.0/8", &nh, 1, 10), Ttl::Infinite)
            .unwrap();
    }
    let best = rtm.is_route::<Ipv4>(&net("10.0.0.0/8")).unwrap();
    assert_eq!(best.next_hop, addr("192.0.2.200"));
    let paths = rtm.best_paths::<Ipv4>(&net("10.0.0.0/8"));
    assert_eq!(paths.len(), rtm::MAX_PATHS);
    assert!(paths.contains(&best));
    assert_eq!(paths[0].next_hop, addr("192.0.2.1"));
    assert_eq!(rtm.fib::<Ipv4>().paths(&net("10.0.0.0/8")).len(), 128);
    rtm.verify_consistency().unwrap();
}

/// Prefix-independent convergence: one call takes a next hop out of every
/// group using it, and every prefix through those groups (and every flow)
/// forwards on the remaining paths at once; routes added while it is down
/// avoid it; bringing it up restores the split; a group whose every path
/// is down keeps forwarding on all. Would catch a next-hop-down that
/// misses a group, rewrites only future prefixes, or forgets the state
/// for groups made later.
#[test]
fn a_next_hop_going_down_moves_every_prefix_at_once() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    for i in 0..2000u32 {
        let n = format!("10.{}.{}.0/24", i / 256, i % 256);
        for nh in ["192.0.2.1", "192.0.2.2"] {
            rtm.add_route(&c, &route(&n, nh, 1, 10), Ttl::Infinite)
                .unwrap();
        }
        // A second group sharing the next hop that goes down.
        let n = format!("11.{}.{}.0/24", i / 256, i % 256);
        for nh in ["192.0.2.2", "192.0.2.3"] {
            rtm.add_route(&c, &route(&n, nh, 1, 10), Ttl::Infinite)
                .unwrap();
        }
    }
    let fib = rtm.fib::<Ipv4>();
    assert_eq!(fib.groups(), 2);
    assert_eq!(fib.next_hop_down(addr("192.0.2.2"), 1), 2);
    assert_eq!(fib.next_hop_down(addr("192.0.2.2"), 1), 0, "already down");
    for a in ["10.0.0.1", "10.7.200.9", "11.3.3.3"] {
        let f = flows(&rtm, a, 64);
        assert_eq!(
            count(&f, "192.0.2.2"),
            0,
            "{a} still takes the down next hop"
        );
    }
    rtm.verify_consistency().unwrap();
    // A new group through it, made while it is down, avoids it too.
    for nh in ["192.0.2.2", "192.0.2.4"] {
        rtm.add_route(&c, &route("12.0.0.0/8", nh, 1, 10), Ttl::Infinite)
            .unwrap();
    }
    assert_eq!(count(&flows(&rtm, "12.1.1.1", 64), "192.0.2.4"), 64);
    assert!(fib.paths(&net("12.0.0.0/8")).iter().any(|p| p.down));
    // Up again: the even split returns.
    assert_eq!(fib.next_hop_up(addr("192.0.2.2"), 1), 3);
    assert_eq!(count(&flows(&rtm, "10.0.0.1", 64), "192.0.2.2"), 32);
    // The whole interface down: both paths of a group gone, it keeps both.
    assert_eq!(fib.interface_down(1), 3);
    assert_eq!(count(&flows(&rtm, "10.0.0.1", 64), "192.0.2.2"), 32);
    fib.interface_up(1);
    rtm.verify_consistency().unwrap();
}

/// Next-hop ids of group leaves: `is_group`, and `resolve_flow` agrees
/// with `lookup_flow`. Would catch a group id resolved as a next hop.
#[test]
fn next_hop_ids_of_groups_resolve_per_flow() {
    let rtm = ecmp_rtm();
    let c = rtm
        .register::<Ipv4>(BGP, RegisterOptions::default())
        .unwrap();
    for nh in ["192.0.2.1", "192.0.2.2"] {
        rtm.add_route(&c, &route("10.0.0.0/8", nh, 1, 10), Ttl::Infinite)
            .unwrap();
    }
    rtm.add_route(&c, &route("11.0.0.0/8", "192.0.2.1", 1, 10), Ttl::Infinite)
        .unwrap();
    let reader = rtm.fib::<Ipv4>().reader();
    let g = reader.lookup_id(addr("10.1.1.1")).unwrap();
    let one = reader.lookup_id(addr("11.1.1.1")).unwrap();
    assert!(g.is_group() && !one.is_group());
    for hash in [0, 1 << 31, u32::MAX] {
        let e = reader.lookup_flow(addr("10.1.1.1"), hash).unwrap();
        assert_eq!(g.resolve_flow(hash).next_hop, e.next_hop);
    }
    assert_ne!(
        g.resolve_flow(0).next_hop,
        g.resolve_flow(u32::MAX).next_hop
    );
}
