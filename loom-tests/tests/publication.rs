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

use std::panic::{AssertUnwindSafe, catch_unwind};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use rtm_loom_tests::ebr::{Blocks, Collector, POISON};

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

/// A set holding version `v`: the version and a check word.
fn set(v: u64) -> [u64; 2] {
    [v, v * 7 + 1]
}

/// Runs the model; returns how many executions loom explored.
fn model(p: Protocol) -> usize {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = executions.clone();
    loom::model(move || {
        // Relaxed: a count read after the model, on this thread.
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let blocks = Arc::new(Blocks::new(3));
        blocks.write(0, set(1));
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
                    assert_eq!(check, v * 7 + 1, "read a torn route set");
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
            blocks.write(b, set(v));
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
    });
    executions.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn a_reader_sees_whole_live_route_sets_in_order() {
    let n = model(RTM);
    println!("{n} executions");
    assert!(n > 100, "only {n} executions explored");
}

/// Runs a planted variant, which must fail.
fn must_fail(p: Protocol, what: &str) {
    match catch_unwind(AssertUnwindSafe(|| model(p))) {
        Ok(n) => panic!("the model did not catch {what} in {n} executions"),
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            println!("{what}: caught: {why}");
        }
    }
}

#[test]
fn planted_weakenings_fail() {
    must_fail(
        Protocol {
            publish: Ordering::Relaxed,
            ..RTM
        },
        "a Relaxed publication",
    );
    must_fail(
        Protocol {
            load: Ordering::Relaxed,
            ..RTM
        },
        "a Relaxed load",
    );
    must_fail(
        Protocol {
            retire: false,
            ..RTM
        },
        "freeing the old set at the swap",
    );
}
