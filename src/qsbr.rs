//! Quiescent-state-based reclamation (QSBR): how the forwarding plane
//! frees what its readers may still hold, without ever making a reader
//! wait, lock, write a shared line or run someone else's deferred work.
//!
//! # The problem
//! A FIB writer replaces a node by publishing a copy and unlinking the
//! original. A lookup that loaded the original's address just before the
//! swap may still be reading it, so the writer may not free (or reuse) it
//! yet. It may once every reader that could hold it has finished the
//! lookup it was in. Epoch schemes (crossbeam-epoch) learn that by having
//! every reader *pin*: a read-modify-write on entry, and every so often a
//! collection that runs other threads' deferred frees on the reader's own
//! thread, locks and all. A forwarding thread cannot afford either.
//!
//! # The scheme (as DPDK's `rte_rcu_qsbr` and liburcu's QSBR flavour)
//! - A [`Domain`] keeps a grace-period counter `gp` and one slot per
//!   registered reader. A slot holds [`OFFLINE`] (0) or the value of `gp`
//!   the reader saw at its last *quiescent state*: a moment when it held
//!   no reference into the structure (between two bursts of lookups).
//! - A reader's lookups are plain loads. Between bursts it reports a
//!   quiescent state ([`Domain::quiescent`]: one load of `gp`, one store
//!   to its own slot). An idle reader goes offline ([`Domain::offline`]:
//!   one store) and holds nothing back; coming online again
//!   ([`Domain::online`]) is a store and a barrier.
//! - The writer unlinks, then puts what it unlinked in a [`Limbo`]. To
//!   reclaim, the limbo closes its open batch under a new token
//!   ([`Domain::advance`]: `gp` moves on) and asks the domain for the
//!   oldest token some online reader may still be before
//!   ([`Domain::safe_token`]): a batch whose token every online reader has
//!   reached was unlinked before each of them last passed a quiescent
//!   state, so none can hold it; it is freed, a bounded number of items a
//!   call. All of this runs on the writer's side.
//!
//! # Why the orderings suffice
//! - *Report* (`gp` Acquire load, slot Release store) against the writer's
//!   Acquire load of the slot: a writer that sees a value >= t sees every
//!   read the reader made before reporting as happened-before its free;
//!   and the reader, having acquired `gp` = t, which the writer stored
//!   (Release) after unlinking batch t, cannot load an unlinked pointer
//!   afterwards.
//! - *Offline* (Release store of 0): the same, for the reads before it.
//! - *Online* is a Dekker pattern: the reader stores its slot, then reads
//!   the structure; the writer unlinks, then reads the slot. Either must
//!   see the other's store, which needs a store-load barrier on both
//!   sides. The reader's is a *light* barrier and the writer's a *heavy*
//!   one (`light_barrier`, `heavy_barrier`): on Linux, where the
//!   process registered for `membarrier(2)`, the light one is a compiler
//!   fence and the heavy one the system call, which runs a full barrier on
//!   every CPU running this process (liburcu's "memb" flavour); elsewhere
//!   both are `fence(SeqCst)`. Registration pairs the same way, so a new
//!   reader is never missed by a scan.
//!
//! # What it costs a reader, and what it asks of one
//! A registered reader ([`crate::FibReader`]) pays nothing per lookup and
//! a load and a store per quiescent report; `LpmFib::lookup`, which has no
//! reader of its own, goes online and offline around each call through a
//! per-thread slot (two stores and a light barrier). In exchange a
//! registered reader must report or go offline now and then: an online
//! reader that never reports holds every later free back (memory grows;
//! nothing breaks and nobody waits). The loom model
//! `loom-tests/tests/fib_qsbr.rs` runs this module's own code.

#[cfg(not(loom))]
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering, lock};

/// A slot's value while its reader is offline (or the slot unused).
pub const OFFLINE: u64 = 0;

/// A slot on its own cache line: readers write only their own.
#[repr(align(64))]
struct Slot(AtomicU64);

/// Registered readers of one structure and its grace-period counter.
pub struct Domain {
    /// The current token; starts at 1 (0 is [`OFFLINE`]). Written by
    /// writers only, read by reporting readers.
    gp: Slot,
    slots: Box<[Slot]>,
    /// One past the highest slot ever handed out: the writer's scan bound.
    high: AtomicUsize,
    /// Slots free for registration.
    free: Mutex<Vec<usize>>,
    /// Under loom, the location the barriers meet at (see [`light_barrier`]).
    #[cfg(loom)]
    barrier: AtomicUsize,
    #[cfg(loom)]
    weakening: Weakening,
}

