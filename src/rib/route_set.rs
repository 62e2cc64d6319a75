//! A destination's route set and best-route selection (spec 3.1).
//!
//! A route set is an immutable value: writers build a new one and publish it
//! whole, so readers see either the old set with its best route or the new
//! one, never a mix.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};

use crossbeam_epoch::Pointable;
use smallvec::SmallVec;

use crate::clock::Timestamp;
use crate::engine_family::Family;
use crate::route::{ProtocolId, Route, RouteData, RouteKey, Ttl};

/// How long a route lives after its timestamp: the TTL it was added with,
/// in 4 bytes (a full table stores a million). Its deadline is always the
/// route's timestamp plus this, since every write that sets one sets the
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lifetime(u32);

impl Lifetime {
    /// `Ttl::Infinite` (a finite TTL is at most `MAX_TTL_SECONDS`, far
    /// below this).
    pub(crate) const NEVER: Lifetime = Lifetime(u32::MAX);

    /// The lifetime of a route added with `ttl`.
    pub(crate) fn of(ttl: Ttl) -> Lifetime {
        match ttl {
            Ttl::Infinite => Lifetime::NEVER,
            Ttl::Seconds(s) => Lifetime(s.min(u32::MAX - 1)),
        }
    }

    /// The deadline of a route stamped at `timestamp`, if any.
    pub(crate) fn deadline(self, timestamp: Timestamp) -> Option<Timestamp> {
        (self != Lifetime::NEVER).then(|| timestamp.plus_seconds(self.0 as u64))
    }
}

/// One stored route with the RTM's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<F: Family> {
    pub(crate) route: Route<F>,
    /// The owning protocol's priority when the route was last written.
    pub(crate) priority: u32,
    /// How long after its timestamp the route ages out, if it does.
    pub(crate) lifetime: Lifetime,
    /// `false` after `block_set_enable(false)`: kept, but never best.
    pub(crate) enabled: bool,
    /// Marked stale by a graceful restart (`mark_stale`,
    /// `deregister_graceful`) and not refreshed since.
    pub(crate) stale: Freshness,
    /// Its protocol had opted in to ECMP when the route was written
    /// ([`PriorityTable::with_multipath`](crate::PriorityTable::with_multipath)):
    /// it shares forwarding with equal-cost routes of such protocols.
    pub(crate) multipath: bool,
}

/// Whether a route was refreshed since its client was marked stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Freshness {
    /// Added or refreshed since (or never marked).
    Fresh,
    /// Kept from before a restart; `yields`: it loses to any fresh route
    /// of equal protocol priority (its protocol's
    /// [`PriorityTable::with_stale_yielding`](crate::PriorityTable::with_stale_yielding)
    /// when it was marked).
    Stale {
        /// Ranks after every fresh route of its priority.
        yields: bool,
    },
}

impl Freshness {
    /// Whether the route is stale.
    pub(crate) fn is_stale(self) -> bool {
        matches!(self, Freshness::Stale { .. })
    }

    /// Whether it ranks after the fresh routes of its priority.
    fn yields(self) -> bool {
        matches!(self, Freshness::Stale { yields: true })
    }
}

impl<F: Family> Entry<F> {
    /// When the route ages out, if it does.
    pub(crate) fn expires(&self) -> Option<Timestamp> {
        self.lifetime.deadline(self.route.timestamp)
    }

    /// Whether the route's deadline has come at `now`.
    pub(crate) fn is_due(&self, now: Timestamp) -> bool {
        self.expires().is_some_and(|t| t <= now)
    }

    /// The selection rank: (protocol priority, yielding stale, metric),
    /// lower wins: a stale route that yields loses to every fresh route of
    /// its priority whatever their metrics (the RIB preference of BGP
    /// graceful restart), and otherwise competes on its metric.
    pub(crate) fn rank(&self) -> (u32, bool, <F::Data as RouteData>::Metric) {
        (self.priority, self.stale.yields(), self.route.data.metric())
    }

    pub(crate) fn is_candidate(&self, exclude_invalid: bool) -> bool {
        self.enabled && (!exclude_invalid || self.route.data.is_valid())
    }
}

