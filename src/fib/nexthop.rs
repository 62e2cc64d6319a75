//! Interned next hops: the FIB's leaves name a (next hop, interface,
//! protocol) tuple by a small id instead of carrying it.
//!
//! A full table has a million prefixes but only as many distinct tuples as
//! the router has neighbours, so interning keeps leaves at 32 bits. Ids are
//! reference-counted by the writer; a freed id is reused only after an
//! epoch grace period, so a reader holding an old leaf always finds the
//! entry the leaf meant.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_epoch::Guard;

use crate::route::ProtocolId;

/// Ids are 24 bits (the leaf keeps 8 bits for the prefix length); id 0
/// means "no route".
pub(crate) const MAX_IDS: u32 = 1 << 24;
const SEGMENT: usize = 1024;
const SEGMENTS: usize = MAX_IDS as usize / SEGMENT;

/// What a leaf's id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Nexthop<A> {
    pub(crate) next_hop: A,
    pub(crate) interface: u32,
    pub(crate) protocol: ProtocolId,
}

struct Segment<A> {
    entries: [UnsafeCell<Nexthop<A>>; SEGMENT],
}

/// The id -> tuple table read by lookups.
pub(crate) struct NexthopTable<A> {
    segments: Box<[AtomicPtr<Segment<A>>]>,
    /// What unused entries hold.
    placeholder: Nexthop<A>,
}

/// The writer's side: tuple -> (id, references), and free ids. Guarded by
/// the FIB's writer lock, which is what makes the writer unique.
pub(crate) struct NexthopIds<A> {
    ids: HashMap<Nexthop<A>, (u32, u32)>,
    /// Ids whose grace period has passed, ready for reuse. Shared with the
    /// deferred closures that refill it.
    free: Arc<Mutex<Vec<u32>>>,
    next_fresh: u32,
}

// SAFETY: the UnsafeCells in segments are written only by the single writer
// (callers of `slot` hold the FIB's writer lock) and only for ids no reader
// can reach (fresh ids, or ids whose grace period has passed); readers only
// read.
unsafe impl<A: Send + Sync> Sync for NexthopTable<A> {}
// SAFETY: the table owns its segments; moving it moves them.
unsafe impl<A: Send> Send for NexthopTable<A> {}

impl<A: Copy + Eq + Hash + Send + Sync + 'static> NexthopTable<A> {
    pub(crate) fn new(placeholder: A) -> Self {
        NexthopTable {
            segments: (0..SEGMENTS)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            placeholder: Nexthop {
                next_hop: placeholder,
                interface: 0,
                protocol: ProtocolId(0),
            },
        }
    }

    /// The tuple of a published id (ids come only from published leaves,
    /// whose segment exists).
    #[inline(always)]
    pub(crate) fn get(&self, id: u32) -> Nexthop<A> {
        // Acquire pairs with the Release in `slot`: a segment is filled
        // before it is published.
        let seg = self.segments[(id as usize / SEGMENT) % SEGMENTS].load(Ordering::Acquire);
        if seg.is_null() {
            // Unreachable for ids from published leaves; answer something
            // harmless rather than fault.
            return self.placeholder;
        }
        // SAFETY: `seg` was published by `slot` and is freed only in Drop.
        // The entry was written before any leaf naming `id` was published
        // (Release/Acquire through the trie's publication), and is not
        // rewritten until a grace period after the last such leaf was
        // unlinked, which cannot have passed while our caller is pinned.
        unsafe { *(*seg).entries[id as usize % SEGMENT].get() }
    }

    /// Whether `id` names an interned tuple (writer side).
    fn known(&self, id: u32) -> bool {
        !self.segments[(id as usize / SEGMENT) % SEGMENTS]
            .load(Ordering::Relaxed)
            .is_null()
    }

    /// The entry cell of `id`, allocating its segment. Only the writer
    /// (holding the FIB's writer lock) calls this.
    fn slot(&self, id: u32) -> *mut Nexthop<A> {
        let cell = &self.segments[id as usize / SEGMENT];
        let mut seg = cell.load(Ordering::Relaxed); // only the writer stores
        if seg.is_null() {
            let fresh = Box::new(Segment {
                entries: std::array::from_fn(|_| UnsafeCell::new(self.placeholder)),
            });
            seg = Box::into_raw(fresh);
            // Release: the segment's initialisation is visible to readers
            // that see the pointer.
            cell.store(seg, Ordering::Release);
        }
        // SAFETY: non-null segments stay allocated until Drop; the writer is
        // the only one taking this pointer.
        unsafe { (*seg).entries[id as usize % SEGMENT].get() }
    }

    /// Bytes held (segments and the writer's map, approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        let segs = self
            .segments
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
        self.segments.len() * std::mem::size_of::<usize>()
            + segs * std::mem::size_of::<Segment<A>>()
    }
}

impl<A: Copy + Eq + Hash + Send + Sync + 'static> NexthopIds<A> {
    pub(crate) fn new() -> Self {
        NexthopIds {
            ids: HashMap::new(),
            free: Arc::new(Mutex::new(Vec::new())),
            next_fresh: 1,
        }
    }

    /// Takes a reference on the tuple's id, interning it if new. `None` if
    /// all 2^24 - 1 ids are in use.
    pub(crate) fn acquire(&mut self, table: &NexthopTable<A>, nh: Nexthop<A>) -> Option<u32> {
        if let Some((id, refs)) = self.ids.get_mut(&nh) {
            *refs += 1;
            return Some(*id);
        }
        let reused = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let id = match reused {
            Some(id) => id,
            None if self.next_fresh < MAX_IDS => {
                self.next_fresh += 1;
                self.next_fresh - 1
            }
            None => return None,
        };
        let slot = table.slot(id);
        // SAFETY: `id` is fresh or past its grace period: no reader can be
        // reading this entry (see `get`), and we are the only writer.
        unsafe { *slot = nh };
        self.ids.insert(nh, (id, 1));
        Some(id)
    }

    /// Drops a reference; the last one frees the id after a grace period.
    pub(crate) fn release(&mut self, table: &NexthopTable<A>, id: u32, guard: &Guard) {
        if !table.known(id) {
            return;
        }
        let nh = table.get(id);
        let Some((_, refs)) = self.ids.get_mut(&nh) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            self.ids.remove(&nh);
            let free = self.free.clone();
            guard.defer(move || free.lock().unwrap_or_else(PoisonError::into_inner).push(id));
        }
    }

    /// Distinct tuples in use.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes held by the writer's map (approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ids.capacity() * (std::mem::size_of::<Nexthop<A>>() + 9)
    }
}

impl<A> Drop for NexthopTable<A> {
    fn drop(&mut self) {
        for s in self.segments.iter() {
            let p = s.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: `&mut self`: no reader remains; each segment came
                // from Box::into_raw in `slot` and is freed once here.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
