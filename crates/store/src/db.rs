//! The RocksDB store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};

use crate::keys::{KeyError, KeyReader, KeyWriter};

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Column family of the input positions the state reflects.
pub const OFFSETS_CF: &str = "offsets";
const OFFSET_PREFIX: u8 = 0x01;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store at {path}: {source}")]
    Rocks {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("state store at {path} has no column family {cf:?} (declared: {declared:?})")]
    UnknownColumnFamily {
        path: PathBuf,
        cf: String,
        declared: Vec<String>,
    },
    #[error("state store at {path}: column family {cf:?} has a bad key: {source}")]
    BadKey {
        path: PathBuf,
        cf: String,
        #[source]
        source: KeyError,
    },
    #[error("state store: a stored value cannot be read: {0}")]
    Corrupt(String),
    #[error("state store at {path}: offset of {topic}/{partition} is {len} bytes, expected 8")]
    BadOffset {
        path: PathBuf,
        topic: String,
        partition: i32,
        len: usize,
    },
}

/// A RocksDB database with named column families and an offsets column family.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
    cfs: Arc<Vec<String>>,
}

/// Writes that become visible together, with the input offsets they reflect.
pub struct StoreBatch {
    batch: WriteBatch,
    offsets: BTreeMap<(String, i32), i64>,
    puts: usize,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with the given column families.
    pub fn open(path: impl AsRef<Path>, column_families: &[&str]) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_keep_log_file_num(4);
        let mut names: Vec<String> = vec![OFFSETS_CF.to_string()];
        for cf in column_families {
            if !names.iter().any(|n| n == cf) {
                names.push((*cf).to_string());
            }
        }
        let descriptors = names.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf_opts.set_write_buffer_size(8 << 20);
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, &path, descriptors).map_err(|source| {
            StoreError::Rocks {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Store {
            db: Arc::new(db),
            path,
            cfs: Arc::new(names),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rocks(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::UnknownColumnFamily {
                path: self.path.clone(),
                cf: name.to_string(),
                declared: self.cfs.as_ref().clone(),
            })
    }

    /// Reads one value.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = self.cf(cf)?;
        self.db.get_cf(&handle, key).map_err(|e| self.rocks(e))
    }

    /// Every key and value of `cf` that starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.scan_prefix_limit(cf, prefix, usize::MAX)
    }

    /// Like [`Store::scan_prefix`], at most `limit` entries.
    pub fn scan_prefix_limit(
        &self,
        cf: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let handle = self.cf(cf)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(&handle, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.rocks(e))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Like [`Store::scan_prefix_limit`], starting after `after` (exclusive) when given: a
    /// page of a longer listing.
    pub fn scan_prefix_after(
        &self,
        cf: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let handle = self.cf(cf)?;
        let start = match after {
            Some(a) if a > prefix => a,
            _ => prefix,
        };
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(&handle, IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.rocks(e))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if after.is_some_and(|a| k.as_ref() == a) {
                continue;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// A new, empty batch.
    pub fn batch(&self) -> StoreBatch {
        StoreBatch {
            batch: WriteBatch::default(),
            offsets: BTreeMap::new(),
            puts: 0,
        }
    }

    /// Writes a batch and its offsets atomically.
    pub fn write(&self, batch: StoreBatch) -> Result<(), StoreError> {
        let StoreBatch {
            mut batch, offsets, ..
        } = batch;
        if !offsets.is_empty() {
            let handle = self.cf(OFFSETS_CF)?;
            for ((topic, partition), next) in &offsets {
                batch.put_cf(&handle, offset_key(topic, *partition), next.to_be_bytes());
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        // A batch's keys mostly follow each other (one host's): each insert starts from
        // where the previous one of the batch went.
        options.set_memtable_insert_hint_per_batch(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| self.rocks(e))
    }

    /// Stages a put in `batch`.
    pub fn put(
        &self,
        batch: &mut StoreBatch,
        cf: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let handle = self.cf(cf)?;
        batch.batch.put_cf(&handle, key, value);
        batch.puts += 1;
        Ok(())
    }

    /// Stages a delete in `batch`.
    pub fn delete(&self, batch: &mut StoreBatch, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        let handle = self.cf(cf)?;
        batch.batch.delete_cf(&handle, key);
        batch.puts += 1;
        Ok(())
    }

    /// The next offset to consume from `topic`/`partition`: one past the last input the
    /// stored state reflects. `None` if the state reflects nothing from that partition.
    pub fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        match self.get(OFFSETS_CF, &offset_key(topic, partition))? {
            None => Ok(None),
            Some(bytes) => {
                let arr: [u8; 8] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::BadOffset {
                            path: self.path.clone(),
                            topic: topic.to_string(),
                            partition,
                            len: bytes.len(),
                        })?;
                Ok(Some(i64::from_be_bytes(arr)))
            }
        }
    }

    /// Every stored offset: `(topic, partition) -> next offset`.
    pub fn offsets(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.scan_prefix(OFFSETS_CF, &[OFFSET_PREFIX])? {
            let bad_key = |source| StoreError::BadKey {
                path: self.path.clone(),
                cf: OFFSETS_CF.to_string(),
                source,
            };
            let mut r = KeyReader::new(&k, OFFSET_PREFIX).map_err(bad_key)?;
            let topic = r.str().map_err(bad_key)?;
            let partition = r.i32().map_err(bad_key)?;
            r.finish().map_err(bad_key)?;
            let arr: [u8; 8] = v.as_slice().try_into().map_err(|_| StoreError::BadOffset {
                path: self.path.clone(),
                topic: topic.clone(),
                partition,
                len: v.len(),
            })?;
            out.insert((topic, partition), i64::from_be_bytes(arr));
        }
        Ok(out)
    }

    /// Writes a consistent copy of the store to `dir` (which must not exist): hard links
    /// where possible, so it is cheap. Open it with [`Store::open`] to restore.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<(), StoreError> {
        let cp = Checkpoint::new(&self.db).map_err(|e| self.rocks(e))?;
        cp.create_checkpoint(dir.as_ref())
            .map_err(|e| self.rocks(e))
    }

    /// Flushes memtables to disk (a clean shutdown does not need it: the WAL is durable).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.rocks(e))?;
        for cf in self.cfs.iter() {
            let handle = self.cf(cf)?;
            self.db.flush_cf(&handle).map_err(|e| self.rocks(e))?;
        }
        Ok(())
    }

    /// Compacts every column family fully (for measurements and after bulk loads).
    pub fn compact(&self) -> Result<(), StoreError> {
        for cf in self.cfs.iter() {
            let handle = self.cf(cf)?;
            self.db
                .compact_range_cf(&handle, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Approximate bytes on disk of live data in `cf`.
    pub fn approximate_size(&self, cf: &str) -> Result<u64, StoreError> {
        let handle = self.cf(cf)?;
        Ok(self
            .db
            .property_int_value_cf(&handle, "rocksdb.estimate-live-data-size")
            .map_err(|e| self.rocks(e))?
            .unwrap_or(0))
    }
}

impl StoreBatch {
    /// Records that the state in this batch reflects `topic`/`partition` up to (not
    /// including) `next_offset`.
    pub fn set_offset(&mut self, topic: &str, partition: i32, next_offset: i64) {
        self.offsets
            .insert((topic.to_string(), partition), next_offset);
    }

    /// Number of puts and deletes staged.
    pub fn len(&self) -> usize {
        self.puts
    }

    pub fn is_empty(&self) -> bool {
        self.puts == 0 && self.offsets.is_empty()
    }
}

fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    KeyWriter::new(OFFSET_PREFIX)
        .str(topic)
        .i32(partition)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_offsets_are_written_together_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), &["samples"]).expect("open");
            assert_eq!(store.offset("t", 0).expect("offset"), None);
            let mut b = store.batch();
            store.put(&mut b, "samples", b"k1", b"v1").expect("put");
            b.set_offset("t", 0, 5);
            b.set_offset("t", 3, 9);
            store.write(b).expect("write");
            let mut b = store.batch();
            store.delete(&mut b, "samples", b"k1").expect("delete");
            store.put(&mut b, "samples", b"k2", b"v2").expect("put");
            b.set_offset("t", 0, 6);
            store.write(b).expect("write");
        }
        let store = Store::open(dir.path(), &["samples"]).expect("reopen");
        assert_eq!(store.get("samples", b"k1").expect("get"), None);
        assert_eq!(
            store.get("samples", b"k2").expect("get"),
            Some(b"v2".to_vec())
        );
        assert_eq!(store.offset("t", 0).expect("offset"), Some(6));
        let all = store.offsets().expect("offsets");
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            vec![(("t".to_string(), 0), 6), (("t".to_string(), 3), 9)]
        );
    }

    #[test]
    fn unknown_column_family_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["a"]).expect("open");
        let err = store.get("b", b"k").expect_err("unknown cf");
        let msg = err.to_string();
        assert!(msg.contains("no column family \"b\""), "{msg}");
    }

    #[test]
    fn checkpoint_restores_a_consistent_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("live"), &["s"]).expect("open");
        let mut b = store.batch();
        store.put(&mut b, "s", b"a", b"1").expect("put");
        b.set_offset("t", 1, 10);
        store.write(b).expect("write");
        store.checkpoint(dir.path().join("cp")).expect("checkpoint");
        let mut b = store.batch();
        store.put(&mut b, "s", b"a", b"2").expect("put");
        b.set_offset("t", 1, 11);
        store.write(b).expect("write");
        let restored = Store::open(dir.path().join("cp"), &["s"]).expect("open checkpoint");
        assert_eq!(restored.get("s", b"a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(restored.offset("t", 1).expect("offset"), Some(10));
    }

    #[test]
    fn prefix_scans_stop_at_the_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["s"]).expect("open");
        let mut b = store.batch();
        for (k, v) in [("host-a", "1"), ("host-b", "2"), ("host-c", "3")] {
            let key = KeyWriter::new(2).str(k).finish();
            store.put(&mut b, "s", &key, v.as_bytes()).expect("put");
        }
        store.write(b).expect("write");
        let prefix = KeyWriter::new(2).str("host-b").finish();
        let got = store.scan_prefix("s", &prefix).expect("scan");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"2");
        assert_eq!(
            store.scan_prefix_limit("s", &[2], 2).expect("scan").len(),
            2
        );
    }
}
