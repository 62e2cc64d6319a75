//! `rtm load FILE…` and `rtm lookup --table FILE ADDR…`: real table files
//! into a table, with counts, a length histogram, rates and memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rtm::batch::{Json, lookup_line};
use rtm::bench::workload::update_in_batches;
use rtm::files::{self, Format, Item, TableFile};
use rtm::{
    ClientHandle, IpAddress, IpFamily, IpRouteData, Ipv4, Ipv6, ProtocolId, RegisterOptions, Route,
    RouteUpdate, Rtm, RtmError, Ttl,
};

/// Options of `rtm load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Table files, loaded in order into one table (update streams replay
    /// onto what the files before them loaded).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The files' format (default: detected per file).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// Options of `rtm lookup`.
#[derive(Args, Debug)]
pub struct LookupArgs {
    /// Table file to load first (repeatable).
    #[arg(long, required = true)]
    table: Vec<PathBuf>,
    /// The table files' format (default: detected per file).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Addresses to look up.
    #[arg(required = true)]
    addresses: Vec<String>,
}

pub(crate) fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// The protocol the files' routes are loaded as.
const LOADER: ProtocolId = ProtocolId(14); // PROTO_IP_BGP

/// Next hops for files that carry none (documentation addresses).
const NH_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NH_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The loading client of each IP family: single-route, so a withdrawal
/// names only the prefix and a re-announcement replaces the route.
pub(crate) struct Loader {
    pub(crate) rtm: Rtm,
    pub(crate) v4: ClientHandle<Ipv4>,
    pub(crate) v6: ClientHandle<Ipv6>,
}

/// What applying one family's items did.
#[derive(Default, Clone, Copy)]
struct Applied {
    announced: u64,
    withdrawn: u64,
    absent: u64,
}

impl Loader {
    pub(crate) fn new() -> Result<Loader, RtmError> {
        let rtm = Rtm::new();
        let single = RegisterOptions {
            single_route: true,
            ..RegisterOptions::default()
        };
        Ok(Loader {
            v4: rtm.register(LOADER, single)?,
            v6: rtm.register(LOADER, single)?,
            rtm,
        })
    }

    /// Applies `items` in batches: an announcement adds (metric: the AS
    /// path length where known), a withdrawal deletes; withdrawing an
    /// absent prefix is counted, not an error.
    fn apply<F: IpFamily>(
        &self,
        h: &ClientHandle<F>,
        items: &[Item<F::Addr>],
        default_nh: F::Addr,
    ) -> Result<Applied, String> {
        let mut applied = Applied::default();
        let mut failed_at = None;
        let updates = items.iter().map(|i| {
            let route = Route::new(
                i.prefix,
                i.next_hop.unwrap_or(default_nh),
                1,
                IpRouteData::with_metric(i.path_len.unwrap_or(0)),
            );
            if i.announce {
                RouteUpdate::Add {
                    route,
                    ttl: Ttl::Infinite,
                }
            } else {
                RouteUpdate::Delete(route)
            }
        });
        update_in_batches(&self.rtm, h, updates, |u, r| {
            match (u, r) {
                (RouteUpdate::Add { .. }, Ok(_)) => applied.announced += 1,
                (RouteUpdate::Delete(_), Ok(_)) => applied.withdrawn += 1,
                (_, Err(RtmError::NoSuchRoute(_))) => applied.absent += 1,
                (RouteUpdate::Add { route, .. } | RouteUpdate::Delete(route), Err(e)) => {
                    failed_at = Some(route.network);
                    return Err(e);
                }
            }
            Ok(())
        })
        .map_err(|e| match failed_at {
            Some(n) => format!("{n}: {e}"),
            None => e.to_string(),
        })?;
        Ok(applied)
    }

    fn apply_file(&self, f: &TableFile) -> Result<(Applied, Applied), String> {
        Ok((
            self.apply::<Ipv4>(&self.v4, &f.v4, NH_V4)?,
            self.apply::<Ipv6>(&self.v6, &f.v6, NH_V6)?,
        ))
    }
}

