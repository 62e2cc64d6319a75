//! The batch language's parser: one line into one [`Command`], or an
//! error naming the token that was wrong. Parsing touches no table.

use crate::error::quoted;
use std::net::IpAddr;
use std::str::FromStr;

use super::json::Json;
use crate::client::RegisterOptions;
use crate::criteria::Criteria;
use crate::engine_family::Family;
use crate::family::{AddressFamily, FamilyId, Ipv4, Ipv6, Ipx};
use crate::prefix::IpxNetwork;
use crate::route::{IpRouteData, IpxRouteData, ProtocolId, Route, Ttl};

/// A value of one of the three families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyFamily<V4, V6, X> {
    /// IPv4.
    V4(V4),
    /// IPv6.
    V6(V6),
    /// IPX.
    Ipx(X),
}

/// A route of any family.
pub type AnyRoute = AnyFamily<Route<Ipv4>, Route<Ipv6>, Route<Ipx>>;
/// Enumeration criteria of any family.
pub type AnyCriteria = AnyFamily<Criteria<Ipv4>, Criteria<Ipv6>, Criteria<Ipx>>;
/// A network of any family.
pub type AnyNetwork = AnyFamily<
    <Ipv4 as AddressFamily>::Network,
    <Ipv6 as AddressFamily>::Network,
    <Ipx as AddressFamily>::Network,
>;

/// Which block operation (RtmBlockDeleteRoutes, RtmBlockSetRouteEnable,
/// RtmBlockConvertRoutesToStatic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOp {
    /// `block-delete`.
    Delete,
    /// `block-disable`.
    Disable,
    /// `block-enable`.
    Enable,
    /// `convert-static`.
    ConvertToStatic,
}

impl BlockOp {
    /// The command word.
    pub fn word(self) -> &'static str {
        match self {
            BlockOp::Delete => "block-delete",
            BlockOp::Disable => "block-disable",
            BlockOp::Enable => "block-enable",
            BlockOp::ConvertToStatic => "convert-static",
        }
    }

    fn of_word(word: &str) -> Option<BlockOp> {
        [
            BlockOp::Delete,
            BlockOp::Disable,
            BlockOp::Enable,
            BlockOp::ConvertToStatic,
        ]
        .into_iter()
        .find(|op| op.word() == word)
    }
}

