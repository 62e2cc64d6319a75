//! Bad input: every invalid value gets the documented error, with a message
//! naming it, and leaves the table exactly as it was.

mod common;

use std::net::Ipv6Addr;

use common::*;
use rtm::*;

/// Everything observable about the IPv4 table: routes (with disabled ones),
/// best routes, the count, FIB answers and pending messages.
fn snapshot(f: &Fx) -> String {
    let routes = all_routes::<Ipv4>(&f.rtm);
    let best: Vec<_> = f
        .rtm
        .enumerate(&Criteria::<Ipv4>::all().best_only())
        .map(|e| e.collect::<Vec<_>>())
        .unwrap_or_default();
    let lookups: Vec<_> = ["10.1.2.3", "10.9.9.9", "11.0.0.1"]
        .iter()
        .map(|a| f.rtm.lookup::<Ipv4>(addr(a)))
        .collect();
    format!(
        "{routes:?}\n{best:?}\n{}\n{lookups:?}\n{:?}\n{:?}",
        f.rtm.network_count::<Ipv4>(),
        f.a.pending(),
        f.b.pending()
    )
}

fn populated() -> Fx {
    let f = fx();
    f.rtm
        .add_route(
            &f.a,
            &route("10.0.0.0/8", "1.1.1.1", 1, 5),
            Ttl::Seconds(100),
        )
        .unwrap();
    f.rtm
        .add_route(&f.b, &route("10.1.0.0/16", "2.2.2.2", 2, 5), Ttl::Infinite)
        .unwrap();
    f
}

#[track_caller]
fn rejects<T: std::fmt::Debug>(
    f: &Fx,
    before: &str,
    result: Result<T, RtmError>,
    code: u32,
    names: &str,
) {
    let err = result.unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    assert!(
        err.to_string().contains(names),
        "message {:?} does not name {names:?}",
        err.to_string()
    );
    assert_eq!(snapshot(f), before, "a failed call changed the table");
}

#[test]
fn invalid_prefixes_are_rejected_with_the_value_named() {
    for (text, names) in [
        ("10.0.0.1/8", "host bits"),
        ("10.0.0.0/33", "out of range"),
        ("10.0.0.0", "ADDRESS/LENGTH"),
        ("10.0.0/8", "not an IPv4 address"),
        ("10.0.0.0/x", "not a prefix length"),
        ("10.0.0.0/-1", "not a prefix length"),
    ] {
        let err = text.parse::<Ipv4Prefix>().unwrap_err();
        assert_eq!(err.code(), 87);
        assert!(err.to_string().contains(names), "{err}");
        assert!(
            err.to_string().contains(text.split('/').next().unwrap()),
            "{err}"
        );
    }
    assert!(
        "2001:db8::1/32"
            .parse::<Ipv6Prefix>()
            .unwrap_err()
            .to_string()
            .contains("host bits")
    );
    assert!(Prefix::new("2001:db8::".parse::<Ipv6Addr>().unwrap(), 129).is_err());
    assert!(
        Ipv4Prefix::from_netmask(addr("10.0.0.0"), addr("255.0.255.0"))
            .unwrap_err()
            .to_string()
            .contains("not contiguous")
    );
    assert_eq!(
        Ipv4Prefix::from_netmask(addr("10.0.0.0"), addr("255.0.0.0")).unwrap(),
        net("10.0.0.0/8")
    );
    assert!("ipx:123".parse::<IpxNetwork>().is_err());
    assert!("0000abcd".parse::<IpxNetwork>().is_err());
    assert_eq!(
        "ipx:0000abcd".parse::<IpxNetwork>().unwrap(),
        IpxNetwork(0xabcd)
    );
    assert!("00:11:22:33:44".parse::<MacAddr>().is_err());
    assert!("00:11:22:33:44:zz".parse::<MacAddr>().is_err());
}

