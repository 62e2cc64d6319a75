//! Runs a whole script: one result per command, in order; errors to the
//! error stream as `error line <n>: <what>`.

use std::io::{self, BufRead, Write};

use super::grammar::parse_line;
use super::json::Json;
use super::session::Session;

/// How a script runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// One JSON object per result (and per error) on the output stream.
    pub json: bool,
    /// Stop at the first failed command.
    pub stop_on_error: bool,
}

/// What a script did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Commands run (comments and blank lines are not commands).
    pub commands: usize,
    /// Commands that failed.
    pub failed: usize,
}

/// Reads `input` line by line and runs each command in `session`, writing
/// results to `out` and errors to `err`. An `Err` is an I/O error of the
/// streams (a line that is not UTF-8 is a failed command, not an I/O error).
pub fn run_script(
    session: &mut Session,
    mut input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
    options: RunOptions,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        let result = match std::str::from_utf8(&buf) {
            Ok(line) => match parse_line(line) {
                Ok(None) => continue,
                Ok(Some(cmd)) => session.execute(&cmd).map(|r| (cmd.name(), r)),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!(
                "the line is not UTF-8 (invalid byte at column {})",
                e.valid_up_to() + 1
            )),
        };
        summary.commands += 1;
        match result {
            Ok((name, reply)) => {
                if options.json {
                    let mut fields = vec![("line", Json::Num(n)), ("command", name.into())];
                    fields.extend(reply.json);
                    writeln!(out, "{}", Json::Obj(fields))?;
                } else {
                    for l in &reply.text {
                        writeln!(out, "{l}")?;
                    }
                }
            }
            Err(what) => {
                summary.failed += 1;
                writeln!(err, "error line {n}: {what}")?;
                if options.json {
                    let fields = vec![("line", Json::Num(n)), ("error", what.into())];
                    writeln!(out, "{}", Json::Obj(fields))?;
                }
                if options.stop_on_error {
                    break;
                }
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
