//! LPM lookups: rtm's FIB, a static DIR-24-8, prefix-trie and treebitmap on
//! the same table (RIS when `../shared/routing-data` exists, else synthetic)
//! and the same traffic, in one criterion group per family, so the ratios
//! are read off one run: every structure's scalar path (one address per
//! call) and, where it has one, its batch path, each answering a `u32` per
//! address into the same output slice. `rtm bench lpm` prints the same
//! comparison as a table with bytes per prefix, build times and its
//! agreement check.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtm::bench::competitors::{self, Lpm, RtmFib};
use rtm::bench::dir24::Dir24_8;
use rtm::bench::input::{self, Traffic};
use rtm::{IpAddress, Ipv4, Ipv6, Prefix};

const BATCH: usize = 4096;

fn routes<A: IpAddress>(t: &[Prefix<A>]) -> Vec<(Prefix<A>, u32)> {
    t.iter()
        .enumerate()
        .map(|(i, p)| (*p, 1 + (i as u32 % 64)))
        .collect()
}

fn group<A: IpAddress>(
    c: &mut Criterion,
    name: &str,
    addrs: &[A],
    structures: &[(&str, &dyn Lpm<A>)],
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(addrs.len() as u64));
    let mut out = vec![0u32; addrs.len()];
    for (n, s) in structures {
        g.bench_function(format!("{n} scalar"), |b| {
            b.iter(|| {
                s.scalar(addrs, &mut out);
                black_box(&out);
            })
        });
        if s.batch(addrs, &mut out) {
            g.bench_function(format!("{n} batch"), |b| {
                b.iter(|| {
                    s.batch(addrs, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let tables = input::default_tables(1);
    eprintln!("lpm bench table: {}", tables.source);
    let r4 = routes(&tables.v4);
    let rtm4 = RtmFib(competitors::build_rtm::<Ipv4>(&r4));
    let dir = Dir24_8::build(&r4);
    let pt4 = competitors::build_prefix_trie_v4(&r4);
    let tb4 = competitors::build_treebitmap(&r4);
    let a4 = input::traffic_v4(&tables.v4, Traffic::Ann, BATCH, 7);
    group(
        c,
        "ipv4_ann_4096",
        &a4,
        &[
            ("rtm", &rtm4),
            ("dir-24-8", &dir),
            ("prefix-trie", &pt4),
            ("treebitmap", &tb4),
        ],
    );

    let r6 = routes(&tables.v6);
    let rtm6 = RtmFib(competitors::build_rtm::<Ipv6>(&r6));
    let pt6 = competitors::build_prefix_trie_v6(&r6);
    let tb6 = competitors::build_treebitmap(&r6);
    let a6 = input::traffic_v6(&tables.v6, Traffic::Ann, BATCH, 7);
    group(
        c,
        "ipv6_ann_4096",
        &a6,
        &[("rtm", &rtm6), ("prefix-trie", &pt6), ("treebitmap", &tb6)],
    );
}

criterion_group!(lpm, benches);
criterion_main!(lpm);