/// Prefix-length histogram of a family's loaded table.
fn histogram<F: IpFamily>(rtm: &Rtm) -> Vec<(u8, u64)> {
    let mut counts = vec![0u64; <F::Addr as IpAddress>::BITS as usize + 1];
    if let Ok(e) = rtm.enumerate(&rtm::Criteria::<F>::all()) {
        for r in e {
            counts[r.network.len() as usize] += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .map(|(len, n)| (len as u8, n))
        .collect()
}

/// Loads every file into a new table; per file: format, counts, timings.
fn load_all(paths: &[PathBuf], format: Option<Format>) -> Result<(Loader, Vec<Json>), String> {
    let loader = Loader::new().map_err(|e| e.to_string())?;
    let reports = load_files(&loader, paths, format)?;
    Ok((loader, reports))
}

/// Loads every file into `loader`'s table; per file: format, counts,
/// timings.
pub(crate) fn load_files(
    loader: &Loader,
    paths: &[PathBuf],
    format: Option<Format>,
) -> Result<Vec<Json>, String> {
    let mut reports = Vec::new();
    for path in paths {
        let t = Instant::now();
        let f = files::read(path, format)?;
        let read_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (a4, a6) = loader.apply_file(&f)?;
        let load_secs = t.elapsed().as_secs_f64();
        let ops = a4.announced + a4.withdrawn + a4.absent + a6.announced + a6.withdrawn + a6.absent;
        reports.push(Json::Obj(vec![
            ("file", path.display().to_string().into()),
            ("format", f.format.to_string().into()),
            ("ipv4_announced", a4.announced.into()),
            ("ipv6_announced", a6.announced.into()),
            ("withdrawn", (a4.withdrawn + a6.withdrawn).into()),
            ("withdrawn_absent", (a4.absent + a6.absent).into()),
            ("skipped", (f.skipped as u64).into()),
            ("read_ms", ((read_secs * 1e3) as u64).into()),
            ("load_ms", ((load_secs * 1e3) as u64).into()),
            (
                "ops_per_sec",
                ((ops as f64 / load_secs.max(1e-9)) as u64).into(),
            ),
        ]));
    }
    Ok(reports)
}

fn field(obj: &Json, key: &str) -> String {
    match obj {
        Json::Obj(fields) => fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| match v {
                Json::Str(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

pub fn load(args: &LoadArgs, live: &dyn Fn() -> usize) -> Result<(), String> {
    let before = rtm::bench::settled(live);
    let (loader, reports) = load_all(&args.files, args.format)?;
    let after = rtm::bench::settled(live);
    let rtm = &loader.rtm;
    let (n4, n6) = (rtm.network_count::<Ipv4>(), rtm.network_count::<Ipv6>());
    let (h4, h6) = (histogram::<Ipv4>(rtm), histogram::<Ipv6>(rtm));
    let bytes = after.saturating_sub(before);
    let per_route = bytes as f64 / (n4 + n6).max(1) as f64;
    if args.json {
        let hist = |h: &[(u8, u64)]| {
            Json::Arr(
                h.iter()
                    .map(|&(l, n)| Json::Arr(vec![u32::from(l).into(), n.into()]))
                    .collect(),
            )
        };
        let out = Json::Obj(vec![
            ("files", Json::Arr(reports)),
            ("ipv4_networks", (n4 as u64).into()),
            ("ipv6_networks", (n6 as u64).into()),
            ("ipv4_lengths", hist(&h4)),
            ("ipv6_lengths", hist(&h6)),
            ("live_bytes", (bytes as u64).into()),
            ("bytes_per_route", (per_route.round() as u64).into()),
        ]);
        println!("{out}");
        return Ok(());
    }
    println!(
        "{:<40} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>12}",
        "file", "format", "IPv4", "IPv6", "withdrawn", "skipped", "read ms", "load ms", "ops/s"
    );
    for r in &reports {
        // The file's name: the JSON output has the whole path.
        let path = field(r, "file");
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{:<40} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>12}",
            name,
            field(r, "format"),
            field(r, "ipv4_announced"),
            field(r, "ipv6_announced"),
            field(r, "withdrawn"),
            field(r, "skipped"),
            field(r, "read_ms"),
            field(r, "load_ms"),
            field(r, "ops_per_sec"),
        );
    }
    println!();
    println!("networks: {n4} IPv4, {n6} IPv6");
    for (name, h) in [("IPv4", &h4), ("IPv6", &h6)] {
        if h.is_empty() {
            continue;
        }
        let total: u64 = h.iter().map(|&(_, n)| n).sum();
        println!("{name} prefix lengths:");
        for &(len, n) in h {
            let bar = "#".repeat(((n * 50).div_ceil(total.max(1))) as usize);
            println!("  /{len:<3} {n:>9}  {bar}");
        }
    }
    println!(
        "memory: {:.1} MiB live heap for the table ({per_route:.0} bytes/route, RIB and FIB)",
        bytes as f64 / 1048576.0
    );
    Ok(())
}

pub fn lookup(args: &LookupArgs) -> Result<(), String> {
    // Every address is checked before the (possibly long) table load.
    let addrs: Vec<IpAddr> = args
        .addresses
        .iter()
        .map(|a| {
            a.parse()
                .map_err(|_| format!("address {a:?} is not an IPv4 or IPv6 address"))
        })
        .collect::<Result<_, _>>()?;
    let (loader, _) = load_all(&args.table, args.format)?;
    for a in addrs {
        let line = match a {
            IpAddr::V4(a) => lookup_line::<Ipv4>(&loader.rtm, a),
            IpAddr::V6(a) => lookup_line::<Ipv6>(&loader.rtm, a),
        };
        println!("{line}");
    }
    Ok(())
}
