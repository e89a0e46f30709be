//! The ingest service: collectors post batches here.
//!
//! `POST /v1/ingest/{discovery,perf,events,heartbeats}` with either
//! - `Content-Type: application/json`: a JSON array of records of the topic's contract, in
//!   natural JSON (see `healthstream_contracts::JsonValidator`), without `id`; or
//! - `Content-Type: application/avro`: an Avro object container file whose records are
//!   read with the contract's schema (schema resolution applies, so a collector built
//!   against an older compatible schema is accepted).
//!
//! **All or none.** Every record of a request is validated before any is produced. If one
//! is invalid the request is refused with `422` and a list naming every bad record and
//! field, and nothing is produced. Otherwise every record is produced and the response
//! (`200`) is sent only once all are durable on the bus: nothing acknowledged is lost. If
//! the bus fails midway the response is `503` and the collector resends the whole batch;
//! record ids are content hashes, so the records that did get through are recognised as
//! the same records downstream.

pub mod commands;
mod metrics;
pub mod perf_json;
pub mod plans;

use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use healthstream_bus::{Bus, OutboundRecord, Producer};
use healthstream_contracts::{
    partition_for_key, Codec, FieldError, JsonValidator, PerfView, Topic,
};
use serde::Serialize;
use serde_json::Value as JsonValue;

/// Limits of the ingest endpoint.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest request body, in bytes (`413` beyond).
    pub max_body_bytes: usize,
    /// Most records in one request (`413` beyond).
    pub max_records: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 16 * 1024 * 1024,
            max_records: 10_000,
        }
    }
}

struct Ingest {
    bus: Arc<dyn Bus>,
    producer: Arc<dyn Producer>,
    limits: IngestLimits,
}

/// One bad field of one record.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Index of the record in the request.
    pub record: usize,
    /// Path of the field in the record (empty: the record itself).
    pub field: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<Problem>,
}

/// Why a request was refused. The HTTP status of each is decided here, in one place.
#[derive(Debug)]
enum Refusal {
    /// The body cannot be read as the content type says (`400`).
    BadBody(String),
    /// Too many records or too large (`413`).
    TooLarge(String),
    /// A content type other than JSON or Avro (`415`).
    UnsupportedType(String),
    /// Records break the contract (`422`), none accepted.
    Invalid {
        message: String,
        problems: Vec<Problem>,
    },
    /// The bus did not take the batch (`503`, retry).
    Unavailable(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message, problems) = match self {
            Refusal::BadBody(m) => (StatusCode::BAD_REQUEST, m, vec![]),
            Refusal::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m, vec![]),
            Refusal::UnsupportedType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m, vec![]),
            Refusal::Invalid { message, problems } => {
                (StatusCode::UNPROCESSABLE_ENTITY, message, problems)
            }
            Refusal::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m, vec![]),
        };
        let retry = status == StatusCode::SERVICE_UNAVAILABLE;
        let mut resp = (
            status,
            Json(ErrorBody {
                error: message,
                problems,
            }),
        )
            .into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

#[derive(Debug, Serialize)]
struct Accepted {
    topic: &'static str,
    accepted: usize,
    ids: Vec<String>,
}

/// The ingest routes, producing to `bus`.
pub fn router(
    bus: Arc<dyn Bus>,
    limits: IngestLimits,
) -> Result<Router, healthstream_bus::BusError> {
    let producer = bus.producer()?;
    let state = Arc::new(Ingest {
        bus,
        producer,
        limits: limits.clone(),
    });
    Ok(Router::new()
        .route("/v1/ingest/discovery", post(discovery))
        .route("/v1/ingest/perf", post(perf))
        .route("/v1/ingest/events", post(events))
        .route("/v1/ingest/heartbeats", post(heartbeats))
        .route("/v1/ingest/task-results", post(task_results))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state))
}

/// The topics the ingest produces from collector batches.
pub const INGEST_TOPICS: [Topic; 5] = [
    Topic::Discovery,
    Topic::Perf,
    Topic::Events,
    Topic::Heartbeats,
    Topic::TaskResults,
];

async fn task_results(State(s): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, Topic::TaskResults, &headers, body).await
}

async fn discovery(State(s): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, Topic::Discovery, &headers, body).await
}
async fn perf(State(s): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, Topic::Perf, &headers, body).await
}
async fn events(State(s): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, Topic::Events, &headers, body).await
}
async fn heartbeats(State(s): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&s, Topic::Heartbeats, &headers, body).await
}

