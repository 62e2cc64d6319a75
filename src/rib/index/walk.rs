//! Ordered walks over the index: from a start bound, block by block
//! (skipping empty ones by the summary bits), leaf by leaf, in network
//! order.

use std::ops::Bound;

use crossbeam_epoch::{Guard, Pointable};

use super::leaf::{Leaf, Link, MAX_TAIL_KEYS};
use super::{BlockIndex, FANOUT, STRIDE, chunk, load_value, path_of};
use crate::engine_family::Family;
use crate::sync::Ordering;

/// A walk calling `f` until it returns `Some`.
pub(super) struct Walk<'i, 'g, F: Family, V: ?Sized + Pointable, Fun> {
    pub(super) index: &'i BlockIndex<F, V>,
    pub(super) guard: &'g Guard,
    pub(super) f: Fun,
}

impl<'g, F, V, R, Fun> Walk<'_, 'g, F, V, Fun>
where
    F: Family,
    V: ?Sized + Pointable + 'g,
    Fun: FnMut(&F::Network, &'g V) -> Option<R>,
{
    /// Walks every network at or after (after, for `Excluded`) `start`.
    pub(super) fn from(mut self, start: Bound<&F::Network>) -> Option<R> {
        let index = self.index;
        let (first_block, seek) = match start {
            Bound::Unbounded => (0, None),
            Bound::Included(n) | Bound::Excluded(n) => {
                (index.block(n), Some((path_of::<F>(n), start)))
            }
        };
        let blocks = index.root.len();
        let (mut b, mut seek) = (first_block, seek);
        while b < blocks {
            if seek.is_none() {
                // Skip empty blocks 64 at a time. Acquire pairs with the
                // writer's bit setting, which comes before it links a
                // block's first node: a walk that has seen the node (or
                // anything published after it) sees the bit.
                let word =
                    index.occupied[b / 64].load(std::sync::atomic::Ordering::Acquire) >> (b % 64);
                if word == 0 {
                    b = (b / 64 + 1) * 64;
                    continue;
                }
                b += word.trailing_zeros() as usize;
            }
            // Acquire: see `BlockIndex::get`.
            let link = Link(index.root[b].load(Ordering::Acquire));
            if let Some(r) = self.node(link, index.shape.top_bits, seek.take()) {
                return Some(r);
            }
            b += 1;
        }
        None
    }

    /// Walks one subtree at `depth`; with `seek`, only the networks at or
    /// after its bound (whose path leads through this subtree).
    fn node(
        &mut self,
        link: Link,
        depth: u32,
        seek: Option<(u128, Bound<&F::Network>)>,
    ) -> Option<R> {
        if let Some(inner) = link.inner() {
            // SAFETY: loaded while `guard` is pinned: retired, if at all,
            // after the load, so freed after `guard` unpins.
            let inner = unsafe { inner.as_ref() };
            let first = seek.map_or(0, |(path, _)| chunk(path, depth));
            for c in first..FANOUT {
                // Acquire: see `BlockIndex::get`.
                let child = Link(inner.children[c].load(Ordering::Acquire));
                let s = if c == first { seek } else { None };
                if child.0 != 0
                    && let Some(r) = self.node(child, depth + STRIDE, s)
                {
                    return Some(r);
                }
            }
            return None;
        }
        let p = link.leaf()?;
        // SAFETY: as above.
        let leaf = unsafe { Leaf::<F, V>::from_ptr(p) };
        let (keys, values) = (leaf.keys(), leaf.values());
        let sorted = leaf.sorted();
        let from = |keys: &[F::Network]| match seek {
            None | Some((_, Bound::Unbounded)) => 0,
            Some((_, Bound::Included(n))) => keys.partition_point(|k| k < n),
            Some((_, Bound::Excluded(n))) => keys.partition_point(|k| k <= n),
        };
        // The appended keys, sorted, merged into the sorted ones.
        let mut tail: smallvec::SmallVec<[usize; MAX_TAIL_KEYS]> = (sorted..keys.len()).collect();
        tail.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
        let tail_keys: smallvec::SmallVec<[F::Network; MAX_TAIL_KEYS]> =
            tail.iter().map(|&i| keys[i]).collect();
        let (mut i, mut j) = (from(&keys[..sorted]), from(&tail_keys));
        while i < sorted || j < tail.len() {
            let at = if j == tail.len() || (i < sorted && keys[i] < tail_keys[j]) {
                i += 1;
                i - 1
            } else {
                j += 1;
                tail[j - 1]
            };
            if let Some(value) = load_value(&values[at], self.guard)
                && let Some(r) = (self.f)(&keys[at], value)
            {
                return Some(r);
            }
        }
        None
    }
}
