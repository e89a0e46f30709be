//! The instance-space processor (DESIGN.md section 3): discovery data in, instances and
//! relationships (with their claims, hosting and managed flags) in RocksDB, changes out on
//! the compacted instance topic.

pub mod api;
pub mod groups;
mod identity;
mod metrics;
pub mod plans;
pub mod space;
mod stage;
pub mod state;

pub use identity::{relationship_id, resolve, ClassShape, Classes, Resolved};
pub use stage::DiscoveryStage;
pub use state::DISCOVERY_CFS;
