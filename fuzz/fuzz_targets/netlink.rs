//! The rtnetlink reader (`rtm::netlink::wire`) on arbitrary bytes: what
//! the kernel sync reads from dumps and notifications, which any program
//! on the host can shape. It must never panic, and what it reads must lie
//! inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::netlink::wire::{self, RouteInfo};

fuzz_target!(|data: &[u8]| {
    let mut read = 0;
    for message in wire::messages(data) {
        let Ok((header, body)) = message else {
            continue;
        };
        read += 16 + body.len();
        assert!(
            read <= data.len() + 3 * 16,
            "a message read past its datagram"
        );
        match header.kind {
            wire::NLMSG_ERROR => {
                let _ = wire::error_code(body);
            }
            _ => {
                if let Ok(route) = RouteInfo::parse(body) {
                    let _ = route.destination_addr();
                }
            }
        }
    }
});
