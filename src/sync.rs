//! The one place the crate takes its synchronisation primitives from.
//!
//! Under `--cfg loom` these are loom's model-checked types, otherwise std's,
//! as in tokio's `loom` shim. Code that is model-checked (the change queue,
//! the client gate) imports from here, never from `std::sync` directly.
#![allow(unused_imports)]

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

/// Locks a mutex, ignoring poisoning.
///
/// A panic while a lock is held can only come from a bug in this crate (user
/// input never panics); the protected data is still structurally valid
/// because every writer publishes whole values, so we keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