#[test]
fn invalid_route_fields_are_rejected_and_change_nothing() {
    let f = populated();
    let before = snapshot(&f);
    let mut r = route("10.2.0.0/16", "1.1.1.1", 1, 5);
    r.data.flags = 0x4;
    rejects(
        &f,
        &before,
        f.rtm.add_route(&f.a, &r, Ttl::Infinite),
        87,
        "0x4",
    );
    let mut r = route("10.2.0.0/16", "1.1.1.1", 1, 5);
    r.data.route_type = 9;
    rejects(
        &f,
        &before,
        f.rtm.add_route(&f.a, &r, Ttl::Infinite),
        87,
        "route type 9",
    );
    // An update of an existing route with a bad field changes nothing either.
    let mut r = route("10.0.0.0/8", "1.1.1.1", 1, 1);
    r.data.flags = 0x80;
    rejects(
        &f,
        &before,
        f.rtm.add_route(&f.a, &r, Ttl::Infinite),
        87,
        "0x80",
    );

    let ipx = f
        .rtm
        .register::<Ipx>(P1, RegisterOptions::default())
        .unwrap();
    let x = Route::<Ipx>::new(
        IpxNetwork(1),
        MacAddr::default(),
        1,
        IpxRouteData {
            flags: 2,
            ticks: 1,
            hops: 1,
        },
    );
    rejects(
        &f,
        &before,
        f.rtm.add_route(&ipx, &x, Ttl::Infinite),
        87,
        "0x2",
    );
    assert_eq!(f.rtm.network_count::<Ipx>(), 0);
}

#[test]
fn invalid_ttls_are_rejected_and_change_nothing() {
    let f = populated();
    let before = snapshot(&f);
    for ttl in [2_147_484, 3_000_000, u32::MAX - 1] {
        let r = route("10.0.0.0/8", "1.1.1.1", 1, 1);
        rejects(
            &f,
            &before,
            f.rtm.add_route(&f.a, &r, Ttl::Seconds(ttl)),
            87,
            &ttl.to_string(),
        );
    }
    // The route keeps its old expiry: it still ages out at 100 s.
    f.clock.advance_secs(100);
    assert_eq!(f.rtm.sweep_expired(), 1);
}

#[test]
fn invalid_flags_and_families_are_rejected() {
    assert!(
        RegisterOptions::from_flags(0x4, false)
            .unwrap_err()
            .to_string()
            .contains("0x4")
    );
    assert!(
        Criteria::<Ipv4>::from_flags(0x200, None)
            .unwrap_err()
            .to_string()
            .contains("0x200")
    );
    let crit = route("10.0.0.0/8", "1.1.1.1", 1, 5);
    let c = Criteria::<Ipv4>::from_flags(RTM_ONLY_THIS_NETWORK | RTM_ONLY_BEST_ROUTES, Some(&crit))
        .unwrap();
    assert_eq!(c, Criteria::all().network(net("10.0.0.0/8")).best_only());
    assert!(
        FamilyId::from_raw(2)
            .unwrap_err()
            .to_string()
            .contains("family 2")
    );
    assert!(
        "ipv5"
            .parse::<FamilyId>()
            .unwrap_err()
            .to_string()
            .contains("ipv5")
    );
    assert_eq!(Rtm::new().network_count_raw(99).unwrap_err().code(), 87);
}