/// One parsed batch command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `priority <protocol> <value>`.
    Priority {
        /// The protocol.
        protocol: ProtocolId,
        /// Its priority; lower wins.
        value: u32,
    },
    /// `register <family> <protocol> [single-route] [notify] [coalesce]`.
    Register {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
        /// Its options.
        options: RegisterOptions,
    },
    /// `deregister <family> <protocol>`.
    Deregister {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
    },
    /// `deregister-graceful <family> <protocol> hold <seconds>`: the
    /// client goes, its routes stay, stale, for the protocol's next
    /// `register` to adopt.
    DeregisterGraceful {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
        /// Seconds the stale routes are held.
        hold: u64,
    },
    /// `mark-stale <family> <protocol> [hold <seconds>]`.
    MarkStale {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
        /// Seconds until `advance` sweeps what is still stale, if given.
        hold: Option<u64>,
    },
    /// `end-of-rib <family> <protocol>`: sweeps the client's stale routes.
    EndOfRib {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
    },
    /// `stale-yielding <protocol> on|off`: whether the protocol's stale
    /// routes lose to fresh ones of equal priority.
    StaleYielding {
        /// The protocol.
        protocol: ProtocolId,
        /// On or off.
        yields: bool,
    },
    /// `multipath <protocol> on|off`: whether the protocol's equal-cost
    /// routes all forward (ECMP).
    Multipath {
        /// The protocol.
        protocol: ProtocolId,
        /// On or off.
        on: bool,
    },
    /// `paths <network>`: the network's best paths (ECMP).
    Paths(AnyNetwork),
    /// `lookup-flow <address> <hash>`: the FIB's answer for one flow.
    LookupFlow(IpAddr, u32),
    /// `next-hop-down|next-hop-up <address> dev <if>`: a next hop leaves
    /// (or rejoins) every ECMP group through it.
    NextHop {
        /// The next hop.
        next_hop: IpAddr,
        /// Its interface.
        interface: u32,
        /// Down (or up again).
        down: bool,
    },
    /// `add <protocol> <network> via <nh> dev <if> <data> [ttl <s>]`.
    Add {
        /// The route (its protocol is the client's).
        route: AnyRoute,
        /// Its time to live.
        ttl: Ttl,
    },
    /// `del <protocol> <network> via <nh> dev <if>`.
    Del {
        /// The route key to delete.
        route: AnyRoute,
    },
    /// `lookup <address>`.
    Lookup(IpAddr),
    /// `best <network>`: RtmIsRoute.
    Best(AnyNetwork),
    /// `count <family>`: RtmGetNetworkCount.
    Count(FamilyId),
    /// `routes <family> [criteria]`: every matching route.
    Routes(AnyCriteria),
    /// `first <family> [criteria]`: RtmGetFirstRoute.
    First(AnyCriteria),
    /// `next <protocol> <network> via <nh> dev <if> [criteria]`: RtmGetNextRoute.
    Next {
        /// The route whose successor is wanted (need not exist).
        after: AnyRoute,
        /// The criteria, of `after`'s family.
        criteria: AnyCriteria,
    },
    /// `block-delete|block-disable|block-enable|convert-static <family> <protocol> [criteria]`.
    Block {
        /// Which operation.
        op: BlockOp,
        /// The calling client's protocol.
        protocol: ProtocolId,
        /// Which routes, of the family named.
        criteria: AnyCriteria,
    },
    /// `dequeue <family> <protocol>`.
    Dequeue {
        /// The family.
        family: FamilyId,
        /// The protocol.
        protocol: ProtocolId,
    },
    /// `age <protocol> <network> via <nh> dev <if>`: RtmGetRouteAge of the
    /// stored route with that key.
    Age {
        /// The route key.
        route: AnyRoute,
    },
    /// `advance <seconds>`: moves the test clock, then expires routes.
    Advance(u64),
    /// `enum-open <family> [criteria]`: RtmCreateEnumerationHandle.
    EnumOpen(AnyCriteria),
    /// `enum-next <id>`: RtmEnumerateGetNextRoute.
    EnumNext(u64),
    /// `enum-close <id>`: RtmCloseEnumerationHandle.
    EnumClose(u64),
}

/// The tokens of one line, consumed left to right; every error names the
/// command and the token (or the missing one).
struct Tokens<'a> {
    command: &'a str,
    rest: std::iter::Peekable<std::str::SplitWhitespace<'a>>,
}

impl<'a> Tokens<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        self.rest
            .next()
            .ok_or_else(|| format!("{}: missing {what}", self.command))
    }

    fn peek(&mut self) -> Option<&'a str> {
        self.rest.peek().copied()
    }

    fn keyword(&mut self, kw: &str) -> Result<(), String> {
        match self.rest.next() {
            Some(t) if t == kw => Ok(()),
            Some(t) => Err(format!(
                "{}: expected {kw:?}, got {t}",
                self.command,
                t = quoted(t)
            )),
            None => Err(format!("{}: missing {kw:?}", self.command)),
        }
    }

    fn number<T: Unsigned>(&mut self, what: &str) -> Result<T, String> {
        self.number_from(what, 0)
    }

    /// A number from `min` to `T::MAX`.
    fn number_from<T: Unsigned>(&mut self, what: &str, min: u64) -> Result<T, String> {
        let t = self.next(what)?;
        t.parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .and_then(|_| t.parse().ok())
            .ok_or_else(|| {
                format!(
                    "{}: {what} {t} is not a number from {min} to {}",
                    self.command,
                    T::MAX,
                    t = quoted(t)
                )
            })
    }

    fn parsed<T: FromStr>(&mut self, what: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let t = self.next(what)?;
        t.parse()
            .map_err(|e| format!("{}: bad {what} {t}: {e}", self.command, t = quoted(t)))
    }

    fn end(&mut self) -> Result<(), String> {
        match self.rest.next() {
            None => Ok(()),
            Some(t) => Err(format!(
                "{}: unexpected {t} at the end",
                self.command,
                t = quoted(t)
            )),
        }
    }
}

/// The unsigned integers a command takes, with their range for messages.
trait Unsigned: FromStr {
    const MAX: u64;
}
impl Unsigned for u16 {
    const MAX: u64 = u16::MAX as u64;
}
impl Unsigned for u32 {
    const MAX: u64 = u32::MAX as u64;
}
impl Unsigned for u64 {
    const MAX: u64 = u64::MAX;
}

