//! Discovery processing through the stage's core (decode + apply + state write): a new host's
//! snapshots (100 instances), and the same snapshots sent again (nothing changes, nothing is
//! emitted).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healthstream_bus::Message;
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_discovery::{DiscoveryStage, DISCOVERY_CFS};
use healthstream_fleet::{discovery, host_name, host_shape};
use healthstream_stage::{Position, Processor};
use healthstream_store::Store;

const PARTITIONS: i32 = 4;

fn stage() -> DiscoveryStage {
    let packs = healthstream_packfeed::fixed(&[]).expect("shipped packs");
    DiscoveryStage::new(PARTITIONS, PARTITIONS, packs)
}

fn messages(i: usize) -> Vec<Message> {
    let partition = partition_for_key(host_name(i).as_bytes(), PARTITIONS as u32) as i32;
    discovery(&host_shape(i, 100), 1_000)
        .iter()
        .map(|d| Message {
            topic: Topic::Discovery,
            partition,
            offset: 0,
            key: Some(d.root_host.as_bytes().to_vec()),
            value: Some(Codec::shared().encode(d).expect("encodes")),
            timestamp_ms: 1_000,
        })
        .collect()
}

fn process(stage: &mut DiscoveryStage, store: &Store, m: &Message, offset: i64) -> usize {
    let input = stage.decode(m).expect("decodes");
    let mut batch = store.batch();
    let at = Position {
        topic: m.topic,
        partition: m.partition,
        offset,
        timestamp_ms: m.timestamp_ms,
    };
    let out = stage.apply(&mut batch, input, at).expect("applies");
    store.write(batch).expect("write");
    out.len()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), DISCOVERY_CFS).expect("store");
    let mut st = stage();
    let mut offset = 0;
    let mut next_host = 0usize;

    let mut g = c.benchmark_group("discovery");
    g.throughput(Throughput::Elements(100));
    g.bench_function("new host, 6 snapshots, 100 instances", |b| {
        b.iter_batched(
            || {
                next_host += 1;
                messages(next_host)
            },
            |ms| {
                let mut outputs = 0;
                for m in &ms {
                    offset += 1;
                    outputs += process(&mut st, &store, m, offset);
                }
                assert!(outputs >= 100);
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let same = messages(0);
    for m in &same {
        offset += 1;
        process(&mut st, &store, m, offset);
    }
    g.bench_function("unchanged host, 6 snapshots, 100 instances", |b| {
        b.iter(|| {
            for m in &same {
                offset += 1;
                assert_eq!(process(&mut st, &store, black_box(m), offset), 0);
            }
        })
    });
    let biggest = same
        .iter()
        .max_by_key(|m| m.value.as_ref().map_or(0, Vec::len))
        .expect("records")
        .clone();
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "unchanged snapshot of one source (services, 50 instances)",
        |b| {
            b.iter(|| {
                offset += 1;
                assert_eq!(process(&mut st, &store, black_box(&biggest), offset), 0);
            })
        },
    );
    g.finish();
}

criterion_group!(discovery_benches, benches);
criterion_main!(discovery_benches);
