//! The writer's side of the churn benchmarks, shared by `rtm bench lpm
//! --churn` and `rtm bench churn`: the IPv4 table and update stream they
//! run on, and the RIB calls that load a client and replay the updates.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::input;
use crate::change::Change;
use crate::client::{ClientHandle, RegisterOptions};
use crate::engine_family::Family;
use crate::error::RtmError;
use crate::family::Ipv4;
use crate::prefix::Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, RouteUpdate, Ttl};
use crate::rtm::Rtm;
use crate::synth::SplitMix64;

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
        let adds = self.table.iter().map(|p| RouteUpdate::Add {
            route: route(*p, 1),
            ttl: Ttl::Infinite,
        });
        update_in_batches(rtm, &client, adds, |_, r| r.map(drop)).map_err(|e| e.to_string())?;
        Ok(client)
    }

    /// Registers `protocol` and adds a route to every table prefix in a
    /// random order (from `seed`), in batches of [`BATCH`]: a BGP session's
    /// initial table arrives grouped by path attributes, not sorted by
    /// prefix, so consecutive writes land far apart in the table.
    pub fn register_and_load_shuffled(
        &self,
        rtm: &Rtm,
        protocol: ProtocolId,
        seed: u64,
    ) -> Result<ClientHandle<Ipv4>, String> {
        let client = rtm
            .register::<Ipv4>(protocol, RegisterOptions::default())
            .map_err(|e| e.to_string())?;
        let mut order = self.table.clone();
        shuffle(&mut order, seed);
        let adds = order.into_iter().map(|p| RouteUpdate::Add {
            route: route(p, 1),
            ttl: Ttl::Infinite,
        });
        update_in_batches(rtm, &client, adds, |_, r| r.map(drop)).map_err(|e| e.to_string())?;
        Ok(client)
    }

    /// Announces again, as `client`, the route of every table prefix whose
    /// index `keep` accepts, in table order and in batches of [`BATCH`]:
    /// a restarted BGP speaker's re-announcement of the table (the same
    /// routes, so each one becomes fresh with no change to report).
    /// Returns how many it announced.
    pub fn refresh(
        &self,
        rtm: &Rtm,
        client: &ClientHandle<Ipv4>,
        keep: impl Fn(usize) -> bool,
    ) -> Result<usize, String> {
        let mut n = 0;
        let adds = self
            .table
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, p)| RouteUpdate::Add {
                route: route(*p, 1),
                ttl: Ttl::Infinite,
            });
        update_in_batches(rtm, client, adds, |_, r| {
            n += 1;
            r.map(drop)
        })
        .map_err(|e| e.to_string())?;
        Ok(n)
    }

    /// Replays the updates as `client` one call per update, in arrival
    /// order: `add_route` for an announcement, `delete_route` for a
    /// withdrawal (of an absent route: not an error), as a routing daemon
    /// applies each UPDATE it parses.
    pub fn replay_one_by_one(&self, rtm: &Rtm, client: &ClientHandle<Ipv4>) -> Result<(), String> {
        let mut metric = 2u32;
        for (announce, p) in &self.updates {
            let outcome = if *announce {
                metric = metric % 64 + 1;
                rtm.add_route(client, &route(*p, metric), Ttl::Infinite)
                    .map(drop)
            } else {
                rtm.delete_route(client, &route(*p, 0)).map(drop)
            };
            match outcome {
                Ok(()) | Err(RtmError::NoSuchRoute(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Replays the updates as `client`, in batches of [`BATCH`] through
    /// [`Rtm::update_routes`]: an announcement adds or refreshes the route
    /// with a new metric, a withdrawal deletes it (a withdrawal of an
    /// absent route is not an error).
    pub fn replay(&self, rtm: &Rtm, client: &ClientHandle<Ipv4>) -> Result<(), String> {
        let mut metric = 2u32;
        let updates = self.updates.iter().map(|(announce, p)| {
            if *announce {
                metric = metric % 64 + 1;
                RouteUpdate::Add {
                    route: route(*p, metric),
                    ttl: Ttl::Infinite,
                }
            } else {
                RouteUpdate::Delete(route(*p, 0))
            }
        });
        update_in_batches(rtm, client, updates, |_, r| match r {
            Ok(_) | Err(RtmError::NoSuchRoute(_)) => Ok(()),
            Err(e) => Err(e),
        })
        .map_err(|e| e.to_string())
    }
}

/// Updates per [`Rtm::update_routes`] call: about what a BGP speaker
/// applies per burst of UPDATE messages.
pub const BATCH: usize = 1024;

/// Applies `updates` as `client` through [`Rtm::update_routes`], in
/// batches of [`BATCH`], handing `each` every update with its outcome, in
/// order. The first error `each` returns ends the run after its batch (the
/// batch has been applied); a batch the table refuses whole is an error.
pub fn update_in_batches<F: Family>(
    rtm: &Rtm,
    client: &ClientHandle<F>,
    updates: impl IntoIterator<Item = RouteUpdate<F>>,
    mut each: impl FnMut(&RouteUpdate<F>, Result<Change<F>, RtmError>) -> Result<(), RtmError>,
) -> Result<(), RtmError> {
    let mut updates = updates.into_iter().peekable();
    let mut batch = Vec::with_capacity(BATCH);
    while updates.peek().is_some() {
        batch.clear();
        batch.extend(updates.by_ref().take(BATCH));
        let mut failed = None;
        let mut k = 0;
        rtm.update_routes(client, &batch, |r| {
            if let Err(e) = each(&batch[k], r) {
                failed.get_or_insert(e);
            }
            k += 1;
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// Fisher-Yates with the crate's seeded generator: the same order for the
/// same seed on every machine.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
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
