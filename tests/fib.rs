//! The FIB against brute force: random insert/remove sequences over nested
//! prefixes (default routes, host routes, prefixes sharing a top-level
//! slot), checked at random and boundary addresses through every lookup
//! path (per call, batched, a registered reader, next-hop ids scalar and
//! batched, which must also name one tuple per id); and a reader that must
//! never lose an untouched route while a writer churns its subtree.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use rtm::{
    ClientHandle, IpAddress, IpFamily, IpRouteData, Ipv4, Ipv6, LpmFib, Prefix, ProtocolId,
    RegisterOptions, Route, RouteUpdate, Rtm, Ttl,
};

/// Brute-force LPM over a map of prefixes to interfaces.
fn brute<A: IpAddress>(m: &BTreeMap<Prefix<A>, u32>, a: A) -> Option<(Prefix<A>, u32)> {
    m.iter()
        .filter(|(p, _)| p.contains(a))
        .max_by_key(|(p, _)| p.len())
        .map(|(p, v)| (*p, *v))
}

/// Addresses worth probing: each prefix's first and last address and their
/// neighbours, plus the given random ones.
fn probes<A: IpAddress>(m: &BTreeMap<Prefix<A>, u32>, random: &[u128]) -> Vec<A> {
    let width = A::BITS as u32;
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let mut v: Vec<A> = random.iter().map(|r| A::from_bits(r & all)).collect();
    for p in m.keys() {
        let first = p.addr().to_bits();
        let span = all.checked_shr(p.len() as u32).unwrap_or(0);
        let last = first | span;
        for x in [
            first,
            last,
            first.wrapping_sub(1) & all,
            last.wrapping_add(1) & all,
        ] {
            v.push(A::from_bits(x));
        }
    }
    v
}

fn check<F: IpFamily>(
    fib: &LpmFib<F>,
    model: &BTreeMap<Prefix<F::Addr>, u32>,
    random: &[u128],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(fib.len(), model.len());
    let addrs = probes(model, random);
    let mut batch = vec![None; addrs.len()];
    fib.lookup_batch(&addrs, &mut batch);
    let reader = fib.reader();
    let mut ids = vec![None; addrs.len()];
    reader.lookup_batch_ids(&addrs, &mut ids);
    // One id per (next hop, interface, protocol) tuple, and back.
    let mut tuple_of = BTreeMap::new();
    let mut id_of = BTreeMap::new();
    for (a, id) in addrs.iter().zip(&ids) {
        let want = brute(model, *a);
        let scalar = reader.lookup_id(*a);
        for (path, id) in [("lookup_id", scalar), ("lookup_batch_ids", *id)] {
            let got = id.map(|id| {
                let prefix = Prefix::truncating(*a, id.prefix_len());
                (prefix, id.resolve().interface)
            });
            prop_assert_eq!(got, want, "{} {}", path, a);
        }
        if let (Some(id), Some(e)) = (scalar, reader.lookup(*a)) {
            let tuple = (e.next_hop.to_bits(), e.interface, e.protocol);
            prop_assert_eq!(*tuple_of.entry(id.raw()).or_insert(tuple), tuple);
            prop_assert_eq!(*id_of.entry(tuple).or_insert(id.raw()), id.raw());
        }
    }
    for (a, b) in addrs.iter().zip(&batch) {
        let want = brute(model, *a);
        let got = fib.lookup(*a).map(|e| (e.prefix, e.interface));
        prop_assert_eq!(got, want, "lookup {}", a);
        prop_assert_eq!(
            b.map(|e| (e.prefix, e.interface)),
            want,
            "lookup_batch {}",
            a
        );
        prop_assert_eq!(
            reader.lookup(*a).map(|e| (e.prefix, e.interface)),
            want,
            "reader {}",
            a
        );
    }
    for (p, v) in model {
        prop_assert_eq!(fib.get(p).map(|e| e.interface), Some(*v), "get {}", p);
    }
    Ok(())
}

