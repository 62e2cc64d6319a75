//! Graceful restart (beyond RTMv1): routes kept stale through a client's
//! restart, adopted by its next registration, refreshed, and swept at
//! end-of-RIB or when the hold ends.

mod common;

use std::time::Duration;

use common::*;
use rtm::{
    Criteria, Ipv4, RTM_ONLY_FRESH_ROUTES, RTM_ONLY_STALE_ROUTES, RegisterOptions, RtmError, Ttl,
};

const HOLD: Duration = Duration::from_secs(120);

fn stale_routes(rtm: &rtm::Rtm) -> Vec<rtm::Route<Ipv4>> {
    match rtm.enumerate(&Criteria::<Ipv4>::all().include_disabled().stale_only()) {
        Ok(e) => e.collect(),
        Err(RtmError::NoRoutes(_)) => Vec::new(),
        Err(e) => panic!("enumerate failed: {e}"),
    }
}

/// The whole cycle: routes stay in the FIB through the restart, the
/// protocol registers again at once and adopts them, a re-add of an
/// unchanged route is no change (no message), a changed one is, and
/// end-of-RIB removes exactly the routes not re-added. Would catch a
/// graceful deregistration that withdraws routes (lookups would miss), a
/// pair not freed for the restarted process (`ClientAlreadyExists`), a
/// refresh that stays stale, and a sweep that takes fresh routes or
/// misses stale ones.
#[test]
fn a_restarted_client_adopts_refreshes_and_sweeps() {
    let f = fx();
    for (n, nh) in [
        ("10.0.0.0/8", "192.0.2.1"),
        ("10.1.0.0/16", "192.0.2.1"),
        ("10.2.0.0/16", "192.0.2.1"),
    ] {
        f.rtm
            .add_route(&f.a, &route(n, nh, 1, 5), Ttl::Infinite)
            .unwrap();
    }
    drain(&f.rtm, &f.b);
    assert_eq!(f.rtm.deregister_graceful(&f.a, HOLD).unwrap(), 3);
    // The old handle is gone; the routes are not.
    assert!(matches!(
        f.rtm.add_route(
            &f.a,
            &route("10.3.0.0/16", "192.0.2.1", 1, 5),
            Ttl::Infinite
        ),
        Err(RtmError::InvalidHandle(_))
    ));
    assert_eq!(f.rtm.network_count::<Ipv4>(), 3);
    assert!(f.rtm.lookup::<Ipv4>(addr("10.2.3.4")).is_some());
    assert_eq!(stale_routes(&f.rtm).len(), 3);
    assert!(
        drain(&f.rtm, &f.b).is_empty(),
        "marking changed no best route"
    );
    f.rtm.verify_consistency().unwrap();

    let a = f
        .rtm
        .register::<Ipv4>(P1, RegisterOptions::notifying())
        .unwrap();
    // Unchanged: fresh again, and no message to anyone.
    let c = f
        .rtm
        .add_route(&a, &route("10.0.0.0/8", "192.0.2.1", 1, 5), Ttl::Infinite)
        .unwrap();
    assert!(c.is_no_change());
    // Changed metric: a message.
    let c = f
        .rtm
        .add_route(&a, &route("10.1.0.0/16", "192.0.2.1", 1, 7), Ttl::Infinite)
        .unwrap();
    assert_eq!(c.flags(), rtm::RTM_ROUTE_CHANGED);
    assert_eq!(drain(&f.rtm, &f.b).len(), 1);
    let mut key = route("10.0.0.0/8", "192.0.2.1", 1, 5);
    key.protocol = P1;
    let marks = f.rtm.route_marks(&key).unwrap();
    assert!(!marks.stale && marks.best && marks.enabled);
    assert_eq!(stale_routes(&f.rtm).len(), 1);

    assert_eq!(f.rtm.end_of_rib(&a).unwrap(), 1);
    assert_eq!(f.rtm.network_count::<Ipv4>(), 2);
    assert_eq!(
        f.rtm.lookup::<Ipv4>(addr("10.2.3.4")).unwrap().prefix,
        net("10.0.0.0/8")
    );
    let gone = drain(&f.rtm, &f.b);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].network(), Some(net("10.2.0.0/16")));
    // A second end-of-RIB has nothing left to sweep: not an error.
    assert_eq!(f.rtm.end_of_rib(&a).unwrap(), 0);
    f.rtm.verify_consistency().unwrap();
}

