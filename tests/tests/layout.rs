//! The layout keeps heavy implementations apart: only the bus crate uses rdkafka and only
//! the state-store crate uses rocksdb; every crate and service is a workspace member.

use healthstream_tests::repo;

fn manifests() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["crates", "services"] {
        for entry in std::fs::read_dir(repo().join(dir)).expect(dir).flatten() {
            let manifest = entry.path().join("Cargo.toml");
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                out.push((
                    format!("{dir}/{}", entry.file_name().to_string_lossy()),
                    text,
                ));
            }
        }
    }
    out.push((
        "tests".into(),
        std::fs::read_to_string(repo().join("tests/Cargo.toml")).expect("tests manifest"),
    ));
    out
}

fn depends_on(manifest: &str, dependency: &str) -> bool {
    manifest.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(&format!("{dependency} "))
            || l.starts_with(&format!("{dependency}."))
            || l.starts_with(&format!("{dependency}="))
    })
}

#[test]
fn only_the_bus_uses_rdkafka_and_only_the_store_uses_rocksdb() {
    let all = manifests();
    assert!(
        all.len() >= 8,
        "found the crates: {:?}",
        all.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, text) in &all {
        assert_eq!(
            depends_on(text, "rdkafka"),
            name == "crates/bus",
            "{name} and rdkafka"
        );
        assert_eq!(
            depends_on(text, "rocksdb"),
            name == "crates/store",
            "{name} and rocksdb"
        );
    }
}

#[test]
fn every_crate_is_a_workspace_member() {
    let root = std::fs::read_to_string(repo().join("Cargo.toml")).expect("root manifest");
    for (name, _) in manifests() {
        assert!(
            root.contains(&format!("\"{name}\"")),
            "{name} is not in the workspace members"
        );
    }
}