/// A prefix from a small pool of bases, so prefixes nest and share slots;
/// half of them flip a few bits at fixed depths of the base, so they share
/// long stems and diverge deep (exercising path compression's splits and
/// merges), the other half perturb the low bits at random.
fn prefix<A: IpAddress>(base: u8, noise: u128, len: u8) -> Prefix<A> {
    let width = A::BITS as u32;
    let bases: [u128; 4] = [0x0a01_0000 << 96, 0x0a01_c000 << 96, 0xc0a8_0000 << 96, 0];
    let b = bases[base as usize % 4] >> (128 - width);
    let n = if noise & 1 == 0 {
        // Flip chosen bits at depths spread over the address.
        let depths = [9u32, 17, 20, 23, 30, 31, 47, 64, 100, 127];
        depths
            .iter()
            .enumerate()
            .filter(|(i, d)| noise >> (i + 1) & 1 == 1 && **d < width)
            .fold(0u128, |acc, (_, d)| acc | 1u128 << (width - 1 - d))
    } else {
        (noise >> (128 - width)) >> 8
    };
    Prefix::truncating(A::from_bits(b ^ n), len.min(A::BITS))
}

fn run<F: IpFamily>(
    ops: &[(bool, u8, u128, u8, u8)],
    random: &[u128],
) -> Result<(), TestCaseError> {
    let fib = LpmFib::<F>::new();
    let mut model = BTreeMap::new();
    for (i, &(insert, base, noise, len, nh)) in ops.iter().enumerate() {
        let p = prefix::<F::Addr>(base, noise, len);
        if insert {
            let iface = 1 + (nh % 5) as u32;
            fib.insert(
                p,
                F::Addr::from_bits(iface as u128),
                iface,
                ProtocolId(nh as u32 % 3),
            );
            model.insert(p, iface);
        } else {
            fib.remove(p);
            model.remove(&p);
        }
        if i % 8 == 7 || i + 1 == ops.len() {
            check(&fib, &model, random)?;
        }
    }
    // Tear everything down: the FIB ends empty.
    for p in model.keys() {
        fib.remove(*p);
    }
    prop_assert!(fib.is_empty());
    prop_assert_eq!(fib.lookup(F::Addr::from_bits(0)), None);
    prop_assert_eq!(fib.next_hops(), 0);
    Ok(())
}

fn op(max_len: u8) -> impl Strategy<Value = (bool, u8, u128, u8, u8)> {
    (
        proptest::bool::weighted(0.7),
        0u8..4,
        any::<u128>(),
        0..=max_len,
        any::<u8>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Would catch any lookup path (per call, batch, reader, next-hop ids)
    /// answering another prefix or next hop than brute force, a removal
    /// that leaks ids, or an id naming two tuples (planted: `NextHopId::raw`
    /// shifting by 7 fails at the first probe of `lookup_id`).
    #[test]
    fn ipv4_fib_equals_brute_force(ops in proptest::collection::vec(op(32), 1..60), random in proptest::collection::vec(any::<u128>(), 32)) {
        run::<Ipv4>(&ops, &random)?;
    }

    /// As the IPv4 test, on the IPv6 core.
    #[test]
    fn ipv6_fib_equals_brute_force(ops in proptest::collection::vec(op(128), 1..60), random in proptest::collection::vec(any::<u128>(), 32)) {
        run::<Ipv6>(&ops, &random)?;
    }
}

#[test]
fn default_and_host_routes_at_the_edges() {
    let fib = LpmFib::<Ipv4>::new();
    let nh = Ipv4Addr::new(192, 0, 2, 1);
    fib.insert("0.0.0.0/0".parse().unwrap(), nh, 1, ProtocolId(1));
    fib.insert("255.255.255.255/32".parse().unwrap(), nh, 2, ProtocolId(1));
    fib.insert("0.0.0.0/32".parse().unwrap(), nh, 3, ProtocolId(1));
    let at = |s: &str| fib.lookup(s.parse().unwrap()).unwrap().interface;
    assert_eq!(
        (
            at("0.0.0.0"),
            at("0.0.0.1"),
            at("255.255.255.254"),
            at("255.255.255.255")
        ),
        (3, 1, 1, 2)
    );
    let fib6 = LpmFib::<Ipv6>::new();
    let nh6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    fib6.insert("::/0".parse().unwrap(), nh6, 1, ProtocolId(1));
    fib6.insert(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
            .parse()
            .unwrap(),
        nh6,
        2,
        ProtocolId(1),
    );
    let at6 = |s: &str| fib6.lookup(s.parse().unwrap()).unwrap().interface;
    assert_eq!(at6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 2);
    assert_eq!(at6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), 1);
}

