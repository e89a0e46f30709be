//! The shipped packs validate, and round-trip through TOML.

use healthstream_model::{shipped, validate::validate, Catalog};

#[test]
fn shipped_packs_validate_without_problems() {
    let packs = shipped().expect("shipped packs parse");
    let catalog = Catalog::new(packs);
    let problems = validate(&catalog);
    let report: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{}", report.join("\n"));
}
