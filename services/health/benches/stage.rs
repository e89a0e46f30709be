//! The health stage with its state store, without the bus: decode a perf batch, detect,
//! keep the monitor states and latest samples, encode the outputs, and store the state
//! with its offsets in RocksDB: once for three rounds (a checkpoint, as the stage runner
//! stores it about every second, when the pipeline takes about three rounds a second), and,
//! to compare, after every group of 64 inputs (as the stage stored it before checkpoints).
//!
//! A partition of 1,000 hosts with 10 filesystems each (a free-space threshold and a
//! fill-rate delta monitor per filesystem, as the shipped Linux pack has them) takes rounds
//! of one batch of 10 samples per host, 1% of the values beyond the threshold (a
//! different 1% each round, so states change, roll up and alert). Then the partition is
//! loaded into a new stage, as a worker handed it after a restart or a rebalance does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healthstream_bus::{Assignment, Message};
use healthstream_contracts::records::{
    ChangeKind, EntityKind, InstanceChange, PerfBatch, PerfSample, PropertyValue, Record,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_health::{open_store, HealthStage};
use healthstream_stage::{Position, Processor};
use healthstream_store::Store;

/// The allocator of the `healthstream` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PARTITIONS: i32 = 1;
const HOSTS: usize = 1_000;
const ITEMS: usize = 10;
/// Inputs of a group commit: what the state was stored after, before checkpoints.
const GROUP: usize = 64;
/// Rounds a measured iteration takes (about what the pipeline takes in a second).
const ROUNDS: usize = 3;

fn host(h: usize) -> String {
    format!("host-{h:05}")
}

fn message<R: Record>(topic: Topic, root: &str, offset: i64, time: i64, r: &R) -> Message {
    Message {
        topic,
        partition: partition_for_key(root.as_bytes(), PARTITIONS as u32) as i32,
        offset,
        key: Some(root.as_bytes().to_vec()),
        value: Some(Codec::shared().encode(r).expect("encode")),
        timestamp_ms: time,
    }
}

fn instance(root: &str, id: String, class: &str, props: &[(&str, String)]) -> InstanceChange {
    InstanceChange {
        id: format!("c-{id}"),
        root_host: root.into(),
        entity_id: id,
        kind: EntityKind::Instance,
        change: ChangeKind::Upsert,
        time: 0,
        class: class.into(),
        keys: BTreeMap::new(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), PropertyValue::String(v.clone())))
            .collect(),
        host_id: (class != "Linux.Computer").then(|| format!("{root}/computer")),
        source_id: None,
        target_id: None,
        managed: true,
        claimed_by: vec!["discovery:bench".into()],
        source_root_host: None,
        source_class: None,
    }
}

/// Round `r` (its samples a minute after the previous round's); with `crossing`, 1% of its
/// values beyond the threshold, a different 1% each round.
fn round(r: usize, crossing: bool, offset: &mut i64) -> Vec<Message> {
    let time = 60_000 * (r as i64 + 1);
    (0..HOSTS)
        .map(|h| {
            let root = host(h);
            let batch = PerfBatch {
                id: String::new(),
                collector: root.clone(),
                root_host: root.clone(),
                samples: (0..ITEMS)
                    .map(|i| PerfSample {
                        time,
                        object: "Filesystem".into(),
                        counter: "% Free Space".into(),
                        instance: format!("/data{i}"),
                        value: if crossing && (h * ITEMS + i) % 100 == r % 100 {
                            4.0
                        } else {
                            50.0
                        },
                    })
                    .collect(),
            };
            *offset += 1;
            message(Topic::Perf, &root, *offset, time, &batch)
        })
        .collect()
}

/// Applies the inputs, stored with their offsets at one checkpoint; returns the outputs.
fn apply(stage: &mut HealthStage, store: &Store, inputs: &[Message]) -> usize {
    apply_stored_every(stage, store, inputs, inputs.len())
}

/// Applies the inputs, the state stored with its offsets after every `per` inputs.
fn apply_stored_every(
    stage: &mut HealthStage,
    store: &Store,
    inputs: &[Message],
    per: usize,
) -> usize {
    let mut outputs = 0;
    for group in inputs.chunks(per.max(1)) {
        let mut batch = store.batch();
        for m in group {
            let at = Position {
                topic: m.topic,
                partition: m.partition,
                offset: m.offset,
                timestamp_ms: m.timestamp_ms,
            };
            let input = stage.decode(m).expect("decodes");
            outputs += stage.apply(&mut batch, input, at).expect("applies").len();
            batch.set_offset(m.topic.name(), m.partition, m.offset + 1);
        }
        stage.seal();
        assert!(stage.seal_step(&mut batch, usize::MAX).expect("seal"));
        store.write(batch).expect("writes");
    }
    outputs
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path()).expect("store");
    let packs = healthstream_packfeed::fixed(&[]).expect("shipped packs");
    let mut stage = HealthStage::new(PARTITIONS, packs);
    let assigned: Vec<Assignment> = [Topic::Instances, Topic::Perf]
        .map(|topic| Assignment {
            topic,
            partition: 0,
            start: None,
        })
        .to_vec();
    stage.on_assigned(&store, &assigned).expect("assigned");
    let mut instances = Vec::new();
    for h in 0..HOSTS {
        let root = host(h);
        instances.push(instance(
            &root,
            format!("{root}/computer"),
            "Linux.Computer",
            &[("PrincipalName", root.clone())],
        ));
        for i in 0..ITEMS {
            instances.push(instance(
                &root,
                format!("{root}/fs{i}"),
                "Linux.Filesystem",
                &[
                    ("MountPoint", format!("/data{i}")),
                    ("Type", "xfs".to_string()),
                ],
            ));
        }
    }
    let instances: Vec<Message> = instances
        .iter()
        .enumerate()
        .map(|(o, i)| message(Topic::Instances, &i.root_host, o as i64, 0, i))
        .collect();
    apply(&mut stage, &store, &instances);
    // Rounds of steady values until every monitor is initialized (the delta monitor
    // needs a window), not measured.
    let mut offset = 0;
    let mut r = 0;
    while r < 8 {
        let steady = round(r, false, &mut offset);
        apply(&mut stage, &store, &steady);
        r += 1;
    }
    let mut g = c.benchmark_group("health_stage_with_store");
    g.throughput(Throughput::Elements((ROUNDS * HOSTS * ITEMS) as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(30));
    for (name, per) in [
        (
            "three rounds of 1,000 hosts x 10 samples, 1% crossing, one checkpoint",
            usize::MAX,
        ),
        (
            "three rounds, the state stored after every group of 64 inputs",
            GROUP,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let mut inputs = Vec::new();
                    for _ in 0..ROUNDS {
                        inputs.extend(round(r, true, &mut offset));
                        r += 1;
                    }
                    let started = Instant::now();
                    let outputs = apply_stored_every(&mut stage, &store, &inputs, per);
                    spent += started.elapsed();
                    assert!(outputs > 0, "crossing values change states");
                }
                spent
            })
        });
    }
    // A worker handed the partition (a restart or a rebalance): the engine put together
    // again from the store, every instance and kept state.
    g.throughput(Throughput::Elements((HOSTS * (ITEMS + 1)) as u64));
    g.sample_size(10);
    g.bench_function("load the partition: 1,000 hosts, 11,000 instances", |b| {
        b.iter_with_large_drop(|| {
            let packs = healthstream_packfeed::fixed(&[]).expect("shipped packs");
            let mut fresh = HealthStage::new(PARTITIONS, packs);
            fresh.on_assigned(&store, &assigned).expect("loads");
            fresh
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
