//! Executes parsed batch commands against one [`Rtm`] running on a test
//! clock, keeping the clients and enumerations the script opened.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::grammar::{AnyFamily, BatchFamily, BlockOp, Command};
use super::json::Json;
use crate::change::Change;
use crate::client::{ClientHandle, RegisterOptions};
use crate::clock::ManualClock;
use crate::criteria::Criteria;
use crate::engine_family::IpFamily;
use crate::enumerate::Enumeration;
use crate::error::RtmError;
use crate::family::{Ipv4, Ipv6, Ipx, for_family_id};
use crate::fib::FibEntry;
use crate::notify::DequeueStatus;
use crate::rib::RouteMarks;
use crate::route::{ProtocolId, Route, Ttl};
use crate::rtm::Rtm;

/// A command's result: its text lines and its JSON fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text output, one or more lines.
    pub text: Vec<String>,
    /// The JSON fields (the runner adds the line number and command word).
    pub json: Vec<(&'static str, Json)>,
}

impl Reply {
    /// A one-word result (`ok`, `added`, `no-routes`, ...).
    fn word(w: &str) -> Reply {
        Reply {
            text: vec![w.to_string()],
            json: vec![("result", w.into())],
        }
    }

    /// `ok <n> routes <what>`.
    fn counted(n: usize, what: &'static str) -> Reply {
        Reply {
            text: vec![format!("ok {n} routes {what}")],
            json: vec![("result", "ok".into()), (what, (n as u64).into())],
        }
    }

    /// A route line, or `none` when there is no route.
    fn route<F: BatchFamily>(r: Option<&Route<F>>, none: String) -> Reply {
        Reply {
            text: vec![r.map_or(none, route_line)],
            json: vec![("route", r.map_or(Json::Null, route_json))],
        }
    }
}

/// A route line: `<network> via <nh> dev <if> proto <p> <data>`, the data
/// being `metric <m>` (IP) or `ticks <t> hops <h>` (IPX).
pub fn route_line<F: BatchFamily>(r: &Route<F>) -> String {
    format!(
        "{} via {} dev {} proto {} {}",
        r.network,
        r.next_hop,
        r.interface,
        r.protocol,
        F::format_data(&r.data)
    )
}

/// A route as a JSON object.
pub fn route_json<F: BatchFamily>(r: &Route<F>) -> Json {
    let mut fields = vec![
        ("network", r.network.to_string().into()),
        ("next_hop", r.next_hop.to_string().into()),
        ("interface", r.interface.into()),
        ("protocol", r.protocol.0.into()),
    ];
    fields.extend(F::data_json(&r.data));
    Json::Obj(fields)
}

/// An open enumeration of any family.
type AnyEnumeration = AnyFamily<Enumeration<Ipv4>, Enumeration<Ipv6>, Enumeration<Ipx>>;

/// The script's registered clients per family, by protocol.
#[derive(Default)]
struct Clients {
    v4: HashMap<ProtocolId, ClientHandle<Ipv4>>,
    v6: HashMap<ProtocolId, ClientHandle<Ipv6>>,
    ipx: HashMap<ProtocolId, ClientHandle<Ipx>>,
}

/// Per-family access to the session's state.
trait SessionFamily: BatchFamily {
    fn clients(c: &mut Clients) -> &mut HashMap<ProtocolId, ClientHandle<Self>>;
    fn wrap(e: Enumeration<Self>) -> AnyEnumeration;
}

impl SessionFamily for Ipv4 {
    fn clients(c: &mut Clients) -> &mut HashMap<ProtocolId, ClientHandle<Self>> {
        &mut c.v4
    }
    fn wrap(e: Enumeration<Self>) -> AnyEnumeration {
        AnyFamily::V4(e)
    }
}
impl SessionFamily for Ipv6 {
    fn clients(c: &mut Clients) -> &mut HashMap<ProtocolId, ClientHandle<Self>> {
        &mut c.v6
    }
    fn wrap(e: Enumeration<Self>) -> AnyEnumeration {
        AnyFamily::V6(e)
    }
}
impl SessionFamily for Ipx {
    fn clients(c: &mut Clients) -> &mut HashMap<ProtocolId, ClientHandle<Self>> {
        &mut c.ipx
    }
    fn wrap(e: Enumeration<Self>) -> AnyEnumeration {
        AnyFamily::Ipx(e)
    }
}

