//! The embedded bus: in-process, durable in the data directory.
//!
//! Layout of the data directory:
//! `topics/<topic>/<partition>.log` (see [`log`]) and `groups/<group>.json` (committed
//! positions, informational). Topics and partition counts come from the topology.

mod group;
mod log;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use healthstream_contracts::Topic;
use healthstream_topology::Topology;
use tokio::sync::{watch, Notify};

use self::group::{Group, MemberId};
use self::log::PartitionLog;
use crate::metrics::{forget_partition_lag, REBALANCES, RECORDS_CONSUMED, RECORDS_PRODUCED};
use crate::{
    check_partition, Assignment, Bus, BusError, Consumer, ConsumerEvent, Delivery, DeliveryFuture,
    Message, OffsetSource, OutboundRecord, Producer,
};

const BACKEND: &str = "embedded";
/// Records read from a partition at a time.
const READ_BATCH: usize = 256;

/// Options of the embedded bus.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// fsync every write (survives power loss, slower). Without it a write survives a
    /// process crash, and the logs are synced on shutdown.
    pub sync_writes: bool,
}

struct Inner {
    dir: PathBuf,
    partitions: BTreeMap<Topic, i32>,
    logs: HashMap<(Topic, i32), Arc<PartitionLog>>,
    /// The consumers reading each partition, woken when records appended to it are
    /// written out (and only those: a consumer of other topics is not disturbed).
    readers: HashMap<(Topic, i32), Mutex<Vec<Arc<Notify>>>>,
    /// The produced-records counter of each topic (looked up once).
    produced: HashMap<Topic, prometheus::IntCounter>,
    groups: Mutex<HashMap<String, Group>>,
    /// Held while a group's committed offsets are written to its file, so that members of
    /// one group committing at once neither share the temporary file nor write an older
    /// snapshot over a newer one.
    commits: Mutex<()>,
    /// Bumped on every group change; consumers wait on it besides their own wake.
    changed: watch::Sender<u64>,
    next_member: AtomicU64,
}

/// The in-process bus.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl EmbeddedBus {
    /// Opens the bus in `dir`, creating the topology's topics.
    pub fn open(
        dir: impl AsRef<Path>,
        topology: &Topology,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedBus, BusError> {
        let dir = dir.as_ref().to_path_buf();
        let mut partitions = BTreeMap::new();
        let mut logs = HashMap::new();
        let mut readers = HashMap::new();
        let mut produced = HashMap::new();
        for spec in topology.topics() {
            let n = spec.partitions as i32;
            partitions.insert(spec.topic, n);
            produced.insert(
                spec.topic,
                RECORDS_PRODUCED.with_label_values(&[BACKEND, spec.topic.name()]),
            );
            let tdir = dir.join("topics").join(spec.topic.name());
            std::fs::create_dir_all(&tdir).map_err(|e| BusError::Log {
                path: tdir.display().to_string(),
                message: e.to_string(),
            })?;
            for p in 0..n {
                let (log, warning) = PartitionLog::open(
                    &tdir.join(format!("{p}.log")),
                    spec.topic,
                    p,
                    options.sync_writes,
                )?;
                if let Some(w) = warning {
                    tracing::warn!(topic = %spec.topic, partition = p, "recovered embedded log: {w}");
                }
                logs.insert((spec.topic, p), Arc::new(log));
                readers.insert((spec.topic, p), Mutex::new(Vec::new()));
            }
        }
        let gdir = dir.join("groups");
        std::fs::create_dir_all(&gdir).map_err(|e| BusError::Log {
            path: gdir.display().to_string(),
            message: e.to_string(),
        })?;
        let (changed, _) = watch::channel(0);
        Ok(EmbeddedBus {
            inner: Arc::new(Inner {
                dir,
                partitions,
                logs,
                readers,
                produced,
                groups: Mutex::new(HashMap::new()),
                commits: Mutex::new(()),
                changed,
                next_member: AtomicU64::new(1),
            }),
        })
    }

    /// Syncs every log to disk.
    pub fn sync(&self) -> Result<(), BusError> {
        for log in self.inner.logs.values() {
            log.sync()?;
        }
        Ok(())
    }
}

impl Inner {
    fn log(&self, topic: Topic, partition: i32) -> Result<&Arc<PartitionLog>, BusError> {
        let n = self
            .partitions
            .get(&topic)
            .copied()
            .ok_or_else(|| BusError::UndeclaredTopic(topic.name().to_string()))?;
        check_partition(topic, partition, n)?;
        self.logs
            .get(&(topic, partition))
            .ok_or_else(|| BusError::UndeclaredTopic(topic.name().to_string()))
    }

