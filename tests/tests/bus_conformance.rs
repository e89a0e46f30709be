//! One conformance suite, run against the embedded bus and against a real Kafka-protocol
//! broker: per-partition order, a consumer group of two rebalancing, a partition moving
//! only once its old owner has stored its work, resume from stored offsets after a restart
//! with no loss and no double processing, dead letters, and reading compacted topics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthstream_bus::{Bus, Consumer, ConsumerEvent, OffsetSource, OutboundRecord};
use healthstream_contracts::records::{DeadLetter, DeadLetterClass, PerfBatch, PerfSample};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_tests::Backend;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(90);

fn record(topic: Topic, partition: i32, key: &str, value: Option<&str>) -> OutboundRecord {
    OutboundRecord {
        topic,
        partition,
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        timestamp_ms: 1_000,
    }
}

async fn produce_all(bus: &Arc<dyn Bus>, records: Vec<OutboundRecord>) {
    let producer = bus.producer().expect("producer");
    let mut pending = Vec::new();
    for r in records {
        pending.push(producer.enqueue(r).await.expect("enqueue"));
    }
    for p in pending {
        p.await.expect("delivered");
    }
}

type Offsets = BTreeMap<(Topic, i32), i64>;
/// Which member processed which partition/offset.
type Processed = (String, i32, i64);

/// An in-memory stand-in for a processor's state store: processed records and the
/// offsets they reflect change together, under one lock.
#[derive(Default)]
struct MemoryState {
    inner: Mutex<(Offsets, Vec<Processed>)>,
}

impl OffsetSource for MemoryState {
    fn next_offset(&self, topic: Topic, partition: i32) -> Result<Option<i64>, String> {
        Ok(self
            .inner
            .lock()
            .expect("lock")
            .0
            .get(&(topic, partition))
            .copied())
    }
}

impl MemoryState {
    fn apply(&self, member: &str, m: &healthstream_bus::Message) {
        let mut g = self.inner.lock().expect("lock");
        g.0.insert((m.topic, m.partition), m.offset + 1);
        g.1.push((member.to_string(), m.partition, m.offset));
    }

    fn processed(&self) -> Vec<(String, i32, i64)> {
        self.inner.lock().expect("lock").1.clone()
    }
}

/// Consumes until `stop` says so; returns partitions ever assigned.
async fn consume_until(
    consumer: &mut Box<dyn Consumer>,
    state: &MemoryState,
    member: &str,
    mut stop: impl FnMut(&MemoryState) -> bool,
) -> BTreeSet<i32> {
    let mut assigned = BTreeSet::new();
    while !stop(state) {
        match timeout(Duration::from_millis(200), consumer.next()).await {
            Err(_) => continue,
            Ok(Err(e)) => panic!("{member}: {e}"),
            Ok(Ok(ConsumerEvent::Assigned(a))) => assigned.extend(a.iter().map(|x| x.partition)),
            Ok(Ok(ConsumerEvent::Revoked(_))) => {}
            Ok(Ok(ConsumerEvent::Message(m))) => state.apply(member, &m),
        }
    }
    assigned
}

async fn read_partition(
    bus: &Arc<dyn Bus>,
    topic: Topic,
    partition: i32,
) -> Vec<healthstream_bus::Message> {
    let end = bus.end_offset(topic, partition).await.expect("end offset");
    let mut out = Vec::new();
    if end == 0 {
        return out;
    }
    let mut reader = bus.reader(&[(topic, partition, 0)]).expect("reader");
    timeout(WAIT, async {
        while out
            .last()
            .is_none_or(|m: &healthstream_bus::Message| m.offset + 1 < end)
        {
            if let ConsumerEvent::Message(m) = reader.next().await.expect("next") {
                out.push(m);
            }
        }
    })
    .await
    .expect("read the partition to its end");
    out
}

