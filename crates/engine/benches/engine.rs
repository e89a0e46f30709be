//! The health engine's benchmark set (see BENCHMARKS.md):
//!
//! - `throughput`: framed perf batches of one host with 100 filesystems, read and sent
//!   through detection and monitor state (two monitor copies per sample, 1% of the values
//!   beyond the threshold, alternating between two filesystems so states really change and
//!   roll up), against a bare loop that only reads the same batches and compares each value
//!   with the threshold (no state, no index);
//! - `cook-down`: cost per perf record with 10 ... 10,000 alert rules on the same data
//!   source (each rule's filter names one filesystem), dispatched through the engine's
//!   index, against a baseline that evaluates every rule copy's filter and threshold
//!   separately.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use healthstream_contracts::records::{PerfBatch, PerfSample};
use healthstream_contracts::Codec;
use healthstream_engine::detect::Fields;
use healthstream_engine::engine::{Engine, Instance, Sample};
use healthstream_model::expr::{Expr, Value};
use healthstream_model::load::parse_pack;
use healthstream_model::{shipped, Catalog};

fn computer(e: &mut Engine) {
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
}

fn mount(i: usize) -> String {
    format!("/data/{i:05}")
}

/// 1,000 samples over 100 filesystems; those of filesystem `low` (1%) are beyond the
/// threshold.
fn framed(low: usize) -> Vec<u8> {
    let b = PerfBatch {
        id: "b".into(),
        collector: "web".into(),
        root_host: "web".into(),
        samples: (0..1000)
            .map(|i| PerfSample {
                time: i as i64,
                object: "Filesystem".into(),
                counter: "% Free Space".into(),
                instance: mount(i % 100),
                value: if i % 100 == low { 3.0 } else { 50.0 },
            })
            .collect(),
    };
    Codec::shared().encode(&b).expect("encode")
}

fn through_the_engine(e: &mut Engine, framed: &[u8]) -> usize {
    let view = Codec::shared().decode_perf_view(framed).expect("decode");
    let samples = view.samples.iter().map(|s| Sample {
        object: &s.object,
        counter: &s.counter,
        instance: &s.instance,
        value: s.value,
        time: s.time,
    });
    e.perf_each(&view.root_host, samples).len()
}

fn bare_loop(framed: &[u8]) -> usize {
    let view = Codec::shared().decode_perf_view(framed).expect("decode");
    view.samples.iter().filter(|s| s.value < 10.0).count()
}

fn throughput(c: &mut Criterion) {
    let mut e = Engine::new(Catalog::new(shipped().expect("packs")));
    computer(&mut e);
    for i in 0..100 {
        e.upsert(
            Instance {
                id: format!("fs{i}"),
                root_host: "web".into(),
                class: "Linux.Filesystem".into(),
                host_id: Some("web".into()),
                properties: BTreeMap::from([
                    ("MountPoint".to_string(), mount(i)),
                    ("Type".to_string(), "xfs".to_string()),
                ]),
                managed: true,
                groups: vec![],
            },
            0,
        );
    }
    let batches = [framed(7), framed(8)];
    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("read + detection + monitor state + rollups", |b| {
        b.iter(|| {
            for f in &batches {
                black_box(through_the_engine(&mut e, black_box(f)));
            }
            // What the processor keeps: the changed hosts' unit states, the rest.
            let kept = e.take_kept();
            for h in &kept.hosts {
                black_box(e.host_units(h));
            }
            black_box(kept);
        })
    });
    g.bench_function("bare loop: read + compare with the threshold", |b| {
        b.iter(|| {
            for f in &batches {
                black_box(bare_loop(black_box(f)));
            }
        })
    });
    g.finish();
}

/// A pack of `n` alert rules on the free-space counter of every filesystem, rule `i`
/// filtering filesystem `i`.
fn rules_pack(n: usize) -> String {
    let mut text = String::from(
        "[pack]\nid = \"Bench.Rules\"\nversion = \"1\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n[[reference]]\npack = \"Healthstream.Linux\"\nversion = \"1.0\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[[rule]]\nid = \"Bench.Rule{i}\"\ntarget = \"Linux.Computer\"\n[rule.source]\ntype = \"perf\"\nobject = \"Filesystem\"\ncounter = \"% Free Space\"\ninterval = \"60s\"\n[[rule.condition]]\ntype = \"filter\"\nexpression = 'Instance == \"{}\"'\n[[rule.condition]]\ntype = \"threshold\"\nthreshold = 10.0\ndirection = \"below\"\n[[rule.action]]\ntype = \"alert\"\nname = \"Low {i}\"\ndescription = \"\"\nseverity = \"warning\"\n",
            mount(i)
        ));
    }
    text
}

fn cook_down(c: &mut Criterion) {
    // 100 samples over the first 10 filesystems: each matches one rule, none crosses.
    let samples: Vec<(String, f64)> = (0..100).map(|i| (mount(i % 10), 50.0)).collect();
    let mut g = c.benchmark_group("cook-down");
    g.sample_size(10);
    g.throughput(Throughput::Elements(samples.len() as u64));
    for n in [10usize, 100, 1_000, 10_000] {
        let mut packs = shipped().expect("packs");
        packs.push(parse_pack(&rules_pack(n), Path::new("bench.toml")).expect("rules"));
        let mut e = Engine::new(Catalog::new(packs));
        computer(&mut e);
        let batch: Vec<Sample<'_>> = samples
            .iter()
            .map(|(m, v)| Sample {
                object: "Filesystem",
                counter: "% Free Space",
                instance: m,
                value: *v,
                time: 0,
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| black_box(e.perf("web", black_box(&batch))))
        });
        // Every rule copy on its own: its filter on the record, then its threshold.
        let filters: Vec<Expr> = (0..n)
            .map(|i| Expr::parse(&format!("Instance == \"{}\"", mount(i))).expect("filter"))
            .collect();
        g.bench_with_input(BenchmarkId::new("every copy separately", n), &n, |b, _| {
            b.iter(|| {
                let mut fired = 0;
                for s in &batch {
                    let fields = [
                        ("Object", Value::text(s.object)),
                        ("Counter", Value::text(s.counter)),
                        ("Instance", Value::text(s.instance)),
                        ("Value", Value::Number(s.value)),
                    ];
                    for f in &filters {
                        if f.eval(&Fields(&fields)) && s.value < 10.0 {
                            fired += 1;
                        }
                    }
                }
                black_box(fired)
            })
        });
    }
    g.finish();
}

criterion_group!(engine_benches, throughput, cook_down);
criterion_main!(engine_benches);
