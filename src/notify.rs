//! Per-client change queues and their notifier.
//!
//! Each client registered with notifications owns one FIFO of
//! [`Change`]s. The notifier is RTMv1's manual-reset event made exact: it is
//! signalled exactly while the queue is non-empty, so "wait, then dequeue
//! until the status is not `MoreMessages`" never misses a message and never
//! spins (spec 3.4 and A21).

use std::collections::VecDeque;
use std::time::Duration;

use crate::change::Change;
use crate::error::{ERROR_MORE_MESSAGES, NO_ERROR, RtmError};
use crate::family::Family;
use crate::sync::{Condvar, Mutex, lock};

/// Whether more messages remain after a successful dequeue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DequeueStatus {
    /// That was the last message; the notifier is now reset (`NO_ERROR`).
    Last,
    /// More messages remain; the notifier stays signalled
    /// (`ERROR_MORE_MESSAGES`, 234).
    MoreMessages,
}

impl DequeueStatus {
    /// The Win32 code RTMv1 returns with this status: 0 or 234.
    pub fn code(self) -> u32 {
        match self {
            DequeueStatus::Last => NO_ERROR,
            DequeueStatus::MoreMessages => ERROR_MORE_MESSAGES,
        }
    }
}

/// One dequeued change message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued<F: Family> {
    /// The change, never [`Change::NoChange`].
    pub change: Change<F>,
    /// Whether more remain.
    pub status: DequeueStatus,
}

struct QueueState<F: Family> {
    messages: VecDeque<Change<F>>,
    closed: bool,
}

/// A client's FIFO of change messages with its notifier.
pub struct ChangeQueue<F: Family> {
    state: Mutex<QueueState<F>>,
    signal: Condvar,
}

impl<F: Family> Default for ChangeQueue<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Family> ChangeQueue<F> {
    /// An empty, open queue.
    pub fn new() -> Self {
        ChangeQueue {
            state: Mutex::new(QueueState {
                messages: VecDeque::new(),
                closed: false,
            }),
            signal: Condvar::new(),
        }
    }

    /// Appends a message and signals the notifier. Ignored once closed.
    pub fn push(&self, change: Change<F>) {
        let mut s = lock(&self.state);
        if s.closed {
            return;
        }
        s.messages.push_back(change);
        if s.messages.len() == 1 {
            // Only the empty -> non-empty edge can have waiters.
            self.signal.notify_all();
        }
    }

    /// Removes the oldest message. `NoMessages` when empty; `InvalidHandle`
    /// once closed (the client deregistered).
    pub fn pop(&self) -> Result<Dequeued<F>, RtmError> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(RtmError::InvalidHandle(
                "the client was deregistered; its change queue is gone".into(),
            ));
        }
        let change = s.messages.pop_front().ok_or(RtmError::NoMessages)?;
        let status = if s.messages.is_empty() {
            DequeueStatus::Last
        } else {
            DequeueStatus::MoreMessages
        };
        Ok(Dequeued { change, status })
    }

    /// Whether the notifier is signalled (the queue is non-empty).
    pub fn is_signalled(&self) -> bool {
        !lock(&self.state).messages.is_empty()
    }

    /// Number of pending messages.
    pub fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// Whether no message is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until a message is pending (true), the timeout passes (false)
    /// or the queue is closed (false).
    pub fn wait(&self, timeout: Duration) -> bool {
        let s = lock(&self.state);
        if !s.messages.is_empty() {
            return true;
        }
        if s.closed {
            return false;
        }
        #[cfg(not(loom))]
        let s = self
            .signal
            .wait_timeout_while(s, timeout, |s| s.messages.is_empty() && !s.closed)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        #[cfg(loom)]
        let s = {
            // loom models have no time: a timeout is a wait that may end
            // without a message, which callers already handle.
            let _ = timeout;
            let mut s = s;
            while s.messages.is_empty() && !s.closed {
                s = self.signal.wait(s).unwrap();
            }
            s
        };
        !s.messages.is_empty()
    }

    /// Discards every message and wakes all waiters; later pushes are ignored.
    pub fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.messages.clear();
        self.signal.notify_all();
    }
}
