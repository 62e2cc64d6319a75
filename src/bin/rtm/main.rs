//! `rtm`: the routing table manager's command line.

mod batch;
mod demo;
mod load;
#[cfg(all(feature = "netlink", target_os = "linux"))]
mod sync;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rtm::bench::CountingAlloc;
use rtm::bench::input::Traffic;
use rtm::bench::lpm::{self, LpmOptions};

/// Counts live heap bytes for the memory figures of `bench` and `demo`,
/// over mimalloc (Cargo.toml says why; the README's Performance section
/// gives the figures on the system allocator too).
#[global_allocator]
static ALLOC: CountingAlloc<mimalloc::MiMalloc> = CountingAlloc::over(mimalloc::MiMalloc);

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
    /// Reads table files (prefix per line, A/W updates, net,len,asn CSV,
    /// MRT TABLE_DUMP_V2; gzip'd or not) into one table and reports
    /// counts, prefix lengths, rates and memory.
    Load(load::LoadArgs),
    /// Loads table files, then answers longest-prefix-match lookups.
    Lookup(load::LookupArgs),
    /// Runs a script of RTM operations, one per line (FILE or stdin); see
    /// the README's "Batch language". Exit status 1 if any command failed.
    Batch(batch::BatchArgs),
    /// Benchmarks, side by side with competitors.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Loads table files while a kernel routing table follows over
    /// rtnetlink (Linux, CAP_NET_ADMIN); reports routes/s into the kernel.
    #[cfg(all(feature = "netlink", target_os = "linux"))]
    Sync(sync::SyncArgs),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Longest-prefix-match lookups: rtm's FIB, a static DIR-24-8,
    /// prefix-trie and treebitmap; with --churn, a reader during updates.
    Lpm(LpmArgs),
    /// The control plane under a full table: load, replay a day of
    /// updates, load a second client, deregister the first (with FIFO and
    /// coalescing subscribers draining), memory before and after; a reader
    /// looks up throughout.
    Churn(ChurnArgs),
}

#[derive(Args, Debug)]
struct ChurnArgs {
    /// Prefix-per-line table file (gzip allowed): its IPv4 prefixes run
    /// every step, its IPv6 prefixes the IPv6 steps (skipped if it has
    /// none). Default: the RIS IPv4 and IPv6 tables in
    /// ../shared/routing-data, else the synthetic full-size tables.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Update stream (A,prefix / W,prefix; gzip allowed), IPv4 and IPv6
    /// entries for their steps. Default: the RIS days of IPv4 and IPv6
    /// updates, else synthetic churn.
    #[arg(long)]
    updates: Option<PathBuf>,
    /// Seed of the synthetic inputs and the reader's traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

fn bench_churn(args: &ChurnArgs) -> Result<(), String> {
    let opts = rtm::bench::table_churn::TableChurnOptions {
        table: args.table.clone(),
        updates: args.updates.clone(),
        seed: args.seed,
    };
    let r = rtm::bench::table_churn::run(&opts, &|| ALLOC.live())?;
    println!("{}", if args.json { r.json() } else { r.table() });
    Ok(())
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum TrafficArg {
    Ann,
    Rnd,
    Zipf,
    /// ann and rnd.
    Both,
    /// ann, rnd and zipf.
    All,
}

#[derive(Args, Debug)]
struct LpmArgs {
    /// Prefix-per-line table file (gzip allowed). Default: the RIS tables in
    /// ../shared/routing-data, else the synthetic full-size tables.
    #[arg(long)]
    table: Option<PathBuf>,
    /// ann: random address inside a random table prefix; rnd: uniform;
    /// zipf: inside a table prefix drawn by a Zipf law (exponent 1) over a
    /// shuffled table.
    #[arg(long, value_enum, default_value_t = TrafficArg::All)]
    traffic: TrafficArg,
    /// Lookups per measurement.
    #[arg(long, default_value_t = 10_000_000)]
    lookups: usize,
    /// Threads for the independent measurement.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of traffic and synthetic tables.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Measure one reader while a writer replays a day of updates and a
    /// full-table client registers and deregisters.
    #[arg(long)]
    churn: bool,
    /// Update stream for the write rows and --churn (A,prefix / W,prefix;
    /// gzip allowed). Default: the RIS days of updates, else synthetic
    /// churn.
    #[arg(long)]
    updates: Option<PathBuf>,
}

fn bench_lpm(args: &LpmArgs) -> Result<(), String> {
    let opts = LpmOptions {
        table: args.table.clone(),
        traffic: match args.traffic {
            TrafficArg::Ann => vec![Traffic::Ann],
            TrafficArg::Rnd => vec![Traffic::Rnd],
            TrafficArg::Zipf => vec![Traffic::Zipf],
            TrafficArg::Both => vec![Traffic::Ann, Traffic::Rnd],
            TrafficArg::All => vec![Traffic::Ann, Traffic::Rnd, Traffic::Zipf],
        },
        lookups: args.lookups.max(1),
        threads: args.threads.max(1),
        seed: args.seed,
        updates: args.updates.clone(),
    };
    let (json, table) = if args.churn {
        let r = rtm::bench::churn::run(&opts, args.updates.as_deref())?;
        (r.json(), r.table())
    } else {
        let r = lpm::run(&opts, &|| ALLOC.live())?;
        if !r.agree {
            // The numbers of structures that answer differently compare
            // nothing: print them, then fail.
            println!("{}", if args.json { r.json() } else { r.table() });
            return Err(format!(
                "the structures disagree ({} paths): {}",
                r.mismatches.len(),
                r.mismatches.join("; ")
            ));
        }
        (r.json(), r.table())
    };
    println!("{}", if args.json { json } else { table });
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &|| ALLOC.live()),
        Command::Load(args) => load::load(&args, &|| ALLOC.live()),
        Command::Lookup(args) => load::lookup(&args),
        Command::Batch(args) => match batch::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("rtm: {e}");
                std::process::exit(2);
            }
        },
        Command::Bench(BenchCommand::Lpm(args)) => bench_lpm(&args),
        Command::Bench(BenchCommand::Churn(args)) => bench_churn(&args),
        #[cfg(all(feature = "netlink", target_os = "linux"))]
        Command::Sync(args) => sync::run(&args),
    };
    if let Err(e) = result {
        eprintln!("rtm: {e}");
        std::process::exit(1);
    }
}
