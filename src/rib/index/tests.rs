//! The index against `BTreeMap`, with shapes small enough that every
//! network's write copies, splits or merges a node; and readers racing a
//! writer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_epoch::Owned;

use super::{BlockIndex, Shape};
use crate::family::{Ipv4, Ipv6};
use crate::prefix::{Ipv4Prefix, Ipv6Prefix};

/// A tiny pseudo-random sequence (xorshift), so runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// IPv4 networks crowded into a few blocks, at every length, so leaves
/// fill, split down to full depth, empty and merge.
fn v4(r: u64) -> Ipv4Prefix {
    let len = (r % 33) as u8;
    let addr = ((r >> 8) as u32 & 0x0303_0F0F) | 0x0A00_0000;
    Ipv4Prefix::truncating(Ipv4Addr::from(addr), len)
}

/// A 32-bit tag of a network.
fn tag(key: &impl std::hash::Hash) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    std::hash::Hasher::finish(&h) >> 32
}

/// The value a network holds at `version` (below 2^32): its tag, then the
/// version, so a reader can tell whether a value it found belongs to the
/// network it asked for.
fn value_of(key: &impl std::hash::Hash, version: u64) -> u64 {
    tag(key) << 32 | version
}

/// Whether `value` is one of `key`'s.
fn belongs(key: &impl std::hash::Hash, value: u64) -> bool {
    value >> 32 == tag(key)
}

fn shape(top_bits: u32, leaf_max: usize) -> Shape {
    Shape {
        top_bits,
        leaf_max,
        locks: 2,
    }
}

/// Random sets and removals, held one at a time or several to a block,
/// against a `BTreeMap`: every point read, ordered walk from any bound,
/// and the structural check agree after each step. Catches a slot rank
/// off by one (a value under the wrong key), a hole left visible or not
/// compacted, a split or merge that loses or misplaces a network, and a
/// walk that skips a block or a child.
#[test]
fn agrees_with_an_ordered_map_through_copies_splits_and_merges() {
    for (top_bits, leaf_max) in [(1, 2), (2, 3), (16, 4), (16, 512)] {
        let index = BlockIndex::<Ipv4, u64>::new(shape(top_bits, leaf_max));
        let mut model = BTreeMap::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ top_bits as u64);
        for step in 0..4000u64 {
            let guard = crossbeam_epoch::pin();
            // Several networks under one hold (a bulk writer), or one.
            let first = v4(rng.next());
            let mut held = index.lock(&first);
            let writes = 1 + rng.next() % 4;
            for w in 0..writes {
                let n = if w == 0 { first } else { v4(rng.next()) };
                if index.block(&n) != held.block() {
                    continue;
                }
                let remove = rng.next().is_multiple_of(3);
                let v = value_of(&n, step);
                let had = held.set(&n, (!remove).then(|| Owned::new(v)), &guard);
                assert_eq!(had, model.contains_key(&n), "step {step}: {n}");
                if remove {
                    model.remove(&n);
                } else {
                    model.insert(n, v);
                }
                // The writer reads its own writes under the hold.
                assert_eq!(held.get(&n, &guard).copied(), model.get(&n).copied());
            }
            drop(held);
            index
                .check()
                .map(|n| assert_eq!(n, model.len(), "step {step}"))
                .unwrap_or_else(|e| panic!("step {step} ({top_bits}, {leaf_max}): {e}"));
            let probe = v4(rng.next());
            assert_eq!(
                index.get(&probe, &guard).copied(),
                model.get(&probe).copied()
            );
            if step % 50 == 0 {
                for bound in [
                    Bound::Unbounded,
                    Bound::Included(&probe),
                    Bound::Excluded(&probe),
                ] {
                    let mut walked = Vec::new();
                    index.scan(bound, &guard, |k, v| {
                        walked.push((*k, *v));
                        None::<()>
                    });
                    let expected: Vec<_> = model
                        .range::<Ipv4Prefix, _>((bound, Bound::Unbounded))
                        .map(|(k, v)| (*k, *v))
                        .collect();
                    assert_eq!(walked, expected, "step {step}: walk from {bound:?}");
                }
            }
        }
    }
}

