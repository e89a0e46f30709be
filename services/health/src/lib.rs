//! The health processor.
//!
//! Its first stage, [`PerfStage`], consumes the perf topic and keeps, per hosting tree, the
//! latest sample of every counter (object, counter, instance), written to RocksDB in the
//! same batch as the input offset. The cooked-down condition detection and monitors of the
//! health engine build on this stage's inputs.

mod api;
mod engine_stage;
mod metrics;
mod perf;

pub use api::{model_router, router};
pub use engine_stage::{
    alert, monitor_states, open_alert, state_history, HealthStage, HistoryEntry, HEALTH_CFS,
};
pub use perf::{latest_samples, LatestSample, PerfStage, PERF_CFS};
