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

use rtm::netlink::{Interfaces, KernelSync, SyncConfig};
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

/// `ip -4|-6 route show table TABLE proto 201`, parsed.
fn kernel_table(v6: bool) -> Shown {
    let out = Command::new("ip")
        .args([
            if v6 { "-6" } else { "-4" },
            "route",
            "show",
            "table",
            &TABLE.to_string(),
            "proto",
            "201",
        ])
        .output()
        .expect("ip route show runs");
    let mut shown = Shown::new();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("FIB table does not exist") {
        return shown; // no route of the family was ever put there
    }
    assert!(out.status.success(), "{err}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
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
    for v6 in [false, true] {
        let want = if v6 {
            wanted::<Ipv6>(rtm, Ipv6Addr::UNSPECIFIED)
        } else {
            wanted::<Ipv4>(rtm, Ipv4Addr::UNSPECIFIED)
        };
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
    assert_eq!(kernel_table(false).len(), 10_000 + 4_000 + 1);
    let stats = sync.stop().unwrap();
    assert_eq!(stats.refused, 0, "{:?}", stats.last_refusal);
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
        loaded.replaced,
        loaded.ops_per_sec(),
        loaded.batches,
    );
}

/// Catches a restarted sync that trusts the kernel table it finds (routes
/// deleted, replaced or added behind its back, or rtm changes made while
/// it was down, would stay wrong), that reloads everything instead of
/// repairing the difference, or that touches another protocol's routes in
/// its table.
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
    assert_kernel_matches(&rtm, "after the restart");
    let stats = sync.stop().unwrap();
    // Four repairs and the two rtm changes, not a reload of 4,000 routes.
    assert_eq!(stats.replaced, 4, "{stats:?}");
    assert_eq!(stats.deleted, 2, "{stats:?}");
    let out = Command::new("ip")
        .args(["route", "show", "table", "100", "proto", "static"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("172.30.0.0/16"),
        "another protocol's route in the table was left alone"
    );
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
    let t = Instant::now();
    while let Some(difference) = kernel_difference(&rtm) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the running sync did not repair the table: {difference}; {:?}",
            sync.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = sync.stop().unwrap();
    assert!(stats.foreign >= 4, "{stats:?}");
    assert_eq!(
        stats.resyncs, 1,
        "repaired prefix by prefix, not by a resync: {stats:?}"
    );
}