/// The part of a route a full table holds few distinct values of: the
/// family data (metric and flags), the protocol's private data, the
/// protocol and its priority, the lifetime, and where the route forwards
/// (next hop and interface: one session's table has one or a few of each).
/// Interned per family, so a stored route carries a 32-bit id instead of
/// 80 bytes (IPv4). A table whose every route has attributes of its own
/// pays an entry per route instead (the table's value and its map's key):
/// interning saves memory exactly as far as routes share them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Attrs<F: Family> {
    pub(crate) protocol_data: [u32; 4],
    pub(crate) data: F::Data,
    pub(crate) priority: u32,
    pub(crate) lifetime: Lifetime,
    pub(crate) interface: u32,
    pub(crate) protocol: ProtocolId,
    pub(crate) next_hop: F::NextHop,
    pub(crate) multipath: bool,
}

impl<F: Family> Attrs<F> {
    pub(crate) fn of(e: &Entry<F>) -> Self {
        Attrs {
            protocol_data: e.route.protocol_data,
            data: e.route.data,
            priority: e.priority,
            lifetime: e.lifetime,
            interface: e.route.interface,
            protocol: e.route.protocol,
            next_hop: e.route.next_hop,
            multipath: e.multipath,
        }
    }

    /// What the intern table's unused entries hold (never read as a
    /// route's: ids are handed out only with their value written).
    pub(crate) fn placeholder() -> Self {
        Attrs {
            protocol_data: [0; 4],
            data: F::Data::default(),
            priority: 0,
            lifetime: Lifetime::NEVER,
            interface: 0,
            protocol: ProtocolId(0),
            next_hop: F::UNSPECIFIED_NEXT_HOP,
            multipath: false,
        }
    }
}

/// An [`Entry`] as a published set stores it: without its network (the
/// destination's key), everything but its timestamp interned as
/// [`Attrs`], and 4-byte aligned (the timestamp in two halves) so nothing
/// is padding: 12 bytes for every family, where an `Entry` takes 96 / 112
/// / 88 (IPv4 / IPv6 / IPX).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored<F: Family> {
    timestamp: [u32; 2],
    /// The interned [`Attrs`]' id (below 2^24), [`Stored::ENABLED`],
    /// [`Stored::STALE`] and [`Stored::YIELDS`]. The marks are not part
    /// of the interned attributes, so marking a million routes stale
    /// touches no attribute reference.
    attrs_enabled: u32,
    family: std::marker::PhantomData<F>,
}

impl<F: Family> Stored<F> {
    /// The `enabled` flag's bit in `attrs_enabled` (ids have 24 bits).
    const ENABLED: u32 = 1 << 31;
    /// [`Freshness::Stale`]'s bit.
    const STALE: u32 = 1 << 30;
    /// `yields` of [`Freshness::Stale`].
    const YIELDS: u32 = 1 << 29;
    /// Every mark bit.
    const MARKS: u32 = Self::ENABLED | Self::STALE | Self::YIELDS;

    /// `e`, whose attributes are interned as `attrs` (below 2^24).
    pub(crate) fn of(e: &Entry<F>, attrs: u32) -> Self {
        debug_assert!(attrs < crate::intern::MAX_IDS);
        let t = e.route.timestamp.0;
        Stored {
            timestamp: [t as u32, (t >> 32) as u32],
            attrs_enabled: attrs
                | if e.enabled { Self::ENABLED } else { 0 }
                | match e.stale {
                    Freshness::Fresh => 0,
                    Freshness::Stale { yields: false } => Self::STALE,
                    Freshness::Stale { yields: true } => Self::STALE | Self::YIELDS,
                },
            family: std::marker::PhantomData,
        }
    }

    /// The id of the interned attributes.
    pub(crate) fn attrs(&self) -> u32 {
        self.attrs_enabled & !Self::MARKS
    }

    /// This route marked stale, not yielding: only its mark bits change
    /// (its attributes, and the reference on them, stay).
    pub(crate) fn marked_stale(self) -> Self {
        Stored {
            attrs_enabled: (self.attrs_enabled & !Self::YIELDS) | Self::STALE,
            ..self
        }
    }

    /// Whether it is stale and yields to fresh routes of its priority.
    pub(crate) fn yields(&self) -> bool {
        self.attrs_enabled & Self::YIELDS != 0
    }

    /// Whether it is stale.
    pub(crate) fn is_stale(&self) -> bool {
        self.attrs_enabled & Self::STALE != 0
    }

