//! The perf stage.

use std::sync::Arc;

use healthstream_bus::{Message, OutboundRecord};
use healthstream_contracts::records::PerfBatch;
use healthstream_contracts::{partition_for_key, Codec, FlatPerf};
use healthstream_engine::engine::Sample;
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{KeyWriter, Store, StoreBatch, StoreError};
use serde::Serialize;

use crate::metrics;
use crate::sealed::{self, SealedHosts};
use crate::wire::{index_in, put_var, put_vstr, Cursor};
use crate::FastMap;

/// Column family of the latest sample per counter.
const LATEST_CF: &str = "perf_latest";
/// One value per root host (0x10 was one value per counter, before).
const LATEST_PREFIX: u8 = 0x11;

/// Column families of the perf stage.
pub const PERF_CFS: &[&str] = &[LATEST_CF];

/// The latest sample of one counter of one hosting tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestSample {
    pub root_host: String,
    pub object: String,
    pub counter: String,
    pub instance: String,
    pub time: i64,
    pub value: f64,
    pub collector: String,
    /// Where the sample was read from.
    pub partition: i32,
    pub offset: i64,
}

/// Keeps the latest sample of every counter.
pub struct PerfStage {
    partitions: u32,
    latest: LatestCache,
}

impl PerfStage {
    /// `partitions` is the partition count of the perf topic, to check that each batch
    /// is on the partition of its root host.
    pub fn new(partitions: i32) -> Self {
        PerfStage {
            partitions: partitions.max(1) as u32,
            latest: LatestCache::default(),
        }
    }
}

/// The key of a hosting tree's latest samples: one stored value per root host, so that a
/// batch of a host's counters is one write, not one per counter.
fn host_key(root_host: &str) -> Vec<u8> {
    KeyWriter::new(LATEST_PREFIX).str(root_host).finish()
}

/// The latest sample of one counter, as kept.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    time: i64,
    value: f64,
    partition: i32,
    offset: i64,
    /// Shared by the samples of a batch.
    collector: Arc<str>,
}

/// A host's latest samples by "object\0counter\0instance" (see [`counter_key`]), with the
/// layout of the host's last batch: a host's batches bring the same counters in the same
/// order, so a sample is first looked for where the last batch had it, by its names,
/// without making its key or searching the ordered map.
#[derive(Debug, Clone, Default)]
struct HostLatest {
    /// The generation of the cache's changed hosts ([`SealedHosts::generation`]) in which
    /// the host was last marked changed (0: never): a host changed again before the next
    /// seal is not looked for among the changed.
    marked: u64,
    /// The keys of the samples, one after the other (one run of memory per host).
    keys: String,
    /// The samples with where their keys are in `keys`, in the order they were first seen.
    kept: Vec<((u32, u32), Kept)>,
    /// The places in `kept` in the order of their keys (the order they are stored in).
    order: Vec<usize>,
    /// The place in `kept` of each sample of the host's last batch, in batch order.
    layout: Vec<usize>,
}

impl PartialEq for HostLatest {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// Is `key` the counter key of these names?
fn same_names(key: &str, object: &str, counter: &str, instance: &str) -> bool {
    let key = key.as_bytes();
    let (o, c) = (object.len(), counter.len());
    key.len() == o + c + instance.len() + 2
        && key[..o] == *object.as_bytes()
        && key[o] == 0
        && key[o + 1..o + 1 + c] == *counter.as_bytes()
        && key[o + 1 + c] == 0
        && key[o + 2 + c..] == *instance.as_bytes()
}

impl HostLatest {
    fn new() -> Self {
        Self::default()
    }

    fn len(&self) -> usize {
        self.kept.len()
    }

    /// The key of the `i`-th kept sample.
    fn key(&self, i: usize) -> &str {
        let (start, end) = self.kept[i].0;
        &self.keys[start as usize..end as usize]
    }

    /// In key order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Kept)> {
        self.order.iter().map(|&i| (self.key(i), &self.kept[i].1))
    }

    /// The place in `kept` of `key`, or where in `order` it would go.
    fn search(&self, key: &str) -> Result<usize, usize> {
        self.order
            .binary_search_by(|&i| self.key(i).cmp(key))
            .map(|at| self.order[at])
    }

    #[cfg(test)]
    fn get(&self, key: &str) -> Option<&Kept> {
        self.search(key).ok().map(|i| &self.kept[i].1)
    }

