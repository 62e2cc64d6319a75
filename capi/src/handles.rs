//! The process's one routing table and the handles C holds into it.
//!
//! RTMv1 has one RTM per process, so the C API has one [`Rtm`], built on
//! first use, with an aging sweeper thread (one-second granularity) that
//! expires routes whose TTL ran out.
//!
//! A `HANDLE` is a number, never a pointer: the key of a live client or
//! enumeration in a map. Numbers come from one counter shared by both kinds
//! and are never reused (spec A25's generation counter, taken to its
//! limit), so a handle that was closed or deregistered or any value C made
//! up finds nothing and is `ERROR_INVALID_HANDLE`. Nothing C passes as a
//! handle is ever dereferenced.
//!
//! **Handles check themselves.** Each carries its kind's tag in its top
//! bits ("rc" for clients, "re" for enumerations, in the top 16 bits of a
//! 64-bit handle, above a 48-bit count that no process exhausts) above the
//! counter, so the slips a port makes, a
//! small integer (`(HANDLE)1`, a descriptor), an enumeration handle where a
//! client's belongs, are told apart from a stale handle in the error's
//! message, and no small number is ever a live handle.

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

/// A kind of handle: its tag and name.
#[derive(Clone, Copy)]
struct Kind {
    tag: usize,
    /// "a client", "an enumeration".
    name: &'static str,
}

#[cfg(target_pointer_width = "64")]
const TAG_SHIFT: u32 = 48;
#[cfg(not(target_pointer_width = "64"))]
const TAG_SHIFT: u32 = 28;
/// The bits below the tag: the counter's.
const NUMBER_MASK: usize = (1 << TAG_SHIFT) - 1;

#[cfg(target_pointer_width = "64")]
const CLIENT: Kind = Kind {
    tag: 0x7263 << TAG_SHIFT, // "rc"
    name: "a client",
};
#[cfg(target_pointer_width = "64")]
const CURSOR: Kind = Kind {
    tag: 0x7265 << TAG_SHIFT, // "re"
    name: "an enumeration",
};
#[cfg(not(target_pointer_width = "64"))]
const CLIENT: Kind = Kind {
    tag: 0xA << TAG_SHIFT,
    name: "a client",
};
#[cfg(not(target_pointer_width = "64"))]
const CURSOR: Kind = Kind {
    tag: 0xB << TAG_SHIFT,
    name: "an enumeration",
};

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

/// A new handle of `kind`: its tag over the next number. On 64 bits the
/// count has 48 bits (a handle a microsecond for nine years); on 32-bit
/// targets 28, and after 2^28 handles numbers repeat.
fn next_handle(kind: Kind) -> usize {
    kind.tag | (NEXT.fetch_add(1, Ordering::Relaxed) & NUMBER_MASK)
}

/// Why `h` names no live handle of `kind`: the message tells a slip (a
/// raw number, the other kind) from a handle that was live once.
fn invalid(kind: Kind, h: HANDLE) -> RtmError {
    let value = h as usize;
    let tag = value & !NUMBER_MASK;
    let why = if tag == kind.tag {
        format!("{} handle that is closed or deregistered", kind.name)
    } else if let Some(other) = [CLIENT, CURSOR].into_iter().find(|k| k.tag == tag) {
        format!("{} handle, not {} handle", other.name, kind.name)
    } else if value == 0 {
        "NULL".to_string()
    } else {
        format!(
            "not a handle rtm issued ({} handle carries rtm's tag in its top bits; a small number is a raw value, such as a descriptor or an index)",
            kind.name
        )
    };
    RtmError::InvalidHandle(format!("{h:p} is {why}"))
}

fn lookup<T: Clone>(map: &DashMap<usize, T>, kind: Kind, h: HANDLE) -> Result<T, RtmError> {
    map.get(&(h as usize))
        .map(|c| c.clone())
        .ok_or_else(|| invalid(kind, h))
}

fn take<T>(map: &DashMap<usize, T>, kind: Kind, h: HANDLE) -> Result<T, RtmError> {
    map.remove(&(h as usize))
        .map(|(_, c)| c)
        .ok_or_else(|| invalid(kind, h))
}

/// Issues a handle for a newly registered client.
pub(crate) fn add_client(c: Client) -> HANDLE {
    let h = next_handle(CLIENT);
    globals().clients.insert(h, c);
    h as HANDLE
}

/// The client `h` names.
pub(crate) fn client(h: HANDLE) -> Result<Client, RtmError> {
    lookup(&globals().clients, CLIENT, h)
}

/// Retires `h`: from now on it names nothing. Returns the client it named.
pub(crate) fn remove_client(h: HANDLE) -> Result<Client, RtmError> {
    take(&globals().clients, CLIENT, h)
}

/// Issues a handle for a new enumeration.
pub(crate) fn add_cursor(c: Cursor) -> HANDLE {
    let h = next_handle(CURSOR);
    globals().cursors.insert(h, Arc::new(Mutex::new(c)));
    h as HANDLE
}

/// The enumeration `h` names.
pub(crate) fn cursor(h: HANDLE) -> Result<Arc<Mutex<Cursor>>, RtmError> {
    lookup(&globals().cursors, CURSOR, h)
}

/// Retires the enumeration `h` names.
pub(crate) fn remove_cursor(h: HANDLE) -> Result<Arc<Mutex<Cursor>>, RtmError> {
    take(&globals().cursors, CURSOR, h)
}
