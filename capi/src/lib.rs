//! # rtm-capi: RTMv1's C API over rtm
//!
//! `librtm.so` / `librtm.a` export the Routing Table Manager version 1
//! calls under their own names, with the Windows SDK's `rtm.h` argument
//! lists, `DWORD` result codes, `HANDLE`s and route structures, for routers
//! written in C. The header is `include/rtm.h`, generated from this crate
//! by cbindgen (the `header_is_fresh` test fails when it is stale).
//!
//! The whole of `examples/quickstart.c`, which CI compiles with
//! `-Wall -Wextra -Werror` and runs (it exits 1 if any step does other
//! than its comment says):
//!
//! ```c
#![doc = include_str!("../examples/quickstart.c")]
//! ```
//!
//! ## What differs from Windows, and why
//! - **Calling convention**: the platform's C convention (`WINAPI` is
//!   `__stdcall` only on 32-bit Windows).
//! - **Change event**: a non-blocking Linux eventfd, passed as
//!   `RTM_EVENT_FD(fd)`, readable exactly while messages are pending (see
//!   [`event`] for the protocol).
//! - **Last error**: `RtmGetLastError()` and `RtmGetLastErrorMessage()`
//!   stand for `GetLastError()`, per thread, and every call sets it; the
//!   message says what was wrong and where.
//! - **Byte order**: addresses and network numbers are `DWORD`s holding
//!   network byte order in memory (`s_addr`'s convention; spec A1).
//! - **Families**: IP and IPX; IPv6 (23) has no RTMv1 structure and is
//!   `ERROR_INVALID_PARAMETER` here (the Rust API has it).
//! - **Additions**: `RtmSetProtocolPriority`, `RTM_INCLUDE_DISABLED_ROUTES`,
//!   and `ERROR_INTERNAL_ERROR` for a caught Rust panic (a bug; rtm never
//!   unwinds into C).
//!
//! ## Safety at the boundary
//! Handles are numbers looked up in maps, never dereferenced (see
//! [`handles`]): a stale, foreign or made-up handle is
//! `ERROR_INVALID_HANDLE`. Every required pointer is checked for NULL and
//! every input field is validated before the table is touched, so a
//! refused call changes nothing. Pointers C passes must otherwise be
//! valid for the structure the family names, as with any C API.

#![allow(non_snake_case)]

mod client_calls;
mod convert;
mod error_calls;
pub mod event;
mod family;
pub mod handles;
mod outcome;
mod read_calls;
pub mod types;

pub use client_calls::*;
pub use error_calls::*;
pub use read_calls::*;
pub use types::*;
