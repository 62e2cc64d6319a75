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

use std::path::Path;

use super::input::{self, Traffic};
use super::lpm::LpmOptions;
use super::reader::{self, ReaderProbe, ReaderStats};
use super::workload::Workload;
use crate::route::ProtocolId;
use crate::rtm::Rtm;

/// The churn report.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// Table and update sources.
    pub source: String,
    /// Idle windows and writer phases, alternating, idle first and last.
    pub phases: Vec<ReaderStats>,
}

/// Runs the churn measurement on the IPv4 table.
pub fn run(opts: &LpmOptions, updates: Option<&Path>) -> Result<ChurnReport, String> {
    let work = Workload::load(opts.table.as_ref(), updates, opts.seed)?;
    let rtm = Rtm::new();
    let (pa, pb) = (ProtocolId(1), ProtocolId(2));
    rtm.set_priority(pa, 20);
    rtm.set_priority(pb, 10); // B wins: its load and removal move every best route
    let a = work.register_and_load(&rtm, pa)?;

    let traffic = input::traffic_v4(&work.table, Traffic::Ann, 1 << 22, opts.seed);
    let mut probe = ReaderProbe::spawn(&rtm, traffic, 7);
    probe.idle(1000);

    work.replay(&rtm, &a)?;
    probe.end_phase("replay updates", work.updates.len());
    probe.idle(1000);

    let b = work.register_and_load(&rtm, pb)?;
    probe.end_phase("register + load B", work.table.len());
    probe.idle(1000);

    let removed = rtm.deregister(&b).map_err(|e| e.to_string())?;
    probe.end_phase("deregister B", removed);
    probe.idle(1000);
    let phases = probe.finish()?;
    Ok(ChurnReport {
        source: work.source,
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
            "churn: {}\none reader thread (rtm FIB, registered QSBR reader), one writer thread (RIB calls)\n\n",
            self.source
        );
        s += &reader::phase_table(&self.phases);
        s += &format!(
            "\nworst reader rate during churn: {:.2} of idle (each writer phase against the idle windows around it)\ndeferred frees the reader ran: {} (writers free; readers never do)\n",
            self.worst_fraction(),
            reader::reader_frees(&self.phases)
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"source\":{:?},\"worst_fraction_of_idle\":{:.3},\"reader_frees\":{},\"phases\":{}}}",
            self.source,
            self.worst_fraction(),
            reader::reader_frees(&self.phases),
            reader::phase_json(&self.phases)
        )
    }
}
