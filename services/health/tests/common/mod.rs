//! Shared by the health processor's tests: test packs over the shipped ones.

use std::sync::Arc;

use healthstream_contracts::records::{Operation, OperationKind};
use healthstream_model::store::PackStore;
use healthstream_packfeed::PackSnapshot;

/// A test pack over the shipped ones: its header, references included, then `body`.
pub fn extra_pack(id: &str, body: &str) -> String {
    format!(
        "[pack]\nid = \"{id}\"\nversion = \"1\"\n\
         [[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n\
         [[reference]]\npack = \"Healthstream.Linux\"\nversion = \"1.0\"\n{body}"
    )
}

/// The live packs: the shipped ones and `extra`, imported as the pack topic would.
pub fn packs_with(extra: &[String]) -> healthstream_packfeed::Packs {
    let mut store = PackStore::new();
    for (path, text) in healthstream_model::SHIPPED {
        let c = store.plan_import(text, path).expect("shipped");
        store.apply(&c).expect("applies");
    }
    for text in extra {
        let c = store.plan_import(text, "extra.toml").expect("extra pack");
        store.apply(&c).expect("applies");
    }
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(PackSnapshot {
        store,
        next_offset: 2,
    }));
    std::mem::forget(tx);
    rx
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
