//! The state store of healthstream's processors, on RocksDB.
//!
//! A processor's state is the fold of its input topics. The store keeps that state in named
//! column families together with the position in each input partition it reflects, and
//! writes both in one atomic batch: after a crash the state and the offsets always agree,
//! and the processor resumes exactly where its state ends.

mod db;
pub mod keys;
mod staged;

pub use db::{Entry, StateRead, Store, StoreBatch, StoreError, StoreSnapshot, Tuning, OFFSETS_CF};
pub use keys::{KeyError, KeyReader, KeyWriter};