async fn per_partition_order(backend: Backend) {
    let bus = backend.connect().await;
    let mut records = Vec::new();
    for i in 0..40 {
        for p in 0..4 {
            records.push(record(Topic::Perf, p, "k", Some(&format!("p{p}-{i:03}"))));
        }
    }
    produce_all(&bus, records).await;
    for p in 0..4 {
        let got = read_partition(&bus, Topic::Perf, p).await;
        let values: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8(m.value.clone().expect("value")).expect("utf8"))
            .collect();
        let expected: Vec<String> = (0..40).map(|i| format!("p{p}-{i:03}")).collect();
        assert_eq!(
            values,
            expected,
            "{}: partition {p} in order",
            backend.name()
        );
        assert!(got.windows(2).all(|w| w[1].offset > w[0].offset));
    }
}

async fn group_of_two_rebalances(backend: Backend) {
    let bus = backend.connect().await;
    let first: Vec<OutboundRecord> = (0..80)
        .map(|i| record(Topic::Perf, i % 4, "k", Some(&format!("a{i}"))))
        .collect();
    produce_all(&bus, first).await;
    let state = Arc::new(MemoryState::default());
    let group = format!("conformance-group-{}", backend.name());
    let mut a = bus
        .consumer(&group, &[Topic::Perf], state.clone())
        .expect("member a");
    // Member a alone takes every partition and starts working.
    let a_first = timeout(
        WAIT,
        consume_until(&mut a, &state, "a", |s| s.processed().len() >= 20),
    )
    .await
    .expect("a starts");
    assert_eq!(
        a_first,
        (0..4).collect(),
        "{}: a alone owns every partition",
        backend.name()
    );
    let b = bus
        .consumer(&group, &[Topic::Perf], state.clone())
        .expect("member b");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b_assigned = Arc::new(Mutex::new(BTreeSet::new()));
    let spawn_member = |mut c: Box<dyn Consumer>,
                        name: &'static str,
                        assigned: Option<Arc<Mutex<BTreeSet<i32>>>>| {
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match timeout(Duration::from_millis(200), c.next()).await {
                    Err(_) => continue,
                    Ok(Err(e)) => panic!("{name}: {e}"),
                    Ok(Ok(ConsumerEvent::Assigned(got))) => {
                        if let Some(set) = &assigned {
                            set.lock()
                                .expect("lock")
                                .extend(got.iter().map(|x| x.partition));
                        }
                    }
                    Ok(Ok(ConsumerEvent::Revoked(_))) => {}
                    Ok(Ok(ConsumerEvent::Message(m))) => state.apply(name, &m),
                }
            }
            c
        })
    };
    let ta = spawn_member(a, "a", None);
    let tb = spawn_member(b, "b", Some(b_assigned.clone()));
    // The group rebalances: b gets a share while a keeps working.
    timeout(WAIT, async {
        while b_assigned.lock().expect("lock").is_empty() || state.processed().len() < 80 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{}: b never got partitions", backend.name()));
    let more: Vec<OutboundRecord> = (0..80)
        .map(|i| record(Topic::Perf, i % 4, "k", Some(&format!("b{i}"))))
        .collect();
    produce_all(&bus, more).await;
    timeout(WAIT, async {
        while state.processed().len() < 160 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{}: only {} of 160 processed",
            backend.name(),
            state.processed().len()
        )
    });
    // Let any duplicate show up before stopping.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let a = ta.await.expect("task a");
    let b = tb.await.expect("task b");
    let processed = state.processed();
    let mut seen = HashMap::new();
    for (member, p, o) in &processed {
        if let Some(prev) = seen.insert((*p, *o), member.clone()) {
            panic!(
                "{}: offset {p}/{o} processed twice (by {prev} and {member})",
                backend.name()
            );
        }
    }
    assert_eq!(
        seen.len(),
        160,
        "{}: every record processed exactly once",
        backend.name()
    );
    assert!(
        processed.iter().any(|(m, _, _)| m == "b"),
        "{}: b did work",
        backend.name()
    );
    // The final assignments are disjoint and cover the topic.
    let (aa, ba): (BTreeSet<_>, BTreeSet<_>) = (
        a.assignment().into_iter().collect(),
        b.assignment().into_iter().collect(),
    );
    assert!(aa.is_disjoint(&ba), "{}: {aa:?} / {ba:?}", backend.name());
    assert!(
        !aa.is_empty() && !ba.is_empty(),
        "{}: {aa:?} / {ba:?}",
        backend.name()
    );
    assert_eq!(
        aa.len() + ba.len(),
        4,
        "{}: {aa:?} / {ba:?}",
        backend.name()
    );
}

