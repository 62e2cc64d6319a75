//! The text parsers never panic, and every rejection is an
//! `InvalidParameter` whose message quotes the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::{FamilyId, Ipv4Prefix, Ipv6Prefix, IpxNetwork, MacAddr, RtmError};

fn check<T: std::str::FromStr<Err = RtmError> + std::fmt::Display>(s: &str) {
    match s.parse::<T>() {
        Ok(v) => {
            // What parses prints back to something that parses to the same.
            let again: T = v
                .to_string()
                .parse()
                .unwrap_or_else(|e| panic!("{v} does not re-parse: {e}"));
            assert_eq!(again.to_string(), v.to_string());
        }
        Err(e) => {
            assert_eq!(e.code(), 87, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

fuzz_target!(|s: &str| {
    check::<Ipv4Prefix>(s);
    check::<Ipv6Prefix>(s);
    check::<IpxNetwork>(s);
    check::<FamilyId>(s);
    if let Err(e) = s.parse::<MacAddr>() {
        assert_eq!(e.code(), 87);
    }
});
