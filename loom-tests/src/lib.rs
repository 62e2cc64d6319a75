//! Loom models of rtm's concurrent core.
//!
//! The models live in `tests/`; each file starts with `#![cfg(loom)]`, so a
//! plain `cargo test --workspace` builds them empty. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p rtm-loom-tests --release
//! ```
//!
//! Under `--cfg loom`, rtm takes its mutexes, condition variables, rwlocks,
//! atomics and `Arc` from loom through its `sync` shim, so the code checked
//! here is the library's own:
//!
//! - `change_queue.rs`: the change queue and its notifier (no lost wake-up,
//!   exact more-messages status, close wakes waiters, a bulk writer's
//!   deferred wake);
//! - `deregistration.rs`: the real `Rtm`, a client's deregistration racing
//!   its own adds (no orphan route; an index snapshot taken before the gate
//!   closes fails it). Loom interleaves the shim's locks (the client gate,
//!   the block locks of the RIB's index, the sequencer); the engine runs
//!   on loom threads with 16 MiB stacks, and the index shrinks to two
//!   blocks, two locks and two-network leaves under `cfg(loom)`;
//! - `writers.rs`: the real `Rtm`, two clients adding to one network at
//!   once: no lost update, one best route (in the RIB and the FIB), and a
//!   subscriber's messages chain (without the network's block lock it
//!   fails).
//!
//! - `rib_index.rs`: the real `Rtm`'s destination index, two writers
//!   filling one block (leaf copies and splits published through the
//!   shim's links; the append count is a std atomic loom does not see)
//!   while a reader looks
//!   up and walks: a network present throughout is always found, once,
//!   in order, and no write is lost (planted: a link cleared before its
//!   replacement is stored fails it, the walk finding no route; a copy
//!   built but never linked fails it). The reader runs on a thread of its
//!   own and a writer on the model's: loom explores a load ahead of a
//!   store it could have read when the load comes second in the first
//!   execution (with the reader first, loom ran one execution and could
//!   not fail);
//! - `publication.rs`: a destination's route-set publication against a
//!   reader (Release swap, Acquire load, retire after unlink): the reader
//!   sees whole, live sets in order;
//! - `fib_qsbr.rs`: the FIB's quiescent-state reclamation on the
//!   library's own `rtm::qsbr::{Domain, Limbo}` (no stand-in: it is our
//!   code, on the shim's atomics): a reader that registers, reports,
//!   goes offline and online never reads a freed node or a recycled
//!   next-hop id, bulk (held ids) and immediate changes alike.
//!
//! `publication.rs` checks rtm's protocol, not crossbeam-epoch's code, which loom
//! cannot run: reclamation is the stand-in collector of [`ebr`] (the
//! textbook scheme crossbeam-epoch implements, its SeqCst fences as
//! read-modify-writes that loom orders, its pin announcement an AcqRel
//! swap as on x86: see [`ebr::Collector::pin`] for what an unbounded run
//! found with a Relaxed one), memory is [`ebr::Blocks`] whose
//! reuse is a write loom checks. Each model also runs planted weakenings
//! (a Relaxed publication or load, freeing at the swap; for `fib_qsbr.rs`
//! early reclamation, Relaxed reports, ids released before publication), which must fail, so the model is known to be
//! able to fail.
//!
//! What loom cannot see: crossbeam-epoch (the reclamation of route sets
//! and of the destination index's leaves; the index's links are the
//! shim's atomics and its block locks the shim's mutexes, so the engine
//! models interleave them, with a two-block root and two-network leaves
//! under `cfg(loom)`, but the leaves' keys and value slots are plain
//! memory and std atomics), dashmap (the client registry
//! and indexes), arc-swap (the priority table) and the FIB's own lock use
//! std atomics and locks. They run between the shim's synchronisation
//! points as ordinary code (none is held across a shim lock, so a model
//! cannot deadlock on one), and their own interleavings are covered by the
//! stress tests, the linearizability check and ThreadSanitizer instead
//! (`tests/stress.rs`, `tests/linearizability.rs`, `tests/fib.rs`).

#[cfg(loom)]
pub mod ebr;

/// Runs `f` on a spawned loom thread with a 16 MiB stack: the engine's
/// calls need more than loom's coroutines have by default (the model's own
/// closure included).
#[cfg(loom)]
pub fn with_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> loom::thread::JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(f)
        .expect("spawning a loom thread")
}

/// Runs a loom model of `body`; returns how many executions loom
/// explored.
#[cfg(loom)]
pub fn explore(body: impl Fn() + Send + Sync + 'static) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = executions.clone();
    loom::model(move || {
        // Relaxed: a count read after the model, on this thread.
        counted.fetch_add(1, Ordering::Relaxed);
        body();
    });
    executions.load(Ordering::Relaxed)
}

/// Prints how many executions a model explored and requires more than
/// `min` (fewer would mean loom could not see into it).
pub fn assert_explored(n: usize, min: usize) {
    println!("{n} executions");
    assert!(n > min, "only {n} executions explored");
}

/// A loom model of the whole engine: `body` runs on a big-stack loom
/// thread in every explored execution, and the model must explore more
/// than a handful (a model loom cannot see into would show as one or two).
#[cfg(loom)]
pub fn model_engine(body: impl Fn() + Send + Sync + 'static) {
    let body = std::sync::Arc::new(body);
    let n = explore(move || {
        let body = body.clone();
        with_stack(move || body()).join().unwrap();
    });
    assert_explored(n, 10);
}

/// Runs `model`, a planted weakening of a protocol, which must fail: the
/// proof that the model can catch `what`. Prints what loom reported.
#[cfg(loom)]
pub fn must_fail(what: &str, model: impl FnOnce() -> usize) {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    match catch_unwind(AssertUnwindSafe(model)) {
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
