//! Shared by the health processor's tests: test packs over the shipped ones.

use std::sync::Arc;

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
