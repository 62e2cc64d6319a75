//! The change event on POSIX: an eventfd that mirrors a client's queue.
//!
//! Windows hands RtmRegisterClient an event object, which the RTM sets
//! when the client's queue becomes non-empty and resets when a dequeue
//! empties it (a manual-reset event; spec 3.4). The POSIX equivalent here
//! is a Linux eventfd, passed as `RTM_EVENT_FD(fd)` (the fd plus one, so
//! that fd 0 is not NULL). rtm keeps its own duplicate of the descriptor,
//! so the caller may close its copy at any time, and closes the duplicate
//! when the client deregisters.
//!
//! The eventfd is *readable* exactly while messages are pending: rtm
//! writes 1 on the queue's empty -> non-empty edge and reads the counter
//! back to 0 when the queue empties, so `poll`/`epoll`/`select` on it is
//! the Windows `WaitForSingleObject` loop: wait until readable, then
//! dequeue until the result is not `ERROR_MORE_MESSAGES`. The caller
//! should not read the eventfd itself (it would reset the event early);
//! it must be non-blocking (`EFD_NONBLOCK`), since rtm's reset read runs
//! on a writer's thread and must never block.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rtm::{Notifier, RtmError};

use crate::types::HANDLE;

/// A client's change event.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

fn invalid(msg: String) -> RtmError {
    RtmError::InvalidParameter(msg)
}

impl EventFd {
    /// The event `RTM_EVENT_FD(fd)` names, duplicated. Anything but an open,
    /// non-blocking eventfd is `InvalidParameter`.
    pub(crate) fn adopt(handle: HANDLE) -> Result<EventFd, RtmError> {
        let fd = (handle as isize)
            .checked_sub(1)
            .and_then(|fd| i32::try_from(fd).ok())
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| {
                invalid(format!(
                    "ChangeEvent {handle:p} is not RTM_EVENT_FD(fd) of a file descriptor"
                ))
            })?;
        // SAFETY: F_GETFL reads the descriptor's flags and touches no
        // memory; an fd that is not open fails with EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(invalid(format!(
                "ChangeEvent fd {fd} is not an open file descriptor"
            )));
        }
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
        if link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(invalid(format!(
                "ChangeEvent fd {fd} is {}, not an eventfd (create it with eventfd(0, EFD_NONBLOCK))",
                link.display()
            )));
        }
        if flags & libc::O_NONBLOCK == 0 {
            return Err(invalid(format!(
                "ChangeEvent fd {fd} is a blocking eventfd; rtm resets it from writers' threads, so it must be EFD_NONBLOCK"
            )));
        }
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor for the same
        // eventfd and touches no memory.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(RtmError::NoSystemResources(format!(
                "duplicating ChangeEvent fd {fd}: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `dup` is a descriptor just created for us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        Ok(EventFd { fd })
    }
}

impl Notifier for EventFd {
    fn set(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call.
        // A full counter (EAGAIN) is already signalled, so the result is
        // not needed.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn reset(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into `value`. Non-blocking (checked
        // at adoption): an unsignalled eventfd answers EAGAIN, which is the
        // reset state already.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }
}