    fn insert(&mut self, key: &str, value: Kept) {
        match self.search(key) {
            Ok(i) => self.kept[i].1 = value,
            Err(at) => {
                self.order.insert(at, self.kept.len());
                let start = self.keys.len() as u32;
                self.keys.push_str(key);
                self.kept.push(((start, self.keys.len() as u32), value));
            }
        }
    }

    /// The kept sample of the `at`-th sample of a batch, where the last batch had the same
    /// names at that place, else by its key (made in `buf`); `None` if none is kept yet.
    /// Records the place found as the layout's.
    fn find(&mut self, at: usize, s: &Sample<'_>, buf: &mut String) -> Option<&mut Kept> {
        let known = self.layout.get(at).copied().filter(|&i| {
            i < self.kept.len() && same_names(self.key(i), s.object, s.counter, s.instance)
        });
        let place = match known {
            Some(i) => i,
            None => {
                counter_key(buf, s.object, s.counter, s.instance);
                let i = self.search(buf).ok()?;
                self.set_layout(at, i);
                i
            }
        };
        Some(&mut self.kept[place].1)
    }

    /// Adds the sample of `key` (made by [`counter_key`]), the `at`-th of its batch.
    fn add(&mut self, at: usize, key: &str, value: Kept) {
        let i = self.kept.len();
        self.insert(key, value);
        self.set_layout(at, i);
    }

    fn set_layout(&mut self, at: usize, place: usize) {
        if self.layout.len() <= at {
            self.layout.resize(at + 1, usize::MAX);
        }
        self.layout[at] = place;
    }
}

fn counter_key(buf: &mut String, object: &str, counter: &str, instance: &str) {
    buf.clear();
    buf.push_str(object);
    buf.push('\0');
    buf.push_str(counter);
    buf.push('\0');
    buf.push_str(instance);
}

