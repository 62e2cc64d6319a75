//! Two writers on one network, on the real `Rtm`: no lost update, one best
//! route, and a subscriber's messages chain (each message's previous best
//! is the one before's current), in every interleaving of the shim's
//! locks (the network's block lock, the sequencer, the change queue).
//! What loom cannot see is listed in the crate docs.
#![cfg(loom)]

use rtm::{Change, IpRouteData, Ipv4, ProtocolId, RegisterOptions, Route, Rtm, RtmError, Ttl};
use rtm_loom_tests::{model_engine, with_stack};

fn route(next_hop: &str, metric: u32) -> Route<Ipv4> {
    Route::new(
        "10.0.0.0/8".parse().unwrap(),
        next_hop.parse().unwrap(),
        1,
        IpRouteData::with_metric(metric),
    )
}

#[test]
fn two_writers_on_one_network_lose_nothing_and_messages_chain() {
    model_engine(|| {
        let rtm = Rtm::new();
        rtm.set_priority(ProtocolId(1), 10);
        rtm.set_priority(ProtocolId(2), 20);
        let reg = |p, o| rtm.register::<Ipv4>(ProtocolId(p), o).unwrap();
        let a = reg(1, RegisterOptions::default());
        let b = reg(2, RegisterOptions::default());
        let watcher = reg(3, RegisterOptions::notifying());
        let writer = |client: rtm::ClientHandle<Ipv4>, nh: &'static str| {
            let rtm = rtm.clone();
            with_stack(move || {
                rtm.add_route(&client, &route(nh, 1), Ttl::Infinite)
                    .unwrap();
            })
        };
        let (ta, tb) = (writer(a, "192.0.2.1"), writer(b, "192.0.2.2"));
        ta.join().unwrap();
        tb.join().unwrap();
        // Both routes are there, and the best is A's (priority 10).
        let mut routes = rtm
            .enumerate(&rtm::Criteria::<Ipv4>::all())
            .unwrap()
            .map(|r| r.protocol)
            .collect::<Vec<_>>();
        routes.sort();
        assert_eq!(routes, vec![ProtocolId(1), ProtocolId(2)]);
        let best = rtm.is_route::<Ipv4>(&"10.0.0.0/8".parse().unwrap());
        assert_eq!(best.map(|r| r.protocol), Some(ProtocolId(1)));
        assert_eq!(
            rtm.lookup::<Ipv4>("10.1.2.3".parse().unwrap())
                .map(|e| e.protocol),
            Some(ProtocolId(1))
        );
        // The watcher's messages chain from nothing to A's route.
        let mut previous = None;
        loop {
            match rtm.dequeue(&watcher) {
                Ok(d) => {
                    let c: Change<Ipv4> = d.change;
                    assert_eq!(c.previous().map(|r| r.protocol), previous);
                    previous = c.current().map(|r| r.protocol);
                }
                Err(RtmError::NoMessages) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(previous, Some(ProtocolId(1)));
        rtm.verify_consistency().unwrap();
    });
}