/// What the batch language needs to know of a family.
pub trait BatchFamily: Family {
    /// Lower-case name used in commands.
    const NAME: &'static str;
    /// What a next hop of this family is, for messages.
    const NEXT_HOP: &'static str;
    /// Parses the family data after `dev <if>`.
    #[doc(hidden)]
    fn parse_data(t: &mut TokensRef<'_, '_>) -> Result<Self::Data, String>;
    /// Writes the family data as it appears in a route line.
    fn format_data(d: &Self::Data) -> String;
    /// The family data as JSON fields.
    fn data_json(d: &Self::Data) -> Vec<(&'static str, Json)>;
}

/// The tokens handed to [`BatchFamily::parse_data`] (opaque).
#[doc(hidden)]
pub struct TokensRef<'t, 'a>(&'t mut Tokens<'a>);

impl BatchFamily for Ipv4 {
    const NAME: &'static str = "ipv4";
    const NEXT_HOP: &'static str = "IPv4 address";
    fn parse_data(t: &mut TokensRef<'_, '_>) -> Result<IpRouteData, String> {
        t.0.keyword("metric")?;
        let mut data = IpRouteData::with_metric(t.0.number("<metric>")?);
        if t.0.peek() == Some("weight") {
            t.0.keyword("weight")?;
            data.weight = t.0.number_from("<weight>", 1)?;
        }
        Ok(data)
    }
    /// `metric N`, then `weight W` where the weight is not the default 1
    /// (so RTMv1 scripts print as they always have).
    fn format_data(d: &IpRouteData) -> String {
        match d.weight {
            1 => format!("metric {}", d.metric),
            w => format!("metric {} weight {w}", d.metric),
        }
    }
    fn data_json(d: &IpRouteData) -> Vec<(&'static str, Json)> {
        let mut fields = vec![("metric", d.metric.into())];
        if d.weight != 1 {
            fields.push(("weight", u32::from(d.weight).into()));
        }
        fields
    }
}

impl BatchFamily for Ipv6 {
    const NAME: &'static str = "ipv6";
    const NEXT_HOP: &'static str = "IPv6 address";
    fn parse_data(t: &mut TokensRef<'_, '_>) -> Result<IpRouteData, String> {
        Ipv4::parse_data(t)
    }
    fn format_data(d: &IpRouteData) -> String {
        Ipv4::format_data(d)
    }
    fn data_json(d: &IpRouteData) -> Vec<(&'static str, Json)> {
        Ipv4::data_json(d)
    }
}

impl BatchFamily for Ipx {
    const NAME: &'static str = "ipx";
    const NEXT_HOP: &'static str = "MAC address";
    fn parse_data(t: &mut TokensRef<'_, '_>) -> Result<IpxRouteData, String> {
        t.0.keyword("ticks")?;
        let ticks = t.0.number("<ticks>")?;
        t.0.keyword("hops")?;
        let hops = t.0.number("<hops>")?;
        Ok(IpxRouteData {
            ticks,
            hops,
            ..IpxRouteData::default()
        })
    }
    fn format_data(d: &IpxRouteData) -> String {
        format!("ticks {} hops {}", d.ticks, d.hops)
    }
    fn data_json(d: &IpxRouteData) -> Vec<(&'static str, Json)> {
        vec![
            ("ticks", u32::from(d.ticks).into()),
            ("hops", u32::from(d.hops).into()),
        ]
    }
}

/// The family a network token belongs to: `ipx:` prefix, else a colon
/// (IPv6), else IPv4.
fn family_of_network(tok: &str) -> FamilyId {
    if tok.starts_with("ipx:") {
        FamilyId::Ipx
    } else if tok.contains(':') {
        FamilyId::Ipv6
    } else {
        FamilyId::Ipv4
    }
}

fn family(t: &mut Tokens<'_>) -> Result<FamilyId, String> {
    let tok = t.next("<ipv4|ipv6|ipx>")?;
    match tok {
        "ipv4" => Ok(FamilyId::Ipv4),
        "ipv6" => Ok(FamilyId::Ipv6),
        "ipx" => Ok(FamilyId::Ipx),
        _ => Err(format!(
            "{}: family {tok} is not ipv4, ipv6 or ipx",
            t.command,
            tok = quoted(tok)
        )),
    }
}

/// Well-known RTMv1 protocol names accepted in place of their numbers.
const PROTOCOL_NAMES: [(&str, u32); 14] = [
    ("other", 1),
    ("local", 2),
    ("netmgmt", 3),
    ("icmp", 4),
    ("egp", 5),
    ("ggp", 6),
    ("hello", 7),
    ("rip", 8),
    ("is-is", 9),
    ("es-is", 10),
    ("cisco", 11),
    ("bbn", 12),
    ("ospf", 13),
    ("bgp", 14),
];

/// `on` or `off`.
fn on_off(t: &mut Tokens<'_>) -> Result<bool, String> {
    match t.next("<on|off>")? {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!(
            "{}: expected \"on\" or \"off\", got {other}",
            t.command,
            other = quoted(other)
        )),
    }
}