/// Version 2 of a host's value: this byte, then the sources (collector, partition, offset:
/// a host's samples mostly come from one batch), then the "object, counter" pairs, each
/// once, then the entries: the index of its pair, its instance, time and value (8 bytes
/// each) and the index of its source. Counts, lengths, indexes, partitions and offsets are
/// variable-length integers (partitions and offsets zigzag-encoded).
///
/// Version 1, still read, had the entries one after the other, each with its whole counter
/// key, time, value, partition, offset and collector, strings with a 4-byte length; its
/// first byte is 0 (a key's length is far below 2^24) and it was never empty.
const LATEST_V2: u8 = 2;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn encode_host(latest: &HostLatest) -> Vec<u8> {
    let mut sources: Vec<(&str, i32, i64)> = Vec::new();
    let mut pairs: Vec<&str> = Vec::new();
    let mut entries = Vec::with_capacity(latest.len());
    for (k, e) in latest.iter() {
        // Keys are made by `counter_key`: "object\0counter\0instance".
        let (pair, instance) = k.rsplit_once('\0').unwrap_or((k, ""));
        let p = index_in(&mut pairs, pair);
        let src = index_in(&mut sources, (&*e.collector, e.partition, e.offset));
        entries.push((p, instance, e.time, e.value, src));
    }
    let mut out = Vec::with_capacity(16 + latest.len() * 32);
    out.push(LATEST_V2);
    put_var(&mut out, sources.len() as u64);
    for (collector, partition, offset) in &sources {
        put_vstr(&mut out, collector);
        put_var(&mut out, zigzag(i64::from(*partition)));
        put_var(&mut out, zigzag(*offset));
    }
    put_var(&mut out, pairs.len() as u64);
    for pair in &pairs {
        put_vstr(&mut out, pair);
    }
    put_var(&mut out, entries.len() as u64);
    for (p, instance, time, value, src) in entries {
        put_var(&mut out, p as u64);
        put_vstr(&mut out, instance);
        out.extend_from_slice(&time.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
        put_var(&mut out, src as u64);
    }
    out
}

/// Reads what [`encode_host`] wrote (or version 1); a value that does not read says at
/// which byte.
fn decode_host(v: &[u8]) -> Result<HostLatest, String> {
    let mut c = Cursor::new(v, "latest samples");
    if v.first() != Some(&LATEST_V2) {
        return decode_host_v1(c);
    }
    c.u8()?;
    let mut sources = Vec::new();
    for _ in 0..c.var_count(3)? {
        let collector: Arc<str> = c.vstring()?.into();
        let at = c.position();
        let partition = i32::try_from(unzigzag(c.var()?))
            .map_err(|_| c.error_at(at, "a partition out of range"))?;
        let offset = unzigzag(c.var()?);
        sources.push((collector, partition, offset));
    }
    let mut pairs = Vec::new();
    for _ in 0..c.var_count(1)? {
        pairs.push(c.vstring()?);
    }
    let mut out = HostLatest::new();
    for _ in 0..c.var_count(19)? {
        let pair = c.index(&pairs, "pair")?.clone();
        let instance = c.vstring()?;
        let time = c.i64()?;
        let value = c.f64()?;
        let (collector, partition, offset) = c.index(&sources, "source")?;
        out.insert(
            &format!("{pair}\0{instance}"),
            Kept {
                time,
                value,
                partition: *partition,
                offset: *offset,
                collector: collector.clone(),
            },
        );
    }
    if !c.done() {
        return Err(c.error("more than its entries"));
    }
    Ok(out)
}

fn decode_host_v1(mut c: Cursor<'_>) -> Result<HostLatest, String> {
    let mut out = HostLatest::new();
    while !c.done() {
        let key = c.string()?;
        let kept = Kept {
            time: c.i64()?,
            value: c.f64()?,
            partition: i32::from_be_bytes(c.array()?),
            offset: c.i64()?,
            collector: c.string()?.into(),
        };
        out.insert(&key, kept);
    }
    Ok(out)
}

/// The latest samples of a hosting tree, at most `limit`.
pub fn latest_samples(
    store: &Store,
    root_host: &str,
    limit: usize,
) -> Result<Vec<LatestSample>, StoreError> {
    let Some(v) = store.get(LATEST_CF, &host_key(root_host))? else {
        return Ok(Vec::new());
    };
    let latest = decode_host(&v).map_err(StoreError::Corrupt)?;
    Ok(latest
        .iter()
        .take(limit)
        .map(|(k, e)| {
            let mut parts = k.splitn(3, '\0');
            let mut next = || parts.next().unwrap_or_default().to_string();
            let (object, counter, instance) = (next(), next(), next());
            LatestSample {
                root_host: root_host.to_string(),
                object,
                counter,
                instance,
                time: e.time,
                value: e.value,
                collector: e.collector.to_string(),
                partition: e.partition,
                offset: e.offset,
            }
        })
        .collect())
}

/// The latest samples of the hosts written lately, so that a batch does not read its host's
/// samples back from the store, and a host's samples are written once per checkpoint
/// however many batches changed them (see `sealed`). Bounded: past `LatestCache::BOUND`
/// counters it writes what changed and starts again from the store. Cleared when partitions
/// move (another replica may have written them in between).
#[derive(Default)]
pub struct LatestCache {
    hosts: FastMap<String, HostLatest>,
    counters: usize,
    written: SealedHosts,
}

impl LatestCache {
    /// Counters kept at most (about 100 bytes each).
    pub const BOUND: usize = 1 << 20;

    /// Forgets every host (the runner stored what changed first).
    pub fn clear(&mut self) {
        self.written.clear();
        self.hosts.clear();
        self.counters = 0;
    }

    /// The samples of `root` as they are now, to write.
    fn value(hosts: &FastMap<String, HostLatest>, root: &str) -> Option<sealed::Write> {
        let latest = hosts.get(root)?;
        Some((LATEST_CF, host_key(root), Some(encode_host(latest))))
    }

    /// A checkpoint is sealed (see [`healthstream_stage::Processor::seal`]).
    pub fn seal(&mut self) {
        self.written.seal();
    }

    /// Writes up to `budget` hosts of the sealed checkpoint; true when all are written.
    pub fn seal_step(&mut self, batch: &mut StoreBatch, budget: usize) -> Result<bool, StoreError> {
        let hosts = &self.hosts;
        self.written
            .step(batch, budget, |root| Self::value(hosts, root))
    }

    /// The samples of every host changed since the seal written into `batch` (to be read
    /// from it), and those taken for the sealed checkpoint too.
    pub fn write_readable(&mut self, batch: &mut StoreBatch) -> Result<(), StoreError> {
        let hosts = &self.hosts;
        self.written
            .write_readable(batch, |root| Self::value(hosts, root))
    }
}

/// Keep the latest sample of every counter of a batch of `root`'s samples from `collector`
/// (newer than what is kept).
pub fn store_latest<'s>(
    batch: &mut StoreBatch,
    (root, collector): (&str, &str),
    samples: impl IntoIterator<Item = Sample<'s>>,
    at: Position,
    cache: &mut LatestCache,
) -> Result<(), StoreError> {
    // A host of a sealed checkpoint is in the cache (a cache cleared at its bound took
    // the sealed hosts first): its samples are taken before they change.
    {
        let hosts = &cache.hosts;
        cache
            .written
            .take_before_change(root, |r| LatestCache::value(hosts, r));
    }
    let latest = match cache.hosts.get_mut(root) {
        Some(latest) => latest,
        None => {
            let stored = match batch.get(LATEST_CF, &host_key(root))? {
                Some(v) => decode_host(&v).unwrap_or_else(|e| {
                    // What cannot be read is replaced by what this batch brings.
                    tracing::error!(root_host = root, error = %e, "unreadable latest samples replaced");
                    HostLatest::new()
                }),
                None => HostLatest::new(),
            };
            if cache.counters >= LatestCache::BOUND {
                // What changed goes to the batch (and stays taken for a sealed checkpoint).
                cache.write_readable(batch)?;
                cache.hosts.clear();
                cache.counters = 0;
            }
            cache.counters += stored.len();
            cache.hosts.entry(root.to_string()).or_insert(stored)
        }
    };
    let before = latest.len();
    let mut changed = false;
    let mut buf = String::new();
    // The host's collector as its samples have it already (a host's batches mostly come
    // from one collector): a sample it had stays as is, not shared anew.
    let collector: Arc<str> = match latest.kept.first() {
        Some((_, k)) if *k.collector == *collector => k.collector.clone(),
        _ => collector.into(),
    };
    let fresh = |time, value| Kept {
        time,
        value,
        partition: at.partition,
        offset: at.offset,
        collector: collector.clone(),
    };
    // The last sample of a counter in the batch wins over earlier ones of the same time;
    // an older sample than the one kept is ignored.
    for (place, s) in samples.into_iter().enumerate() {
        match latest.find(place, &s, &mut buf) {
            Some(old) if old.time > s.time => continue,
            Some(old) => {
                (old.time, old.value) = (s.time, s.value);
                (old.partition, old.offset) = (at.partition, at.offset);
                if !Arc::ptr_eq(&old.collector, &collector) {
                    old.collector = collector.clone();
                }
            }
            None => {
                // `find` made the key when it found none.
                latest.add(place, &buf, fresh(s.time, s.value));
            }
        }
        changed = true;
    }
    cache.counters += latest.len() - before;
    let generation = cache.written.generation();
    if changed && latest.marked != generation {
        latest.marked = generation;
        cache.written.mark(root);
    }
    Ok(())
}

