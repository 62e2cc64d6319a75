//! Per-client change queues and their notifier.
//!
//! Each client registered with notifications owns one queue of
//! [`Change`]s. The notifier is RTMv1's manual-reset event made exact: it is
//! signalled exactly while the queue is non-empty, so "wait, then dequeue
//! until the status is not `MoreMessages`" never misses a message and never
//! spins (spec 3.4 and A21).
//!
//! # Queue modes
//! - **FIFO** (the default, RTMv1's): every change is a message, in order.
//!   A client that does not keep up holds one message per event: a full
//!   table's deregistration queues a million.
//! - **Coalescing** (opt-in, [`RegisterOptions::coalescing`], RTMv2
//!   style): at most one pending message per network. A change to a network
//!   that already has one folds into it, keeping the *oldest* previous best
//!   route and the *newest* current one ([`Change::between`] of the two);
//!   if they fold to no change (an add then a delete, or a change and its
//!   reversal) the message disappears. A message keeps the place of the
//!   first change that created it, so messages still come out in the order
//!   their networks first changed. The backlog is bounded by the number of
//!   networks, not of events, and draining it at any moment yields exactly
//!   the net change of every network since its last dequeued message.
//!   For an ECMP client an ECMP paths change ([`Change::is_paths_change`])
//!   folded into a message keeps it alive while the network has a best
//!   route: if the best route folds to no change, the message is a paths
//!   change, which says "read the best paths again".
//!
//! [`RegisterOptions::coalescing`]: crate::RegisterOptions::coalescing

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::change::Change;
use crate::engine_family::Family;
use crate::error::{ERROR_MORE_MESSAGES, NO_ERROR, RtmError};
use crate::route::Route;
use crate::sync::{Condvar, Mutex, lock};
// The notifier is the caller's object, outside the modelled state: std's
// Arc (loom's cannot hold a `dyn`).
use std::sync::Arc;

/// Whether more messages remain after a successful dequeue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DequeueStatus {
    /// That was the last message; the notifier is now reset (`NO_ERROR`).
    Last,
    /// More messages remain; the notifier stays signalled
    /// (`ERROR_MORE_MESSAGES`, 234).
    MoreMessages,
}

impl DequeueStatus {
    /// The Win32 code RTMv1 returns with this status: 0 or 234.
    pub fn code(self) -> u32 {
        match self {
            DequeueStatus::Last => NO_ERROR,
            DequeueStatus::MoreMessages => ERROR_MORE_MESSAGES,
        }
    }
}

/// One dequeued change message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued<F: Family> {
    /// The change, never [`Change::NoChange`].
    pub change: Change<F>,
    /// Whether more remain.
    pub status: DequeueStatus,
}

/// The pending messages of either mode.
enum Pending<F: Family> {
    Fifo(VecDeque<Change<F>>),
    Coalesced(Coalesced<F>),
}

/// One pending message per network, kept in the order of the first change
/// that created it.
///
/// Messages sit in `queue`, oldest first, so a pop reads the next slot in
/// memory: slot `i` has sequence number `head + i`, and a message that
/// folded away leaves its slot empty (skipped on pop, dropped by
/// [`compact`](Self::compact)). `index` finds a network's slot for a push;
/// its entries may be stale (the slot popped, emptied or renumbered) and
/// are checked on use, and dropped once they outnumber the live messages.
/// A pop touches no hash table: a deregistration queues a million
/// messages per subscriber, and a pop that probed a map of a million
/// messages (and SipHash) cost 20 times the FIFO's.
struct Coalesced<F: Family> {
    queue: VecDeque<Option<Folded<F>>>,
    /// Sequence number of `queue[0]`.
    head: u64,
    index: HashMap<F::Network, u64, foldhash::fast::RandomState>,
    /// Non-empty slots of `queue`.
    live: usize,
}

/// A network's pending message, folded.
struct Folded<F: Family> {
    network: F::Network,
    previous: Option<Route<F>>,
    current: Option<Route<F>>,
    /// An ECMP paths change ([`Change::is_paths_change`]) folded in: the
    /// message stays while the network has a best route, even if the best
    /// route itself folds to no change.
    paths: bool,
}

