//! The `rtm` command end to end: every subcommand, the batch grammar, every
//! error path and the exit codes. Runs the built binary.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

fn rtm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtm"))
        .args(args)
        .output()
        .expect("the rtm binary runs")
}

fn rtm_stdin(args: &[&str], input: &[u8]) -> Output {
    common::cli::rtm_with_stdin(args, input)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file under the target directory, unique per test.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("temp file written");
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

// ----- MRT TABLE_DUMP_V2 (RFC 6396), written byte by byte --------------------

fn mrt_record(subtype: u16, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // timestamp
    r.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
    r.extend_from_slice(&subtype.to_be_bytes());
    r.extend_from_slice(&(body.len() as u32).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// ORIGIN, AS_PATH (one AS_SEQUENCE of 4-byte ASNs) and, if given, NEXT_HOP.
fn attributes(path: &[u32], next_hop: Option<[u8; 4]>) -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0];
    let seg_len = 2 + 4 * path.len();
    a.extend_from_slice(&[0x40, 2, seg_len as u8, 2, path.len() as u8]);
    for asn in path {
        a.extend_from_slice(&asn.to_be_bytes());
    }
    if let Some(nh) = next_hop {
        a.extend_from_slice(&[0x40, 3, 4]);
        a.extend_from_slice(&nh);
    }
    a
}

fn rib_entry(peer: u16, attrs: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend_from_slice(&peer.to_be_bytes());
    e.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    e.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    e.extend_from_slice(attrs);
    e
}

fn rib(subtype: u16, seq: u32, len: u8, prefix: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&seq.to_be_bytes());
    b.push(len);
    b.extend_from_slice(&prefix[..(len as usize).div_ceil(8)]);
    b.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for e in entries {
        b.extend_from_slice(e);
    }
    mrt_record(subtype, &b)
}

/// A peer table (peer 0: IPv4 10.255.0.1 AS 65001; peer 1: IPv6
/// 2001:db8:ffff::1 AS 65002), two IPv4 prefixes and one IPv6 prefix.
fn mrt_dump() -> Vec<u8> {
    let mut peers = Vec::new();
    peers.extend_from_slice(&[10, 0, 0, 1]); // collector BGP ID
    peers.extend_from_slice(&0u16.to_be_bytes()); // no view name
    peers.extend_from_slice(&2u16.to_be_bytes());
    peers.push(0x02); // IPv4 address, 4-byte AS
    peers.extend_from_slice(&[10, 255, 0, 1]);
    peers.extend_from_slice(&[10, 255, 0, 1]);
    peers.extend_from_slice(&65001u32.to_be_bytes());
    peers.push(0x03); // IPv6 address, 4-byte AS
    peers.extend_from_slice(&[10, 255, 0, 2]);
    peers.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    peers.extend_from_slice(&65002u32.to_be_bytes());
    let mut out = mrt_record(1, &peers);
    // 10.1.0.0/16: two paths; the shorter one (via 192.0.2.7) wins.
    out.extend(rib(
        2,
        0,
        16,
        &[10, 1],
        &[
            rib_entry(0, &attributes(&[65001, 64500, 64501], Some([192, 0, 2, 9]))),
            rib_entry(0, &attributes(&[65001, 64502], Some([192, 0, 2, 7]))),
        ],
    ));
    // 10.1.2.0/24: one path.
    out.extend(rib(
        2,
        1,
        24,
        &[10, 1, 2],
        &[rib_entry(0, &attributes(&[65001], Some([192, 0, 2, 8])))],
    ));
    // 2001:db8::/32 from the IPv6 peer, no next-hop attribute: the peer's
    // address stands in.
    out.extend(rib(
        4,
        2,
        32,
        &[0x20, 0x01, 0x0d, 0xb8],
        &[rib_entry(1, &attributes(&[65002, 64999], None))],
    ));
    out
}

// ----- load ------------------------------------------------------------------