/// A hold that ends with nobody adopting the routes removes them exactly
/// as a plain deregistration would have: same messages to the other
/// clients, same final table, the pair free again. Would catch a hold
/// that never ends, one that leaves routes behind, and a pair that stays
/// taken after it.
#[test]
fn an_unadopted_hold_ends_as_a_deregistration() {
    let run = |graceful: bool| {
        let f = fx();
        for (i, n) in ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"]
            .iter()
            .enumerate()
        {
            f.rtm
                .add_route(&f.a, &route(n, "192.0.2.1", 1, i as u32), Ttl::Infinite)
                .unwrap();
        }
        f.rtm
            .add_route(
                &f.b,
                &route("10.1.0.0/16", "192.0.2.2", 2, 1),
                Ttl::Infinite,
            )
            .unwrap();
        drain(&f.rtm, &f.b);
        if graceful {
            f.rtm.deregister_graceful(&f.a, HOLD).unwrap();
            f.clock.advance_secs(119);
            assert_eq!(f.rtm.sweep_expired(), 0, "the hold has not ended");
            assert_eq!(f.rtm.network_count::<Ipv4>(), 3);
            f.clock.advance_secs(1);
            assert_eq!(f.rtm.sweep_expired(), 3);
        } else {
            assert_eq!(f.rtm.deregister(&f.a).unwrap(), 3);
        }
        f.rtm.verify_consistency().unwrap();
        // The pair is free, as after any deregistration.
        f.rtm
            .register::<Ipv4>(P1, RegisterOptions::default())
            .unwrap();
        (drain(&f.rtm, &f.b), all_routes::<Ipv4>(&f.rtm))
    };
    let (graceful_msgs, graceful_table) = run(true);
    let (plain_msgs, plain_table) = run(false);
    assert_eq!(graceful_msgs.len(), 3);
    assert_eq!(graceful_msgs, plain_msgs);
    assert_eq!(graceful_table, plain_table);
}

/// The adopter's hold: a restarted client that never says end-of-RIB
/// loses its still-stale routes when the hold ends, and keeps the ones it
/// refreshed. Would catch a hold lost at adoption (stale routes kept
/// forever) and one that sweeps refreshed routes.
#[test]
fn the_hold_sweeps_an_adopter_that_never_ends_its_rib() {
    let f = fx();
    for n in ["10.0.0.0/8", "10.1.0.0/16"] {
        f.rtm
            .add_route(&f.a, &route(n, "192.0.2.1", 1, 5), Ttl::Infinite)
            .unwrap();
    }
    f.rtm.deregister_graceful(&f.a, HOLD).unwrap();
    let a = f
        .rtm
        .register::<Ipv4>(P1, RegisterOptions::default())
        .unwrap();
    f.rtm
        .add_route(&a, &route("10.0.0.0/8", "192.0.2.1", 1, 5), Ttl::Infinite)
        .unwrap();
    f.clock.advance_secs(120);
    assert_eq!(f.rtm.sweep_expired(), 1);
    assert_eq!(all_routes::<Ipv4>(&f.rtm).len(), 1);
    assert!(f.rtm.is_route::<Ipv4>(&net("10.0.0.0/8")).is_some());
    // The hold ended with the sweep: nothing more happens later.
    f.clock.advance_secs(1000);
    assert_eq!(f.rtm.sweep_expired(), 0);
    f.rtm.verify_consistency().unwrap();
}

