//! Running one operation sequence against the engine and the model.
//!
//! [`run`] drives an [`Rtm`] and a [`ModelRtm`] with the same [`Op`]s over a
//! small universe of networks (nested prefixes, a default route, host
//! routes) and compares every result, the whole table after every step,
//! forwarding lookups, ordered walks and, at the end, every queued message.
//! The differential property test and the fuzzer both use it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::{ModelHandle, ModelRtm};
use crate::change::Change;
use crate::client::{ClientHandle, RegisterOptions};
use crate::clock::ManualClock;
use crate::criteria::Criteria;
use crate::engine_family::{Family, IpFamily};
use crate::error::RtmError;
use crate::family::{Ipv4, Ipv6, Ipx};
use crate::prefix::{IpxNetwork, MacAddr, Prefix};
use crate::route::{IpRouteData, IpxRouteData, ProtocolId, Route, RouteUpdate, Ttl};
use crate::rtm::Rtm;

/// A family with a small test universe.
pub trait DiffFamily: Family {
    /// Number of networks in the universe.
    const NETS: u8;
    /// Network `i` of the universe.
    fn net(i: u8) -> Self::Network;
    /// Next hop `i` (three distinct values).
    fn nh(i: u8) -> Self::NextHop;
    /// Route data with a small metric and the valid flag.
    fn data(metric: u8, valid: bool) -> Self::Data;
    /// Compares forwarding lookups of probe addresses.
    fn check_lookups(_rtm: &Rtm, _model: &ModelRtm) -> Result<(), String> {
        Ok(())
    }
    /// Sets the ECMP weight, where the family has one.
    fn set_weight(_data: &mut Self::Data, _weight: u8) {}
}

/// 10.1.0.0/22 and 10.1.2.0/24 share a chunk of the IPv4 FIB (one /16
/// block), so a bulk writer's deferred FIB changes gather both.
const V4_NETS: [&str; 8] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/22",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "192.168.0.0/16",
    "192.168.1.0/24",
];
const V4_PROBES: [&str; 8] = [
    "10.1.2.3",
    "10.1.2.4",
    "10.1.3.0",
    "10.0.0.1",
    "10.2.0.0",
    "192.168.1.1",
    "192.168.2.1",
    "8.8.8.8",
];
const V6_NETS: [&str; 6] = [
    "::/0",
    "2001:db8::/32",
    "2001:db8::/48",
    "2001:db8:1::/48",
    "2001:db8:1::1/128",
    "fe80::/10",
];
const V6_PROBES: [&str; 6] = [
    "2001:db8::1",
    "2001:db8:1::1",
    "2001:db8:1::2",
    "2001:db8:2::",
    "fe80::1",
    "3000::",
];

fn check_ip_lookups<F: IpFamily>(
    rtm: &Rtm,
    model: &ModelRtm,
    probes: &[&str],
) -> Result<(), String> {
    for p in probes {
        let Ok(a) = p.parse::<F::Addr>() else {
            continue;
        };
        let (e, m) = (rtm.lookup::<F>(a), model.lookup::<F>(a));
        if e != m {
            return Err(format!("lookup {p}: engine {e:?}, model {m:?}"));
        }
        let (e, m) = (rtm.lookup_route::<F>(a), model.lookup_route::<F>(a));
        if e != m {
            return Err(format!("lookup_route {p}: engine {e:?}, model {m:?}"));
        }
        // ECMP: each flow's path, across the hash space.
        for hash in [0x1000_0000, 0x5555_5555, 0x9000_0000, 0xAAAA_AAAB, u32::MAX] {
            let (e, m) = (
                rtm.lookup_flow::<F>(a, hash),
                model.lookup_flow::<F>(a, hash),
            );
            if e != m {
                return Err(format!(
                    "lookup_flow {p} hash {hash:#x}: engine {e:?}, model {m:?}"
                ));
            }
        }
    }
    Ok(())
}

fn ip_data(metric: u8, valid: bool) -> IpRouteData {
    IpRouteData {
        metric: (metric % 4) as u32,
        flags: valid as u32,
        ..IpRouteData::default()
    }
}