fn protocol(t: &mut Tokens<'_>) -> Result<ProtocolId, String> {
    let tok = t.next("<protocol>")?;
    if let Some(&(_, id)) = PROTOCOL_NAMES.iter().find(|(n, _)| *n == tok) {
        return Ok(ProtocolId(id));
    }
    tok.parse().map(ProtocolId).map_err(|_| {
        format!(
            "{}: protocol {tok} is neither a number (0..={}) nor a known name (rip, ospf, bgp, ...)",
            t.command,
            u32::MAX, tok = quoted(tok))
    })
}

/// `<network> via <nh> dev <if>`, and with `data` the family data and an
/// optional `ttl <s>`, for the family of `network`.
fn route_of<F: BatchFamily>(
    t: &mut Tokens<'_>,
    protocol: ProtocolId,
    network: &str,
    data: bool,
) -> Result<(Route<F>, Ttl), String> {
    let network: F::Network = network
        .parse()
        .map_err(|e| format!("{}: bad network {}: {e}", t.command, quoted(network)))?;
    t.keyword("via")?;
    let nh_tok = t.next("<next-hop>")?;
    let next_hop: F::NextHop = nh_tok.parse().map_err(|_| {
        format!(
            "{}: next hop {nh_tok} is not an {} (the network {network} is {})",
            t.command,
            F::NEXT_HOP,
            F::NAME,
            nh_tok = quoted(nh_tok)
        )
    })?;
    t.keyword("dev")?;
    let interface = t.number("<interface>")?;
    let (data, ttl) = if data {
        let d = F::parse_data(&mut TokensRef(t))?;
        let ttl = if t.peek() == Some("ttl") {
            t.keyword("ttl")?;
            Ttl::Seconds(t.number("<seconds>")?)
        } else {
            Ttl::Infinite
        };
        (d, ttl)
    } else {
        (F::Data::default(), Ttl::Infinite)
    };
    let mut route = Route::new(network, next_hop, interface, data);
    route.protocol = protocol;
    Ok((route, ttl))
}

fn any_route(
    t: &mut Tokens<'_>,
    protocol: ProtocolId,
    data: bool,
) -> Result<(AnyRoute, Ttl), String> {
    let net = t.next("<network>")?;
    Ok(match family_of_network(net) {
        FamilyId::Ipv4 => {
            let (r, ttl) = route_of::<Ipv4>(t, protocol, net, data)?;
            (AnyFamily::V4(r), ttl)
        }
        FamilyId::Ipv6 => {
            let (r, ttl) = route_of::<Ipv6>(t, protocol, net, data)?;
            (AnyFamily::V6(r), ttl)
        }
        FamilyId::Ipx => {
            let (r, ttl) = route_of::<Ipx>(t, protocol, net, data)?;
            (AnyFamily::Ipx(r), ttl)
        }
    })
}

