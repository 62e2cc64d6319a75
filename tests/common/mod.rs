//! Shared fixtures for the integration tests.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod cli;

use std::net::Ipv4Addr;

use rtm::{
    Change, ClientHandle, Family, IpRouteData, Ipv4, Ipv4Prefix, ManualClock, PriorityTable,
    ProtocolId, RegisterOptions, Route, Rtm, RtmBuilder, RtmError,
};

/// The spec's P1 (better priority) and P2.
pub const P1: ProtocolId = ProtocolId(1);
pub const P2: ProtocolId = ProtocolId(2);
pub const P3: ProtocolId = ProtocolId(3);

/// The spec's default setting: clients A (P1) and B (P2) registered with
/// notifications, priority(P1) < priority(P2), a manual clock.
pub struct Fx {
    pub rtm: Rtm,
    pub clock: ManualClock,
    pub a: ClientHandle<Ipv4>,
    pub b: ClientHandle<Ipv4>,
}

pub fn priorities() -> PriorityTable {
    PriorityTable::new().with(P1, 10).with(P2, 20).with(P3, 30)
}

pub fn fx() -> Fx {
    fx_with(|b| b)
}

/// As [`fx`], with the builder adjusted by `tune` first.
pub fn fx_with(tune: impl FnOnce(RtmBuilder) -> RtmBuilder) -> Fx {
    let clock = ManualClock::new();
    let rtm = tune(Rtm::builder().clock(clock.clone()).priorities(priorities())).build();
    let a = rtm
        .register::<Ipv4>(P1, RegisterOptions::notifying())
        .unwrap();
    let b = rtm
        .register::<Ipv4>(P2, RegisterOptions::notifying())
        .unwrap();
    Fx { rtm, clock, a, b }
}

pub fn net(s: &str) -> Ipv4Prefix {
    s.parse().unwrap()
}

pub fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A valid IPv4 route.
pub fn route(network: &str, next_hop: &str, interface: u32, metric: u32) -> Route<Ipv4> {
    Route::new(
        net(network),
        addr(next_hop),
        interface,
        IpRouteData::with_metric(metric),
    )
}

/// Dequeues everything pending for `h`.
pub fn drain<F: Family>(rtm: &Rtm, h: &ClientHandle<F>) -> Vec<Change<F>> {
    let mut out = Vec::new();
    loop {
        match rtm.dequeue(h) {
            Ok(d) => out.push(d.change),
            Err(RtmError::NoMessages) => return out,
            Err(e) => panic!("dequeue failed: {e}"),
        }
    }
}

/// Every route of the family, including disabled ones, in key order.
pub fn all_routes<F: Family>(rtm: &Rtm) -> Vec<Route<F>> {
    match rtm.enumerate(&rtm::Criteria::<F>::all().include_disabled()) {
        Ok(e) => e.collect(),
        Err(RtmError::NoRoutes(_)) => Vec::new(),
        Err(e) => panic!("enumerate failed: {e}"),
    }
}