impl<F: Family> Folded<F> {
    /// The message this folds to, if any.
    fn message(&self) -> Option<Change<F>> {
        match Change::between(self.previous.as_ref(), self.current.as_ref()) {
            Change::NoChange => self
                .current
                .filter(|_| self.paths)
                .map(|r| Change::Changed {
                    previous: r,
                    current: r,
                }),
            change => Some(change),
        }
    }
}

impl<F: Family> Coalesced<F> {
    fn new() -> Self {
        Coalesced {
            queue: VecDeque::new(),
            head: 0,
            index: HashMap::default(),
            live: 0,
        }
    }

    /// The pending message of the network `index` names at `seq`, if that
    /// entry is not stale.
    fn slot(&mut self, network: F::Network, seq: u64) -> Option<&mut Option<Folded<F>>> {
        let slot = self.queue.get_mut(seq.checked_sub(self.head)? as usize)?;
        slot.as_ref()
            .is_some_and(|f| f.network == network)
            .then_some(slot)
    }

    fn push(&mut self, change: Change<F>) {
        let Some(network) = change.network() else {
            return; // NoChange is never queued
        };
        let known = self.index.get(&network).copied();
        if let Some(slot) = known.and_then(|seq| self.slot(network, seq)) {
            let f = slot.as_mut().expect("slot() returns live slots");
            f.current = change.current().copied();
            f.paths |= change.is_paths_change();
            if f.message().is_none() {
                // Folded away: the slot empties; the index entry is stale.
                *slot = None;
                self.live -= 1;
                self.compact();
            }
            return;
        }
        let seq = self.head + self.queue.len() as u64;
        self.queue.push_back(Some(Folded {
            network,
            previous: change.previous().copied(),
            current: change.current().copied(),
            paths: change.is_paths_change(),
        }));
        self.live += 1;
        self.index.insert(network, seq);
        if self.index.len() > 2 * self.live + 1024 {
            // Drop stale entries: amortised O(1) per push.
            let (queue, head) = (&self.queue, self.head);
            self.index.retain(|n, seq| {
                seq.checked_sub(head)
                    .and_then(|i| queue.get(i as usize))
                    .is_some_and(|s| s.as_ref().is_some_and(|f| f.network == *n))
            });
        }
    }

    fn pop(&mut self) -> Option<Change<F>> {
        while let Some(slot) = self.queue.pop_front() {
            self.head += 1;
            if let Some(f) = slot {
                self.live -= 1;
                // Live slots never fold to no message (`push` empties them).
                return f.message();
            }
        }
        None
    }

    /// Drops empty slots once they outnumber live ones, so the queue stays
    /// within twice the number of pending networks however often a
    /// network flaps (amortised O(1) per push). The live slots get fresh
    /// sequence numbers, past every old one, so no old index entry can
    /// name them.
    fn compact(&mut self) {
        if self.queue.len() > 2 * self.live + 64 {
            let fresh = self.head + self.queue.len() as u64;
            self.queue.retain(Option::is_some);
            self.head = fresh;
            for (i, f) in self.queue.iter().flatten().enumerate() {
                self.index.insert(f.network, fresh + i as u64);
            }
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.index.clear();
        self.live = 0;
    }
}

impl<F: Family> Pending<F> {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        match self {
            Pending::Fifo(q) => q.len(),
            Pending::Coalesced(c) => c.live,
        }
    }

    fn push(&mut self, change: Change<F>) {
        match self {
            Pending::Fifo(q) => q.push_back(change),
            Pending::Coalesced(c) => c.push(change),
        }
    }

    fn pop(&mut self) -> Option<Change<F>> {
        match self {
            Pending::Fifo(q) => q.pop_front(),
            Pending::Coalesced(c) => c.pop(),
        }
    }

    fn clear(&mut self) {
        match self {
            Pending::Fifo(q) => q.clear(),
            Pending::Coalesced(c) => c.clear(),
        }
    }
}

struct QueueState<F: Family> {
    messages: Pending<F>,
    closed: bool,
    /// Threads inside `wait`. A push wakes only when someone waits: a
    /// subscriber that keeps up empties the queue after every message, and
    /// a futex wake per message would cost the writer more than the change.
    waiters: usize,
    /// An outside event mirroring "the queue is non-empty" (an eventfd for
    /// the C API). Set and reset only under this lock, on the edges, so its
    /// state follows the queue's exactly: a set and a reset racing outside
    /// the lock could leave it reset over a non-empty queue.
    notifier: Option<Arc<dyn Notifier>>,
}