/// With the protocol's stale routes yielding, a stale route loses to a
/// fresh route of equal priority even with a worse metric, and wins back
/// when refreshed; without, marking changes no best route. Would catch a
/// yield bit lost in the packed route (the stale route would stay best)
/// or applied to fresh routes.
#[test]
fn stale_routes_yield_to_fresh_ones_of_equal_priority_when_asked() {
    let f = fx();
    f.rtm.set_priority(P2, 10); // equal to P1's
    let a_route = route("10.0.0.0/8", "192.0.2.1", 1, 1);
    f.rtm.add_route(&f.a, &a_route, Ttl::Infinite).unwrap();
    let b_route = route("10.0.0.0/8", "192.0.2.2", 2, 9);
    f.rtm.add_route(&f.b, &b_route, Ttl::Infinite).unwrap();
    let best = || f.rtm.is_route::<Ipv4>(&net("10.0.0.0/8")).unwrap().protocol;
    assert_eq!(best(), P1);
    f.rtm.mark_stale(&f.a, None).unwrap();
    assert_eq!(
        best(),
        P1,
        "a stale route competes on its metric by default"
    );
    f.rtm.set_stale_yielding(P1, true);
    f.rtm.mark_stale(&f.a, None).unwrap();
    assert_eq!(best(), P2, "a yielding stale route loses to a fresh one");
    // A rewrite of the network re-selects from the stored routes: the
    // yield must have been stored, not only used once.
    f.rtm.add_route(&f.b, &b_route, Ttl::Infinite).unwrap();
    assert_eq!(best(), P2, "the stored route still yields");
    assert_eq!(
        f.rtm.lookup::<Ipv4>(addr("10.1.1.1")).unwrap().protocol,
        P2,
        "the FIB follows"
    );
    f.rtm.add_route(&f.a, &a_route, Ttl::Infinite).unwrap();
    assert_eq!(best(), P1, "refreshed, it wins on its metric again");
    f.rtm.verify_consistency().unwrap();
}

/// A mark with a hold, on a registered client: the routes it re-adds stay
/// and the rest go when the hold ends; a later mark without a hold
/// replaces the first one's hold. Would catch a mark's hold that never
/// fires, and one not replaced by the next mark.
#[test]
fn a_marks_hold_sweeps_what_was_not_refreshed() {
    let f = fx();
    for n in ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"] {
        f.rtm
            .add_route(&f.a, &route(n, "192.0.2.1", 1, 5), Ttl::Infinite)
            .unwrap();
    }
    assert_eq!(
        f.rtm
            .mark_stale(&f.a, Some(Duration::from_secs(30)))
            .unwrap(),
        3
    );
    f.rtm
        .add_route(
            &f.a,
            &route("10.1.0.0/16", "192.0.2.1", 1, 5),
            Ttl::Infinite,
        )
        .unwrap();
    f.clock.advance_secs(30);
    assert_eq!(f.rtm.sweep_expired(), 2);
    assert_eq!(f.rtm.network_count::<Ipv4>(), 1);

    f.rtm
        .mark_stale(&f.a, Some(Duration::from_secs(5)))
        .unwrap();
    f.rtm.mark_stale(&f.a, None).unwrap();
    f.clock.advance_secs(10);
    assert_eq!(f.rtm.sweep_expired(), 0, "the second mark has no hold");
    assert_eq!(f.rtm.sweep_stale(&f.a).unwrap(), 1);
    f.rtm.verify_consistency().unwrap();
}

/// A single-route client adopting a multi-route predecessor's routes
/// finds several of its protocol's routes at a network; its add leaves
/// exactly one there, and its delete takes them all. Would catch an add
/// that replaces one and leaves two routes of a single-route protocol
/// (with the same key as the new one: a duplicate).
#[test]
fn a_single_route_adopter_collapses_inherited_routes() {
    let f = fx();
    let one = route("10.0.0.0/8", "192.0.2.1", 1, 5);
    let two = route("10.0.0.0/8", "192.0.2.2", 2, 5);
    f.rtm.add_route(&f.a, &one, Ttl::Infinite).unwrap();
    f.rtm.add_route(&f.a, &two, Ttl::Infinite).unwrap();
    f.rtm.deregister_graceful(&f.a, HOLD).unwrap();
    let single = RegisterOptions {
        single_route: true,
        ..RegisterOptions::default()
    };
    let a = f.rtm.register::<Ipv4>(P1, single).unwrap();
    f.rtm.add_route(&a, &two, Ttl::Infinite).unwrap();
    let left = all_routes::<Ipv4>(&f.rtm);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].next_hop, two.next_hop);
    f.rtm.verify_consistency().unwrap();
}

