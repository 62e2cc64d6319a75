//! Time: FILETIME-style timestamps and an injectable clock.
//!
//! Route timestamps, ages and TTL expiry all read one [`Clock`], so tests
//! drive time with a [`ManualClock`] and never sleep.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 100 ns units per second (the FILETIME tick).
pub const TICKS_PER_SECOND: u64 = 10_000_000;
/// FILETIME of 1970-01-01 00:00:00 UTC (seconds from 1601 × ticks).
const UNIX_EPOCH_FILETIME: u64 = 11_644_473_600 * TICKS_PER_SECOND;

/// A point in time as RTMv1's `RR_TimeStamp` holds it: 100 ns units since
/// 1601-01-01 UTC (a Win32 FILETIME). Zero is never a valid timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp `secs` whole seconds later (saturating).
    pub fn plus_seconds(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(TICKS_PER_SECOND)))
    }

    /// The timestamp for a Unix time in seconds.
    pub fn from_unix_seconds(secs: u64) -> Timestamp {
        Timestamp(UNIX_EPOCH_FILETIME + secs * TICKS_PER_SECOND)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unix = self.0.saturating_sub(UNIX_EPOCH_FILETIME);
        write!(
            f,
            "{}.{:07}",
            unix / TICKS_PER_SECOND,
            unix % TICKS_PER_SECOND
        )
    }
}

/// The source of "now" for a routing table.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time. Must never return zero and should not go backwards.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(UNIX_EPOCH_FILETIME + since.as_nanos() as u64 / 100)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use rtm::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance_secs(10);
/// assert_eq!(clock.now(), t0.plus_seconds(10));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    ticks: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at 2026-01-01 00:00:00 UTC.
    pub fn new() -> ManualClock {
        ManualClock::starting_at(Timestamp::from_unix_seconds(1_767_225_600))
    }

    /// A clock standing at `t` (a zero `t` is moved to one tick).
    pub fn starting_at(t: Timestamp) -> ManualClock {
        ManualClock {
            ticks: Arc::new(AtomicU64::new(t.0.max(1))),
        }
    }

    /// Moves the clock forward by `secs` seconds, stopping at the end of
    /// time (`u64::MAX` ticks): it never wraps backwards.
    pub fn advance_secs(&self, secs: u64) {
        self.advance_ticks(secs.saturating_mul(TICKS_PER_SECOND));
    }

    /// Moves the clock forward by `ticks` 100 ns units, saturating as
    /// [`advance_secs`](Self::advance_secs).
    pub fn advance_ticks(&self, ticks: u64) {
        // Relaxed: the clock value is a single independent word; callers that
        // need ordering with table operations get it from the table's locks.
        let _ = self
            .ticks
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ticks))
            });
    }
}

impl ManualClock {
    pub(crate) fn now_value(&self) -> Timestamp {
        Clock::now(self)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // Relaxed: see advance_secs.
        Timestamp(self.ticks.load(Ordering::Relaxed))
    }
}
