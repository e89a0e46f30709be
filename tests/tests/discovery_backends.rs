//! The instance-space stage on both backends (the embedded bus and a real Kafka-protocol
//! broker): discovery in, instance changes and the host's collection plan out on their
//! topics, a malformed record dead-lettered, and an identical resubmission emitting nothing.

use std::sync::Arc;
use std::time::Duration;

use healthstream_bus::{Bus, ConsumerEvent, OutboundRecord};
use healthstream_contracts::records::{CollectionPlan, DeadLetter, EntityKind, InstanceChange};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_discovery::{DiscoveryStage, DISCOVERY_CFS};
use healthstream_fleet::{discovery, host_name, host_shape};
use healthstream_tests::Backend;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(90);

fn packs() -> healthstream_packfeed::Packs {
    healthstream_packfeed::fixed(&[]).expect("shipped packs")
}

/// Every record of one partition of a topic, from the start, once `n` are there.
async fn read(bus: &Arc<dyn Bus>, topic: Topic, partition: i32, n: usize) -> Vec<Vec<u8>> {
    let mut reader = bus.reader(&[(topic, partition, 0)]).expect("reader");
    let mut out = Vec::new();
    timeout(WAIT, async {
        while out.len() < n {
            if let ConsumerEvent::Message(m) = reader.next().await.expect("next") {
                out.push(m.value.unwrap_or_default());
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} records on {topic:?}/{partition}, expected {n}",
            out.len()
        )
    });
    out
}

async fn discovery_through(backend: Backend) {
    let bus = backend.connect().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = healthstream_store::Store::open(dir.path(), DISCOVERY_CFS).expect("store");
    let host = host_name(0);
    let partitions = bus.partitions(Topic::Discovery);
    let p = partition_for_key(host.as_bytes(), partitions as u32) as i32;
    let producer = bus.producer().expect("producer");
    let snapshots = discovery(&host_shape(0, 20), 1_000);
    let send = |value: Vec<u8>| OutboundRecord {
        topic: Topic::Discovery,
        partition: p,
        key: Some(host.as_bytes().to_vec()),
        value: Some(value),
        timestamp_ms: 1_000,
    };
    for d in &snapshots {
        producer
            .send(send(Codec::shared().encode(d).expect("encode")))
            .await
            .expect("send");
    }
    producer
        .send(send(b"not avro".to_vec()))
        .await
        .expect("send");
    // Every snapshot again: nothing changes.
    for d in &snapshots {
        producer
            .send(send(Codec::shared().encode(d).expect("encode")))
            .await
            .expect("send");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stage = DiscoveryStage::new(partitions, bus.partitions(Topic::DeadLetters), packs());
    let group = format!("discovery-{}", backend.name());
    let run = tokio::spawn({
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            healthstream_stage::run(
                stage,
                bus,
                &group,
                &[Topic::Discovery],
                store,
                healthstream_telemetry::Readiness::new(),
                rx,
            )
            .await
        }
    });
    let inputs = (snapshots.len() * 2 + 1) as i64;
    timeout(WAIT, async {
        while store.offset(Topic::Discovery.name(), p).expect("offset") != Some(inputs) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the stage processes every input");
    tx.send(true).expect("stop");
    timeout(WAIT, run)
        .await
        .expect("stops")
        .expect("joins")
        .expect("no stage error");

    // 20 instances (plus memberships) on the instance topic, on the host's partition; nothing
    // from the second round.
    let end = bus.end_offset(Topic::Instances, p).await.expect("end");
    let changes: Vec<InstanceChange> = read(&bus, Topic::Instances, p, end as usize)
        .await
        .iter()
        .map(|v| Codec::shared().decode(v).expect("instance change"))
        .collect();
    let mut instances: Vec<&str> = changes
        .iter()
        .filter(|c| c.kind == EntityKind::Instance)
        .map(|c| c.entity_id.as_str())
        .collect();
    instances.sort();
    instances.dedup();
    assert_eq!(instances.len(), 20, "{changes:?}");
    assert!(changes.iter().all(|c| c.root_host == host));
    // The plan, published once per change of its data sources, last one complete.
    let plans_end = bus
        .end_offset(Topic::CollectionPlans, p)
        .await
        .expect("end");
    let plans: Vec<CollectionPlan> = read(&bus, Topic::CollectionPlans, p, plans_end as usize)
        .await
        .iter()
        .map(|v| Codec::shared().decode(v).expect("plan"))
        .collect();
    let last = plans.last().expect("a plan");
    assert!(last.data_sources.iter().any(|d| d.module == "perf"
        && d.config.get("counter").map(String::as_str) == Some("% Free Space")));
    // The malformed record is a dead letter.
    let dl_p = p.rem_euclid(bus.partitions(Topic::DeadLetters));
    let dl_end = bus.end_offset(Topic::DeadLetters, dl_p).await.expect("end");
    let letters: Vec<DeadLetter> = read(&bus, Topic::DeadLetters, dl_p, dl_end as usize)
        .await
        .iter()
        .map(|v| Codec::shared().decode(v).expect("dead letter"))
        .collect();
    assert!(
        letters
            .iter()
            .any(|l| l.stage == "discovery" && l.source_offset == snapshots.len() as i64),
        "{letters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_on_the_embedded_bus() {
    discovery_through(Backend::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_on_kafka() {
    discovery_through(Backend::kafka()).await;
}
