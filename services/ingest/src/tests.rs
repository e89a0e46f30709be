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

/// The fast path's records for a JSON perf body, or `None` where it leaves the body to the
/// generic validation; and the generic path's records for the same body.
type Produced = (Vec<(i32, Option<Vec<u8>>, Option<Vec<u8>>)>, Vec<String>);

fn both_paths(f: &Fixture, body: &[u8]) -> (Option<Produced>, Result<Produced, String>) {
    let s = Ingest {
        bus: f.bus.clone(),
        producer: f.bus.producer().expect("producer"),
        limits: IngestLimits::default(),
    };
    let flat = |(outbound, ids): Validated| -> Produced {
        (
            outbound
                .into_iter()
                .map(|r| (r.partition, r.key, r.value))
                .collect(),
            ids,
        )
    };
    let fast = perf_json::read(body).map(|b| flat(encode_perf(&s, &b)));
    let generic = match parse_json(body) {
        Ok(records) => validate(&s, Topic::Perf, &records)
            .map(flat)
            .map_err(|p| format!("{p:?}")),
        Err(e) => Err(format!("{e:?}")),
    };
    (fast, generic)
}

#[test]
fn the_perf_fast_path_gives_the_records_and_ids_of_validation() {
    let f = fixture(IngestLimits::default());
    let bodies = [
        json!([perf("web-01", 12.5), perf("db-01", 80.0)]),
        // An integer value, no instance (its default), a negative time, escapes.
        json!([{"collector": "c\"1\u{e9}", "root_host": "h\\1", "samples": [
            {"time": -5, "object": "Memory", "counter": "Available MBytes", "value": 42},
            {"time": 9_007_199_254_740_993_i64, "object": "Processor", "counter": "%", "instance": "\u{1F600}", "value": -0.0},
        ]}]),
        // No samples.
        json!([{"collector": "c", "root_host": "h", "samples": []}]),
    ];
    for body in bodies {
        let body = serde_json::to_vec(&body).expect("json");
        let (fast, generic) = both_paths(&f, &body);
        let fast = fast.unwrap_or_else(|| panic!("the fast path takes {body:?}"));
        assert_eq!(Ok(fast), generic);
    }
}

#[tokio::test]
async fn perf_bodies_the_fast_path_does_not_take_get_the_generic_answer() {
    let f = fixture(IngestLimits::default());
    let sample = json!({"time": 1, "object": "O", "counter": "C", "value": 1.0});
    let cases = [
        // (body, accepted, the field a refusal names)
        (
            json!([{"collector": "c", "root_host": "h", "samples": [
                {"time": "2026-11-22T00:00:00Z", "object": "O", "counter": "C", "value": 1.0}]}]),
            true,
            "",
        ),
        (
            json!([{"id": "x", "collector": "c", "root_host": "h", "samples": [sample]}]),
            false,
            "id",
        ),
        (
            json!([{"collector": "c", "root_host": "h", "extra": 1, "samples": [sample]}]),
            false,
            "extra",
        ),
        (
            json!([{"collector": " ", "root_host": "h", "samples": [sample]}]),
            false,
            "collector",
        ),
        (
            json!([{"collector": "c", "root_host": "h", "samples": [
                {"time": 1, "object": "", "counter": "C", "value": 1.0}]}]),
            false,
            "samples[0].object",
        ),
        (
            json!([{"collector": "c", "root_host": "h", "samples": [
                {"time": 1.5, "object": "O", "counter": "C", "value": 1.0}]}]),
            false,
            "samples[0].time",
        ),
        (
            json!([{"collector": "c", "root_host": "h", "samples": [
                {"time": 1, "object": "O", "counter": "C", "value": "1"}]}]),
            false,
            "samples[0].value",
        ),
        (
            json!([{"collector": "c", "samples": [sample]}]),
            false,
            "root_host",
        ),
        (
            json!([{"collector": "c", "root_host": "h", "samples": [sample,
                {"time": 1, "object": "O", "counter": "C\u{0}D", "value": 1.0}]}]),
            false,
            "samples[1].counter",
        ),
    ];
    for (body, accepted, field) in cases {
        let bytes = serde_json::to_vec(&body).expect("json");
        let (fast, generic) = both_paths(&f, &bytes);
        assert!(fast.is_none(), "the fast path took {body}");
        assert_eq!(generic.is_ok(), accepted, "{body}: {generic:?}");
        let (status, resp) = post(&f.router, "/v1/ingest/perf", "application/json", bytes).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "{resp}");
            assert_eq!(resp["ids"], json!(generic.expect("accepted").1));
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
            let fields: Vec<&str> = resp["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .filter_map(|p| p["field"].as_str())
                .collect();
            assert!(fields.contains(&field), "{body}: {resp}");
        }
    }
    // A duplicate field: the generic path keeps the last. (A body that is not JSON is in
    // `malformed_bodies_get_clear_errors`.)
    let duplicate = br#"[{"collector":"c","collector":"d","root_host":"h","samples":[]}]"#;
    let (fast, generic) = both_paths(&f, duplicate);
    assert!(fast.is_none());
    assert!(generic.is_ok(), "{generic:?}");
}

