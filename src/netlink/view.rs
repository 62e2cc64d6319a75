//! What the kernel table holds at rtm's keys, as the sync knows it, and
//! the operations that bring one prefix to what rtm wants.
//!
//! The kernel keys a route by (table, prefix, tos, metric), whatever its
//! protocol: `NLM_F_REPLACE` at rtm's metric would overwrite a static
//! route an operator put there. So the sync keeps a view of the table,
//! per prefix: rtm's route there (its protocol, at its metric) and how it
//! looks; rtm's routes at other metrics (a run with another `--metric`
//! left them); whether another protocol's route sits at rtm's key; and,
//! after a restart, which of rtm's routes are stale (found in the kernel,
//! not yet confirmed by the RIB). The view is built from a dump, kept by
//! the acknowledgements of rtm's own requests and by the kernel's
//! notifications of everybody else's changes, and rebuilt by the next
//! dump whenever one of those was lost (`ENOBUFS`).
//!
//! With it, a prefix's operations ([`KernelView::plan`]) are exact:
//! - rtm's route is written with `NLM_F_EXCL` where the view has none, so
//!   a route another program holds at the key answers `EEXIST`, is
//!   counted as a conflict and stays; with `NLM_F_REPLACE` only where the
//!   view holds rtm's own; and not at all where the kernel already holds
//!   exactly that route (a restart against a correct table sends nothing).
//! - A withdrawal deletes rtm's route at the metric it has, with rtm's
//!   protocol and scope `RT_SCOPE_NOWHERE` (any scope: a connected route
//!   is `scope link`).
//! - Until the RIB has converged ([`KernelView::converge`]), routes found
//!   at start that rtm does not (yet) want stay and forward, as zebra's
//!   `-K` keeps them: a daemon that starts the sync before its protocols
//!   have loaded does not empty the kernel table and fill it again.
//!
//! Its cost: about 40 bytes per route of rtm's in the kernel (a hash map
//! entry of prefix, gateway and device), which the kernel's own route
//! (over 100 bytes) dwarfs.

use std::collections::{HashMap, HashSet};

use super::{Held, KernelFamily, KernelRoute, Observed, Op};
use crate::prefix::Prefix;

/// How rtm's own request for one prefix ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The kernel did it.
    Done,
    /// A delete found nothing (`ESRCH`): already as wanted.
    Gone,
    /// A create found a route at the key (`EEXIST`): another program's.
    Exists,
    /// A replace found nothing at the key (`ENOENT`): rtm's route went
    /// behind its back, and the view did not know yet.
    Missing,
    /// Refused with this errno.
    Refused(i32),
}

/// The kernel table at rtm's keys, for one family (see the module docs).
#[derive(Debug)]
pub(crate) struct KernelView<F: KernelFamily> {
    metric: u32,
    /// rtm's routes at its metric: how the kernel holds each, or `None`
    /// for one rtm would not have written (several paths, a next-hop
    /// object, another route type), which a plan replaces.
    ours: HashMap<Prefix<F::Addr>, Option<Held<F>>>,
    /// rtm's routes at other metrics, by prefix.
    stranded: HashMap<Prefix<F::Addr>, Vec<u32>>,
    /// Prefixes where another protocol's route holds rtm's key.
    conflicts: HashSet<Prefix<F::Addr>>,
    /// rtm's routes found at start that the RIB has not confirmed: kept
    /// until [`KernelView::converge`].
    stale: HashSet<Prefix<F::Addr>>,
    converged: bool,
}

impl<F: KernelFamily> KernelView<F> {
    /// An empty view for routes at `metric`, converged or not.
    pub(crate) fn new(metric: u32, converged: bool) -> Self {
        KernelView {
            metric,
            ours: HashMap::new(),
            stranded: HashMap::new(),
            conflicts: HashSet::new(),
            stale: HashSet::new(),
            converged,
        }
    }

    /// Forgets everything but the metric and convergence: before a dump's
    /// routes are [`observe`](Self::observe)d anew.
    pub(crate) fn clear(&mut self) {
        self.ours.clear();
        self.stranded.clear();
        self.conflicts.clear();
        self.stale.clear();
    }

    /// Whether the RIB has converged.
    pub(crate) fn converged(&self) -> bool {
        self.converged
    }

    /// Routes kept stale now.
    pub(crate) fn stale(&self) -> usize {
        self.stale.len()
    }

