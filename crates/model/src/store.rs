//! The pack store: the packs in force, with versions, references and sealing.
//!
//! The store is the fold of the pack topic (compacted, keyed by pack id): every change is
//! checked here first ([`PackStore::plan_import`], [`PackStore::plan_remove`]), published,
//! and applied by every reader ([`PackStore::apply`]), so running processors see the same
//! packs without a restart.
//!
//! Rules:
//! - a pack is imported once per version; a new version is an upgrade, an older one is refused;
//!   the same version with other content is refused (raise the version);
//! - a pack may reference only sealed packs, present at the minimum version it names;
//! - the packs in force must validate together after the change: a change that breaks another
//!   pack (removes an element it uses, for example) is refused with the problems it causes;
//! - removing a pack that others reference is refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::catalog::Catalog;
use crate::load::{parse_pack, LoadedPack, Problem};
use crate::pack::Version;
use crate::validate::validate;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Import,
    Upgrade,
    Remove,
}

/// A change to publish (and to apply once read back).
#[derive(Debug, Clone, PartialEq)]
pub struct PackChange {
    pub pack_id: String,
    pub version: Version,
    pub sealed: bool,
    pub kind: ChangeKind,
    /// The pack's TOML; empty on remove.
    pub content: String,
    /// Content hash (hex).
    pub digest: String,
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{pack} {version} is already imported with the same content")]
    Unchanged { pack: String, version: Version },
    #[error("{pack} {version} is already imported with other content: give the new content a higher version")]
    SameVersion { pack: String, version: Version },
    #[error("{pack} {version} is older than the imported version {current}: downgrades are refused (remove it first)")]
    Downgrade {
        pack: String,
        version: Version,
        current: Version,
    },
    #[error(
        "{pack} references {reference}, which is not sealed: packs can reference sealed packs only"
    )]
    ReferencesUnsealed { pack: String, reference: String },
    #[error("{pack} is referenced by {}: remove or upgrade those first", by.join(", "))]
    StillReferenced { pack: String, by: Vec<String> },
    #[error("no pack {0} is imported")]
    Unknown(String),
    #[error("the change leaves problems:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
    #[error("stored pack {pack} cannot be read: {problem}")]
    Corrupt { pack: String, problem: Box<Problem> },
}

/// The packs in force.
#[derive(Debug, Clone, Default)]
pub struct PackStore {
    packs: BTreeMap<String, (LoadedPack, String)>,
}

/// Hash of a pack's content.
pub fn digest(content: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(content.as_bytes()))
}

impl PackStore {
    /// An empty store.
    pub fn new() -> PackStore {
        PackStore::default()
    }

    /// The packs in force, by id.
    pub fn packs(&self) -> impl Iterator<Item = &LoadedPack> {
        self.packs.values().map(|(p, _)| p)
    }

    /// A pack by id, with its digest.
    pub fn get(&self, id: &str) -> Option<(&LoadedPack, &str)> {
        self.packs.get(id).map(|(p, d)| (p, d.as_str()))
    }

    /// Pack ids and versions.
    pub fn versions(&self) -> BTreeMap<String, Version> {
        self.packs
            .iter()
            .map(|(id, (p, _))| (id.clone(), p.pack.pack.version.clone()))
            .collect()
    }

