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
//! here is the library's own. What loom cannot see: crossbeam-skiplist and
//! crossbeam-epoch (the destination map and route-set reclamation), dashmap
//! (the client registry) and arc-swap (the priority table)
//! use std atomics and are covered by the stress tests instead, as is the
//! FIB's publish/retire protocol (`tests/fib.rs`, `tests/stress.rs`).
