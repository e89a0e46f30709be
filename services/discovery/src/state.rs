//! The instance space's state in RocksDB, and the working set of one input (reads see the
//! input's own writes; everything is written in the stage's batch, with the input offset).

use std::collections::{BTreeMap, BTreeSet};

use healthstream_contracts::records::Properties;
use healthstream_store::{KeyWriter, StoreBatch, StoreError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Instances: (root host, instance id) -> [`InstanceState`].
pub const INSTANCES_CF: &str = "instance";
/// Hosting index: (root host, host id, child id) -> ().
pub const HOSTED_CF: &str = "hosted";
/// Relationships: (root host, relationship id) -> [`RelationshipState`].
pub const RELATIONSHIPS_CF: &str = "relationship";
/// Relationship endpoints: (root host, instance id, relationship id) -> ().
pub const ENDPOINTS_CF: &str = "endpoint";
/// Discovery sources: (root host, source id) -> [`SourceState`].
pub const SOURCES_CF: &str = "source";

/// Column families of the instance space.
/// Per root host: the digest of the group definitions its memberships reflect.
pub const META_CF: &str = "meta";
/// Instance id -> root host (reads by id).
pub const BY_ID_CF: &str = "by_id";
/// (class, root host, instance id) -> () (reads by class).
pub const BY_CLASS_CF: &str = "by_class";

/// Column families of the instance space.
pub const DISCOVERY_CFS: &[&str] = &[
    INSTANCES_CF,
    HOSTED_CF,
    RELATIONSHIPS_CF,
    ENDPOINTS_CF,
    SOURCES_CF,
    BY_ID_CF,
    BY_CLASS_CF,
    META_CF,
];

const INSTANCE_PREFIX: u8 = 0x20;
const HOSTED_PREFIX: u8 = 0x21;
const RELATIONSHIP_PREFIX: u8 = 0x22;
const ENDPOINT_PREFIX: u8 = 0x23;
const SOURCE_PREFIX: u8 = 0x24;
const BY_ID_PREFIX: u8 = 0x25;
const BY_CLASS_PREFIX: u8 = 0x26;
const META_PREFIX: u8 = 0x27;

/// One source's claim on an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The class the source discovered it as.
    #[serde(rename = "c")]
    pub class: String,
    #[serde(rename = "p", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: Properties,
    #[serde(rename = "m")]
    pub managing: bool,
    /// Order of application: later claims win property conflicts.
    #[serde(rename = "s")]
    pub seq: i64,
}

/// An instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// The effective class: the most derived one claimed.
    #[serde(rename = "t", default)]
    pub class: String,
    #[serde(rename = "k", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: Properties,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Claims by source id.
    #[serde(rename = "c")]
    pub claims: BTreeMap<String, Claim>,
    /// Managed (runs monitors): a managing claim, or a managed host.
    #[serde(rename = "m")]
    pub managed: bool,
    /// Group memberships: group id -> membership relationship id.
    #[serde(rename = "g", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, String>,
}

/// A relationship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipState {
    #[serde(rename = "t")]
    pub kind: String,
    #[serde(rename = "s")]
    pub source_id: String,
    #[serde(rename = "d")]
    pub target_id: String,
    /// Claims: source id -> (properties, seq).
    #[serde(rename = "c")]
    pub claims: BTreeMap<String, (Properties, i64)>,
    /// The group whose membership this is (membership relationships only).
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The target's root host, when the target is in another hosting tree: the relationship
    /// is kept here, with its source, and its changes go to the target's partition.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub target_root: Option<String>,
}

/// What a source claimed last time. (The digest of its last submission, when applied in full,
/// is kept apart under [`source_digest_key`]: an identical submission then changes nothing.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub instances: BTreeSet<String>,
    pub relationships: BTreeSet<String>,
}

