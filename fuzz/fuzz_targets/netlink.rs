//! The rtnetlink reader (`rtm::netlink::wire`) on arbitrary bytes: what
//! the kernel sync reads from dumps and notifications, which any program
//! on the host can shape. It must never panic, and every route it reads
//! must survive the writer: written back and read again, it is the same
//! route (but for what the writer leaves out: several paths, indirect
//! next hops).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::netlink::wire::{self, RouteInfo};

fuzz_target!(|data: &[u8]| {
    for (header, body) in wire::messages(data).flatten() {
        let _ = wire::error_code(body);
        let _ = wire::link_event(header.kind, body);
        let Ok(route) = RouteInfo::parse(body) else {
            continue;
        };
        let _ = route.destination_addr();
        let single = RouteInfo {
            multipath: false,
            indirect: false,
            ..route.clone()
        };
        let mut again = Vec::new();
        wire::push_route(&mut again, header.kind, header.flags, header.seq, &single);
        let (_, body) = wire::messages(&again).next().unwrap().unwrap();
        assert_eq!(RouteInfo::parse(body).unwrap(), single);
    }
});
