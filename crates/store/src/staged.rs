//! The writes a batch stages for one column family, each key's last write.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

type Value = Option<Vec<u8>>;

/// A column family's staged writes: key -> value (`None`: deleted).
///
/// Ordered for a column family read by prefix through a batch (a scan merges the staged
/// range with the store's). Hashed for one read by key only: a write is one hash and one
/// probe instead of a walk down a tree whose every comparison follows a key to the heap (a
/// batch of a few seconds stages tens of thousands of keys of such a family). A scan of a
/// hashed family sorts its staged keys once, until a key is added.
#[derive(Debug, Clone)]
pub(crate) enum Staged {
    Ordered(BTreeMap<Vec<u8>, Value>),
    Hashed {
        map: HashMap<Vec<u8>, Value, foldhash::fast::RandomState>,
        /// The map's keys in order, made by the first scan after a key was added.
        sorted: OnceLock<Vec<Vec<u8>>>,
    },
}

impl Staged {
    pub(crate) fn new(hashed: bool) -> Staged {
        if hashed {
            Staged::Hashed {
                map: HashMap::default(),
                sorted: OnceLock::new(),
            }
        } else {
            Staged::Ordered(BTreeMap::new())
        }
    }

    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Value) {
        match self {
            Staged::Ordered(m) => {
                m.insert(key, value);
            }
            Staged::Hashed { map, sorted } => {
                if map.insert(key, value).is_none() && sorted.get().is_some() {
                    sorted.take();
                }
            }
        }
    }

    /// The staged write of `key`, if any (`Some(None)`: deleted).
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Staged::Ordered(m) => m.get(key),
            Staged::Hashed { map, .. } => map.get(key),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Staged::Ordered(m) => m.len(),
            Staged::Hashed { map, .. } => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every staged write, in key order: RocksDB inserts a batch's keys into a memtable
    /// faster in order (each search starts where the last one ended).
    pub(crate) fn in_order(&self) -> Vec<(&Vec<u8>, Option<&Vec<u8>>)> {
        match self {
            Staged::Ordered(m) => m.iter().map(|(k, v)| (k, v.as_ref())).collect(),
            Staged::Hashed { map, .. } => {
                let mut out: Vec<_> = map.iter().map(|(k, v)| (k, v.as_ref())).collect();
                out.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out
            }
        }
    }

    /// The staged writes of keys starting with `prefix`, in key order.
    pub(crate) fn under(&self, prefix: &[u8]) -> Vec<(&Vec<u8>, Option<&Vec<u8>>)> {
        match self {
            Staged::Ordered(m) => m
                .range::<[u8], _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k, v.as_ref()))
                .collect(),
            Staged::Hashed { map, sorted } => {
                let keys = sorted.get_or_init(|| {
                    let mut keys: Vec<Vec<u8>> = map.keys().cloned().collect();
                    keys.sort_unstable();
                    keys
                });
                let from = keys.partition_point(|k| k.as_slice() < prefix);
                keys[from..]
                    .iter()
                    .take_while(|k| k.starts_with(prefix))
                    .filter_map(|k| map.get_key_value(k))
                    .map(|(k, v)| (k, v.as_ref()))
                    .collect()
            }
        }
    }
}