proptest::proptest! {
    #[test]
    fn any_perf_body_the_fast_path_takes_validates_to_the_same_records(
        batches in proptest::collection::vec(
            (
                "[a-z\\\\\"\u{e9}][ a-z\\\\\"\u{e9}]{0,8}",
                "[a-z0-9][a-z0-9\\-]{0,8}",
                proptest::collection::vec(
                    (
                        proptest::prelude::any::<i64>(),
                        "[A-Za-z%][ A-Za-z%]{0,6}",
                        "[A-Za-z%][ A-Za-z%]{0,6}",
                        proptest::option::of("[/a-z\\\\]{0,6}"),
                        proptest::prelude::any::<f64>(),
                    ),
                    0..6,
                ),
            ),
            1..4,
        )
    ) {
        let f = fixture(IngestLimits::default());
        let body: Vec<JsonValue> = batches
            .into_iter()
            .map(|(collector, root_host, samples)| {
                let samples: Vec<JsonValue> = samples
                    .into_iter()
                    .map(|(time, object, counter, instance, value)| {
                        let mut s = json!({"time": time, "object": object, "counter": counter, "value": value});
                        if let Some(i) = instance {
                            s["instance"] = json!(i);
                        }
                        s
                    })
                    .collect();
                json!({"collector": collector, "root_host": root_host, "samples": samples})
            })
            .collect();
        let bytes = serde_json::to_vec(&body).expect("json");
        let (fast, generic) = both_paths(&f, &bytes);
        match fast {
            Some(fast) => proptest::prop_assert_eq!(Ok(fast), generic),
            // Names are never blank here: what the fast path leaves is a value that is not
            // a finite number (JSON has none: it is written as null), refused by validation.
            None => {
                proptest::prop_assert!(bytes.windows(4).any(|w| w == b"null"));
                proptest::prop_assert!(generic.is_err(), "{:?}", generic);
            }
        }
    }
}

/// The perf reader as it was written with serde (derived, borrowing, unknown and
/// duplicate fields refused): the reference the hand-written reader is held to.
mod serde_reference {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Batch<'a> {
        #[serde(borrow)]
        pub collector: Cow<'a, str>,
        #[serde(borrow)]
        pub root_host: Cow<'a, str>,
        #[serde(borrow)]
        pub samples: Vec<Sample<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sample<'a> {
        pub time: i64,
        #[serde(borrow)]
        pub object: Cow<'a, str>,
        #[serde(borrow)]
        pub counter: Cow<'a, str>,
        #[serde(borrow, default)]
        pub instance: Cow<'a, str>,
        pub value: f64,
    }
}

/// A reading of a perf body, values by their bits (so that -0.0 and 0.0 differ).
type Read = Vec<(String, String, Vec<(i64, String, String, String, u64)>)>;

/// A reading in the form compared.
fn flat(batches: Vec<PerfView<'_>>) -> Read {
    batches
        .into_iter()
        .map(|b| {
            let samples = b.samples.iter().map(|s| {
                let (object, counter) = (s.object.to_string(), s.counter.to_string());
                let instance = s.instance.to_string();
                (s.time, object, counter, instance, s.value.to_bits())
            });
            (b.collector.into(), b.root_host.into(), samples.collect())
        })
        .collect()
}

fn scanned(body: &[u8]) -> Option<Read> {
    perf_json::read(body).map(flat)
}

fn by_serde(body: &[u8]) -> Option<Read> {
    let batches: Vec<serde_reference::Batch<'_>> = serde_json::from_slice(body).ok()?;
    let views: Vec<PerfView<'_>> = batches
        .into_iter()
        .map(|b| PerfView {
            id: "".into(),
            collector: b.collector,
            root_host: b.root_host,
            samples: b
                .samples
                .into_iter()
                .map(|s| healthstream_contracts::SampleView {
                    time: s.time,
                    object: s.object,
                    counter: s.counter,
                    instance: s.instance,
                    value: s.value,
                })
                .collect(),
        })
        .collect();
    perf_json::plain(&views).then(|| flat(views))
}