/// `[network <net>] [dev <if>] [proto <p>] [best] [disabled] [stale|fresh]`,
/// each at most once.
fn criteria_of<F: BatchFamily>(t: &mut Tokens<'_>) -> Result<Criteria<F>, String> {
    let mut c = Criteria::<F>::all();
    while let Some(tok) = t.rest.next() {
        let twice = || {
            format!(
                "{}: criterion {tok} given twice",
                t.command,
                tok = quoted(tok)
            )
        };
        match tok {
            "network" => {
                if c.network.is_some() {
                    return Err(twice());
                }
                let s = t.next("<network> after \"network\"")?;
                c.network = Some(s.parse().map_err(|e| {
                    format!("{}: bad {} network {}: {e}", t.command, F::NAME, quoted(s))
                })?);
            }
            "dev" => {
                if c.interface.is_some() {
                    return Err(twice());
                }
                c.interface = Some(t.number("<interface>")?);
            }
            "proto" => {
                if c.protocol.is_some() {
                    return Err(twice());
                }
                c.protocol = Some(protocol(t)?);
            }
            "best" if !c.best_only => c.best_only = true,
            "disabled" if !c.include_disabled => c.include_disabled = true,
            "best" | "disabled" => return Err(twice()),
            "stale" | "fresh" if c.stale.is_none() => c.stale = Some(tok == "stale"),
            "stale" | "fresh" => {
                return Err(format!(
                    "{}: criterion {tok}: stale or fresh is given once",
                    t.command,
                    tok = quoted(tok)
                ));
            }
            other => {
                return Err(format!(
                    "{}: unknown criterion {other} (network, dev, proto, best, disabled, stale, fresh)",
                    t.command,
                    other = quoted(other)
                ));
            }
        }
    }
    Ok(c)
}

fn any_criteria(t: &mut Tokens<'_>, family: FamilyId) -> Result<AnyCriteria, String> {
    Ok(match family {
        FamilyId::Ipv4 => AnyFamily::V4(criteria_of::<Ipv4>(t)?),
        FamilyId::Ipv6 => AnyFamily::V6(criteria_of::<Ipv6>(t)?),
        FamilyId::Ipx => AnyFamily::Ipx(criteria_of::<Ipx>(t)?),
    })
}

fn family_of_route(r: &AnyRoute) -> FamilyId {
    match r {
        AnyFamily::V4(_) => FamilyId::Ipv4,
        AnyFamily::V6(_) => FamilyId::Ipv6,
        AnyFamily::Ipx(_) => FamilyId::Ipx,
    }
}

fn network(t: &mut Tokens<'_>) -> Result<AnyNetwork, String> {
    let s = t.next("<network>")?;
    let bad = |e: crate::RtmError| format!("{}: bad network {}: {e}", t.command, quoted(s));
    Ok(match family_of_network(s) {
        FamilyId::Ipv4 => AnyFamily::V4(s.parse().map_err(bad)?),
        FamilyId::Ipv6 => AnyFamily::V6(s.parse().map_err(bad)?),
        FamilyId::Ipx => AnyFamily::Ipx(s.parse::<IpxNetwork>().map_err(bad)?),
    })
}

impl Command {
    /// The command word, as written.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Priority { .. } => "priority",
            Command::Register { .. } => "register",
            Command::Deregister { .. } => "deregister",
            Command::DeregisterGraceful { .. } => "deregister-graceful",
            Command::MarkStale { .. } => "mark-stale",
            Command::EndOfRib { .. } => "end-of-rib",
            Command::StaleYielding { .. } => "stale-yielding",
            Command::Multipath { .. } => "multipath",
            Command::Paths(_) => "paths",
            Command::LookupFlow(..) => "lookup-flow",
            Command::NextHop { down: true, .. } => "next-hop-down",
            Command::NextHop { down: false, .. } => "next-hop-up",
            Command::Add { .. } => "add",
            Command::Del { .. } => "del",
            Command::Lookup(_) => "lookup",
            Command::Best(_) => "best",
            Command::Count(_) => "count",
            Command::Routes(_) => "routes",
            Command::First(_) => "first",
            Command::Next { .. } => "next",
            Command::Block { op, .. } => op.word(),
            Command::Dequeue { .. } => "dequeue",
            Command::Age { .. } => "age",
            Command::Advance(_) => "advance",
            Command::EnumOpen(_) => "enum-open",
            Command::EnumNext(_) => "enum-next",
            Command::EnumClose(_) => "enum-close",
        }
    }
}

