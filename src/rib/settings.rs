//! The RIB's settings: what the tables of one `Rtm` share.

use std::num::NonZeroUsize;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::priority::PriorityTable;

/// What every family's table shares: the settings an `Rtm` was built
/// with, its priorities and its clock.
pub(crate) struct Settings {
    /// Identifies the `Rtm` so handles from another one are refused.
    pub(crate) id: u64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) priorities: ArcSwap<PriorityTable>,
    /// Spec A6: routes without the valid flag are never best.
    pub(crate) exclude_invalid: bool,
    /// Writer lock stripes per family table.
    pub(crate) writer_stripes: NonZeroUsize,
    /// A small shape for the RIB's index (root bits, networks a leaf), for
    /// tests; `None`: the engine's.
    pub(crate) small_blocks: Option<(u32, usize)>,
    /// Most routes one network may hold.
    pub(crate) max_routes_per_network: usize,
}
