//! The perf stage.

use healthstream_bus::{Message, OutboundRecord};
use healthstream_contracts::records::PerfBatch;
use healthstream_contracts::{partition_for_key, Codec, PerfView};
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{KeyReader, KeyWriter, Store, StoreBatch, StoreError};
use serde::Serialize;

use crate::metrics;

/// Column family of the latest sample per counter.
const LATEST_CF: &str = "perf_latest";
const LATEST_PREFIX: u8 = 0x10;

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
    times: LatestTimes,
}

impl PerfStage {
    /// `partitions` is the partition count of the perf topic, to check that each batch
    /// is on the partition of its root host.
    pub fn new(partitions: i32) -> Self {
        PerfStage {
            partitions: partitions.max(1) as u32,
            times: LatestTimes::default(),
        }
    }
}

fn latest_key(root_host: &str, object: &str, counter: &str, instance: &str) -> Vec<u8> {
    KeyWriter::new(LATEST_PREFIX)
        .str(root_host)
        .str(object)
        .str(counter)
        .str(instance)
        .finish()
}

fn encode_latest(time: i64, value: f64, partition: i32, offset: i64, collector: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(28 + collector.len());
    v.extend_from_slice(&time.to_be_bytes());
    v.extend_from_slice(&value.to_be_bytes());
    v.extend_from_slice(&partition.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(collector.as_bytes());
    v
}

fn decode_latest(key: &[u8], v: &[u8]) -> Result<LatestSample, String> {
    let mut r = KeyReader::new(key, LATEST_PREFIX).map_err(|e| e.to_string())?;
    let root_host = r.str().map_err(|e| e.to_string())?;
    let object = r.str().map_err(|e| e.to_string())?;
    let counter = r.str().map_err(|e| e.to_string())?;
    let instance = r.str().map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    if v.len() < 28 {
        return Err(format!("value of {} bytes, expected at least 28", v.len()));
    }
    let i64_at = |at: usize| i64::from_be_bytes(v[at..at + 8].try_into().unwrap_or_default());
    Ok(LatestSample {
        root_host,
        object,
        counter,
        instance,
        time: i64_at(0),
        value: f64::from_be_bytes(v[8..16].try_into().unwrap_or_default()),
        partition: i32::from_be_bytes(v[16..20].try_into().unwrap_or_default()),
        offset: i64_at(20),
        collector: String::from_utf8_lossy(&v[28..]).to_string(),
    })
}

/// The latest samples of a hosting tree, at most `limit`.
pub fn latest_samples(
    store: &Store,
    root_host: &str,
    limit: usize,
) -> Result<Vec<LatestSample>, StoreError> {
    let prefix = KeyWriter::new(LATEST_PREFIX).str(root_host).finish();
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix_limit(LATEST_CF, &prefix, limit)? {
        match decode_latest(&k, &v) {
            Ok(s) => out.push(s),
            Err(e) => tracing::error!(error = %e, "unreadable perf_latest entry skipped"),
        }
    }
    Ok(out)
}

/// The time of the latest sample kept per counter key, so that a batch does not read its
/// counters back from the store to compare times. Bounded: past `LatestTimes::BOUND` keys it
/// starts again from the store. Cleared when partitions move (another replica may have
/// written them in between).
#[derive(Default)]
pub struct LatestTimes(std::collections::HashMap<Vec<u8>, i64>);

impl LatestTimes {
    /// Keys kept at most (about 100 bytes each).
    pub const BOUND: usize = 1 << 20;

    pub fn clear(&mut self) {
        self.0.clear();
    }

    fn stored(&mut self, store: &Store, key: &[u8]) -> Result<Option<i64>, StoreError> {
        if let Some(t) = self.0.get(key) {
            return Ok(Some(*t));
        }
        Ok(store
            .get(LATEST_CF, key)?
            .filter(|old| old.len() >= 8)
            .map(|old| i64::from_be_bytes(old[0..8].try_into().unwrap_or_default())))
    }

    fn keep(&mut self, key: Vec<u8>, time: i64) {
        if self.0.len() >= Self::BOUND {
            self.0.clear();
        }
        self.0.insert(key, time);
    }
}

/// Keep the latest sample of every counter of a batch (newer than what is stored).
pub fn store_latest(
    store: &Store,
    batch: &mut StoreBatch,
    input: &PerfView<'_>,
    at: Position,
    times: &mut LatestTimes,
) -> Result<(), StoreError> {
    // Within a batch the last sample of a counter wins; against the store, the newer.
    // In key order: the store inserts a batch's neighbouring keys faster.
    let mut newest: std::collections::BTreeMap<Vec<u8>, (i64, f64)> = Default::default();
    for s in &input.samples {
        let key = latest_key(&input.root_host, &s.object, &s.counter, &s.instance);
        match newest.get_mut(&key) {
            Some((t, _)) if *t > s.time => {}
            Some(entry) => *entry = (s.time, s.value),
            None => {
                newest.insert(key, (s.time, s.value));
            }
        }
    }
    for (key, (time, value)) in newest {
        if times.stored(store, &key)?.is_some_and(|old| old > time) {
            continue;
        }
        store.put(
            batch,
            LATEST_CF,
            &key,
            &encode_latest(time, value, at.partition, at.offset, &input.collector),
        )?;
        times.keep(key, time);
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
        if let Some((i, s)) = batch
            .samples
            .iter()
            .enumerate()
            .find(|(_, s)| !s.value.is_finite())
        {
            return Err(Rejection::validation(format!(
                "samples[{i}].value is {}, not a finite number",
                s.value
            )));
        }
        Ok(batch)
    }

    fn apply(
        &mut self,
        store: &Store,
        batch: &mut StoreBatch,
        input: PerfBatch,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        store_latest(store, batch, &(&input).into(), at, &mut self.times)?;
        metrics::SAMPLES.inc_by(input.samples.len() as u64);
        Ok(Vec::new())
    }

    fn on_revoked(&mut self, _revoked: &[(healthstream_contracts::Topic, i32)]) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_contracts::records::PerfSample;
    use healthstream_contracts::Topic;

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

    #[test]
    fn keeps_the_newest_sample_per_counter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), PERF_CFS).expect("store");
        let mut stage = PerfStage::new(4);
        let at = Position {
            topic: Topic::Perf,
            partition: 0,
            offset: 3,
            timestamp_ms: 0,
        };
        let mut b = store.batch();
        stage
            .apply(
                &store,
                &mut b,
                batch(
                    "h1",
                    &[
                        (10, "cpu", 1.0),
                        (30, "cpu", 3.0),
                        (20, "cpu", 2.0),
                        (5, "ctx", 9.0),
                    ],
                ),
                at,
            )
            .expect("apply");
        store.write(b).expect("write");
        let mut b = store.batch();
        stage
            .apply(
                &store,
                &mut b,
                batch("h1", &[(25, "cpu", 2.5), (6, "ctx", 10.0)]),
                at,
            )
            .expect("apply");
        store.write(b).expect("write");
        let got = latest_samples(&store, "h1", 100).expect("read");
        let by_counter: Vec<(&str, i64, f64)> = got
            .iter()
            .map(|s| (s.counter.as_str(), s.time, s.value))
            .collect();
        assert_eq!(by_counter, vec![("cpu", 30, 3.0), ("ctx", 6, 10.0)]);
        // After a restart (nothing remembered) the store still decides: older loses.
        let mut restarted = PerfStage::new(4);
        let mut b = store.batch();
        restarted
            .apply(
                &store,
                &mut b,
                batch("h1", &[(29, "cpu", 2.9), (7, "ctx", 11.0)]),
                at,
            )
            .expect("apply");
        store.write(b).expect("write");
        let got = latest_samples(&store, "h1", 100).expect("read");
        let by_counter: Vec<(&str, i64, f64)> = got
            .iter()
            .map(|s| (s.counter.as_str(), s.time, s.value))
            .collect();
        assert_eq!(by_counter, vec![("cpu", 30, 3.0), ("ctx", 7, 11.0)]);
        assert!(
            latest_samples(&store, "h", 100).expect("read").is_empty(),
            "prefix is the whole host name"
        );
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
    }
}