    /// The entry again, given its network and attributes.
    pub(crate) fn entry(&self, network: F::Network, attrs: Attrs<F>) -> Entry<F> {
        Entry {
            route: Route {
                network,
                next_hop: attrs.next_hop,
                interface: attrs.interface,
                protocol: attrs.protocol,
                timestamp: Timestamp(self.timestamp[0] as u64 | (self.timestamp[1] as u64) << 32),
                protocol_data: attrs.protocol_data,
                data: attrs.data,
            },
            priority: attrs.priority,
            lifetime: attrs.lifetime,
            multipath: attrs.multipath,
            enabled: self.attrs_enabled & Self::ENABLED != 0,
            stale: if self.attrs_enabled & Self::STALE == 0 {
                Freshness::Fresh
            } else {
                Freshness::Stale {
                    yields: self.attrs_enabled & Self::YIELDS != 0,
                }
            },
        }
    }
}

/// A route set decoded for reading or rewriting: full entries.
pub(crate) struct Routes<F: Family> {
    pub(crate) entries: Entries<F>,
    pub(crate) best: Option<usize>,
}

impl<F: Family> Routes<F> {
    pub(crate) fn best_route(&self) -> Option<&Route<F>> {
        self.best.map(|i| &self.entries[i].route)
    }

    /// The best paths (see [`best_paths`]).
    pub(crate) fn best_paths(&self, exclude_invalid: bool) -> SmallVec<[usize; 4]> {
        best_paths(&self.entries, self.best, exclude_invalid)
    }
}

/// The indexes of a network's best paths, in key order: the best route
/// alone, or, when it is a multipath route, with every other multipath
/// candidate of the same rank ([`PriorityTable::with_multipath`]), at
/// most [`MAX_PATHS`](crate::MAX_PATHS) (the first in key order, the
/// best always kept).
///
/// [`PriorityTable::with_multipath`]: crate::PriorityTable::with_multipath
pub(crate) fn best_paths<F: Family>(
    entries: &[Entry<F>],
    best: Option<usize>,
    exclude_invalid: bool,
) -> SmallVec<[usize; 4]> {
    let Some(b) = best else {
        return SmallVec::new();
    };
    let lead = &entries[b];
    if !lead.multipath {
        return smallvec::smallvec![b];
    }
    const MAX_PATHS: usize = crate::fib::MAX_PATHS;
    let rank = lead.rank();
    let mut out: SmallVec<[usize; 4]> = SmallVec::new();
    for (i, e) in entries.iter().enumerate() {
        let peer = i == b || (e.multipath && e.is_candidate(exclude_invalid) && e.rank() == rank);
        // Room is kept for the best route until it is reached.
        let room = if i < b { MAX_PATHS - 1 } else { MAX_PATHS };
        if peer && out.len() < room {
            out.push(i);
        }
    }
    out
}

/// The routes to one network, sorted by key, with the best one marked.
///
/// One allocation: an 8-byte header, then the entries inline (a
/// slice-tailed type, published through crossbeam-epoch's [`Pointable`],
/// which allocates and frees it whole). A boxed `Vec` took a 40-byte box,
/// a second allocation and a second dependent load on every read; a full
/// table holds a million of these.
#[repr(C)]
pub(crate) struct RouteSet<F: Family> {
    len: u16,
    /// Index of the best entry; [`RouteSet::NO_BEST`] when none is a
    /// candidate.
    best: u16,
    entries: [Stored<F>],
}

/// The most routes one network can hold: a set counts them in 16 bits
/// (RTMv1 routers keep a handful per network; 2 bytes a network more for
/// a limit nobody reaches would be 2 MB on a full table).
pub(crate) const MAX_ROUTES_PER_NETWORK: usize = u16::MAX as usize - 1;

/// What a new [`RouteSet`] is built from.
pub(crate) struct NewSet<F: Family> {
    pub(crate) entries: SmallVec<[Stored<F>; 2]>,
    pub(crate) best: Option<usize>,
}

/// The header of a [`RouteSet`], for its layout.
#[repr(C)]
struct Header {
    len: u16,
    best: u16,
}

impl<F: Family> RouteSet<F> {
    const NO_BEST: u16 = u16::MAX;

    /// The allocation of a set of `len` entries: the header, then the array
    /// (the `repr(C)` layout of the struct).
    fn layout(len: usize) -> Layout {
        let (layout, _) = Layout::new::<Header>()
            .extend(Layout::array::<Stored<F>>(len).expect("a route set fits in memory"))
            .expect("a route set fits in memory");
        layout.pad_to_align()
    }