    fn readers(
        &self,
        (topic, partition): (Topic, i32),
    ) -> Option<MutexGuard<'_, Vec<Arc<Notify>>>> {
        self.readers
            .get(&(topic, partition))
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `wake` is notified from now on when records appended to `tp` are written out.
    fn listen(&self, tp: (Topic, i32), wake: &Arc<Notify>) {
        if let Some(mut readers) = self.readers(tp) {
            readers.push(wake.clone());
        }
    }

    fn unlisten(&self, tp: (Topic, i32), wake: &Arc<Notify>) {
        if let Some(mut readers) = self.readers(tp) {
            readers.retain(|r| !Arc::ptr_eq(r, wake));
        }
    }

    /// Wakes the consumers reading `tp` (records appended to it were written out). A
    /// consumer busy reading keeps the wake as a permit and looks again before it waits.
    fn wake_readers(&self, tp: (Topic, i32)) {
        if let Some(readers) = self.readers(tp) {
            for r in readers.iter() {
                r.notify_one();
            }
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn group_file(&self, group: &str) -> PathBuf {
        let safe: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join("groups").join(format!("{safe}.json"))
    }

    fn load_committed(&self, group: &str) -> BTreeMap<(Topic, i32), i64> {
        let Ok(text) = std::fs::read_to_string(self.group_file(group)) else {
            return BTreeMap::new();
        };
        let raw: Vec<(String, i32, i64)> = serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(group, "ignoring unreadable committed offsets: {e}");
            Vec::new()
        });
        raw.into_iter()
            .filter_map(|(t, p, o)| Topic::from_name(&t).map(|t| ((t, p), o)))
            .collect()
    }

