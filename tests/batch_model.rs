//! A batch script of several hundred random commands, whose expected output
//! is derived from the sequential reference model (`rtm::model::ModelRtm`)
//! and formatted here, independently of the binary's formatter, from the
//! README's grammar. The binary's output must equal it line for line, and
//! it must fail exactly the commands the model fails.
#![cfg(feature = "cli")]

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use rtm::model::{ModelHandle, ModelRtm};
use rtm::synth::SplitMix64;
use rtm::{
    Change, Criteria, DequeueStatus, Family, IpRouteData, Ipv4, Ipx, IpxNetwork, IpxRouteData,
    MacAddr, ProtocolId, RegisterOptions, Route, RtmError, Timestamp, Ttl,
};

const V4_NETS: [&str; 6] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.0.0/16",
    "192.168.1.0/24",
];
const V4_PROBES: [&str; 5] = [
    "10.1.2.3",
    "10.1.9.9",
    "10.200.0.1",
    "192.168.1.1",
    "8.8.8.8",
];
const NEXT_HOPS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "198.51.100.7"];
const IPX_NETS: [u32; 3] = [0xabcd, 0x1234, 0xffff_0001];
const MACS: [&str; 2] = ["00:11:22:33:44:55", "02:00:00:00:00:01"];
/// (name in the script, id in the output).
const PROTOCOLS: [(&str, u32); 3] = [("rip", 8), ("ospf", 13), ("7", 7)];

/// The expected text of a route line (the README's format).
fn v4_line(r: &Route<Ipv4>) -> String {
    format!(
        "{} via {} dev {} proto {} metric {}",
        r.network, r.next_hop, r.interface, r.protocol.0, r.data.metric
    )
}

fn ipx_line(r: &Route<Ipx>) -> String {
    format!(
        "ipx:{:08x} via {} dev {} proto {} ticks {} hops {}",
        r.network.0, r.next_hop, r.interface, r.protocol.0, r.data.ticks, r.data.hops
    )
}

fn change_word<F: Family>(c: &Change<F>) -> &'static str {
    match c {
        Change::NoChange => "no-change",
        Change::Added { .. } => "added",
        Change::Changed { .. } => "changed",
        Change::Deleted { .. } => "deleted",
    }
}

/// The expected output of one command: its lines, or `None` for a failure.
type Expected = Option<Vec<String>>;

struct Script {
    model: ModelRtm,
    v4: HashMap<u32, ModelHandle<Ipv4>>,
    ipx: HashMap<u32, ModelHandle<Ipx>>,
    text: String,
    expected: Vec<Expected>,
}

impl Script {
    fn push(&mut self, line: String, expected: Expected) {
        self.text += &line;
        self.text.push('\n');
        self.expected.push(expected);
    }
}

fn one(s: impl Into<String>) -> Expected {
    Some(vec![s.into()])
}

/// `none_word` for NoRoutes, a failure for any other error.
fn or_no_routes(r: Result<Vec<String>, RtmError>) -> Expected {
    match r {
        Ok(v) => Some(v),
        Err(RtmError::NoRoutes(_)) => one("no-routes"),
        Err(_) => None,
    }
}

fn v4_route(rng: &mut SplitMix64, p: u32) -> Route<Ipv4> {
    let mut r = Route::<Ipv4>::new(
        V4_NETS[rng.below(V4_NETS.len() as u64) as usize]
            .parse()
            .expect("a valid network"),
        NEXT_HOPS[rng.below(3) as usize]
            .parse()
            .expect("an address"),
        1 + rng.below(2) as u32,
        IpRouteData::with_metric(rng.below(4) as u32),
    );
    r.protocol = ProtocolId(p);
    r
}

fn v4_key(r: &Route<Ipv4>, name: &str) -> String {
    format!(
        "{name} {} via {} dev {}",
        r.network, r.next_hop, r.interface
    )
}

/// Random criteria of the `routes`/block grammar, as text and as criteria.
fn v4_criteria(rng: &mut SplitMix64) -> (String, Criteria<Ipv4>) {
    let mut text = String::new();
    let mut c = Criteria::<Ipv4>::all();
    if rng.below(3) == 0 {
        let n = V4_NETS[rng.below(V4_NETS.len() as u64) as usize];
        text += &format!(" network {n}");
        c = c.network(n.parse().expect("a network"));
    }
    if rng.below(3) == 0 {
        let i = 1 + rng.below(2) as u32;
        text += &format!(" dev {i}");
        c = c.interface(i);
    }
    if rng.below(4) == 0 {
        let (name, id) = PROTOCOLS[rng.below(3) as usize];
        text += &format!(" proto {name}");
        c = c.protocol(ProtocolId(id));
    }
    if rng.below(4) == 0 {
        text += " best";
        c = c.best_only();
    }
    if rng.below(4) == 0 {
        text += " disabled";
        c = c.include_disabled();
    }
    (text, c)
}