    /// The set at `ptr`, a fat pointer whose length is the header's.
    ///
    /// # Safety
    /// `ptr` came from `init` and the set is still allocated.
    unsafe fn fat(ptr: usize) -> *mut Self {
        // SAFETY: the header is initialised (see the contract).
        let len = unsafe { (*(ptr as *const Header)).len } as usize;
        // A slice-tailed struct's pointer metadata is its tail's length.
        std::ptr::slice_from_raw_parts_mut(ptr as *mut Stored<F>, len) as *mut Self
    }

    /// The stored routes, sorted by key.
    pub(crate) fn stored(&self) -> &[Stored<F>] {
        &self.entries
    }

    /// The index of the best entry, if any.
    pub(crate) fn best(&self) -> Option<usize> {
        (self.best != Self::NO_BEST).then_some(self.best as usize)
    }
}

impl<F: Family> Pointable for RouteSet<F> {
    const ALIGN: usize = {
        let (h, e) = (
            std::mem::align_of::<Header>(),
            std::mem::align_of::<Stored<F>>(),
        );
        if h > e { h } else { e }
    };
    type Init = NewSet<F>;

    unsafe fn init(init: NewSet<F>) -> usize {
        let len = init.entries.len();
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (the 8-byte header).
        let raw = unsafe { alloc(layout) };
        if raw.is_null() {
            handle_alloc_error(layout);
        }
        // Callers keep to MAX_ROUTES_PER_NETWORK (below NO_BEST).
        assert!(len <= MAX_ROUTES_PER_NETWORK, "route set of {len} routes");
        let best = init.best.map_or(Self::NO_BEST, |b| b as u16);
        let p = std::ptr::slice_from_raw_parts_mut(raw.cast::<Stored<F>>(), len) as *mut Self;
        // SAFETY: `raw` is a fresh allocation of `layout`, the `repr(C)`
        // layout of a set of `len` entries, so every field written here
        // lies inside it; the source entries do not overlap it.
        unsafe {
            std::ptr::addr_of_mut!((*p).len).write(len as u16);
            std::ptr::addr_of_mut!((*p).best).write(best);
            std::ptr::copy_nonoverlapping(
                init.entries.as_ptr(),
                std::ptr::addr_of_mut!((*p).entries).cast::<Stored<F>>(),
                len,
            );
        }
        raw as usize
    }

    unsafe fn deref<'a>(ptr: usize) -> &'a Self {
        // SAFETY: the caller passes a live pointer from `init`, whose
        // header and entries are initialised.
        unsafe { &*Self::fat(ptr) }
    }

    unsafe fn deref_mut<'a>(ptr: usize) -> &'a mut Self {
        // SAFETY: as `deref`, and the caller owns the set exclusively.
        unsafe { &mut *Self::fat(ptr) }
    }

    unsafe fn drop(ptr: usize) {
        // SAFETY: the caller passes a live pointer from `init`, once; its
        // header says how many entries the allocation was made for, and
        // entries are `Copy`: nothing to drop in them.
        unsafe {
            let len = (*(ptr as *const Header)).len as usize;
            dealloc(ptr as *mut u8, Self::layout(len));
        }
    }
}

/// A route set's entries while one operation rewrites them: inline up to
/// two routes (nearly every network; more inline would only lengthen the
/// copies), so a write allocates only the set it publishes.
pub(crate) type Entries<F> = SmallVec<[Entry<F>; 2]>;

/// The index of the best entry among `entries` (sorted by key).
///
/// Candidates are the enabled routes (and, with `exclude_invalid`, only
/// those with the valid flag: spec A6). The lowest (priority, metric) wins;
/// on a tie the incumbent stays best (A4), and with no incumbent among the
/// winners the lowest key wins.
pub(crate) fn select_best<F: Family>(
    entries: &[Entry<F>],
    incumbent: Option<RouteKey<F>>,
    exclude_invalid: bool,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, e) in entries.iter().enumerate() {
        if !e.is_candidate(exclude_invalid) {
            continue;
        }
        match best {
            None => best = Some(i),
            Some(b) => {
                let (rb, re) = (entries[b].rank(), e.rank());
                if re < rb || (re == rb && Some(e.route.key()) == incumbent) {
                    best = Some(i);
                }
            }
        }
    }
    best
}

/// A route set being rewritten by one operation.
pub(crate) struct Working<F: Family> {
    pub(crate) entries: Entries<F>,
    /// The key of the best route before the operation, followed through key
    /// changes of that same entry (single-route updates, conversion).
    pub(crate) incumbent: Option<RouteKey<F>>,
    pub(crate) modified: bool,
}