/// IPv6 networks at every length in one /32, with the engine's /16 root
/// and small leaves: the split reaches past /48, and the order of keys
/// that share a path (a /32 and its /48 at the same address) holds.
#[test]
fn ipv6_blocks_split_deep_and_keep_network_order() {
    let index = BlockIndex::<Ipv6, u64>::new(shape(16, 3));
    let mut model = BTreeMap::new();
    let mut rng = Rng(7);
    let guard = crossbeam_epoch::pin();
    for step in 0..3000u64 {
        let r = rng.next();
        let addr = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128
            | ((r as u128 & 0x0303_0303) << 64)
            | (r as u128 >> 40 & 0xff);
        let n = Ipv6Prefix::truncating(addr.into(), (rng.next() % 129) as u8);
        let mut held = index.lock(&n);
        if rng.next().is_multiple_of(4) {
            held.set(&n, None, &guard);
            model.remove(&n);
        } else {
            held.set(&n, Some(Owned::new(step)), &guard);
            model.insert(n, step);
        }
    }
    assert_eq!(index.check(), Ok(model.len()));
    let mut walked = Vec::new();
    index.scan(Bound::Unbounded, &guard, |k, v| {
        walked.push((*k, *v));
        None::<()>
    });
    assert_eq!(walked, model.into_iter().collect::<Vec<_>>());
}

/// Readers look up and walk while a writer fills, rewrites and empties
/// the same few crowded blocks (tiny leaves: every write copies a leaf,
/// many split or merge). A reader must find every network that is present
/// throughout with its own value, and never a value of another network:
/// catches a node or value freed without the grace period (a reader then
/// reads freed memory, which the value check or a sanitizer sees) and a
/// copy published before it was written.
#[test]
fn readers_see_whole_nodes_while_a_writer_copies_them() {
    let index = Arc::new(BlockIndex::<Ipv4, u64>::new(shape(2, 3)));
    // Networks present throughout: one in each crowded block.
    let anchors: Vec<Ipv4Prefix> = ["10.0.0.0/8", "10.1.0.0/16", "10.3.3.0/24"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    {
        let guard = crossbeam_epoch::pin();
        for a in &anchors {
            index
                .lock(a)
                .set(a, Some(Owned::new(value_of(a, 0))), &guard);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (index, stop, anchors) = (index.clone(), stop.clone(), anchors.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(11 + t);
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let guard = crossbeam_epoch::pin();
                    for a in &anchors {
                        assert_eq!(index.get(a, &guard).copied(), Some(value_of(a, 0)), "{a}");
                    }
                    let n = v4(rng.next());
                    if let Some(&v) = index.get(&n, &guard) {
                        assert!(belongs(&n, v), "{n} holds {v:#x}, another network's value");
                    }
                    let mut seen = 0;
                    let mut last = None;
                    index.scan(Bound::Unbounded, &guard, |k, v| {
                        assert!(last.is_none_or(|l| l < *k), "walk out of order at {k}");
                        last = Some(*k);
                        assert!(belongs(k, *v), "walked {k} holding {v:#x}");
                        seen += anchors.contains(k) as usize;
                        None::<()>
                    });
                    assert_eq!(
                        seen,
                        anchors.len(),
                        "a walk missed a network present throughout"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut rng = Rng(5);
    for step in 1..30_000u64 {
        let guard = crossbeam_epoch::pin();
        let n = v4(rng.next());
        if anchors.contains(&n) {
            continue;
        }
        let mut held = index.lock(&n);
        let v = (!rng.next().is_multiple_of(3)).then(|| Owned::new(value_of(&n, step)));
        held.set(&n, v, &guard);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("a reader failed") > 0);
    }
    assert!(index.check().is_ok());
}

/// Many IPv6 networks at one address (every length from /0 to /128) under
/// a 1-bit root with two-network leaves: the split goes down the path
/// stride by stride and must stop where the next stride would run past
/// the 128 bits (depth 121 with a 1-bit root), not index past them
/// (`chunk` would panic, or in release leave keys outside their child and
/// fail `check`). Catches a split condition that only stops at the
/// address width.
#[test]
fn ipv6_splits_stop_at_the_end_of_the_path_under_a_small_root() {
    let index = BlockIndex::<Ipv6, u64>::new(shape(1, 2));
    let guard = crossbeam_epoch::pin();
    let addr: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut model = BTreeMap::new();
    for len in 0..=128u8 {
        let n = Ipv6Prefix::truncating(addr, len);
        index.lock(&n).set(&n, Some(Owned::new(len as u64)), &guard);
        model.insert(n, len as u64);
    }
    assert_eq!(index.check(), Ok(model.len()));
    for (n, v) in &model {
        assert_eq!(index.get(n, &guard), Some(v), "{n}");
    }
}
