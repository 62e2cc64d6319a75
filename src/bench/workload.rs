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
use crate::route::{IpRouteData, ProtocolId, Route, Ttl};
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
        let table = tables.v4;
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

    /// Registers `protocol` and adds a route to every table prefix.
    pub fn register_and_load(
        &self,
        rtm: &Rtm,
        protocol: ProtocolId,
    ) -> Result<ClientHandle<Ipv4>, String> {
        let client = rtm
            .register::<Ipv4>(protocol, RegisterOptions::default())
            .map_err(|e| e.to_string())?;
        for p in &self.table {
            rtm.add_route(&client, &route(*p, 1), Ttl::Infinite)
                .map_err(|e| e.to_string())?;
        }
        Ok(client)
    }

    /// Replays the updates as `client`: an announcement adds or refreshes
    /// the route with a new metric, a withdrawal deletes it (a withdrawal
    /// of an absent route is not an error).
    pub fn replay(&self, rtm: &Rtm, client: &ClientHandle<Ipv4>) -> Result<(), String> {
        let mut metric = 2u32;
        for (announce, p) in &self.updates {
            if *announce {
                metric = metric % 64 + 1;
                rtm.add_route(client, &route(*p, metric), Ttl::Infinite)
                    .map_err(|e| e.to_string())?;
            } else {
                match rtm.delete_route(client, &route(*p, 0)) {
                    Ok(_) | Err(RtmError::NoSuchRoute(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(())
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
