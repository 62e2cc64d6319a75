//! The FIB's quiescent-state reclamation (`src/qsbr.rs`) against a
//! concurrent reader, on the library's own `Domain` and `Limbo`.
//!
//! The structure is the FIB in miniature: a top-level slot names a node
//! block, the node names a next-hop id, the id's entry holds the next hop.
//! The writer replaces the path twice, as the FIB does:
//! - a **bulk (deferred) change**: the new leaf is set in a writer-side
//!   copy, changed again (a second id), and published later; the ids the
//!   still-published node names are *held* until the copy is published,
//!   then retired with the old node;
//! - an **immediate change**: new id and node, Release store, retire the
//!   old node and id.
//!
//! It reclaims after every step (the FIB does every few hundred
//! retirements; more often only checks more). Freed blocks and ids go back
//! to LIFO pools and are reused at once, and a reuse is a write loom
//! checks against the reader's reads (`ebr::Blocks`). The reader
//! registers (online), looks up, reports a quiescent state, looks up,
//! goes offline, comes online, looks up and unregisters: every transition
//! of the protocol. Each planted weakening must fail.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use rtm::qsbr::{Domain, Limbo, Weakening};
use rtm_loom_tests::ebr::{Blocks, POISON, versioned};
use rtm_loom_tests::{assert_explored, explore, must_fail};

#[derive(Clone, Copy)]
struct Protocol {
    domain: Weakening,
    /// Hold ids a deferred change released until its node is published.
    hold_ids: bool,
}

const RTM: Protocol = Protocol {
    domain: Weakening::None,
    hold_ids: true,
};

enum Garbage {
    Node(usize),
    Id(usize),
}

/// The writer's side: pools of free node blocks and ids, and the limbo.
struct Writer {
    nodes: Arc<Blocks>,
    ids: Arc<Blocks>,
    domain: Arc<Domain>,
    free_nodes: Vec<usize>,
    free_ids: Vec<usize>,
    limbo: Limbo<Garbage>,
}

impl Writer {
    fn acquire_id(&mut self, v: u64) -> usize {
        let id = self.free_ids.pop().expect("id pool");
        self.ids.write(id, versioned(v));
        id
    }

    fn reclaim(&mut self) {
        let (nodes, ids) = (&self.nodes, &self.ids);
        let (free_nodes, free_ids) = (&mut self.free_nodes, &mut self.free_ids);
        self.limbo.reclaim(&self.domain, 16, |g| match g {
            Garbage::Node(b) => {
                nodes.free(b);
                free_nodes.push(b);
            }
            Garbage::Id(i) => {
                ids.free(i);
                free_ids.push(i);
            }
        });
    }

    /// Publishes node content `[id, v]` in place of the current node;
    /// returns the replaced node and the id it named.
    fn publish(&mut self, top: &AtomicUsize, id: usize, v: u64) -> (usize, usize) {
        let n = self.free_nodes.pop().expect("node pool");
        self.nodes.write(n, [id as u64, v]);
        // Only the writer stores the slot: a Relaxed read of its own store.
        let old = top.load(Ordering::Relaxed) - 1;
        let old_id = self.nodes.read(old)[0] as usize;
        // Release: the node and its id entry are written before it is seen.
        top.store(n + 1, Ordering::Release);
        (old, old_id)
    }
}

fn model(p: Protocol) -> usize {
    explore(move || {
        let nodes = Arc::new(Blocks::new(3));
        let ids = Arc::new(Blocks::new(5));
        let domain = Arc::new(Domain::weakened(2, p.domain));
        ids.write(0, versioned(1));
        nodes.write(0, [0, 1]);
        let top = Arc::new(AtomicUsize::new(1)); // node block + 1

        let reader = {
            let (nodes, ids, domain, top) =
                (nodes.clone(), ids.clone(), domain.clone(), top.clone());
            thread::spawn(move || {
                let lookup = |last: &mut u64| {
                    // Acquire, as the FIB's top-level load.
                    let n = top.load(Ordering::Acquire) - 1;
                    let [id, v] = nodes.read(n);
                    assert_ne!(v, POISON, "read a freed node");
                    let entry = ids.read(id as usize);
                    assert_ne!(entry[0], POISON, "read a freed next-hop id");
                    assert_eq!(entry, versioned(v), "an id recycled under a reader");
                    assert!(v >= *last, "went back from version {last} to {v}");
                    *last = v;
                };
                let mut last = 0;
                let slot = domain.register().unwrap();
                lookup(&mut last);
                domain.quiescent(slot);
                lookup(&mut last);
                domain.offline(slot);
                domain.online(slot);
                lookup(&mut last);
                domain.unregister(slot);
            })
        };

        let mut w = Writer {
            nodes,
            ids,
            domain,
            free_nodes: vec![2, 1],
            free_ids: vec![4, 3, 2, 1],
            limbo: Limbo::default(),
        };
        // A bulk change of version 2: two ids in the pending copy.
        let mut held = Vec::new();
        let first = w.acquire_id(2);
        let current = w.nodes.read(top.load(Ordering::Relaxed) - 1)[0] as usize;
        if p.hold_ids {
            held.push(current);
        } else {
            w.limbo.retire(Garbage::Id(current));
        }
        w.reclaim();
        let second = w.acquire_id(2);
        // `first` was never published: releasing it needs no grace period
        // in principle, but the FIB holds it like any other (so do we).
        held.push(first);
        let (old, _) = w.publish(&top, second, 2);
        w.limbo.retire(Garbage::Node(old));
        for id in held {
            w.limbo.retire(Garbage::Id(id));
        }
        w.reclaim();
        // An immediate change of version 3.
        let third = w.acquire_id(3);
        let (old, old_id) = w.publish(&top, third, 3);
        w.limbo.retire(Garbage::Node(old));
        w.limbo.retire(Garbage::Id(old_id));
        w.reclaim();
        reader.join().unwrap();
        w.reclaim();
        assert!(w.limbo.is_empty(), "the reader is gone: everything frees");
    })
}

#[test]
fn a_reader_never_sees_a_freed_node_or_a_recycled_id() {
    assert_explored(model(RTM), 100);
}

#[test]
fn planted_weakenings_fail() {
    must_fail("reclaiming one quiescent state early", || {
        model(Protocol {
            domain: Weakening::OneEarly,
            ..RTM
        })
    });
    must_fail("a Relaxed quiescent report", || {
        model(Protocol {
            domain: Weakening::RelaxedReport,
            ..RTM
        })
    });
    must_fail("a Relaxed store coming online", || {
        model(Protocol {
            domain: Weakening::RelaxedOnline,
            ..RTM
        })
    });
    must_fail(
        "an id released before its pending node is published",
        || {
            model(Protocol {
                hold_ids: false,
                ..RTM
            })
        },
    );
}
