//! Perf samples through detection and monitor state (no bus): one host with 100 filesystems,
//! each sample read by the free-space threshold monitor, the fill-rate monitor and the
//! collection rule; 1% of samples cross the threshold.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healthstream_engine::engine::{Engine, Instance, Sample};
use healthstream_model::{shipped, Catalog};

fn benches(c: &mut Criterion) {
    let mut e = Engine::new(Catalog::new(shipped().expect("packs")));
    e.upsert(
        Instance {
            id: "web".into(),
            root_host: "web".into(),
            class: "Linux.Computer".into(),
            host_id: None,
            properties: BTreeMap::from([("PrincipalName".to_string(), "web".to_string())]),
            managed: true,
            groups: vec![],
        },
        0,
    );
    let mounts: Vec<String> = (0..100).map(|i| format!("/data/{i:03}")).collect();
    for (i, m) in mounts.iter().enumerate() {
        e.upsert(
            Instance {
                id: format!("fs{i}"),
                root_host: "web".into(),
                class: "Linux.Filesystem".into(),
                host_id: Some("web".into()),
                properties: BTreeMap::from([
                    ("MountPoint".to_string(), m.clone()),
                    ("Type".to_string(), "xfs".to_string()),
                ]),
                managed: true,
                groups: vec![],
            },
            0,
        );
    }
    let batch: Vec<Sample<'_>> = (0..1000)
        .map(|i| Sample {
            object: "Filesystem",
            counter: "% Free Space",
            instance: &mounts[i % 100],
            value: if i % 100 == 7 { 3.0 } else { 50.0 },
            time: i as i64,
        })
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function(
        "perf samples through detection and monitor state (1% crossing)",
        |b| b.iter(|| black_box(e.perf("web", black_box(&batch)))),
    );
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