/// A perf batch read and checked once, when decoded: its strings in one buffer (see
/// [`FlatPerf`]). Applying it reads nothing again (the record's bytes were read twice, once
/// to check them and once to apply them).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPerf(FlatPerf);

impl CheckedPerf {
    /// The batch of a framed perf record, whose values must all be finite numbers.
    pub fn decode(framed: &[u8]) -> Result<CheckedPerf, Rejection> {
        CheckedPerf::checked(Codec::shared().decode_perf_flat(framed)?)
    }

    fn checked(flat: FlatPerf) -> Result<CheckedPerf, Rejection> {
        // The samples' names are together: looked through for a NUL at once. What refuses
        // the batch is then found sample by sample, to name it.
        let finite = flat.samples().all(|s| s.value.is_finite());
        if !finite || flat.sample_names().as_bytes().contains(&0) {
            checked_samples(
                flat.samples()
                    .map(|s| (s.value, [s.object, s.counter, s.instance])),
            )?;
        }
        Ok(CheckedPerf(flat))
    }

    pub fn root_host(&self) -> &str {
        self.0.root_host()
    }

    pub fn collector(&self) -> &str {
        self.0.collector()
    }

    /// The samples, borrowing their names.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Sample<'_>> + Clone {
        self.0.samples().map(|s| Sample {
            object: s.object,
            counter: s.counter,
            instance: s.instance,
            value: s.value,
            time: s.time,
        })
    }
}

