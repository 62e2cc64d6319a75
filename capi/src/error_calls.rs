//! rtm's additions for C: the thread's last error, which Win32 callers
//! read with `GetLastError`, and the protocol priority table that RTMv1
//! leaves to the administrator.

#![allow(non_snake_case)]

use std::ffi::c_char;

use rtm::{ProtocolId, RtmError};

use crate::handles::rtm;
use crate::outcome::{last_error, last_error_message, status};
use crate::types::*;

/// The code the calling thread's last rtm call left: what Win32's
/// `GetLastError` gives after an RTMv1 call. Calls that return a handle, a
/// BOOL or a count report their failures only here; every call sets it,
/// `NO_ERROR` on success.
#[unsafe(no_mangle)]
pub extern "C" fn RtmGetLastError() -> DWORD {
    last_error()
}

/// The text of the calling thread's last error ("" after a success): what
/// was wrong and where, e.g. `invalid parameter: RR_Network: network
/// 10.0.0.1 mask 255.0.0.0: host bits are set...`. `*Size` is the buffer's
/// size in bytes on input and the size the message needs (terminating NUL
/// included) on output. Returns `NO_ERROR` with the NUL-terminated message
/// in `Buffer`, `ERROR_INSUFFICIENT_BUFFER` (nothing written to `Buffer`)
/// when `Buffer` is NULL or too small, or `ERROR_INVALID_PARAMETER` when
/// `Size` is NULL. Does not change the last error.
///
/// # Safety
/// `Size` NULL or a readable and writable `DWORD`; `Buffer` NULL or `*Size`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RtmGetLastErrorMessage(Buffer: *mut c_char, Size: *mut DWORD) -> DWORD {
    if Size.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    let message = last_error_message();
    let needed = message.len() + 1;
    // SAFETY: non-NULL; the caller's promise.
    let size = unsafe { Size.read_unaligned() } as usize;
    // SAFETY: as above.
    unsafe { Size.write_unaligned(DWORD::try_from(needed).unwrap_or(DWORD::MAX)) };
    if Buffer.is_null() || size < needed {
        return ERROR_INSUFFICIENT_BUFFER;
    }
    // SAFETY: `Buffer` holds `size >= needed` writable bytes (the caller's
    // promise); the message and its NUL fit, and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), Buffer.cast::<u8>(), message.len());
        Buffer.add(message.len()).write(0);
    }
    NO_ERROR
}

/// Sets a routing protocol's priority, the administrator's table RTMv1
/// reads for `FSD_Priority`: lower wins between protocols, before metrics.
/// Protocols not set have the default priority. Takes effect for routes
/// written afterwards (rtm's addition; RTMv1 configured it outside the
/// API). Always `NO_ERROR`.
#[unsafe(no_mangle)]
pub extern "C" fn RtmSetProtocolPriority(RoutingProtocol: DWORD, Priority: DWORD) -> DWORD {
    status(|| {
        rtm().set_priority(ProtocolId(RoutingProtocol), Priority);
        Ok::<_, RtmError>(NO_ERROR)
    })
}