/// Planted weakenings of the protocol, for the loom suite to prove it can
/// catch them (only under `cfg(loom)`).
#[cfg(loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weakening {
    /// The protocol as written.
    #[default]
    None,
    /// Free a batch one grace period early (its token one past the safe one).
    OneEarly,
    /// Report a quiescent state with a Relaxed store.
    RelaxedReport,
    /// Come online with a Relaxed store (what a first version did).
    RelaxedOnline,
}

/// Which of a reader's slot stores an ordering is for.
#[derive(Clone, Copy)]
enum SlotStore {
    /// A quiescent-state report.
    Report,
    /// Coming online.
    Online,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("gp", &self.gp.0.load(Ordering::Relaxed))
            .field("readers", &self.high.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// A domain for at most `capacity` readers registered at once.
    pub fn new(capacity: usize) -> Self {
        register_membarrier();
        Domain {
            gp: Slot(AtomicU64::new(1)),
            slots: (0..capacity)
                .map(|_| Slot(AtomicU64::new(OFFLINE)))
                .collect(),
            high: AtomicUsize::new(0),
            free: Mutex::new((0..capacity).rev().collect()),
            #[cfg(loom)]
            barrier: AtomicUsize::new(0),
            #[cfg(loom)]
            weakening: Weakening::None,
        }
    }

    /// The same domain with a planted weakening (loom models only).
    #[cfg(loom)]
    pub fn weakened(capacity: usize, weakening: Weakening) -> Self {
        Domain {
            weakening,
            ..Domain::new(capacity)
        }
    }

    /// Registers a reader, online; `None` if every slot is taken.
    pub fn register(&self) -> Option<usize> {
        let i = {
            let mut free = lock(&self.free);
            let i = free.pop()?;
            // Relaxed: only registrations store `high`, under this lock;
            // the barrier in `online` orders the store before our first
            // read (registration is a Dekker pair with the scan).
            if self.high.load(Ordering::Relaxed) <= i {
                self.high.store(i + 1, Ordering::Relaxed);
            }
            i
        };
        self.online(i);
        Some(i)
    }

    /// As [`register`](Self::register), waiting (yielding) for a slot when
    /// every one is taken (thousands of readers at once).
    pub fn register_waiting(&self) -> usize {
        loop {
            if let Some(i) = self.register() {
                return i;
            }
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }

    /// Returns slot `i` (offline first). The caller's reader is gone.
    pub fn unregister(&self, i: usize) {
        self.offline(i);
        lock(&self.free).push(i);
    }

    /// Reader `i` holds no reference into the structure now.
    #[inline]
    pub fn quiescent(&self, i: usize) {
        // Acquire pairs with `advance`'s Release: what was unlinked before
        // this token is invisible to our later loads.
        let t = self.gp.0.load(Ordering::Acquire);
        // Release pairs with `safe_token`'s Acquire: our reads so far happen
        // before any free that counts this report.
        self.slots[i]
            .0
            .store(t, self.slot_store_ordering(SlotStore::Report));
    }

    /// Reader `i` stops reading and holds nothing back.
    #[inline]
    pub fn offline(&self, i: usize) {
        // Release: as in `quiescent`.
        self.slots[i].0.store(OFFLINE, Ordering::Release);
    }

    /// Reader `i` starts reading again.
    #[inline]
    pub fn online(&self, i: usize) {
        // Acquire: as in `quiescent`.
        let t = self.gp.0.load(Ordering::Acquire);
        // The light barrier orders this store before our reads (module
        // docs, "Online"). Release, not Relaxed, for the reads *before*:
        // a writer that reads this value instead of our earlier offline
        // store must still see those reads as done (a Relaxed store would
        // end the offline store's release sequence; the loom model found
        // exactly that free of a node read before going offline).
        self.slots[i]
            .0
            .store(t, self.slot_store_ordering(SlotStore::Online));
        self.light_barrier();
    }

    /// The ordering of a reader's slot store: Release (see `quiescent` and
    /// `online`), unless a loom model weakened exactly this store.
    #[inline(always)]
    fn slot_store_ordering(&self, store: SlotStore) -> Ordering {
        #[cfg(loom)]
        if matches!(
            (store, self.weakening),
            (SlotStore::Report, Weakening::RelaxedReport)
                | (SlotStore::Online, Weakening::RelaxedOnline)
        ) {
            return Ordering::Relaxed;
        }
        let _ = store;
        Ordering::Release
    }

    /// Writer side: closes the current grace period; returns its token.
    /// Everything unlinked before this call is safe to free once
    /// [`safe_token`](Self::safe_token) is at least the token.
    pub fn advance(&self) -> u64 {
        // AcqRel read-modify-write: writers of one domain may be several
        // (the FIB serialises its own); Release pairs with the readers'
        // Acquire loads of `gp` (see `quiescent`).
        self.gp.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Writer side: the smallest token an online reader has reported
    /// (`u64::MAX` if none is online). Every batch whose token is at most
    /// this is unreachable to every reader.
    pub fn safe_token(&self) -> u64 {
        self.heavy_barrier();
        // Relaxed: the barrier orders a registration's bump before its
        // slot store, and a missed slot is one whose reader sees our unlinks.
        let high = self.high.load(Ordering::Relaxed);
        let mut safe = u64::MAX;
        for s in &self.slots[..high.min(self.slots.len())] {
            // Acquire pairs with the readers' Release reports.
            let v = s.0.load(Ordering::Acquire);
            if v != OFFLINE {
                safe = safe.min(v);
            }
        }
        #[cfg(loom)]
        if self.weakening == Weakening::OneEarly {
            return safe.saturating_add(1);
        }
        safe
    }

    /// Readers registered now (approximately: for statistics).
    pub fn readers(&self) -> usize {
        self.slots.len() - lock(&self.free).len()
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn light_barrier(&self) {
        light_barrier();
    }

    #[cfg(not(loom))]
    fn heavy_barrier(&self) {
        heavy_barrier();
    }

    /// Under loom: an AcqRel read-modify-write of one location on both
    /// sides. Read-modify-writes of one location are totally ordered, and
    /// the later one acquires the earlier one's prior stores: exactly the
    /// store-load pairing the real barriers give (loom does not model
    /// `membarrier`, and models SeqCst fences more weakly than C++ does).
    #[cfg(loom)]
    fn light_barrier(&self) {
        self.barrier.fetch_add(1, Ordering::AcqRel);
    }

    #[cfg(loom)]
    fn heavy_barrier(&self) {
        self.barrier.fetch_add(1, Ordering::AcqRel);
    }
}

/// What a writer has unlinked and not freed yet, in batches by token.
#[derive(Debug)]
pub struct Limbo<T> {
    open: Vec<T>,
    closed: VecDeque<(u64, Vec<T>)>,
    held: usize,
}

impl<T> Default for Limbo<T> {
    fn default() -> Self {
        Limbo {
            open: Vec::new(),
            closed: VecDeque::new(),
            held: 0,
        }
    }
}

impl<T> Limbo<T> {
    /// Holds `item`, which the caller has already unlinked.
    pub fn retire(&mut self, item: T) {
        self.open.push(item);
        self.held += 1;
    }

    /// Items retired since the last [`reclaim`](Self::reclaim).
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// Items held, not yet freed.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Closes the open batch and frees, through `free`, at most `limit`
    /// items of the batches no reader can reach any more, oldest first.
    /// Returns how many it freed.
    pub fn reclaim(&mut self, domain: &Domain, limit: usize, mut free: impl FnMut(T)) -> usize {
        if !self.open.is_empty() {
            let token = domain.advance();
            self.closed
                .push_back((token, std::mem::take(&mut self.open)));
        }
        if self.closed.is_empty() {
            return 0;
        }
        let safe = domain.safe_token();
        let mut freed = 0;
        while freed < limit {
            let Some((token, batch)) = self.closed.front_mut() else {
                break;
            };
            if *token > safe {
                break;
            }
            let take = batch.len().min(limit - freed);
            for item in batch.drain(batch.len() - take..) {
                free(item);
            }
            freed += take;
            if batch.is_empty() {
                self.closed.pop_front();
            }
        }
        self.held -= freed;
        freed
    }
}

// ----- who runs the frees -----------------------------------------------

thread_local! {
    static FREES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one deferred free run on this thread (every free of a FIB node
/// or next-hop id, and every RIB route set or attribute id reclaimed).
#[inline]
pub(crate) fn count_free() {
    // A thread being torn down has nothing left to count for.
    let _ = FREES.try_with(|c| c.set(c.get() + 1));
}

/// How many deferred frees rtm ran on the calling thread so far: FIB nodes
/// and next-hop ids (freed by writers through the QSBR limbo), RIB route
/// sets and attribute ids (crossbeam-epoch runs these on whichever thread
/// collects: writers, or control-plane readers). A forwarding thread that
/// only looks up through the FIB always reads 0; the benchmarks report it.
pub fn frees_on_this_thread() -> u64 {
    FREES.try_with(|c| c.get()).unwrap_or(0)
}

// ----- barriers ---------------------------------------------------------

#[cfg(not(loom))]
use std::sync::atomic::AtomicBool;

/// Whether this process registered for private expedited `membarrier(2)`
/// (then readers' barriers are compiler fences).
#[cfg(not(loom))]
static MEMBARRIER: AtomicBool = AtomicBool::new(false);

#[cfg(all(not(loom), target_os = "linux"))]
fn register_membarrier() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        const QUERY: libc::c_long = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
        // SAFETY: membarrier takes plain integers and touches no memory of
        // ours.
        let cmds = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0, 0) };
        if cmds < 0 || cmds & PRIVATE_EXPEDITED == 0 {
            return;
        }
        // SAFETY: as above.
        if unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0 {
            // Relaxed is enough: a reader that sees `true` late still uses
            // a full fence (stronger); a writer that sees `true` issues the
            // system call, which works from registration on.
            MEMBARRIER.store(true, Ordering::Relaxed);
        }
    });
}

#[cfg(all(not(loom), not(target_os = "linux")))]
fn register_membarrier() {}

#[cfg(loom)]
fn register_membarrier() {}

/// The reader's half of the online barrier (see the module docs).
#[cfg(not(loom))]
#[inline(always)]
fn light_barrier() {
    // Relaxed: only selects the barrier; see `register_membarrier`.
    if MEMBARRIER.load(Ordering::Relaxed) {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The writer's half: a full barrier on every CPU running this process.
#[cfg(not(loom))]
fn heavy_barrier() {
    // Relaxed: as in `light_barrier`.
    #[cfg(target_os = "linux")]
    if MEMBARRIER.load(Ordering::Relaxed) {
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        loop {
            // SAFETY: as in `register_membarrier`.
            let rc = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
            if rc == 0 {
                return;
            }
            // Only EINTR-like transient failures are possible once
            // registered; anything else would leave readers unordered.
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("rtm: membarrier failed after registration: {err}");
                std::process::abort();
            }
        }
    }
    std::sync::atomic::fence(Ordering::SeqCst);
}

// ----- per-thread readers for calls without a reader of their own --------

/// This thread's slots, one per domain it looked up through.
#[cfg(not(loom))]
struct LocalSlots {
    entries: Vec<(std::sync::Arc<Domain>, usize)>,
}

#[cfg(not(loom))]
impl Drop for LocalSlots {
    fn drop(&mut self) {
        // The slots go back: the fast path must not find them.
        let _ = LAST.try_with(|last| last.set((std::ptr::null(), 0)));
        for (d, i) in self.entries.drain(..) {
            d.unregister(i);
        }
    }
}

#[cfg(not(loom))]
thread_local! {
    static LOCAL: RefCell<LocalSlots> = const { RefCell::new(LocalSlots { entries: Vec::new() }) };
    /// The domain (compared, never dereferenced) and slot of this thread's
    /// last call: the fast path of a thread looking up through one FIB, one
    /// thread-local load and compare. Set only while `LOCAL` holds that
    /// domain's `Arc` and slot, so the domain is alive and no other can
    /// have its address; cleared before `LOCAL` gives any slot back.
    static LAST: Cell<(*const Domain, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Runs `f` as a reader of `domain` through this thread's own slot: online
/// before, offline after, so the thread never holds reclamation back
/// between calls. The slot is registered on the thread's first call and
/// returned when the thread exits; slots of domains dropped meanwhile are
/// returned on the next registration. Where no slot can be had (every
/// slot taken, or the thread is exiting), `f` runs with a slot registered
/// for the call.
///
/// Under loom, whose threads share one OS thread (and so its
/// thread-locals), every call registers a slot of its own instead.
#[cfg(loom)]
pub(crate) fn read_locally<R>(domain: &std::sync::Arc<Domain>, f: impl FnOnce() -> R) -> R {
    read_registered(domain, f)
}

#[cfg(not(loom))]
#[inline]
pub(crate) fn read_locally<R>(domain: &std::sync::Arc<Domain>, f: impl FnOnce() -> R) -> R {
    let me = std::sync::Arc::as_ptr(domain);
    if let Ok((d, i)) = LAST.try_with(Cell::get)
        && d == me
    {
        domain.online(i);
        let r = f();
        domain.offline(i);
        return r;
    }
    let slot = LOCAL
        .try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            // Whatever it pointed at, it may be pruned below.
            let _ = LAST.try_with(|last| last.set((std::ptr::null(), 0)));
            if let Some(&(_, i)) = l
                .entries
                .iter()
                .find(|(d, _)| std::sync::Arc::ptr_eq(d, domain))
            {
                let _ = LAST.try_with(|last| last.set((me, i)));
                return Some(i);
            }
            // Give back the slots of domains only this thread still holds.
            l.entries.retain(|(d, i)| {
                let gone = std::sync::Arc::strong_count(d) == 1;
                if gone {
                    d.unregister(*i);
                }
                !gone
            });
            let i = domain.register()?;
            domain.offline(i);
            l.entries.push((domain.clone(), i));
            let _ = LAST.try_with(|last| last.set((me, i)));
            Some(i)
        })
        .ok()
        .flatten();
    match slot {
        Some(i) => {
            domain.online(i);
            let r = f();
            domain.offline(i);
            r
        }
        None => read_registered(domain, f),
    }
}

/// `f` under a slot registered for the call; waits for a free slot if
/// every one is taken (thousands of readers at once).
#[cold]
fn read_registered<R>(domain: &Domain, f: impl FnOnce() -> R) -> R {
    let i = domain.register_waiting();
    let r = f();
    domain.unregister(i);
    r
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Catches a limbo that frees a batch while a reader that was online
    /// before it was closed has not reported since.
    #[test]
    fn a_batch_waits_for_every_online_reader() {
        let d = Domain::new(4);
        let r = d.register().unwrap();
        let mut limbo = Limbo::default();
        limbo.retire(1);
        let mut freed = Vec::new();
        assert_eq!(limbo.reclaim(&d, 100, |x| freed.push(x)), 0);
        d.quiescent(r);
        assert_eq!(limbo.reclaim(&d, 100, |x| freed.push(x)), 1);
        assert_eq!(freed, [1]);
        assert!(limbo.is_empty());
    }

    /// Catches an offline reader holding reclamation back, and a limit
    /// that is not honoured.
    #[test]
    fn offline_readers_hold_nothing_back_and_frees_are_bounded() {
        let d = Domain::new(4);
        let r = d.register().unwrap();
        d.offline(r);
        let mut limbo = Limbo::default();
        for x in 0..10 {
            limbo.retire(x);
        }
        let mut n = 0;
        assert_eq!(limbo.reclaim(&d, 4, |_| n += 1), 4);
        assert_eq!(limbo.len(), 6);
        assert_eq!(limbo.reclaim(&d, 100, |_| n += 1), 6);
        assert_eq!(n, 10);
        d.online(r);
        limbo.retire(11);
        assert_eq!(limbo.reclaim(&d, 100, |_| n += 1), 0, "online again holds");
        d.unregister(r);
        assert_eq!(limbo.reclaim(&d, 100, |_| n += 1), 1);
    }

    /// Catches per-thread slots that are never given back (a thread per
    /// call would exhaust the domain).
    /// Would catch the per-thread fast path serving a domain it has no
    /// slot in (planted: the domain comparison dropped, so every call after
    /// the first reuses the first domain's slot number): each new domain
    /// must get a slot of its own, online only during the call.
    #[test]
    fn the_fast_path_serves_only_its_own_domain() {
        let kept = std::sync::Arc::new(Domain::new(4));
        for _ in 0..64 {
            let d = std::sync::Arc::new(Domain::new(4));
            read_locally(&d, || assert_eq!(d.safe_token(), 1, "online in d"));
            assert_eq!(d.readers(), 1);
            assert_eq!(d.safe_token(), u64::MAX, "offline after the call");
            read_locally(&kept, || ());
            drop(d);
        }
        assert_eq!(kept.readers(), 1);
    }

    #[test]
    fn thread_slots_are_returned_when_threads_exit() {
        let d = std::sync::Arc::new(Domain::new(2));
        for _ in 0..8 {
            let d = d.clone();
            std::thread::spawn(move || read_locally(&d, || ()))
                .join()
                .unwrap();
        }
        assert_eq!(d.readers(), 0);
        assert_eq!(read_locally(&d, || 7), 7);
        assert_eq!(d.readers(), 1, "this thread keeps its slot");
    }
}
