//! The writer's side of the churn benchmarks, shared by `rtm bench lpm
//! --churn` and `rtm bench churn`: the IPv4 table and update stream they
//! run on, and the RIB calls that load a client and replay the updates.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::input;
use crate::client::{ClientHandle, RegisterOptions};
use crate::error::RtmError;
use crate::family::Ipv4;
use crate::prefix::Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, RouteUpdate, Ttl};
use crate::rtm::Rtm;

/// What the churn benchmarks run on.
pub struct Workload {
    /// The IPv4 table.
    pub table: Vec<Prefix<Ipv4Addr>>,
    /// The update stream.
    pub updates: Vec<input::Update>,
    /// Where both came from, with counts.
    pub source: String,
}

impl Workload {
    /// The IPv4 prefixes of `table` (default: the RIS table or the
    /// synthetic one) and the update stream `updates` (default: the RIS day
    /// or synthetic churn), both from `seed` where synthetic.
    pub fn load(
        table: Option<&PathBuf>,
        updates: Option<&Path>,
        seed: u64,
    ) -> Result<Workload, String> {
        let tables = match table {
            Some(p) => input::read_prefix_file(p)?,
            None => input::default_tables(seed),
        };
        let mut table = tables.v4;
        // Loaded in prefix order, as a RIB dump (the RIS table is one) or a
        // protocol's walk of its own table delivers it; the synthetic table
        // comes out of its generator in random order.
        table.sort_unstable();
        table.dedup();
        if table.is_empty() {
            return Err("the table has no IPv4 prefixes".into());
        }
        let (updates, upd_source) = input::updates_or_default(updates, &table, seed)?;
        let source = format!(
            "{} ({} IPv4 prefixes); {upd_source} ({} updates)",
            tables.source,
            table.len(),
            updates.len()
        );
        Ok(Workload {
            table,
            updates,
            source,
        })
    }

    /// Registers `protocol` and adds a route to every table prefix, in
    /// batches of [`BATCH`] through [`Rtm::update_routes`] (a protocol's
    /// initial load).
    pub fn register_and_load(
        &self,
        rtm: &Rtm,
        protocol: ProtocolId,
    ) -> Result<ClientHandle<Ipv4>, String> {
        let client = rtm
            .register::<Ipv4>(protocol, RegisterOptions::default())
            .map_err(|e| e.to_string())?;
        let mut batch = Vec::with_capacity(BATCH);
        for chunk in self.table.chunks(BATCH) {
            batch.clear();
            batch.extend(chunk.iter().map(|p| RouteUpdate::Add {
                route: route(*p, 1),
                ttl: Ttl::Infinite,
            }));
            apply(rtm, &client, &batch)?;
        }
        Ok(client)
    }

    /// Replays the updates as `client`, in batches of [`BATCH`] through
    /// [`Rtm::update_routes`]: an announcement adds or refreshes the route
    /// with a new metric, a withdrawal deletes it (a withdrawal of an
    /// absent route is not an error).
    pub fn replay(&self, rtm: &Rtm, client: &ClientHandle<Ipv4>) -> Result<(), String> {
        let mut metric = 2u32;
        let mut batch = Vec::with_capacity(BATCH);
        for chunk in self.updates.chunks(BATCH) {
            batch.clear();
            batch.extend(chunk.iter().map(|(announce, p)| {
                if *announce {
                    metric = metric % 64 + 1;
                    RouteUpdate::Add {
                        route: route(*p, metric),
                        ttl: Ttl::Infinite,
                    }
                } else {
                    RouteUpdate::Delete(route(*p, 0))
                }
            }));
            apply(rtm, client, &batch)?;
        }
        Ok(())
    }
}

/// Updates per [`Rtm::update_routes`] call: about what a BGP speaker
/// applies per burst of UPDATE messages.
pub const BATCH: usize = 1024;

/// Applies `batch`; any failure but the delete of an absent route is an error.
fn apply(
    rtm: &Rtm,
    client: &ClientHandle<Ipv4>,
    batch: &[RouteUpdate<Ipv4>],
) -> Result<(), String> {
    let mut failed = None;
    rtm.update_routes(client, batch, |r| match r {
        Ok(_) | Err(RtmError::NoSuchRoute(_)) => {}
        Err(e) => {
            failed.get_or_insert(e);
        }
    })
    .map_err(|e| e.to_string())?;
    failed.map_or(Ok(()), |e| Err(e.to_string()))
}

/// The route every benchmark client announces for `p`.
fn route(p: Prefix<Ipv4Addr>, metric: u32) -> Route<Ipv4> {
    Route::new(
        p,
        Ipv4Addr::new(192, 0, 2, 1),
        1,
        IpRouteData::with_metric(metric),
    )
}
