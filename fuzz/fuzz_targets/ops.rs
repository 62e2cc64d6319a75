//! Drives the engine and the sequential reference model with the same
//! arbitrary operations (every call, clock advances, sweeps) in one family
//! and requires identical results, messages and tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::model::differential::{Op, run};
use rtm::{Ipv4, Ipv6, Ipx};

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (family, ops) = input;
    if ops.len() > 200 {
        return;
    }
    let result = match family % 3 {
        0 => run::<Ipv4>(&ops),
        1 => run::<Ipv6>(&ops),
        _ => run::<Ipx>(&ops),
    };
    if let Err(e) = result {
        panic!("engine and model disagree: {e}");
    }
});
