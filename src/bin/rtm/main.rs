//! `rtm`: the routing table manager's command line.

mod demo;

use clap::{Parser, Subcommand};

/// rtm: a lock-free-read routing table manager (RTMv1 semantics).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Loads a synthetic full-size table, runs lookups while routes churn and
    /// a protocol deregisters, and reports rates and latencies.
    Demo(demo::DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    if let Err(e) = result {
        eprintln!("rtm: {e}");
        std::process::exit(1);
    }
}