/// Bad use gets typed errors and changes nothing: a stale handle, a
/// second graceful deregistration, asking for stale and fresh routes at
/// once. Would catch a graceful deregistration of a dead handle that
/// marks the adopter's routes, and contradictory flags accepted.
#[test]
fn bad_graceful_calls_are_refused() {
    let f = fx();
    f.rtm
        .add_route(&f.a, &route("10.0.0.0/8", "192.0.2.1", 1, 5), Ttl::Infinite)
        .unwrap();
    f.rtm.deregister_graceful(&f.a, HOLD).unwrap();
    let a = f
        .rtm
        .register::<Ipv4>(P1, RegisterOptions::default())
        .unwrap();
    f.rtm
        .add_route(&a, &route("10.0.0.0/8", "192.0.2.1", 1, 5), Ttl::Infinite)
        .unwrap();
    for r in [
        f.rtm.deregister_graceful(&f.a, HOLD),
        f.rtm.mark_stale(&f.a, None),
        f.rtm.sweep_stale(&f.a),
    ] {
        assert!(matches!(r, Err(RtmError::InvalidHandle(_))), "{r:?}");
    }
    assert!(stale_routes(&f.rtm).is_empty());
    let e = Criteria::<Ipv4>::from_flags(RTM_ONLY_STALE_ROUTES | RTM_ONLY_FRESH_ROUTES, None)
        .unwrap_err();
    assert_eq!(e.code(), 87, "{e}");
    let c = Criteria::<Ipv4>::from_flags(RTM_ONLY_STALE_ROUTES, None).unwrap();
    assert_eq!(c.flags(), RTM_ONLY_STALE_ROUTES);
}

/// Re-marking routes that yield, with yielding now off, re-ranks them: a
/// mark that does not yield takes a fast path that rewrites mark bits in
/// place and changes no best route, which is only sound for routes whose
/// rank it cannot change. Would catch that path taken for a route that
/// yields now (it would stay yielding, or lose its yield without the best
/// route, the FIB and the messages following).
#[test]
fn re_marking_yielding_routes_without_yield_re_ranks_them() {
    let f = fx();
    f.rtm.set_priority(P2, 10); // equal to P1's
    f.rtm
        .add_route(&f.a, &route("10.0.0.0/8", "192.0.2.1", 1, 1), Ttl::Infinite)
        .unwrap();
    f.rtm
        .add_route(&f.b, &route("10.0.0.0/8", "192.0.2.2", 2, 9), Ttl::Infinite)
        .unwrap();
    let best = || f.rtm.is_route::<Ipv4>(&net("10.0.0.0/8")).unwrap().protocol;
    f.rtm.set_stale_yielding(P1, true);
    f.rtm.mark_stale(&f.a, None).unwrap();
    assert_eq!(best(), P2);
    drain(&f.rtm, &f.b);
    f.rtm.set_stale_yielding(P1, false);
    assert_eq!(f.rtm.mark_stale(&f.a, None).unwrap(), 1);
    assert_eq!(best(), P1, "no longer yielding, it wins on its metric");
    assert_eq!(
        f.rtm.lookup::<Ipv4>(addr("10.1.1.1")).unwrap().protocol,
        P1,
        "the FIB follows"
    );
    assert_eq!(
        drain(&f.rtm, &f.b).len(),
        1,
        "B is told the best route changed"
    );
    assert_eq!(stale_routes(&f.rtm).len(), 1, "still stale");
    f.rtm.verify_consistency().unwrap();
}