async fn handle(s: &Ingest, topic: Topic, headers: &HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let response = match ingest(s, topic, headers, &body).await {
        Ok(accepted) => (StatusCode::OK, Json(accepted)).into_response(),
        Err(refusal) => refusal.into_response(),
    };
    let status = response.status();
    metrics::REQUESTS
        .with_label_values(&[topic.name(), status.as_str()])
        .inc();
    metrics::REQUEST_SECONDS
        .with_label_values(&[topic.name()])
        .observe(started.elapsed().as_secs_f64());
    metrics::BODY_BYTES
        .with_label_values(&[topic.name()])
        .observe(body.len() as f64);
    response
}

async fn ingest(
    s: &Ingest,
    topic: Topic,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if topic == Topic::Perf && mime == "application/json" {
        // Empty or too long, the request is refused by the generic path below.
        if let Some(batches) =
            perf_json::read(body).filter(|b| !b.is_empty() && b.len() <= s.limits.max_records)
        {
            let (outbound, ids) = encode_perf(s, &batches);
            return produce(s, topic, outbound, ids).await;
        }
    }
    let records: Vec<JsonValue> = match mime.as_str() {
        "application/json" => parse_json(body)?,
        "application/avro" | "avro/binary" => parse_avro(topic, body)?,
        other => {
            return Err(Refusal::UnsupportedType(format!(
                "content type {other:?} is not accepted; use application/json or application/avro"
            )))
        }
    };
    if records.is_empty() {
        return Err(Refusal::BadBody("the batch has no records".to_string()));
    }
    if records.len() > s.limits.max_records {
        return Err(Refusal::TooLarge(format!(
            "the batch has {} records; at most {} are accepted per request",
            records.len(),
            s.limits.max_records
        )));
    }
    let (outbound, ids) = validate(s, topic, &records).map_err(|problems| {
        let bad: std::collections::BTreeSet<usize> = problems.iter().map(|p| p.record).collect();
        metrics::REJECTED
            .with_label_values(&[topic.name()])
            .inc_by(records.len() as u64);
        Refusal::Invalid {
            message: format!(
                "{} of {} records are invalid; none of the batch was accepted",
                bad.len(),
                records.len()
            ),
            problems,
        }
    })?;
    produce(s, topic, outbound, ids).await
}

/// Produces validated records and answers once every one is durable.
async fn produce(
    s: &Ingest,
    topic: Topic,
    outbound: Vec<OutboundRecord>,
    ids: Vec<String>,
) -> Result<Accepted, Refusal> {
    let mut pending = Vec::with_capacity(outbound.len());
    for record in outbound {
        pending.push(s.producer.enqueue(record).await.map_err(unavailable)?);
    }
    for p in pending {
        p.await.map_err(unavailable)?;
    }
    metrics::ACCEPTED
        .with_label_values(&[topic.name()])
        .inc_by(ids.len() as u64);
    Ok(Accepted {
        topic: topic.name(),
        accepted: ids.len(),
        ids,
    })
}

fn unavailable(e: healthstream_bus::BusError) -> Refusal {
    tracing::warn!(error = %e, "ingest could not produce; batch refused");
    Refusal::Unavailable(format!("the bus did not take the batch ({e}); resend it"))
}

