//! Enumeration handles (RtmCreateEnumerationHandle / RtmEnumerateGetNextRoute
//! / RtmCloseEnumerationHandle).
//!
//! A cursor, not a snapshot: it walks destinations in network order and
//! takes each destination's route set as published when it gets there. So a
//! route that exists and matches throughout is returned exactly once, a
//! route added or deleted meanwhile may or may not be, every route returned
//! was in the table at some point during the walk (spec 3.5 (a)-(d)), and
//! memory stays constant whatever the table's size.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Bound;

use crossbeam_epoch as epoch;

use crate::criteria::Criteria;
use crate::engine_family::Family;
use crate::error::RtmError;
use crate::rib::{RouteMarks, Table};
use crate::route::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Exhausted,
    Closed,
}

/// An open enumeration of the routes matching some [`Criteria`].
///
/// Also an [`Iterator`] over the routes. Not tied to any client: it keeps
/// working across deregistrations and needs no registration to create.
///
/// ```
/// use rtm::{Criteria, Ipv4, IpRouteData, ProtocolId, RegisterOptions, Route, Rtm, Ttl};
/// let rtm = Rtm::new();
/// let c = rtm.register::<Ipv4>(ProtocolId(1), RegisterOptions::default()).unwrap();
/// let r = Route::<Ipv4>::new("10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap(), 1, IpRouteData::with_metric(1));
/// rtm.add_route(&c, &r, Ttl::Infinite).unwrap();
/// let mut e = rtm.enumerate(&Criteria::<Ipv4>::all()).unwrap();
/// assert_eq!(e.next_route().unwrap().network, r.network);
/// assert_eq!(e.next_route().unwrap_err().code(), 259); // no more routes
/// e.close().unwrap();
/// ```
pub struct Enumeration<F: Family> {
    /// The table it walks (kept alive by the enumeration, not the `Rtm`).
    table: std::sync::Arc<Table<F>>,
    criteria: Criteria<F>,
    /// The last destination visited.
    position: Option<F::Network>,
    pending: VecDeque<(Route<F>, RouteMarks)>,
    state: State,
}

impl<F: Family> fmt::Debug for Enumeration<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enumeration")
            .field("criteria", &self.criteria)
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .field("state", &self.state)
            .finish()
    }
}

impl<F: Family> Enumeration<F> {
    pub(crate) fn open(
        table: std::sync::Arc<Table<F>>,
        criteria: Criteria<F>,
    ) -> Result<Self, RtmError> {
        let mut e = Enumeration {
            table,
            criteria,
            position: None,
            pending: VecDeque::new(),
            state: State::Open,
        };
        e.refill();
        if e.pending.is_empty() {
            return Err(RtmError::NoRoutes(criteria.to_string()));
        }
        Ok(e)
    }

    /// Moves to the next destination with matching routes and buffers them.
    fn refill(&mut self) {
        let table = &*self.table;
        let criteria = &self.criteria;
        if let Some(n) = criteria.network {
            // One network only: visit it once.
            self.state = State::Exhausted;
            let guard = epoch::pin();
            if let Some(set) = table.published(&n, &guard) {
                let routes = table.decode(n, set);
                self.pending
                    .extend(Table::matching_marked(&routes, criteria, None));
            }
            return;
        }
        let start = match self.position {
            Some(p) => Bound::Excluded(p),
            None => Bound::Unbounded,
        };
        let found = table.scan(start, |network, set| {
            let routes: VecDeque<(Route<F>, RouteMarks)> =
                Table::matching_marked(set, criteria, None).collect();
            (!routes.is_empty()).then_some((network, routes))
        });
        match found {
            Some((network, routes)) => {
                self.position = Some(network);
                self.pending = routes;
            }
            None => self.state = State::Exhausted,
        }
    }

    /// The next route (RtmEnumerateGetNextRoute): `NoMoreRoutes` at the end
    /// (and on every call after it), `InvalidHandle` once closed.
    pub fn next_route(&mut self) -> Result<Route<F>, RtmError> {
        self.next_marked().map(|(r, _)| r)
    }

    /// [`next_route`](Enumeration::next_route) with the route's marks as
    /// they were when the enumeration reached its network.
    pub fn next_marked(&mut self) -> Result<(Route<F>, RouteMarks), RtmError> {
        loop {
            if self.state == State::Closed {
                return Err(RtmError::InvalidHandle(
                    "the enumeration handle is closed".into(),
                ));
            }
            if let Some(r) = self.pending.pop_front() {
                return Ok(r);
            }
            if self.state == State::Exhausted {
                return Err(RtmError::NoMoreRoutes);
            }
            self.refill();
        }
    }

    /// Ends the enumeration (RtmCloseEnumerationHandle); closing again is
    /// `InvalidHandle`. Dropping the value closes it too.
    pub fn close(&mut self) -> Result<(), RtmError> {
        if self.state == State::Closed {
            return Err(RtmError::InvalidHandle(
                "the enumeration handle is already closed".into(),
            ));
        }
        self.state = State::Closed;
        self.pending.clear();
        Ok(())
    }

    /// The criteria this enumeration selects by.
    pub fn criteria(&self) -> &Criteria<F> {
        &self.criteria
    }
}

impl<F: Family> Iterator for Enumeration<F> {
    type Item = Route<F>;
    fn next(&mut self) -> Option<Route<F>> {
        self.next_route().ok()
    }
}
