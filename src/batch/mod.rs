//! The batch language of `rtm batch`: one RTM operation per line, one
//! result per command, the way `ip -batch` scripts the kernel's tables.
//!
//! The grammar is a stable interface; the README's "Batch language"
//! section documents every command and its output. In short:
//!
//! ```text
//! priority <protocol> <value>                          -> ok
//! register <ipv4|ipv6|ipx> <protocol> [single-route] [notify] [coalesce] -> ok
//! deregister <family> <protocol>                       -> ok <n> routes removed
//! add <protocol> <network> via <nh> dev <if> metric <m> [ttl <s>]  -> added|changed|no-change
//! del <protocol> <network> via <nh> dev <if>           -> deleted|changed|no-change
//! lookup <address>         -> <address> via <nh> dev <if> proto <p> prefix <network>
//! ```
//!
//! The table runs on a test clock that only `advance <seconds>` moves, so
//! a script's output is a pure function of the script.
//!
//! ```
//! use rtm::batch::{RunOptions, Session, run_script};
//! let script = "register ipv4 ospf\n\
//!               add ospf 10.0.0.0/8 via 192.0.2.1 dev 3 metric 10\n\
//!               lookup 10.9.9.9\n\
//!               del rip 10.0.0.0/8 via 192.0.2.1 dev 3\n";
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let summary = run_script(&mut Session::new(), script.as_bytes(), &mut out, &mut err,
//!                          RunOptions::default()).unwrap();
//! assert_eq!(String::from_utf8(out).unwrap(),
//!            "ok\nadded\n10.9.9.9 via 192.0.2.1 dev 3 proto 13 prefix 10.0.0.0/8\n");
//! assert_eq!(String::from_utf8(err).unwrap(),
//!            "error line 4: protocol 8 is not registered for ipv4\n");
//! assert_eq!(summary.failed, 1);
//! ```

mod grammar;
mod json;
mod runner;
mod session;

pub use grammar::{
    AnyCriteria, AnyFamily, AnyNetwork, AnyRoute, BatchFamily, BlockOp, Command, parse_line,
};
pub use json::Json;
pub use runner::{RunOptions, Summary, run_script};
pub use session::{Reply, Session, lookup_line, route_json, route_line};
