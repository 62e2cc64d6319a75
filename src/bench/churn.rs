//! `rtm bench lpm --churn`: one reader looks up while one writer replays a
//! day of BGP updates through the RIB and then registers and deregisters a
//! client holding the whole table. Reports the reader's rate as a fraction
//! of its idle rate, and its latency percentiles from sampled lookups.
//!
//! The reader also runs alone for a second before, between and after the
//! writer phases, and each writer phase is compared with the mean of the
//! idle windows on either side of it: on a shared machine the neighbours'
//! load drifts over seconds, and one idle measurement at the start would
//! credit or charge that drift to the writer.

use std::net::Ipv4Addr;
use std::path::Path;

use super::input::{self, Traffic};
use super::lpm::LpmOptions;
use super::reader::{self, ReaderProbe, ReaderStats};
use crate::client::RegisterOptions;
use crate::error::RtmError;
use crate::family::Ipv4;
use crate::prefix::Prefix;
use crate::route::{IpRouteData, ProtocolId, Route, Ttl};
use crate::rtm::Rtm;

/// The churn report.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// Table and update sources.
    pub source: String,
    /// Idle windows and writer phases, alternating, idle first and last.
    pub phases: Vec<ReaderStats>,
}

fn route(p: Prefix<Ipv4Addr>, metric: u32) -> Route<Ipv4> {
    Route::new(
        p,
        Ipv4Addr::new(192, 0, 2, 1),
        1,
        IpRouteData::with_metric(metric),
    )
}

/// Runs the churn measurement on the IPv4 table.
pub fn run(opts: &LpmOptions, updates: Option<&Path>) -> Result<ChurnReport, String> {
    let tables = match &opts.table {
        Some(p) => input::read_prefix_file(p)?,
        None => input::default_tables(opts.seed),
    };
    let table = tables.v4;
    if table.is_empty() {
        return Err("the table has no IPv4 prefixes".into());
    }
    let (updates, upd_source) = input::updates_or_default(updates, &table, opts.seed)?;
    let err = |e: RtmError| e.to_string();

    let rtm = Rtm::new();
    let a_proto = ProtocolId(1);
    let b_proto = ProtocolId(2);
    rtm.set_priority(a_proto, 20);
    rtm.set_priority(b_proto, 10); // B wins: its load and removal move every best route
    let a = rtm
        .register::<Ipv4>(a_proto, RegisterOptions::default())
        .map_err(err)?;
    for p in &table {
        rtm.add_route(&a, &route(*p, 1), Ttl::Infinite)
            .map_err(err)?;
    }

    let traffic = input::traffic_v4(&table, Traffic::Ann, 1 << 22, opts.seed);
    let mut probe = ReaderProbe::spawn(&rtm, traffic, 7);
    probe.idle(1000);

    let mut metric = 2u32;
    for (announce, p) in &updates {
        if *announce {
            metric = metric % 64 + 1;
            rtm.add_route(&a, &route(*p, metric), Ttl::Infinite)
                .map_err(err)?;
        } else {
            match rtm.delete_route(&a, &route(*p, 0)) {
                Ok(_) | Err(RtmError::NoSuchRoute(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    probe.end_phase("replay updates", updates.len());
    probe.idle(1000);

    let b = rtm
        .register::<Ipv4>(b_proto, RegisterOptions::default())
        .map_err(err)?;
    for p in &table {
        rtm.add_route(&b, &route(*p, 1), Ttl::Infinite)
            .map_err(err)?;
    }
    probe.end_phase("register + load B", table.len());
    probe.idle(1000);

    let removed = rtm.deregister(&b).map_err(err)?;
    probe.end_phase("deregister B", removed);
    probe.idle(1000);
    let phases = probe.finish()?;
    Ok(ChurnReport {
        source: format!(
            "{} ({} IPv4 prefixes); {upd_source} ({} updates)",
            tables.source,
            table.len(),
            updates.len()
        ),
        phases,
    })
}

impl ChurnReport {
    /// The reader's rate during the writer phases as a fraction of idle.
    pub fn worst_fraction(&self) -> f64 {
        reader::worst_fraction(&self.phases)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "churn: {}\none reader thread (rtm FIB, pinned reader), one writer thread (RIB calls)\n\n",
            self.source
        );
        s += &reader::phase_table(&self.phases);
        s += &format!(
            "\nworst reader rate during churn: {:.2} of idle (each writer phase against the idle windows around it)\n",
            self.worst_fraction()
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"source\":{:?},\"worst_fraction_of_idle\":{:.3},\"phases\":{}}}",
            self.source,
            self.worst_fraction(),
            reader::phase_json(&self.phases)
        )
    }
}
