//! The batch language on arbitrary scripts: nothing panics, every rejected
//! command is reported as `error line <n>: <what>` with a message, and a
//! rejected command changes no route of any family.
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

fuzz_target!(|script: &str| {
    if script.len() > 4096 {
        return;
    }
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