/// A processor applies records in groups and stores a group later (as the stages do). When
/// a second member joins, the first is told its partitions are revoked; until it has stored
/// its open group and asked for the next event, nobody else may start on them, so the new
/// owner starts exactly where the stored state ends.
async fn a_partition_moves_once_its_owner_stored_its_work(backend: Backend) {
    let bus = backend.connect().await;
    let records: Vec<OutboundRecord> = (0..40)
        .map(|i| record(Topic::Heartbeats, i % 4, "k", Some(&format!("h{i}"))))
        .collect();
    produce_all(&bus, records).await;
    let state = Arc::new(MemoryState::default());
    let group = format!("conformance-handover-{}", backend.name());
    let mut a = bus
        .consumer(&group, &[Topic::Heartbeats], state.clone())
        .expect("member a");
    // a reads everything and keeps it in its open group, stored nowhere yet.
    let mut open = Vec::new();
    timeout(WAIT, async {
        while open.len() < 40 {
            match a.next().await.expect("a") {
                ConsumerEvent::Message(m) => open.push(m),
                ConsumerEvent::Revoked(r) => panic!("revoked alone: {r:?}"),
                ConsumerEvent::Assigned(_) => {}
            }
        }
    })
    .await
    .expect("a reads every record");
    let mut b = bus
        .consumer(&group, &[Topic::Heartbeats], state.clone())
        .expect("member b");
    // a is told to give partitions up; it has not stored its group yet.
    let revoked = timeout(WAIT, async {
        loop {
            tokio::select! {
                ev = a.next() => match ev.expect("a") {
                    ConsumerEvent::Revoked(r) => return r,
                    ConsumerEvent::Message(m) => panic!("a read {m:?} twice"),
                    ConsumerEvent::Assigned(x) => panic!("a assigned {x:?} before a revocation"),
                },
                ev = b.next() => match ev.expect("b") {
                    ConsumerEvent::Assigned(x) if x.is_empty() => {}
                    ConsumerEvent::Revoked(x) if x.is_empty() => {}
                    other => panic!("b got {other:?} before a gave anything up"),
                },
            }
        }
    })
    .await
    .expect("a's partitions are revoked");
    assert!(!revoked.is_empty(), "{}", backend.name());
    // Meanwhile b gets nothing of them.
    let early = timeout(Duration::from_secs(3), async {
        loop {
            if let ConsumerEvent::Assigned(x) = b.next().await.expect("b") {
                if !x.is_empty() {
                    return x;
                }
            }
        }
    })
    .await;
    assert!(
        early.is_err(),
        "{}: b was assigned {early:?} while a still held its work",
        backend.name()
    );
    for m in &open {
        state.apply("a", m);
    }
    // Now a asks for its next event, which releases the partitions; b starts on them
    // from the stored offsets.
    let b_assigned = timeout(WAIT, async {
        loop {
            tokio::select! {
                ev = a.next() => if let ConsumerEvent::Message(m) = ev.expect("a") {
                    panic!("{}: a read {m:?} again", backend.name());
                },
                ev = b.next() => match ev.expect("b") {
                    ConsumerEvent::Assigned(x) if !x.is_empty() => return x,
                    ConsumerEvent::Message(m) => panic!("{}: b read {m:?}", backend.name()),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("b gets partitions once a released them");
    for assignment in &b_assigned {
        assert_eq!(
            assignment.start,
            Some(10),
            "{}: b starts where a's stored work ends: {assignment:?}",
            backend.name()
        );
    }
}

async fn resume_after_restart(backend: Backend) {
    let state = Arc::new(MemoryState::default());
    let group = format!("conformance-restart-{}", backend.name());
    {
        let bus = backend.connect().await;
        let records: Vec<OutboundRecord> = (0..60)
            .map(|i| record(Topic::Events, i % 4, "k", Some(&format!("e{i}"))))
            .collect();
        produce_all(&bus, records).await;
        let mut c = bus
            .consumer(&group, &[Topic::Events], state.clone())
            .expect("consumer");
        timeout(
            WAIT,
            consume_until(&mut c, &state, "first", |s| s.processed().len() >= 25),
        )
        .await
        .expect("first run");
        // The process dies here: the consumer and the bus go away without a final commit.
    }
    let bus = backend.connect().await;
    let later: Vec<OutboundRecord> = (0..20)
        .map(|i| record(Topic::Events, i % 4, "k", Some(&format!("late{i}"))))
        .collect();
    produce_all(&bus, later).await;
    let mut c = bus
        .consumer(&group, &[Topic::Events], state.clone())
        .expect("consumer");
    timeout(
        WAIT,
        consume_until(&mut c, &state, "second", |s| s.processed().len() >= 80),
    )
    .await
    .expect("second run");
    // Nothing more arrives: no record is delivered twice.
    let extra = timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(ConsumerEvent::Message(m)) = c.next().await {
                return m;
            }
        }
    })
    .await;
    assert!(
        extra.is_err(),
        "{}: a record was delivered again: {:?}",
        backend.name(),
        extra
    );
    let processed = state.processed();
    let unique: BTreeSet<(i32, i64)> = processed.iter().map(|(_, p, o)| (*p, *o)).collect();
    assert_eq!(
        unique.len(),
        processed.len(),
        "{}: no double processing",
        backend.name()
    );
    assert_eq!(unique.len(), 80, "{}: no loss", backend.name());
    assert!(processed.iter().any(|(m, _, _)| m == "second"));
}

fn perf_batch(host: &str, value: f64) -> PerfBatch {
    PerfBatch {
        id: format!("batch-{host}-{value}"),
        collector: "c1".into(),
        root_host: host.into(),
        samples: vec![PerfSample {
            time: 1_000 + value as i64,
            object: "LogicalDisk".into(),
            counter: "% Free Space".into(),
            instance: "/".into(),
            value,
        }],
    }
}

async fn dead_letters(backend: Backend) {
    let bus = backend.connect().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        healthstream_store::Store::open(dir.path(), healthstream_health::PERF_CFS).expect("store");
    let host = "web-01";
    let p = partition_for_key(host.as_bytes(), bus.partitions(Topic::Perf) as u32) as i32;
    let wrong_p = (p + 1) % bus.partitions(Topic::Perf);
    let codec = Codec::shared();
    let good = |v: f64| Some(codec.encode(&perf_batch(host, v)).expect("encode"));
    let inputs = vec![
        (p, good(10.0)),
        (p, Some(b"{\"not\": \"avro\"}".to_vec())),
        (
            p,
            Some(healthstream_contracts::frame(
                Topic::Perf.contract().latest().schema_id,
                &[0xff, 0xff],
            )),
        ),
        (wrong_p, good(15.0)),
        (p, good(20.0)),
    ];
    let producer = bus.producer().expect("producer");
    for (partition, value) in inputs {
        producer
            .send(OutboundRecord {
                topic: Topic::Perf,
                partition,
                key: Some(host.as_bytes().to_vec()),
                value,
                timestamp_ms: 5,
            })
            .await
            .expect("send");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let readiness = healthstream_telemetry::Readiness::new();
    let stage = healthstream_health::PerfStage::new(bus.partitions(Topic::Perf));
    let group = format!("conformance-dl-{}", backend.name());
    let run = tokio::spawn({
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            healthstream_stage::run(stage, bus, &group, &[Topic::Perf], store, readiness, rx).await
        }
    });
    timeout(WAIT, async {
        loop {
            let at_p = store.offset(Topic::Perf.name(), p).expect("offset");
            let at_wrong = store.offset(Topic::Perf.name(), wrong_p).expect("offset");
            if at_p == Some(4) && at_wrong == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the stage processes past every poison record");
    tx.send(true).expect("stop");
    timeout(WAIT, run)
        .await
        .expect("stops")
        .expect("task")
        .expect("stage ok");
    // The good batches are in the state; the last one won.
    let latest = healthstream_health::latest_samples(&store, host, 10).expect("read");
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].value, 20.0, "{}", backend.name());
    // Three dead letters, each with its reason and source position.
    let mut letters = Vec::new();
    for dp in 0..bus.partitions(Topic::DeadLetters) {
        for m in read_partition(&bus, Topic::DeadLetters, dp).await {
            letters.push(
                codec
                    .decode::<DeadLetter>(m.value.as_deref().expect("value"))
                    .expect("dead letter decodes"),
            );
        }
    }
    letters.sort_by_key(|d| (d.source_partition, d.source_offset));
    let summary: Vec<(i32, i64, DeadLetterClass)> = letters
        .iter()
        .map(|d| (d.source_partition, d.source_offset, d.error_class))
        .collect();
    let mut expected = vec![
        (p, 1, DeadLetterClass::Framing),
        (p, 2, DeadLetterClass::Decode),
        (wrong_p, 0, DeadLetterClass::Validation),
    ];
    expected.sort_by_key(|(pp, o, _)| (*pp, *o));
    assert_eq!(summary, expected, "{}", backend.name());
    for d in &letters {
        assert_eq!(d.source_topic, Topic::Perf.name());
        assert_eq!(d.stage, "perf");
        assert!(!d.reason.is_empty());
        assert!(d.value.is_some(), "the rejected bytes are kept");
    }
    assert!(letters.iter().any(|d| d.reason.contains("magic byte")));
    assert!(letters
        .iter()
        .any(|d| d.reason.contains("belongs on partition")));
}

async fn compacted_topic_reads(backend: Backend) {
    let bus = backend.connect().await;
    produce_all(
        &bus,
        vec![
            record(Topic::Instances, 0, "i1", Some("v1")),
            record(Topic::Instances, 0, "i2", Some("v1")),
            record(Topic::Instances, 0, "i1", Some("v2")),
            record(Topic::Instances, 0, "i2", None),
            record(Topic::Instances, 0, "i3", Some("v1")),
        ],
    )
    .await;
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for m in read_partition(&bus, Topic::Instances, 0).await {
        let key = String::from_utf8(m.key.expect("key")).expect("utf8");
        match m.value {
            Some(v) => {
                latest.insert(key, String::from_utf8(v).expect("utf8"));
            }
            None => {
                latest.remove(&key);
            }
        }
    }
    assert_eq!(
        latest.into_iter().collect::<Vec<_>>(),
        vec![
            ("i1".to_string(), "v2".to_string()),
            ("i3".to_string(), "v1".to_string())
        ],
        "{}: the fold of a compacted topic is the latest value per key, tombstones deleting",
        backend.name()
    );
}

macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(healthstream_tests::Backend::embedded()).await }) +
        }
        mod kafka {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(healthstream_tests::Backend::kafka()).await }) +
        }
    };
}

suite!(
    per_partition_order,
    group_of_two_rebalances,
    a_partition_moves_once_its_owner_stored_its_work,
    resume_after_restart,
    dead_letters,
    compacted_topic_reads,
);
