//! The FIB against brute force: random insert/remove sequences over nested
//! prefixes (default routes, host routes, prefixes sharing a top-level
//! slot), checked at random and boundary addresses; and a reader that must
//! never lose an untouched route while a writer churns its subtree.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use rtm::{IpAddress, IpFamily, Ipv4, Ipv6, LpmFib, Prefix, ProtocolId};

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

    #[test]
    fn ipv4_fib_equals_brute_force(ops in proptest::collection::vec(op(32), 1..60), random in proptest::collection::vec(any::<u128>(), 32)) {
        run::<Ipv4>(&ops, &random)?;
    }

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

/// A reader looks up addresses covered throughout by an untouched /16
/// while a writer churns longer and shorter prefixes around them, in the
/// same top-level slot and node: it must always get exactly the /16.
#[test]
fn untouched_route_never_flickers_under_churn() {
    let fib = Arc::new(LpmFib::<Ipv4>::new());
    let keep: Prefix<Ipv4Addr> = "10.1.0.0/16".parse().unwrap();
    fib.insert(keep, Ipv4Addr::new(192, 0, 2, 7), 7, ProtocolId(1));
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (fib, stop, lookups) = (fib.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            let probes: Vec<Ipv4Addr> = (0..=255).map(|i| Ipv4Addr::new(10, 1, 255, i)).collect();
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
    let nh = Ipv4Addr::new(192, 0, 2, 9);
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        // Never covering 10.1.255.x: inside 10.1.240.0/21 (the probes' /20
        // top-level slot and node: the IPv4 core's), or inside
        // 10.1.192.0/19 (shorter prefixes that rewrite top-level entries
        // next to the probes'); and a covering /8 that loses to the /16.
        let (base, span, min_len) = if rng.below(2) == 0 {
            (0x0a01_f000u32, 0x07ff, 21)
        } else {
            (0x0a01_c000u32, 0x1fff, 19)
        };
        let len = min_len + rng.below(33 - min_len as u64) as u8;
        let a = Ipv4Addr::from(base | (rng.next_u64() as u32 & span));
        let p = Prefix::truncating(a, len);
        if rng.below(2) == 0 {
            fib.insert(p, nh, 9, ProtocolId(2));
        } else {
            fib.remove(p);
        }
        if n % 64 == 0 {
            fib.insert("10.0.0.0/8".parse().unwrap(), nh, 8, ProtocolId(2));
        } else if n % 64 == 32 {
            fib.remove("10.0.0.0/8".parse().unwrap());
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

/// The IPv6 core under the same churn: probes under an untouched /32,
/// writes of /33../64 beside them in the same top-level slot and nodes.
#[test]
fn untouched_ipv6_route_never_flickers_under_churn() {
    let fib = Arc::new(LpmFib::<Ipv6>::new());
    let keep: Prefix<Ipv6Addr> = "2001:db8::/32".parse().unwrap();
    fib.insert(keep, "fe80::7".parse().unwrap(), 7, ProtocolId(1));
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (fib, stop, lookups) = (fib.clone(), stop.clone(), lookups.clone());
        thread::spawn(move || {
            // 2001:db8:ffff::/48 is never covered by the churn below.
            let probes: Vec<Ipv6Addr> = (0..=255u128)
                .map(|i| Ipv6Addr::from(0x2001_0db8_ffff_u128 << 80 | i << 40 | i))
                .collect();
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
    let mut rng = rtm::synth::SplitMix64::new(5);
    let nh: Ipv6Addr = "fe80::9".parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        // Inside 2001:db8::/33 (the probes are in the other half).
        let len = 33 + rng.below(32) as u8;
        let bits =
            0x2001_0db8_u128 << 96 | (rng.next_u64() as u128 & (u64::MAX >> 1) as u128) << 32;
        let p = Prefix::truncating(Ipv6Addr::from(bits), len);
        if rng.below(2) == 0 {
            fib.insert(p, nh, 9, ProtocolId(2));
        } else {
            fib.remove(p);
        }
        if n % 64 == 0 {
            fib.insert("2001::/16".parse().unwrap(), nh, 8, ProtocolId(2));
        } else if n % 64 == 32 {
            fib.remove("2001::/16".parse().unwrap());
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
