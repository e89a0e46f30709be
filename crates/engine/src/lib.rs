//! The health engine (DESIGN.md sections 4 and 5): pure synchronous code, no I/O.
//!
//! - [`detect`]: the unit monitor types, each a small state machine fed samples, events or
//!   time, deciding a health state with exactly the semantics of the DESIGN.md table;
//! - [`engine`]: the engine of one partition: monitor copies per managed instance (overrides,
//!   groups and `$Target` applied), perf samples dispatched through an index, events,
//!   heartbeats, time, operator resets, and rollups propagated once to the top;
//! - [`alerts`]: monitor and rule alerts, suppression, storm containment, history;
//! - [`commands`]: diagnostics, recoveries and tasks to run on a host's collector;
//! - [`rollup`]: aggregate and dependency rollups (WorstOf, BestOf, Percentage), with members in
//!   maintenance or unavailable counted as configured and uninitialized ones never making a
//!   parent unhealthy.

pub mod alerts;
pub mod commands;
pub mod detect;
pub mod engine;
pub mod pairs;
pub mod rollup;
pub mod rules;

/// The engine's maps: looked up several times per sample, keyed by names. A fast hash,
/// seeded at random per map.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A set of names on the same hash.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
