//! The table file readers on arbitrary bytes, in every format and with
//! detection: nothing panics, and a rejection is an error that names the
//! input and says what was wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::files::{Format, read_bytes};

fuzz_target!(|bytes: &[u8]| {
    for format in [
        None,
        Some(Format::Prefixes),
        Some(Format::Updates),
        Some(Format::Csv),
        Some(Format::Mrt),
    ] {
        match read_bytes(bytes, "fuzz-input", format) {
            Ok(t) => {
                // What was read is usable: every prefix re-parses from text.
                for i in &t.v4 {
                    assert_eq!(i.prefix.to_string().parse(), Ok(i.prefix));
                }
                for i in &t.v6 {
                    assert_eq!(i.prefix.to_string().parse(), Ok(i.prefix));
                }
            }
            Err(e) => {
                assert!(e.starts_with("fuzz-input"), "{e}");
                assert!(e.len() > "fuzz-input: ".len(), "{e}");
            }
        }
    }
});