fn generate(seed: u64, commands: usize) -> Script {
    let mut rng = SplitMix64::new(seed);
    let mut s = Script {
        model: ModelRtm::starting_at(Timestamp::from_unix_seconds(1_767_225_600)),
        v4: HashMap::new(),
        ipx: HashMap::new(),
        text: String::new(),
        expected: Vec::new(),
    };
    s.push("priority ospf 110".into(), one("ok"));
    s.model.set_priority(ProtocolId(13), 110);
    s.push("priority rip 120".into(), one("ok"));
    s.model.set_priority(ProtocolId(8), 120);
    while s.expected.len() < commands {
        let (name, p) = PROTOCOLS[rng.below(3) as usize];
        match rng.below(100) {
            0..=7 => {
                let single = rng.below(4) == 0;
                let notify = rng.below(2) == 0;
                let opts = RegisterOptions {
                    single_route: single,
                    notify,
                    coalesce: false,
                };
                let flags = format!(
                    "{}{}",
                    if single { " single-route" } else { "" },
                    if notify { " notify" } else { "" }
                );
                let e = match s.model.register::<Ipv4>(ProtocolId(p), opts) {
                    Ok(h) => {
                        s.v4.insert(p, h);
                        one("ok")
                    }
                    Err(_) => None,
                };
                s.push(format!("register ipv4 {name}{flags}"), e);
            }
            8..=9 => {
                let e = s.v4.get(&p).copied().and_then(|h| {
                    let n = s.model.deregister(&h).ok()?;
                    s.v4.remove(&p);
                    one(format!("ok {n} routes removed"))
                });
                s.push(format!("deregister ipv4 {name}"), e);
            }
            10..=39 => {
                let r = v4_route(&mut rng, p);
                let ttl = if rng.below(5) == 0 {
                    Ttl::Seconds(rng.below(30) as u32)
                } else {
                    Ttl::Infinite
                };
                let ttl_text = match ttl {
                    Ttl::Seconds(t) => format!(" ttl {t}"),
                    Ttl::Infinite => String::new(),
                };
                let e = s.v4.get(&p).and_then(|h| {
                    s.model
                        .add_route(h, &r, ttl)
                        .ok()
                        .map(|c| vec![change_word(&c).to_string()])
                });
                s.push(
                    format!(
                        "add {} metric {}{ttl_text}",
                        v4_key(&r, name),
                        r.data.metric
                    ),
                    e,
                );
            }
            40..=51 => {
                let r = v4_route(&mut rng, p);
                let e = s.v4.get(&p).and_then(|h| {
                    s.model
                        .delete_route(h, &r)
                        .ok()
                        .map(|c| vec![change_word(&c).to_string()])
                });
                s.push(format!("del {}", v4_key(&r, name)), e);
            }
            52..=61 => {
                let a = V4_PROBES[rng.below(V4_PROBES.len() as u64) as usize];
                let addr: Ipv4Addr = a.parse().expect("an address");
                let e = match s.model.lookup_route::<Ipv4>(addr) {
                    Some(r) => format!(
                        "{a} via {} dev {} proto {} prefix {}",
                        r.next_hop, r.interface, r.protocol.0, r.network
                    ),
                    None => format!("{a} unreachable"),
                };
                s.push(format!("lookup {a}"), one(e));
            }
            62..=65 => {
                let n = V4_NETS[rng.below(V4_NETS.len() as u64) as usize];
                let e = match s.model.is_route::<Ipv4>(&n.parse().expect("a network")) {
                    Some(r) => v4_line(&r),
                    None => format!("{n} no-route"),
                };
                s.push(format!("best {n}"), one(e));
            }
            66..=67 => {
                let n = s.model.network_count::<Ipv4>();
                s.push("count ipv4".into(), one(format!("{n} networks")));
            }
            68..=73 => {
                let (text, c) = v4_criteria(&mut rng);
                let e = match s.model.enumerate(&c) {
                    Ok(rs) => Some(rs),
                    Err(RtmError::NoRoutes(_)) => Some(Vec::new()),
                    Err(_) => None,
                }
                .map(|rs| {
                    let mut lines: Vec<String> = rs.iter().map(v4_line).collect();
                    lines.push(format!("{} routes", rs.len()));
                    lines
                });
                s.push(format!("routes ipv4{text}"), e);
            }
            74..=76 => {
                let (text, c) = v4_criteria(&mut rng);
                let e = or_no_routes(s.model.get_first(&c).map(|r| vec![v4_line(&r)]));
                s.push(format!("first ipv4{text}"), e);
            }
            77..=79 => {
                let r = v4_route(&mut rng, p);
                let (text, c) = v4_criteria(&mut rng);
                let e = or_no_routes(s.model.get_next(&c, &r).map(|r| vec![v4_line(&r)]));
                s.push(format!("next {}{text}", v4_key(&r, name)), e);
            }
            80..=85 => {
                let (text, c) = v4_criteria(&mut rng);
                let (word, what) = match rng.below(4) {
                    0 => ("block-delete", "deleted"),
                    1 => ("block-disable", "disabled"),
                    2 => ("block-enable", "enabled"),
                    _ => ("convert-static", "converted"),
                };
                let e = match s.v4.get(&p) {
                    None => None,
                    Some(h) => or_no_routes(
                        match word {
                            "block-delete" => s.model.block_delete(h, &c),
                            "block-disable" => s.model.block_set_enable(h, &c, false),
                            "block-enable" => s.model.block_set_enable(h, &c, true),
                            _ => s.model.block_convert_to_static(h, &c),
                        }
                        .map(|n| vec![format!("ok {n} routes {what}")]),
                    ),
                };
                s.push(format!("{word} ipv4 {name}{text}"), e);
            }
            86..=91 => {
                let e = s.v4.get(&p).and_then(|h| match s.model.dequeue(h) {
                    Ok(d) => {
                        let mut t = change_word(&d.change).to_string();
                        if let Some(r) = d.change.previous() {
                            t += &format!(" previous {}", v4_line(r));
                        }
                        if let Some(r) = d.change.current() {
                            t += &format!(" current {}", v4_line(r));
                        }
                        if d.status == DequeueStatus::MoreMessages {
                            t += " more";
                        }
                        one(t)
                    }
                    Err(RtmError::NoMessages) => one("no-messages"),
                    Err(_) => None,
                });
                s.push(format!("dequeue ipv4 {name}"), e);
            }
            92..=93 => {
                let secs = rng.below(20);
                s.model.advance_secs(secs);
                let n = s.model.sweep_expired();
                s.push(
                    format!("advance {secs}"),
                    one(format!("ok {n} routes expired")),
                );
            }
            94..=95 => {
                let r = v4_route(&mut rng, p);
                let stored = s
                    .model
                    .enumerate(
                        &Criteria::<Ipv4>::all()
                            .network(r.network)
                            .protocol(r.protocol)
                            .include_disabled(),
                    )
                    .ok()
                    .and_then(|rs| rs.into_iter().find(|x| x.key() == r.key()));
                let e = stored
                    .and_then(|x| s.model.route_age(&x).ok())
                    .and_then(|a| one(format!("{a} seconds")));
                s.push(format!("age {}", v4_key(&r, name)), e);
            }
            _ => {
                // IPX: register if needed, then add or delete.
                let (name, p) = ("5", 5);
                if !s.ipx.contains_key(&p) {
                    let h = s
                        .model
                        .register::<Ipx>(ProtocolId(p), RegisterOptions::default())
                        .expect("first IPX registration");
                    s.ipx.insert(p, h);
                    s.push(format!("register ipx {name}"), one("ok"));
                }
                let mut r = Route::<Ipx>::new(
                    IpxNetwork(IPX_NETS[rng.below(3) as usize]),
                    MACS[rng.below(2) as usize]
                        .parse::<MacAddr>()
                        .expect("a MAC"),
                    3,
                    IpxRouteData {
                        ticks: rng.below(3) as u16,
                        hops: rng.below(3) as u16,
                        ..IpxRouteData::default()
                    },
                );
                r.protocol = ProtocolId(p);
                let h = s.ipx[&p];
                let key = format!("{name} ipx:{:08x} via {} dev 3", r.network.0, r.next_hop);
                if rng.below(3) == 0 {
                    let e = s
                        .model
                        .delete_route(&h, &r)
                        .ok()
                        .and_then(|c| one(change_word(&c)));
                    s.push(format!("del {key}"), e);
                } else {
                    let e = s
                        .model
                        .add_route(&h, &r, Ttl::Infinite)
                        .ok()
                        .and_then(|c| one(change_word(&c)));
                    s.push(
                        format!("add {key} ticks {} hops {}", r.data.ticks, r.data.hops),
                        e,
                    );
                }
                if rng.below(4) == 0 {
                    let rs = s
                        .model
                        .enumerate(&Criteria::<Ipx>::all())
                        .unwrap_or_default();
                    let mut lines: Vec<String> = rs.iter().map(ipx_line).collect();
                    lines.push(format!("{} routes", rs.len()));
                    s.push("routes ipx".into(), Some(lines));
                }
            }
        }
    }
    s
}

#[test]
fn a_random_script_prints_what_the_reference_model_derives() {
    for seed in 1..=4u64 {
        let script = generate(seed, 400);
        let out = common::cli::rtm_with_stdin(&["batch"], script.text.as_bytes());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);

        let want_out: Vec<String> = script
            .expected
            .iter()
            .flatten()
            .flatten()
            .cloned()
            .collect();
        let got_out: Vec<&str> = stdout.lines().collect();
        for (i, (g, w)) in got_out.iter().zip(&want_out).enumerate() {
            assert_eq!(g, w, "seed {seed}: output line {}", i + 1);
        }
        assert_eq!(got_out.len(), want_out.len(), "seed {seed}");

        let want_failed: Vec<usize> = script
            .expected
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_none())
            .map(|(i, _)| i + 1)
            .collect();
        let got_failed: Vec<usize> = stderr
            .lines()
            .map(|l| {
                l.strip_prefix("error line ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("not an error line: {l}"))
            })
            .collect();
        assert_eq!(got_failed, want_failed, "seed {seed}: failed commands");
        assert!(
            !want_failed.is_empty() && want_failed.len() < 200,
            "seed {seed}: a useful mix"
        );
        assert_eq!(out.status.code(), Some(1), "some command failed");
    }
}
