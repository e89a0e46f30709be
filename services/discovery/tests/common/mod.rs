//! Shared by the instance-space tests: a store, the shipped packs plus a test pack, and
//! builders of discovery data.

#![allow(dead_code)]

use std::path::Path;

use healthstream_contracts::records::{
    DiscoveredInstance, DiscoveryData, DiscoveryMode, DiscoverySource, DiscoverySourceKind,
    EntityKind, InstanceRef, Properties, PropertyValue,
};
use healthstream_discovery::space::{self, Change, Outcome};
use healthstream_discovery::state::WorkingSet;
use healthstream_discovery::{resolve, Classes, DISCOVERY_CFS};
use healthstream_model::load::parse_pack;
use healthstream_model::{shipped, Catalog};
use healthstream_store::Store;

/// A server hosting databases hosting tables: a three-level hosting tree.
pub const TEST_PACK: &str = r#"
[pack]
id = "T"
version = "1.0"

[[reference]]
pack = "System.Library"
version = "1.0"

[[class]]
id = "T.Server"
base = "System.Computer"

[[class]]
id = "T.Database"
base = "System.LocalApplication"
host = "T.Server"

[[class.property]]
name = "Name"
key = true

[[class.property]]
name = "SizeGb"
type = "int"

[[class]]
id = "T.Table"
base = "System.LogicalEntity"
host = "T.Database"

[[class.property]]
name = "Name"
key = true

[[relationship]]
id = "T.ServerHostsDatabase"
kind = "hosting"
source = "T.Server"
target = "T.Database"

[[relationship]]
id = "T.DatabaseHostsTable"
kind = "hosting"
source = "T.Database"
target = "T.Table"

[[relationship]]
id = "T.DatabaseUsesDatabase"
kind = "reference"
source = "T.Database"
target = "T.Database"
"#;

pub struct Harness {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub classes: Classes,
    pub seq: i64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with("")
    }

    /// With more elements appended to the test pack.
    pub fn with(extra: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), DISCOVERY_CFS).expect("store");
        let mut packs = shipped().expect("shipped");
        packs.push(
            parse_pack(&format!("{TEST_PACK}{extra}"), Path::new("t.toml")).expect("test pack"),
        );
        Harness {
            _dir: dir,
            store,
            classes: Classes::new(Catalog::new(packs)),
            seq: 0,
        }
    }

    /// Apply one submission and persist it, as the stage does.
    pub fn submit(&mut self, d: &DiscoveryData) -> Outcome {
        self.seq += 1;
        let mut batch = self.store.batch();
        let mut ws = WorkingSet::new(&mut batch);
        let out = space::apply(&mut ws, &mut self.classes, d, self.seq).expect("applies");
        ws.flush().expect("flush");
        self.store.write(batch).expect("write");
        out
    }

    pub fn id(&mut self, r: &InstanceRef) -> String {
        resolve(&mut self.classes, r, false, 32)
            .expect("resolves")
            .id
    }
}

pub fn s(v: &str) -> PropertyValue {
    PropertyValue::String(v.into())
}

pub fn props(pairs: &[(&str, PropertyValue)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn server(name: &str) -> InstanceRef {
    InstanceRef {
        class: "T.Server".into(),
        keys: props(&[("PrincipalName", s(name))]),
        host: None,
    }
}

pub fn database(server_name: &str, name: &str) -> InstanceRef {
    InstanceRef {
        class: "T.Database".into(),
        keys: props(&[("Name", s(name))]),
        host: Some(Box::new(server(server_name))),
    }
}

pub fn table(server_name: &str, db: &str, name: &str) -> InstanceRef {
    InstanceRef {
        class: "T.Table".into(),
        keys: props(&[("Name", s(name))]),
        host: Some(Box::new(database(server_name, db))),
    }
}

pub fn inst(r: &InstanceRef, properties: Properties) -> DiscoveredInstance {
    DiscoveredInstance {
        class: r.class.clone(),
        keys: r.keys.clone(),
        properties,
        host: r.host.as_deref().cloned(),
    }
}

pub fn data(
    source: &str,
    kind: DiscoverySourceKind,
    mode: DiscoveryMode,
    instances: Vec<DiscoveredInstance>,
) -> DiscoveryData {
    DiscoveryData {
        id: "x".into(),
        root_host: "srv1".into(),
        source: DiscoverySource {
            kind,
            id: source.into(),
            managing: kind == DiscoverySourceKind::Discovery,
        },
        mode,
        time: 1_700_000_000_000,
        instances,
        relationships: vec![],
        removed_instances: vec![],
        removed_relationships: vec![],
    }
}

pub fn snapshot(source: &str, instances: Vec<DiscoveredInstance>) -> DiscoveryData {
    data(
        source,
        DiscoverySourceKind::Discovery,
        DiscoveryMode::Snapshot,
        instances,
    )
}

/// Instance changes (group memberships aside).
pub fn instances(out: &Outcome) -> Vec<&Change> {
    out.changes
        .iter()
        .filter(|c| c.kind == EntityKind::Instance)
        .collect()
}

/// Relationship changes that are not group memberships.
pub fn relationships(out: &Outcome) -> Vec<&Change> {
    out.changes
        .iter()
        .filter(|c| c.kind == EntityKind::Relationship)
        .filter(|c| {
            !c.view
                .as_ref()
                .is_some_and(|v| v.claimed_by.iter().any(|s| s.starts_with("group:")))
        })
        .collect()
}

pub fn deleted(out: &Outcome) -> Vec<String> {
    instances(out)
        .into_iter()
        .filter(|c| c.view.is_none())
        .map(|c| c.entity_id.clone())
        .collect()
}

pub fn upserted(out: &Outcome) -> Vec<String> {
    instances(out)
        .into_iter()
        .filter(|c| c.view.is_some())
        .map(|c| c.entity_id.clone())
        .collect()
}

pub fn change<'a>(out: &'a Outcome, id: &str) -> &'a Change {
    out.changes
        .iter()
        .find(|c| c.entity_id == id)
        .unwrap_or_else(|| panic!("no change of {id}: {:?}", out.changes))
}
