//! The RocksDB store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};

use crate::keys::{KeyError, KeyReader, KeyWriter};
use crate::staged::Staged;

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
    /// Per column family (by its place in `cfs`): read by key only through a batch.
    keyed: Arc<Vec<bool>>,
}

/// How some column families of a store are used, for it to suit them (each list names some
/// of the store's column families; the others get the defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning<'a> {
    /// Keys overwritten over and over (a monitor's kept state, rewritten with every sample):
    /// a larger memtable, so that most overwrites end in memory instead of being flushed and
    /// compacted.
    pub hot: &'a [&'a str],
    /// Each key written once and read rarely (a history): the memtable is a vector (an
    /// insert is an append instead of a search of a skip list; an iterator sorts a copy of
    /// it, so read them with few iterators: see [`Store::last_of_each`]), compacted
    /// universally.
    pub logs: &'a [&'a str],
    /// Read by key only through a [`StoreBatch`] (never by prefix, or rarely): the batch
    /// stages their writes in a hash map instead of an ordered one.
    pub keyed: &'a [&'a str],
}

/// Memtable of a column family whose keys are overwritten over and over: several times a
/// deployment's live keys, so that a flush writes each key's last value once instead of
/// every few overwrites of it (what is overwritten in a memtable is never written out).
const HOT_WRITE_BUFFER: usize = 64 << 20;

/// Memtable of the other column families.
const WRITE_BUFFER: usize = 8 << 20;

/// How old a file of a column family's last level must be before RocksDB rewrites it only
/// to drop versions a snapshot kept (a reader of the APIs holds one while it reads): at
/// once, it rewrote each file just flushed in the small column families, and each flush of
/// the kept states. An hour: the space comes back then, or with the next compaction.
const BOTTOMMOST_FILE_DELAY_SECS: &str = "3600";

/// Bytes a write takes in a RocksDB batch besides its key and value (tag, column family,
/// two lengths), at most.
const WRITE_OVERHEAD: usize = 16;

/// The write-ahead log kept before the memtables holding its oldest writes are flushed:
/// bounds what a restart replays when hot memtables fill slowly.
const MAX_TOTAL_WAL: u64 = 256 << 20;

/// Writes that become visible together, with the input offsets they reflect.
///
/// A batch is also the state its writer reads: [`StoreBatch::get`] and
/// [`StoreBatch::scan_prefix`] see the batch's own puts and deletes over the store (or over
/// a base batch still being stored, [`StoreBatch::set_base`]), so that the inputs between
/// two checkpoints can be applied one after the other into one batch and each sees what the
/// ones before it wrote. A key written twice is written once, with its last value.
pub struct StoreBatch {
    store: Store,
    /// Per column family (by its place in the store's list): key -> value, `None` deleted.
    writes: Vec<Staged>,
    /// Per column family: puts of keys written nowhere else in the batch (an append-only
    /// log), in the order they came, without the ordered map's cost per key.
    appends: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    offsets: BTreeMap<(String, i32), i64>,
    /// Bytes of keys and values staged, counted at every write (an overwrite counts again).
    staged_bytes: usize,
    /// A batch being stored, read under this one's writes until it is in the store.
    base: Option<Arc<StoreBatch>>,
}

/// What a processor reads its state from: the store itself, or a batch over it.
pub trait StateRead {
    /// Reads one value.
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key and value of `cf` that starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;
}

impl StateRead for Store {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Store::get(self, cf, key)
    }
    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        Store::scan_prefix(self, cf, prefix)
    }
}

/// A point in time of a [`Store`] (see [`Store::snapshot`]).
pub struct StoreSnapshot<'a> {
    store: &'a Store,
    snapshot: rocksdb::Snapshot<'a>,
}

impl StateRead for StoreSnapshot<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = self.store.cf(cf)?;
        self.snapshot
            .get_cf(&handle, key)
            .map_err(|e| self.store.rocks(e))
    }

    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let handle = self.store.cf(cf)?;
        let items = self
            .snapshot
            .iterator_cf(&handle, IteratorMode::From(prefix, Direction::Forward));
        self.store.under_prefix(items, prefix, usize::MAX)
    }
}

