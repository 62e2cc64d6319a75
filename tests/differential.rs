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
    )
        .prop_map(
            |(network, interface, protocol, best_only, include_disabled)| Crit {
                network,
                interface,
                protocol,
                best_only,
                include_disabled,
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
        3 => (p, proptest::collection::vec(batch_update(), 0..12))
            .prop_map(|(proto, updates)| Op::Batch { proto, updates }),
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
