//! Running the built `rtm` binary (feature `cli`).

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `rtm args…` with `input` on its standard input.
pub fn rtm_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rtm binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("the input is written");
    child.wait_with_output().expect("rtm finishes")
}