/// A reader looks up `probes`, covered throughout by the untouched `keep`,
/// through `lookup` and `lookup_batch` while a writer churns for 1.5 s:
/// random prefixes from `churned` (never covering a probe) inserted on one
/// of two next hops (re-inserting a present prefix changes its next hop,
/// which the cores store in place) or removed, and `cover`, shorter than
/// `keep`, added and withdrawn every 32 writes. Every answer must be
/// exactly `keep`.
fn never_flickers<F: IpFamily>(
    keep: Prefix<F::Addr>,
    cover: Prefix<F::Addr>,
    probes: Vec<F::Addr>,
    nh: F::Addr,
    mut churned: impl FnMut(&mut rtm::synth::SplitMix64) -> Prefix<F::Addr>,
) {
    let fib = Arc::new(LpmFib::<F>::new());
    fib.insert(keep, nh, 7, ProtocolId(1));
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (fib, stop, lookups) = (fib.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            let mut out = vec![None; probes.len()];
            while !stop.load(Ordering::Relaxed) {
                for p in &probes {
                    let e = fib.lookup(*p).expect("an untouched route vanished");
                    assert_eq!((e.prefix, e.interface), (keep, 7));
                }
                fib.lookup_batch(&probes, &mut out);
                assert!(out.iter().all(|e| e.is_some_and(|e| e.prefix == keep)));
                lookups.fetch_add(2 * probes.len(), Ordering::Relaxed);
            }
        })
    };
    let mut rng = rtm::synth::SplitMix64::new(3);
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        let p = churned(&mut rng);
        if rng.below(2) == 0 {
            fib.insert(p, nh, 9 + rng.below(2) as u32, ProtocolId(2));
        } else {
            fib.remove(p);
        }
        if n % 64 == 0 {
            fib.insert(cover, nh, 8, ProtocolId(2));
        } else if n % 64 == 32 {
            fib.remove(cover);
        }
        n += 1;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(
        lookups.load(Ordering::Relaxed) > 10_000,
        "the reader barely ran"
    );
    assert!(n > 1000, "the writer barely ran");
}

/// A prefix of /19../32 in 10.1.192.0/19 or /21../32 in 10.1.240.0/21:
/// block 10.1's chunk changes, but never over 10.1.255.x.
fn churn_beside_10_1_255(rng: &mut rtm::synth::SplitMix64) -> Prefix<Ipv4Addr> {
    let (base, span, min_len) = if rng.below(2) == 0 {
        (0x0a01_f000u32, 0x07ff, 21)
    } else {
        (0x0a01_c000u32, 0x1fff, 19)
    };
    let len = min_len + rng.below(33 - min_len as u64) as u8;
    Prefix::truncating(Ipv4Addr::from(base | (rng.next_u64() as u32 & span)), len)
}

/// IPv4: probes 10.1.255.x under an untouched /16; churn never covering
/// them inside 10.1.240.0/21 and 10.1.192.0/19 (the probes' /16 block: its
/// chunk is patched and replaced under them, and their slots hold the
/// block's inherited match, resolved into their leaves); a covering /8,
/// whose add and withdrawal go through the short-prefix path over that
/// block.
#[test]
fn untouched_route_never_flickers_under_churn() {
    never_flickers::<Ipv4>(
        "10.1.0.0/16".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
        (0..=255).map(|i| Ipv4Addr::new(10, 1, 255, i)).collect(),
        Ipv4Addr::new(192, 0, 2, 7),
        churn_beside_10_1_255,
    );
}

