//! Differential property test: random operation sequences of every kind run
//! against the engine and the sequential reference model
//! (`rtm::model::differential::run` compares every result, the whole table
//! after every step, lookups, ordered walks and every queued message).

use proptest::prelude::*;
use rtm::model::differential::{BatchUpdate, Crit, Op, run};
use rtm::{Ipv4, Ipv6, Ipx};

fn crit() -> impl Strategy<Value = Crit> {
    (
        proptest::option::weighted(0.3, 0u8..8),
        proptest::option::weighted(0.3, 0u8..2),
        proptest::option::weighted(0.3, 0u8..3),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.2, any::<bool>()),
    )
        .prop_map(
            |(network, interface, protocol, best_only, include_disabled, stale)| Crit {
                network,
                interface,
                protocol,
                best_only,
                include_disabled,
                stale,
            },
        )
}

/// An add or delete of a batch (`update_routes` on the engine, one call
/// each on the model).
fn batch_update() -> impl Strategy<Value = BatchUpdate> {
    prop_oneof![
        3 => (0u8..8, 0u8..3, 0u8..2, 0u8..6, proptest::bool::weighted(0.85), 0u8..4, 0u8..2)
            .prop_map(|(net, nh, iface, metric, valid, ttl, psd)| BatchUpdate::Add { net, nh, iface, metric, valid, ttl, psd }),
        1 => (0u8..8, 0u8..3, 0u8..2).prop_map(|(net, nh, iface)| BatchUpdate::Delete { net, nh, iface }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u8..3;
    prop_oneof![
        2 => (p.clone(), any::<bool>(), proptest::bool::weighted(0.8), any::<bool>())
            .prop_map(|(proto, single, notify, coalesce)| Op::Register { proto, single, notify, coalesce }),
        1 => p.clone().prop_map(|proto| Op::Deregister { proto }),
        12 => (p.clone(), 0u8..8, 0u8..3, 0u8..2, 0u8..6, proptest::bool::weighted(0.85), 0u8..4, 0u8..2)
            .prop_map(|(proto, net, nh, iface, metric, valid, ttl, psd)| Op::Add { proto, net, nh, iface, metric, valid, ttl, psd }),
        4 => (p.clone(), 0u8..8, 0u8..3, 0u8..2).prop_map(|(proto, net, nh, iface)| Op::Delete { proto, net, nh, iface }),
        1 => (p.clone(), crit()).prop_map(|(proto, crit)| Op::BlockDelete { proto, crit }),
        1 => (p.clone(), crit(), any::<bool>()).prop_map(|(proto, crit, enable)| Op::SetEnable { proto, crit, enable }),
        1 => (p.clone(), crit()).prop_map(|(proto, crit)| Op::Convert { proto, crit }),
        3 => p.clone().prop_map(|proto| Op::Dequeue { proto }),
        2 => (0u8..12).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Sweep),
        1 => (p.clone(), 0u8..3).prop_map(|(proto, prio)| Op::SetPriority { proto, prio }),
        1 => crit().prop_map(|crit| Op::Walk { crit }),
        3 => (p.clone(), proptest::collection::vec(batch_update(), 0..12))
            .prop_map(|(proto, updates)| Op::Batch { proto, updates }),
        // Graceful restart: deregister gracefully (then a Register adopts),
        // mark, sweep (end-of-RIB), holds ending under Advance + Sweep.
        1 => (p.clone(), 0u8..4).prop_map(|(proto, hold)| Op::DeregisterGraceful { proto, hold }),
        1 => (p.clone(), proptest::option::of(0u8..4)).prop_map(|(proto, hold)| Op::MarkStale { proto, hold }),
        1 => p.clone().prop_map(|proto| Op::SweepStale { proto }),
        1 => (p.clone(), any::<bool>()).prop_map(|(proto, yields)| Op::SetStaleYielding { proto, yields }),
        // ECMP: protocols opting in and out; adds' weights come from `psd`.
        2 => (p, proptest::bool::weighted(0.7)).prop_map(|(proto, on)| Op::SetMultipath { proto, on }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn ipv4_engine_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run::<Ipv4>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn ipv6_engine_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run::<Ipv6>(&ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn ipx_engine_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run::<Ipx>(&ops).map_err(TestCaseError::fail)?;
    }
}

/// A fixed sequence touching every operation, so a regression shows up
/// even if the random generator drifts.
#[test]
fn scripted_sequence_matches_model() {
    let all = Crit {
        network: None,
        interface: None,
        protocol: None,
        best_only: false,
        include_disabled: false,
        stale: None,
    };
    let ops = vec![
        Op::Register {
            proto: 0,
            single: false,
            notify: true,
            coalesce: false,
        },
        Op::Register {
            proto: 1,
            single: true,
            notify: true,
            coalesce: true,
        },
        Op::Register {
            proto: 2,
            single: false,
            notify: false,
            coalesce: false,
        },
        Op::Add {
            proto: 0,
            net: 1,
            nh: 0,
            iface: 0,
            metric: 3,
            valid: true,
            ttl: 0,
            psd: 0,
        },
        Op::Add {
            proto: 1,
            net: 1,
            nh: 1,
            iface: 1,
            metric: 1,
            valid: true,
            ttl: 2,
            psd: 1,
        },
        Op::Add {
            proto: 1,
            net: 1,
            nh: 2,
            iface: 0,
            metric: 1,
            valid: true,
            ttl: 3,
            psd: 0,
        },
        Op::Add {
            proto: 2,
            net: 4,
            nh: 0,
            iface: 0,
            metric: 0,
            valid: false,
            ttl: 0,
            psd: 0,
        },
        Op::Add {
            proto: 2,
            net: 5,
            nh: 1,
            iface: 1,
            metric: 2,
            valid: true,
            ttl: 1,
            psd: 0,
        },
        Op::SetPriority { proto: 2, prio: 0 },
        Op::Add {
            proto: 2,
            net: 1,
            nh: 1,
            iface: 1,
            metric: 5,
            valid: true,
            ttl: 0,
            psd: 0,
        },
        Op::SetEnable {
            proto: 2,
            crit: all,
            enable: false,
        },
        Op::Convert {
            proto: 0,
            crit: Crit {
                protocol: Some(1),
                ..all
            },
        },
        Op::Advance { secs: 6 },
        Op::Sweep,
        Op::Dequeue { proto: 0 },
        Op::Walk {
            crit: Crit {
                include_disabled: true,
                ..all
            },
        },
        Op::BlockDelete {
            proto: 2,
            crit: Crit {
                interface: Some(1),
                ..all
            },
        },
        Op::Deregister { proto: 0 },
        Op::Dequeue { proto: 1 },
        Op::Delete {
            proto: 2,
            net: 4,
            nh: 0,
            iface: 0,
        },
    ];
    run::<Ipv4>(&ops).unwrap();
    run::<Ipv6>(&ops).unwrap();
    run::<Ipx>(&ops).unwrap();
}

/// A fixed graceful-restart cycle in every family: routes of two
/// protocols, one restarting (deregistered gracefully, re-registered,
/// partly refreshed, swept at end-of-RIB), one whose hold ends with
/// nobody adopting it, with stale routes yielding to fresh ones for one
/// protocol. Catches an adoption that loses the routes' index (the sweep
/// would miss them), a refresh that stays stale, a sweep that removes
/// fresh routes, and an unadopted hold that never ends.
#[test]
fn scripted_graceful_restart_matches_model() {
    let add = |proto, net, metric| Op::Add {
        proto,
        net,
        nh: proto,
        iface: 0,
        metric,
        valid: true,
        ttl: 0,
        psd: 0,
    };
    let register = |proto| Op::Register {
        proto,
        single: false,
        notify: true,
        coalesce: false,
    };
    let mut ops = vec![register(0), register(1), register(2)];
    ops.extend((0..6).map(|n| add(0, n, 1)));
    ops.extend((3..8).map(|n| add(1, n, 2)));
    ops.extend([
        Op::SetPriority { proto: 0, prio: 1 },
        Op::SetPriority { proto: 1, prio: 1 },
        Op::SetStaleYielding {
            proto: 0,
            yields: true,
        },
        add(0, 6, 1),
        Op::DeregisterGraceful { proto: 0, hold: 2 },
        Op::Dequeue { proto: 2 },
        register(0),
        add(0, 1, 1),
        add(0, 2, 3),
        Op::Advance { secs: 5 },
        Op::Sweep,
        Op::SweepStale { proto: 0 },
        Op::DeregisterGraceful { proto: 1, hold: 1 },
        Op::Advance { secs: 6 },
        Op::Sweep,
        register(1),
        Op::MarkStale {
            proto: 0,
            hold: Some(1),
        },
        Op::Advance { secs: 5 },
        Op::Sweep,
        Op::Dequeue { proto: 2 },
    ]);
    run::<Ipv4>(&ops).unwrap();
    run::<Ipv6>(&ops).unwrap();
    run::<Ipx>(&ops).unwrap();
}