    /// Takes in a route the kernel reported (a dump's entry or another
    /// program's change). Returns whether it concerns rtm's keys, so that
    /// the prefix must be planned again.
    pub(crate) fn observe(&mut self, seen: &Observed<F>) -> bool {
        let p = seen.prefix;
        let at_key = seen.metric == self.metric;
        match (seen.present, seen.ours, at_key) {
            (true, true, true) => {
                self.ours.insert(p, seen.held);
                if seen.replaced {
                    self.conflicts.remove(&p); // it took another's place
                }
            }
            (true, true, false) => {
                let metrics = self.stranded.entry(p).or_default();
                if !metrics.contains(&seen.metric) {
                    metrics.push(seen.metric);
                }
            }
            (true, false, true) => {
                if seen.replaced {
                    self.ours.remove(&p); // a replace took rtm's route's place
                }
                self.conflicts.insert(p);
            }
            (false, true, true) => {
                self.ours.remove(&p);
            }
            (false, true, false) => self.forget_stranded(p, seen.metric),
            (false, false, true) => {
                self.conflicts.remove(&p);
            }
            (_, false, false) => return false, // beside rtm's key: not rtm's business
        }
        true
    }

    /// rtm's prefixes in the view that `wanted` lacks: after a dump, kept
    /// as stale until the RIB converges, or planned away at once if it has.
    pub(crate) fn unwanted(
        &self,
        wanted: impl Fn(&Prefix<F::Addr>) -> bool,
    ) -> Vec<Prefix<F::Addr>> {
        let mut out: Vec<_> = self
            .ours
            .keys()
            .chain(self.stranded.keys())
            .filter(|p| !wanted(p))
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Marks `prefixes` stale (found in the kernel, not wanted yet).
    pub(crate) fn keep_stale(&mut self, prefixes: Vec<Prefix<F::Addr>>) {
        self.stale.extend(prefixes);
    }

    /// The RIB has converged: from now on nothing is kept, and the stale
    /// prefixes come back to be planned against what rtm wants now.
    pub(crate) fn converge(&mut self) -> Vec<Prefix<F::Addr>> {
        self.converged = true;
        let mut stale: Vec<_> = self.stale.drain().collect();
        stale.sort_unstable();
        stale
    }

    /// Appends the operations that make `prefix` hold `want` (rtm's best
    /// route as the kernel should have it, or none) to `ops`. Returns
    /// `true` when another program's route holds the key, so rtm's route
    /// is not written (a conflict).
    pub(crate) fn plan(
        &mut self,
        prefix: Prefix<F::Addr>,
        want: Option<KernelRoute<F>>,
        ops: &mut Vec<Op<F>>,
    ) -> bool {
        if want.is_none() && !self.converged && self.stale.contains(&prefix) {
            return false; // kept, forwarding, until the RIB converges
        }
        self.stale.remove(&prefix);
        if let Some(metrics) = self.stranded.get(&prefix) {
            ops.extend(metrics.iter().map(|&m| Op::Delete(prefix, m, None)));
        }
        let held = self.ours.get(&prefix);
        let delete = |held: &Option<Held<F>>| Op::Delete(prefix, self.metric, *held);
        let Some(want) = want else {
            ops.extend(held.map(delete));
            return false;
        };
        if self.conflicts.contains(&prefix) {
            // Both at one key (an append beside rtm's, or IPv6 siblings):
            // rtm's goes, the other program's stays.
            ops.extend(held.map(delete));
            return true;
        }
        match held {
            Some(Some(h)) if *h == want.held() => {} // already right
            Some(_) => ops.push(Op::Replace(want)),
            None => ops.push(Op::Create(want)),
        }
        false
    }

    /// Takes in how rtm's own request ended.
    pub(crate) fn record(&mut self, op: &Op<F>, outcome: Outcome) {
        match (op, outcome) {
            (Op::Create(r) | Op::Replace(r), Outcome::Done) => {
                self.ours.insert(r.prefix, Some(r.held()));
            }
            (Op::Create(r), Outcome::Exists) => {
                self.conflicts.insert(r.prefix);
            }
            (Op::Replace(r), Outcome::Missing) => {
                self.ours.remove(&r.prefix);
            }
            (Op::Delete(p, m, _), Outcome::Done | Outcome::Gone) => {
                if *m == self.metric {
                    self.ours.remove(p);
                } else {
                    self.forget_stranded(*p, *m);
                }
            }
            _ => {}
        }
    }

    fn forget_stranded(&mut self, p: Prefix<F::Addr>, metric: u32) {
        if let Some(metrics) = self.stranded.get_mut(&p) {
            metrics.retain(|m| *m != metric);
            if metrics.is_empty() {
                self.stranded.remove(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Ipv4;
    use std::net::Ipv4Addr;

    fn p(s: &str) -> Prefix<Ipv4Addr> {
        s.parse().unwrap()
    }

    fn route(prefix: &str, gw: u8, oif: u32) -> KernelRoute<Ipv4> {
        KernelRoute {
            prefix: p(prefix),
            gateway: Some(Ipv4Addr::new(192, 0, 2, gw)),
            oif,
        }
    }

    fn seen(r: &KernelRoute<Ipv4>, ours: bool, metric: u32) -> Observed<Ipv4> {
        Observed {
            prefix: r.prefix,
            present: true,
            ours,
            metric,
            held: Some(r.held()),
            replaced: false,
        }
    }

    fn plan(
        v: &mut KernelView<Ipv4>,
        prefix: &str,
        want: Option<KernelRoute<Ipv4>>,
    ) -> Vec<Op<Ipv4>> {
        let mut ops = Vec::new();
        v.plan(p(prefix), want, &mut ops);
        ops
    }

    /// Catches a plan that rewrites routes already right (a restart would
    /// reload the whole table), misses a changed gateway or device, or
    /// replaces where the kernel has no route of rtm's (a replace would
    /// overwrite another program's route at rtm's key).
    #[test]
    fn plans_touch_only_what_differs_and_replace_only_rtms_own() {
        let mut v = KernelView::<Ipv4>::new(20, true);
        let same = route("10.0.0.0/8", 1, 2);
        v.observe(&seen(&same, true, 20));
        v.observe(&seen(&route("10.1.0.0/16", 9, 2), true, 20));
        assert_eq!(plan(&mut v, "10.0.0.0/8", Some(same)), vec![]);
        let moved = route("10.1.0.0/16", 2, 2);
        assert_eq!(
            plan(&mut v, "10.1.0.0/16", Some(moved)),
            vec![Op::Replace(moved)]
        );
        let new = route("10.2.0.0/16", 2, 3);
        assert_eq!(
            plan(&mut v, "10.2.0.0/16", Some(new)),
            vec![Op::Create(new)]
        );
        assert_eq!(
            plan(&mut v, "10.0.0.0/8", None),
            vec![Op::Delete(p("10.0.0.0/8"), 20, Some(same.held()))]
        );
        assert_eq!(
            plan(&mut v, "10.9.0.0/16", None),
            vec![],
            "nothing of rtm's there"
        );
    }

    /// Catches a sync that overwrites another protocol's route at rtm's
    /// metric, or that keeps refusing after the other route went.
    #[test]
    fn another_protocols_route_at_rtms_key_is_left_alone() {
        let mut v = KernelView::<Ipv4>::new(20, true);
        let theirs = route("198.18.0.0/15", 3, 2);
        assert!(v.observe(&seen(&theirs, false, 20)));
        let mine = route("198.18.0.0/15", 1, 2);
        let mut ops = Vec::new();
        assert!(v.plan(mine.prefix, Some(mine), &mut ops), "a conflict");
        assert!(ops.is_empty());
        // A create that met a route nobody reported: the same.
        let other = route("198.20.0.0/16", 1, 2);
        v.record(&Op::Create(other), Outcome::Exists);
        assert!(v.plan(other.prefix, Some(other), &mut Vec::new()));
        // The other program's route goes: rtm's is created.
        let gone = Observed {
            present: false,
            ..seen(&theirs, false, 20)
        };
        assert!(v.observe(&gone));
        assert_eq!(
            plan(&mut v, "198.18.0.0/15", Some(mine)),
            vec![Op::Create(mine)]
        );
        // Routes at other metrics are none of rtm's business.
        assert!(!v.observe(&seen(&route("198.18.0.0/15", 4, 2), false, 30)));
    }

    /// Catches routes stranded at an old metric (they would forward for
    /// ever, or shadow rtm's route at the new metric), and a restart that
    /// withdraws the kernel's routes before the RIB has loaded.
    #[test]
    fn stale_and_stranded_routes_wait_for_convergence_then_go() {
        let mut v = KernelView::<Ipv4>::new(30, false);
        let old = route("10.0.0.0/8", 1, 2);
        let other = route("10.5.0.0/16", 1, 2);
        v.observe(&seen(&old, true, 20)); // left by a run at metric 20
        v.observe(&seen(&other, true, 30));
        let unwanted = v.unwanted(|_| false);
        assert_eq!(unwanted, vec![old.prefix, other.prefix]);
        v.keep_stale(unwanted);
        // Not wanted yet: kept.
        assert_eq!(plan(&mut v, "10.5.0.0/16", None), vec![]);
        // Wanted at the new metric: the old metric's route goes first.
        assert_eq!(
            plan(&mut v, "10.0.0.0/8", Some(old)),
            vec![Op::Delete(old.prefix, 20, None), Op::Create(old)]
        );
        v.record(&Op::Delete(old.prefix, 20, None), Outcome::Done);
        v.record(&Op::Create(old), Outcome::Done);
        assert_eq!(v.stale(), 1);
        assert_eq!(v.converge(), vec![other.prefix]);
        assert_eq!(
            plan(&mut v, "10.5.0.0/16", None),
            vec![Op::Delete(other.prefix, 30, Some(other.held()))]
        );
    }
}
