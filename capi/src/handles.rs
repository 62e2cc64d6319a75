//! The process's one routing table and the handles C holds into it.
//!
//! RTMv1 has one RTM per process, so the C API has one [`Rtm`], built on
//! first use, with an aging sweeper thread (one-second granularity) that
//! expires routes whose TTL ran out.
//!
//! A `HANDLE` is a number, never a pointer: the key of a live client or
//! enumeration in a map. Numbers come from one 64-bit counter shared by
//! both kinds and are never reused (spec A25's generation counter, taken
//! to its limit), so a handle that was closed or deregistered, one of the
//! other kind, or any value C made up finds nothing and is
//! `ERROR_INVALID_HANDLE`. Nothing C passes as a handle is ever
//! dereferenced.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use rtm::{ClientHandle, Enumeration, Ipv4, Ipx, Rtm, RtmError, Sweeper};

use crate::types::HANDLE;

/// A live client, by family.
#[derive(Clone)]
pub(crate) enum Client {
    Ip(ClientHandle<Ipv4>),
    Ipx(ClientHandle<Ipx>),
}

/// A live enumeration, by family. Its lock orders two threads that share
/// one handle (RTMv1 allows it; each route still comes out once).
pub(crate) enum Cursor {
    Ip(Enumeration<Ipv4>),
    Ipx(Enumeration<Ipx>),
}

struct Globals {
    rtm: Rtm,
    /// Kept for the life of the process: dropping it would stop aging.
    _sweeper: Sweeper,
    clients: DashMap<usize, Client>,
    cursors: DashMap<usize, Arc<Mutex<Cursor>>>,
}

static GLOBALS: OnceLock<Globals> = OnceLock::new();

/// The next handle number. Relaxed: it only has to be unique, which the
/// read-modify-write gives in any ordering; the map insert publishes the
/// handle's object.
static NEXT: AtomicUsize = AtomicUsize::new(1);

fn globals() -> &'static Globals {
    GLOBALS.get_or_init(|| {
        let rtm = Rtm::new();
        let sweeper = rtm.spawn_sweeper(Duration::from_secs(1));
        Globals {
            rtm,
            _sweeper: sweeper,
            clients: DashMap::new(),
            cursors: DashMap::new(),
        }
    })
}

/// The process's routing table.
pub(crate) fn rtm() -> &'static Rtm {
    &globals().rtm
}

fn next_handle() -> HANDLE {
    NEXT.fetch_add(1, Ordering::Relaxed) as HANDLE
}

fn invalid(kind: &str, h: HANDLE) -> RtmError {
    RtmError::InvalidHandle(format!(
        "{h:p} is not a live {kind} handle (never issued, closed, deregistered, or of another kind)"
    ))
}

/// Issues a handle for a newly registered client.
pub(crate) fn add_client(c: Client) -> HANDLE {
    let h = next_handle();
    globals().clients.insert(h as usize, c);
    h
}

/// The client `h` names.
pub(crate) fn client(h: HANDLE) -> Result<Client, RtmError> {
    globals()
        .clients
        .get(&(h as usize))
        .map(|c| c.clone())
        .ok_or_else(|| invalid("client", h))
}

/// Retires `h`: from now on it names nothing. Returns the client it named.
pub(crate) fn remove_client(h: HANDLE) -> Result<Client, RtmError> {
    globals()
        .clients
        .remove(&(h as usize))
        .map(|(_, c)| c)
        .ok_or_else(|| invalid("client", h))
}

/// Issues a handle for a new enumeration.
pub(crate) fn add_cursor(c: Cursor) -> HANDLE {
    let h = next_handle();
    globals()
        .cursors
        .insert(h as usize, Arc::new(Mutex::new(c)));
    h
}

/// The enumeration `h` names.
pub(crate) fn cursor(h: HANDLE) -> Result<Arc<Mutex<Cursor>>, RtmError> {
    globals()
        .cursors
        .get(&(h as usize))
        .map(|c| c.clone())
        .ok_or_else(|| invalid("enumeration", h))
}

/// Retires the enumeration `h` names.
pub(crate) fn remove_cursor(h: HANDLE) -> Result<Arc<Mutex<Cursor>>, RtmError> {
    globals()
        .cursors
        .remove(&(h as usize))
        .map(|(_, c)| c)
        .ok_or_else(|| invalid("enumeration", h))
}