impl<F: Family> QueueState<F> {
    /// Tells the notifier about the edge a change of the queue made.
    fn mirror(&self, was_empty: bool) {
        if let Some(n) = &self.notifier {
            match (was_empty, self.messages.is_empty()) {
                (true, false) => n.set(),
                (false, true) => n.reset(),
                _ => {}
            }
        }
    }
}

/// An outside event that mirrors a client's queue: RTMv1's change event,
/// which the RTM sets when the queue becomes non-empty and resets when a
/// dequeue empties it or finds it empty (spec 3.4, A21). Attach one with
/// [`ClientHandle::set_notifier`](crate::ClientHandle::set_notifier); the C
/// API's eventfd is one.
///
/// Both calls run under the queue's lock, on a writer's thread: they must
/// be short and must not call back into the table.
pub trait Notifier: Send + Sync {
    /// The queue became non-empty.
    fn set(&self);
    /// The queue is empty.
    fn reset(&self);
}

/// A client's queue of change messages with its notifier.
pub struct ChangeQueue<F: Family> {
    state: Mutex<QueueState<F>>,
    signal: Condvar,
}

impl<F: Family> Default for ChangeQueue<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Family> ChangeQueue<F> {
    /// An empty, open FIFO queue.
    pub fn new() -> Self {
        Self::with(Pending::Fifo(VecDeque::new()))
    }

    /// An empty, open coalescing queue (see the module docs).
    pub fn coalescing() -> Self {
        Self::with(Pending::Coalesced(Coalesced::new()))
    }

    fn with(messages: Pending<F>) -> Self {
        ChangeQueue {
            state: Mutex::new(QueueState {
                messages,
                closed: false,
                waiters: 0,
                notifier: None,
            }),
            signal: Condvar::new(),
        }
    }

    /// Appends a message and signals the notifier. Ignored once closed.
    pub fn push(&self, change: Change<F>) {
        if self.push_deferred(change) {
            self.wake();
        }
    }

    /// Appends a message without waking anyone; returns whether a thread
    /// waits for this queue, in which case the caller owes it a [`wake`]
    /// (bulk writers wake once per batch instead of once per message: a
    /// futex wake costs more than the change it announces).
    ///
    /// [`wake`]: ChangeQueue::wake
    pub fn push_deferred(&self, change: Change<F>) -> bool {
        let mut s = lock(&self.state);
        if s.closed {
            return false;
        }
        let was_empty = s.messages.is_empty();
        s.messages.push(change);
        // A coalescing push can also empty the queue (a change folded
        // into its reversal): both edges are mirrored.
        s.mirror(was_empty);
        // Only the empty -> non-empty edge can have waiters, and only if a
        // thread is in `wait`: it registered under this lock before it
        // released it to sleep, so none is missed. A waiter that registers
        // after this push finds the message before it sleeps.
        was_empty && !s.messages.is_empty() && s.waiters > 0
    }

    /// Wakes the threads waiting in [`wait`](ChangeQueue::wait); they
    /// re-check the queue under its lock, so a wake with nothing pending
    /// is harmless.
    pub fn wake(&self) {
        self.signal.notify_all();
    }

