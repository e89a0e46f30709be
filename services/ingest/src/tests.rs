use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use healthstream_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use healthstream_bus::ConsumerEvent;
use healthstream_contracts::records::PerfBatch;
use healthstream_topology::Topology;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::*;

fn topology() -> Topology {
    Topology::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/embedded.toml"))
        .expect("topology")
}

struct Fixture {
    _dir: tempfile::TempDir,
    bus: Arc<dyn Bus>,
    router: Router,
}

fn fixture(limits: IngestLimits) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus: Arc<dyn Bus> = Arc::new(
        EmbeddedBus::open(dir.path(), &topology(), EmbeddedOptions::default()).expect("bus"),
    );
    let router = router(bus.clone(), limits).expect("router");
    Fixture {
        _dir: dir,
        bus,
        router,
    }
}

async fn post(
    router: &Router,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, JsonValue) {
    let resp = router
        .clone()
        .oneshot(
            Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(JsonValue::String(
        String::from_utf8_lossy(&bytes).to_string(),
    ));
    (status, json)
}

fn perf(host: &str, value: f64) -> JsonValue {
    json!({"collector": "c1", "root_host": host, "samples": [
        {"time": 1_000, "object": "Processor", "counter": "% Processor Time", "instance": "_Total", "value": value}
    ]})
}

async fn records_on(bus: &Arc<dyn Bus>, topic: Topic) -> Vec<healthstream_bus::Message> {
    let mut out = Vec::new();
    for p in 0..bus.partitions(topic) {
        let end = bus.end_offset(topic, p).await.expect("end");
        if end == 0 {
            continue;
        }
        let mut reader = bus.reader(&[(topic, p, 0)]).expect("reader");
        while (out
            .iter()
            .filter(|m: &&healthstream_bus::Message| m.partition == p)
            .count() as i64)
            < end
        {
            if let ConsumerEvent::Message(m) = reader.next().await.expect("next") {
                out.push(m);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_valid_batch_is_on_its_topic_in_the_root_host_partition() {
    let f = fixture(IngestLimits::default());
    let body =
        serde_json::to_vec(&json!([perf("web-01", 12.5), perf("db-01", 80.0)])).expect("json");
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/perf",
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["accepted"], 2);
    let records = records_on(&f.bus, Topic::Perf).await;
    assert_eq!(records.len(), 2);
    for m in &records {
        let batch: PerfBatch = Codec::shared()
            .decode(m.value.as_deref().expect("value"))
            .expect("decodes");
        let expected = partition_for_key(
            batch.root_host.as_bytes(),
            f.bus.partitions(Topic::Perf) as u32,
        ) as i32;
        assert_eq!(m.partition, expected);
        assert_eq!(m.key.as_deref(), Some(batch.root_host.as_bytes()));
        assert!(resp["ids"]
            .as_array()
            .expect("ids")
            .contains(&json!(batch.id)));
        assert_eq!(batch.samples[0].counter, "% Processor Time");
    }
    // The same batch again carries the same ids: downstream recognises the resend.
    let (_, again) = post(&f.router, "/v1/ingest/perf", "application/json", body).await;
    assert_eq!(again["ids"], resp["ids"]);
}

#[tokio::test]
async fn a_mixed_batch_names_every_bad_record_and_accepts_none() {
    let f = fixture(IngestLimits::default());
    let body = json!([
        perf("web-01", 1.0),
        {"collector": "c1", "root_host": "web-02", "samples": [{"time": 1, "object": "Processor", "counter": "x", "value": "high"}]},
        perf("web-03", 2.0),
        {"collector": "c1", "samples": [], "colour": "red"}
    ]);
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/perf",
        "application/json",
        serde_json::to_vec(&body).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    let problems: Vec<(u64, String)> = resp["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["record"].as_u64().expect("record"),
                p["field"].as_str().expect("field").to_string(),
            )
        })
        .collect();
    assert!(
        problems.contains(&(1, "samples[0].value".to_string())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&(3, "root_host".to_string())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&(3, "colour".to_string())),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|(r, _)| *r == 0 || *r == 2));
    assert!(resp["error"]
        .as_str()
        .expect("error")
        .contains("2 of 4 records are invalid"));
    assert!(
        records_on(&f.bus, Topic::Perf).await.is_empty(),
        "nothing produced"
    );
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors() {
    let f = fixture(IngestLimits {
        max_body_bytes: 2048,
        max_records: 3,
    });
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/perf",
        "application/json",
        b"[{\"collector\": ".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        resp["error"].as_str().expect("error").contains("line 1"),
        "{resp}"
    );
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/events",
        "application/json",
        b"{\"a\": 1}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(resp["error"]
        .as_str()
        .expect("error")
        .contains("found an object"));
    let (status, _) = post(
        &f.router,
        "/v1/ingest/perf",
        "application/json",
        b"[]".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, resp) = post(&f.router, "/v1/ingest/perf", "text/csv", b"a,b".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{resp}");
    let big = vec![b' '; 4096];
    let (status, _) = post(&f.router, "/v1/ingest/perf", "application/json", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let four = serde_json::to_vec(&json!([
        perf("a", 1.0),
        perf("b", 1.0),
        perf("c", 1.0),
        perf("d", 1.0)
    ]))
    .expect("json");
    let (status, resp) = post(&f.router, "/v1/ingest/perf", "application/json", four).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp["error"].as_str().expect("error").contains("at most 3"));
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/perf",
        "application/avro",
        b"not avro".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        resp["error"].as_str().expect("error").contains("Avro"),
        "{resp}"
    );
    assert!(records_on(&f.bus, Topic::Perf).await.is_empty());
}

#[tokio::test]
async fn avro_container_files_are_accepted() {
    let f = fixture(IngestLimits::default());
    let schema = Codec::shared().schema(Contract::Heartbeat);
    let mut writer = apache_avro::Writer::new(schema, Vec::new());
    for seq in 0..3i64 {
        let record = healthstream_contracts::records::Heartbeat {
            id: String::new(),
            collector: "c1".into(),
            root_host: "web-01".into(),
            time: 1000 + seq,
            interval_seconds: 60,
            sequence: seq,
            version: "1".into(),
        };
        writer.append_ser(record).expect("append");
    }
    let body = writer.into_inner().expect("container");
    let (status, resp) = post(&f.router, "/v1/ingest/heartbeats", "application/avro", body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["accepted"], 3);
    assert_eq!(records_on(&f.bus, Topic::Heartbeats).await.len(), 3);
}

#[tokio::test]
async fn discovery_and_events_validate_their_own_contracts() {
    let f = fixture(IngestLimits::default());
    let discovery = json!([{"root_host": "web-01", "source": {"kind": "discovery", "id": "Linux.Discovery/web-01"},
        "mode": "snapshot", "time": "2026-11-21T10:00:00Z",
        "instances": [{"class": "Linux.Computer", "keys": {"name": "web-01"}, "properties": {"cores": 4}}]}]);
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/discovery",
        "application/json",
        serde_json::to_vec(&discovery).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let events = json!([{"collector": "c1", "root_host": "web-01", "events": [
        {"time": 5, "channel": "journal", "source": "sshd.service", "level": "fatal"}]}]);
    let (status, resp) = post(
        &f.router,
        "/v1/ingest/events",
        "application/json",
        serde_json::to_vec(&events).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp["problems"][0]["field"], "events[0].level");
}

use healthstream_contracts::Contract;
