//! Management packs: the model of what exists and how to judge its health (DESIGN.md
//! sections 2, 4 and 9).
//!
//! - [`pack`]: the native TOML format (every element type);
//! - [`expr`], [`reference`]: filter expressions and `$Target/...$` / `$Data/...$` references;
//! - [`modules`]: data types flowing between modules and what each module accepts;
//! - [`load`], [`catalog`], [`validate`]: reading packs, looking across them, reporting every
//!   problem at once;
//! - [`overrides`]: workflow parameters and deterministic override resolution;
//! - [`store`]: the pack store (versions, references, sealing, import/upgrade/remove);
//! - [`scom`]: SCOM management pack XML import.

pub mod catalog;
pub mod expr;
pub mod load;
pub mod modules;
pub mod overrides;
pub mod pack;
pub mod params;
pub mod reference;
pub mod scom;
pub mod store;
pub mod validate;

pub use catalog::Catalog;
pub use load::{LoadedPack, Problem};
pub use pack::Pack;

/// The shipped packs, compiled in: (path in the repository, text).
pub const SHIPPED: [(&str, &str); 2] = [
    (
        "packs/System.Library.toml",
        include_str!("../../../packs/System.Library.toml"),
    ),
    (
        "packs/Healthstream.Linux.toml",
        include_str!("../../../packs/Healthstream.Linux.toml"),
    ),
];

/// The shipped packs, parsed.
pub fn shipped() -> Result<Vec<LoadedPack>, Problem> {
    SHIPPED
        .iter()
        .map(|(path, text)| load::parse_pack(text, std::path::Path::new(path)))
        .collect()
}