#[test]
fn stale_and_foreign_handles_are_rejected_and_change_nothing() {
    let f = populated();
    let c = f
        .rtm
        .register::<Ipv4>(P3, RegisterOptions::notifying())
        .unwrap();
    f.rtm.deregister(&c).unwrap();
    let before = snapshot(&f);
    let r = route("10.0.0.0/8", "1.1.1.1", 1, 5);
    let all = Criteria::<Ipv4>::all();
    rejects(
        &f,
        &before,
        f.rtm.add_route(&c, &r, Ttl::Infinite),
        6,
        "deregistered",
    );
    rejects(&f, &before, f.rtm.delete_route(&c, &r), 6, "deregistered");
    rejects(&f, &before, f.rtm.block_delete(&c, &all), 6, "deregistered");
    rejects(
        &f,
        &before,
        f.rtm.block_set_enable(&c, &all, false),
        6,
        "deregistered",
    );
    rejects(
        &f,
        &before,
        f.rtm.block_convert_to_static(&c, &all),
        6,
        "deregistered",
    );
    rejects(&f, &before, f.rtm.dequeue(&c), 6, "deregistered");
    rejects(&f, &before, f.rtm.deregister(&c), 6, "deregistered");
    // A live handle of another table.
    let other = fx();
    rejects(
        &f,
        &before,
        f.rtm.add_route(&other.a, &r, Ttl::Infinite),
        6,
        "another routing table",
    );
    rejects(
        &f,
        &before,
        f.rtm.deregister(&other.a),
        6,
        "another routing table",
    );
    // A re-registered protocol does not revive the old handle.
    let _new = f
        .rtm
        .register::<Ipv4>(P3, RegisterOptions::notifying())
        .unwrap();
    assert_eq!(
        f.rtm.add_route(&c, &r, Ttl::Infinite).unwrap_err().code(),
        6
    );
}

#[test]
fn failing_lookups_change_nothing() {
    let f = populated();
    let before = snapshot(&f);
    rejects(
        &f,
        &before,
        f.rtm
            .delete_route(&f.a, &route("10.0.0.0/8", "9.9.9.9", 1, 5)),
        259,
        "10.0.0.0/8",
    );
    rejects(
        &f,
        &before,
        f.rtm
            .delete_route(&f.a, &route("12.0.0.0/8", "1.1.1.1", 1, 5)),
        259,
        "12.0.0.0/8",
    );
    rejects(
        &f,
        &before,
        f.rtm.block_delete(&f.a, &Criteria::all().interface(7)),
        259,
        "interface 7",
    );
    rejects(
        &f,
        &before,
        f.rtm
            .block_set_enable(&f.a, &Criteria::all().interface(7), false),
        259,
        "interface 7",
    );
    rejects(
        &f,
        &before,
        f.rtm
            .block_convert_to_static(&f.a, &Criteria::all().protocol(P3)),
        259,
        "protocol 3",
    );
    rejects(
        &f,
        &before,
        f.rtm.enumerate(&Criteria::<Ipv4>::all().interface(7)),
        259,
        "interface 7",
    );
    rejects(
        &f,
        &before,
        f.rtm.get_first(&Criteria::<Ipv4>::all().interface(7)),
        259,
        "interface 7",
    );
    let mut future = route("10.0.0.0/8", "1.1.1.1", 1, 5);
    future.timestamp = f.clock.now().plus_seconds(5);
    rejects(&f, &before, f.rtm.route_age(&future), 87, "later than now");
}

#[test]
fn a_batch_with_one_invalid_add_changes_nothing() {
    let f = populated();
    let before = snapshot(&f);
    let mut bad = route("10.3.0.0/16", "1.1.1.1", 1, 1);
    bad.data.route_type = 9;
    let batch = [
        // Valid, and would change the table if the batch were applied.
        RouteUpdate::Add {
            route: route("10.2.0.0/16", "1.1.1.1", 1, 1),
            ttl: Ttl::Infinite,
        },
        RouteUpdate::Delete(route("10.0.0.0/8", "1.1.1.1", 1, 5)),
        RouteUpdate::Add {
            route: bad,
            ttl: Ttl::Infinite,
        },
    ];
    let mut outcomes = 0;
    let r = f.rtm.update_routes(&f.a, &batch, |_| outcomes += 1);
    rejects(
        &f,
        &before,
        r,
        87,
        "update 2 of 3 (add 10.3.0.0/16): route type 9",
    );
    assert_eq!(outcomes, 0, "no update of a refused batch is applied");
    let over = [RouteUpdate::Add {
        route: route("10.2.0.0/16", "1.1.1.1", 1, 1),
        ttl: Ttl::Seconds(MAX_TTL_SECONDS + 1),
    }];
    let r = f.rtm.update_routes(&f.a, &over, |_| outcomes += 1);
    rejects(&f, &before, r, 87, "update 0 of 1 (add 10.2.0.0/16): TTL");
}

