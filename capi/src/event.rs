//! The change event on POSIX: an eventfd that mirrors a client's queue.
//!
//! Windows hands RtmRegisterClient an event object, which the RTM sets
//! when the client's queue becomes non-empty and resets when a dequeue
//! empties it (a manual-reset event; spec 3.4). The POSIX equivalent here
//! is a Linux eventfd, passed as `RTM_EVENT_FD(fd)`: the fd under a tag in
//! the handle's top bits (`RTM_EVENT_TAG`, "rtmf" above a 64-bit handle's
//! low 32 bits), so that the natural porting slip, the bare fd, is refused
//! instead of naming the descriptor below it (and fd 0 is not NULL). rtm
//! keeps its own duplicate of the descriptor, so the caller may close its
//! copy at any time, and closes the duplicate when the client deregisters. A descriptor that is one of rtm's own duplicates
//! (another client's event, as rtm holds it) is refused too: the caller
//! does not own it.
//!
//! The eventfd is *readable* exactly while messages are pending: rtm
//! writes 1 on the queue's empty -> non-empty edge and reads the counter
//! back to 0 when the queue empties, so `poll`/`epoll`/`select` on it is
//! the Windows `WaitForSingleObject` loop: wait until readable, then
//! dequeue until the result is not `ERROR_MORE_MESSAGES`. The caller
//! should not read the eventfd itself (it would reset the event early);
//! it must be non-blocking (`EFD_NONBLOCK`), since rtm's reset read runs
//! on a writer's thread and must never block.
//!
//! **Nothing the client does with its descriptor blocks rtm.** rtm's
//! duplicate shares the open file description with the client's copy, so
//! a client can clear `O_NONBLOCK` after registering. rtm therefore never
//! relies on the description's flags: it reads with `RWF_NOWAIT`
//! (`preadv2`, which eventfd honours since Linux 5.12: an empty counter
//! answers `EAGAIN` whatever the flags), or, on an older kernel, only after
//! `poll` with timeout 0 said the counter is non-zero; it writes only after
//! `poll` said the write cannot block (a write blocks only when the
//! counter is at its maximum, which only a client's own write of nearly
//! 2^64 can bring about).

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use rtm::{Notifier, RtmError};

use crate::types::HANDLE;

/// The tag `RTM_EVENT_FD(fd)` puts above the descriptor: "rtmf" in the top
/// 32 bits (on 32-bit targets, the top two bits), with the fd below.
#[cfg(target_pointer_width = "64")]
pub(crate) const EVENT_TAG: usize = 0x7274_6d66 << 32;
/// The tag `RTM_EVENT_FD(fd)` puts above the descriptor.
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const EVENT_TAG: usize = 0b11 << 30;
/// The bits of an event handle that hold the tag.
#[cfg(target_pointer_width = "64")]
const EVENT_TAG_MASK: usize = 0xffff_ffff << 32;
#[cfg(not(target_pointer_width = "64"))]
const EVENT_TAG_MASK: usize = 0b11 << 30;

/// The descriptors rtm holds as clients' events (its duplicates): never a
/// descriptor a caller may name as its own.
static HELD: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

fn held() -> std::sync::MutexGuard<'static, BTreeSet<RawFd>> {
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

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
        let value = handle as usize;
        if value & EVENT_TAG_MASK != EVENT_TAG {
            return Err(invalid(format!(
                "ChangeEvent {handle:p} is not RTM_EVENT_FD(fd) (pass RTM_EVENT_FD(fd), not the descriptor itself)"
            )));
        }
        let fd = i32::try_from(value & !EVENT_TAG_MASK).map_err(|_| {
            invalid(format!(
                "ChangeEvent {handle:p} is not RTM_EVENT_FD(fd) of a file descriptor"
            ))
        })?;
        if held().contains(&fd) {
            return Err(invalid(format!(
                "ChangeEvent fd {fd} is rtm's own copy of another client's event, not a descriptor of the caller's"
            )));
        }
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
        held().insert(dup);
        Ok(EventFd { fd })
    }

    /// Whether `poll` finds `events` ready now (timeout 0: never waits).
    fn ready(&self, events: libc::c_short) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one pollfd, alive across the call; timeout 0.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & events != 0
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // Before the descriptor closes (the field drops after this), so a
        // number the kernel hands out again is never taken for rtm's.
        held().remove(&self.fd.as_raw_fd());
    }
}

impl Notifier for EventFd {
    fn set(&self) {
        // Only when the write cannot block (see the module docs); a counter
        // that full is signalled already.
        if !self.ready(libc::POLLOUT) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn reset(&self) {
        let mut value: u64 = 0;
        let iov = libc::iovec {
            iov_base: (&mut value as *mut u64).cast(),
            iov_len: 8,
        };
        // SAFETY: one iovec of 8 bytes into `value`, alive across the call;
        // offset -1 reads at the current position (an eventfd has none).
        // RWF_NOWAIT: an unsignalled eventfd answers EAGAIN, the reset
        // state already, whatever the description's O_NONBLOCK.
        let rc = unsafe { libc::preadv2(self.fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
        let unsupported = rc < 0
            && matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS)
            );
        if unsupported && self.ready(libc::POLLIN) {
            // SAFETY: reads at most 8 bytes into `value`, alive across the
            // call; poll said the counter is non-zero, so it cannot block
            // (rtm is its only reader).
            let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        }
    }
}
