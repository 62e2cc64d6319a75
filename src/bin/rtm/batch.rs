//! `rtm batch [FILE]`: the batch language (see `rtm::batch` and the README).

use std::io::{self, BufReader};
use std::path::PathBuf;

use clap::Args;
use rtm::batch::{RunOptions, Session, run_script};

/// Options of `rtm batch`.
#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The script (default: standard input).
    file: Option<PathBuf>,
    /// One JSON object per result (errors too) on standard output.
    #[arg(long)]
    json: bool,
    /// Stop at the first failed command.
    #[arg(long)]
    stop_on_error: bool,
    /// Most routes one network may hold (RTMv1's limit, 65,534, by
    /// default): a smaller one reaches ERROR_NO_SYSTEM_RESOURCES quickly.
    #[arg(long, default_value_t = u16::MAX - 1)]
    max_routes_per_network: u16,
}

/// Runs the script; `Ok(false)` if any command failed.
pub fn run(args: &BatchArgs) -> Result<bool, String> {
    let options = RunOptions {
        json: args.json,
        stop_on_error: args.stop_on_error,
    };
    let mut session = Session::with_max_routes_per_network(args.max_routes_per_network);
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let (mut out, mut err) = (io::BufWriter::new(stdout.lock()), stderr.lock());
    let summary = match &args.file {
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            run_script(&mut session, BufReader::new(f), &mut out, &mut err, options)
        }
        None => run_script(
            &mut session,
            io::stdin().lock(),
            &mut out,
            &mut err,
            options,
        ),
    }
    .map_err(|e| format!("batch: {e}"))?;
    Ok(summary.failed == 0)
}