/// Would catch a network's route limit that panics (it was an
/// `unreachable!` in the add path) or leaves part of the write behind:
/// the refused add through `add_route`, by the owner and by another
/// client, and through `update_routes` after an earlier update of the
/// batch applied, must report `NoSystemResources` naming the limit and
/// leave the table, the queues and the FIB as they were.
#[test]
fn an_add_past_a_networks_route_limit_is_refused_and_changes_nothing() {
    let f = fx_with(|b| b.max_routes_per_network(4));
    for i in 1..=4 {
        let r = route("10.1.0.0/16", &format!("1.1.1.{i}"), i, 5 + i);
        f.rtm.add_route(&f.a, &r, Ttl::Infinite).unwrap();
    }
    drain(&f.rtm, &f.b);
    let before = snapshot(&f);
    let code = RtmError::NoSystemResources(String::new()).code();
    let fifth = route("10.1.0.0/16", "1.1.1.9", 9, 1);
    rejects(
        &f,
        &before,
        f.rtm.add_route(&f.a, &fifth, Ttl::Infinite),
        code,
        "at most 4",
    );
    rejects(
        &f,
        &before,
        f.rtm.add_route(&f.b, &fifth, Ttl::Infinite),
        code,
        "10.1.0.0/16",
    );
    // In a batch: the first update applies, the second is refused alone.
    let elsewhere = route("10.2.0.0/16", "1.1.1.1", 1, 5);
    let mut outcomes = Vec::new();
    f.rtm
        .update_routes(
            &f.a,
            &[
                RouteUpdate::Add {
                    route: elsewhere,
                    ttl: Ttl::Infinite,
                },
                RouteUpdate::Add {
                    route: fifth,
                    ttl: Ttl::Infinite,
                },
            ],
            |r| outcomes.push(r),
        )
        .unwrap();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(outcomes[1].as_ref().unwrap_err().code(), code);
    f.rtm.delete_route(&f.a, &elsewhere).unwrap();
    let told: Vec<_> = drain(&f.rtm, &f.b).iter().map(|c| c.flags()).collect();
    assert_eq!(
        told,
        [RTM_ROUTE_ADDED, RTM_ROUTE_DELETED],
        "only 10.2/16 came and went"
    );
    assert_eq!(snapshot(&f), before);
    f.rtm.verify_consistency().unwrap();
}

/// Would catch `update_routes` running its callback under the client's
/// gate (deregistering the same client from it deadlocked): the callback
/// deregisters the client after the first chunk's outcome, the call
/// returns `InvalidHandle` for the rest, and the table holds exactly the
/// routes of no client (the deregistration removed the first chunk's).
#[test]
fn update_routes_callback_may_deregister_its_own_client() {
    let f = fx();
    let updates: Vec<_> = (0..600u32)
        .map(|i| RouteUpdate::Add {
            route: route(&format!("10.{}.{}.0/24", i / 256, i % 256), "1.1.1.1", 1, 5),
            ttl: Ttl::Infinite,
        })
        .collect();
    // On a thread of its own, so that a deadlock fails the test (the
    // planted bug hangs) instead of hanging the suite.
    let (rtm, a) = (f.rtm.clone(), f.a.clone());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = 0;
        let result = rtm.update_routes(&a, &updates, |r| {
            r.unwrap();
            seen += 1;
            if seen == 1 {
                rtm.deregister(&a).unwrap();
            }
        });
        done.send((result, seen)).unwrap();
    });
    let (result, seen) = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("update_routes deadlocked: its callback deregistered its own client");
    assert_eq!(
        result.unwrap_err().code(),
        RtmError::InvalidHandle(String::new()).code()
    );
    assert_eq!(seen, 256, "the first chunk's outcomes, then the stop");
    assert_eq!(f.rtm.network_count::<Ipv4>(), 0);
    f.rtm.verify_consistency().unwrap();
}