/// Calls `$body` with `$v` bound to the family-typed value inside `$any`
/// and `$F` naming its family.
macro_rules! per_family {
    ($any:expr, |$v:ident, $F:ident| $body:expr) => {
        match $any {
            AnyFamily::V4($v) => {
                type $F = Ipv4;
                $body
            }
            AnyFamily::V6($v) => {
                type $F = Ipv6;
                $body
            }
            AnyFamily::Ipx($v) => {
                type $F = Ipx;
                $body
            }
        }
    };
}

fn change_word<F: BatchFamily>(c: &Change<F>) -> &'static str {
    match c {
        Change::NoChange => "no-change",
        Change::Added { .. } => "added",
        // ECMP: the best route stayed, its set of paths changed.
        c if c.is_paths_change() => "paths-changed",
        Change::Changed { .. } => "changed",
        Change::Deleted { .. } => "deleted",
    }
}

/// One batch's table, clock, clients and open enumerations.
///
/// ```
/// use rtm::batch::{Session, parse_line};
/// let mut s = Session::new();
/// for line in ["register ipv4 rip", "add rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric 2"] {
///     s.execute(&parse_line(line).unwrap().unwrap()).unwrap();
/// }
/// let reply = s.execute(&parse_line("lookup 10.1.2.3").unwrap().unwrap()).unwrap();
/// assert_eq!(reply.text, ["10.1.2.3 via 192.0.2.1 dev 1 proto 8 prefix 10.0.0.0/8"]);
/// ```
pub struct Session {
    rtm: Rtm,
    clock: ManualClock,
    clients: Clients,
    enumerations: BTreeMap<u64, AnyEnumeration>,
    next_enumeration: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// An empty table on a [`ManualClock`] standing at 2026-01-01 00:00 UTC:
    /// time moves only with `advance`, so a script's output is reproducible.
    pub fn new() -> Session {
        Session::with_max_routes_per_network(u16::MAX)
    }

    /// As [`Session::new`], with at most `max` routes on one network (see
    /// `RtmBuilder::max_routes_per_network`; `u16::MAX` means RTMv1's
    /// 65,534).
    pub fn with_max_routes_per_network(max: u16) -> Session {
        let clock = ManualClock::new();
        Session {
            rtm: Rtm::builder()
                .clock(clock.clone())
                .max_routes_per_network(max)
                .build(),
            clock,
            clients: Clients::default(),
            enumerations: BTreeMap::new(),
            next_enumeration: 1,
        }
    }

    /// The table the script drives.
    pub fn rtm(&self) -> &Rtm {
        &self.rtm
    }

    /// Executes one command. On `Err` (the message says what failed) the
    /// table and the session are unchanged.
    pub fn execute(&mut self, cmd: &Command) -> Result<Reply, String> {
        self.run(cmd).map_err(|e| match e {
            Failure::Rtm(e) => e.to_string(),
            Failure::Script(s) => s,
        })
    }

