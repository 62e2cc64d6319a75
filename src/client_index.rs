//! A client's index of the networks it has routes at, for deregistration
//! and block operations: two append-only logs.
//!
//! Every write that gives a client its first route at a network appends
//! the network to `gained`; every write that takes its last route there
//! appends it to `lost`. Per network the events alternate (gained, lost,
//! gained, ...), so the networks gained more often than lost are exactly
//! the ones the client has routes at. An append is a push onto a vector
//! under the client's own lock: no hashing and no random probe into a
//! table the size of the client's routes, which is what a hash set cost a
//! full-table load (a fifth of it, measured) and about 16 bytes a route. The logs
//! are folded (sorted, cancelled against each other) when the events
//! outnumber the live networks by more than half, so they stay within a
//! constant factor of the live count; a fold sorts under the lock, which
//! only the same client's writers wait for, never a reader.

use crate::clock::Timestamp;
use crate::sync::{Mutex, lock};

/// The index of one client.
pub(crate) struct ClientIndex<N> {
    logs: Mutex<Logs<N>>,
    /// The networks where the client may have stale routes, from its last
    /// mark (`None`: none marked, or swept since).
    stale: Mutex<Option<StaleNetworks<N>>>,
}

/// The networks of a client's last mark, each with a bit saying whether
/// the client may still have a stale route there, and the hold deadline
/// that sweeps them.
///
/// The list is the client's sorted networks at the mark, so it costs no
/// sort. The mark sets a network's bit when it marks routes there; a
/// refresh by the client that leaves it no stale route there clears the
/// bit (a binary search); both happen under the network's block lock, so
/// a bit is set whenever the client has a stale route at its network. A
/// sweep then visits only the networks still set: after a restart that
/// refreshed 99% of a million routes, 10,000 networks, not a million. A
/// bit is never cleared by other writers (another client's delete, aging):
/// it may stay set over a network with nothing stale, which costs the
/// sweep one visit and nothing else.
struct StaleNetworks<N> {
    networks: Vec<N>,
    marked: Vec<u64>,
    deadline: Option<Timestamp>,
}

impl<N: Copy + Ord> StaleNetworks<N> {
    fn bit(&self, network: &N) -> Option<(usize, u64)> {
        let i = self.networks.binary_search(network).ok()?;
        Some((i / 64, 1 << (i % 64)))
    }
}

struct Logs<N> {
    gained: Vec<N>,
    lost: Vec<N>,
    /// Networks gained more often than lost: the client's network count.
    live: usize,
    /// Cleared for a leaving client: later events (another writer, such
    /// as the aging sweep, taking one of its routes during the
    /// deregistration walk) are not recorded.
    closed: bool,
}

impl<N> Default for ClientIndex<N> {
    fn default() -> Self {
        ClientIndex {
            logs: Mutex::new(Logs {
                gained: Vec::new(),
                lost: Vec::new(),
                live: 0,
                closed: false,
            }),
            stale: Mutex::new(None),
        }
    }
}

/// Folding starts past this many events, so small clients never sort.
const FOLD_MIN: usize = 4096;

impl<N: Copy + Ord> ClientIndex<N> {
    /// The client got its first route at `network`.
    pub(crate) fn gained(&self, network: N) {
        let mut l = lock(&self.logs);
        if l.closed {
            return;
        }
        l.gained.push(network);
        l.live += 1;
    }

    /// The client lost its last route at `network`.
    pub(crate) fn lost(&self, network: N) {
        let mut l = lock(&self.logs);
        if l.closed {
            return;
        }
        l.lost.push(network);
        l.live -= 1;
        if l.gained.len() + l.lost.len() > FOLD_MIN + l.live * 3 / 2 {
            l.fold();
        }
    }

    /// The networks the client has routes at, ascending.
    pub(crate) fn networks(&self) -> Vec<N> {
        let mut l = lock(&self.logs);
        l.fold();
        l.gained.clone()
    }

    /// How many networks the client has routes at.
    pub(crate) fn len(&self) -> usize {
        lock(&self.logs).live
    }

    /// Forgets everything, frees the logs and records nothing more (the
    /// client is leaving).
    pub(crate) fn clear(&self) {
        let mut l = lock(&self.logs);
        l.gained = Vec::new();
        l.lost = Vec::new();
        l.live = 0;
        l.closed = true;
        *lock(&self.stale) = None;
    }

    /// Starts a mark of the client's routes at `networks` (its networks,
    /// ascending), every bit clear until the mark walk sets it; replaces
    /// any earlier mark and its deadline.
    pub(crate) fn begin_stale(&self, networks: Vec<N>, deadline: Option<Timestamp>) {
        debug_assert!(networks.is_sorted());
        let words = networks.len().div_ceil(64);
        *lock(&self.stale) = Some(StaleNetworks {
            networks,
            marked: vec![0; words],
            deadline,
        });
    }

    /// The mark walk marked routes of the client at `network` (under its lock).
    pub(crate) fn stale_marked(&self, network: N) {
        let mut s = lock(&self.stale);
        if let Some(s) = s.as_mut()
            && let Some((w, b)) = s.bit(&network)
        {
            s.marked[w] |= b;
        }
    }

