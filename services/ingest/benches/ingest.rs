//! Ingest costs: reading a JSON perf request of 500 hosts x 10 samples (the shape the
//! pipeline benchmark posts) into perf batches ready for the encoder.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healthstream_ingest::perf_json;

fn request(hosts: usize, items: usize) -> String {
    let batches: Vec<String> = (0..hosts)
        .map(|h| {
            let samples: Vec<String> = (0..items)
                .map(|i| {
                    format!(
                        r#"{{"time":1795255200000,"object":"Filesystem","counter":"% Free Space","instance":"/data{i}","value":{}}}"#,
                        if (h + i) % 100 == 0 { 4.0 } else { 50.5 }
                    )
                })
                .collect();
            format!(
                r#"{{"collector":"host-{h:05}","root_host":"host-{h:05}","samples":[{}]}}"#,
                samples.join(",")
            )
        })
        .collect();
    format!("[{}]", batches.join(","))
}

fn bench(c: &mut Criterion) {
    let body = request(500, 10);
    let mut g = c.benchmark_group("perf_json_request_500x10");
    g.throughput(Throughput::Elements(5_000));
    g.bench_function("read", |b| {
        b.iter(|| {
            let batches = perf_json::read(body.as_bytes()).expect("plain request");
            assert_eq!(batches.len(), 500);
            batches
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
