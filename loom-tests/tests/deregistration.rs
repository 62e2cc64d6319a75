//! Deregistration racing the same client's adds, on the real `Rtm`: no
//! route of the client survives its deregistration, and an add either
//! happened before it (and was then removed) or was refused.
//!
//! What loom explores here are the library's own synchronisation points,
//! taken from the `sync` shim: the client's gate (an `RwLock` its
//! operations hold shared and deregistration takes exclusively), the
//! network writer locks, the sequencer and the change queues. The
//! structures loom cannot see (the crossbeam skip list and epochs, dashmap,
//! the FIB's own lock) run as ordinary code between those points: none of
//! them is ever held across a shim lock, so the model cannot deadlock on
//! them, but their internal interleavings are left to the stress tests.
#![cfg(loom)]

use rtm::{IpRouteData, Ipv4, ProtocolId, RegisterOptions, Route, Rtm, RtmError, Ttl};
use rtm_loom_tests::{model_engine, with_stack};

fn route(net: &str) -> Route<Ipv4> {
    Route::new(
        net.parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        1,
        IpRouteData::with_metric(1),
    )
}

#[test]
fn deregistration_racing_adds_leaves_no_orphan() {
    model_engine(|| {
        let rtm = Rtm::new();
        let client = rtm
            .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
            .unwrap();
        let adder = {
            let (rtm, client) = (rtm.clone(), client.clone());
            with_stack(move || {
                ["10.0.0.0/8", "10.1.0.0/16"]
                    .map(|n| rtm.add_route(&client, &route(n), Ttl::Infinite))
            })
        };
        let removed = rtm.deregister(&client).unwrap();
        let added = adder.join().unwrap();
        let succeeded = added.iter().filter(|r| r.is_ok()).count();
        for e in added.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(e, RtmError::InvalidHandle(_)), "{e}");
        }
        // Every add that succeeded did so before the deregistration
        // closed the gate, so the deregistration removed exactly those
        // routes...
        assert_eq!(removed, succeeded);
        // ...and none is left, in the RIB or the FIB.
        assert_eq!(rtm.network_count::<Ipv4>(), 0);
        assert!(rtm.lookup::<Ipv4>("10.1.2.3".parse().unwrap()).is_none());
        rtm.verify_consistency().unwrap();
    });
}