#[test]
fn load_reads_every_format_gzip_or_not_and_reports_json() {
    let prefixes = temp_file(
        "t.txt",
        b"# a table\n10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n",
    );
    let updates = temp_file(
        "u.csv.gz",
        &gzip(b"A,10.2.0.0/16\nW,10.0.0.0/8\nW,10.9.0.0/16\n"),
    );
    let csv = temp_file(
        "d.csv",
        "\u{feff}net,len,asn\n192.168.0.0,16,64500\n".as_bytes(),
    );
    let mrt = temp_file("rib.mrt.gz", &gzip(&mrt_dump()));
    let o = rtm(&[
        "load",
        "--json",
        p(&prefixes),
        p(&updates),
        p(&csv),
        p(&mrt),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        r#""format":"prefixes","ipv4_announced":2,"ipv6_announced":1"#,
        r#""format":"updates","ipv4_announced":1,"ipv6_announced":0,"withdrawn":1,"withdrawn_absent":1"#,
        r#""format":"csv","ipv4_announced":1"#,
        r#""format":"mrt","ipv4_announced":2,"ipv6_announced":1"#,
        // 10.1/16, 10.2/16, 192.168/16, 10.1.2/24 (10/8 withdrawn); 2001:db8::/32 twice.
        r#""ipv4_networks":4,"ipv6_networks":1"#,
        r#""ipv4_lengths":[[16,3],[24,1]]"#,
    ] {
        assert!(out.contains(want), "missing {want} in {out}");
    }
    let o = rtm(&["load", p(&prefixes)]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("networks: 2 IPv4, 1 IPv6"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("/16"));
}

#[test]
fn load_errors_name_the_file_and_the_place() {
    let o = rtm(&["load", "/nonexistent/table.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/table.txt"),
        "{}",
        stderr(&o)
    );

    let bad = temp_file("bad.txt", b"10.0.0.0/8\n10.0.0.0/33\n");
    let o = rtm(&["load", p(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
    assert!(stderr(&o).contains("10.0.0.0/33"), "{}", stderr(&o));

    let gz = gzip(&b"10.0.0.0/8\n".repeat(2000));
    let truncated = temp_file("trunc.txt.gz", &gz[..gz.len() / 2]);
    let o = rtm(&["load", p(&truncated)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("trunc.txt.gz"), "{}", stderr(&o));

    let dump = mrt_dump();
    let cut = temp_file("cut.mrt", &dump[..dump.len() - 5]);
    let o = rtm(&["load", p(&cut)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("MRT record 4"), "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));

    let mut corrupt = dump.clone();
    corrupt[12 + 6] = 0xff; // the peer count: far more peers than bytes
    let corrupt = temp_file("corrupt.mrt", &corrupt);
    let o = rtm(&["load", "--format", "mrt", p(&corrupt)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("MRT record 1"), "{}", stderr(&o));

    let o = rtm(&["load", "--format", "xml", p(&bad)]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
    assert!(stderr(&o).contains("xml"));
}

// ----- lookup ----------------------------------------------------------------

#[test]
fn lookup_answers_from_an_mrt_dump() {
    let mrt = temp_file("lookup.mrt", &mrt_dump());
    let o = rtm(&[
        "lookup",
        "--table",
        p(&mrt),
        "10.1.9.9",
        "10.1.2.3",
        "2001:db8:1::1",
        "11.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "10.1.9.9 via 192.0.2.7 dev 1 proto 14 prefix 10.1.0.0/16\n\
         10.1.2.3 via 192.0.2.8 dev 1 proto 14 prefix 10.1.2.0/24\n\
         2001:db8:1::1 via 2001:db8:ffff::1 dev 1 proto 14 prefix 2001:db8::/32\n\
         11.0.0.1 unreachable\n"
    );
    let o = rtm(&["lookup", "--table", p(&mrt), "10.1.2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\"10.1.2\""), "{}", stderr(&o));
}

// ----- batch -----------------------------------------------------------------

const SCRIPT: &str = "\
# priorities: lower wins
priority ospf 110
priority rip 120
register ipv4 ospf notify
register ipv4 rip
add rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric 5
add ospf 10.0.0.0/8 via 192.0.2.2 dev 2 metric 20 ttl 60
add ospf 10.0.0.0/8 via 192.0.2.2 dev 2 metric 20
add rip 10.1.0.0/16 via 192.0.2.1 dev 1 metric 1
lookup 10.1.2.3
lookup 10.200.0.1
lookup 11.0.0.1
best 10.0.0.0/8
best 10.9.0.0/16
count ipv4
routes ipv4
routes ipv4 network 10.0.0.0/8 best
first ipv4 proto rip
next rip 10.0.0.0/8 via 192.0.2.1 dev 1 proto rip
next rip 10.1.0.0/16 via 192.0.2.1 dev 1
dequeue ipv4 ospf
dequeue ipv4 ospf
dequeue ipv4 ospf
advance 30
age ospf 10.0.0.0/8 via 192.0.2.2 dev 2
enum-open ipv4 dev 1
enum-next 1
enum-next 1
enum-next 1
enum-close 1
block-disable ipv4 rip network 10.1.0.0/16
routes ipv4 disabled dev 1
block-enable ipv4 rip
convert-static ipv4 ospf proto rip
block-delete ipv4 ospf dev 1
del ospf 10.0.0.0/8 via 192.0.2.2 dev 2
register ipx 5
add 5 ipx:0000abcd via 00:11:22:33:44:55 dev 3 ticks 4 hops 2
routes ipx
register ipv6 bgp
add bgp 2001:db8::/32 via fe80::1 dev 4 metric 9
lookup 2001:db8::42
deregister ipv6 bgp
lookup 2001:db8::42
deregister ipv4 rip
count ipv4
";

const EXPECTED: &str = "\
ok
ok
ok
ok
added
changed
no-change
added
10.1.2.3 via 192.0.2.1 dev 1 proto 8 prefix 10.1.0.0/16
10.200.0.1 via 192.0.2.2 dev 2 proto 13 prefix 10.0.0.0/8
11.0.0.1 unreachable
10.0.0.0/8 via 192.0.2.2 dev 2 proto 13 metric 20
10.9.0.0/16 no-route
2 networks
10.0.0.0/8 via 192.0.2.1 dev 1 proto 8 metric 5
10.0.0.0/8 via 192.0.2.2 dev 2 proto 13 metric 20
10.1.0.0/16 via 192.0.2.1 dev 1 proto 8 metric 1
3 routes
10.0.0.0/8 via 192.0.2.2 dev 2 proto 13 metric 20
1 routes
10.0.0.0/8 via 192.0.2.1 dev 1 proto 8 metric 5
10.1.0.0/16 via 192.0.2.1 dev 1 proto 8 metric 1
no-routes
added current 10.0.0.0/8 via 192.0.2.1 dev 1 proto 8 metric 5 more
added current 10.1.0.0/16 via 192.0.2.1 dev 1 proto 8 metric 1
no-messages
ok 0 routes expired
30 seconds
ok enumeration 1
10.0.0.0/8 via 192.0.2.1 dev 1 proto 8 metric 5
10.1.0.0/16 via 192.0.2.1 dev 1 proto 8 metric 1
no-more-routes
ok
ok 1 routes disabled
10.0.0.0/8 via 192.0.2.1 dev 1 proto 8 metric 5
10.1.0.0/16 via 192.0.2.1 dev 1 proto 8 metric 1
2 routes
ok 1 routes enabled
ok 2 routes converted
ok 2 routes deleted
deleted
ok
added
ipx:0000abcd via 00:11:22:33:44:55 dev 3 proto 5 ticks 4 hops 2
1 routes
ok
added
2001:db8::42 via fe80::1 dev 4 proto 14 prefix 2001:db8::/32
ok 1 routes removed
2001:db8::42 unreachable
ok 0 routes removed
0 networks
";

#[test]
fn batch_runs_every_command_of_the_grammar() {
    let o = rtm_stdin(&["batch"], SCRIPT.as_bytes());
    assert_eq!(stderr(&o), "");
    assert!(o.status.success());
    let got = stdout(&o);
    for (i, (g, w)) in got.lines().zip(EXPECTED.lines()).enumerate() {
        assert_eq!(g, w, "output line {}", i + 1);
    }
    assert_eq!(got, EXPECTED);
    // From a file, the same.
    let f = temp_file("script.rtm", SCRIPT.as_bytes());
    assert_eq!(stdout(&rtm(&["batch", p(&f)])), EXPECTED);
}

#[test]
fn batch_errors_name_line_and_token_change_nothing_and_go_on() {
    let script = "\
register ipv4 rip
fly away
add rip 10.0.0.0/33 via 192.0.2.1 dev 1 metric 1
add ospf 10.0.0.0/8 via 192.0.2.1 dev 1 metric 1
add rip 10.0.0.0/8 via 192.0.2.1 dev 1
add rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric lots
register ipv4 rip
add rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric 1 ttl 9999999
del rip 10.0.0.0/8 via 192.0.2.1 dev 1
enum-next 7
count ipv4
";
    let o = rtm_stdin(&["batch"], script.as_bytes());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "ok\n0 networks\n");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 9, "{err}");
    for (line, (n, token)) in lines.iter().zip([
        (2, "\"fly\""),
        (3, "\"10.0.0.0/33\""),
        (4, "protocol 13 is not registered for ipv4"),
        (5, "missing \"metric\""),
        (6, "\"lots\""),
        (7, "protocol 8 is registered"),
        (8, "9999999"),
        (9, "no such route"),
        (10, "enumeration 7 is not open"),
    ]) {
        assert!(line.starts_with(&format!("error line {n}: ")), "{line}");
        assert!(line.contains(token), "{line} lacks {token}");
    }
    // --stop-on-error: nothing after the first failure runs.
    let o = rtm_stdin(&["batch", "--stop-on-error"], script.as_bytes());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "ok\n");
    assert_eq!(stderr(&o).lines().count(), 1);
    // A line that is not UTF-8 is a failed command, not the end.
    let o = rtm_stdin(&["batch"], b"count ipv4\n\xff\xfe\ncount ipv6\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "0 networks\n0 networks\n");
    assert!(stderr(&o).starts_with("error line 2: the line is not UTF-8"));
    // An unreadable script: exit 2.
    let o = rtm(&["batch", "/nonexistent/script"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/script"));
}

#[test]
fn batch_json_prints_one_object_per_result() {
    let script = "register ipv4 rip notify\nadd rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric 3\nbogus\nlookup 10.0.0.1\nroutes ipv4\n";
    let o = rtm_stdin(&["batch", "--json"], script.as_bytes());
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], r#"{"line":1,"command":"register","result":"ok"}"#);
    assert_eq!(lines[1], r#"{"line":2,"command":"add","result":"added"}"#);
    assert!(lines[2].starts_with(r#"{"line":3,"error":"unknown command \"bogus\""#));
    assert_eq!(
        lines[3],
        r#"{"line":4,"command":"lookup","address":"10.0.0.1","route":{"network":"10.0.0.0/8","next_hop":"192.0.2.1","interface":1,"protocol":8,"metric":3}}"#
    );
    assert_eq!(
        lines[4],
        r#"{"line":5,"command":"routes","routes":[{"network":"10.0.0.0/8","next_hop":"192.0.2.1","interface":1,"protocol":8,"metric":3}],"count":1}"#
    );
    assert!(stderr(&o).starts_with("error line 3: "));
}

// ----- demo and bench ----------------------------------------------------------

#[test]
fn demo_runs_small_and_reports_truthfully() {
    let o = rtm(&[
        "demo",
        "--ipv4",
        "20000",
        "--ipv6",
        "2000",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("BGP deregistration"), "{out}");
    assert!(out.contains("deregistration of "), "{out}");
    assert!(out.contains("all IGP or static: true"), "{out}");
    assert!(out.contains("consistency check: ok"), "{out}");
    let o = rtm(&[
        "demo",
        "--ipv4",
        "20000",
        "--ipv6",
        "0",
        "--duration",
        "0.2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.trim_start().starts_with('{') && out.trim_end().ends_with('}'),
        "{out}"
    );
    assert!(
        out.contains(r#""deregistered_best_routes_left":0"#),
        "{out}"
    );
    assert!(out.contains(r#""consistent":true"#), "{out}");
    // The report counts networks: the synthetic table's distinct prefixes.
    let mut v4 = rtm::synth::ipv4_table(20000, 1);
    v4.sort_unstable();
    v4.dedup();
    let tables = format!(r#""ipv4":{},"ipv6":0}}"#, v4.len());
    assert!(out.contains(&tables), "{tables} not in {out}");
}

#[test]
fn demo_loads_a_table_file() {
    let mut table = String::new();
    for i in 0..3000u32 {
        table += &format!("{}.{}.0.0/16\n", 1 + i / 256, i % 256);
    }
    let f = temp_file("demo-table.txt", table.as_bytes());
    let o = rtm(&["demo", "--table", p(&f), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(r#""ipv4":3000,"ipv6":0"#),
        "{}",
        stdout(&o)
    );
    let o = rtm(&["demo", "--ipv4", "100", "--duration=inf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--duration inf"), "{}", stderr(&o));
    let o = rtm(&["demo", "--table", "/nonexistent/t.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/t.txt"));
}

/// Would catch a bench subcommand that fails on a small table (no IPv6,
/// few prefixes), an `rtm bench lpm` whose structures disagree on some
/// path (it must say `"agree":true`, and the prefix-trie row has no batch
/// path), a `bench churn` without its one-call-per-update phase, and one
/// that fails on a table with no IPv6 prefix instead of skipping its IPv6
/// steps with the reason.
#[test]
fn bench_subcommands_run_on_small_inputs() {
    let mut table = String::new();
    let mut updates = String::new();
    for i in 0..2000u32 {
        table += &format!("10.{}.{}.0/24\n", i / 256, i % 256);
        updates += &format!(
            "{},10.{}.{}.0/24\n",
            if i % 3 == 0 { "W" } else { "A" },
            i / 256,
            i % 256
        );
    }
    let t = temp_file("bench-table.txt", table.as_bytes());
    let u = temp_file("bench-updates.csv", updates.as_bytes());
    let o = rtm(&[
        "bench",
        "lpm",
        "--table",
        p(&t),
        "--lookups",
        "20000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"agree\":true,"), "{}", stdout(&o));
    assert!(stdout(&o).contains("\"batch_mlps\":null"), "{}", stdout(&o));
    let o = rtm(&[
        "bench",
        "churn",
        "--table",
        p(&t),
        "--updates",
        p(&u),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"w1_not_on_b\":0"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("\"u2s_ops_per_sec\":"),
        "{}",
        stdout(&o)
    );
    // The IPv6 steps run on the table's IPv6 prefixes; this one has none,
    // which skips them with the reason instead of failing the run.
    assert!(
        stdout(&o).contains("\"v6_skipped\":\"") && stdout(&o).contains("has no IPv6 prefix"),
        "{}",
        stdout(&o)
    );
}

/// Would catch `rtm batch` panicking on a network past its route limit (the
/// add path's `unreachable!`), an error line that does not name the limit,
/// a refused add that leaves a route behind, and a clock that wraps when
/// advanced by the largest count (time running backwards).
#[test]
fn batch_refuses_an_add_past_the_route_limit_and_time_never_wraps() {
    let script = "\
register ipv4 rip
add rip 10.0.0.0/8 via 192.0.2.1 dev 1 metric 1
add rip 10.0.0.0/8 via 192.0.2.2 dev 2 metric 1
add rip 10.0.0.0/8 via 192.0.2.3 dev 3 metric 1
count ipv4
add rip 10.9.0.0/16 via 192.0.2.1 dev 1 metric 1 ttl 60
advance 18446744073709551615
advance 5
count ipv4
";
    let o = rtm_stdin(
        &["batch", "--max-routes-per-network", "2"],
        script.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "ok\nadded\nno-change\n1 networks\nadded\nok 1 routes expired\nok 0 routes expired\n1 networks\n"
    );
    let err = stderr(&o);
    assert!(
        err.starts_with("error line 4: no system resources: IPv4 10.0.0.0/8 would hold 3 routes; one network holds at most 2"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The graceful-restart commands end to end: a BGP client's routes kept
/// through `deregister-graceful` (lookups still answer), the restarted
/// client adopting them and refreshing one, `routes` marking the stale
/// one, `end-of-rib` sweeping only it, and a `mark-stale` hold ended by
/// `advance`. Would catch a deregistration that drops the routes from the
/// FIB, a registration that does not adopt (it would fail: the pair is
/// taken), a refresh that stays stale, and a sweep or hold that removes
/// fresh routes.
#[test]
fn batch_runs_a_graceful_restart_cycle() {
    let script = "\
register ipv4 bgp
register ipv4 ospf notify
add bgp 10.0.0.0/8 via 192.0.2.1 dev 1 metric 5
add bgp 10.1.0.0/16 via 192.0.2.1 dev 1 metric 5
add bgp 10.2.0.0/16 via 192.0.2.1 dev 1 metric 5
dequeue ipv4 ospf
deregister-graceful ipv4 bgp hold 120
lookup 10.1.2.3
routes ipv4 stale
register ipv4 bgp
add bgp 10.0.0.0/8 via 192.0.2.1 dev 1 metric 5
add bgp 10.1.0.0/16 via 192.0.2.9 dev 1 metric 5
routes ipv4
end-of-rib ipv4 bgp
routes ipv4 fresh
mark-stale ipv4 bgp hold 30
advance 29
count ipv4
advance 1
count ipv4
";
    let o = rtm_stdin(&["batch"], script.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        "ok",
        "ok",
        "added",
        "added",
        "added",
        "added current 10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5 more",
        "ok 3 routes kept",
        "10.1.2.3 via 192.0.2.1 dev 1 proto 14 prefix 10.1.0.0/16",
        "10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5 stale",
        "10.1.0.0/16 via 192.0.2.1 dev 1 proto 14 metric 5 stale",
        "10.2.0.0/16 via 192.0.2.1 dev 1 proto 14 metric 5 stale",
        "3 routes",
        "ok",
        "no-change",
        // Equal rank: the stale incumbent stays best (A4) until swept.
        "no-change",
        "10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "10.1.0.0/16 via 192.0.2.1 dev 1 proto 14 metric 5 stale",
        "10.1.0.0/16 via 192.0.2.9 dev 1 proto 14 metric 5",
        "10.2.0.0/16 via 192.0.2.1 dev 1 proto 14 metric 5 stale",
        "4 routes",
        "ok 2 routes swept",
        "10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "10.1.0.0/16 via 192.0.2.9 dev 1 proto 14 metric 5",
        "2 routes",
        "ok 2 routes marked",
        "ok 0 routes expired",
        "2 networks",
        "ok 2 routes expired",
        "0 networks",
    ];
    assert_eq!(lines, want, "{out}");
}

/// The ECMP commands end to end: `multipath` opts protocols in, a second
/// equal-cost route (with a weight) joins the best paths, `lookup-flow`
/// splits flows by weight, `next-hop-down` moves them at once and
/// `next-hop-up` back, a client of a multipath protocol dequeues a
/// `paths-changed` message while an RTMv1 client's queue stays as
/// without ECMP, and a weight of 0 is refused by line. Would catch a
/// grammar that drops the weight, paths not shown, a next-hop-down
/// without effect, and paths changes leaking to RTMv1 clients.
#[test]
fn batch_runs_an_ecmp_cycle() {
    let script = "\
priority bgp 20
priority ospf 20
multipath bgp on
register ipv4 bgp notify
register ipv4 ospf notify
register ipv4 rip notify
add bgp 10.0.0.0/8 via 192.0.2.1 dev 1 metric 5
add bgp 10.0.0.0/8 via 192.0.2.2 dev 1 metric 5 weight 3
paths 10.0.0.0/8
lookup-flow 10.9.9.9 0
lookup-flow 10.9.9.9 1073741824
next-hop-down 192.0.2.2 dev 1
lookup-flow 10.9.9.9 1073741824
next-hop-up 192.0.2.2 dev 1
lookup-flow 10.9.9.9 4294967295
multipath ospf on
add ospf 10.0.0.0/8 via 192.0.2.4 dev 1 metric 5
dequeue ipv4 bgp
dequeue ipv4 bgp
dequeue ipv4 rip
dequeue ipv4 rip
paths 10.0.0.0/8
add bgp 10.0.0.0/8 via 192.0.2.9 dev 1 metric 5 weight 0
";
    let o = rtm_stdin(&["batch"], script.as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "added",
        // The best route stays: RTMv1's answer to the caller.
        "no-change",
        "10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "10.0.0.0/8 via 192.0.2.2 dev 1 proto 14 metric 5 weight 3",
        "2 paths",
        // A quarter of the hash space to weight 1, the rest to weight 3.
        "10.9.9.9 via 192.0.2.1 dev 1 proto 14 prefix 10.0.0.0/8",
        "10.9.9.9 via 192.0.2.2 dev 1 proto 14 prefix 10.0.0.0/8",
        "ok 1 groups",
        "10.9.9.9 via 192.0.2.1 dev 1 proto 14 prefix 10.0.0.0/8",
        "ok 1 groups",
        "10.9.9.9 via 192.0.2.2 dev 1 proto 14 prefix 10.0.0.0/8",
        "ok",
        "no-change",
        // BGP hears OSPF's path join: the best route is the same.
        "paths-changed current 10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "no-messages",
        // RIP (not multipath) heard of the first route only.
        "added current 10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "no-messages",
        "10.0.0.0/8 via 192.0.2.4 dev 1 proto 13 metric 5",
        "10.0.0.0/8 via 192.0.2.1 dev 1 proto 14 metric 5",
        "10.0.0.0/8 via 192.0.2.2 dev 1 proto 14 metric 5 weight 3",
        "3 paths",
    ];
    assert_eq!(lines, want, "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("line 23") && err.contains("<weight> \"0\" is not a number from 1 to 65535"),
        "{err}"
    );
}