#[test]
fn the_perf_reader_reads_json_as_a_json_parser_does() {
    let good =
        br#" [ {"root_host" : "h", "samples": [ {"value": -0, "counter": "C\u00e9\ud83d\ude00",
        "object": "O\/\\\"\t", "time": -9223372036854775808, "instance": ""},
        {"time":9223372036854775807,"object":"O","counter":"C","value":1.7976931348623157e308},
        {"time":0,"object":"O","counter":"C","value":18446744073709551616},
        {"time":0,"object":"O","counter":"C","value":0.30000000000000004441},
        {"time":0,"object":"O","counter":"C","value":-9223372036854775809}
        ], "collector": "c" } ]
    "#;
    let read = scanned(good).expect("a valid body is read");
    assert_eq!(read, by_serde(good).expect("serde reads it"));
    let first = &read[0].2[0];
    assert_eq!(first.1, "O/\\\"\t");
    assert_eq!(first.2, "C\u{e9}\u{1F600}");
    assert_eq!(first.4, (-0.0f64).to_bits(), "-0 is negative zero");
    for bad in [
        &br#"[{"collector":"c","root_host":"h","samples":[]}] x"#[..],
        br#"[{"collector":"c","root_host":"h","samples":[]},]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":01,"object":"O","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C","value":1.}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C","value":.5}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C","value":1e400}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1e3,"object":"O","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":-0,"object":"O","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":9223372036854775808,"object":"O","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"\ud800","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"\x","counter":"C","value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C","instance":null,"value":1}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C"}]}]"#,
        br#"[{"collector":"c","root_host":"h","samples":[{"time":1,"object":"O","counter":"C","value":1}]"#,
        b"[{\"collector\":\"c\",\"root_host\":\"h\xff\",\"samples\":[]}]",
        b"[{\"collector\":\"c\",\"root_host\":\"h\n\",\"samples\":[]}]",
        b"\xef\xbb\xbf[]",
    ] {
        assert_eq!(scanned(bad), None, "{}", String::from_utf8_lossy(bad));
        assert_eq!(by_serde(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

/// Text of a JSON number, or of something near one that JSON refuses.
fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![
        3 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?",
        1 => "-?[0-9]{0,3}\\.?[0-9]{0,3}[eE]?[+-]?[0-9]{0,2}",
        3 => proptest::prelude::any::<f64>().prop_map(|v| v.to_string()),
        3 => proptest::prelude::any::<i64>().prop_map(|v| v.to_string()),
    ]
}

/// Text of a JSON string: plain, with escapes, or near one that JSON refuses.
fn string_text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![
        6 => "\"[ a-zA-Z0-9%/]{0,8}\"",
        1 => "\"([a-z\u{e9}\u{1F600}]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89aAbB][0-9a-f]{2}\\\\u[dD][c-fC-F][0-9a-f]{2}|\\\\[xu0]|\t){0,6}\"",
    ]
}

use proptest::strategy::Strategy;

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
    /// Bodies near the perf form, valid or not, with a few bytes changed: the hand-written
    /// reader takes what the serde-derived one takes, the same, and nothing else.
    #[test]
    fn the_perf_reader_takes_what_serde_takes(
        batches in proptest::collection::vec(
            (
                string_text(),
                string_text(),
                proptest::collection::vec(
                    (
                        number_text(),
                        string_text(),
                        string_text(),
                        proptest::option::of(string_text()),
                        number_text(),
                        proptest::sample::select(vec!["", " ", "\n\t", "\r"]),
                        proptest::sample::select(vec![
                            "", "", "", "", ",\"extra\":1", ",\"time\":1", ",\"value\":null", ",\"ti\\u006de\":1",
                        ]),
                    ),
                    0..4,
                ),
            ),
            0..3,
        ),
        edits in proptest::prop_oneof![
            2 => proptest::strategy::Just(Vec::new()),
            1 => proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..3, proptest::sample::select(b"\"{}[],:\\-0.eE+u 9\xc3\x00".to_vec())),
                1..3,
            ),
        ],
    ) {
        let batches: Vec<String> = batches
            .into_iter()
            .map(|(collector, root_host, samples)| {
                let samples: Vec<String> = samples
                    .into_iter()
                    .map(|(time, object, counter, instance, value, ws, extra)| {
                        let instance = instance.map(|i| format!(",{ws}\"instance\":{i}")).unwrap_or_default();
                        format!("{{\"time\":{ws}{time},\"object\":{object},\"counter\":{counter}{instance},\"value\":{value}{ws}{extra}}}")
                    })
                    .collect();
                format!("{{\"collector\":{collector},\"root_host\":{root_host},\"samples\":[{}]}}", samples.join(","))
            })
            .collect();
        let mut body = format!("[{}]", batches.join(",")).into_bytes();
        for (at, how, byte) in edits {
            let i = at.index(body.len() + 1);
            match how {
                0 => body.insert(i, byte),
                1 if i < body.len() => { body.remove(i); }
                _ if i < body.len() => body[i] = byte,
                _ => {}
            }
        }
        proptest::prop_assert_eq!(scanned(&body), by_serde(&body), "{}", String::from_utf8_lossy(&body));
    }
}