/// IPv4: probes 10.1.255.x under an untouched /24, an own leaf of block
/// 10.1's chunk, which has no /16; the same churn as above; a covering /8
/// whose add and withdrawal change the block's inherited match, so each
/// rewrites, in place, every leaf of the chunk holding the old match while
/// the reader looks up. Catches a rewrite that touches an own leaf (it
/// would answer the /8 or nothing for a moment).
#[test]
fn untouched_route_never_flickers_under_inherited_rewrites() {
    never_flickers::<Ipv4>(
        "10.1.255.0/24".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
        (0..=255).map(|i| Ipv4Addr::new(10, 1, 255, i)).collect(),
        Ipv4Addr::new(192, 0, 2, 7),
        churn_beside_10_1_255,
    );
}

/// IPv4 past /24: probes 10.1.255.16-31 under an untouched /28, so their
/// /24 slot holds a sub-chunk in the IPv4 core; churn of /25../32 in
/// 10.1.255.128/25 (the same sub-chunk, rebuilt and swapped in place) and
/// of /21../24 in 10.1.240.0/21 (the block's chunk, patched around the
/// sub-chunk); a covering /24 whose add and withdrawal change the
/// sub-chunk's inherited match, rewritten into its leaves in place.
/// Catches a sub-chunk swap or a rewrite that leaves a reader a moment
/// without the /28.
#[test]
fn untouched_long_route_never_flickers_under_sub_chunk_churn() {
    never_flickers::<Ipv4>(
        "10.1.255.16/28".parse().unwrap(),
        "10.1.255.0/24".parse().unwrap(),
        (16..32).map(|i| Ipv4Addr::new(10, 1, 255, i)).collect(),
        Ipv4Addr::new(192, 0, 2, 7),
        |rng| {
            let (base, span, min_len) = if rng.below(2) == 0 {
                (0x0a01_ff80u32, 0x7f, 25)
            } else {
                (0x0a01_f000u32, 0x07ff, 21)
            };
            let len = min_len + rng.below(if min_len == 25 { 8 } else { 4 }) as u8;
            Prefix::truncating(Ipv4Addr::from(base | (rng.next_u64() as u32 & span)), len)
        },
    );
}

/// IPv6: probes in 2001:db8:ffff::/48 under an untouched /33,
/// 2001:db8:8000::/33; churn of /33../64 inside the other half,
/// 2001:db8::/33 (the same top-level slot and nodes: the /33's run and the
/// churned /34../36s' runs live in one node and can share a leaf word),
/// from a pool small enough that prefixes come back and change next hop in
/// place (planted: an in-place store that writes the leaf word as 0 for a
/// few dozen cycles before its new value fails here); a covering /16.
#[test]
fn untouched_ipv6_route_never_flickers_under_churn() {
    never_flickers::<Ipv6>(
        "2001:db8:8000::/33".parse().unwrap(),
        "2001::/16".parse().unwrap(),
        (0..=255u128)
            .map(|i| Ipv6Addr::from(0x2001_0db8_ffff_u128 << 80 | i << 40 | i))
            .collect(),
        "fe80::7".parse().unwrap(),
        |rng| {
            let len = 33 + rng.below(32) as u8;
            // Bits 33..41 and 62..63 vary; bit 32 stays clear.
            let bits = 0x2001_0db8_u128 << 96
                | (rng.below(1 << 9) as u128) << 86
                | (rng.below(4) as u128) << 64;
            Prefix::truncating(Ipv6Addr::from(bits), len)
        },
    );
}