impl DiffFamily for Ipv4 {
    const NETS: u8 = V4_NETS.len() as u8;
    fn net(i: u8) -> Prefix<Ipv4Addr> {
        V4_NETS[(i % Self::NETS) as usize]
            .parse()
            .expect("valid literal")
    }
    fn nh(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, i % 3)
    }
    fn data(metric: u8, valid: bool) -> IpRouteData {
        ip_data(metric, valid)
    }
    fn check_lookups(rtm: &Rtm, model: &ModelRtm) -> Result<(), String> {
        check_ip_lookups::<Ipv4>(rtm, model, &V4_PROBES)
    }
    fn set_weight(data: &mut IpRouteData, weight: u8) {
        data.weight = weight as u16;
    }
}

impl DiffFamily for Ipv6 {
    const NETS: u8 = V6_NETS.len() as u8;
    fn net(i: u8) -> Prefix<Ipv6Addr> {
        V6_NETS[(i % Self::NETS) as usize]
            .parse()
            .expect("valid literal")
    }
    fn nh(i: u8) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, (i % 3) as u16)
    }
    fn data(metric: u8, valid: bool) -> IpRouteData {
        ip_data(metric, valid)
    }
    fn check_lookups(rtm: &Rtm, model: &ModelRtm) -> Result<(), String> {
        check_ip_lookups::<Ipv6>(rtm, model, &V6_PROBES)
    }
    fn set_weight(data: &mut IpRouteData, weight: u8) {
        data.weight = weight as u16;
    }
}

impl DiffFamily for Ipx {
    const NETS: u8 = 4;
    fn net(i: u8) -> IpxNetwork {
        IpxNetwork((i % Self::NETS) as u32)
    }
    fn nh(i: u8) -> MacAddr {
        MacAddr([0, 0, 0, 0, 0, i % 3])
    }
    fn data(metric: u8, valid: bool) -> IpxRouteData {
        IpxRouteData {
            flags: valid as u32,
            ticks: (metric % 3) as u16,
            hops: (metric / 3 % 2) as u16,
        }
    }
}

/// Selection criteria over the test universe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Crit {
    /// Network index.
    pub network: Option<u8>,
    /// Interface (taken mod 2).
    pub interface: Option<u8>,
    /// Protocol (taken mod 3).
    pub protocol: Option<u8>,
    /// Best routes only.
    pub best_only: bool,
    /// Include disabled routes.
    pub include_disabled: bool,
    /// Only stale (`Some(true)`) or only fresh (`Some(false)`) routes.
    pub stale: Option<bool>,
}

impl Crit {
    /// The criteria in family `F`.
    pub fn to<F: DiffFamily>(self) -> Criteria<F> {
        Criteria {
            network: self.network.map(F::net),
            interface: self.interface.map(|i| (i % 2) as u32),
            protocol: self.protocol.map(|p| ProtocolId((p % 3) as u32)),
            best_only: self.best_only,
            include_disabled: self.include_disabled,
            stale: self.stale,
        }
    }
}

/// One operation; protocol numbers are taken mod 3, TTL choices mod 4.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[allow(missing_docs)]
pub enum Op {
    Register {
        proto: u8,
        single: bool,
        notify: bool,
        /// Coalescing change queue (with `notify`).
        coalesce: bool,
    },
    Deregister {
        proto: u8,
    },
    Add {
        proto: u8,
        net: u8,
        nh: u8,
        iface: u8,
        metric: u8,
        valid: bool,
        ttl: u8,
        psd: u8,
    },
    Delete {
        proto: u8,
        net: u8,
        nh: u8,
        iface: u8,
    },
    BlockDelete {
        proto: u8,
        crit: Crit,
    },
    SetEnable {
        proto: u8,
        crit: Crit,
        enable: bool,
    },
    Convert {
        proto: u8,
        crit: Crit,
    },
    Dequeue {
        proto: u8,
    },
    Advance {
        secs: u8,
    },
    Sweep,
    SetPriority {
        proto: u8,
        prio: u8,
    },
    Walk {
        crit: Crit,
    },
    /// Graceful deregistration with a hold (choices as [`hold_of`]).
    DeregisterGraceful {
        proto: u8,
        hold: u8,
    },
    /// `mark_stale`, with a hold or none.
    MarkStale {
        proto: u8,
        hold: Option<u8>,
    },
    /// `sweep_stale` (end-of-RIB).
    SweepStale {
        proto: u8,
    },
    /// Whether the protocol's stale routes yield to fresh ones.
    SetStaleYielding {
        proto: u8,
        yields: bool,
    },
    /// Whether the protocol's equal-cost routes all forward (ECMP).
    SetMultipath {
        proto: u8,
        on: bool,
    },
    /// `update_routes` on the engine, the same adds and deletes one by one
    /// on the model.
    Batch {
        proto: u8,
        updates: Vec<BatchUpdate>,
    },
}