impl StateRead for StoreBatch {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        StoreBatch::get(self, cf, key)
    }
    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        StoreBatch::scan_prefix(self, cf, prefix)
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` with the given column families.
    pub fn open(path: impl AsRef<Path>, column_families: &[&str]) -> Result<Store, StoreError> {
        Store::open_tuned(path, column_families, &Tuning::default())
    }

    /// Like [`Store::open`], some of the column families tuned for how they are used (see
    /// [`Tuning`]).
    pub fn open_tuned(
        path: impl AsRef<Path>,
        column_families: &[&str],
        tuning: &Tuning<'_>,
    ) -> Result<Store, StoreError> {
        let Tuning { hot, logs, keyed } = *tuning;
        let path = path.as_ref().to_path_buf();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(MAX_TOTAL_WAL);
        if !logs.is_empty() {
            // A vector memtable takes one writer at a time (the stages' writes are group
            // commits, one per worker).
            opts.set_allow_concurrent_memtable_write(false);
        }
        let mut names: Vec<String> = vec![OFFSETS_CF.to_string()];
        for cf in column_families {
            if !names.iter().any(|n| n == cf) {
                names.push((*cf).to_string());
            }
        }
        let descriptors = names.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf_opts.set_write_buffer_size(if hot.contains(&name.as_str()) {
                HOT_WRITE_BUFFER
            } else {
                WRITE_BUFFER
            });
            if logs.contains(&name.as_str()) {
                cf_opts.set_memtable_factory(rocksdb::MemtableFactory::Vector);
                // Its new keys fall all over its key range (a history is keyed by instance
                // and monitor, then time): levelled compaction rewrote nearly all of it with
                // every few flushes; universal compaction merges runs of like sizes.
                cf_opts.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
            }
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, &path, descriptors).map_err(|source| {
            StoreError::Rocks {
                path: path.clone(),
                source,
            }
        })?;
        for name in &names {
            if let Some(handle) = db.cf_handle(name) {
                db.set_options_cf(
                    &handle,
                    &[(
                        "bottommost_file_compaction_delay",
                        BOTTOMMOST_FILE_DELAY_SECS,
                    )],
                )
                .map_err(|source| StoreError::Rocks {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        let keyed = names.iter().map(|n| keyed.contains(&n.as_str())).collect();
        Ok(Store {
            db: Arc::new(db),
            path,
            cfs: Arc::new(names),
            keyed: Arc::new(keyed),
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

    /// The place of a column family in the store's list.
    fn cf_index(&self, name: &str) -> Result<usize, StoreError> {
        self.cfs
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::UnknownColumnFamily {
                path: self.path.clone(),
                cf: name.to_string(),
                declared: self.cfs.as_ref().clone(),
            })
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
        let items = self
            .db
            .iterator_cf(&handle, IteratorMode::From(prefix, Direction::Forward));
        self.under_prefix(items, prefix, limit)
    }

    /// The first `limit` entries of an iterator started at `prefix` that start with it.
    fn under_prefix(
        &self,
        items: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for item in items {
            let (k, v) = item.map_err(|e| self.rocks(e))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The last `limit` entries under `prefix`, in key order (read backwards from the end of
    /// the prefix: the newest of a listing keyed by time, without reading the rest).
    pub fn scan_prefix_last(
        &self,
        cf: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let handle = self.cf(cf)?;
        let mut it = self.db.raw_iterator_cf(&handle);
        seek_last_under(&mut it, prefix);
        let mut out = Vec::new();
        while out.len() < limit {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) if k.starts_with(prefix) => out.push((k.to_vec(), v.to_vec())),
                _ => break,
            }
            it.prev();
        }
        it.status().map_err(|e| self.rocks(e))?;
        out.reverse();
        Ok(out)
    }

    /// The last entry under each of `prefixes` (`None` where there is none), read with one
    /// iterator.
    pub fn last_of_each(
        &self,
        cf: &str,
        prefixes: &[Vec<u8>],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let handle = self.cf(cf)?;
        let mut it = self.db.raw_iterator_cf(&handle);
        let mut out = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            seek_last_under(&mut it, prefix);
            it.status().map_err(|e| self.rocks(e))?;
            out.push(match (it.key(), it.value()) {
                (Some(k), Some(v)) if k.starts_with(prefix) => Some((k.to_vec(), v.to_vec())),
                _ => None,
            });
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

    /// The store as it is now, for several reads that must agree with each other (a
    /// checkpoint written between them is not seen by any).
    pub fn snapshot(&self) -> StoreSnapshot<'_> {
        StoreSnapshot {
            store: self,
            snapshot: self.db.snapshot(),
        }
    }

    /// A new, empty batch.
    pub fn batch(&self) -> StoreBatch {
        StoreBatch {
            store: self.clone(),
            writes: self.keyed.iter().map(|k| Staged::new(*k)).collect(),
            appends: vec![Vec::new(); self.cfs.len()],
            offsets: BTreeMap::new(),
            staged_bytes: 0,
            base: None,
        }
    }

    /// Writes a batch and its offsets atomically.
    pub fn write(&self, batch: StoreBatch) -> Result<(), StoreError> {
        self.write_all(&[&batch])
    }

    /// Writes batches and their offsets atomically, in order (a key in a later batch wins).
    /// A batch's base is not written: it is stored on its own.
    pub fn write_all(&self, batches: &[&StoreBatch]) -> Result<(), StoreError> {
        // Room for everything at once: growing a batch of many megabytes step by step
        // copies it again at every step.
        let room: usize = batches
            .iter()
            .map(|b| b.staged_bytes + WRITE_OVERHEAD * (b.len() + b.offsets.len()))
            .sum();
        let mut out = WriteBatch::with_capacity_bytes(room);
        for batch in batches {
            // Per column family, the map's writes, then the appends.
            let per_cf = batch.writes.iter().zip(&batch.appends);
            for (name, (cf_writes, appends)) in self.cfs.iter().zip(per_cf) {
                if cf_writes.is_empty() && appends.is_empty() {
                    continue;
                }
                let handle = self.cf(name)?;
                let appended = appends.iter().map(|(k, v)| (k, Some(v)));
                for (key, value) in cf_writes.in_order().into_iter().chain(appended) {
                    match value {
                        Some(v) => out.put_cf(&handle, key, v),
                        None => out.delete_cf(&handle, key),
                    }
                }
            }
            if !batch.offsets.is_empty() {
                let handle = self.cf(OFFSETS_CF)?;
                for ((topic, partition), next) in &batch.offsets {
                    out.put_cf(&handle, offset_key(topic, *partition), next.to_be_bytes());
                }
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        // A batch's keys are in order: each insert starts from where the previous one went.
        options.set_memtable_insert_hint_per_batch(true);
        self.db.write_opt(out, &options).map_err(|e| self.rocks(e))
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

    /// Stages a put.
    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.set(cf, key.to_vec(), Some(value.to_vec()))
    }

    /// Stages a delete.
    pub fn delete(&mut self, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        self.set(cf, key.to_vec(), None)
    }

    /// Stages a put (`Some`) or a delete (`None`) of bytes the caller hands over (a value
    /// made to be stored is not copied again).
    pub fn set(
        &mut self,
        cf: &str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let i = self.store.cf_index(cf)?;
        self.staged_bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        self.writes[i].insert(key, value);
        Ok(())
    }

    /// Stages a put of a key that nothing else in this batch (or its base) writes, such as
    /// an entry of an append-only log: it skips the ordered map that keeps a key's last
    /// write, and is stored after the map's writes of its column family. Reads through the
    /// batch still see it (a read of the column family scans its appends: they are meant
    /// for keys rarely read back before they are stored).
    pub fn append(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let i = self.store.cf_index(cf)?;
        self.staged_bytes += key.len() + value.len();
        self.appends[i].push((key, value));
        Ok(())
    }

    /// The value of an appended key, if `key` was appended to `cf` (index `i`).
    fn appended(&self, i: usize, key: &[u8]) -> Option<&Vec<u8>> {
        self.appends[i]
            .iter()
            .rev()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }

    /// Reads from `base` under this batch's writes until [`StoreBatch::drop_base`]: a batch
    /// handed to a writer stays readable while it is being stored.
    pub fn set_base(&mut self, base: Arc<StoreBatch>) {
        self.base = Some(base);
    }

    /// The base is in the store: read the store again. Returns the base (whoever drops
    /// the last reference frees it: a large batch is better freed off a hot thread).
    pub fn drop_base(&mut self) -> Option<Arc<StoreBatch>> {
        self.base.take()
    }

    /// Reads one value: this batch's write of the key, else its base's, else the store's.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let i = self.store.cf_index(cf)?;
        if let Some(v) = self.appended(i, key) {
            return Ok(Some(v.clone()));
        }
        match (self.writes[i].get(key), &self.base) {
            (Some(staged), _) => Ok(staged.clone()),
            (None, Some(base)) => base.get(cf, key),
            (None, None) => self.store.get(cf, key),
        }
    }

    /// Every key and value of `cf` that starts with `prefix`, in key order, with this
    /// batch's writes over the store's.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let i = self.store.cf_index(cf)?;
        let stored = match &self.base {
            Some(base) => base.scan_prefix(cf, prefix)?,
            None => self.store.scan_prefix(cf, prefix)?,
        };
        // The appended writes first, the latest first: of two writes of one key, the one a
        // `get` would read stays (the sort is stable, the dedup keeps the first).
        let appended = self.appends[i].iter().rev();
        let appended = appended.filter(|(k, _)| k.starts_with(prefix));
        let mut staged: Vec<(&Vec<u8>, Option<&Vec<u8>>)> =
            appended.map(|(k, v)| (k, Some(v))).collect();
        let any_appended = !staged.is_empty();
        staged.extend(self.writes[i].under(prefix));
        if any_appended {
            staged.sort_by(|a, b| a.0.cmp(b.0));
            staged.dedup_by(|later, kept| later.0 == kept.0);
        }
        let mut staged = staged.into_iter().peekable();
        if staged.peek().is_none() {
            return Ok(stored);
        }
        // Merge two sorted lists; on the same key the staged write wins.
        let mut out = Vec::with_capacity(stored.len());
        let mut stored = stored.into_iter().peekable();
        loop {
            use std::cmp::Ordering;
            let order = match (stored.peek(), staged.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((sk, _)), Some((wk, _))) => sk.as_slice().cmp(wk.as_slice()),
            };
            if order == Ordering::Equal {
                stored.next();
            }
            if order != Ordering::Less {
                if let Some((k, Some(v))) = staged.next() {
                    out.push((k.clone(), v.clone()));
                }
            } else if let Some(e) = stored.next() {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Number of keys written (put or deleted).
    pub fn len(&self) -> usize {
        let appended: usize = self.appends.iter().map(Vec::len).sum();
        self.writes.iter().map(Staged::len).sum::<usize>() + appended
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.offsets.is_empty()
    }

    /// Bytes of keys and values written into the batch, every write counted (an upper
    /// bound of what it holds): what a writer bounds its batches by.
    pub fn staged_bytes(&self) -> usize {
        self.staged_bytes
    }
}

/// Puts `it` on the last key that starts with `prefix`; where there is none, on a key
/// before them or off the end.
fn seek_last_under<D: rocksdb::DBAccess>(
    it: &mut rocksdb::DBRawIteratorWithThreadMode<'_, D>,
    prefix: &[u8],
) {
    // The first key after every key that starts with `prefix`, if there is one.
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    match end.last_mut() {
        Some(last) => {
            *last += 1;
            it.seek_for_prev(&end);
            if it.key() == Some(end.as_slice()) {
                it.prev();
            }
        }
        None => it.seek_to_last(),
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

    /// RocksDB's options file of the store, as it was last written (the options in force).
    fn options_file(dir: &Path) -> String {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("OPTIONS-") && !n.ends_with(".dbtmp"))
            .collect();
        files.sort_by_key(|n| n["OPTIONS-".len()..].parse::<u64>().unwrap_or(0));
        let last = files.last().expect("an options file");
        std::fs::read_to_string(dir.join(last)).expect("read")
    }

    /// Every column family waits an hour before rewriting a last-level file only for what
    /// a snapshot kept, and says so in the options RocksDB keeps with the store.
    #[test]
    fn last_level_files_are_not_rewritten_at_once_for_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = Store::open(dir.path(), &["a", "b"]).expect("open");
        let text = options_file(dir.path());
        for cf in [OFFSETS_CF, "a", "b"] {
            let section = text
                .split("[CFOptions \"")
                .find(|s| s.starts_with(&format!("{cf}\"")))
                .unwrap_or_else(|| panic!("no options of {cf}: {text}"));
            let delay = section
                .lines()
                .find_map(|l| l.trim().strip_prefix("bottommost_file_compaction_delay="));
            assert_eq!(delay, Some(BOTTOMMOST_FILE_DELAY_SECS), "{cf}");
        }
    }

    /// Overwrites of a few keys: a hot column family keeps them in its memtable where an
    /// ordinary one has switched to a new memtable (to flush) already; the last value of
    /// each key is read back, and after a reopen.
    #[test]
    fn a_hot_column_family_holds_its_overwrites_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let switched = |store: &Store, cf: &str| -> u64 {
            let handle = store.cf(cf).expect("cf");
            [
                "rocksdb.num-immutable-mem-table",
                "rocksdb.num-files-at-level0",
            ]
            .iter()
            .map(|p| {
                store
                    .db
                    .property_int_value_cf(&handle, *p)
                    .expect("property")
                    .unwrap_or(0)
            })
            .sum()
        };
        let hot = Tuning {
            hot: &["hot"],
            ..Tuning::default()
        };
        {
            let store = Store::open_tuned(dir.path(), &["hot", "cold"], &hot).expect("open");
            // 12 MiB into each: more than an ordinary memtable, less than a hot one.
            for round in 0..48u32 {
                let mut b = store.batch();
                for key in 0..64u8 {
                    let value = vec![(round % 251) as u8; 4096];
                    b.put("hot", &[1, key], &value).expect("put");
                    b.put("cold", &[1, key], &value).expect("put");
                }
                b.set_offset("t", 0, i64::from(round) + 1);
                store.write(b).expect("write");
            }
            assert!(switched(&store, "cold") > 0, "an ordinary memtable filled");
            assert_eq!(switched(&store, "hot"), 0, "a hot memtable holds it all");
            let scan = store.scan_prefix("hot", &[1]).expect("scan");
            assert_eq!(scan.len(), 64);
            assert!(scan.iter().all(|(_, v)| v == &vec![47u8; 4096]));
        }
        let store = Store::open_tuned(dir.path(), &["hot", "cold"], &hot).expect("reopen");
        assert_eq!(
            store.get("hot", &[1, 3]).expect("get"),
            Some(vec![47u8; 4096])
        );
        assert_eq!(
            store.get("cold", &[1, 3]).expect("get"),
            Some(vec![47u8; 4096])
        );
        assert_eq!(store.offset("t", 0).expect("offset"), Some(48));
    }

    #[test]
    fn the_last_entries_of_a_prefix_are_read_backwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        the_last_entries_of(&Store::open(dir.path(), &["cf"]).expect("open"));
        // The same from a vector memtable (a log column family), before and after a flush.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_tuned(
            dir.path(),
            &["cf"],
            &Tuning {
                logs: &["cf"],
                ..Tuning::default()
            },
        )
        .expect("open");
        the_last_entries_of(&store);
        store.flush().expect("flush");
        the_last_entries_of(&store);
    }

    fn the_last_entries_of(store: &Store) {
        let mut b = store.batch();
        // Neighbours on both sides, the key just past the prefix, and prefixes ending in
        // 0xff (whose end is found by carrying).
        for key in [
            &[1u8, 9][..],
            &[2, 0],
            &[2, 1],
            &[2, 2],
            &[2, 3],
            &[3],
            &[3, 0],
            &[4, 0xff, 1],
            &[4, 0xff, 2],
            &[0xff, 0xff, 1],
            &[0xff, 0xff, 2],
        ] {
            b.put("cf", key, key).expect("put");
        }
        store.write(b).expect("write");
        let keys = |prefix: &[u8], limit: usize| -> Vec<Vec<u8>> {
            store
                .scan_prefix_last("cf", prefix, limit)
                .expect("scan")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(&[2], 2),
            vec![vec![2, 2], vec![2, 3]],
            "the last two, in order"
        );
        assert_eq!(keys(&[2], 10).len(), 4, "all of them, not the neighbours");
        assert_eq!(keys(&[2], 0), Vec::<Vec<u8>>::new());
        assert_eq!(keys(&[4, 0xff], 1), vec![vec![4, 0xff, 2]]);
        assert_eq!(
            keys(&[0xff, 0xff], 5),
            vec![vec![0xff, 0xff, 1], vec![0xff, 0xff, 2]]
        );
        assert_eq!(
            keys(&[5], 5),
            Vec::<Vec<u8>>::new(),
            "nothing under the prefix"
        );
        assert_eq!(
            keys(&[3], 5),
            vec![vec![3], vec![3, 0]],
            "the prefix itself is a key"
        );
        let last: Vec<Option<Vec<u8>>> = store
            .last_of_each(
                "cf",
                &[
                    vec![2],
                    vec![5],
                    vec![4, 0xff],
                    vec![0xff, 0xff],
                    vec![3],
                    vec![1],
                    vec![0],
                ],
            )
            .expect("last of each")
            .into_iter()
            .map(|e| e.map(|(k, _)| k))
            .collect();
        assert_eq!(
            last,
            vec![
                Some(vec![2, 3]),
                None,
                Some(vec![4, 0xff, 2]),
                Some(vec![0xff, 0xff, 2]),
                Some(vec![3, 0]),
                Some(vec![1, 9]),
                None,
            ]
        );
    }

    #[test]
    fn state_and_offsets_are_written_together_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), &["samples"]).expect("open");
            assert_eq!(store.offset("t", 0).expect("offset"), None);
            let mut b = store.batch();
            b.put("samples", b"k1", b"v1").expect("put");
            b.set_offset("t", 0, 5);
            b.set_offset("t", 3, 9);
            store.write(b).expect("write");
            let mut b = store.batch();
            b.delete("samples", b"k1").expect("delete");
            b.put("samples", b"k2", b"v2").expect("put");
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
    fn a_batch_reads_its_own_writes_over_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["s", "t"]).expect("open");
        let mut b = store.batch();
        for k in ["a1", "a2", "a3", "b1"] {
            b.put("s", k.as_bytes(), b"stored").expect("put");
        }
        store.write(b).expect("write");
        let mut b = store.batch();
        b.put("s", b"a2", b"new").expect("put");
        b.delete("s", b"a3").expect("delete");
        b.put("s", b"a0", b"added").expect("put");
        b.put("t", b"a9", b"other cf").expect("put");
        assert_eq!(b.get("s", b"a2").expect("get"), Some(b"new".to_vec()));
        assert_eq!(
            b.get("s", b"a3").expect("get"),
            None,
            "deleted in the batch"
        );
        assert_eq!(b.get("s", b"a1").expect("get"), Some(b"stored".to_vec()));
        let keys = |entries: Vec<Entry>| {
            entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v)
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(b.scan_prefix("s", b"a").expect("scan")),
            ["a0=added", "a1=stored", "a2=new"]
        );
        assert_eq!(
            store.get("s", b"a2").expect("get"),
            Some(b"stored".to_vec()),
            "nothing reaches the store before the batch is written"
        );
        b.put("s", b"a2", b"last").expect("put");
        assert_eq!(b.len(), 4, "a key written twice is one write");
        store.write(b).expect("write");
        assert_eq!(
            keys(store.scan_prefix("s", b"").expect("scan")),
            ["a0=added", "a1=stored", "a2=last", "b1=stored"]
        );
        let err = store.batch().put("u", b"k", b"v").expect_err("unknown cf");
        assert!(err.to_string().contains("no column family \"u\""), "{err}");
    }

    /// Writes to stage: key, value (`None`: delete), and whether a put is an append (its
    /// key is then made unique: an appended key is written nowhere else in the batch).
    type Writes = Vec<(Vec<u8>, Option<Vec<u8>>, bool)>;

    /// Stores `stored`, then stages `staged` (the first `split` writes in a base the last
    /// batch reads through, when given): the last batch reads as a map after all the
    /// writes would, and storing the batches in order leaves the store equal to that map.
    fn reads_and_writes_like_a_map(
        stored: &BTreeMap<Vec<u8>, Vec<u8>>,
        staged: &Writes,
        split: Option<usize>,
        prefix: &[u8],
        keyed: bool,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let tuning = Tuning {
            keyed: if keyed { &["s"] } else { &[] },
            ..Tuning::default()
        };
        let store = Store::open_tuned(dir.path(), &["s"], &tuning).expect("open");
        let mut b = store.batch();
        for (k, v) in stored {
            b.put("s", k, v).expect("put");
        }
        store.write(b).expect("write");
        let mut model = stored.clone();
        let split = split.map(|n| n.min(staged.len()));
        let mut base = store.batch();
        let mut top = store.batch();
        let mut keys = Vec::new();
        let scanned = |batch: &StoreBatch, model: &BTreeMap<Vec<u8>, Vec<u8>>| {
            let expected: Vec<Entry> = model
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            proptest::prop_assert_eq!(batch.scan_prefix("s", prefix).expect("scan"), expected);
            Ok(())
        };
        for (i, (k, v, append)) in staged.iter().enumerate() {
            // A scan halfway, then more writes: what a later scan reads is not what the
            // first one saw.
            if i == staged.len() / 2 && split.is_none() {
                scanned(&top, &model)?;
            }
            if Some(i) == split {
                top.set_base(Arc::new(std::mem::replace(&mut base, store.batch())));
            }
            let into = if split.is_some_and(|n| i < n) {
                &mut base
            } else {
                &mut top
            };
            match v {
                Some(v) if *append => {
                    // Other keys are made of bytes below 4.
                    let k = [k.as_slice(), &[9, i as u8]].concat();
                    into.append("s", k.clone(), v.clone()).expect("append");
                    model.insert(k.clone(), v.clone());
                    keys.push(k);
                }
                Some(v) => {
                    into.put("s", k, v).expect("put");
                    model.insert(k.clone(), v.clone());
                    keys.push(k.clone());
                }
                None => {
                    into.delete("s", k).expect("delete");
                    model.remove(k);
                    keys.push(k.clone());
                }
            }
        }
        if split == Some(staged.len()) {
            top.set_base(Arc::new(base));
        }
        for k in &keys {
            proptest::prop_assert_eq!(top.get("s", k).expect("get"), model.get(k).cloned());
        }
        scanned(&top, &model)?;
        match top.drop_base() {
            Some(base) => store.write_all(&[&base, &top]).expect("write"),
            None => store.write(top).expect("write"),
        }
        let all: Vec<Entry> = model.into_iter().collect();
        proptest::prop_assert_eq!(store.scan_prefix("s", b"").expect("scan"), all);
        Ok(())
    }

    proptest::proptest! {
        /// A batch over a store reads and writes like a map, its writes staged in order or
        /// hashed (a column family read by key).
        #[test]
        fn a_batch_reads_and_writes_like_a_map(
            stored in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), proptest::collection::vec(0u8..255, 0..3), 0..20),
            staged in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(proptest::collection::vec(0u8..255, 0..3)), proptest::bool::ANY), 0..20),
            prefix in proptest::collection::vec(0u8..4, 0..3),
            keyed in proptest::bool::ANY,
        ) {
            reads_and_writes_like_a_map(&stored, &staged, None, &prefix, keyed)?;
        }

        /// The writes split between a base (a batch set aside, being stored) and a batch
        /// over it: the same.
        #[test]
        fn a_batch_over_a_base_reads_and_writes_like_a_map(
            stored in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), proptest::collection::vec(0u8..255, 0..3), 0..20),
            staged in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(proptest::collection::vec(0u8..255, 0..3)), proptest::bool::ANY), 0..20),
            split in 0usize..20,
            prefix in proptest::collection::vec(0u8..4, 0..3),
            keyed in proptest::bool::ANY,
        ) {
            reads_and_writes_like_a_map(&stored, &staged, Some(split), &prefix, keyed)?;
        }
    }

    /// Reads through a snapshot agree with each other: a write after it is seen by none.
    #[test]
    fn a_snapshot_reads_the_store_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["s"]).expect("open");
        let mut b = store.batch();
        b.put("s", b"a1", b"old").expect("put");
        store.write(b).expect("write");
        let snapshot = store.snapshot();
        let mut b = store.batch();
        b.put("s", b"a1", b"new").expect("put");
        b.put("s", b"a2", b"added").expect("put");
        store.write(b).expect("write");
        assert_eq!(
            snapshot.get("s", b"a1").expect("get"),
            Some(b"old".to_vec())
        );
        assert_eq!(snapshot.get("s", b"a2").expect("get"), None);
        assert_eq!(
            snapshot.scan_prefix("s", b"a").expect("scan"),
            [(b"a1".to_vec(), b"old".to_vec())]
        );
        assert_eq!(store.scan_prefix("s", b"a").expect("scan").len(), 2);
        let err = snapshot.get("u", b"k").expect_err("unknown cf");
        assert!(err.to_string().contains("no column family \"u\""), "{err}");
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
        b.put("s", b"a", b"1").expect("put");
        b.set_offset("t", 1, 10);
        store.write(b).expect("write");
        store.checkpoint(dir.path().join("cp")).expect("checkpoint");
        let mut b = store.batch();
        b.put("s", b"a", b"2").expect("put");
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
            b.put("s", &key, v.as_bytes()).expect("put");
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
