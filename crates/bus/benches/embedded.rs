//! Embedded bus throughput: appending 1 KiB records to one partition (each send awaited,
//! or a group of 256 enqueued and then awaited, as stages and ingest do), and reading them
//! back through a consumer.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healthstream_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use healthstream_bus::{Bus, ConsumerEvent, OutboundRecord};
use healthstream_contracts::Topic;
use healthstream_topology::Topology;

const RECORDS: u64 = 10_000;

fn topology() -> Topology {
    Topology::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/embedded.toml"))
        .expect("topology")
}

/// A record of `value` to partition 0 of the perf topic.
fn record(value: &[u8]) -> OutboundRecord {
    OutboundRecord {
        topic: Topic::Perf,
        partition: 0,
        key: Some(b"web-01".to_vec()),
        value: Some(value.to_vec()),
        timestamp_ms: 1,
    }
}

/// An empty bus in a directory of its own.
fn fresh_bus() -> (tempfile::TempDir, EmbeddedBus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path(), &topology(), EmbeddedOptions::default()).expect("bus");
    (dir, bus)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let value = vec![7u8; 1024];
    let mut g = c.benchmark_group("embedded_bus_1KiB");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.bench_function("append_10k", |b| {
        b.iter_with_setup(fresh_bus, |(_dir, bus)| {
            rt.block_on(async {
                let p = bus.producer().expect("producer");
                for _ in 0..RECORDS {
                    p.send(record(&value)).await.expect("send");
                }
            })
        })
    });
    g.bench_function("append_10k_awaited_per_256", |b| {
        b.iter_with_setup(fresh_bus, |(_dir, bus)| {
            rt.block_on(async {
                let p = bus.producer().expect("producer");
                let mut pending = Vec::with_capacity(256);
                for i in 0..RECORDS {
                    pending.push(p.enqueue(record(&value)).await.expect("enqueue"));
                    if pending.len() == 256 || i + 1 == RECORDS {
                        for d in pending.drain(..) {
                            d.await.expect("delivered");
                        }
                    }
                }
            })
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path(), &topology(), EmbeddedOptions::default()).expect("bus");
    rt.block_on(async {
        let p = bus.producer().expect("producer");
        for _ in 0..RECORDS {
            p.send(OutboundRecord {
                topic: Topic::Perf,
                partition: 0,
                key: None,
                value: Some(value.clone()),
                timestamp_ms: 1,
            })
            .await
            .expect("send");
        }
    });
    g.bench_function("read_10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = bus.reader(&[(Topic::Perf, 0, 0)]).expect("reader");
                let mut n = 0;
                while n < RECORDS {
                    if let ConsumerEvent::Message(_) = r.next().await.expect("next") {
                        n += 1;
                    }
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
