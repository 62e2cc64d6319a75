//! The one error type, mirroring the RTMv1 result codes.

use crate::family::FamilyId;
use crate::route::ProtocolId;

/// Win32 `NO_ERROR`.
pub const NO_ERROR: u32 = 0;
/// Win32 `ERROR_MORE_DATA`, RTMv1's `ERROR_MORE_MESSAGES`: reported by
/// [`DequeueStatus::MoreMessages`](crate::DequeueStatus::MoreMessages), which is
/// a success, not an error.
pub const ERROR_MORE_MESSAGES: u32 = 234;

/// Everything that can go wrong in an RTM call.
///
/// Each variant mirrors one RTMv1 result; [`RtmError::code`] gives the Win32
/// number of the spec's table, and the `Display` text names the offending
/// value. Four variants share code 259, as in RTMv1, but stay apart here.
///
/// A call that returns an error has left the table exactly as it was.
///
/// ```
/// use rtm::{Ipv4Prefix, RtmError};
/// let err = "10.0.0.1/8".parse::<Ipv4Prefix>().unwrap_err();
/// assert_eq!(err.code(), 87);
/// assert!(err.to_string().contains("10.0.0.1/8"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmError {
    /// `ERROR_INVALID_HANDLE` (6): a stale, foreign or closed handle, or a
    /// change-queue call by a client registered without notifications.
    #[error("invalid handle: {0}")]
    InvalidHandle(String),
    /// `ERROR_NOT_ENOUGH_MEMORY` (8).
    #[error("not enough memory: {0}")]
    NotEnoughMemory(String),
    /// `ERROR_INVALID_PARAMETER` (87): the message names the bad value and
    /// the argument it came in.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// `ERROR_CLIENT_ALREADY_EXISTS` (183): the (family, protocol) pair is held
    /// by a live client.
    #[error("client already exists: {family} protocol {protocol} is registered")]
    ClientAlreadyExists {
        /// The family of the refused registration.
        family: FamilyId,
        /// The protocol already registered in that family.
        protocol: ProtocolId,
    },
    /// `ERROR_NO_MESSAGES` (259): the change queue was empty.
    #[error("no messages: the change queue is empty")]
    NoMessages,
    /// `ERROR_NO_MORE_ROUTES` (259): the enumeration is exhausted.
    #[error("no more routes: the enumeration is exhausted")]
    NoMoreRoutes,
    /// `ERROR_NO_ROUTES` (259): no route matched the criteria.
    #[error("no routes: nothing matched {0}")]
    NoRoutes(String),
    /// `ERROR_NO_SUCH_ROUTE` (259): no route has the given key.
    #[error("no such route: {0}")]
    NoSuchRoute(String),
    /// `ERROR_NO_SYSTEM_RESOURCES` (1450): a transient shortage; retry later.
    #[error("no system resources: {0}")]
    NoSystemResources(String),
}

impl RtmError {
    /// The Win32 error number RTMv1 reports for this error.
    pub fn code(&self) -> u32 {
        match self {
            RtmError::InvalidHandle(_) => 6,
            RtmError::NotEnoughMemory(_) => 8,
            RtmError::InvalidParameter(_) => 87,
            RtmError::ClientAlreadyExists { .. } => 183,
            RtmError::NoMessages
            | RtmError::NoMoreRoutes
            | RtmError::NoRoutes(_)
            | RtmError::NoSuchRoute(_) => 259,
            RtmError::NoSystemResources(_) => 1450,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        RtmError::InvalidParameter(msg.into())
    }
}

/// Shorthand for results of RTM calls.
pub type Result<T, E = RtmError> = std::result::Result<T, E>;

/// User input as an error message shows it: quoted (Rust's escapes), and
/// cut after [`QUOTED_MAX`] bytes with the input's whole length, so that a
/// message never echoes megabytes of a bad token (a 50 MB `metric` token
/// once went to stderr, and into `--json`, whole).
pub(crate) fn quoted(input: &str) -> Quoted<'_> {
    Quoted(input)
}

/// How many bytes of a token [`quoted`] shows.
pub(crate) const QUOTED_MAX: usize = 64;

/// See [`quoted`].
pub(crate) struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= QUOTED_MAX {
            return write!(f, "{:?}", self.0);
        }
        let mut cut = QUOTED_MAX;
        while !self.0.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "{:?}... ({} bytes)", &self.0[..cut], self.0.len())
    }
}
