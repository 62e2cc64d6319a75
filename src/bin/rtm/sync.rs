//! `rtm sync`: table files into rtm while a kernel routing table follows
//! over rtnetlink, with the rates the kernel took them at.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rtm::batch::Json;
use rtm::files::Format;
use rtm::netlink::{Interfaces, KernelSync, SyncConfig, SyncStats};
use rtm::{Ipv4, Ipv6};

use crate::load::{Loader, load_files, parse_format};

/// Options of `rtm sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Table files, loaded in order (as `rtm load`) while the kernel table
    /// follows.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The kernel routing table to program (254 is `main`).
    #[arg(long)]
    table: u32,
    /// The device every route goes out of (table files carry no
    /// interfaces); its gateways are taken as on-link.
    #[arg(long)]
    dev: String,
    /// The route protocol number that marks rtm's routes.
    #[arg(long, default_value_t = 201)]
    protocol: u8,
    /// The kernel metric of rtm's routes.
    #[arg(long, default_value_t = 20)]
    metric: u32,
    /// Kernel messages per batch.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// After the load, deregister the loading client and wait for the
    /// kernel to follow (the table is left without rtm's routes); without
    /// it the routes stay in the kernel when the command exits.
    #[arg(long)]
    withdraw: bool,
    /// The files' format (default: detected per file).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// How long the kernel may take to follow before the command gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn ifindex(dev: &str) -> Result<u32, String> {
    let name = std::ffi::CString::new(dev).map_err(|_| format!("device name {dev:?} has a NUL"))?;
    // SAFETY: a NUL-terminated name that lives across the call, which
    // only reads it.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(format!("--dev {dev}: no such network device")),
        i => Ok(i),
    }
}

fn waited(sync: &KernelSync, what: &str) -> Result<f64, String> {
    let t = Instant::now();
    if sync.wait_synced(PATIENCE) {
        Ok(t.elapsed().as_secs_f64())
    } else {
        Err(format!(
            "the kernel did not follow {what} within {} s: {:?}",
            PATIENCE.as_secs(),
            sync.stats()
        ))
    }
}

fn ms(secs: f64) -> Json {
    ((secs * 1e3).round() as u64).into()
}

fn stats_json(s: &SyncStats) -> Json {
    Json::Obj(vec![
        ("created", s.created.into()),
        ("replaced", s.replaced.into()),
        ("deleted", s.deleted.into()),
        ("conflicts", s.conflicts.into()),
        ("refused", s.refused.into()),
        ("unreadable", s.unreadable.into()),
        ("batches", s.batches.into()),
        ("resyncs", s.resyncs.into()),
        ("enobufs", s.enobufs.into()),
        ("foreign", s.foreign.into()),
        ("dumped", s.dumped.into()),
        ("stale", s.stale.into()),
        ("kernel_ops_per_sec", (s.ops_per_sec() as u64).into()),
    ])
}

pub fn run(args: &SyncArgs) -> Result<(), String> {
    let config = SyncConfig {
        protocol: args.protocol,
        metric: args.metric,
        batch: args.batch,
        interfaces: Interfaces::Device(ifindex(&args.dev)?),
        ..SyncConfig::new(args.table)
    };
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let sync = KernelSync::start(&loader.rtm, config).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let reports = load_files(&loader, &args.files, args.format)?;
    let load_secs = t.elapsed().as_secs_f64();
    // The files are the whole RIB: rtm's routes left in the kernel by an
    // earlier run that they no longer hold go now.
    sync.converged();
    let tail_secs = waited(&sync, "the load")?;
    let loaded = sync.stats();
    let routes = loader.rtm.network_count::<Ipv4>() + loader.rtm.network_count::<Ipv6>();
    let withdraw = if args.withdraw {
        let t = Instant::now();
        loader
            .rtm
            .deregister(&loader.v4)
            .map_err(|e| e.to_string())?;
        loader
            .rtm
            .deregister(&loader.v6)
            .map_err(|e| e.to_string())?;
        let deregister_secs = t.elapsed().as_secs_f64();
        Some((deregister_secs, waited(&sync, "the deregistration")?))
    } else {
        None
    };
    let stats = sync.stop().map_err(|e| e.to_string())?;
    if stats.conflicts > 0 {
        eprintln!(
            "rtm sync: {} routes not written, another protocol's route holding their key; the last: {}",
            stats.conflicts,
            stats.last_conflict.as_deref().unwrap_or("?")
        );
    }
    if stats.unreadable > 0 {
        eprintln!(
            "rtm sync: {} route messages from the kernel did not read and were skipped; the last: {}",
            stats.unreadable,
            stats.last_unreadable.as_deref().unwrap_or("?")
        );
    }
    if stats.refused > 0 {
        eprintln!(
            "rtm sync: the kernel refused {} operations; the last: {}",
            stats.refused,
            stats.last_refusal.as_deref().unwrap_or("?")
        );
    }
    let programmed_per_sec = loaded.written() as f64 / (load_secs + tail_secs).max(1e-9);
    if args.json {
        let mut fields = vec![
            ("files", Json::Arr(reports)),
            ("table", args.table.into()),
            ("routes", (routes as u64).into()),
            ("load_ms", ms(load_secs)),
            ("kernel_tail_ms", ms(tail_secs)),
            (
                "routes_per_sec_into_kernel",
                (programmed_per_sec as u64).into(),
            ),
            ("after_load", stats_json(&loaded)),
            ("stats", stats_json(&stats)),
        ];
        if let Some((d, k)) = withdraw {
            fields.push(("deregister_ms", ms(d)));
            fields.push(("kernel_after_deregister_ms", ms(k)));
        }
        println!("{}", Json::Obj(fields));
        return Ok(());
    }
    println!(
        "loaded {routes} networks in {load_secs:.2} s; kernel table {} matched {tail_secs:.2} s after the load ended",
        args.table
    );
    println!(
        "into the kernel: {} routes written ({} created, {} replaced), {} deleted, in {} batches, {programmed_per_sec:.0} routes/s end to end, {:.0} ops/s of kernel time; {} resyncs, {} ENOBUFS, {} foreign changes repaired",
        loaded.written(),
        loaded.created,
        loaded.replaced,
        loaded.deleted,
        loaded.batches,
        loaded.ops_per_sec(),
        loaded.resyncs,
        loaded.enobufs,
        loaded.foreign
    );
    if let Some((d, k)) = withdraw {
        println!(
            "deregistration: returned in {d:.3} s; the kernel matched {k:.3} s later ({} routes deleted)",
            stats.deleted
        );
    } else {
        println!(
            "the routes stay in table {} (proto {}); `ip route flush table {} proto {}` removes them",
            args.table, args.protocol, args.table, args.protocol
        );
    }
    Ok(())
}
