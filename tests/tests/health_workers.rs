//! Health processor workers sharing one process and one state store: the group gives each
//! worker its partitions, and two workers emit exactly the state changes one worker does, on
//! the embedded bus and on a real Kafka-protocol broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use healthstream_bus::{Bus, ConsumerEvent, OutboundRecord};
use healthstream_contracts::records::{HealthState, PerfBatch, PerfSample, StateChange};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_discovery::{DiscoveryStage, DISCOVERY_CFS};
use healthstream_fleet::{discovery, host_shape};
use healthstream_health::{HealthStage, HEALTH_CFS};
use healthstream_store::Store;
use healthstream_tests::Backend;
use tokio::sync::watch;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(90);
const HOSTS: usize = 8;
const FREE_SPACE: &str = "Linux.Monitor.FilesystemFreeSpace";

fn packs() -> healthstream_packfeed::Packs {
    healthstream_packfeed::fixed(&[]).expect("shipped packs")
}

fn record(bus: &Arc<dyn Bus>, topic: Topic, host: &str, value: Vec<u8>) -> OutboundRecord {
    let p = partition_for_key(host.as_bytes(), bus.partitions(topic) as u32) as i32;
    OutboundRecord {
        topic,
        partition: p,
        key: Some(host.as_bytes().to_vec()),
        value: Some(value),
        timestamp_ms: 1_000,
    }
}

/// Waits until the stage's store reflects every record of `topic`.
async fn caught_up(bus: &Arc<dyn Bus>, store: &Store, topic: Topic) {
    timeout(WAIT, async {
        loop {
            let mut done = true;
            for p in 0..bus.partitions(topic) {
                let end = bus.end_offset(topic, p).await.expect("end");
                if end > 0 && store.offset(topic.name(), p).expect("offset") != Some(end) {
                    done = false;
                }
            }
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{topic:?} not processed"));
}

/// (instance, monitor, old, new) of every state change on the state topic, in order per
/// partition, partitions one after the other.
async fn state_changes(bus: &Arc<dyn Bus>) -> Vec<(String, String, HealthState, HealthState)> {
    let mut out = Vec::new();
    for p in 0..bus.partitions(Topic::State) {
        let end = bus.end_offset(Topic::State, p).await.expect("end");
        let mut reader = bus.reader(&[(Topic::State, p, 0)]).expect("reader");
        let mut n = 0;
        while n < end {
            if let ConsumerEvent::Message(m) = reader.next().await.expect("next") {
                n += 1;
                let s: StateChange = Codec::shared()
                    .decode(&m.value.unwrap_or_default())
                    .expect("state");
                out.push((s.instance_id, s.monitor_id, s.old_state, s.new_state));
            }
        }
    }
    out
}

/// The fleet discovered, then three rounds of free space: all fine, one filesystem of
/// every host nearly full, all fine again. Returns the state changes emitted.
async fn run(backend: &Backend, workers: usize) -> Vec<(String, String, HealthState, HealthState)> {
    let bus = backend.connect().await;
    let producer = bus.producer().expect("producer");
    let mut mounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in 0..HOSTS {
        let shape = host_shape(h, 20);
        mounts.insert(
            shape.name.clone(),
            shape.filesystems.iter().map(|(m, _)| m.clone()).collect(),
        );
        for d in discovery(&shape, 1_000) {
            let value = Codec::shared().encode(&d).expect("encode");
            producer
                .send(record(&bus, Topic::Discovery, &shape.name, value))
                .await
                .expect("send");
        }
    }
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery_store =
        Store::open(dir.path().join("discovery"), DISCOVERY_CFS).expect("discovery store");
    let mut tasks = vec![tokio::spawn({
        let stage = DiscoveryStage::new(
            bus.partitions(Topic::Discovery),
            bus.partitions(Topic::DeadLetters),
            packs(),
        );
        let (bus, store, stopped) = (bus.clone(), discovery_store.clone(), stopped.clone());
        let group = format!("discovery-{workers}");
        async move {
            healthstream_stage::run(
                stage,
                bus,
                &group,
                &[Topic::Discovery],
                store,
                healthstream_telemetry::Readiness::new(),
                stopped,
            )
            .await
        }
    })];
    caught_up(&bus, &discovery_store, Topic::Discovery).await;
    let store = Store::open(dir.path().join("health"), HEALTH_CFS).expect("health store");
    for _ in 0..workers {
        let stage = HealthStage::new(bus.partitions(Topic::Perf), packs());
        let (bus, store, stopped) = (bus.clone(), store.clone(), stopped.clone());
        let group = format!("health-{workers}");
        tasks.push(tokio::spawn(async move {
            healthstream_stage::run(
                stage,
                bus,
                &group,
                &[Topic::Instances, Topic::Perf],
                store,
                healthstream_telemetry::Readiness::new(),
                stopped,
            )
            .await
        }));
    }
    caught_up(&bus, &store, Topic::Instances).await;
    for round in 0..3i64 {
        for (host, fs) in &mounts {
            let samples = fs
                .iter()
                .enumerate()
                .map(|(i, m)| PerfSample {
                    time: 10_000 * (round + 1),
                    object: "Filesystem".into(),
                    counter: "% Free Space".into(),
                    instance: m.clone(),
                    value: if round == 1 && i == 0 { 3.0 } else { 50.0 },
                })
                .collect();
            let batch = PerfBatch {
                id: format!("{host}-{round}"),
                collector: host.clone(),
                root_host: host.clone(),
                samples,
            };
            let value = Codec::shared().encode(&batch).expect("encode");
            producer
                .send(record(&bus, Topic::Perf, host, value))
                .await
                .expect("send");
        }
    }
    caught_up(&bus, &store, Topic::Perf).await;
    stop.send(true).expect("stop");
    for t in tasks {
        timeout(WAIT, t)
            .await
            .expect("stops")
            .expect("joins")
            .expect("no stage error");
    }
    state_changes(&bus).await
}

async fn two_workers_emit_exactly_what_one_does(one_worker: Backend, two_workers: Backend) {
    let one = run(&one_worker, 1).await;
    // Every host's first filesystem went critical and back, once each way.
    let fs_changes = |changes: &[(String, String, HealthState, HealthState)]| {
        changes
            .iter()
            .filter(|(_, m, old, _)| m == FREE_SPACE && *old != HealthState::Uninitialized)
            .map(|(_, _, old, new)| (*old, *new))
            .collect::<Vec<_>>()
    };
    let went = fs_changes(&one);
    assert_eq!(
        went.iter()
            .filter(|c| **c == (HealthState::Healthy, HealthState::Critical))
            .count(),
        HOSTS,
        "{}: {went:?}",
        one_worker.name()
    );
    assert_eq!(
        went.iter()
            .filter(|c| **c == (HealthState::Critical, HealthState::Healthy))
            .count(),
        HOSTS,
        "{}: {went:?}",
        one_worker.name()
    );
    let two = run(&two_workers, 2).await;
    assert_eq!(one.len(), two.len(), "{}", two_workers.name());
    assert_eq!(
        one,
        two,
        "{}: the same changes, in the same order per partition",
        two_workers.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_the_embedded_bus() {
    two_workers_emit_exactly_what_one_does(Backend::embedded(), Backend::embedded()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_kafka() {
    two_workers_emit_exactly_what_one_does(Backend::kafka(), Backend::kafka()).await
}