    fn run(&mut self, cmd: &Command) -> Result<Reply, Failure> {
        Ok(match cmd {
            Command::Priority { protocol, value } => {
                self.rtm.set_priority(*protocol, *value);
                Reply::word("ok")
            }
            Command::Register {
                family,
                protocol,
                options,
            } => for_family_id!(family, |F| self.register::<F>(*protocol, *options)?),
            Command::Deregister { family, protocol } => {
                for_family_id!(family, |F| self.deregister::<F>(*protocol)?)
            }
            Command::DeregisterGraceful {
                family,
                protocol,
                hold,
            } => {
                for_family_id!(family, |F| self
                    .deregister_graceful::<F>(*protocol, *hold)?)
            }
            Command::MarkStale {
                family,
                protocol,
                hold,
            } => for_family_id!(family, |F| {
                let h = self.client::<F>(*protocol)?;
                let hold = hold.map(std::time::Duration::from_secs);
                Reply::counted(self.rtm.mark_stale(&h, hold)?, "marked")
            }),
            Command::EndOfRib { family, protocol } => for_family_id!(family, |F| {
                let h = self.client::<F>(*protocol)?;
                Reply::counted(self.rtm.end_of_rib(&h)?, "swept")
            }),
            Command::StaleYielding { protocol, yields } => {
                self.rtm.set_stale_yielding(*protocol, *yields);
                Reply::word("ok")
            }
            Command::Multipath { protocol, on } => {
                self.rtm.set_multipath(*protocol, *on);
                Reply::word("ok")
            }
            Command::Paths(net) => per_family!(net, |n, F| self.paths::<F>(n)),
            Command::LookupFlow(addr, hash) => match *addr {
                IpAddr::V4(a) => flow_reply::<Ipv4>(&self.rtm, a, *hash),
                IpAddr::V6(a) => flow_reply::<Ipv6>(&self.rtm, a, *hash),
            },
            Command::NextHop {
                next_hop,
                interface,
                down,
            } => {
                let n = match *next_hop {
                    IpAddr::V4(a) => next_hop_state(self.rtm.fib::<Ipv4>(), a, *interface, *down),
                    IpAddr::V6(a) => next_hop_state(self.rtm.fib::<Ipv6>(), a, *interface, *down),
                };
                Reply {
                    text: vec![format!("ok {n} groups")],
                    json: vec![("groups", (n as u64).into())],
                }
            }
            Command::Add { route, ttl } => per_family!(route, |r, F| self.add::<F>(r, *ttl)?),
            Command::Del { route } => per_family!(route, |r, F| self.del::<F>(r)?),
            Command::Lookup(addr) => self.lookup(*addr),
            Command::Best(net) => per_family!(net, |n, F| Reply::route(
                self.rtm.is_route::<F>(n).as_ref(),
                format!("{n} no-route")
            )),
            Command::Count(family) => {
                let n = self.rtm.network_count_raw(family.raw())?;
                Reply {
                    text: vec![format!("{n} networks")],
                    json: vec![("networks", (n as u64).into())],
                }
            }
            Command::Routes(c) => per_family!(c, |c, F| self.routes::<F>(c)?),
            Command::First(c) => per_family!(c, |c, F| none_if_no_routes(
                self.rtm
                    .get_first::<F>(c)
                    .map(|r| Reply::route(Some(&r), String::new()))
            )?),
            Command::Next { after, criteria } => match (after, criteria) {
                (AnyFamily::V4(a), AnyFamily::V4(c)) => self.next::<Ipv4>(a, c)?,
                (AnyFamily::V6(a), AnyFamily::V6(c)) => self.next::<Ipv6>(a, c)?,
                (AnyFamily::Ipx(a), AnyFamily::Ipx(c)) => self.next::<Ipx>(a, c)?,
                // The parser never builds this; a hand-made command can.
                _ => {
                    return Err(Failure::Script(
                        "next: the criteria are not of the route's family".into(),
                    ));
                }
            },
            Command::Block {
                op,
                protocol,
                criteria,
            } => per_family!(criteria, |c, F| self.block::<F>(*op, *protocol, c)?),
            Command::Dequeue { family, protocol } => {
                for_family_id!(family, |F| self.dequeue::<F>(*protocol)?)
            }
            Command::Age { route } => per_family!(route, |r, F| self.age::<F>(r)?),
            Command::Advance(secs) => {
                self.clock.advance_secs(*secs);
                Reply::counted(self.rtm.sweep_expired(), "expired")
            }
            Command::EnumOpen(c) => per_family!(c, |c, F| self.enum_open::<F>(c)?),
            Command::EnumNext(id) => self.enum_next(*id)?,
            Command::EnumClose(id) => {
                let mut e = self
                    .enumerations
                    .remove(id)
                    .ok_or_else(|| Failure::no_enumeration(*id))?;
                match &mut e {
                    AnyFamily::V4(e) => e.close()?,
                    AnyFamily::V6(e) => e.close()?,
                    AnyFamily::Ipx(e) => e.close()?,
                }
                Reply::word("ok")
            }
        })
    }