fn parse_json(body: &[u8]) -> Result<Vec<JsonValue>, Refusal> {
    match serde_json::from_slice::<JsonValue>(body) {
        Ok(JsonValue::Array(items)) => Ok(items),
        Ok(other) => Err(Refusal::BadBody(format!(
            "the body must be a JSON array of records, found {}",
            match other {
                JsonValue::Object(_) => "an object",
                JsonValue::String(_) => "a string",
                JsonValue::Number(_) => "a number",
                JsonValue::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(Refusal::BadBody(format!(
            "the body is not JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Reads an Avro object container file with the contract's schema and turns each record
/// into JSON, so both encodings go through the same validation.
fn parse_avro(topic: Topic, body: &[u8]) -> Result<Vec<JsonValue>, Refusal> {
    let schema = Codec::shared().schema(topic.contract());
    let reader = apache_avro::Reader::with_schema(schema, body).map_err(|e| {
        Refusal::BadBody(format!(
            "the body is not an Avro object container file readable as {}: {e}",
            topic.contract()
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in reader.enumerate() {
        let value =
            item.map_err(|e| Refusal::BadBody(format!("Avro record {i} does not decode: {e}")))?;
        let mut json = avro_to_json(&value);
        if let JsonValue::Object(map) = &mut json {
            map.remove("id");
        }
        out.push(json);
    }
    Ok(out)
}

fn avro_to_json(v: &Value) -> JsonValue {
    match v {
        Value::Null => JsonValue::Null,
        Value::Boolean(b) => JsonValue::Bool(*b),
        Value::Int(n) => JsonValue::from(*n),
        Value::Long(n) | Value::TimestampMillis(n) | Value::TimestampMicros(n) => {
            JsonValue::from(*n)
        }
        Value::Float(x) => JsonValue::from(f64::from(*x)),
        Value::Double(x) => JsonValue::from(*x),
        Value::String(s) | Value::Enum(_, s) => JsonValue::String(s.clone()),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => JsonValue::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(m) => JsonValue::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect(),
        ),
        Value::Record(fields) => JsonValue::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect(),
        ),
        other => JsonValue::String(format!("{other:?}")),
    }
}

type Validated = (Vec<OutboundRecord>, Vec<String>);

fn validate(s: &Ingest, topic: Topic, records: &[JsonValue]) -> Result<Validated, Vec<Problem>> {
    let codec = Codec::shared();
    let validator = JsonValidator::shared();
    let contract = topic.contract();
    let partitions = s.bus.partitions(topic).max(1) as u32;
    let now = now_ms();
    let mut problems = Vec::new();
    let mut outbound = Vec::with_capacity(records.len());
    let mut ids = Vec::with_capacity(records.len());
    for (i, json) in records.iter().enumerate() {
        let value =
            match validator.validate(contract, json) {
                Ok(v) => v,
                Err(errors) => {
                    problems.extend(errors.into_iter().map(|FieldError { field, message }| {
                        Problem {
                            record: i,
                            field,
                            message,
                        }
                    }));
                    continue;
                }
            };
        match finish(codec, topic, value) {
            Ok((id, bytes, root_host)) => {
                outbound.push(by_root_host(topic, partitions, root_host, bytes, now));
                ids.push(id);
            }
            Err(message) => problems.push(Problem {
                record: i,
                field: String::new(),
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok((outbound, ids))
    } else {
        Err(problems)
    }
}

/// Encodes perf batches read by the fast path, as [`validate`] would.
fn encode_perf(s: &Ingest, batches: &[PerfView<'_>]) -> Validated {
    let codec = Codec::shared();
    let partitions = s.bus.partitions(Topic::Perf).max(1) as u32;
    let now = now_ms();
    let mut outbound = Vec::with_capacity(batches.len());
    let mut ids = Vec::with_capacity(batches.len());
    for b in batches {
        let (id, bytes) = codec.encode_perf_with_content_id(b);
        outbound.push(by_root_host(
            Topic::Perf,
            partitions,
            b.root_host.as_ref(),
            bytes,
            now,
        ));
        ids.push(id);
    }
    (outbound, ids)
}

/// A record of `topic` keyed by its root host, in the root host's partition.
fn by_root_host(
    topic: Topic,
    partitions: u32,
    root_host: impl Into<Vec<u8>>,
    value: Vec<u8>,
    now: i64,
) -> OutboundRecord {
    let key = root_host.into();
    OutboundRecord {
        topic,
        partition: partition_for_key(&key, partitions) as i32,
        key: Some(key),
        value: Some(value),
        timestamp_ms: now,
    }
}

/// Assigns the content id and encodes the record; returns id, framed value, root host.
fn finish(codec: &Codec, topic: Topic, value: Value) -> Result<(String, Vec<u8>, String), String> {
    let Value::Record(fields) = &value else {
        return Err("record is not an Avro record".to_string());
    };
    let root_host = fields
        .iter()
        .find_map(|(k, v)| match (k.as_str(), v) {
            ("root_host", Value::String(s)) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| "record has no root_host".to_string())?;
    let (id, bytes) = codec
        .encode_with_content_id(topic.contract(), value)
        .map_err(|e| e.to_string())?;
    Ok((id, bytes, root_host))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