/// A table with one client (protocol 9) in IPv4 and in IPv6.
fn table_with_both_families() -> (Rtm, ClientHandle<Ipv4>, ClientHandle<Ipv6>) {
    let rtm = Rtm::new();
    let c = rtm
        .register::<Ipv4>(ProtocolId(9), RegisterOptions::default())
        .unwrap();
    let c6 = rtm
        .register::<Ipv6>(ProtocolId(9), RegisterOptions::default())
        .unwrap();
    (rtm, c, c6)
}

/// Would catch `Rtm::verify_consistency` checking the writer's side of the
/// FIB rather than what lookups read: with the chunk-end publication of a
/// bulk writer's pending node left out (planted: `PublishFib::drop` doing
/// nothing), lookups miss the batch's /24s while the writer's bookkeeping,
/// which publishes on every read, has them, and only a check that walks the
/// lookup path sees it. Also checks the walk on a table whose partition
/// has nesting, gaps and both ends of the space.
#[test]
fn verify_consistency_checks_what_lookups_read() {
    let (rtm, c, c6) = table_with_both_families();
    let add = |net: &str, nh: u8| RouteUpdate::Add {
        route: Route::<Ipv4>::new(
            net.parse().unwrap(),
            Ipv4Addr::new(192, 0, 2, nh),
            nh as u32,
            IpRouteData::with_metric(1),
        ),
        ttl: Ttl::Infinite,
    };
    let batch = [
        add("0.0.0.0/0", 1),
        add("10.0.0.0/8", 2),
        add("10.1.3.128/25", 6),
        add("255.255.255.255/32", 7),
        // Last, so a pending node holds them when the batch ends.
        add("10.1.0.0/24", 3),
        add("10.1.1.0/24", 4),
        add("10.1.2.0/23", 5),
    ];
    rtm.update_routes(&c, &batch, |r| {
        r.unwrap();
    })
    .unwrap();
    for net in ["::/0", "2001:db8::/32", "2001:db8:1::/48", "ffff::/16"] {
        let r = Route::<Ipv6>::new(
            net.parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            1,
            IpRouteData::with_metric(1),
        );
        rtm.update_routes(
            &c6,
            &[RouteUpdate::Add {
                route: r,
                ttl: Ttl::Infinite,
            }],
            |r| {
                r.unwrap();
            },
        )
        .unwrap();
    }
    rtm.verify_consistency().unwrap();
    let hit = rtm.lookup::<Ipv4>(Ipv4Addr::new(10, 1, 1, 9)).unwrap();
    assert_eq!(hit.prefix.to_string(), "10.1.1.0/24");
}

/// Would catch a consistency walk that takes equal top-level leaves for
/// one prefix (planted: the walk before this test, which merged every run
/// of equal top-level entries): two adjacent prefixes of one length with
/// one next hop have the same leaf, yet their addresses answer different
/// prefixes, so the walk's range must end where the first prefix does.
/// The full-size demo failed its final check this way on a correct FIB.
#[test]
fn verify_consistency_tells_adjacent_prefixes_with_one_next_hop_apart() {
    let (rtm, c, c6) = table_with_both_families();
    for net in ["30.144.0.0/12", "30.160.0.0/12", "30.176.0.0/16"] {
        let r = Route::<Ipv4>::new(
            net.parse().unwrap(),
            Ipv4Addr::new(198, 51, 100, 1),
            9,
            IpRouteData::with_metric(1),
        );
        rtm.add_route(&c, &r, Ttl::Infinite).unwrap();
    }
    for net in ["2000::/12", "2010::/12"] {
        let r = Route::<Ipv6>::new(
            net.parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            9,
            IpRouteData::with_metric(1),
        );
        rtm.add_route(&c6, &r, Ttl::Infinite).unwrap();
    }
    rtm.verify_consistency().unwrap();
    let at = |a: &str| rtm.lookup::<Ipv4>(a.parse().unwrap()).unwrap().prefix;
    assert_eq!(at("30.159.255.255").to_string(), "30.144.0.0/12");
    assert_eq!(at("30.160.0.0").to_string(), "30.160.0.0/12");
}