    fn client<F: SessionFamily>(&mut self, p: ProtocolId) -> Result<ClientHandle<F>, Failure> {
        F::clients(&mut self.clients)
            .get(&p)
            .cloned()
            .ok_or_else(|| {
                Failure::Script(format!("protocol {p} is not registered for {}", F::NAME))
            })
    }

    fn register<F: SessionFamily>(
        &mut self,
        p: ProtocolId,
        options: RegisterOptions,
    ) -> Result<Reply, Failure> {
        let h = self.rtm.register::<F>(p, options)?;
        F::clients(&mut self.clients).insert(p, h);
        Ok(Reply::word("ok"))
    }

    fn deregister<F: SessionFamily>(&mut self, p: ProtocolId) -> Result<Reply, Failure> {
        let h = self.client::<F>(p)?;
        let n = self.rtm.deregister(&h)?;
        F::clients(&mut self.clients).remove(&p);
        Ok(Reply::counted(n, "removed"))
    }

    fn deregister_graceful<F: SessionFamily>(
        &mut self,
        p: ProtocolId,
        hold: u64,
    ) -> Result<Reply, Failure> {
        let h = self.client::<F>(p)?;
        let n = self
            .rtm
            .deregister_graceful(&h, std::time::Duration::from_secs(hold))?;
        F::clients(&mut self.clients).remove(&p);
        Ok(Reply::counted(n, "kept"))
    }

    fn add<F: SessionFamily>(&mut self, r: &Route<F>, ttl: Ttl) -> Result<Reply, Failure> {
        let h = self.client::<F>(r.protocol)?;
        Ok(Reply::word(change_word(&self.rtm.add_route(&h, r, ttl)?)))
    }

    fn del<F: SessionFamily>(&mut self, r: &Route<F>) -> Result<Reply, Failure> {
        let h = self.client::<F>(r.protocol)?;
        Ok(Reply::word(change_word(&self.rtm.delete_route(&h, r)?)))
    }

    fn lookup(&self, addr: IpAddr) -> Reply {
        match addr {
            IpAddr::V4(a) => lookup_reply::<Ipv4>(&self.rtm, a),
            IpAddr::V6(a) => lookup_reply::<Ipv6>(&self.rtm, a),
        }
    }

