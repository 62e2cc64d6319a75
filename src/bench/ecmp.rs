//! The ECMP steps of `rtm bench churn`, each on fresh tables of the same
//! prefixes, loaded through the RIB (`update_routes` batches, as a
//! protocol's initial table):
//!
//! - **E1** memory: the FIB of a single-path table (each prefix via one of
//!   16 peers) against the FIB of the same table where 30% of the prefixes
//!   have 2-4 equal-cost paths over random subsets of those peers (up to
//!   2,500 distinct sets: the adversarial case for interning, where a real
//!   router's sets follow its few neighbour groups);
//! - **E2** prefix-independent convergence: every prefix over one group of
//!   two next hops; one next hop goes down (`LpmFib::next_hop_down`),
//!   timed until the call returns, after which a check of every prefix
//!   under many flow hashes must find no lookup that takes it (any would
//!   fail the bench); then the protocol withdraws its routes through that
//!   next hop, as it would, prefix by prefix: the time a FIB without
//!   shared groups needs before every prefix avoids the next hop.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::workload::update_in_batches;
use crate::client::{ClientHandle, RegisterOptions};
use crate::family::Ipv4;
use crate::prefix::Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, RouteUpdate, Ttl};
use crate::rtm::Rtm;
use crate::synth::SplitMix64;

/// What the ECMP steps measured.
#[derive(Debug, Clone, Default)]
pub struct EcmpFigures {
    /// E1: FIB bytes of the single-path table.
    pub single_fib_bytes: usize,
    /// E1: FIB bytes with 30% of prefixes on 2-4 paths.
    pub ecmp_fib_bytes: usize,
    /// E1: prefixes with more than one path.
    pub multipath_prefixes: usize,
    /// E1: distinct groups the ECMP table interned.
    pub groups: usize,
    /// E2: prefixes over the one group.
    pub pic_prefixes: usize,
    /// E2: seconds `next_hop_down` took.
    pub pic_secs: f64,
    /// E2: lookups checked after it returned (none took the down next hop).
    pub pic_checked: usize,
    /// E2: seconds the protocol's withdrawal of the routes through the
    /// down next hop took (the prefix-by-prefix way).
    pub withdraw_secs: f64,
}

impl EcmpFigures {
    /// E1's ratio: ECMP FIB bytes over single-path FIB bytes.
    pub fn memory_ratio(&self) -> f64 {
        self.ecmp_fib_bytes as f64 / self.single_fib_bytes.max(1) as f64
    }
}

const PEERS: u32 = 16;
const PROTOCOL: ProtocolId = ProtocolId(14);

fn peer(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i as u8)
}

fn path(p: Prefix<Ipv4Addr>, next_hop: Ipv4Addr) -> RouteUpdate<Ipv4> {
    RouteUpdate::Add {
        route: Route::new(p, next_hop, 1, IpRouteData::with_metric(10)),
        ttl: Ttl::Infinite,
    }
}

/// A fresh table with a multipath client loaded with `updates`.
fn load(
    updates: impl IntoIterator<Item = RouteUpdate<Ipv4>>,
) -> Result<(Rtm, ClientHandle<Ipv4>), String> {
    let rtm = Rtm::new();
    rtm.set_multipath(PROTOCOL, true);
    let c = rtm
        .register::<Ipv4>(PROTOCOL, RegisterOptions::default())
        .map_err(|e| e.to_string())?;
    update_in_batches(&rtm, &c, updates, |_, r| r.map(drop)).map_err(|e| e.to_string())?;
    Ok((rtm, c))
}

/// Runs E1 and E2 over `table`.
pub fn run(table: &[Prefix<Ipv4Addr>], seed: u64) -> Result<EcmpFigures, String> {
    let mut f = EcmpFigures::default();
    // E1. Each prefix's first path is the same in both tables.
    let first = |i: usize| {
        let mut r = SplitMix64::new(seed ^ i as u64);
        r.below(PEERS as u64) as u32
    };
    let (single, _c) = load(
        table
            .iter()
            .enumerate()
            .map(|(i, p)| path(*p, peer(first(i)))),
    )?;
    f.single_fib_bytes = single.fib::<Ipv4>().memory().total();
    drop(single);
    let mut updates = Vec::with_capacity(table.len() * 3 / 2);
    let mut rng = SplitMix64::new(seed.wrapping_add(0xEC));
    for (i, p) in table.iter().enumerate() {
        let lead = first(i);
        updates.push(path(*p, peer(lead)));
        if rng.below(10) < 3 {
            f.multipath_prefixes += 1;
            let more = 1 + rng.below(3) as u32;
            let mut taken = vec![lead];
            while taken.len() <= more as usize {
                let q = rng.below(PEERS as u64) as u32;
                if !taken.contains(&q) {
                    taken.push(q);
                    updates.push(path(*p, peer(q)));
                }
            }
        }
    }
    let (ecmp, _c) = load(updates)?;
    let fib = ecmp.fib::<Ipv4>();
    f.ecmp_fib_bytes = fib.memory().total();
    f.groups = fib.groups();
    if fib.len() != table.len() {
        return Err(format!(
            "E1: the ECMP FIB holds {} prefixes of {}",
            fib.len(),
            table.len()
        ));
    }
    drop(ecmp);

    // E2.
    let (a, b) = (peer(0), peer(1));
    let (rtm, client) = load(table.iter().flat_map(|p| [path(*p, a), path(*p, b)]))?;
    let fib = rtm.fib::<Ipv4>();
    f.pic_prefixes = fib.len();
    if fib.groups() != 1 {
        return Err(format!("E2: {} groups, expected one", fib.groups()));
    }
    let t = Instant::now();
    let rewritten = fib.next_hop_down(b, 1);
    f.pic_secs = t.elapsed().as_secs_f64();
    if rewritten != 1 {
        return Err(format!("E2: next_hop_down rewrote {rewritten} groups"));
    }
    // Every prefix, eight flows each: none may take the down next hop.
    let reader = fib.reader();
    let mut rng = SplitMix64::new(seed ^ 0x91C);
    for p in table {
        for _ in 0..8 {
            let hash = rng.next_u64() as u32;
            match reader.lookup_flow(p.addr(), hash) {
                Some(e) if e.next_hop != b => f.pic_checked += 1,
                other => {
                    return Err(format!(
                        "E2: after next_hop_down, {} hash {hash:#x} answers {other:?}",
                        p.addr()
                    ));
                }
            }
        }
    }
    drop(reader);
    let t = Instant::now();
    let withdrawals = table
        .iter()
        .map(|p| RouteUpdate::Delete(Route::new(*p, b, 1, IpRouteData::with_metric(10))));
    update_in_batches(&rtm, &client, withdrawals, |_, r| r.map(drop)).map_err(|e| e.to_string())?;
    f.withdraw_secs = t.elapsed().as_secs_f64();
    Ok(f)
}
