//! RIB benchmarks: rtm side by side with a naive baseline in the same run.
//!
//! The baseline is what an embedder writes without rtm: one
//! `RwLock<BTreeMap>` of networks to routes, the best route picked on each
//! update, and a longest-prefix match that probes every length. Criterion
//! reports both in one group, so the ratio is read off one run.
//! Run: `cargo bench --bench rib`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::RwLock;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rtm::synth::{SplitMix64, ipv4_table};
use rtm::{IpRouteData, Ipv4, Ipv4Prefix, Prefix, ProtocolId, RegisterOptions, Route, Rtm, Ttl};

const TABLE: usize = 100_000;

/// The naive RIB: a locked ordered map of networks to their routes.
#[derive(Default)]
struct NaiveRib {
    map: RwLock<BTreeMap<Ipv4Prefix, Vec<Route<Ipv4>>>>,
}

impl NaiveRib {
    fn add(&self, r: Route<Ipv4>) {
        let mut m = self.map.write().unwrap();
        let v = m.entry(r.network).or_default();
        match v.iter_mut().find(|x| x.key() == r.key()) {
            Some(x) => *x = r,
            None => v.push(r),
        }
        v.sort_by_key(|x| x.data.metric);
    }

    fn lookup(&self, a: Ipv4Addr) -> Option<Route<Ipv4>> {
        let m = self.map.read().unwrap();
        (0..=32u8).rev().find_map(|len| {
            m.get(&Prefix::truncating(a, len))
                .and_then(|v| v.first().copied())
        })
    }
}

fn addresses(table: &[Ipv4Prefix], n: usize) -> Vec<Ipv4Addr> {
    let mut rng = SplitMix64::new(3);
    (0..n)
        .map(|_| {
            let p = table[rng.below(table.len() as u64) as usize];
            Ipv4Addr::from(u32::from(p.addr()) | (rng.next_u64() as u32 & !u32::from(p.mask())))
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let table = ipv4_table(TABLE, 1);
    let rtm = Rtm::new();
    let h = rtm
        .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let naive = NaiveRib::default();
    let nh = Ipv4Addr::new(192, 0, 2, 1);
    for p in &table {
        let r = Route::new(*p, nh, 1, IpRouteData::with_metric(1));
        rtm.add_route(&h, &r, Ttl::Infinite).unwrap();
        naive.add(r);
    }
    let addrs = addresses(&table, 4096);

    let mut g = c.benchmark_group("update_existing_route");
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("rtm", TABLE), |b| {
        b.iter(|| {
            i = (i + 1) % table.len();
            let r = Route::new(table[i], nh, 1, IpRouteData::with_metric((i % 3) as u32));
            black_box(rtm.add_route(&h, &r, Ttl::Infinite).unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("naive_rwlock_btreemap", TABLE), |b| {
        b.iter(|| {
            i = (i + 1) % table.len();
            naive.add(Route::new(
                table[i],
                nh,
                1,
                IpRouteData::with_metric((i % 3) as u32),
            ));
        })
    });
    g.finish();

    let mut g = c.benchmark_group("lookup_4096_addresses");
    g.bench_function(BenchmarkId::new("rtm", TABLE), |b| {
        b.iter(|| {
            for a in &addrs {
                black_box(rtm.lookup::<Ipv4>(*a));
            }
        })
    });
    g.bench_function(BenchmarkId::new("naive_rwlock_btreemap", TABLE), |b| {
        b.iter(|| {
            for a in &addrs {
                black_box(naive.lookup(*a));
            }
        })
    });
    g.finish();
}

criterion_group!(rib, benches);
criterion_main!(rib);