    /// A write by the client left it no stale route at `network`, where
    /// it had one (under the network's block lock).
    pub(crate) fn stale_cleared(&self, network: N) {
        let mut s = lock(&self.stale);
        if let Some(s) = s.as_mut()
            && let Some((w, b)) = s.bit(&network)
        {
            s.marked[w] &= !b;
        }
    }

    /// Ends the mark: the networks where the client may still have stale
    /// routes, ascending (none if it was never marked or swept since).
    pub(crate) fn take_stale(&self) -> Vec<N> {
        let Some(s) = lock(&self.stale).take() else {
            return Vec::new();
        };
        // Word by word: after a restart that refreshed 99% of a million
        // networks, most words are 0 and skipped whole.
        let mut out = Vec::new();
        for (w, &bits) in s.marked.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                out.push(s.networks[w * 64 + bits.trailing_zeros() as usize]);
                bits &= bits - 1;
            }
        }
        out
    }

    /// When the current mark's hold ends, if it has one.
    pub(crate) fn stale_deadline(&self) -> Option<Timestamp> {
        lock(&self.stale).as_ref().and_then(|s| s.deadline)
    }
}

impl<N: Copy + Ord> Logs<N> {
    /// Leaves `gained` as the sorted live networks and `lost` empty.
    fn fold(&mut self) {
        if self.lost.is_empty() && self.gained.is_sorted() {
            return; // a load in network order: already folded
        }
        // Stable sort: it finds the runs already there (the sorted result
        // of the last fold, then the tail appended since) and merges them,
        // near linear for a big client with a little churn.
        self.gained.sort();
        self.lost.sort_unstable();
        // Per network: gains minus losses is 1 (live) or 0 (gone).
        let mut lost = self.lost.iter().peekable();
        let mut keep = 0;
        let mut i = 0;
        while i < self.gained.len() {
            let n = self.gained[i];
            let mut gains = 0usize;
            while i < self.gained.len() && self.gained[i] == n {
                gains += 1;
                i += 1;
            }
            let mut losses = 0usize;
            while lost.next_if(|&&m| m < n).is_some() {}
            while lost.next_if(|&&m| m == n).is_some() {
                losses += 1;
            }
            debug_assert!(gains == losses || gains == losses + 1);
            if gains > losses {
                self.gained[keep] = n;
                keep += 1;
            }
        }
        self.gained.truncate(keep);
        self.gained.shrink_to(keep + keep / 4);
        self.lost.clear();
        debug_assert_eq!(keep, self.live);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::ClientIndex;
    use std::collections::BTreeSet;

    #[test]
    fn tracks_exactly_the_live_networks_through_folds() {
        let index = ClientIndex::<u32>::default();
        let mut live = BTreeSet::new();
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (x >> 40) as u32 % 5000;
            if live.insert(n) {
                index.gained(n);
            } else {
                live.remove(&n);
                index.lost(n);
            }
            assert_eq!(index.len(), live.len());
        }
        assert_eq!(index.networks(), live.iter().copied().collect::<Vec<_>>());
        // Folding kept the logs near the live count.
        let l = index.logs.lock().unwrap();
        assert!(l.gained.len() + l.lost.len() <= 4096 + live.len() * 3 / 2 + 1);
    }

    /// A sweep visits exactly the marked networks not cleared since:
    /// catches a bit computed from the wrong position (a network's
    /// neighbour swept instead of it, or a refresh clearing another
    /// network's bit) and a sweep that forgets to end the mark.
    #[test]
    fn the_stale_set_keeps_the_marked_networks_not_refreshed() {
        let index = ClientIndex::<u32>::default();
        let networks: Vec<u32> = (0..1000).map(|i| i * 3).collect();
        index.begin_stale(networks.clone(), None);
        for &n in &networks {
            if n % 2 == 0 {
                index.stale_marked(n);
            }
        }
        // Refreshed: every fourth network; a network not in the list is
        // ignored.
        for &n in &networks {
            if n % 4 == 0 {
                index.stale_cleared(n);
            }
        }
        index.stale_cleared(1);
        let want: Vec<u32> = networks
            .iter()
            .copied()
            .filter(|n| n % 2 == 0 && n % 4 != 0)
            .collect();
        assert_eq!(index.take_stale(), want);
        assert!(index.take_stale().is_empty(), "a sweep ends the mark");
    }

    #[test]
    fn an_ordered_load_is_already_folded() {
        let index = ClientIndex::<u32>::default();
        for n in 0..10_000 {
            index.gained(n);
        }
        assert_eq!(index.networks(), (0..10_000).collect::<Vec<_>>());
        index.clear();
        assert_eq!(index.len(), 0);
        assert!(index.networks().is_empty());
        // A leaving client's index records nothing more: a concurrent
        // writer taking one of its routes does not underflow it.
        index.lost(5);
        index.gained(7);
        assert_eq!(index.len(), 0);
        assert!(index.networks().is_empty());
    }
}
