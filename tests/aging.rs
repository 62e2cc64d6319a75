//! The background sweeper ages routes out by itself and stops on drop.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtm::*;

#[test]
fn background_sweeper_ages_routes_out_and_stops_on_drop() {
    let f = fx();
    let r = route("10.0.0.0/8", "1.1.1.1", 1, 5);
    f.rtm.add_route(&f.a, &r, Ttl::Seconds(1)).unwrap();
    let sweeper = f.rtm.spawn_sweeper(Duration::from_millis(5));
    f.clock.advance_secs(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.rtm.is_route::<Ipv4>(&r.network).is_some() {
        assert!(
            Instant::now() < deadline,
            "the sweeper never removed the expired route"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The owner hears of it too (aging notifies everyone).
    assert!(f.a.wait_for_messages(Duration::from_secs(5)).unwrap());
    assert_eq!(
        f.rtm.dequeue(&f.a).unwrap().change.flags(),
        RTM_ROUTE_DELETED
    );
    drop(sweeper); // joins the thread
    // With the sweeper gone, nothing ages any more.
    f.rtm.add_route(&f.a, &r, Ttl::Seconds(1)).unwrap();
    f.clock.advance_secs(5);
    std::thread::sleep(Duration::from_millis(50));
    assert!(f.rtm.is_route::<Ipv4>(&r.network).is_some());
}
