//! The newcomer's path, through the real binary: `healthstream run` with no Kafka. A perf
//! batch posted to ingest is on its topic, consumed by the perf stage, persisted with its
//! offset in RocksDB, still there after a restart (clean or killed), and counted in
//! `/metrics`; nothing is processed twice.

mod common;

use std::time::{Duration, Instant};

use common::{reqwest, start, Process};

use serde_json::{json, Value};

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_for_samples(p: &Process, host: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get_text(&p.url(&format!("/v1/perf/{host}")));
        let samples: Vec<Value> = serde_json::from_str(&text).expect("json");
        if samples.len() >= n {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "perf samples never appeared: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const APPLIED: &str = "healthstream_stage_records_total{outcome=\"applied\",stage=\"health\",topic=\"healthstream.perf\"}";

#[test]
fn perf_batch_flows_to_state_and_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = start(dir.path());
    let batch = json!([{"collector": "c1", "root_host": "web-01", "samples": [
        {"time": 1_000, "object": "Processor", "counter": "% Processor Time", "instance": "_Total", "value": 42.5},
        {"time": 1_000, "object": "Memory", "counter": "Available MBytes", "value": 812}
    ]}]);
    let (status, resp) = reqwest::post_json(&p.url("/v1/ingest/perf"), &batch);
    assert_eq!(status, 200, "{resp}");
    let samples = wait_for_samples(&p, "web-01", 2);
    let cpu = samples
        .iter()
        .find(|s| s["counter"] == "% Processor Time")
        .expect("cpu sample");
    assert_eq!(cpu["value"], 42.5);
    assert_eq!(cpu["offset"], 0, "the first record of its partition");
    let metrics = reqwest::get_text(&p.url("/metrics"));
    assert_eq!(metric(&metrics, APPLIED), Some(1.0), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "healthstream_ingest_records_accepted_total{topic=\"healthstream.perf\"}"
        ),
        Some(1.0)
    );
    assert!(metrics.contains("healthstream_bus_records_produced_total{backend=\"embedded\",topic=\"healthstream.perf\"} 1"));
    // A malformed batch is refused and changes nothing.
    let (status, _) = reqwest::post_json(&p.url("/v1/ingest/perf"), &json!([{"collector": "c1"}]));
    assert_eq!(status, 422);
    p.stop();

    // Clean restart: the state is there and nothing is processed again.
    let p = start(dir.path());
    let samples = wait_for_samples(&p, "web-01", 2);
    assert_eq!(samples.len(), 2);
    std::thread::sleep(Duration::from_millis(500));
    let metrics = reqwest::get_text(&p.url("/metrics"));
    assert_eq!(
        metric(&metrics, APPLIED),
        None,
        "nothing reprocessed after a clean restart"
    );
    let newer = json!([{"collector": "c1", "root_host": "web-01", "samples": [
        {"time": 2_000, "object": "Processor", "counter": "% Processor Time", "instance": "_Total", "value": 97.0}
    ]}]);
    let (status, _) = reqwest::post_json(&p.url("/v1/ingest/perf"), &newer);
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&reqwest::get_text(&p.url("/metrics")), APPLIED) != Some(1.0) {
        assert!(Instant::now() < deadline, "second batch not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its state is stored at the checkpoint after it (the stage has nothing else to do).
    while wait_for_samples(&p, "web-01", 2)
        .iter()
        .all(|s| s["value"] != 97.0)
    {
        assert!(Instant::now() < deadline, "second batch not stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.kill();

    // After a crash: the acknowledged, stored batch is still there, applied once.
    let p = start(dir.path());
    let samples = wait_for_samples(&p, "web-01", 2);
    let cpu = samples
        .iter()
        .find(|s| s["counter"] == "% Processor Time")
        .expect("cpu sample");
    assert_eq!(cpu["value"], 97.0);
    assert_eq!(cpu["offset"], 1);
    std::thread::sleep(Duration::from_millis(500));
    let metrics = reqwest::get_text(&p.url("/metrics"));
    assert_eq!(
        metric(&metrics, APPLIED),
        None,
        "nothing reprocessed after a crash"
    );
    p.terminate();
}
