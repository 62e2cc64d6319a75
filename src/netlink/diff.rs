//! What to send the kernel: the routes rtm wants there, against what a
//! dump found.

use std::collections::HashMap;

use super::{KernelFamily, KernelRoute, Op};
use crate::prefix::Prefix;

/// The operations that turn `kernel` into `wanted`: a replace for every
/// wanted route the kernel lacks or holds differently, a delete for every
/// kernel route rtm does not want. Routes already right are left alone,
/// so a resynchronisation after a restart costs a dump, not a reload.
/// Sorted by prefix, so a repair's order does not depend on hashing.
pub(crate) fn repair<F: KernelFamily>(
    wanted: &HashMap<Prefix<F::Addr>, KernelRoute<F>>,
    kernel: &HashMap<Prefix<F::Addr>, KernelRoute<F>>,
) -> Vec<Op<F>> {
    let mut ops: Vec<Op<F>> = wanted
        .values()
        .filter(|w| kernel.get(&w.prefix) != Some(*w))
        .map(|w| Op::Replace(*w))
        .chain(
            kernel
                .keys()
                .filter(|p| !wanted.contains_key(*p))
                .map(|p| Op::Delete(*p)),
        )
        .collect();
    ops.sort_by_key(|op| op.prefix());
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Ipv4;

    fn r(p: &str, gw: Option<&str>, oif: u32) -> KernelRoute<Ipv4> {
        KernelRoute {
            prefix: p.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            oif,
        }
    }

    fn map(routes: &[KernelRoute<Ipv4>]) -> HashMap<Prefix<std::net::Ipv4Addr>, KernelRoute<Ipv4>> {
        routes.iter().map(|r| (r.prefix, *r)).collect()
    }

    /// Catches a repair that rewrites routes already right (a restart
    /// would reload the whole table), misses a changed gateway or device,
    /// or leaves behind a route the kernel gained while rtm was away.
    #[test]
    fn repair_touches_only_what_differs() {
        let same = r("10.0.0.0/8", Some("192.0.2.1"), 2);
        let wanted = map(&[
            same,
            r("10.1.0.0/16", Some("192.0.2.2"), 2),
            r("10.2.0.0/16", None, 3),
            r("10.3.0.0/16", Some("192.0.2.3"), 2),
        ]);
        let kernel = map(&[
            same,
            r("10.1.0.0/16", Some("192.0.2.9"), 2), // another gateway
            r("10.2.0.0/16", None, 2),              // another device
            r("10.9.0.0/16", Some("192.0.2.1"), 2), // added behind rtm's back
        ]);
        let ops = repair(&wanted, &kernel);
        assert_eq!(
            ops,
            vec![
                Op::Replace(r("10.1.0.0/16", Some("192.0.2.2"), 2)),
                Op::Replace(r("10.2.0.0/16", None, 3)),
                Op::Replace(r("10.3.0.0/16", Some("192.0.2.3"), 2)),
                Op::Delete("10.9.0.0/16".parse().unwrap()),
            ]
        );
        assert!(repair(&wanted, &wanted).is_empty());
    }
}