    /// All packs as a catalog.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.packs().cloned().collect())
    }

    /// Check an import or upgrade of `content` (read as `file` in messages).
    pub fn plan_import(&self, content: &str, file: &str) -> Result<PackChange, StoreError> {
        let loaded = parse_pack(content, &PathBuf::from(file))
            .map_err(|p| StoreError::Invalid { problems: vec![p] })?;
        let m = &loaded.pack.pack;
        let id = m.id.clone();
        let d = digest(content);
        let kind = match self.packs.get(&id) {
            None => ChangeKind::Import,
            Some((cur, cur_digest)) => {
                let cv = &cur.pack.pack.version;
                if m.version == *cv && *cur_digest == d {
                    return Err(StoreError::Unchanged {
                        pack: id,
                        version: m.version.clone(),
                    });
                }
                if m.version == *cv {
                    return Err(StoreError::SameVersion {
                        pack: id,
                        version: m.version.clone(),
                    });
                }
                if m.version < *cv {
                    return Err(StoreError::Downgrade {
                        pack: id,
                        version: m.version.clone(),
                        current: cv.clone(),
                    });
                }
                ChangeKind::Upgrade
            }
        };
        for r in &loaded.pack.references {
            if let Some((p, _)) = self.packs.get(&r.pack) {
                if !p.pack.pack.sealed {
                    return Err(StoreError::ReferencesUnsealed {
                        pack: id,
                        reference: r.pack.clone(),
                    });
                }
            }
        }
        let change = PackChange {
            pack_id: id.clone(),
            version: m.version.clone(),
            sealed: m.sealed,
            kind,
            content: content.to_string(),
            digest: d,
        };
        let mut after = self.clone();
        after.packs.insert(id, (loaded, change.digest.clone()));
        after.check_against(self)?;
        Ok(change)
    }

    /// Check the removal of a pack.
    pub fn plan_remove(&self, id: &str) -> Result<PackChange, StoreError> {
        let (cur, _) = self
            .packs
            .get(id)
            .ok_or_else(|| StoreError::Unknown(id.to_string()))?;
        let by: Vec<String> = self
            .packs()
            .filter(|p| p.pack.references.iter().any(|r| r.pack == id))
            .map(|p| p.pack.pack.id.clone())
            .collect();
        if !by.is_empty() {
            return Err(StoreError::StillReferenced {
                pack: id.to_string(),
                by,
            });
        }
        Ok(PackChange {
            pack_id: id.to_string(),
            version: cur.pack.pack.version.clone(),
            sealed: cur.pack.pack.sealed,
            kind: ChangeKind::Remove,
            content: String::new(),
            digest: String::new(),
        })
    }

    /// Apply a change read from the pack topic. Changes are applied as published (they were
    /// checked before); content that does not parse is an error and changes nothing.
    pub fn apply(&mut self, change: &PackChange) -> Result<(), StoreError> {
        match change.kind {
            ChangeKind::Remove => {
                self.packs.remove(&change.pack_id);
            }
            ChangeKind::Import | ChangeKind::Upgrade => {
                let file = format!("pack-topic/{}", change.pack_id);
                let loaded =
                    parse_pack(&change.content, &PathBuf::from(file)).map_err(|problem| {
                        StoreError::Corrupt {
                            pack: change.pack_id.clone(),
                            problem: Box::new(problem),
                        }
                    })?;
                self.packs
                    .insert(change.pack_id.clone(), (loaded, digest(&change.content)));
            }
        }
        Ok(())
    }

    /// The problems of `self` that `before` did not have.
    fn check_against(&self, before: &PackStore) -> Result<(), StoreError> {
        let key = |p: &Problem| (p.pack.clone(), p.element.clone(), p.message.clone());
        let old: Vec<_> = validate(&before.catalog()).iter().map(key).collect();
        let new: Vec<Problem> = validate(&self.catalog())
            .into_iter()
            .filter(|p| !old.contains(&key(p)))
            .collect();
        if new.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid { problems: new })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_library() -> PackStore {
        let mut s = PackStore::new();
        for (path, text) in crate::SHIPPED {
            let c = s
                .plan_import(text, path)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            s.apply(&c).expect("applies");
        }
        s
    }

    const APP: &str = "[pack]\nid = \"App\"\nversion = \"1.0\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n[[class]]\nid = \"App.Server\"\nbase = \"System.Computer\"\n";

    #[test]
    fn import_upgrade_and_idempotence() {
        let mut s = store_with_library();
        let c = s.plan_import(APP, "app.toml").expect("import");
        assert_eq!(c.kind, ChangeKind::Import);
        s.apply(&c).expect("apply");
        assert!(matches!(
            s.plan_import(APP, "app.toml"),
            Err(StoreError::Unchanged { .. })
        ));
        let edited = APP.replace("App.Server\"", "App.Server\"\nname = \"Server\"");
        assert!(matches!(
            s.plan_import(&edited, "app.toml"),
            Err(StoreError::SameVersion { .. })
        ));
        let v2 = edited.replace(
            "version = \"1.0\"\n[[reference]]",
            "version = \"1.1\"\n[[reference]]",
        );
        let c = s.plan_import(&v2, "app.toml").expect("upgrade");
        assert_eq!(c.kind, ChangeKind::Upgrade);
        s.apply(&c).expect("apply");
        assert!(matches!(
            s.plan_import(APP, "app.toml"),
            Err(StoreError::Downgrade { .. })
        ));
    }

    #[test]
    fn invalid_packs_are_refused_with_every_problem() {
        let s = store_with_library();
        let bad = format!("{APP}[[class]]\nid = \"App.X\"\nbase = \"App.Nope\"\n[[class]]\nid = \"App.Y\"\nbase = \"System.LogicalEntity\"\n");
        match s.plan_import(&bad, "bad.toml") {
            Err(StoreError::Invalid { problems }) => assert_eq!(problems.len(), 2, "{problems:?}"),
            other => panic!("{other:?}"),
        }
        let missing_ref = APP.replace("System.Library", "Nowhere");
        assert!(matches!(
            s.plan_import(&missing_ref, "m.toml"),
            Err(StoreError::Invalid { .. })
        ));
    }

    #[test]
    fn only_sealed_packs_can_be_referenced() {
        let mut s = store_with_library();
        s.apply(&s.plan_import(APP, "app.toml").expect("import"))
            .expect("apply");
        let user = "[pack]\nid = \"User\"\nversion = \"1\"\n[[reference]]\npack = \"App\"\nversion = \"1.0\"\n";
        assert!(matches!(
            s.plan_import(user, "u.toml"),
            Err(StoreError::ReferencesUnsealed { .. })
        ));
    }

    #[test]
    fn removal_checks_dependants() {
        let mut s = store_with_library();
        let e = s
            .plan_remove("System.Library")
            .expect_err("Linux references it");
        assert!(
            e.to_string().contains("referenced by Healthstream.Linux"),
            "{e}"
        );
        let c = s
            .plan_remove("Healthstream.Linux")
            .expect("nothing references Linux");
        s.apply(&c).expect("apply");
        assert!(s.get("Healthstream.Linux").is_none());
        assert!(matches!(
            s.plan_remove("Healthstream.Linux"),
            Err(StoreError::Unknown(_))
        ));
    }

    #[test]
    fn an_upgrade_that_breaks_another_pack_is_refused() {
        let mut s = store_with_library();
        let sealed = APP.replace(
            "version = \"1.0\"\n[[reference]]",
            "version = \"1.0\"\nsealed = true\n[[reference]]",
        );
        s.apply(&s.plan_import(&sealed, "app.toml").expect("import"))
            .expect("apply");
        let user = "[pack]\nid = \"User\"\nversion = \"1\"\n[[reference]]\npack = \"App\"\nversion = \"1.0\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n[[override]]\nid = \"User.O\"\nworkflow = \"System.Collector.Heartbeat\"\nparameter = \"enabled\"\nvalue = false\ncontext = \"App.Server\"\n";
        s.apply(&s.plan_import(user, "user.toml").expect("import user"))
            .expect("apply");
        let without_class = "[pack]\nid = \"App\"\nversion = \"2.0\"\nsealed = true\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n";
        match s.plan_import(without_class, "app2.toml") {
            Err(StoreError::Invalid { problems }) => {
                assert!(
                    problems
                        .iter()
                        .any(|p| p.pack.as_deref() == Some("User")
                            && p.message.contains("App.Server")),
                    "{problems:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_topic_content_changes_nothing() {
        let mut s = store_with_library();
        let before = s.versions();
        let bad = PackChange {
            pack_id: "X".into(),
            version: Version(vec![1]),
            sealed: false,
            kind: ChangeKind::Import,
            content: "[pack".into(),
            digest: String::new(),
        };
        assert!(matches!(s.apply(&bad), Err(StoreError::Corrupt { .. })));
        assert_eq!(s.versions(), before);
    }
}
