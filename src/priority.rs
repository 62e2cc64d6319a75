//! The administrator's protocol priority table (lower wins).

use std::collections::HashMap;

use crate::route::ProtocolId;

/// Priority of a protocol absent from the table, unless configured otherwise.
pub const DEFAULT_PRIORITY: u32 = 100;

/// Protocol priorities shared by all families. Immutable: the table publishes
/// a new one atomically on every change, so writers read a consistent table.
#[derive(Debug, Clone)]
pub struct PriorityTable {
    priorities: HashMap<ProtocolId, u32>,
    default: u32,
}

impl Default for PriorityTable {
    fn default() -> Self {
        PriorityTable {
            priorities: HashMap::new(),
            default: DEFAULT_PRIORITY,
        }
    }
}

impl PriorityTable {
    /// An empty table whose default is [`DEFAULT_PRIORITY`].
    pub fn new() -> Self {
        PriorityTable::default()
    }

    /// Sets a protocol's priority.
    pub fn with(mut self, protocol: ProtocolId, priority: u32) -> Self {
        self.priorities.insert(protocol, priority);
        self
    }

    /// Sets the priority of unlisted protocols.
    pub fn with_default(mut self, priority: u32) -> Self {
        self.default = priority;
        self
    }

    /// A protocol's priority.
    pub fn get(&self, protocol: ProtocolId) -> u32 {
        self.priorities
            .get(&protocol)
            .copied()
            .unwrap_or(self.default)
    }

    /// The priority of unlisted protocols.
    pub fn default_priority(&self) -> u32 {
        self.default
    }
}
