//! The RIB's destination index on the real `Rtm`, under loom: its block
//! links are the shim's atomics and its block locks the shim's mutexes,
//! and under `cfg(loom)` its shape is a two-block root, two-network
//! leaves and two-way inner nodes, so two writers filling one block
//! append to a leaf, copy it, split it and publish each copy while a
//! reader looks up and walks (the networks part within a few bits, so
//! the model stays within loom's branch budget). In every interleaving: the reader finds a network present
//! throughout (a writer never unlinks a node before its replacement is
//! linked, never publishes a half-built split), a walk sees it exactly
//! once and in order, and neither writer's network is lost (a writer only
//! writes the current copy: with a stale copy one insert would vanish).
//! What loom cannot see: the leaves' keys and value slots are plain
//! memory and std atomics, and so are a leaf's append count and the
//! index's summary bits, so the appends' publication and the walks'
//! skipping are covered by `src/rib/index/tests.rs`'s racing readers
//! instead; reclamation is crossbeam-epoch's (see the crate docs).
#![cfg(loom)]

use rtm::{Criteria, IpRouteData, Ipv4, ProtocolId, RegisterOptions, Route, Rtm, Ttl};
use rtm_loom_tests::{model_engine, with_stack};

fn route(network: &str) -> Route<Ipv4> {
    Route::new(
        network.parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        1,
        IpRouteData::with_metric(1),
    )
}

#[test]
fn readers_see_every_copy_of_a_block_whole_and_writers_lose_nothing() {
    model_engine(|| {
        let rtm = Rtm::new();
        let a = rtm
            .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
            .unwrap();
        let b = rtm
            .register::<Ipv4>(ProtocolId(2), RegisterOptions::default())
            .unwrap();
        let anchor = route("10.0.0.0/8");
        rtm.add_route(&a, &anchor, Ttl::Infinite).unwrap();
        // The reader runs on its own thread and the first writer on the
        // model's: loom explores a load before a store it could have read
        // (the order that matters here) when the load comes second.
        let reader = {
            let rtm = rtm.clone();
            with_stack(move || {
                for _ in 0..2 {
                    assert!(
                        rtm.is_route::<Ipv4>(&anchor.network).is_some(),
                        "a lookup missed a network present throughout"
                    );
                    let walked: Vec<_> = rtm
                        .enumerate(&Criteria::<Ipv4>::all())
                        .unwrap()
                        .map(|r| r.network)
                        .collect();
                    assert!(walked.is_sorted(), "a walk out of order: {walked:?}");
                    assert_eq!(
                        walked.iter().filter(|n| **n == anchor.network).count(),
                        1,
                        "a walk saw the anchor other than once: {walked:?}"
                    );
                }
            })
        };
        let wb = {
            let rtm = rtm.clone();
            with_stack(move || {
                for n in ["96.0.0.0/8", "48.0.0.0/8"] {
                    rtm.add_route(&b, &route(n), Ttl::Infinite).unwrap();
                }
            })
        };
        for n in ["32.0.0.0/8", "64.0.0.0/8"] {
            rtm.add_route(&a, &route(n), Ttl::Infinite).unwrap();
        }
        reader.join().unwrap();
        wb.join().unwrap();
        assert_eq!(rtm.network_count::<Ipv4>(), 5);
        for n in ["32.0.0.0/8", "64.0.0.0/8", "96.0.0.0/8", "48.0.0.0/8"] {
            assert!(
                rtm.is_route::<Ipv4>(&n.parse().unwrap()).is_some(),
                "{n} was lost"
            );
        }
        rtm.verify_consistency().unwrap();
    });
}
