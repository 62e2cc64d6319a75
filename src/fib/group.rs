//! ECMP next-hop groups: the FIB's answer for a prefix with several
//! equal-cost best routes.
//!
//! A group is interned by its paths (next hop, interface, protocol and
//! weight each), as Linux's nexthop objects and DPDK's next-hop ids are:
//! every prefix with the same set of paths stores the same group id in its
//! leaf, so a full table where 30% of prefixes have 2-4 paths over a few
//! dozen neighbours holds a few hundred groups, and its leaves stay 32
//! bits. A leaf names a group when its id has [`GROUP_BIT`] set; other ids
//! name one interned next hop, exactly as without ECMP.
//!
//! What lookups read of a group is its [`Members`]: the next-hop ids of
//! the paths that are up, and their cumulative weights when they differ.
//! The members are an immutable value behind one atomic pointer per group,
//! so the writer rewrites a group by building new members and publishing
//! them with one store: that is prefix-independent convergence. When a
//! next hop (or its interface) goes down, [`GroupIds::set_down`] rewrites
//! each group that uses it, found through the index of groups by next hop,
//! and every prefix through those groups forwards on the remaining paths
//! at once, without one leaf being touched. Replaced members go through the
//! FIB's quiescent-state limbo like replaced nodes, so a lookup that loaded
//! the old pointer still reads valid ids.
//!
//! Checking: loom cannot run this table (it uses std's atomics and the
//! real arena), but its protocol is the one `loom-tests/tests/fib_qsbr.rs`
//! models for nodes: a slot whose pointer the writer replaces with a
//! Release store after building the value, an online reader's Acquire
//! load, the old value retired into the `Limbo` and freed only past a
//! grace period (a group's members play the model's node, the group's slot
//! its top-level slot, and a released group id its next-hop id, held while
//! a deferred node may name it). The stress test
//! `readers_follow_group_churn_and_next_hops_going_down` runs the real
//! table: readers per flow while groups are made, freed and rewritten.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::nexthop::{Nexthop, NexthopIds, NexthopTable};
use crate::prefix::IpAddress;

/// The bit of a leaf's 24-bit id that says it names a group; next-hop ids
/// stay below it.
pub(crate) const GROUP_BIT: u32 = 1 << 23;

/// The most paths one group holds (FRR's and SONiC's common limit is 64 to
/// 128). A best-route set with more keeps the first 128 in key order.
pub const MAX_PATHS: usize = 128;

const SEGMENT: usize = 1024;
const SEGMENTS: usize = GROUP_BIT as usize / SEGMENT;

/// One path of a group as the writer keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Path<A> {
    pub(crate) hop: Nexthop<A>,
    /// Relative share of the flows (1 to 65,535).
    pub(crate) weight: u16,
}

/// What lookups read of a group: the live paths' next-hop ids and, when
/// their weights differ, the running sums of the weights (hash-threshold
/// selection, as Linux's multipath routes).
#[derive(Debug)]
pub(crate) struct Members {
    ids: Box<[u32]>,
    /// `bounds[i]` = weights of paths 0..=i; `None` when all are equal.
    bounds: Option<Box<[u32]>>,
}

impl Members {
    /// Members of `paths` (never empty): (next-hop id, weight) each.
    fn build(paths: &[(u32, u16)]) -> Members {
        debug_assert!(!paths.is_empty());
        let equal = paths.windows(2).all(|w| w[0].1 == w[1].1);
        let bounds = (!equal).then(|| {
            paths
                .iter()
                .scan(0u32, |sum, &(_, w)| {
                    *sum += w as u32;
                    Some(*sum)
                })
                .collect()
        });
        Members {
            ids: paths.iter().map(|&(id, _)| id).collect(),
            bounds,
        }
    }

    /// The next-hop id a flow of `hash` takes: its share of the 32-bit
    /// hash space is its weight's share of the total (multiply-shift, no
    /// division).
    #[inline]
    pub(crate) fn pick(&self, hash: u32) -> u32 {
        let n = self.ids.len();
        let i = match &self.bounds {
            None => ((hash as u64 * n as u64) >> 32) as usize,
            Some(bounds) => {
                let total = bounds[n - 1] as u64;
                let x = ((hash as u64 * total) >> 32) as u32;
                bounds.partition_point(|&b| b <= x)
            }
        };
        self.ids[i]
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 4 * self.ids.len()
            + self.bounds.as_ref().map_or(0, |b| 4 * b.len())
    }
}

struct Segment {
    slots: [AtomicPtr<Members>; SEGMENT],
}

/// Group id -> published members, read by lookups.
pub(crate) struct GroupTable {
    segments: Box<[AtomicPtr<Segment>]>,
}