    /// Removes the oldest message. `NoMessages` when empty; `InvalidHandle`
    /// once closed (the client deregistered).
    pub fn pop(&self) -> Result<Dequeued<F>, RtmError> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(RtmError::InvalidHandle(
                "the client was deregistered; its change queue is gone".into(),
            ));
        }
        let Some(change) = s.messages.pop() else {
            // An unsolicited dequeue resets the event too (spec 2.6).
            if let Some(n) = &s.notifier {
                n.reset();
            }
            return Err(RtmError::NoMessages);
        };
        s.mirror(false);
        let status = if s.messages.is_empty() {
            DequeueStatus::Last
        } else {
            DequeueStatus::MoreMessages
        };
        Ok(Dequeued { change, status })
    }

    /// Attaches an outside notifier, replacing any earlier one, and brings
    /// it to the queue's state at once (set if messages are pending).
    pub fn set_notifier(&self, notifier: Arc<dyn Notifier>) {
        let mut s = lock(&self.state);
        if s.messages.is_empty() {
            notifier.reset();
        } else {
            notifier.set();
        }
        s.notifier = Some(notifier);
    }

    /// Whether the notifier is signalled (the queue is non-empty).
    pub fn is_signalled(&self) -> bool {
        !lock(&self.state).messages.is_empty()
    }

    /// Number of pending messages.
    pub fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// Whether no message is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until a message is pending (true), the timeout passes (false)
    /// or the queue is closed (false).
    pub fn wait(&self, timeout: Duration) -> bool {
        let s = lock(&self.state);
        if !s.messages.is_empty() {
            return true;
        }
        if s.closed {
            return false;
        }
        let mut s = s;
        s.waiters += 1;
        #[cfg(not(loom))]
        let mut s = self
            .signal
            .wait_timeout_while(s, timeout, |s| s.messages.is_empty() && !s.closed)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        #[cfg(loom)]
        let mut s = {
            // loom models have no time: a timeout is a wait that may end
            // without a message, which callers already handle.
            let _ = timeout;
            while s.messages.is_empty() && !s.closed {
                s = self.signal.wait(s).unwrap();
            }
            s
        };
        s.waiters -= 1;
        !s.messages.is_empty()
    }

    /// Discards every message and wakes all waiters; later pushes are ignored.
    pub fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.messages.clear();
        // The client is gone: its event is reset and then dropped (the
        // eventfd's copy is closed with it).
        if let Some(n) = s.notifier.take() {
            n.reset();
        }
        self.signal.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::family::Ipv4;
    use crate::route::IpRouteData;

    fn route(net: &str, metric: u32) -> Route<Ipv4> {
        Route::new(
            net.parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            1,
            IpRouteData::with_metric(metric),
        )
    }

    #[test]
    fn coalescing_keeps_oldest_previous_and_newest_current() {
        let q = ChangeQueue::<Ipv4>::coalescing();
        let (a1, a2, a3) = (
            route("10.0.0.0/8", 1),
            route("10.0.0.0/8", 2),
            route("10.0.0.0/8", 3),
        );
        let b = route("10.1.0.0/16", 1);
        q.push(Change::Added { current: a1 });
        q.push(Change::Added { current: b });
        q.push(Change::Changed {
            previous: a1,
            current: a2,
        });
        q.push(Change::Changed {
            previous: a2,
            current: a3,
        });
        q.push(Change::Deleted { previous: b });
        // b's add and delete folded away; a's three changes are one add.
        assert_eq!(q.len(), 1);
        let m = q.pop().unwrap();
        assert_eq!(m.change, Change::Added { current: a3 });
        assert_eq!(m.status, DequeueStatus::Last);
        assert!(!q.is_signalled());
        // After a dequeue, the next change starts a new message.
        q.push(Change::Changed {
            previous: a3,
            current: a1,
        });
        q.push(Change::Deleted { previous: a1 });
        assert_eq!(q.pop().unwrap().change, Change::Deleted { previous: a3 });
        assert!(matches!(q.pop(), Err(RtmError::NoMessages)));
    }

    #[test]
    fn coalescing_keeps_first_change_order() {
        let q = ChangeQueue::<Ipv4>::coalescing();
        let nets = ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"];
        for n in nets {
            q.push(Change::Added {
                current: route(n, 1),
            });
        }
        // A later change of the first network keeps its place.
        q.push(Change::Changed {
            previous: route(nets[0], 1),
            current: route(nets[0], 2),
        });
        let order: Vec<_> = (0..3)
            .map(|_| q.pop().unwrap().change.network().unwrap().to_string())
            .collect();
        assert_eq!(order, nets);
    }

    /// A coalescing queue holding one message (an add of the returned
    /// route) after another network flapped `flaps` times.
    fn one_kept_after_flaps(flaps: usize) -> (ChangeQueue<Ipv4>, Route<Ipv4>) {
        let q = ChangeQueue::<Ipv4>::coalescing();
        let keep = route("10.9.0.0/16", 1);
        q.push(Change::Added { current: keep });
        let r = route("10.0.0.0/8", 1);
        for _ in 0..flaps {
            q.push(Change::Added { current: r });
            q.push(Change::Deleted { previous: r });
        }
        (q, keep)
    }

    /// (slots, index entries, live messages) of a coalescing queue.
    fn coalesced_sizes(q: &ChangeQueue<Ipv4>) -> (usize, usize, usize) {
        let s = lock(&q.state);
        let Pending::Coalesced(c) = &s.messages else {
            panic!("not coalescing")
        };
        (c.queue.len(), c.index.len(), c.live)
    }

    #[test]
    fn a_flapping_network_keeps_the_coalesced_queue_small() {
        let (q, keep) = one_kept_after_flaps(100_000);
        assert_eq!(q.len(), 1);
        let (slots, index, live) = coalesced_sizes(&q);
        assert!(
            slots <= 2 * live + 65 && index <= 2 * live + 1025,
            "{slots} slots, {index} index entries"
        );
        assert_eq!(q.pop().unwrap().change, Change::Added { current: keep });
    }

    /// Compaction renumbers the live messages: a later change of one must
    /// still fold into it, not queue a second message; and the index of
    /// networks drained long ago does not grow without bound.
    #[test]
    fn coalescing_folds_after_compaction_and_forgets_drained_networks() {
        let (q, keep) = one_kept_after_flaps(1000);
        let keep2 = route("10.9.0.0/16", 2);
        q.push(Change::Changed {
            previous: keep,
            current: keep2,
        });
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().unwrap().change, Change::Added { current: keep2 });
        assert!(q.pop().is_err());

        for i in 0..5000u32 {
            let net = format!("10.{}.{}.0/24", i >> 8, i & 255);
            q.push(Change::Added {
                current: route(&net, 1),
            });
            assert!(q.pop().is_ok());
        }
        let (_, index, _) = coalesced_sizes(&q);
        assert!(index <= 1025, "{index} index entries");
    }

    #[test]
    fn fifo_keeps_every_event() {
        let q = ChangeQueue::<Ipv4>::new();
        let r = route("10.0.0.0/8", 1);
        for _ in 0..10 {
            q.push(Change::Added { current: r });
            q.push(Change::Deleted { previous: r });
        }
        assert_eq!(q.len(), 20);
    }

    /// A notifier that records its state, as an eventfd would hold it.
    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl Notifier for Flag {
        fn set(&self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        fn reset(&self) {
            self.0.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Flag {
        fn is_set(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Catches an outside event (the C API's eventfd) that drifts from the
    /// queue: left set after the last message was taken (a C client's
    /// poll loop would spin), never set by a push (it would sleep through
    /// messages), or left set when a coalesced change folds to nothing.
    #[test]
    fn an_outside_notifier_mirrors_the_queue_on_every_edge() {
        let r = route("10.0.0.0/8", 1);
        let q = ChangeQueue::<Ipv4>::new();
        q.push(Change::Added { current: r });
        let flag = Arc::new(Flag::default());
        q.set_notifier(flag.clone());
        assert!(flag.is_set(), "attached over a pending message");
        q.push(Change::Deleted { previous: r });
        assert_eq!(q.pop().unwrap().status, DequeueStatus::MoreMessages);
        assert!(flag.is_set());
        assert_eq!(q.pop().unwrap().status, DequeueStatus::Last);
        assert!(!flag.is_set(), "the last message was taken");
        q.push(Change::Added { current: r });
        assert!(flag.is_set(), "a push to an empty queue");
        q.pop().unwrap();
        flag.set(); // set behind the queue's back: an unsolicited dequeue resets it
        assert!(q.pop().is_err());
        assert!(!flag.is_set());

        let c = ChangeQueue::<Ipv4>::coalescing();
        let flag = Arc::new(Flag::default());
        c.set_notifier(flag.clone());
        c.push(Change::Added { current: r });
        assert!(flag.is_set());
        c.push(Change::Deleted { previous: r });
        assert!(
            c.is_empty() && !flag.is_set(),
            "an add and its delete fold to nothing"
        );
        c.push(Change::Added { current: r });
        c.close();
        assert!(!flag.is_set(), "a closed queue's event is reset");
    }
}
