//! The contracts of healthstream's topics.
//!
//! The `.avsc` files under `schemas/` are the source of truth; this crate embeds them,
//! gives each topic a typed record, frames values in the Confluent wire format
//! (magic byte `0`, big-endian schema id, Avro binary datum), validates collector JSON
//! against the schemas (reporting every problem at once), derives deterministic record
//! ids and picks partitions.

mod alert_record;
mod codec;
mod command_record;
mod contract;
mod ids;
mod json;
mod partition;
mod perf_view;
pub mod records;
mod state_change;
mod topic;
mod wire;

pub use codec::{Codec, DecodeError, EncodeError};
pub use contract::{Contract, SchemaVersion};
pub use ids::{content_id, derived_id, singleton_id};
pub use json::{FieldError, JsonValidator};
pub use partition::{murmur2, partition_for_key};
pub use perf_view::{FlatPerf, FlatSampleRef, PerfView, SampleView};
pub use topic::Topic;
pub use wire::{frame, unframe, WireError, MAGIC_BYTE};
