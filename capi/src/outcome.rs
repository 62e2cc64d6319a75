//! How a call's outcome reaches C: the thread's last error (code and
//! message) and a return value, with no Rust panic ever unwinding across
//! the boundary.
//!
//! Every exported call runs its body through [`status`] or [`value`]. They
//! record the outcome as this thread's last error (`NO_ERROR` on success,
//! the error's Win32 code and its message otherwise), which
//! `RtmGetLastError` and `RtmGetLastErrorMessage` read, as Win32's
//! `GetLastError` would. A panic is caught, reported as
//! `ERROR_INTERNAL_ERROR` with the panic's message, and the call returns
//! its failure value.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rtm::RtmError;

use crate::types::{DWORD, ERROR_INTERNAL_ERROR, NO_ERROR};

thread_local! {
    static LAST_ERROR: RefCell<(DWORD, String)> = const { RefCell::new((NO_ERROR, String::new())) };
}

/// Records this thread's last error.
pub(crate) fn set_last_error(code: DWORD, message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = (code, message));
}

/// This thread's last error code.
pub(crate) fn last_error() -> DWORD {
    LAST_ERROR.with(|e| e.borrow().0)
}

/// This thread's last error message ("" after a success).
pub(crate) fn last_error_message() -> String {
    LAST_ERROR.with(|e| e.borrow().1.clone())
}

fn record(e: &RtmError) -> DWORD {
    let code = e.code();
    set_last_error(code, e.to_string());
    code
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("internal error in rtm (a bug; please report it): {what}")
}

/// Runs a call whose C return value is its status code: `Ok(code)` is a
/// success code (`NO_ERROR`, or `ERROR_MORE_MESSAGES` from a dequeue),
/// `Err(e)` returns `e`'s code.
pub(crate) fn status(f: impl FnOnce() -> Result<DWORD, RtmError>) -> DWORD {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => {
            set_last_error(code, String::new());
            code
        }
        Ok(Err(e)) => record(&e),
        Err(payload) => {
            set_last_error(ERROR_INTERNAL_ERROR, panic_text(&*payload));
            ERROR_INTERNAL_ERROR
        }
    }
}

/// Runs a call that returns a value (a handle, a count, a BOOL) and
/// reports its errors through the last error only: `failed` is what C gets
/// back when the call fails.
pub(crate) fn value<R>(failed: R, f: impl FnOnce() -> Result<R, RtmError>) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            set_last_error(NO_ERROR, String::new());
            v
        }
        Ok(Err(e)) => {
            record(&e);
            failed
        }
        Err(payload) => {
            set_last_error(ERROR_INTERNAL_ERROR, panic_text(&*payload));
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches a panic that escapes the guard (it would unwind into C,
    /// which is undefined behaviour) or one reported as success.
    #[test]
    fn a_panic_is_an_internal_error_with_its_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = status(|| panic!("planted"));
        let v = value(7u32, || -> Result<u32, RtmError> { panic!("planted too") });
        std::panic::set_hook(prev);
        assert_eq!(code, ERROR_INTERNAL_ERROR);
        assert_eq!(v, 7);
        assert_eq!(last_error(), ERROR_INTERNAL_ERROR);
        assert!(last_error_message().contains("planted too"));
    }

    /// Catches a success that leaves an earlier failure's code behind
    /// (RtmGetNetworkCount's 0 would then read as an error).
    #[test]
    fn success_clears_the_last_error() {
        value(0u32, || Err(RtmError::NoMoreRoutes));
        assert_eq!(last_error(), 259);
        assert_eq!(value(0u32, || Ok(5)), 5);
        assert_eq!(last_error(), NO_ERROR);
        assert_eq!(last_error_message(), "");
    }
}
