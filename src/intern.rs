//! Interning: a million routes share a few distinct values (the FIB's
//! (next hop, interface, protocol) tuples; the RIB's route attributes), so
//! they store a small id and the value lives once, in an [`InternTable`].
//!
//! Readers turn an id into its value with one lock-free load
//! ([`InternTable::get`]). Ids are reference-counted by the writer side
//! ([`InternIds`], which its owner keeps under a lock or a single writer);
//! a freed id is reused only after a grace period of the readers that can
//! hold it: crossbeam-epoch's for the RIB's attributes (in published route
//! sets), the FIB's QSBR domain for next hops (in FIB leaves; see
//! `crate::qsbr`), so a reader always finds the value its id meant.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_epoch::Guard;

/// Ids are 24 bits (a FIB leaf keeps 8 bits for the prefix length); id 0
/// is never handed out (a FIB leaf's "no route").
pub(crate) const MAX_IDS: u32 = 1 << 24;
const SEGMENT: usize = 1024;
const SEGMENTS: usize = MAX_IDS as usize / SEGMENT;

struct Segment<T> {
    entries: [UnsafeCell<T>; SEGMENT],
}

/// The id -> value table read by lookups.
pub(crate) struct InternTable<T> {
    segments: Box<[AtomicPtr<Segment<T>>]>,
    /// What unused entries hold.
    placeholder: T,
}

/// The writer's side: value -> (id, references), and free ids. Its owner
/// makes it unique (the FIB's writer lock, the RIB's attribute lock).
pub(crate) struct InternIds<T> {
    ids: HashMap<T, (u32, u32), foldhash::fast::RandomState>,
    /// Ids whose grace period has passed, ready for reuse. Shared with the
    /// deferred closures that refill it.
    free: Arc<Mutex<Vec<u32>>>,
    next_fresh: u32,
    /// Ids handed out stay below this (at most [`MAX_IDS`]).
    limit: u32,
}

// SAFETY: the UnsafeCells in segments are written only by the unique
// writer (`slot` is called only from `InternIds::acquire`, which takes
// `&mut InternIds` its owner keeps unique) and only for ids no reader can
// reach (fresh ids, or ids whose grace period has passed); readers only read.
unsafe impl<T: Send + Sync> Sync for InternTable<T> {}
// SAFETY: the table owns its segments; moving it moves them.
unsafe impl<T: Send> Send for InternTable<T> {}

impl<T: Copy + Eq + Hash + Send + Sync + 'static> InternTable<T> {
    pub(crate) fn new(placeholder: T) -> Self {
        InternTable {
            segments: (0..SEGMENTS)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            placeholder,
        }
    }

    /// The value of a published id (ids come only from published leaves
    /// and route sets, whose segment exists).
    #[inline(always)]
    pub(crate) fn get(&self, id: u32) -> T {
        // Acquire pairs with the Release in `slot`: a segment is filled
        // before it is published.
        let seg = self.segments[(id as usize / SEGMENT) % SEGMENTS].load(Ordering::Acquire);
        if seg.is_null() {
            // Unreachable for ids from published leaves; answer something
            // harmless rather than fault.
            return self.placeholder;
        }
        // SAFETY: `seg` was published by `slot` and is freed only in Drop.
        // The entry was written before anything naming `id` was published
        // (Release/Acquire through that publication: the FIB's trie, a
        // route set), and is not rewritten until a grace period after the
        // last such reference was unlinked, which cannot have passed while
        // our caller is inside its read (pinned, or an online QSBR reader
        // that has not reported since it loaded the id).
        unsafe { *(*seg).entries[id as usize % SEGMENT].get() }
    }

    /// Whether `id` names an interned value (writer side).
    fn known(&self, id: u32) -> bool {
        !self.segments[(id as usize / SEGMENT) % SEGMENTS]
            .load(Ordering::Relaxed)
            .is_null()
    }

    /// The entry cell of `id`, allocating its segment. Only the unique
    /// writer (`InternIds::acquire`) calls this.
    fn slot(&self, id: u32) -> *mut T {
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
            + segs * std::mem::size_of::<Segment<T>>()
    }
}

impl<T: Copy + Eq + Hash + Send + Sync + 'static> Default for InternIds<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Eq + Hash + Send + Sync + 'static> InternIds<T> {
    pub(crate) fn new() -> Self {
        Self::with_limit(MAX_IDS)
    }

    /// Ids below `limit` only (the FIB keeps the ids from 2^23 on for its
    /// ECMP groups).
    pub(crate) fn with_limit(limit: u32) -> Self {
        InternIds {
            ids: HashMap::default(),
            free: Arc::new(Mutex::new(Vec::new())),
            next_fresh: 1,
            limit: limit.min(MAX_IDS),
        }
    }

    /// Takes a reference on the value's id, interning it if new. `None` if
    /// every id below the limit (2^24 by default) is in use.
    pub(crate) fn acquire(&mut self, table: &InternTable<T>, value: T) -> Option<u32> {
        if let Some((id, refs)) = self.ids.get_mut(&value) {
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
            None if self.next_fresh < self.limit => {
                self.next_fresh += 1;
                self.next_fresh - 1
            }
            None => return None,
        };
        let slot = table.slot(id);
        // SAFETY: `id` is fresh or past its grace period: no reader can be
        // reading this entry (see `get`), and we are the only writer.
        unsafe { *slot = value };
        self.ids.insert(value, (id, 1));
        Some(id)
    }

    /// Drops a reference; the last one frees the id after a crossbeam-epoch
    /// grace period (the RIB's attributes, read by pinned route readers).
    pub(crate) fn release(&mut self, table: &InternTable<T>, id: u32, guard: &Guard) {
        if let Some(id) = self.unreference(table, id) {
            let free = self.free.clone();
            guard.defer(move || {
                crate::qsbr::count_free();
                free.lock().unwrap_or_else(PoisonError::into_inner).push(id)
            });
        }
    }

    /// Drops a reference; returns the id if that was the last one. The
    /// caller must [`recycle`](Self::recycle) it once no reader can hold it
    /// any more (the FIB does so through its QSBR limbo).
    pub(crate) fn unreference(&mut self, table: &InternTable<T>, id: u32) -> Option<u32> {
        if !table.known(id) {
            return None;
        }
        let value = table.get(id);
        let (_, refs) = self.ids.get_mut(&value)?;
        *refs -= 1;
        if *refs > 0 {
            return None;
        }
        self.ids.remove(&value);
        Some(id)
    }

    /// Makes an id from [`unreference`](Self::unreference) reusable: no
    /// reader may hold it any more.
    pub(crate) fn recycle(&mut self, id: u32) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
    }

    /// Distinct values in use.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes held by the writer's map (approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ids.capacity() * (std::mem::size_of::<(T, (u32, u32))>() + 1)
    }
}

impl<T> Drop for InternTable<T> {
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
