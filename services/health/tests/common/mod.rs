//! Shared by the health processor's tests: test packs over the shipped ones.

use std::collections::BTreeMap;

use healthstream_contracts::records::{
    ChangeKind, EntityKind, InstanceChange, Operation, OperationKind,
};

/// A test pack over the shipped ones: its header, references included, then `body`.
pub fn extra_pack(id: &str, body: &str) -> String {
    format!(
        "[pack]\nid = \"{id}\"\nversion = \"1\"\n\
         [[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n\
         [[reference]]\npack = \"Healthstream.Linux\"\nversion = \"1.0\"\n{body}"
    )
}

/// The live packs: the shipped ones and `extra`.
pub fn packs_with(extra: &[String]) -> healthstream_packfeed::Packs {
    healthstream_packfeed::fixed(extra).expect("test packs import")
}

/// An operator action of user `ops` on an instance of root host `root`, at `at`.
pub fn operation(root: &str, kind: OperationKind, instance: &str, at: i64) -> Operation {
    Operation {
        id: format!("op-{kind:?}-{instance}-{at}"),
        root_host: root.into(),
        instance_id: instance.into(),
        kind,
        monitor_id: None,
        alert_id: None,
        task_id: None,
        reason: "PlannedOther".into(),
        comment: String::new(),
        until: None,
        requested_by: "ops".into(),
        requested_at: at,
    }
}

/// An instance-space change of entity `id` of root host `root`, claimed by a test source;
/// the caller fills in class, properties and ends.
pub fn change(root: &str, id: &str, kind: EntityKind, change: ChangeKind) -> InstanceChange {
    InstanceChange {
        id: format!("x-{id}-{change:?}"),
        root_host: root.into(),
        entity_id: id.into(),
        kind,
        change,
        time: 0,
        class: String::new(),
        keys: BTreeMap::new(),
        properties: BTreeMap::new(),
        host_id: None,
        source_id: None,
        target_id: None,
        managed: true,
        claimed_by: vec!["discovery:test".into()],
        source_root_host: None,
        source_class: None,
    }
}