/// Parses one line. `Ok(None)` for a blank line or a comment (`#` to the
/// end of the line). `Err` says what was wrong and names the token.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let line = line.split_once('#').map_or(line, |(code, _)| code);
    let mut words = line.split_whitespace().peekable();
    let Some(command) = words.next() else {
        return Ok(None);
    };
    let t = &mut Tokens {
        command,
        rest: words,
    };
    let cmd = match command {
        "priority" => Command::Priority {
            protocol: protocol(t)?,
            value: t.number("<value>")?,
        },
        "register" => {
            let family = family(t)?;
            let protocol = protocol(t)?;
            let mut options = RegisterOptions::default();
            for flag in t.rest.by_ref() {
                let slot = match flag {
                    "single-route" => &mut options.single_route,
                    "notify" => &mut options.notify,
                    "coalesce" => &mut options.coalesce,
                    other => {
                        return Err(format!(
                            "register: unknown option {other} (single-route, notify, coalesce)",
                            other = quoted(other)
                        ));
                    }
                };
                if *slot {
                    return Err(format!(
                        "register: option {flag} given twice",
                        flag = quoted(flag)
                    ));
                }
                *slot = true;
            }
            if options.coalesce && !options.notify {
                return Err("register: \"coalesce\" needs \"notify\"".into());
            }
            Command::Register {
                family,
                protocol,
                options,
            }
        }
        "deregister" => Command::Deregister {
            family: family(t)?,
            protocol: protocol(t)?,
        },
        "deregister-graceful" => {
            let family = family(t)?;
            let protocol = protocol(t)?;
            t.keyword("hold")?;
            Command::DeregisterGraceful {
                family,
                protocol,
                hold: t.number("<seconds>")?,
            }
        }
        "mark-stale" => {
            let family = family(t)?;
            let protocol = protocol(t)?;
            let hold = if t.peek().is_some() {
                t.keyword("hold")?;
                Some(t.number("<seconds>")?)
            } else {
                None
            };
            Command::MarkStale {
                family,
                protocol,
                hold,
            }
        }
        "end-of-rib" => Command::EndOfRib {
            family: family(t)?,
            protocol: protocol(t)?,
        },
        "stale-yielding" => {
            let protocol = protocol(t)?;
            let yields = on_off(t)?;
            Command::StaleYielding { protocol, yields }
        }
        "multipath" => {
            let protocol = protocol(t)?;
            let on = on_off(t)?;
            Command::Multipath { protocol, on }
        }
        "paths" => Command::Paths(network(t)?),
        "lookup-flow" => Command::LookupFlow(t.parsed("<address>")?, t.number("<hash>")?),
        "next-hop-down" | "next-hop-up" => {
            let next_hop = t.parsed("<address>")?;
            t.keyword("dev")?;
            Command::NextHop {
                next_hop,
                interface: t.number("<interface>")?,
                down: command == "next-hop-down",
            }
        }
        "add" => {
            let p = protocol(t)?;
            let (route, ttl) = any_route(t, p, true)?;
            Command::Add { route, ttl }
        }
        "del" => {
            let p = protocol(t)?;
            Command::Del {
                route: any_route(t, p, false)?.0,
            }
        }
        "age" => {
            let p = protocol(t)?;
            Command::Age {
                route: any_route(t, p, false)?.0,
            }
        }
        "lookup" => Command::Lookup(t.parsed("<address>")?),
        "best" => Command::Best(network(t)?),
        "count" => Command::Count(family(t)?),
        "routes" => {
            let f = family(t)?;
            Command::Routes(any_criteria(t, f)?)
        }
        "first" => {
            let f = family(t)?;
            Command::First(any_criteria(t, f)?)
        }
        "next" => {
            let p = protocol(t)?;
            let after = any_route(t, p, false)?.0;
            let criteria = any_criteria(t, family_of_route(&after))?;
            Command::Next { after, criteria }
        }
        "dequeue" => Command::Dequeue {
            family: family(t)?,
            protocol: protocol(t)?,
        },
        "advance" => Command::Advance(t.number("<seconds>")?),
        "enum-open" => {
            let f = family(t)?;
            Command::EnumOpen(any_criteria(t, f)?)
        }
        "enum-next" => Command::EnumNext(t.number("<id>")?),
        "enum-close" => Command::EnumClose(t.number("<id>")?),
        other => match BlockOp::of_word(other) {
            Some(op) => {
                let f = family(t)?;
                let protocol = protocol(t)?;
                Command::Block {
                    op,
                    protocol,
                    criteria: any_criteria(t, f)?,
                }
            }
            None => {
                return Err(format!(
                    "unknown command {other} (priority, register, deregister, deregister-graceful, mark-stale, end-of-rib, stale-yielding, multipath, add, del, lookup, lookup-flow, best, paths, next-hop-down, next-hop-up, count, routes, first, next, block-delete, block-disable, block-enable, convert-static, dequeue, age, advance, enum-open, enum-next, enum-close)",
                    other = quoted(other)
                ));
            }
        },
    };
    t.end()?;
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn comments_and_blank_lines_are_nothing() {
        assert_eq!(parse_line("   # just a comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert!(matches!(
            parse_line("count ipv4 # trailing").unwrap(),
            Some(Command::Count(FamilyId::Ipv4))
        ));
    }

    #[test]
    fn add_follows_the_family_of_the_network() {
        let Some(Command::Add {
            route: AnyFamily::V6(r),
            ttl,
        }) = parse_line("add bgp 2001:db8::/32 via fe80::1 dev 2 metric 7 ttl 30").unwrap()
        else {
            panic!("not an IPv6 add");
        };
        assert_eq!(r.protocol, ProtocolId(14));
        assert_eq!(r.data.metric, 7);
        assert_eq!(ttl, Ttl::Seconds(30));
        let Some(Command::Add {
            route: AnyFamily::Ipx(r),
            ..
        }) = parse_line("add 5 ipx:0000abcd via 00:11:22:33:44:55 dev 1 ticks 3 hops 2").unwrap()
        else {
            panic!("not an IPX add");
        };
        assert_eq!((r.data.ticks, r.data.hops), (3, 2));
    }

    #[test]
    fn errors_name_the_token() {
        assert!(err("fly 1").contains("unknown command \"fly\""));
        assert!(err("add 1 10.0.0.0/33 via 1.1.1.1 dev 1 metric 1").contains("\"10.0.0.0/33\""));
        assert!(err("add 1 10.0.0.0/8 via fe80::1 dev 1 metric 1").contains("\"fe80::1\""));
        assert!(err("add 1 10.0.0.0/8 via 1.1.1.1 dev x metric 1").contains("<interface> \"x\""));
        assert!(err("add 1 10.0.0.0/8 via 1.1.1.1 dev 1").contains("missing \"metric\""));
        assert!(err("add 1 10.0.0.0/8 via 1.1.1.1 dev 1 metric 1 extra").contains("\"extra\""));
        assert!(err("register ipv5 1").contains("\"ipv5\""));
        assert!(err("register ipv4 1 coalesce").contains("needs \"notify\""));
        assert!(err("routes ipv4 best best").contains("twice"));
        assert!(err("routes ipv4 network 2001:db8::/32").contains("ipv4 network"));
        assert!(err("priority x 1").contains("protocol \"x\""));
        assert!(err("advance -1").contains("\"-1\""));
        assert!(err("deregister-graceful ipv4 bgp 30").contains("expected \"hold\""));
        assert!(err("mark-stale ipv4 bgp hold").contains("missing <seconds>"));
        assert!(err("routes ipv4 stale fresh").contains("given once"));
        assert!(err("stale-yielding bgp maybe").contains("\"maybe\""));
    }

    /// Catches errors that echo a whole offending token (a 50 MB `metric`
    /// token once went to stderr and into `--json` whole), and a weight's
    /// message that offers 0, which is refused.
    #[test]
    fn errors_cut_long_tokens_and_state_the_true_range() {
        let long = "9".repeat(1_000_000);
        for line in [
            format!("add 1 10.0.0.0/8 via 1.1.1.1 dev 1 metric {long}"),
            format!("add 1 10.0.0.0/{long} via 1.1.1.1 dev 1 metric 1"),
            format!("add 1 10.0.0.0/8 via {long} dev 1 metric 1"),
            format!("{long} 1"),
            format!("routes ipv4 network ipx:{long}"),
        ] {
            let e = err(&line);
            assert!(e.len() < 1000, "{} bytes: {}", e.len(), &e[..1000]);
            assert!(e.contains("bytes)"), "{e}");
        }
        for w in ["0", "65536"] {
            let e = err(&format!(
                "add 1 10.0.0.0/8 via 1.1.1.1 dev 1 metric 1 weight {w}"
            ));
            assert!(
                e.contains(&format!("<weight> \"{w}\" is not a number from 1 to 65535")),
                "{e}"
            );
        }
    }
}
