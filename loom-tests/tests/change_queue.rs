//! The change queue and its notifier: no lost wake-up, and the
//! more-messages status exactly when more remain.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use rtm::{Change, ChangeQueue, DequeueStatus, IpRouteData, Ipv4, Route, RtmError};
use std::time::Duration;

fn msg(i: u8) -> Change<Ipv4> {
    let r = Route::<Ipv4>::new(
        format!("10.{i}.0.0/16").parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        1,
        IpRouteData::default(),
    );
    Change::Added { current: r }
}

/// A producer queues two messages while a client runs the RTMv1 loop: wait
/// on the notifier, then dequeue until the status is not MoreMessages.
/// The client must get both, in order, and never block forever.
#[test]
fn no_lost_wakeup_and_exact_more_messages() {
    loom::model(|| {
        let q = Arc::new(ChangeQueue::<Ipv4>::new());
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                q.push(msg(1));
                q.push(msg(2));
            })
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(q.wait(Duration::from_secs(1)));
            loop {
                match q.pop() {
                    Ok(d) => {
                        got.push(d.change);
                        // We are the only consumer: after MoreMessages the
                        // queue cannot be empty, and the notifier is set.
                        if d.status == DequeueStatus::MoreMessages {
                            assert!(!q.is_empty() && q.is_signalled());
                        }
                        if d.status == DequeueStatus::Last {
                            break;
                        }
                    }
                    Err(RtmError::NoMessages) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![msg(1), msg(2)]);
        assert!(!q.is_signalled());
    });
}

/// Closing (deregistration) wakes a blocked waiter, and later pushes are
/// dropped.
#[test]
fn close_wakes_waiter() {
    loom::model(|| {
        let q = Arc::new(ChangeQueue::<Ipv4>::new());
        let waiter = {
            let q = q.clone();
            thread::spawn(move || q.wait(Duration::from_secs(1)))
        };
        q.close();
        assert!(!waiter.join().unwrap());
        q.push(msg(1));
        assert!(q.pop().is_err());
    });
}

/// A bulk writer pushes without waking and wakes once afterwards if any
/// push reported a waiter (`push_deferred` / `wake`): the waiter still
/// gets every message and never sleeps forever.
#[test]
fn deferred_wake_is_not_lost() {
    loom::model(|| {
        let q = Arc::new(ChangeQueue::<Ipv4>::new());
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut owed = q.push_deferred(msg(1));
                owed |= q.push_deferred(msg(2));
                if owed {
                    q.wake();
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(q.wait(Duration::from_secs(1)));
            while let Ok(d) = q.pop() {
                got.push(d.change);
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![msg(1), msg(2)]);
    });
}