/// One update of an [`Op::Batch`]; fields as in [`Op::Add`] / [`Op::Delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[allow(missing_docs)]
pub enum BatchUpdate {
    Add {
        net: u8,
        nh: u8,
        iface: u8,
        metric: u8,
        valid: bool,
        ttl: u8,
        psd: u8,
    },
    Delete {
        net: u8,
        nh: u8,
        iface: u8,
    },
}

/// The route of an add in the test universe.
fn add_route_of<F: DiffFamily>(
    net: u8,
    nh: u8,
    iface: u8,
    metric: u8,
    valid: bool,
    psd: u8,
) -> Route<F> {
    let mut r = Route::<F>::new(
        F::net(net),
        F::nh(nh),
        (iface % 2) as u32,
        F::data(metric, valid),
    );
    r.protocol_data = [psd as u32; 4];
    F::set_weight(&mut r.data, 1 + psd % 3);
    r
}

/// The route naming a delete in the test universe.
fn delete_route_of<F: DiffFamily>(net: u8, nh: u8, iface: u8) -> Route<F> {
    Route::<F>::new(F::net(net), F::nh(nh), (iface % 2) as u32, F::data(0, true))
}

/// A TTL choice.
fn ttl_of(ttl: u8) -> Ttl {
    [
        Ttl::Infinite,
        Ttl::Seconds(0),
        Ttl::Seconds(5),
        Ttl::Seconds(20),
    ][(ttl % 4) as usize]
}

/// A hold choice, in seconds: with [`Op::Advance`]'s steps, some holds end
/// before the protocol registers again, some after.
pub fn hold_of(hold: u8) -> u64 {
    [0, 5, 20, 60][(hold % 4) as usize]
}

impl BatchUpdate {
    fn to<F: DiffFamily>(self) -> RouteUpdate<F> {
        match self {
            BatchUpdate::Add {
                net,
                nh,
                iface,
                metric,
                valid,
                ttl,
                psd,
            } => RouteUpdate::Add {
                route: add_route_of::<F>(net, nh, iface, metric, valid, psd),
                ttl: ttl_of(ttl),
            },
            BatchUpdate::Delete { net, nh, iface } => {
                RouteUpdate::Delete(delete_route_of::<F>(net, nh, iface))
            }
        }
    }
}

/// Runs a batch on the engine and the same updates one by one on the model.
fn batch<F: DiffFamily>(
    rtm: &Rtm,
    model: &mut ModelRtm,
    eh: &ClientHandle<F>,
    mh: &ModelHandle<F>,
    updates: &[BatchUpdate],
) -> Result<(), String> {
    let updates: Vec<RouteUpdate<F>> = updates.iter().map(|u| u.to::<F>()).collect();
    let mut engine = Vec::new();
    let whole = rtm.update_routes(eh, &updates, |r| engine.push(r));
    if let Err(e) = whole {
        // Only a deregistered client refuses a batch of valid updates.
        let m = model.delete_route(mh, &delete_route_of::<F>(0, 0, 0));
        return same("update_routes", &Err::<(), _>(e), &m.map(|_| ()));
    }
    if engine.len() != updates.len() {
        return Err(format!(
            "update_routes reported {} outcomes for {} updates",
            engine.len(),
            updates.len()
        ));
    }
    for (i, (u, e)) in updates.iter().zip(&engine).enumerate() {
        let m = match u {
            RouteUpdate::Add { route, ttl } => model.add_route(mh, route, *ttl),
            RouteUpdate::Delete(route) => model.delete_route(mh, route),
        };
        same(&format!("update {i} of the batch"), e, &m)?;
    }
    Ok(())
}

/// Results agree by value when Ok and by variant and code when Err (the
/// messages are free text).
pub fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    a: &Result<T, RtmError>,
    b: &Result<T, RtmError>,
) -> Result<(), String> {
    let ok = match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => {
            std::mem::discriminant(x) == std::mem::discriminant(y) && x.code() == y.code()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: engine {a:?}, model {b:?}"))
    }
}

