//! The health processor.
//!
//! Its first stage, [`PerfStage`], consumes the perf topic and keeps, per hosting tree, the
//! latest sample of every counter (object, counter, instance), written to RocksDB in the
//! same batch as the input offset. The cooked-down condition detection and monitors of the
//! health engine build on this stage's inputs.

mod alert_value;
mod api;
mod engine_stage;
mod grooming;
mod kept;
mod metrics;
mod operations;
mod perf;
mod sealed;
mod wire;

pub use api::{model_router, router};
pub use engine_stage::{
    alert, command, container_members, groom_alerts, groom_commands, groom_history, maintenance_of,
    monitor_states, open_alert, open_store, operation_outcome, state_history, stored_instance,
    unavailable_since, CommandEntry, CommandOutcome, HealthStage, HistoryEntry, OperationOutcome,
    HEALTH_CFS, HEALTH_HOT_CFS,
};
pub use grooming::groom_periodically;
pub use operations::{operations_router, operations_router_waiting};
pub use perf::{latest_samples, LatestSample, PerfStage, PERF_CFS};

/// Maps and sets keyed by instance or host names, with a fast hash seeded per process (a
/// fleet's names share long prefixes: ordered maps compare them byte by byte).
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