impl GroupTable {
    pub(crate) fn new() -> Self {
        GroupTable {
            segments: (0..SEGMENTS)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }

    /// The members of group `gid`, as published.
    ///
    /// # Safety
    /// The caller is an online reader of the FIB's QSBR domain that loaded
    /// `gid` from a published leaf and has not reported a quiescent state
    /// since, and it does not keep the reference past its next report.
    #[inline]
    pub(crate) unsafe fn get(&self, gid: u32) -> Option<&Members> {
        // Acquire pairs with the Release stores in `slot` and `publish`: the
        // segment and the members are initialised before they are seen.
        let seg = self.segments[(gid as usize / SEGMENT) % SEGMENTS].load(Ordering::Acquire);
        if seg.is_null() {
            return None;
        }
        // SAFETY: segments stay allocated until Drop.
        let m = unsafe { (*seg).slots[gid as usize % SEGMENT].load(Ordering::Acquire) };
        // SAFETY: members published for `gid` are retired into the limbo
        // when replaced and freed only after every reader online at the
        // replacement has reported (the caller has not, see the contract);
        // the group's last members are freed only after its id, which the
        // caller loaded from a leaf, passed a grace period unreferenced.
        unsafe { m.as_ref() }
    }

    /// The slot of `gid`, allocating its segment (writer only).
    fn slot(&self, gid: u32) -> &AtomicPtr<Members> {
        let cell = &self.segments[gid as usize / SEGMENT];
        let mut seg = cell.load(Ordering::Relaxed); // only the writer stores
        if seg.is_null() {
            let fresh = Box::new(Segment {
                slots: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            });
            seg = Box::into_raw(fresh);
            // Release: the segment's initialisation is visible to readers
            // that see the pointer.
            cell.store(seg, Ordering::Release);
        }
        // SAFETY: non-null segments stay allocated until Drop.
        unsafe { &(*seg).slots[gid as usize % SEGMENT] }
    }

    /// Publishes `members` as group `gid`'s; returns the members replaced
    /// (the caller retires them). Writer only.
    fn publish(&self, gid: u32, members: Members) -> Option<Box<Members>> {
        let new = Box::into_raw(Box::new(members));
        // Release: the members are built before a reader can load them.
        // The load half needs nothing: only the writer (under the FIB's
        // writer lock, which orders its stores) ever stores here.
        let old = self.slot(gid).swap(new, Ordering::Release);
        // SAFETY: every non-null pointer here came from Box::into_raw above
        // and is taken out of the slot exactly once, here or in `clear`.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }

    /// Empties `gid`'s slot, returning its members. Writer only, once no
    /// reader can hold the group's id any more.
    fn clear(&self, gid: u32) -> Option<Box<Members>> {
        let old = self.slot(gid).swap(std::ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: as in `publish`.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }

    fn memory_bytes(&self) -> usize {
        let segs = self
            .segments
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
        self.segments.len() * std::mem::size_of::<usize>() + segs * std::mem::size_of::<Segment>()
    }
}

impl Drop for GroupTable {
    fn drop(&mut self) {
        for s in self.segments.iter() {
            let seg = s.load(Ordering::Relaxed);
            if seg.is_null() {
                continue;
            }
            // SAFETY: `&mut self`: no reader remains; each segment and each
            // members value came from Box::into_raw and is freed once here.
            unsafe {
                for m in (*seg).slots.iter() {
                    let m = m.load(Ordering::Relaxed);
                    if !m.is_null() {
                        drop(Box::from_raw(m));
                    }
                }
                drop(Box::from_raw(seg));
            }
        }
    }
}

/// A group as the writer keeps it.
struct Group<A> {
    /// The paths, sorted: the interning key.
    key: Box<[Path<A>]>,
    /// The next-hop id of each path (a reference held on each).
    ids: Box<[u32]>,
    /// Leaves naming the group.
    refs: u32,
}

/// Where a path forwards: what [`GroupIds::set_down`] names.
type Hop<A> = (A, u32);

/// The writer's side of the groups: interning, reference counts, the
/// index of groups by next hop, and what is down. Under the FIB's writer
/// lock.
pub(crate) struct GroupIds<A> {
    by_key: HashMap<Box<[Path<A>]>, u32, foldhash::fast::RandomState>,
    groups: Vec<Option<Group<A>>>,
    /// Group ids past their grace period, ready for reuse.
    free: Vec<u32>,
    /// Groups using each (next hop, interface): what a next hop going down
    /// rewrites.
    by_hop: HashMap<Hop<A>, Vec<u32>, foldhash::fast::RandomState>,
    down_hops: HashSet<Hop<A>, foldhash::fast::RandomState>,
    down_interfaces: HashSet<u32, foldhash::fast::RandomState>,
    /// Bytes of the members published now.
    member_bytes: usize,
}

/// What releasing a leaf's last reference on a group frees.
pub(crate) struct Released {
    /// The group's id (with [`GROUP_BIT`]), to retire.
    pub(crate) group: u32,
    /// Next-hop ids that lost their last reference with it, to retire.
    pub(crate) next_hops: Vec<u32>,
}

impl<A: IpAddress> GroupIds<A> {
    pub(crate) fn new() -> Self {
        GroupIds {
            by_key: HashMap::default(),
            // Group 0 is never handed out: an id of GROUP_BIT alone would
            // be a valid leaf, but keeping 0 unused mirrors next-hop ids.
            groups: vec![None],
            free: Vec::new(),
            by_hop: HashMap::default(),
            down_hops: HashSet::default(),
            down_interfaces: HashSet::default(),
            member_bytes: 0,
        }
    }

    fn is_up(&self, hop: &Nexthop<A>) -> bool {
        !self.down_interfaces.contains(&hop.interface)
            && !self.down_hops.contains(&(hop.next_hop, hop.interface))
    }

    /// The members lookups should read for `g`: its live paths, or all of
    /// them when none is live (a group never forwards nowhere: the owner
    /// of its routes withdraws them, or the next hop comes back).
    fn members_of(&self, g: &Group<A>) -> Members {
        let paths = |up_only: bool| -> Vec<(u32, u16)> {
            g.key
                .iter()
                .zip(g.ids.iter())
                .filter(|(p, _)| !up_only || self.is_up(&p.hop))
                .map(|(p, &id)| (id, p.weight))
                .collect()
        };
        let live = paths(true);
        Members::build(&if live.is_empty() { paths(false) } else { live })
    }

    /// Takes a reference on the group of `key` (sorted, at least two
    /// paths), interning it if new; returns its leaf id (with
    /// [`GROUP_BIT`]). `None` if next-hop or group ids ran out, with
    /// nothing held.
    pub(crate) fn acquire(
        &mut self,
        table: &GroupTable,
        nexthops: &NexthopTable<A>,
        nh_ids: &mut NexthopIds<A>,
        key: &[Path<A>],
    ) -> Option<u32> {
        if let Some(&gid) = self.by_key.get(key) {
            self.groups[gid as usize]
                .as_mut()
                .expect("interned groups are live")
                .refs += 1;
            return Some(GROUP_BIT | gid);
        }
        let mut ids = Vec::with_capacity(key.len());
        for p in key {
            match nh_ids.acquire(nexthops, p.hop) {
                Some(id) => ids.push(id),
                None => {
                    Self::give_back(nexthops, nh_ids, ids);
                    return None;
                }
            }
        }
        let gid = match self.free.pop() {
            Some(gid) => gid,
            None if (self.groups.len() as u32) < GROUP_BIT => {
                self.groups.push(None);
                self.groups.len() as u32 - 1
            }
            None => {
                Self::give_back(nexthops, nh_ids, ids);
                return None;
            }
        };
        let group = Group {
            key: key.into(),
            ids: ids.into(),
            refs: 1,
        };
        let members = self.members_of(&group);
        self.member_bytes += members.bytes();
        let old = table.publish(gid, members);
        debug_assert!(old.is_none(), "a free group id has no members");
        for p in key {
            self.by_hop
                .entry((p.hop.next_hop, p.hop.interface))
                .or_default()
                .push(gid);
        }
        self.by_key.insert(group.key.clone(), gid);
        self.groups[gid as usize] = Some(group);
        Some(GROUP_BIT | gid)
    }

    /// Drops the references a failed [`GroupIds::acquire`] took. Ids taken
    /// there for the first time were never published: they can be reused
    /// at once.
    fn give_back(nexthops: &NexthopTable<A>, nh_ids: &mut NexthopIds<A>, ids: Vec<u32>) {
        for id in ids {
            if let Some(id) = nh_ids.unreference(nexthops, id) {
                nh_ids.recycle(id);
            }
        }
    }

    /// Drops a leaf's reference on group `id` (with [`GROUP_BIT`]); the
    /// last one unindexes the group and drops its references on its next
    /// hops, returning what the caller must retire.
    pub(crate) fn release(
        &mut self,
        nexthops: &NexthopTable<A>,
        nh_ids: &mut NexthopIds<A>,
        id: u32,
    ) -> Option<Released> {
        let gid = id & !GROUP_BIT;
        let g = self.groups.get_mut(gid as usize)?.as_mut()?;
        g.refs -= 1;
        if g.refs > 0 {
            return None;
        }
        let g = self.groups[gid as usize].take().expect("checked above");
        self.by_key.remove(&g.key);
        for p in g.key.iter() {
            let hop = (p.hop.next_hop, p.hop.interface);
            if let Some(v) = self.by_hop.get_mut(&hop) {
                v.retain(|&x| x != gid);
                if v.is_empty() {
                    self.by_hop.remove(&hop);
                }
            }
        }
        let next_hops = g
            .ids
            .iter()
            .filter_map(|&id| nh_ids.unreference(nexthops, id))
            .collect();
        Some(Released {
            group: id,
            next_hops,
        })
    }

    /// Makes a released group id reusable, freeing its last members: no
    /// reader can hold the id any more.
    pub(crate) fn recycle(&mut self, table: &GroupTable, id: u32) {
        let gid = id & !GROUP_BIT;
        if let Some(m) = table.clear(gid) {
            self.member_bytes -= m.bytes();
        }
        self.free.push(gid);
    }

    /// Marks a next hop (with `Some(next_hop)`) or a whole interface (with
    /// `None`) down or up again, and republishes the members of every group
    /// that uses it; returns how many groups were rewritten. `retire` takes
    /// the members replaced.
    pub(crate) fn set_down(
        &mut self,
        table: &GroupTable,
        next_hop: Option<A>,
        interface: u32,
        down: bool,
        mut retire: impl FnMut(Box<Members>),
    ) -> usize {
        let changed = match (next_hop, down) {
            (Some(a), true) => self.down_hops.insert((a, interface)),
            (Some(a), false) => self.down_hops.remove(&(a, interface)),
            (None, true) => self.down_interfaces.insert(interface),
            (None, false) => self.down_interfaces.remove(&interface),
        };
        if !changed {
            return 0;
        }
        let mut affected: Vec<u32> = match next_hop {
            Some(a) => self
                .by_hop
                .get(&(a, interface))
                .cloned()
                .unwrap_or_default(),
            None => self
                .by_hop
                .iter()
                .filter(|((_, i), _)| *i == interface)
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
        };
        affected.sort_unstable();
        affected.dedup();
        for &gid in &affected {
            let g = self.groups[gid as usize]
                .as_ref()
                .expect("indexed groups are live");
            let members = self.members_of(g);
            self.member_bytes += members.bytes();
            if let Some(old) = table.publish(gid, members) {
                self.member_bytes -= old.bytes();
                retire(old);
            }
        }
        affected.len()
    }

    /// Whether a next hop is down (itself or its interface).
    pub(crate) fn is_down(&self, hop: &Nexthop<A>) -> bool {
        !self.is_up(hop)
    }

    /// The paths of group `id` (with [`GROUP_BIT`]).
    pub(crate) fn key(&self, id: u32) -> Option<&[Path<A>]> {
        self.groups
            .get((id & !GROUP_BIT) as usize)?
            .as_ref()
            .map(|g| &*g.key)
    }

    /// Groups in use.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Bytes: lookups' side (table and members) and the writer's.
    pub(crate) fn memory_bytes(&self, table: &GroupTable) -> (usize, usize) {
        let writer = self.by_key.capacity() * (std::mem::size_of::<(Box<[Path<A>]>, u32)>() + 1)
            + self
                .groups
                .iter()
                .flatten()
                .map(|g| g.key.len() * (std::mem::size_of::<Path<A>>() + 4))
                .sum::<usize>()
            + self.groups.capacity() * std::mem::size_of::<Option<Group<A>>>()
            + self.by_hop.capacity() * (std::mem::size_of::<(Hop<A>, Vec<u32>)>() + 1)
            + self
                .by_hop
                .values()
                .map(|v| 4 * v.capacity())
                .sum::<usize>();
        (table.memory_bytes() + self.member_bytes, writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weighted selection gives each path its weight's share of the hash
    /// space, and equal weights split it evenly: catches an off-by-one in
    /// the threshold search (a path never chosen, or one out of range).
    #[test]
    fn flows_split_by_weight() {
        let m = Members::build(&[(10, 1), (20, 3)]);
        let mut hits = [0u32; 2];
        for h in (0..=u32::MAX).step_by(1 << 16) {
            hits[(m.pick(h) == 20) as usize] += 1;
        }
        assert_eq!(hits, [16384, 49152]);
        let even = Members::build(&[(1, 5), (2, 5), (3, 5)]);
        assert!(even.bounds.is_none());
        let mut seen = [0u32; 4];
        for h in (0..=u32::MAX).step_by(1 << 16) {
            seen[even.pick(h) as usize] += 1;
        }
        assert_eq!(&seen[1..], &[21846, 21845, 21845]);
        assert_eq!(even.pick(u32::MAX), 3);
        assert_eq!(m.pick(u32::MAX), 20);
        assert_eq!(m.pick(0), 10);
    }
}