fn walk<F: DiffFamily>(rtm: &Rtm, model: &ModelRtm, c: &Criteria<F>) -> Result<(), String> {
    let mut e = rtm.get_first(c);
    same("get_first", &e, &model.get_first(c))?;
    let mut steps = 0;
    while let Ok(r) = e {
        e = rtm.get_next(c, &r);
        same("get_next", &e, &model.get_next(c, &r))?;
        steps += 1;
        if steps > 10_000 {
            return Err("get_next walk does not end".into());
        }
    }
    let engine: Result<Vec<Route<F>>, RtmError> = rtm.enumerate(c).map(|e| e.collect());
    same(&format!("enumerate {c}"), &engine, &model.enumerate(c))
}

/// Compares the observable state; with `walk`, also walks the FIB's
/// lookup path (`Rtm::verify_consistency`), which costs a pass over the
/// address space, so `run` does it every few steps and at the end.
fn check_state<F: DiffFamily>(rtm: &Rtm, model: &ModelRtm, walk_fib: bool) -> Result<(), String> {
    for i in 0..F::NETS {
        let n = F::net(i);
        let (e, m) = (rtm.is_route::<F>(&n), model.is_route::<F>(&n));
        if e != m {
            return Err(format!("is_route {n}: engine {e:?}, model {m:?}"));
        }
        let (e, m) = (rtm.best_paths::<F>(&n), model.best_paths::<F>(&n));
        if e != m {
            return Err(format!("best_paths {n}: engine {e:?}, model {m:?}"));
        }
    }
    if rtm.network_count::<F>() != model.network_count::<F>() {
        return Err(format!(
            "network count: engine {}, model {}",
            rtm.network_count::<F>(),
            model.network_count::<F>()
        ));
    }
    walk::<F>(rtm, model, &Criteria::all().include_disabled())?;
    walk::<F>(rtm, model, &Criteria::all().best_only())?;
    walk::<F>(rtm, model, &Criteria::all().include_disabled().stale_only())?;
    F::check_lookups(rtm, model)?;
    if walk_fib {
        rtm.verify_consistency()
    } else {
        rtm.verify_invariants()
    }
}

