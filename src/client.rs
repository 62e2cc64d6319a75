//! Clients: registration options, the per-client state and its handle.

use std::fmt;
use std::time::Duration;

use crate::client_index::ClientIndex;

use crate::criteria::RTM_PROTOCOL_SINGLE_ROUTE;
use crate::engine_family::Family;
use crate::error::RtmError;
use crate::notify::ChangeQueue;
use crate::route::ProtocolId;
use crate::sync::{Arc, RwLock};

/// How a client registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegisterOptions {
    /// `RTM_PROTOCOL_SINGLE_ROUTE`: at most one route per network for this
    /// protocol; an add to a network it has a route to replaces that route.
    pub single_route: bool,
    /// Keep a change queue and notifier for this client (RTMv1: a non-NULL
    /// change event). Without it, dequeue calls are `InvalidHandle`.
    pub notify: bool,
    /// With `notify`: coalesce pending messages per network (at most one
    /// per network, oldest previous and newest current best route) instead
    /// of RTMv1's FIFO of every event; see [`ChangeQueue::coalescing`](crate::ChangeQueue::coalescing). An extension
    /// of RTMv1 for clients that may fall behind a burst.
    pub coalesce: bool,
}

impl RegisterOptions {
    /// Notifications on (RTMv1's FIFO), multi-route.
    pub fn notifying() -> Self {
        RegisterOptions {
            notify: true,
            ..RegisterOptions::default()
        }
    }

    /// Notifications on, coalesced per network, multi-route.
    pub fn coalescing() -> Self {
        RegisterOptions {
            notify: true,
            coalesce: true,
            ..RegisterOptions::default()
        }
    }

    /// The options for RTMv1 registration flags; any bit but
    /// `RTM_PROTOCOL_SINGLE_ROUTE` (0x1) is `InvalidParameter`.
    pub fn from_flags(flags: u32, notify: bool) -> Result<Self, RtmError> {
        if flags & !RTM_PROTOCOL_SINGLE_ROUTE != 0 {
            return Err(RtmError::invalid(format!(
                "registration flags {flags:#x} have undefined bits (only RTM_PROTOCOL_SINGLE_ROUTE = 0x1 exists)"
            )));
        }
        Ok(RegisterOptions {
            single_route: flags & RTM_PROTOCOL_SINGLE_ROUTE != 0,
            notify,
            coalesce: false,
        })
    }
}

/// A registered client as the table sees it.
pub(crate) struct ClientState<F: Family> {
    pub(crate) rtm_id: u64,
    pub(crate) protocol: ProtocolId,
    pub(crate) single_route: bool,
    /// `true` while registered. Operations hold it shared for their whole
    /// run; deregistration takes it exclusively, so it waits for in-flight
    /// operations and no operation of the client starts after it.
    pub(crate) gate: RwLock<bool>,
    /// The networks where this client owns at least one route: the
    /// secondary index deregistration and block operations walk. Updated
    /// under the network's block lock. Shared with the client that adopts
    /// this one's routes after a graceful deregistration (its routes are
    /// the protocol's, and stay where they are).
    pub(crate) index: Arc<ClientIndex<F::Network>>,
    /// Deregistered gracefully and not yet adopted or expired: the next
    /// registration of the protocol adopts the routes. Read and written
    /// only under the clients map's lock on the protocol's entry, which
    /// orders every access, so Relaxed suffices.
    pub(crate) restarting: std::sync::atomic::AtomicBool,
    /// Deregistered (gracefully or not) and its routes still being removed
    /// or marked: a registration of the protocol waits for that to end
    /// rather than report the pair taken. Set once, under the gate's write
    /// lock, and read under the clients map's lock on the protocol's
    /// entry; the leaver's change to that entry, which takes the same
    /// lock, comes after it, so Relaxed suffices.
    pub(crate) leaving: std::sync::atomic::AtomicBool,
    pub(crate) queue: Option<ChangeQueue<F>>,
}

/// A registered client's handle (RTMv1's client HANDLE).
///
/// Cloning is cheap. A handle outlives its client: once deregistered, or
/// when used with another [`Rtm`](crate::Rtm), every call with it returns
/// `InvalidHandle`.
#[derive(Clone)]
pub struct ClientHandle<F: Family> {
    pub(crate) state: Arc<ClientState<F>>,
}

impl<F: Family> fmt::Debug for ClientHandle<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle")
            .field("family", &F::ID)
            .field("protocol", &self.state.protocol)
            .field("single_route", &self.state.single_route)
            .field("notify", &self.state.queue.is_some())
            .finish()
    }
}

impl<F: Family> ClientHandle<F> {
    /// The protocol this client registered as.
    pub fn protocol(&self) -> ProtocolId {
        self.state.protocol
    }

    /// Whether it registered in single-route mode.
    pub fn single_route(&self) -> bool {
        self.state.single_route
    }

    /// Whether it registered with notifications.
    pub fn notifies(&self) -> bool {
        self.state.queue.is_some()
    }

    pub(crate) fn queue(&self) -> Result<&ChangeQueue<F>, RtmError> {
        self.state.queue.as_ref().ok_or_else(|| {
            RtmError::InvalidHandle(format!(
                "{} protocol {} registered without notifications and has no change queue",
                F::ID,
                self.state.protocol
            ))
        })
    }

    /// Whether the client's notifier is signalled: messages are pending.
    pub fn is_signalled(&self) -> Result<bool, RtmError> {
        Ok(self.queue()?.is_signalled())
    }

    /// Attaches an outside event that mirrors this client's queue (set
    /// while messages are pending; see [`Notifier`](crate::Notifier)):
    /// RTMv1's change event, as the C API's eventfd. `InvalidHandle` for a
    /// client registered without notifications.
    pub fn set_notifier(
        &self,
        notifier: std::sync::Arc<dyn crate::Notifier>,
    ) -> Result<(), RtmError> {
        self.queue()?.set_notifier(notifier);
        Ok(())
    }

    /// Number of pending change messages.
    pub fn pending(&self) -> Result<usize, RtmError> {
        Ok(self.queue()?.len())
    }

    /// Blocks until a change message is pending (`Ok(true)`) or `timeout`
    /// passes (`Ok(false)`); returns `Ok(false)` at once if the client is
    /// deregistered meanwhile.
    pub fn wait_for_messages(&self, timeout: Duration) -> Result<bool, RtmError> {
        Ok(self.queue()?.wait(timeout))
    }
}