/// A batch's samples, each its value and its object, counter and instance, checked in one
/// pass: the first sample whose value is not a finite number, or one of whose names holds
/// a NUL character (a host's latest samples are kept by its names joined with NUL), refuses
/// the batch, named by its place.
pub fn checked_samples<'a>(
    samples: impl Iterator<Item = (f64, [&'a str; 3])>,
) -> Result<(), Rejection> {
    for (i, (value, names)) in samples.enumerate() {
        if !value.is_finite() {
            return Err(Rejection::validation(format!(
                "samples[{i}].value is {value}, not a finite number"
            )));
        }
        for (field, name) in ["object", "counter", "instance"].into_iter().zip(names) {
            if name.contains('\0') {
                return Err(Rejection::validation(format!(
                    "samples[{i}].{field} holds a NUL character, which a perf name cannot"
                )));
            }
        }
    }
    Ok(())
}

impl Processor for PerfStage {
    type Input = PerfBatch;

    fn name(&self) -> &'static str {
        "perf"
    }

    fn decode(&self, message: &Message) -> Result<PerfBatch, Rejection> {
        let Some(value) = message.value.as_deref() else {
            return Err(Rejection::validation(
                "tombstone on the perf topic, which is not compacted",
            ));
        };
        let batch: PerfBatch = Codec::shared().decode(value)?;
        if batch.root_host.is_empty() {
            return Err(Rejection::validation("root_host is empty"));
        }
        let expected = partition_for_key(batch.root_host.as_bytes(), self.partitions) as i32;
        if message.partition != expected {
            return Err(Rejection::validation(format!(
                "batch of root host {:?} is on partition {}, but belongs on partition {expected}",
                batch.root_host, message.partition
            )));
        }
        checked_samples(
            batch
                .samples
                .iter()
                .map(|s| (s.value, [&*s.object, &*s.counter, &*s.instance])),
        )?;
        Ok(batch)
    }

    fn apply(
        &mut self,
        state: &mut StoreBatch,
        input: PerfBatch,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        let samples = input.samples.iter().map(|s| Sample {
            object: &s.object,
            counter: &s.counter,
            instance: &s.instance,
            value: s.value,
            time: s.time,
        });
        let source = (input.root_host.as_str(), input.collector.as_str());
        store_latest(state, source, samples, at, &mut self.latest)?;
        metrics::SAMPLES.inc_by(input.samples.len() as u64);
        Ok(Vec::new())
    }

    fn on_revoked(&mut self, _revoked: &[(healthstream_contracts::Topic, i32)]) {
        self.latest.clear();
    }

    fn seal(&mut self) {
        self.latest.seal();
    }

    fn seal_step(&mut self, state: &mut StoreBatch, budget: usize) -> Result<bool, StageError> {
        Ok(self.latest.seal_step(state, budget)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_contracts::records::PerfSample;
    use healthstream_contracts::Topic;

    #[test]
    fn a_checked_batch_reads_as_the_batch_it_was_made_from() {
        let decode =
            |b: &PerfBatch| CheckedPerf::decode(&Codec::shared().encode(b).expect("encodes"));
        let mut b = batch(
            "høst-01",
            &[(1, "% Free Space", 50.0), (2, "Inodes é", 4.5)],
        );
        b.samples[1].instance = "/données".into();
        b.samples[0].object = String::new();
        let checked = decode(&b).expect("finite values");
        assert_eq!(checked.0.view(), healthstream_contracts::PerfView::from(&b));
        assert_eq!(checked.root_host(), "høst-01");
        assert_eq!(checked.collector(), b.collector);
        let names: Vec<_> = checked
            .samples()
            .map(|s| (s.time, s.object, s.counter, s.instance, s.value))
            .collect();
        assert_eq!(
            names,
            [
                (1, "", "% Free Space", "_Total", 50.0),
                (2, "Processor", "Inodes é", "/données", 4.5)
            ]
        );
        let empty = PerfBatch {
            samples: Vec::new(),
            ..b.clone()
        };
        let view = decode(&empty).expect("empty").0;
        assert_eq!(view.view(), healthstream_contracts::PerfView::from(&empty));
        // A name with a NUL character is refused, by its place.
        let mut nul = b.clone();
        nul.samples[1].counter = "Inodes\0used".into();
        let err = decode(&nul).expect_err("NUL");
        assert_eq!(
            err.reason,
            "samples[1].counter holds a NUL character, which a perf name cannot"
        );
        // A value that is not a finite number is refused, by its place.
        b.samples[1].value = f64::NAN;
        let err = decode(&b).expect_err("NaN");
        assert!(
            err.reason.contains("samples[1].value is NaN"),
            "{}",
            err.reason
        );
    }

    fn batch(host: &str, samples: &[(i64, &str, f64)]) -> PerfBatch {
        PerfBatch {
            id: "b".into(),
            collector: "c1".into(),
            root_host: host.into(),
            samples: samples
                .iter()
                .map(|(t, c, v)| PerfSample {
                    time: *t,
                    object: "Processor".into(),
                    counter: (*c).into(),
                    instance: "_Total".into(),
                    value: *v,
                })
                .collect(),
        }
    }

    fn message(host: &str, partition: i32, value: Option<Vec<u8>>) -> Message {
        Message {
            topic: Topic::Perf,
            partition,
            offset: 7,
            key: Some(host.as_bytes().to_vec()),
            value,
            timestamp_ms: 1,
        }
    }

    /// Applies a batch and writes what it staged.
    fn apply(stage: &mut PerfStage, store: &Store, input: PerfBatch) {
        let at = Position {
            topic: Topic::Perf,
            partition: 0,
            offset: 3,
            timestamp_ms: 0,
        };
        let mut b = store.batch();
        stage.apply(&mut b, input, at).expect("apply");
        stage.seal();
        assert!(stage.seal_step(&mut b, usize::MAX).expect("seal"));
        store.write(b).expect("write");
    }

    /// (counter, time, value) of a host's latest samples.
    fn counters(store: &Store, host: &str) -> Vec<(String, i64, f64)> {
        latest_samples(store, host, 100)
            .expect("read")
            .into_iter()
            .map(|s| (s.counter, s.time, s.value))
            .collect()
    }

    proptest::proptest! {
        /// Batches of one host, their counters in any order, repeated, new or gone: what is
        /// kept is each counter's newest sample (of one time, the last), whether found where
        /// the last batch had it or looked up.
        #[test]
        fn the_latest_samples_follow_any_order_of_counters(
            batches in proptest::collection::vec(
                proptest::collection::vec((0i64..6, proptest::sample::select(vec!["cpu", "ctx", "cpu x", "c", "mem"]), -5.0f64..5.0), 0..8),
                1..6,
            )
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path(), PERF_CFS).expect("store");
            let mut stage = PerfStage::new(4);
            let mut model: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
            for samples in &batches {
                for (t, c, v) in samples {
                    let newer = model.get(*c).is_none_or(|(kept, _)| kept <= t);
                    if newer {
                        model.insert(c.to_string(), (*t, *v));
                    }
                }
                apply(&mut stage, &store, batch("h1", samples));
                let expected: Vec<(String, i64, f64)> =
                    model.iter().map(|(c, (t, v))| (c.clone(), *t, *v)).collect();
                proptest::prop_assert_eq!(counters(&store, "h1"), expected);
            }
        }
    }

    #[test]
    fn keeps_the_newest_sample_per_counter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), PERF_CFS).expect("store");
        let mut stage = PerfStage::new(4);
        apply(
            &mut stage,
            &store,
            batch(
                "h1",
                &[
                    (10, "cpu", 1.0),
                    (30, "cpu", 3.0),
                    (20, "cpu", 2.0),
                    (5, "ctx", 9.0),
                ],
            ),
        );
        apply(
            &mut stage,
            &store,
            batch("h1", &[(25, "cpu", 2.5), (6, "ctx", 10.0)]),
        );
        assert_eq!(
            counters(&store, "h1"),
            vec![("cpu".into(), 30, 3.0), ("ctx".into(), 6, 10.0)]
        );
        // After a restart (nothing remembered) the store still decides: older loses.
        apply(
            &mut PerfStage::new(4),
            &store,
            batch("h1", &[(29, "cpu", 2.9), (7, "ctx", 11.0)]),
        );
        assert_eq!(
            counters(&store, "h1"),
            vec![("cpu".into(), 30, 3.0), ("ctx".into(), 7, 11.0)]
        );
        assert!(
            latest_samples(&store, "h", 100).expect("read").is_empty(),
            "prefix is the whole host name"
        );
    }

    /// Each kept sample names the collector of the batch that brought it, when a host's
    /// batches come from more than one.
    #[test]
    fn each_sample_keeps_the_collector_that_sent_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), PERF_CFS).expect("store");
        let mut stage = PerfStage::new(4);
        let from = |collector: &str, samples: &[(i64, &str, f64)]| PerfBatch {
            collector: collector.into(),
            ..batch("h1", samples)
        };
        let read = |store: &Store| -> Vec<(String, i64, String)> {
            latest_samples(store, "h1", 100)
                .expect("read")
                .into_iter()
                .map(|s| (s.counter, s.time, s.collector))
                .collect()
        };
        // Each batch, then what is kept: (counter, time, collector). The older cpu sample
        // of c2 is ignored (cpu stays c1's).
        type Batch<'a> = [(i64, &'a str, f64); 2];
        type Expected<'a> = [(&'a str, i64, &'a str); 2];
        let steps: [(&str, Batch<'_>, Expected<'_>); 3] = [
            (
                "c1",
                [(10, "cpu", 1.0), (10, "ctx", 1.0)],
                [("cpu", 10, "c1"), ("ctx", 10, "c1")],
            ),
            (
                "c2",
                [(5, "cpu", 2.0), (20, "ctx", 2.0)],
                [("cpu", 10, "c1"), ("ctx", 20, "c2")],
            ),
            (
                "c1",
                [(30, "cpu", 3.0), (30, "ctx", 3.0)],
                [("cpu", 30, "c1"), ("ctx", 30, "c1")],
            ),
        ];
        for (collector, samples, kept) in steps {
            apply(&mut stage, &store, from(collector, &samples));
            let kept: Vec<(String, i64, String)> = kept
                .iter()
                .map(|(c, t, by)| (c.to_string(), *t, by.to_string()))
                .collect();
            assert_eq!(read(&store), kept, "after the batch of {collector}");
        }
    }

    #[test]
    fn a_host_value_round_trips_and_bad_bytes_say_where() {
        let mut latest = HostLatest::new();
        for (i, name) in ["cpu", "ctx", "mem"].iter().enumerate() {
            let mut k = String::new();
            counter_key(&mut k, "Processor", name, "_Total");
            latest.insert(
                &k,
                Kept {
                    time: i as i64,
                    value: -1.5 * i as f64,
                    partition: 3,
                    offset: 99,
                    collector: "c1".into(),
                },
            );
        }
        let bytes = encode_host(&latest);
        assert_eq!(decode_host(&bytes).expect("reads"), latest);
        assert_eq!(decode_host(&[]).expect("empty"), HostLatest::new());
        let e = decode_host(&bytes[..bytes.len() - 1]).expect_err("truncated");
        assert!(e.contains("more expected"), "{e}");
        let e = decode_host(&[0, 0, 0, 200, b'x']).expect_err("length past the end");
        assert!(e.contains("at byte 4 of 5, 200 more expected"), "{e}");
        let mut bad = vec![0, 0, 0, 1, 0xff];
        bad.extend_from_slice(&bytes[..]);
        let e = decode_host(&bad).expect_err("not UTF-8");
        assert!(e.contains("byte 0 is not UTF-8"), "{e}");
        // Arbitrary bytes never panic, in either version.
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            let _ = decode_host(&junk);
            let mut v2 = vec![LATEST_V2];
            v2.extend(&junk);
            let _ = decode_host(&v2);
        }
        // Cut anywhere: an error, never a partial answer.
        for end in 1..bytes.len() {
            assert!(decode_host(&bytes[..end]).is_err(), "cut at {end}");
        }
        // Indexes past the tables.
        let mut v = vec![LATEST_V2];
        put_var(&mut v, 1);
        put_vstr(&mut v, "c1");
        put_var(&mut v, zigzag(3));
        put_var(&mut v, zigzag(99));
        put_var(&mut v, 1);
        put_vstr(&mut v, "Processor\0cpu");
        put_var(&mut v, 1);
        let entry_at = v.len();
        let good_entry = v.clone();
        put_var(&mut v, 4);
        let e = decode_host(&{
            let mut v = v.clone();
            v.extend([0; 20]);
            v
        })
        .expect_err("pair 4");
        assert!(
            e.contains(&format!("at byte {entry_at}: pair 4 of 1 listed")),
            "{e}"
        );
        let mut v = good_entry;
        put_var(&mut v, 0);
        put_vstr(&mut v, "_Total");
        v.extend(7i64.to_be_bytes());
        v.extend(1.5f64.to_be_bytes());
        let mut bad_source = v.clone();
        put_var(&mut bad_source, 2);
        let e = decode_host(&bad_source).expect_err("source 2");
        assert!(e.contains("source 2 of 1 listed"), "{e}");
        put_var(&mut v, 0);
        let one = decode_host(&v).expect("a good one");
        assert_eq!(
            one.get("Processor\0cpu\0_Total")
                .map(|k| (k.time, k.value, k.offset)),
            Some((7, 1.5, 99))
        );
    }

    /// Version 1, as an earlier version wrote it.
    fn encode_v1(latest: &HostLatest) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, e) in latest.iter() {
            crate::wire::put_str(&mut out, k);
            out.extend_from_slice(&e.time.to_be_bytes());
            out.extend_from_slice(&e.value.to_be_bytes());
            out.extend_from_slice(&e.partition.to_be_bytes());
            out.extend_from_slice(&e.offset.to_be_bytes());
            crate::wire::put_str(&mut out, &e.collector);
        }
        out
    }

    /// Ten filesystems' free space from one batch, as the simulated fleet sends them.
    #[test]
    fn version_1_is_still_read_and_version_2_takes_under_half_its_bytes() {
        let mut latest = HostLatest::new();
        let collector: Arc<str> = "host-00042".into();
        for i in 0..10 {
            let mut k = String::new();
            counter_key(&mut k, "Filesystem", "% Free Space", &format!("/data{i}"));
            latest.insert(
                &k,
                Kept {
                    time: 1_795_255_200_000,
                    value: 50.0 - f64::from(i),
                    partition: 5,
                    offset: 1_234_567,
                    collector: collector.clone(),
                },
            );
        }
        let (v1, v2) = (encode_v1(&latest), encode_host(&latest));
        assert_eq!(decode_host(&v1).expect("v1"), latest);
        assert_eq!(decode_host(&v2).expect("v2"), latest);
        assert!(
            v2.len() * 2 < v1.len(),
            "version 2: {} bytes, version 1: {}",
            v2.len(),
            v1.len()
        );
    }

    #[test]
    fn zigzag_keeps_every_number() {
        for v in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn an_unreadable_stored_value_is_replaced_by_the_next_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), PERF_CFS).expect("store");
        let mut b = store.batch();
        b.put(LATEST_CF, &host_key("h1"), &[0, 0, 9]).expect("put");
        store.write(b).expect("write");
        assert!(matches!(
            latest_samples(&store, "h1", 10),
            Err(StoreError::Corrupt(_))
        ));
        apply(
            &mut PerfStage::new(4),
            &store,
            batch("h1", &[(10, "cpu", 1.0)]),
        );
        let got = latest_samples(&store, "h1", 10).expect("readable again");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].counter.as_str(), got[0].value), ("cpu", 1.0));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        let stage = PerfStage::new(4);
        let good = batch("web-01", &[(1, "cpu", 1.0)]);
        let right = partition_for_key(b"web-01", 4) as i32;
        let bytes = Codec::shared().encode(&good).expect("encode");
        assert!(stage
            .decode(&message("web-01", right, Some(bytes.clone())))
            .is_ok());
        let wrong = stage
            .decode(&message("web-01", (right + 1) % 4, Some(bytes)))
            .expect_err("wrong partition");
        assert!(
            wrong.reason.contains("belongs on partition"),
            "{}",
            wrong.reason
        );
        let tomb = stage
            .decode(&message("web-01", right, None))
            .expect_err("tombstone");
        assert!(tomb.reason.contains("tombstone"));
        let junk = stage
            .decode(&message(
                "web-01",
                right,
                Some(b"\x00\x00\x00\x00\xc9garbage".to_vec()),
            ))
            .expect_err("junk");
        assert_eq!(
            junk.class,
            healthstream_contracts::records::DeadLetterClass::Decode,
            "{}",
            junk.reason
        );
        let nan = batch("web-01", &[(1, "cpu", f64::NAN)]);
        let bytes = Codec::shared().encode(&nan).expect("encode");
        let err = stage
            .decode(&message("web-01", right, Some(bytes)))
            .expect_err("nan");
        assert!(
            err.reason.contains("samples[0].value is NaN"),
            "{}",
            err.reason
        );
        let mut nul = batch("web-01", &[(1, "cpu", 1.0)]);
        nul.samples[0].instance = "\0".into();
        let bytes = Codec::shared().encode(&nul).expect("encode");
        let err = stage
            .decode(&message("web-01", right, Some(bytes)))
            .expect_err("nul");
        assert_eq!(
            err.reason,
            "samples[0].instance holds a NUL character, which a perf name cannot"
        );
    }

    #[test]
    fn the_first_value_that_is_not_finite_is_named() {
        let samples = |values: &[f64]| {
            values
                .iter()
                .map(|v| (*v, ["Processor", "% Processor Time", "_Total"]))
                .collect::<Vec<_>>()
        };
        assert!(checked_samples(samples(&[1.0, -2.5, 0.0]).into_iter()).is_ok());
        let err =
            checked_samples(samples(&[1.0, f64::INFINITY, f64::NAN]).into_iter()).expect_err("inf");
        assert_eq!(err.reason, "samples[1].value is inf, not a finite number");
    }
}
