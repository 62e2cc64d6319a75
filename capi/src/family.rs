//! The family number a C call names, checked.

use rtm::RtmError;

use crate::types::{DWORD, RTM_PROTOCOL_FAMILY_IP, RTM_PROTOCOL_FAMILY_IPX};

/// A family with an RTMv1 C structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CFamily {
    /// `RTM_PROTOCOL_FAMILY_IP`: `RTM_IP_ROUTE`, `IP_NETWORK`.
    Ip,
    /// `RTM_PROTOCOL_FAMILY_IPX`: `RTM_IPX_ROUTE`, `IPX_NETWORK`.
    Ipx,
}

impl CFamily {
    /// The family `raw` names; anything else is `InvalidParameter`.
    pub(crate) fn from_raw(raw: DWORD) -> Result<CFamily, RtmError> {
        match raw {
            RTM_PROTOCOL_FAMILY_IP => Ok(CFamily::Ip),
            RTM_PROTOCOL_FAMILY_IPX => Ok(CFamily::Ipx),
            23 => Err(RtmError::InvalidParameter(
                "protocol family 23 (IPv6) has no RTMv1 C structure; IPv6 routes are reached through the Rust API".into(),
            )),
            other => Err(RtmError::InvalidParameter(format!(
                "protocol family {other} is not supported (RTM_PROTOCOL_FAMILY_IPX = 0, RTM_PROTOCOL_FAMILY_IP = 1)"
            ))),
        }
    }
}