impl<F: Family> Working<F> {
    /// Adds `entry`, or updates the first entry `existing` matches (by key
    /// order) with it, keeping that entry's enabled state; returns whether
    /// one was replaced. Any further entries `existing` matches go too:
    /// a single-route client that adopted a multi-route predecessor's
    /// routes (graceful restart) may find several of its protocol's routes
    /// at a network, and its add leaves one there.
    pub(crate) fn upsert(&mut self, entry: Entry<F>, existing: impl Fn(&Entry<F>) -> bool) -> bool {
        self.modified = true;
        match self.entries.iter().position(&existing) {
            Some(i) => {
                let old = self.entries[i];
                let mut was_best = false;
                let mut j = 0;
                self.entries.retain(|e| {
                    let drop = j > i && existing(e);
                    was_best |= drop && Some(e.route.key()) == self.incumbent;
                    j += 1;
                    !drop
                });
                if was_best || Some(old.route.key()) == self.incumbent {
                    self.incumbent = Some(entry.route.key());
                }
                self.entries[i] = Entry {
                    enabled: old.enabled,
                    ..entry
                };
                true
            }
            None => {
                self.entries.push(entry);
                false
            }
        }
    }

    /// Removes every entry matching `pred`; returns how many.
    pub(crate) fn remove_where(&mut self, pred: impl Fn(&Entry<F>) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !pred(e));
        let n = before - self.entries.len();
        if n > 0 {
            self.modified = true;
        }
        n
    }

    /// Whether the entry at `i` (current order) was the best before.
    pub(crate) fn was_best(&self, e: &Entry<F>) -> bool {
        self.incumbent == Some(e.route.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Ipv4;
    use crate::route::IpRouteData;
    use crossbeam_epoch::{Atomic, Owned};
    use std::sync::atomic::Ordering;

    fn entry(net: &str, metric: u32) -> Entry<Ipv4> {
        Entry {
            route: Route::new(
                net.parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
                1,
                IpRouteData::with_metric(metric),
            ),
            priority: 7,
            lifetime: Lifetime::NEVER,
            enabled: true,
            stale: Freshness::Fresh,
            multipath: false,
        }
    }

    /// The sizes the memory budget (and the README's bytes/route) rests on.
    #[test]
    fn stored_routes_are_compact() {
        use crate::family::{Ipv6, Ipx};
        assert_eq!(std::mem::size_of::<Stored<Ipv4>>(), 12);
        assert_eq!(std::mem::size_of::<Stored<Ipv6>>(), 12);
        assert_eq!(std::mem::size_of::<Stored<Ipx>>(), 12);
        assert_eq!(RouteSet::<Ipv4>::layout(1).size(), 16);
    }

    /// The packed set round-trips its entries and best index, for every
    /// length a write produces (0 is never published, but must work), and
    /// frees what it allocated (Miri checks the layout and the free).
    #[test]
    fn packed_sets_hold_their_entries() {
        let net: crate::prefix::Ipv4Prefix = "10.0.0.0/16".parse().unwrap();
        for len in 0..6usize {
            let entries: Entries<Ipv4> = (0..len)
                .map(|i| {
                    let mut e = entry("10.0.0.0/16", i as u32);
                    e.route.interface = i as u32;
                    // Every mark combination round-trips with the id.
                    e.enabled = i % 2 == 0;
                    e.stale = [
                        Freshness::Fresh,
                        Freshness::Stale { yields: false },
                        Freshness::Stale { yields: true },
                    ][i % 3];
                    e
                })
                .collect();
            let best = len.checked_sub(1);
            let stored = entries
                .iter()
                .enumerate()
                .map(|(i, e)| Stored::of(e, i as u32))
                .collect();
            let set = Owned::<RouteSet<Ipv4>>::init(NewSet {
                entries: stored,
                best,
            });
            assert_eq!(set.stored().len(), len);
            assert_eq!(set.best(), best);
            let published = Atomic::from(set);
            let guard = crossbeam_epoch::pin();
            let shared = published.load(Ordering::Acquire, &guard);
            // SAFETY: just published, never retired; freed below.
            let read: &RouteSet<Ipv4> = unsafe { shared.deref() };
            for (i, e) in entries.iter().enumerate() {
                let s = &read.stored()[i];
                assert_eq!(s.attrs(), i as u32);
                assert_eq!(&s.entry(net, Attrs::of(e)), e);
            }
            drop(guard);
            // SAFETY: the only pointer to the set; nobody else can reach it.
            drop(unsafe { published.into_owned() });
        }
    }
}