    fn store_committed(
        &self,
        group: &str,
        committed: &BTreeMap<(Topic, i32), i64>,
    ) -> Result<(), BusError> {
        let raw: Vec<(&str, i32, i64)> = committed
            .iter()
            .map(|((t, p), o)| (t.name(), *p, *o))
            .collect();
        let path = self.group_file(group);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(&raw).map_err(|e| BusError::Log {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| BusError::Log {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }
}

struct EmbeddedProducer {
    inner: Arc<Inner>,
}

#[async_trait]
impl Producer for EmbeddedProducer {
    async fn enqueue(&self, record: OutboundRecord) -> Result<DeliveryFuture, BusError> {
        let tp = (record.topic, record.partition);
        let log = self.inner.log(record.topic, record.partition)?;
        let (offset, announce) = log.append(
            record.key.as_deref(),
            record.value.as_deref(),
            record.timestamp_ms,
        )?;
        if let Some(counter) = self.inner.produced.get(&record.topic) {
            counter.inc();
        }
        if announce {
            self.inner.wake_readers(tp);
        }
        let delivery = Delivery {
            partition: record.partition,
            offset,
        };
        // Durable once in the file: the first delivery awaited writes the records appended
        // before it (see `log`) and wakes the partition's readers once for all of them, the
        // others find them written.
        let (log, inner) = (log.clone(), self.inner.clone());
        Ok(Box::pin(async move {
            if log.flush()? {
                inner.wake_readers(tp);
            }
            Ok(delivery)
        }))
    }

    async fn flush(&self) -> Result<(), BusError> {
        for (tp, log) in &self.inner.logs {
            if log.flush()? {
                self.inner.wake_readers(*tp);
            }
        }
        Ok(())
    }
}

/// What a consumer reads: a group member's changing assignment, or fixed partitions.
enum Membership {
    Group { name: String, member: MemberId },
    Fixed,
}

struct EmbeddedConsumer {
    inner: Arc<Inner>,
    membership: Membership,
    offsets: Arc<dyn OffsetSource>,
    /// Owned partitions, the next offset to read from each, and its log.
    positions: BTreeMap<(Topic, i32), (i64, Arc<PartitionLog>)>,
    pending: VecDeque<ConsumerEvent>,
    buffered: VecDeque<Message>,
    cursor: usize,
    seen: watch::Receiver<u64>,
    /// Notified when records appended to an owned partition are written out.
    wake: Arc<Notify>,
    /// The group generation this member last synced at.
    synced: Option<u64>,
    /// A Revoked event was handed out: its partitions are released at the next call to
    /// `next`, when the caller has finished with them.
    release: bool,
    /// The consumed-records counter of each topic read (looked up once).
    consumed: Vec<(Topic, prometheus::IntCounter)>,
}

impl EmbeddedConsumer {
    /// Starts reading `tp` at `offset`: records written to it from now on wake this
    /// consumer.
    fn own(&mut self, tp: (Topic, i32), offset: i64) -> Result<(), BusError> {
        let log = self.inner.log(tp.0, tp.1)?.clone();
        if self.positions.insert(tp, (offset, log)).is_none() {
            self.inner.listen(tp, &self.wake);
        }
        Ok(())
    }

    fn start_offset(
        &self,
        topic: Topic,
        partition: i32,
        committed: Option<i64>,
    ) -> Result<i64, BusError> {
        let stored = self
            .offsets
            .next_offset(topic, partition)
            .map_err(BusError::OffsetSource)?;
        let end = self.inner.log(topic, partition)?.end_offset();
        let start = stored.or(committed).unwrap_or(0);
        Ok(start.clamp(0, end))
    }

    /// Applies group changes; queues Revoked/Assigned events.
    fn sync_group(&mut self) -> Result<(), BusError> {
        let Membership::Group { name, member } = &self.membership else {
            return Ok(());
        };
        let (revoked, acquired, committed) = {
            let mut groups = self.inner.groups();
            let Some(group) = groups.get_mut(name) else {
                return Err(BusError::Closed);
            };
            // Nothing changed in the group since this member last synced.
            if self.synced == Some(group.generation()) {
                return Ok(());
            }
            let partitions = &self.inner.partitions;
            let (revoked, acquired) =
                group.sync(*member, |t| partitions.get(&t).copied().unwrap_or(0));
            self.synced = Some(group.generation());
            let committed: Vec<Option<i64>> = acquired
                .iter()
                .map(|tp| group.committed.get(tp).copied())
                .collect();
            (revoked, acquired, committed)
        };
        if !revoked.is_empty() {
            for tp in &revoked {
                if self.positions.remove(tp).is_some() {
                    self.inner.unlisten(*tp, &self.wake);
                }
                forget_partition_lag(name, tp.0.name(), tp.1);
            }
            self.buffered
                .retain(|m| !revoked.contains(&(m.topic, m.partition)));
            REBALANCES.with_label_values(&[BACKEND, "revoke"]).inc();
            self.pending.push_back(ConsumerEvent::Revoked(revoked));
        }
        if !acquired.is_empty() {
            let mut assignments = Vec::with_capacity(acquired.len());
            for ((topic, partition), committed) in acquired.into_iter().zip(committed) {
                let start = self.start_offset(topic, partition, committed)?;
                self.own((topic, partition), start)?;
                assignments.push(Assignment {
                    topic,
                    partition,
                    start: Some(start),
                });
            }
            REBALANCES.with_label_values(&[BACKEND, "assign"]).inc();
            self.pending.push_back(ConsumerEvent::Assigned(assignments));
        }
        Ok(())
    }

    /// Hands the partitions this member was told to give up to the group, and wakes the
    /// members waiting for them.
    fn release_revoked(&mut self) -> Result<(), BusError> {
        let Membership::Group { name, member } = &self.membership else {
            return Ok(());
        };
        let released = {
            let mut groups = self.inner.groups();
            let Some(group) = groups.get_mut(name) else {
                return Err(BusError::Closed);
            };
            group.release(*member)
        };
        if released {
            self.inner.bump();
        }
        Ok(())
    }

    /// Reads the next batch from the owned partitions, round robin: the first with records
    /// to read from the one after the last read on.
    fn fill(&mut self) -> Result<(), BusError> {
        let n = self.positions.len();
        if n == 0 {
            return Ok(());
        }
        let start = self.cursor % n;
        // The partitions from `start` to the end, then those before it.
        for (from_idx, to_idx) in [(start, n), (0, start)] {
            let owned = self.positions.values_mut().enumerate();
            for (idx, (from, log)) in owned.skip(from_idx).take(to_idx - from_idx) {
                if log.end_offset() <= *from {
                    continue;
                }
                let batch = log.read(*from, READ_BATCH)?;
                if let Some(last) = batch.last() {
                    *from = last.offset + 1;
                    self.buffered.extend(batch);
                    self.cursor = idx + 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn next(&mut self) -> Result<ConsumerEvent, BusError> {
        if std::mem::take(&mut self.release) {
            self.release_revoked()?;
        }
        loop {
            self.seen.borrow_and_update();
            self.sync_group()?;
            if let Some(ev) = self.pending.pop_front() {
                self.release = matches!(ev, ConsumerEvent::Revoked(_));
                return Ok(ev);
            }
            if self.buffered.is_empty() {
                self.fill()?;
            }
            if let Some(m) = self.buffered.pop_front() {
                match self.consumed.iter().find(|(t, _)| *t == m.topic) {
                    Some((_, counter)) => counter.inc(),
                    None => {
                        let counter =
                            RECORDS_CONSUMED.with_label_values(&[BACKEND, m.topic.name()]);
                        counter.inc();
                        self.consumed.push((m.topic, counter));
                    }
                }
                return Ok(ConsumerEvent::Message(m));
            }
            tokio::select! {
                () = self.wake.notified() => {}
                changed = self.seen.changed() => {
                    if changed.is_err() {
                        return Err(BusError::Closed);
                    }
                }
            }
        }
    }

    fn commit(&mut self, positions: &[(Topic, i32, i64)]) -> Result<(), BusError> {
        let Membership::Group { name, .. } = &self.membership else {
            return Ok(());
        };
        let _writing = self.inner.commits.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = {
            let mut groups = self.inner.groups();
            let Some(group) = groups.get_mut(name) else {
                return Err(BusError::Closed);
            };
            for (t, p, o) in positions {
                group.committed.insert((*t, *p), *o);
            }
            group.committed.clone()
        };
        self.inner.store_committed(name, &snapshot)
    }

    fn assignment(&self) -> Vec<(Topic, i32)> {
        self.positions.keys().copied().collect()
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        for tp in self.positions.keys() {
            self.inner.unlisten(*tp, &self.wake);
        }
        if let Membership::Group { name, member } = &self.membership {
            let mut groups = self.inner.groups();
            if let Some(group) = groups.get_mut(name) {
                group.leave(*member);
                if group.is_empty() {
                    groups.remove(name);
                }
            }
            drop(groups);
            self.inner.bump();
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_topics(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn partitions(&self, topic: Topic) -> i32 {
        self.inner.partitions.get(&topic).copied().unwrap_or(0)
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, BusError> {
        Ok(Arc::new(EmbeddedProducer {
            inner: self.inner.clone(),
        }))
    }

    fn consumer(
        &self,
        group: &str,
        topics: &[Topic],
        offsets: Arc<dyn OffsetSource>,
    ) -> Result<Box<dyn Consumer>, BusError> {
        for t in topics {
            if !self.inner.partitions.contains_key(t) {
                return Err(BusError::UndeclaredTopic(t.name().to_string()));
            }
        }
        let member = self.inner.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut groups = self.inner.groups();
            let is_new = !groups.contains_key(group);
            let entry = groups.entry(group.to_string()).or_default();
            if is_new {
                entry.committed = self.inner.load_committed(group);
            }
            entry.join(member, topics);
        }
        self.inner.bump();
        Ok(Box::new(EmbeddedConsumer {
            inner: self.inner.clone(),
            membership: Membership::Group {
                name: group.to_string(),
                member,
            },
            offsets,
            positions: BTreeMap::new(),
            pending: VecDeque::new(),
            buffered: VecDeque::new(),
            cursor: 0,
            seen: self.inner.changed.subscribe(),
            wake: Arc::new(Notify::new()),
            synced: None,
            release: false,
            consumed: Vec::new(),
        }))
    }

    fn reader(&self, partitions: &[(Topic, i32, i64)]) -> Result<Box<dyn Consumer>, BusError> {
        let mut reader = EmbeddedConsumer {
            inner: self.inner.clone(),
            membership: Membership::Fixed,
            offsets: Arc::new(crate::NoStoredOffsets),
            positions: BTreeMap::new(),
            pending: VecDeque::new(),
            buffered: VecDeque::new(),
            cursor: 0,
            seen: self.inner.changed.subscribe(),
            wake: Arc::new(Notify::new()),
            synced: None,
            release: false,
            consumed: Vec::new(),
        };
        let mut assignments = Vec::with_capacity(partitions.len());
        for &(topic, partition, offset) in partitions {
            let start = offset.max(0);
            reader.own((topic, partition), start)?;
            assignments.push(Assignment {
                topic,
                partition,
                start: Some(start),
            });
        }
        reader
            .pending
            .push_back(ConsumerEvent::Assigned(assignments));
        Ok(Box::new(reader))
    }

    async fn end_offset(&self, topic: Topic, partition: i32) -> Result<i64, BusError> {
        Ok(self.inner.log(topic, partition)?.end_offset())
    }

    async fn close(&self) -> Result<(), BusError> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoOffsets;

    impl crate::OffsetSource for NoOffsets {
        fn next_offset(&self, _: Topic, _: i32) -> Result<Option<i64>, String> {
            Ok(None)
        }
    }

    fn open_bus(dir: &Path) -> EmbeddedBus {
        let topology = Topology::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/embedded.toml"),
        )
        .expect("topology");
        EmbeddedBus::open(dir, &topology, EmbeddedOptions::default()).expect("bus")
    }

    fn listeners(bus: &EmbeddedBus, tp: (Topic, i32)) -> usize {
        bus.inner.readers(tp).map_or(0, |r| r.len())
    }

    /// A reader of several partitions takes a batch from each in turn, and skips those
    /// with nothing new.
    #[tokio::test]
    async fn a_reader_takes_its_partitions_in_turn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = open_bus(dir.path());
        let producer = bus.producer().expect("producer");
        let n = READ_BATCH + 10;
        for partition in [0, 2] {
            for i in 0..n {
                producer
                    .send(OutboundRecord {
                        topic: Topic::Perf,
                        partition,
                        key: None,
                        value: Some(i.to_string().into_bytes()),
                        timestamp_ms: 1,
                    })
                    .await
                    .expect("send");
            }
        }
        let mut reader = bus
            .reader(&[
                (Topic::Perf, 0, 0),
                (Topic::Perf, 1, 0),
                (Topic::Perf, 2, 0),
            ])
            .expect("reader");
        let mut order = Vec::new();
        while order.len() < 2 * n {
            match reader.next().await.expect("next") {
                ConsumerEvent::Message(m) => order.push(m.partition),
                ConsumerEvent::Assigned(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let runs: Vec<(i32, usize)> = order
            .chunk_by(|a, b| a == b)
            .map(|r| (r[0], r.len()))
            .collect();
        assert_eq!(
            runs,
            vec![(0, READ_BATCH), (2, READ_BATCH), (0, 10), (2, 10)],
            "a batch from each partition in turn"
        );
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_records_delivered_to_a_partition_it_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = open_bus(dir.path());
        let mut consumer = bus
            .consumer("g", &[Topic::Perf, Topic::Events], Arc::new(NoOffsets))
            .expect("consumer");
        assert!(matches!(
            consumer.next().await.expect("assigned"),
            ConsumerEvent::Assigned(_)
        ));
        // Only the partitions read are listened to, once each.
        assert_eq!(listeners(&bus, (Topic::Events, 3)), 1);
        assert_eq!(listeners(&bus, (Topic::State, 0)), 0);
        let waiting = tokio::spawn(async move {
            let event = consumer.next().await.expect("message");
            (consumer, event)
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let producer = bus.producer().expect("producer");
        // An append elsewhere is not for it; the one on a partition it reads is.
        for (topic, key) in [(Topic::State, "other"), (Topic::Events, "mine")] {
            producer
                .enqueue(OutboundRecord {
                    topic,
                    partition: 3,
                    key: Some(key.as_bytes().to_vec()),
                    value: Some(b"v".to_vec()),
                    timestamp_ms: 1,
                })
                .await
                .expect("enqueue")
                .await
                .expect("delivered");
        }
        let (consumer, event) = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
            .await
            .expect("woken by the append")
            .expect("no panic");
        let ConsumerEvent::Message(m) = event else {
            panic!("expected the record, got {event:?}");
        };
        assert_eq!(
            (m.topic, m.partition, m.key.as_deref()),
            (Topic::Events, 3, Some(&b"mine"[..]))
        );
        drop(consumer);
        assert_eq!(
            listeners(&bus, (Topic::Events, 3)),
            0,
            "a dropped consumer stops listening"
        );
    }

    #[test]
    fn members_of_one_group_commit_at_once_and_the_latest_positions_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = open_bus(dir.path());
        let members: Vec<Box<dyn Consumer>> = (0..2)
            .map(|_| {
                bus.consumer("g", &[Topic::Perf], Arc::new(NoOffsets))
                    .expect("member")
            })
            .collect();
        let threads: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(m, mut c)| {
                std::thread::spawn(move || {
                    for o in 1..=300i64 {
                        c.commit(&[(Topic::Perf, m as i32, o)])
                            .unwrap_or_else(|e| panic!("member {m}, commit {o}: {e}"));
                    }
                    c
                })
            })
            .collect();
        let members: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .collect();
        let committed = bus.inner.load_committed("g");
        assert_eq!(committed.get(&(Topic::Perf, 0)), Some(&300));
        assert_eq!(committed.get(&(Topic::Perf, 1)), Some(&300));
        drop(members);
    }
}
