//! Kernel FIB sync against the real kernel: each test makes its own
//! network namespace (`unshare(CLONE_NEWNET)` on its thread, which the
//! sync's worker and every `ip` command inherit), programs a table there
//! and compares `ip route show table N proto P`, an oracle outside rtm's
//! own netlink code, with rtm's best routes.
//!
//! Where the kernel or the privileges do not allow a namespace, or
//! iproute2 is missing, each test says so on stderr and passes without
//! checking anything (`.ci/run` prints whether they ran).
#![cfg(all(feature = "netlink", target_os = "linux"))]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use rtm::netlink::{Interfaces, KernelSync, SyncConfig, SyncStats};
use rtm::{
    ClientHandle, Criteria, IpFamily, IpRouteData, Ipv4, Ipv6, Prefix, ProtocolId, RegisterOptions,
    Route, Rtm, Ttl,
};

const TABLE: u32 = 100;
const WAIT: Duration = Duration::from_secs(120);

/// Runs `ip ARGS` (split on spaces); its stderr if it fails.
fn try_ip(args: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("iproute2's `ip` cannot run ({e}): install iproute2"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {args}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS`, which must succeed.
fn ip(args: &str) {
    try_ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// Enters a fresh network namespace with a veth pair up; returns the
/// ifindex of `v0`, or why the test cannot run here.
fn netns() -> Result<u32, String> {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only the
    // calling thread (the test's own) into a new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot create a network namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    try_ip("link set lo up")?;
    try_ip("link add v0 type veth peer name v1")?;
    try_ip("link set v0 up")?;
    try_ip("link set v1 up")?;
    // SAFETY: a NUL-terminated name; the call reads it and nothing else.
    let ifindex = unsafe { libc::if_nametoindex(c"v0".as_ptr()) };
    if ifindex == 0 {
        return Err("veth v0 has no ifindex".into());
    }
    Ok(ifindex)
}

macro_rules! netns_or_skip {
    () => {
        match netns() {
            Ok(i) => i,
            Err(why) => {
                eprintln!("netlink test skipped: {why}");
                return;
            }
        }
    };
}

/// A route as the kernel shows it: gateway (none for a direct route) and
/// device.
type Shown = BTreeMap<String, (Option<IpAddr>, String)>;

/// `ip -4|-6 route show table TABLE proto PROTO`: its lines, none for a
/// table the kernel never made (no route of the family was put there).
fn shown_routes(v6: bool, proto: &str) -> String {
    let table = TABLE.to_string();
    let out = Command::new("ip")
        .args([
            if v6 { "-6" } else { "-4" },
            "route",
            "show",
            "table",
            &table,
            "proto",
            proto,
        ])
        .output()
        .expect("ip route show runs");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("FIB table does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -4|-6 route show table TABLE proto 201`, parsed.
fn kernel_table(v6: bool) -> Shown {
    let mut shown = Shown::new();
    for line in shown_routes(v6, "201").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        let dst = match *first {
            "default" if v6 => "::/0".to_string(),
            "default" => "0.0.0.0/0".to_string(),
            d if d.contains('/') => d.to_string(),
            d if v6 => format!("{d}/128"), // ip prints host routes bare
            d => format!("{d}/32"),
        };
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        let gw = after("via").map(|g| g.parse::<IpAddr>().expect("a gateway address"));
        let dev = after("dev").unwrap_or("?").to_string();
        shown.insert(dst, (gw, dev));
    }
    shown
}

/// What the kernel should show: every best route of `F` via v0.
fn wanted<F: IpFamily>(rtm: &Rtm, unspecified: F::Addr) -> Shown
where
    F::Addr: Into<IpAddr>,
{
    rtm.enumerate(&Criteria::<F>::all().best_only())
        .map(|e| {
            e.map(|r| {
                let gw = (r.next_hop != unspecified).then(|| r.next_hop.into());
                (r.network.to_string(), (gw, "v0".to_string()))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// How the kernel's table differs from rtm's best routes, both families
/// (the first difference), or `None` when they are equal.
fn kernel_difference(rtm: &Rtm) -> Option<String> {
    kernel_difference_but(rtm, &[])
}

/// [`kernel_difference`] for every prefix but `except` (prefixes where
/// another program's route holds rtm's key, so rtm's is not there).
fn kernel_difference_but(rtm: &Rtm, except: &[&str]) -> Option<String> {
    for v6 in [false, true] {
        let mut want = if v6 {
            wanted::<Ipv6>(rtm, Ipv6Addr::UNSPECIFIED)
        } else {
            wanted::<Ipv4>(rtm, Ipv4Addr::UNSPECIFIED)
        };
        want.retain(|k, _| !except.contains(&k.as_str()));
        let have = kernel_table(v6);
        if want != have {
            let missing = want.iter().find(|(k, v)| have.get(*k) != Some(*v));
            let extra = have.keys().find(|k| !want.contains_key(*k));
            return Some(format!(
                "kernel {} table {TABLE} has {} routes, rtm {}; first wanted route missing or different: {missing:?} (kernel: {:?}); first extra: {extra:?}",
                if v6 { "IPv6" } else { "IPv4" },
                have.len(),
                want.len(),
                missing.and_then(|(k, _)| have.get(k)),
            ));
        }
    }
    None
}

/// Asserts the kernel's table equals rtm's best routes.
fn assert_kernel_matches(rtm: &Rtm, when: &str) {
    if let Some(d) = kernel_difference(rtm) {
        panic!("{when}: {d}");
    }
}

/// Polls `difference` until it says `None`, for at most 10 s (the
/// sync's worker repairs foreign changes at its next round); fails with
/// `what`, the last difference and the sync's statistics.
fn until_none(sync: &KernelSync, what: &str, difference: impl Fn() -> Option<String>) {
    let t = Instant::now();
    while let Some(d) = difference() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {d}; {:?}",
            sync.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn v4(k: u32) -> Prefix<Ipv4Addr> {
    Prefix::new(Ipv4Addr::from(0x0A00_0000 + (k << 8)), 24).unwrap()
}

fn v6(k: u32) -> Prefix<Ipv6Addr> {
    Prefix::new(Ipv6Addr::new(0x2001, 0x0db8, k as u16, 0, 0, 0, 0, 0), 48).unwrap()
}

fn nh4(base: u8, k: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, base.wrapping_add((k % 100) as u8))
}

fn nh6(base: u16, k: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, base, k as u16 % 100 + 1)
}

/// Protocol 1 registered in both families, holding `n` IPv4 /24s and `n`
/// IPv6 /48s.
fn protocol_one_holding(rtm: &Rtm, n: u32) -> (ClientHandle<Ipv4>, ClientHandle<Ipv6>) {
    let c4 = rtm
        .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let c6 = rtm
        .register::<Ipv6>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let data = IpRouteData::with_metric(1);
    for k in 0..n {
        rtm.add_route(&c4, &Route::new(v4(k), nh4(1, k), 1, data), Ttl::Infinite)
            .unwrap();
        rtm.add_route(&c6, &Route::new(v6(k), nh6(1, k), 1, data), Ttl::Infinite)
            .unwrap();
    }
    (c4, c6)
}

/// Changes rtm's kernel table as another program would: one of its IPv4
/// routes deleted, one re-pointed, one added under its protocol number,
/// one IPv6 route deleted (four operations to repair).
fn change_behind_its_back() {
    ip("route del 10.0.5.0/24 table 100 proto 201");
    ip("route replace 10.0.6.0/24 via 192.0.2.250 dev v0 onlink table 100 proto 201 metric 20");
    ip("route add 172.31.0.0/16 via 192.0.2.9 dev v0 onlink table 100 proto 201 metric 20");
    ip("-6 route del 2001:db8:7::/48 table 100 proto 201");
}

/// What a sync sent the kernel: routes created, replaced and deleted.
fn kernel_ops(stats: &SyncStats) -> (u64, u64, u64) {
    (stats.created, stats.replaced, stats.deleted)
}

fn config(dev: u32) -> SyncConfig {
    SyncConfig {
        interfaces: Interfaces::Device(dev),
        ..SyncConfig::new(TABLE)
    }
}

/// Catches a sync that misses or misorders changes (a route left in the
/// kernel after its withdrawal, a stale next hop after a change), that
/// programs the wrong table, device or family, or that falls behind a
/// deregistration for good: the kernel table must equal rtm's best routes
/// after a load, after churn, and after a client with 100 k routes
/// deregisters, in IPv4 and IPv6. Prints routes/s into the kernel and the
/// time from `deregister` returning to the kernel matching.
#[test]
fn the_kernel_table_follows_loads_churn_and_a_big_deregistration() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    rtm.set_priority(ProtocolId(1), 20);
    rtm.set_priority(ProtocolId(2), 30);
    let sync = KernelSync::start(&rtm, config(dev)).expect("sync starts in the namespace");
    let a4 = rtm
        .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let a6 = rtm
        .register::<Ipv6>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let b4 = rtm
        .register::<Ipv4>(ProtocolId(2), RegisterOptions::default())
        .unwrap();
    let b6 = rtm
        .register::<Ipv6>(ProtocolId(2), RegisterOptions::default())
        .unwrap();
    let data = IpRouteData::with_metric;

    // The load: A holds 100 k IPv4 and 20 k IPv6 networks; B, worse, backs
    // up every tenth and holds 5 k IPv4 networks of its own.
    let n4 = 100_000;
    let n6 = 20_000;
    let t = Instant::now();
    for k in 0..n4 {
        rtm.add_route(
            &a4,
            &Route::new(v4(k), nh4(1, k), 1, data(1)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    for k in 0..n6 {
        rtm.add_route(
            &a6,
            &Route::new(v6(k), nh6(1, k), 1, data(1)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    for k in (0..n4).step_by(10).chain(n4..n4 + 5_000) {
        rtm.add_route(
            &b4,
            &Route::new(v4(k), nh4(101, k), 2, data(5)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    for k in (0..n6).step_by(10) {
        rtm.add_route(
            &b6,
            &Route::new(v6(k), nh6(2, k), 2, data(5)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    // A direct route: no gateway.
    let direct = Route::new(
        "203.0.113.0/24".parse().unwrap(),
        Ipv4Addr::UNSPECIFIED,
        2,
        data(1),
    );
    rtm.add_route(&b4, &direct, Ttl::Infinite).unwrap();
    assert!(
        sync.wait_synced(WAIT),
        "the load reached the kernel: {:?}",
        sync.stats()
    );
    let load_secs = t.elapsed().as_secs_f64();
    assert_kernel_matches(&rtm, "after the load");
    let loaded = sync.stats();

    // Churn: A moves 5 k next hops and withdraws 5 k networks (half of
    // them backed up by B), B withdraws 1 k of its own.
    for k in 0..5_000 {
        rtm.add_route(
            &a4,
            &Route::new(v4(k), nh4(51, k), 1, data(1)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    for k in 5_000..10_000 {
        rtm.delete_route(&a4, &Route::new(v4(k), nh4(1, k), 1, data(1)))
            .unwrap();
    }
    for k in 0..1_000 {
        rtm.delete_route(&a6, &Route::new(v6(k), nh6(1, k), 1, data(1)))
            .unwrap();
    }
    for k in n4..n4 + 1_000 {
        rtm.delete_route(&b4, &Route::new(v4(k), nh4(101, k), 2, data(5)))
            .unwrap();
    }
    assert!(sync.wait_synced(WAIT), "the churn reached the kernel");
    assert_kernel_matches(&rtm, "after the churn");
    // The direct route goes: programmed `scope link`, its delete must
    // match any scope (a universe-scoped delete answers ESRCH and the
    // route would stay, forwarding).
    rtm.delete_route(&b4, &direct).unwrap();
    assert!(sync.wait_synced(WAIT), "the direct route's withdrawal");
    assert_kernel_matches(&rtm, "after the direct route's withdrawal");

    // A deregisters: 95 k IPv4 and 19 k IPv6 routes go; B's backups and
    // its own remain.
    let t = Instant::now();
    rtm.deregister(&a4).unwrap();
    rtm.deregister(&a6).unwrap();
    let deregister_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert!(
        sync.wait_synced(WAIT),
        "the deregistration reached the kernel"
    );
    let catch_up_secs = t.elapsed().as_secs_f64();
    assert_kernel_matches(&rtm, "after A deregistered");
    assert_eq!(kernel_table(false).len(), 10_000 + 4_000);
    let stats = sync.stop().unwrap();
    assert_eq!(stats.refused, 0, "{:?}", stats.last_refusal);
    assert_eq!(
        stats.already_gone, 0,
        "every delete found its route: {stats:?}"
    );
    // Its own changes' notifications never reached its monitor (a socket
    // filter drops them in the kernel): none counted as foreign, none
    // overflowed the monitor into a resync.
    assert_eq!(
        (stats.foreign, stats.enobufs, stats.resyncs),
        (0, 0, 1),
        "{stats:?}"
    );
    eprintln!(
        "kernel sync: load of {} routes programmed in {load_secs:.2} s ({:.0} ops/s of kernel time, {} batches); \
         deregistration of 114 k routes returned in {deregister_secs:.3} s and the kernel matched {catch_up_secs:.2} s later; \
         {stats:?}",
        loaded.written(),
        loaded.ops_per_sec(),
        loaded.batches,
    );
}

/// Catches a restarted sync that trusts the kernel table it finds (routes
/// deleted, replaced or added behind its back, or rtm changes made while
/// it was down, would stay wrong), that reloads everything instead of
/// repairing the difference, that withdraws rtm's routes it does not know
/// yet before the RIB has converged, or that touches another protocol's
/// routes in its table.
#[test]
fn a_restarted_sync_repairs_a_table_changed_behind_its_back() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let (c4, _c6) = protocol_one_holding(&rtm, 2_000);
    let data = IpRouteData::with_metric(1);
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert_kernel_matches(&rtm, "first sync");
    drop(sync); // "killed": the kernel keeps the routes

    // Behind rtm's back (see `change_behind_its_back`), and another
    // protocol's route in the table.
    change_behind_its_back();
    ip("route add 172.30.0.0/16 via 192.0.2.9 dev v0 onlink table 100 proto static");
    // And rtm changed while the sync was down.
    rtm.delete_route(&c4, &Route::new(v4(8), nh4(1, 8), 1, data))
        .unwrap();
    rtm.delete_route(&c4, &Route::new(v4(9), nh4(1, 9), 1, data))
        .unwrap();
    rtm.add_route(&c4, &Route::new(v4(9), nh4(77, 9), 1, data), Ttl::Infinite)
        .unwrap();

    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    // Before the RIB has converged, rtm's routes it lacks stay: the one
    // rtm withdrew while the sync was down, and the one added under its
    // protocol number.
    let stats = sync.stats();
    assert_eq!(
        (kernel_ops(&stats), stats.stale, stats.converged),
        ((2, 2, 0), 2, false),
        "{stats:?}"
    );
    assert!(kernel_table(false).contains_key("172.31.0.0/16"));
    assert!(kernel_table(false).contains_key(&v4(8).to_string()));
    sync.converged();
    assert!(sync.wait_synced(WAIT));
    assert_kernel_matches(&rtm, "after the restart and convergence");
    let stats = sync.stop().unwrap();
    // Four repairs and the two rtm changes, not a reload of 4,000 routes.
    assert_eq!(
        (kernel_ops(&stats), stats.stale, stats.converged),
        ((2, 2, 2), 0, true),
        "{stats:?}"
    );
    assert!(
        shown_routes(false, "static").contains("172.30.0.0/16"),
        "another protocol's route in the table was left alone"
    );
}

/// Catches a restart that withdraws the kernel table and adds it again
/// (a prefix rtm has not reloaded yet would stop forwarding, and a full
/// table would be sent twice): a sync started before its RIB has loaded,
/// against a kernel table that is already right, keeps every route and
/// sends nothing, during the load and at convergence.
#[test]
fn a_restart_against_a_correct_kernel_table_sends_nothing() {
    let dev = netns_or_skip!();
    let before = Rtm::new();
    let _clients = protocol_one_holding(&before, 2_000);
    let sync = KernelSync::start(&before, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    drop(sync);

    // The daemon restarts: a new, empty RIB, and the sync starts first.
    let rtm = Rtm::new();
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert_eq!(
        kernel_table(false).len(),
        2_000,
        "nothing withdrawn before the load"
    );
    assert_eq!(kernel_table(true).len(), 2_000);
    let _clients = protocol_one_holding(&rtm, 2_000);
    assert!(sync.wait_synced(WAIT));
    sync.converged();
    assert!(sync.wait_synced(WAIT));
    assert_kernel_matches(&rtm, "after the reload");
    let stats = sync.stop().unwrap();
    assert_eq!(
        (kernel_ops(&stats), stats.stale),
        ((0, 0, 0), 0),
        "{stats:?}"
    );
    assert_eq!(stats.changes, 4_000, "{stats:?}");
}

/// Catches a sync that overwrites a route another program holds at rtm's
/// key (`NLM_F_REPLACE` matches table, prefix, tos and metric, not the
/// protocol), that takes it back when the operator replaces rtm's route
/// with their own, or that leaves the prefix without any route when rtm
/// withdraws. Once the other route goes, rtm's is written.
#[test]
fn another_programs_route_at_rtms_metric_is_never_overwritten() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    ip("route add 198.18.0.0/15 via 192.0.2.3 dev v0 onlink table 100 proto static metric 20");
    ip("-6 route add 2001:db8:ff::/48 via fe80::3 dev v0 table 100 proto static metric 20");
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    // Started (its first dump read): each prefix below is planned once.
    assert!(sync.wait_synced(WAIT));
    let c4 = rtm
        .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let c6 = rtm
        .register::<Ipv6>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let data = IpRouteData::with_metric(1);
    let taken4 = Route::new("198.18.0.0/15".parse().unwrap(), nh4(1, 0), 1, data);
    let taken6 = Route::new("2001:db8:ff::/48".parse().unwrap(), nh6(1, 0), 1, data);
    let mine = Route::new("198.51.100.0/24".parse().unwrap(), nh4(1, 1), 1, data);
    for r in [&taken4, &mine] {
        rtm.add_route(&c4, r, Ttl::Infinite).unwrap();
    }
    rtm.add_route(&c6, &taken6, Ttl::Infinite).unwrap();
    assert!(sync.wait_synced(WAIT));
    let static_routes = |v6: bool| shown_routes(v6, "static");
    assert!(
        static_routes(false).contains("198.18.0.0/15 via 192.0.2.3"),
        "{}",
        static_routes(false)
    );
    assert!(
        static_routes(true).contains("2001:db8:ff::/48 via fe80::3"),
        "{}",
        static_routes(true)
    );
    let except = ["198.18.0.0/15", "2001:db8:ff::/48"];
    assert_eq!(kernel_difference_but(&rtm, &except), None);
    assert_eq!(sync.stats().conflicts, 2, "{:?}", sync.stats());

    // The operator replaces rtm's own route with theirs: it stays theirs.
    ip(
        "route replace 198.51.100.0/24 via 192.0.2.4 dev v0 onlink table 100 proto static metric 20",
    );
    until_none(
        &sync,
        "the operator's replace was not taken as a conflict",
        || {
            let c = sync.stats().conflicts;
            (c < 3).then(|| format!("{c} conflicts"))
        },
    );
    assert!(sync.wait_synced(WAIT));
    assert!(static_routes(false).contains("198.51.100.0/24 via 192.0.2.4"));

    // rtm withdraws: the other program's routes are all still there.
    rtm.deregister(&c6).unwrap();
    rtm.delete_route(&c4, &taken4).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert!(static_routes(false).contains("198.18.0.0/15 via 192.0.2.3"));
    assert!(static_routes(true).contains("2001:db8:ff::/48 via fe80::3"));

    // The operator's route goes: rtm's comes back.
    ip("route del 198.51.100.0/24 table 100 proto static");
    until_none(&sync, "rtm's route did not come back", || {
        kernel_difference_but(&rtm, &except)
    });
    let stats = sync.stop().unwrap();
    assert_eq!(stats.refused, 0, "{stats:?}");
}

/// `ip route show table 100 proto 201` lines at `metric M`.
fn routes_at_metric(v6: bool, metric: u32) -> usize {
    let tag = format!("metric {metric} ");
    shown_routes(v6, "201")
        .lines()
        .filter(|l| format!("{l} ").contains(&tag))
        .count()
}

/// Catches routes stranded by a metric change between runs: rtm's routes
/// are those of its protocol, whatever their metric, so a run at metric
/// 30 moves every route from 20 to 30 (none left at 20 to shadow it) and
/// its withdrawal leaves none of rtm's routes at any metric.
#[test]
fn a_metric_change_between_runs_strands_nothing() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let (c4, c6) = protocol_one_holding(&rtm, 500);
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    drop(sync);
    assert_eq!(
        (routes_at_metric(false, 20), routes_at_metric(true, 20)),
        (500, 500)
    );

    let at_30 = SyncConfig {
        metric: 30,
        ..config(dev)
    };
    let sync = KernelSync::start(&rtm, at_30.clone()).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert_eq!(
        (routes_at_metric(false, 20), routes_at_metric(true, 20)),
        (0, 0)
    );
    assert_eq!(
        (routes_at_metric(false, 30), routes_at_metric(true, 30)),
        (500, 500)
    );
    drop(sync);
    // Metric 0, which IPv6 stores as 1024: moved once, then a restart at
    // metric 0 finds every route right (none taken for stranded).
    let at_0 = SyncConfig {
        metric: 0,
        ..config(dev)
    };
    let sync = KernelSync::start(&rtm, at_0.clone()).unwrap();
    assert!(sync.wait_synced(WAIT));
    drop(sync);
    assert_eq!(
        (routes_at_metric(false, 30), routes_at_metric(true, 30)),
        (0, 0)
    );
    assert_eq!(routes_at_metric(true, 1024), 500);
    let sync = KernelSync::start(&rtm, at_0).unwrap();
    assert!(sync.wait_synced(WAIT));
    let stats = sync.stats();
    assert_eq!(kernel_ops(&stats), (0, 0, 0), "{stats:?}");
    rtm.deregister(&c4).unwrap();
    rtm.deregister(&c6).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert_eq!(
        (kernel_table(false).len(), kernel_table(true).len()),
        (0, 0)
    );
    let stats = sync.stop().unwrap();
    assert_eq!((stats.deleted, stats.refused), (1_000, 0), "{stats:?}");
}

/// Catches a sync that stops on a route it cannot parse (one `congctl`
/// route anywhere once ended it for good) or on any other kind of route
/// other programs write: each kind below sits in another table and in
/// rtm's own before it starts, and more arrive while it runs; the sync
/// must keep programming every change.
#[test]
fn routes_of_every_kind_written_by_others_do_not_stop_the_sync() {
    let dev = netns_or_skip!();
    let kinds = [
        "route add {P}.2.0/24 via 192.0.2.1 dev v0 onlink table {T} congctl cubic",
        "route add {P}.3.0/24 table {T} nexthop via 192.0.2.1 dev v0 onlink weight 1 nexthop via 192.0.2.2 dev v0 onlink weight 2",
        "route add {P}.4.0/24 via 192.0.2.1 dev v0 onlink table {T} mtu 1400 window 65535 rtt 10 advmss 1300",
        "route add {P}.5.0/24 nhid 7 table {T}",
        "route add {P}.6.0/24 via inet6 fe80::1 dev v0 table {T}",
        "route add {P}.7.0/24 encap ip id 1 dst 192.0.2.9 via 192.0.2.1 dev v0 onlink table {T}",
        "route add blackhole {P}.8.0/24 table {T}",
        "route add unreachable {P}.9.0/24 table {T}",
        "route add prohibit {P}.10.0/24 table {T}",
        "route add throw {P}.11.0/24 table {T}",
        "route add multicast 239.{Q}.0.0/16 dev v0 table {T}",
        "-6 route add 2001:db8:{Q}::/48 via fe80::1 dev v0 table {T} pref high expires 600",
        "-6 route add 2001:db8:{Q}:1::/64 via fe80::1 dev v0 table {T} congctl cubic",
        "-6 route add blackhole 2001:db8:{Q}:2::/64 table {T}",
    ];
    let _ = try_ip("nexthop add id 7 via 192.0.2.1 dev v0 onlink");
    let write_all = |p: &str, q: &str, t: &str| {
        let mut written = 0;
        for k in kinds {
            let cmd = k.replace("{P}", p).replace("{Q}", q).replace("{T}", t);
            match try_ip(&cmd) {
                Ok(()) => written += 1,
                // A kernel without a module (ip tunnels' encap, say).
                Err(e) => eprintln!("(not written here: {e})"),
            }
        }
        written
    };
    let elsewhere = write_all("10.99", "99", "200");
    let beside = write_all("10.98", "98", "100");
    assert!(
        elsewhere >= 10 && beside >= 10,
        "{elsewhere} and {beside} kinds written"
    );
    let rtm = Rtm::new();
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    let (c4, _c6) = protocol_one_holding(&rtm, 300);
    assert!(sync.wait_synced(WAIT), "{:?}", sync.stats());
    assert_kernel_matches(&rtm, "a load among routes of every kind");
    // The same kinds while it runs, in its table and another, then more
    // of rtm's changes.
    write_all("10.97", "97", "100");
    write_all("10.96", "96", "200");
    std::thread::sleep(Duration::from_millis(300));
    let data = IpRouteData::with_metric(1);
    for k in 300..600 {
        rtm.add_route(&c4, &Route::new(v4(k), nh4(1, k), 1, data), Ttl::Infinite)
            .unwrap();
    }
    assert!(sync.wait_synced(WAIT), "{:?}", sync.stats());
    assert_kernel_matches(&rtm, "changes after routes of every kind arrived");
    let stats = sync.stop().unwrap();
    assert_eq!(
        (stats.failure, stats.refused, stats.unreadable),
        (None, 0, 0)
    );
}

/// Catches a sync whose cost grows with other tables: another program's
/// load of 20,000 routes into table 200 must not reach rtm's notification
/// socket (the kernel's filter drops it, so no overflow and no resync),
/// and a restart's dump must read rtm's table alone (strict dumps).
#[test]
fn another_tables_load_costs_the_sync_nothing() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let _clients = protocol_one_holding(&rtm, 1_000);
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    let batch = std::env::temp_dir().join(format!("rtm-netlink-{}.batch", std::process::id()));
    let lines: String = (0..20_000u32)
        .map(|k| {
            format!(
                "route add 10.{}.{}.0/24 via 192.0.2.1 dev v0 onlink table 200\n",
                100 + k / 256,
                k % 256
            )
        })
        .collect();
    std::fs::write(&batch, lines).unwrap();
    let loaded = try_ip(&format!("-batch {}", batch.display()));
    let _ = std::fs::remove_file(&batch);
    loaded.unwrap();
    // One change of rtm's, waited for: the worker's round that programs
    // it also reads everything the monitor heard by then.
    let c4 = rtm
        .register::<Ipv4>(ProtocolId(2), RegisterOptions::default())
        .unwrap();
    let data = IpRouteData::with_metric(1);
    rtm.add_route(
        &c4,
        &Route::new(v4(5_000), nh4(1, 0), 1, data),
        Ttl::Infinite,
    )
    .unwrap();
    assert!(sync.wait_synced(WAIT));
    assert!(kernel_table(false).contains_key(&v4(5_000).to_string()));
    let stats = sync.stop().unwrap();
    assert_eq!(
        (stats.notifications, stats.enobufs, stats.resyncs),
        (0, 0, 1),
        "{stats:?}"
    );
    // A restart dumps table 100 (2,001 routes), not table 200.
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    let stats = sync.stop().unwrap();
    assert_eq!(stats.dumped, 2_001, "{stats:?}");
    assert_eq!(kernel_ops(&stats), (0, 0, 0), "{stats:?}");
}

/// Catches a sync that trusts a batch whose acknowledgements were lost
/// (`ENOBUFS`): with a receive buffer too small for a batch's acks the
/// kernel drops them, and only a dump-and-repair tells what it applied.
/// The table must still converge, through at least one extra resync.
#[test]
fn lost_acknowledgements_force_a_resync_that_converges() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let c = rtm
        .register::<Ipv4>(ProtocolId(1), RegisterOptions::default())
        .unwrap();
    let sync = KernelSync::start(
        &rtm,
        SyncConfig {
            receive_buffer: 1024, // the kernel's minimum: a few dozen acks
            batch: 1024,
            ..config(dev)
        },
    )
    .unwrap();
    for k in 0..20_000 {
        rtm.add_route(
            &c,
            &Route::new(v4(k), nh4(1, k), 1, IpRouteData::with_metric(1)),
            Ttl::Infinite,
        )
        .unwrap();
    }
    assert!(sync.wait_synced(WAIT), "{:?}", sync.stats());
    assert_kernel_matches(&rtm, "after lost acknowledgements");
    let stats = sync.stop().unwrap();
    assert!(stats.enobufs > 0 && stats.resyncs > 1, "{stats:?}");
}

/// Catches a running sync that does not notice its routes changed behind
/// its back (`ip route del` of one, a replace by another gateway, a route
/// added under its protocol number): it hears the kernel's route
/// notifications and re-programs each prefix, without a restart.
#[test]
fn changes_behind_its_back_while_it_runs_are_repaired() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let _clients = protocol_one_holding(&rtm, 500);
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    change_behind_its_back();
    until_none(&sync, "the running sync did not repair the table", || {
        kernel_difference(&rtm)
    });
    let stats = sync.stop().unwrap();
    assert!(stats.foreign >= 4, "{stats:?}");
    assert_eq!(
        stats.resyncs, 1,
        "repaired prefix by prefix, not by a resync: {stats:?}"
    );
}

/// Catches a view that trusts routes the kernel dropped without a word:
/// a device that goes down takes its IPv4 routes with it and sends no
/// `RTM_DELROUTE` for them, and nothing brings them back when it comes up
/// unless rtm writes them again. The sync hears the link events and
/// resynchronises, so the table is whole again once the device is up.
#[test]
fn routes_come_back_after_their_device_goes_down_and_up() {
    let dev = netns_or_skip!();
    let rtm = Rtm::new();
    let _clients = protocol_one_holding(&rtm, 300);
    let sync = KernelSync::start(&rtm, config(dev)).unwrap();
    assert!(sync.wait_synced(WAIT));
    assert_kernel_matches(&rtm, "before the device goes down");
    ip("link set v0 down");
    until_none(&sync, "the kernel kept the routes of a down device", || {
        let left = kernel_table(false).len();
        (left > 0).then(|| format!("{left} IPv4 routes left"))
    });
    ip("link set v0 up");
    until_none(&sync, "the routes did not come back", || {
        kernel_difference(&rtm)
    });
    let stats = sync.stop().unwrap();
    assert!(stats.link_events >= 2 && stats.resyncs >= 2, "{stats:?}");
}
