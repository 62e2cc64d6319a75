//! A destination's route-set publication against a concurrent reader
//! (`src/rib/destination.rs`): the writer builds a new set, swaps it in
//! with Release and retires the old one to the epoch collector; a reader
//! pins, loads with Acquire and reads the set. The reader must see a whole
//! set (never a partly written or a freed one), and successive reads never
//! go back in time.
//!
//! crossbeam-epoch cannot run under loom, so the collector is the stand-in
//! of `rtm_loom_tests::ebr` and the route sets are `ebr::Blocks`; the
//! orderings and the order of operations are the destination's. Each
//! planted weakening (Relaxed publication, Relaxed load, freeing at the
//! swap instead of retiring) is run too and must fail.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use rtm_loom_tests::ebr::{Blocks, Collector, POISON, versioned};
use rtm_loom_tests::{assert_explored, explore, must_fail};

/// The protocol's choices, so the planted variants can weaken one.
#[derive(Clone, Copy)]
struct Protocol {
    publish: Ordering,
    load: Ordering,
    retire: bool,
}

const RTM: Protocol = Protocol {
    publish: Ordering::Release,
    load: Ordering::Acquire,
    retire: true,
};

/// Runs the model; returns how many executions loom explored.
fn model(p: Protocol) -> usize {
    explore(move || {
        let blocks = Arc::new(Blocks::new(3));
        blocks.write(0, versioned(1));
        // Block index + 1 of the published set (0: empty destination).
        let routes = Arc::new(AtomicUsize::new(1));
        let collector = Arc::new(Collector::new(1));

        let reader = {
            let (blocks, routes, collector) = (blocks.clone(), routes.clone(), collector.clone());
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    collector.pin(0);
                    let b = routes.load(p.load);
                    assert_ne!(b, 0, "the destination always has a set here");
                    let [v, check] = blocks.read(b - 1);
                    assert_ne!(v, POISON, "read a freed route set");
                    assert_eq!([v, check], versioned(v), "read a torn route set");
                    assert!(v >= last, "went back from version {last} to {v}");
                    last = v;
                    collector.unpin(0);
                }
            })
        };

        // The writer (holding the network's writer lock in rtm): two
        // rewrites, each into a free block, then reclamation.
        let mut free = vec![1, 2];
        let mut pending = Vec::new();
        for v in 2..=3 {
            let b = free.pop().expect("a free block");
            blocks.write(b, versioned(v));
            let old = routes.swap(b + 1, p.publish);
            if p.retire {
                pending.push(collector.retire(old - 1));
            } else {
                blocks.free(old - 1);
            }
            for reused in collector.collect(&mut pending) {
                blocks.free(reused);
                free.push(reused);
            }
        }
        reader.join().unwrap();
    })
}

#[test]
fn a_reader_sees_whole_live_route_sets_in_order() {
    assert_explored(model(RTM), 100);
}

#[test]
fn planted_weakenings_fail() {
    must_fail("a Relaxed publication", || {
        model(Protocol {
            publish: Ordering::Relaxed,
            ..RTM
        })
    });
    must_fail("a Relaxed load", || {
        model(Protocol {
            load: Ordering::Relaxed,
            ..RTM
        })
    });
    must_fail("freeing the old set at the swap", || {
        model(Protocol {
            retire: false,
            ..RTM
        })
    });
}
