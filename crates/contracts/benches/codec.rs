//! Contract codec costs: encoding and decoding a perf batch of 100 samples, and validating
//! the same batch sent as collector JSON.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use healthstream_contracts::records::{PerfBatch, PerfSample};
use healthstream_contracts::{Codec, Contract, JsonValidator};

fn batch() -> PerfBatch {
    PerfBatch {
        id: "0123456789abcdef0123456789abcdef".into(),
        collector: "collector-web-01".into(),
        root_host: "web-01.example.com".into(),
        samples: (0..100)
            .map(|i| PerfSample {
                time: 1_795_255_200_000 + i,
                object: "LogicalDisk".into(),
                counter: "% Free Space".into(),
                instance: format!("/mnt/volume{i}"),
                value: i as f64 * 0.75,
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let codec = Codec::shared();
    let b = batch();
    let bytes = codec.encode(&b).expect("encodes");
    let json = serde_json::to_value(&b).expect("json");
    let mut json_no_id = json.clone();
    json_no_id.as_object_mut().expect("object").remove("id");
    let mut g = c.benchmark_group("perf_batch_100_samples");
    g.throughput(Throughput::Elements(100));
    g.bench_function("encode", |bench| {
        bench.iter(|| codec.encode(&b).expect("encodes"))
    });
    g.bench_function("decode", |bench| {
        bench.iter(|| codec.decode::<PerfBatch>(&bytes).expect("decodes"))
    });
    let validator = JsonValidator::new(codec);
    g.bench_function("validate_json", |bench| {
        bench.iter_batched(
            || json_no_id.clone(),
            |j| validator.validate(Contract::PerfBatch, &j).expect("valid"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