pub fn instance_key(root: &str, id: &str) -> Vec<u8> {
    KeyWriter::new(INSTANCE_PREFIX).str(root).str(id).finish()
}
pub fn hosted_key(root: &str, host: &str, child: &str) -> Vec<u8> {
    KeyWriter::new(HOSTED_PREFIX)
        .str(root)
        .str(host)
        .str(child)
        .finish()
}
pub fn hosted_prefix(root: &str, host: &str) -> Vec<u8> {
    KeyWriter::new(HOSTED_PREFIX).str(root).str(host).finish()
}
pub fn relationship_key(root: &str, id: &str) -> Vec<u8> {
    KeyWriter::new(RELATIONSHIP_PREFIX)
        .str(root)
        .str(id)
        .finish()
}
pub fn endpoint_key(root: &str, instance: &str, rel: &str) -> Vec<u8> {
    KeyWriter::new(ENDPOINT_PREFIX)
        .str(root)
        .str(instance)
        .str(rel)
        .finish()
}
pub fn endpoint_prefix(root: &str, instance: &str) -> Vec<u8> {
    KeyWriter::new(ENDPOINT_PREFIX)
        .str(root)
        .str(instance)
        .finish()
}
pub fn source_key(root: &str, source: &str) -> Vec<u8> {
    KeyWriter::new(SOURCE_PREFIX).str(root).str(source).finish()
}
pub fn meta_key(root: &str) -> Vec<u8> {
    KeyWriter::new(META_PREFIX).str(root).finish()
}
/// The digest of a source's last submission applied in full.
pub fn source_digest_key(root: &str, source: &str) -> Vec<u8> {
    KeyWriter::new(META_PREFIX)
        .str(root)
        .str("source")
        .str(source)
        .finish()
}
/// The digest of a root host's last published collection plan.
pub fn plan_key(root: &str) -> Vec<u8> {
    KeyWriter::new(META_PREFIX).str(root).str("plan").finish()
}
pub fn by_id_key(id: &str) -> Vec<u8> {
    KeyWriter::new(BY_ID_PREFIX).str(id).finish()
}
pub fn by_class_key(class: &str, root: &str, id: &str) -> Vec<u8> {
    KeyWriter::new(BY_CLASS_PREFIX)
        .str(class)
        .str(root)
        .str(id)
        .finish()
}
pub fn by_class_prefix(class: &str) -> Vec<u8> {
    KeyWriter::new(BY_CLASS_PREFIX).str(class).finish()
}
pub const BY_CLASS_KEY_PREFIX: u8 = BY_CLASS_PREFIX;
pub const INSTANCE_KEY_PREFIX: u8 = INSTANCE_PREFIX;
pub fn all_instances_prefix() -> Vec<u8> {
    vec![INSTANCE_PREFIX]
}
pub fn instances_prefix(root: &str) -> Vec<u8> {
    KeyWriter::new(INSTANCE_PREFIX).str(root).finish()
}

/// The last string component of a key (the child / relationship id of an index key).
pub fn last_str(key: &[u8], prefix: u8, parts: usize) -> Result<String, StoreError> {
    let mut r = healthstream_store::KeyReader::new(key, prefix)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut last = String::new();
    for _ in 0..parts {
        last = r.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    }
    Ok(last)
}

pub const HOSTED_KEY_PREFIX: u8 = HOSTED_PREFIX;
pub const ENDPOINT_KEY_PREFIX: u8 = ENDPOINT_PREFIX;

/// Stored values are MessagePack with field names (compact, self-describing, fast to read).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

/// Read a stored value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// The state an input reads and writes: the batch it is applied into (the store and what
/// the inputs before it in the batch wrote) plus this input's pending changes, which reach
/// the batch only when the input is applied in full ([`WorkingSet::flush`]).
pub struct WorkingSet<'s> {
    base: &'s mut StoreBatch,
    pending: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl<'s> WorkingSet<'s> {
    pub fn new(base: &'s mut StoreBatch) -> Self {
        WorkingSet {
            base,
            pending: BTreeMap::new(),
        }
    }

    pub fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(&(cf, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(cf, key),
        }
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{cf}: {e}"))),
        }
    }

    pub fn put<T: Serialize>(
        &mut self,
        cf: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(value).map_err(|e| StoreError::Corrupt(format!("{cf}: {e}")))?;
        self.pending.insert((cf, key), Some(bytes));
        Ok(())
    }

    pub fn put_raw(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert((cf, key), Some(value));
    }

    pub fn put_marker(&mut self, cf: &'static str, key: Vec<u8>) {
        self.pending.insert((cf, key), Some(Vec::new()));
    }

    pub fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.pending.insert((cf, key), None);
    }

    /// Keys under a prefix, with this input's changes applied.
    pub fn keys_with_prefix(
        &self,
        cf: &'static str,
        prefix: &[u8],
    ) -> Result<BTreeSet<Vec<u8>>, StoreError> {
        let mut keys: BTreeSet<Vec<u8>> = self
            .base
            .scan_prefix(cf, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for ((c, k), v) in self.pending.range((cf, prefix.to_vec())..) {
            if *c != cf || !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        Ok(keys)
    }

    /// Keys and values under a prefix, with this input's changes applied.
    pub fn entries_with_prefix(
        &self,
        cf: &'static str,
        prefix: &[u8],
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(cf, prefix)?.into_iter().collect();
        for ((c, k), v) in self.pending.range((cf, prefix.to_vec())..) {
            if *c != cf || !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(bytes) => out.insert(k.clone(), bytes.clone()),
                None => out.remove(k),
            };
        }
        Ok(out)
    }

    /// Stage every change in the batch.
    pub fn flush(self) -> Result<(), StoreError> {
        for ((cf, key), v) in self.pending {
            match v {
                Some(bytes) => self.base.put(cf, &key, &bytes)?,
                None => self.base.delete(cf, &key)?,
            }
        }
        Ok(())
    }
}
