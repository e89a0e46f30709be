//! The connector service. This part: the deployment's management packs.
//!
//! - `GET /v1/packs`: the packs in force (id, version, sealed, references, digest);
//! - `GET /v1/packs/{id}`: one pack's TOML;
//! - `POST /v1/packs` (TOML body): import or upgrade, after the pack store's checks (every
//!   problem listed); answers once the change is durable on the pack topic and applied here;
//! - `DELETE /v1/packs/{id}`: remove, refused while other packs reference it.
//!
//! At start, [`seed`] imports the shipped packs that are missing or older.

mod packs;

pub use packs::{router, seed, PackApi};