    fn routes<F: SessionFamily>(&self, c: &Criteria<F>) -> Result<Reply, Failure> {
        let mut routes: Vec<(Route<F>, RouteMarks)> = Vec::new();
        match self.rtm.enumerate(c) {
            Ok(mut e) => {
                while let Ok(r) = e.next_marked() {
                    routes.push(r);
                }
            }
            Err(RtmError::NoRoutes(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // A stale route's line ends in "stale", its JSON says so; fresh
        // routes print as they always have.
        let mut text: Vec<String> = routes
            .iter()
            .map(|(r, m)| {
                let line = route_line(r);
                if m.stale { line + " stale" } else { line }
            })
            .collect();
        text.push(format!("{} routes", routes.len()));
        let json = routes
            .iter()
            .map(|(r, m)| match route_json(r) {
                Json::Obj(mut fields) if m.stale => {
                    fields.push(("stale", true.into()));
                    Json::Obj(fields)
                }
                other => other,
            })
            .collect();
        Ok(Reply {
            text,
            json: vec![
                ("routes", Json::Arr(json)),
                ("count", (routes.len() as u64).into()),
            ],
        })
    }

    /// The network's best paths, one route line each (ECMP).
    fn paths<F: SessionFamily>(&self, n: &F::Network) -> Reply {
        let paths = self.rtm.best_paths::<F>(n);
        let mut text: Vec<String> = paths.iter().map(route_line).collect();
        text.push(format!("{} paths", paths.len()));
        Reply {
            text,
            json: vec![
                ("paths", Json::Arr(paths.iter().map(route_json).collect())),
                ("count", (paths.len() as u64).into()),
            ],
        }
    }

    fn next<F: SessionFamily>(&self, after: &Route<F>, c: &Criteria<F>) -> Result<Reply, Failure> {
        none_if_no_routes(
            self.rtm
                .get_next(c, after)
                .map(|r| Reply::route(Some(&r), String::new())),
        )
    }

    fn block<F: SessionFamily>(
        &mut self,
        op: BlockOp,
        p: ProtocolId,
        c: &Criteria<F>,
    ) -> Result<Reply, Failure> {
        let h = self.client::<F>(p)?;
        none_if_no_routes(match op {
            BlockOp::Delete => self
                .rtm
                .block_delete(&h, c)
                .map(|n| Reply::counted(n, "deleted")),
            BlockOp::Disable => self
                .rtm
                .block_set_enable(&h, c, false)
                .map(|n| Reply::counted(n, "disabled")),
            BlockOp::Enable => self
                .rtm
                .block_set_enable(&h, c, true)
                .map(|n| Reply::counted(n, "enabled")),
            BlockOp::ConvertToStatic => self
                .rtm
                .block_convert_to_static(&h, c)
                .map(|n| Reply::counted(n, "converted")),
        })
    }

    fn dequeue<F: SessionFamily>(&mut self, p: ProtocolId) -> Result<Reply, Failure> {
        let h = self.client::<F>(p)?;
        let d = match self.rtm.dequeue(&h) {
            Ok(d) => d,
            Err(RtmError::NoMessages) => return Ok(Reply::word("no-messages")),
            Err(e) => return Err(e.into()),
        };
        let more = d.status == DequeueStatus::MoreMessages;
        let mut text = change_word(&d.change).to_string();
        if let Some(r) = d.change.previous().filter(|_| !d.change.is_paths_change()) {
            text += &format!(" previous {}", route_line(r));
        }
        if let Some(r) = d.change.current() {
            text += &format!(" current {}", route_line(r));
        }
        if more {
            text += " more";
        }
        Ok(Reply {
            text: vec![text],
            json: vec![
                ("change", change_word(&d.change).into()),
                (
                    "previous",
                    d.change.previous().map_or(Json::Null, route_json),
                ),
                ("current", d.change.current().map_or(Json::Null, route_json)),
                ("more", more.into()),
            ],
        })
    }

    fn age<F: SessionFamily>(&self, r: &Route<F>) -> Result<Reply, Failure> {
        let c = Criteria::<F>::all()
            .network(r.network)
            .protocol(r.protocol)
            .include_disabled();
        let stored = match self.rtm.enumerate(&c) {
            Ok(mut e) => e.find(|s| s.key() == r.key()),
            Err(RtmError::NoRoutes(_)) => None,
            Err(e) => return Err(e.into()),
        }
        .ok_or_else(|| Failure::Script(format!("no such route: {}", route_key(r))))?;
        let age = self.rtm.route_age(&stored)?;
        Ok(Reply {
            text: vec![format!("{age} seconds")],
            json: vec![("seconds", age.into())],
        })
    }

    fn enum_open<F: SessionFamily>(&mut self, c: &Criteria<F>) -> Result<Reply, Failure> {
        let e = match self.rtm.enumerate(c) {
            Ok(e) => e,
            Err(RtmError::NoRoutes(_)) => return Ok(Reply::word("no-routes")),
            Err(e) => return Err(e.into()),
        };
        let id = self.next_enumeration;
        self.next_enumeration += 1;
        self.enumerations.insert(id, F::wrap(e));
        Ok(Reply {
            text: vec![format!("ok enumeration {id}")],
            json: vec![("result", "ok".into()), ("enumeration", id.into())],
        })
    }

    fn enum_next(&mut self, id: u64) -> Result<Reply, Failure> {
        let e = self
            .enumerations
            .get_mut(&id)
            .ok_or_else(|| Failure::no_enumeration(id))?;
        Ok(per_family!(e, |e, F| match e.next_route() {
            Ok(r) => Reply::route::<F>(Some(&r), String::new()),
            Err(RtmError::NoMoreRoutes) => Reply::word("no-more-routes"),
            Err(err) => return Err(err.into()),
        }))
    }
}

/// The `lookup` result line for `addr` (RtmLookupIPDestination):
/// `<addr> via <nh> dev <if> proto <p> prefix <network>` or
/// `<addr> unreachable`.
pub fn lookup_line<F: IpFamily + BatchFamily>(rtm: &Rtm, addr: F::Addr) -> String {
    lookup_text::<F>(addr, rtm.lookup_route::<F>(addr).as_ref())
}

fn lookup_text<F: IpFamily + BatchFamily>(a: F::Addr, r: Option<&Route<F>>) -> String {
    answer_line::<F>(a, r.map(FibEntry::of))
}

/// A lookup's answer as `lookup` and `lookup-flow` print it.
fn answer_line<F: IpFamily>(a: F::Addr, e: Option<FibEntry<F>>) -> String {
    match e {
        Some(e) => format!(
            "{a} via {} dev {} proto {} prefix {}",
            e.next_hop, e.interface, e.protocol, e.prefix
        ),
        None => format!("{a} unreachable"),
    }
}

fn lookup_reply<F: IpFamily + BatchFamily>(rtm: &Rtm, a: F::Addr) -> Reply {
    let r = rtm.lookup_route::<F>(a);
    Reply {
        text: vec![lookup_text::<F>(a, r.as_ref())],
        json: vec![
            ("address", a.to_string().into()),
            ("route", r.as_ref().map_or(Json::Null, route_json)),
        ],
    }
}

/// `lookup-flow`: the FIB's answer for one flow hash.
fn flow_reply<F: IpFamily + BatchFamily>(rtm: &Rtm, a: F::Addr, hash: u32) -> Reply {
    let e = rtm.lookup_flow::<F>(a, hash);
    let text = answer_line(a, e);
    let json = e.map_or(Json::Null, |e| {
        Json::Obj(vec![
            ("network", e.prefix.to_string().into()),
            ("next_hop", e.next_hop.to_string().into()),
            ("interface", e.interface.into()),
            ("protocol", e.protocol.0.into()),
        ])
    });
    Reply {
        text: vec![text],
        json: vec![("address", a.to_string().into()), ("entry", json)],
    }
}

/// `next-hop-down` / `next-hop-up`: the groups rewritten.
fn next_hop_state<F: IpFamily>(
    fib: &crate::LpmFib<F>,
    a: F::Addr,
    interface: u32,
    down: bool,
) -> usize {
    if down {
        fib.next_hop_down(a, interface)
    } else {
        fib.next_hop_up(a, interface)
    }
}

/// A route's key as the script wrote it.
fn route_key<F: BatchFamily>(r: &Route<F>) -> String {
    format!(
        "{} via {} dev {} proto {}",
        r.network, r.next_hop, r.interface, r.protocol
    )
}

/// `NoRoutes` is an answer, not a failure, for the calls that search.
fn none_if_no_routes(r: Result<Reply, RtmError>) -> Result<Reply, Failure> {
    match r {
        Err(RtmError::NoRoutes(_)) => Ok(Reply::word("no-routes")),
        r => r.map_err(Failure::Rtm),
    }
}

/// Why a command failed: the engine refused it, or the script named
/// something it never created.
enum Failure {
    Rtm(RtmError),
    Script(String),
}

impl Failure {
    fn no_enumeration(id: u64) -> Failure {
        Failure::Script(format!("enumeration {id} is not open"))
    }
}

impl From<RtmError> for Failure {
    fn from(e: RtmError) -> Failure {
        Failure::Rtm(e)
    }
}
