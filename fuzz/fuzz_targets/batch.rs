//! The batch language on arbitrary scripts: nothing panics, every rejected
//! command has a message, and a rejected command changes no route of any
//! family. Half the inputs are raw text; the other half are decoded into
//! the language's own words (each byte picks one), so most lines are
//! commands that parse and reach the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::batch::{Session, parse_line};
use rtm::{Criteria, Family, Ipv4, Ipv6, Ipx, Route, Rtm};

/// Every route of a family, disabled ones included.
fn routes<F: Family>(rtm: &Rtm) -> Vec<Route<F>> {
    rtm.enumerate(&Criteria::<F>::all().include_disabled())
        .map(|e| e.collect())
        .unwrap_or_default()
}

type Snapshot = (Vec<Route<Ipv4>>, Vec<Route<Ipv6>>, Vec<Route<Ipx>>);

fn snapshot(rtm: &Rtm) -> Snapshot {
    (routes(rtm), routes(rtm), routes(rtm))
}

/// The words scripts are made of: commands, keywords, and values that
/// nest and collide (a byte picks one; "\n" ends a line).
const WORDS: [&str; 64] = [
    "\n",
    "\n",
    "\n",
    "\n",
    "register",
    "deregister",
    "add",
    "del",
    "lookup",
    "best",
    "count",
    "routes",
    "first",
    "next",
    "block-delete",
    "block-disable",
    "block-enable",
    "convert-static",
    "dequeue",
    "age",
    "advance",
    "enum-open",
    "enum-next",
    "enum-close",
    "priority",
    "ipv4",
    "ipv6",
    "ipx",
    "rip",
    "ospf",
    "7",
    "single-route",
    "notify",
    "coalesce",
    "via",
    "dev",
    "metric",
    "ttl",
    "ticks",
    "hops",
    "network",
    "proto",
    "best",
    "disabled",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "0.0.0.0/0",
    "10.1.2.3",
    "192.0.2.1",
    "2001:db8::/32",
    "2001:db8::1",
    "fe80::1",
    "ipx:0000abcd",
    "00:11:22:33:44:55",
    "0",
    "1",
    "2",
    "30",
    "4294967296",
    "-1",
    "#",
    "1",
    "10.0.0.0/33",
    "2147484",
];

fn decode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        let w = WORDS[*b as usize % WORDS.len()];
        s += w;
        if w != "\n" {
            s.push(' ');
        }
    }
    s
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if rest.len() > 2048 {
        return;
    }
    let script = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        decode(rest)
    };
    let mut session = Session::new();
    for line in script.lines() {
        let cmd = match parse_line(line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => continue,
            Err(e) => {
                assert!(!e.is_empty(), "an empty parse error for {line:?}");
                continue;
            }
        };
        let before = snapshot(session.rtm());
        match session.execute(&cmd) {
            Ok(reply) => assert!(!reply.text.is_empty(), "{line:?} printed nothing"),
            Err(e) => {
                assert!(!e.is_empty(), "an empty error for {line:?}");
                assert!(
                    before == snapshot(session.rtm()),
                    "the failed command {line:?} ({e}) changed the table"
                );
            }
        }
    }
    session
        .rtm()
        .verify_consistency()
        .unwrap_or_else(|e| panic!("inconsistent after the script: {e}"));
});
