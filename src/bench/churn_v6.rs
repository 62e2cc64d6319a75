//! The IPv6 steps of `rtm bench churn`: the IPv6 control plane on the
//! RIS IPv6 table and its day of updates (or the synthetic table and
//! churn), in the orders a routing daemon's writes arrive in:
//!
//! - **U1r6** register a client and load the table in a random order, in
//!   batches of 1,024 (as U1r);
//! - **U2s6** replay the day of IPv6 updates with one `add_route` /
//!   `delete_route` call per update (as U2s);
//! - **M16** live bytes per route after the load (RIB and FIB).
//!
//! The IPv6 table's /32 blocks are dense (up to 3,948 networks in the RIS
//! table), so this is where the RIB's index splits leaves.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::input;
use super::workload::update_in_batches;
use crate::error::RtmError;
use crate::family::Ipv6;
use crate::prefix::Ipv6Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, RouteUpdate, Ttl};
use crate::rtm::Rtm;
use crate::synth::SplitMix64;

/// What the IPv6 steps measured.
#[derive(Debug, Clone, Default)]
pub struct V6Figures {
    /// Where the table and updates came from, with counts.
    pub source: String,
    /// Prefixes loaded.
    pub routes: usize,
    /// Updates replayed.
    pub updates: usize,
    /// U1r6: routes per second, random order, batches.
    pub u1r_per_sec: f64,
    /// U2s6: operations per second, one call each.
    pub u2s_per_sec: f64,
    /// Live bytes per route after the load (RIB and FIB; as M1, the
    /// empty engine's fixed structures, such as the index's 512 KiB root,
    /// are in the baseline, not counted).
    pub bytes_per_route: f64,
    /// Why the steps did not run (a table with no IPv6 prefix), if so.
    pub skipped: Option<String>,
}

/// Runs the IPv6 steps on `table`'s and `updates`' IPv6 entries (default:
/// the RIS IPv6 table and day, else synthetic ones from `seed`); skipped,
/// saying why, when `table` has no IPv6 prefix.
pub fn run(
    table: Option<&PathBuf>,
    updates: Option<&Path>,
    seed: u64,
    live: &dyn Fn() -> usize,
) -> Result<V6Figures, String> {
    let tables = match table {
        Some(p) => input::read_prefix_file(p)?,
        None => input::default_tables(seed),
    };
    let mut prefixes = tables.v6;
    prefixes.sort_unstable();
    prefixes.dedup();
    if prefixes.is_empty() {
        return Ok(V6Figures {
            skipped: Some(format!("{} has no IPv6 prefix", tables.source)),
            ..V6Figures::default()
        });
    }
    let (stream, stream_source) = updates_v6(updates, &prefixes, seed)?;
    let source = format!(
        "{} ({} IPv6 prefixes); {stream_source} ({} updates)",
        tables.source,
        prefixes.len(),
        stream.len()
    );
    let mut order = prefixes.clone();
    let mut rng = SplitMix64::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }

    let rtm = Rtm::new();
    let live0 = super::settled(live);
    let t = Instant::now();
    let client = rtm
        .register::<Ipv6>(ProtocolId(1), crate::RegisterOptions::default())
        .map_err(|e| e.to_string())?;
    let adds = order.iter().map(|p| RouteUpdate::Add {
        route: route(*p, 1),
        ttl: Ttl::Infinite,
    });
    update_in_batches(&rtm, &client, adds, |_, r| r.map(drop)).map_err(|e| e.to_string())?;
    let u1r = t.elapsed().as_secs_f64();
    let live1 = super::settled(live);
    if rtm.network_count::<Ipv6>() != prefixes.len() {
        return Err(format!(
            "IPv6 load: {} networks in the table, {} prefixes loaded",
            rtm.network_count::<Ipv6>(),
            prefixes.len()
        ));
    }

    let t = Instant::now();
    let mut metric = 2u32;
    for (announce, p) in &stream {
        let outcome = if *announce {
            metric = metric % 64 + 1;
            rtm.add_route(&client, &route(*p, metric), Ttl::Infinite)
                .map(drop)
        } else {
            rtm.delete_route(&client, &route(*p, 0)).map(drop)
        };
        match outcome {
            Ok(()) | Err(RtmError::NoSuchRoute(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let u2s = t.elapsed().as_secs_f64();
    rtm.verify_consistency()
        .map_err(|e| format!("IPv6 steps: {e}"))?;
    Ok(V6Figures {
        source,
        routes: prefixes.len(),
        updates: stream.len(),
        u1r_per_sec: prefixes.len() as f64 / u1r,
        u2s_per_sec: stream.len() as f64 / u2s,
        bytes_per_route: live1.saturating_sub(live0) as f64 / prefixes.len() as f64,
        skipped: None,
    })
}

/// The IPv6 update stream from `path` (synthetic churn if it has no IPv6
/// update), else the RIS day of IPv6 updates, else synthetic churn over
/// `table` (97% announcements) from `seed`.
pub(crate) fn updates_v6(
    path: Option<&Path>,
    table: &[Ipv6Prefix],
    seed: u64,
) -> Result<(Vec<(bool, Ipv6Prefix)>, String), String> {
    let read = |p: &Path| -> Result<Vec<(bool, Ipv6Prefix)>, String> {
        let t = crate::files::read(p, Some(crate::files::Format::Updates))?;
        Ok(t.v6.iter().map(|i| (i.announce, i.prefix)).collect())
    };
    let mut note = String::new();
    if let Some(p) = path {
        let u = read(p)?;
        if !u.is_empty() {
            return Ok((u, p.display().to_string()));
        }
        note = format!(" ({} has no IPv6 update)", p.display());
    }
    if let Some(p) = input::shared_data_dir()
        .map(|d| d.join("ris-20260511-as3333-ipv6-updates.csv.gz"))
        .filter(|p| p.is_file() && path.is_none())
    {
        return Ok((read(&p)?, "RIS 2026-05-11 AS3333 IPv6 updates".to_string()));
    }
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let u = (0..1_000_000)
        .map(|_| {
            (
                rng.below(30) != 0,
                table[rng.below(table.len() as u64) as usize],
            )
        })
        .collect();
    Ok((
        u,
        format!("synthetic churn (97% announce, 3% withdraw){note}"),
    ))
}

/// The route the benchmark client announces for `p`.
fn route(p: Ipv6Prefix, metric: u32) -> Route<Ipv6> {
    Route::new(
        p,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        1,
        IpRouteData::with_metric(metric),
    )
}
