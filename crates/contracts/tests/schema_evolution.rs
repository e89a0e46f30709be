//! Every contract's schema may only change compatibly: the committed versions under
//! `schemas/history/<name>/` are read by the next version and the next version by them
//! (fields are only added, and only with defaults), and the current `schemas/<name>.avsc`
//! is the newest committed version.

use std::path::{Path, PathBuf};

use apache_avro::schema::{RecordField, Schema};
use apache_avro::schema_compatibility::SchemaCompatibility;
use healthstream_contracts::Contract;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn parse(path: &Path) -> Schema {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn history(contract: Contract) -> Vec<(u32, PathBuf)> {
    let dir = schemas_dir().join("history").join(contract.name());
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let v: u32 = stem
                .parse()
                .unwrap_or_else(|_| panic!("{}: history files are named N.avsc", path.display()));
            (v, path)
        })
        .collect();
    versions.sort();
    versions
}

/// Fields of `new` that `old` lacks, and fields of `old` that `new` lacks, at every depth.
fn field_changes(old: &Schema, new: &Schema, path: &str, problems: &mut Vec<String>) {
    if let (Schema::Record(o), Schema::Record(n)) = (old, new) {
        for f in &o.fields {
            if !n.lookup.contains_key(&f.name) {
                problems.push(format!("{path}{}: field removed", f.name));
            }
        }
        for f in &n.fields {
            match o.fields.iter().find(|of| of.name == f.name) {
                None if f.default.is_none() => {
                    problems.push(format!("{path}{}: new field without a default", f.name))
                }
                None => {}
                Some(of) => nested(of, f, &format!("{path}{}.", f.name), problems),
            }
        }
    }
}

fn nested(old: &RecordField, new: &RecordField, path: &str, problems: &mut Vec<String>) {
    let unwrap = |s: &Schema| -> Schema {
        match s {
            Schema::Array(a) => (*a.items).clone(),
            Schema::Map(m) => (*m.types).clone(),
            Schema::Union(u) => u
                .variants()
                .iter()
                .find(|v| matches!(v, Schema::Record(_)))
                .cloned()
                .unwrap_or(Schema::Null),
            other => other.clone(),
        }
    };
    field_changes(&unwrap(&old.schema), &unwrap(&new.schema), path, problems);
}

#[test]
fn every_contract_has_history_and_current_is_latest() {
    for contract in Contract::ALL {
        let versions = history(contract);
        assert!(!versions.is_empty(), "{contract}: no committed version");
        for (i, (v, _)) in versions.iter().enumerate() {
            assert_eq!(
                *v as usize,
                i + 1,
                "{contract}: versions must be 1, 2, ... without gaps"
            );
        }
        let (latest_v, latest_path) = versions.last().expect("non-empty");
        let current = parse(&schemas_dir().join(format!("{}.avsc", contract.name())));
        let latest = parse(latest_path);
        assert_eq!(
            current.canonical_form(),
            latest.canonical_form(),
            "{contract}: schemas/{}.avsc differs from history v{latest_v}; commit it as history/{}/{}.avsc",
            contract.name(),
            contract.name(),
            latest_v + 1
        );
        assert_eq!(
            contract.versions().len(),
            versions.len(),
            "{contract}: the codec embeds {} versions, history has {}",
            contract.versions().len(),
            versions.len()
        );
    }
}

#[test]
fn consecutive_versions_are_fully_compatible() {
    for contract in Contract::ALL {
        let versions = history(contract);
        for pair in versions.windows(2) {
            let (old, new) = (parse(&pair[0].1), parse(&pair[1].1));
            let mut problems = Vec::new();
            field_changes(&old, &new, "", &mut problems);
            if let Err(e) = SchemaCompatibility::can_read(&old, &new) {
                problems.push(format!("v{} cannot read v{}: {e}", pair[1].0, pair[0].0));
            }
            if let Err(e) = SchemaCompatibility::can_read(&new, &old) {
                problems.push(format!("v{} cannot read v{}: {e}", pair[0].0, pair[1].0));
            }
            assert!(problems.is_empty(), "{contract}: {problems:#?}");
        }
    }
}

#[test]
fn the_checker_catches_incompatible_changes() {
    let old = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
    )
    .expect("schema");
    let added_without_default = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#,
    )
    .expect("schema");
    let added_with_default = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}"#,
    )
    .expect("schema");
    let retyped =
        Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#)
            .expect("schema");
    let mut problems = Vec::new();
    field_changes(&old, &added_without_default, "", &mut problems);
    assert_eq!(problems, vec!["b: new field without a default".to_string()]);
    problems.clear();
    field_changes(&old, &added_with_default, "", &mut problems);
    assert!(problems.is_empty());
    assert!(SchemaCompatibility::can_read(&old, &added_with_default).is_ok());
    assert!(SchemaCompatibility::can_read(&old, &retyped).is_err());
}

#[test]
fn schema_ids_are_unique() {
    let mut ids = std::collections::HashSet::new();
    for contract in Contract::ALL {
        for v in contract.versions() {
            assert!(
                ids.insert(v.schema_id),
                "duplicate schema id {}",
                v.schema_id
            );
        }
    }
}
