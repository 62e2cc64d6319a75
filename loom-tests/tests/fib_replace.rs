//! FIB node replacement and retirement against a concurrent lookup
//! (`src/fib/direct.rs`, `src/fib/trie.rs`, `src/fib/arena.rs`): the writer
//! copies the path it changes into fresh arena blocks (a new leaf, then a
//! new node pointing to it), maps a new arena chunk first if a block lies
//! in one (its base published with Release), publishes the new node in the
//! top-level slot with Release, and retires the old node and leaf. A lookup
//! pins, loads the slot with Acquire, resolves each block's chunk base with
//! a Relaxed load (as `NodeStore` does: the Acquire on the slot already
//! orders it), and walks node then leaf. It must always see a mapped
//! chunk, a whole path of one version, and no freed block.
//!
//! crossbeam-epoch cannot run under loom: the collector is the stand-in of
//! `rtm_loom_tests::ebr`, the arena is `ebr::Blocks` in two chunks; the
//! orderings and the order of operations are the FIB's. Each planted
//! weakening must fail.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use rtm_loom_tests::ebr::{Blocks, Collector, POISON, versioned};
use rtm_loom_tests::{assert_explored, explore, must_fail};

/// Blocks per arena chunk.
const CHUNK: usize = 3;

#[derive(Clone, Copy)]
struct Protocol {
    publish: Ordering,
    lookup: Ordering,
    retire: bool,
    /// Map a new chunk before publishing a node in it (false: after).
    map_first: bool,
}

const RTM: Protocol = Protocol {
    publish: Ordering::Release,
    lookup: Ordering::Acquire,
    retire: true,
    map_first: true,
};

fn model(p: Protocol) -> usize {
    explore(move || {
        let blocks = Arc::new(Blocks::new(2 * CHUNK));
        // Chunk bases: 0 unmapped, 1 mapped. Chunk 0 is mapped.
        let bases = Arc::new([AtomicUsize::new(1), AtomicUsize::new(0)]);
        blocks.write(0, versioned(1));
        blocks.write(1, [0, 1]); // node: [leaf block, version]
        // Top-level slot: node block + 1.
        let top = Arc::new(AtomicUsize::new(2));
        let collector = Arc::new(Collector::new(1));

        let lookup = {
            let (blocks, bases, top, collector) = (
                blocks.clone(),
                bases.clone(),
                top.clone(),
                collector.clone(),
            );
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    collector.pin(0);
                    let n = top.load(p.lookup) - 1;
                    // Relaxed, as NodeStore's id-to-address: see the docs.
                    assert_eq!(
                        bases[n / CHUNK].load(Ordering::Relaxed),
                        1,
                        "unmapped chunk"
                    );
                    let [l, v] = blocks.read(n);
                    assert_ne!(v, POISON, "read a freed node");
                    assert_eq!(bases[l as usize / CHUNK].load(Ordering::Relaxed), 1);
                    let [lv, check] = blocks.read(l as usize);
                    assert_ne!(lv, POISON, "read a freed leaf");
                    assert_eq!([lv, check], versioned(v), "a path of two versions");
                    assert!(v >= last, "went back from version {last} to {v}");
                    last = v;
                    collector.unpin(0);
                }
            })
        };

        // The FIB writer: two replacements of the path.
        let mut free = vec![5, 4, 3, 2];
        let mut pending = Vec::new();
        let map = |b: usize| {
            if bases[b / CHUNK].load(Ordering::Relaxed) == 0 {
                // Release, as the arena's chunk publication.
                bases[b / CHUNK].store(1, Ordering::Release);
            }
        };
        for v in 2..=3u64 {
            let (l, n) = (free.pop().unwrap(), free.pop().unwrap());
            if p.map_first {
                map(l);
                map(n);
            }
            blocks.write(l, versioned(v));
            blocks.write(n, [l as u64, v]);
            // Only the writer stores the slot: its own Relaxed read of the
            // old node suffices (as in the FIB).
            let old = top.load(Ordering::Relaxed) - 1;
            top.store(n + 1, p.publish);
            if !p.map_first {
                map(l);
                map(n);
            }
            // The writer reads back its own node: no race to check.
            let old_leaf = blocks.read(old)[0] as usize;
            for b in [old, old_leaf] {
                if p.retire {
                    pending.push(collector.retire(b));
                } else {
                    blocks.free(b);
                }
            }
            for reused in collector.collect(&mut pending) {
                blocks.free(reused);
            }
        }
        lookup.join().unwrap();
    })
}

#[test]
fn a_lookup_walks_a_whole_live_mapped_path() {
    assert_explored(model(RTM), 100);
}

#[test]
fn planted_weakenings_fail() {
    must_fail("a Relaxed slot store", || {
        model(Protocol {
            publish: Ordering::Relaxed,
            ..RTM
        })
    });
    must_fail("a Relaxed slot load", || {
        model(Protocol {
            lookup: Ordering::Relaxed,
            ..RTM
        })
    });
    must_fail("freeing the replaced node and leaf at once", || {
        model(Protocol {
            retire: false,
            ..RTM
        })
    });
    must_fail("mapping the new chunk after publishing into it", || {
        model(Protocol {
            map_first: false,
            ..RTM
        })
    });
}