/// Runs `ops` in family `F` on a fresh engine and model and compares
/// everything; the error says what differed first.
pub fn run<F: DiffFamily>(ops: &[Op]) -> Result<(), String> {
    let clock = ManualClock::new();
    // One writer stripe and a tiny destination index (a 1-bit root,
    // leaves of two networks): the universe's few networks then share
    // blocks and locks, so leaf copies, holes, splits and merges all happen
    // (with the engine's /16 root and 8 KiB leaves they would each sit
    // alone in a leaf of one).
    let rtm = Rtm::builder()
        .clock(clock.clone())
        .writer_stripes(std::num::NonZeroUsize::MIN)
        .small_blocks(1, 2)
        .build();
    let mut model = ModelRtm::starting_at(rtm.now());
    let mut handles: BTreeMap<u8, (ClientHandle<F>, ModelHandle<F>)> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let at = |e: String| format!("step {step} {op:?}: {e}");
        match *op {
            Op::Register {
                proto,
                single,
                notify,
                coalesce,
            } => {
                let p = ProtocolId((proto % 3) as u32);
                let o = RegisterOptions {
                    single_route: single,
                    notify,
                    coalesce,
                };
                let (e, m) = (rtm.register::<F>(p, o), model.register::<F>(p, o));
                same(
                    "register",
                    &e.as_ref().map(|_| ()).map_err(Clone::clone),
                    &m.as_ref().map(|_| ()).map_err(Clone::clone),
                )
                .map_err(at)?;
                if let (Ok(e), Ok(m)) = (e, m) {
                    handles.insert(proto % 3, (e, m));
                }
            }
            Op::SetPriority { proto, prio } => {
                rtm.set_priority(ProtocolId((proto % 3) as u32), prio as u32);
                model.set_priority(ProtocolId((proto % 3) as u32), prio as u32);
            }
            Op::Advance { secs } => {
                clock.advance_secs(secs as u64);
                model.advance_secs(secs as u64);
            }
            Op::Sweep => {
                let (e, m) = (rtm.sweep_expired(), model.sweep_expired());
                if e != m {
                    return Err(at(format!("sweep removed {e}, model {m}")));
                }
            }
            Op::Walk { crit } => walk::<F>(&rtm, &model, &crit.to()).map_err(at)?,
            Op::SetStaleYielding { proto, yields } => {
                rtm.set_stale_yielding(ProtocolId((proto % 3) as u32), yields);
                model.set_stale_yielding(ProtocolId((proto % 3) as u32), yields);
            }
            Op::SetMultipath { proto, on } => {
                rtm.set_multipath(ProtocolId((proto % 3) as u32), on);
                model.set_multipath(ProtocolId((proto % 3) as u32), on);
            }
            Op::Deregister { proto }
            | Op::Add { proto, .. }
            | Op::Delete { proto, .. }
            | Op::BlockDelete { proto, .. }
            | Op::SetEnable { proto, .. }
            | Op::Convert { proto, .. }
            | Op::Batch { proto, .. }
            | Op::DeregisterGraceful { proto, .. }
            | Op::MarkStale { proto, .. }
            | Op::SweepStale { proto }
            | Op::Dequeue { proto } => {
                // Before any registration of the protocol there is no handle.
                let Some((eh, mh)) = handles.get(&(proto % 3)) else {
                    continue;
                };
                let r = match *op {
                    Op::Deregister { .. } => {
                        same("deregister", &rtm.deregister(eh), &model.deregister(mh))
                    }
                    Op::Add {
                        net,
                        nh,
                        iface,
                        metric,
                        valid,
                        ttl,
                        psd,
                        ..
                    } => {
                        let r = add_route_of::<F>(net, nh, iface, metric, valid, psd);
                        let ttl = ttl_of(ttl);
                        same(
                            "add",
                            &rtm.add_route(eh, &r, ttl),
                            &model.add_route(mh, &r, ttl),
                        )
                    }
                    Op::Delete { net, nh, iface, .. } => {
                        let r = delete_route_of::<F>(net, nh, iface);
                        same(
                            "delete",
                            &rtm.delete_route(eh, &r),
                            &model.delete_route(mh, &r),
                        )
                    }
                    Op::Batch { ref updates, .. } => batch::<F>(&rtm, &mut model, eh, mh, updates),
                    Op::DeregisterGraceful { hold, .. } => same(
                        "deregister_graceful",
                        &rtm.deregister_graceful(eh, Duration::from_secs(hold_of(hold))),
                        &model.deregister_graceful(mh, hold_of(hold)),
                    ),
                    Op::MarkStale { hold, .. } => same(
                        "mark_stale",
                        &rtm.mark_stale(eh, hold.map(|h| Duration::from_secs(hold_of(h)))),
                        &model.mark_stale(mh, hold.map(hold_of)),
                    ),
                    Op::SweepStale { .. } => {
                        same("sweep_stale", &rtm.sweep_stale(eh), &model.sweep_stale(mh))
                    }
                    Op::BlockDelete { crit, .. } => same(
                        "block_delete",
                        &rtm.block_delete(eh, &crit.to()),
                        &model.block_delete(mh, &crit.to()),
                    ),
                    Op::SetEnable { crit, enable, .. } => same(
                        "block_set_enable",
                        &rtm.block_set_enable(eh, &crit.to(), enable),
                        &model.block_set_enable(mh, &crit.to(), enable),
                    ),
                    Op::Convert { crit, .. } => same(
                        "block_convert_to_static",
                        &rtm.block_convert_to_static(eh, &crit.to()),
                        &model.block_convert_to_static(mh, &crit.to()),
                    ),
                    _ => same("dequeue", &rtm.dequeue(eh), &model.dequeue(mh)),
                };
                r.map_err(at)?;
            }
        }
        let walk_fib = step % 8 == 7 || step + 1 == ops.len();
        check_state::<F>(&rtm, &model, walk_fib).map_err(at)?;
    }
    // Every live queue's remaining messages agree one by one.
    for (eh, mh) in handles.values() {
        let mut engine: Vec<Change<F>> = Vec::new();
        while let Ok(d) = rtm.dequeue(eh) {
            engine.push(d.change);
        }
        let model_msgs = model.pending(mh).unwrap_or_default();
        if engine != model_msgs {
            return Err(format!(
                "final queue of protocol {}: engine {engine:?}, model {model_msgs:?}",
                eh.protocol()
            ));
        }
    }
    Ok(())
}
