//! Operator actions through the API: maintenance mode, monitor reset and recalculation,
//! closing an alert.
//!
//! An action is checked against what this processor knows, written to the operation topic
//! on its instance's partition, and applied by the processor that owns that partition,
//! which keeps the outcome under the operation's id. The API waits a few seconds for the
//! outcome: 200 when applied, 409 when refused (a monitor alert whose monitor is still
//! unhealthy, a monitor of an instance in maintenance, ...), 202 with the operation's
//! address while another replica has not applied it yet.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use healthstream_bus::{OutboundRecord, Producer};
use healthstream_contracts::records::{Operation, OperationKind};
use healthstream_contracts::{content_id, partition_for_key, Codec, Topic};
use healthstream_store::{Store, StoreError};
use serde::Deserialize;

/// Longest maintenance accepted: a year.
const MAX_MAINTENANCE_MINUTES: u64 = 525_600;

#[derive(Clone)]
struct Ops {
    store: Store,
    producer: Arc<dyn Producer>,
    partitions: i32,
    wait: Duration,
}

/// The routes; `partitions`: of the operation topic (co-partitioned with the inputs).
pub fn operations_router(store: Store, producer: Arc<dyn Producer>, partitions: i32) -> Router {
    operations_router_waiting(store, producer, partitions, Duration::from_secs(5))
}

/// [`operations_router`] waiting at most `wait` for an outcome before answering 202.
pub fn operations_router_waiting(
    store: Store,
    producer: Arc<dyn Producer>,
    partitions: i32,
    wait: Duration,
) -> Router {
    Router::new()
        .route(
            "/v1/maintenance/{instance_id}",
            get(maintenance_get)
                .post(maintenance_start)
                .delete(maintenance_end),
        )
        .route(
            "/v1/health/{instance_id}/monitors/{monitor_id}/reset",
            post(reset),
        )
        .route(
            "/v1/health/{instance_id}/monitors/{monitor_id}/recalculate",
            post(recalculate),
        )
        .route("/v1/alerts/{alert_id}/close", post(close_alert))
        .route("/v1/tasks/{task_id}/run", post(run_task))
        .route("/v1/commands/{command_id}", get(command))
        .route("/v1/operations/{id}", get(outcome))
        .with_state(Ops {
            store,
            producer,
            partitions: partitions.max(1),
            wait,
        })
}

/// A request refused before anything is written.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Who asks: the `X-Healthstream-User` header, else the body's `requested_by`, else `api`.
fn requester(headers: &HeaderMap, body: Option<&str>) -> String {
    headers
        .get("x-healthstream-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| body.map(str::to_string))
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "api".into())
}

/// A JSON body that may be absent; a present one must parse.
fn body<T: serde::de::DeserializeOwned + Default>(raw: &[u8]) -> Result<T, Refusal> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(raw).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("the body is not a valid request: {e}"),
        )
    })
}

/// How long a lookup waits for what it does not find: the stage stores what it applied at
/// its next checkpoint (50 ms after it goes idle, at most
/// [`healthstream_stage::CHECKPOINT_INTERVAL`] and its write under load), and what a client
/// saw a moment ago (an alert or a command on its topic, an instance just discovered) may
/// not be stored yet.
const STORED_WAIT: Duration =
    Duration::from_millis(healthstream_stage::CHECKPOINT_INTERVAL.as_millis() as u64 + 500);

/// Reads with `read` until it finds something or [`STORED_WAIT`] has passed.
async fn stored<T>(
    read: impl FnMut() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    read_within(STORED_WAIT, read).await
}

/// Reads with `read` every 10 ms until it finds something or `wait` has passed.
async fn read_within<T>(
    wait: Duration,
    mut read: impl FnMut() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(found) = read()? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Ops {
    /// The root host of an instance this processor holds.
    async fn root_of(&self, instance: &str) -> Result<String, Refusal> {
        match stored(|| crate::stored_instance(&self.store, instance, self.partitions)).await {
            Ok(Some((_, i))) => Ok(i.root_host),
            Ok(None) => Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("unknown instance {instance} (or not on this processor's partitions)"),
            )),
            Err(e) => Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }

    /// Write the operation on its partition and wait for its outcome.
    async fn submit(&self, mut op: Operation) -> Response {
        let codec = Codec::shared();
        op.id = String::new();
        let id = match codec.encode(&op) {
            Ok(bytes) => content_id(&bytes),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        op.id = id.clone();
        let value = match codec.encode(&op) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let partition = partition_for_key(op.root_host.as_bytes(), self.partitions as u32) as i32;
        let record = OutboundRecord {
            topic: Topic::Operations,
            partition,
            key: Some(op.root_host.as_bytes().to_vec()),
            value: Some(value),
            timestamp_ms: op.requested_at,
        };
        if let Err(e) = self.producer.send(record).await {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "5")],
                Json(serde_json::json!({ "error": format!("the bus refused the operation: {e}") })),
            )
                .into_response();
        }
        match read_within(self.wait, || crate::operation_outcome(&self.store, &id)).await {
            Ok(Some(o)) => outcome_response(&o),
            Ok(None) => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "operation": id,
                    "status": "pending",
                    "location": format!("/v1/operations/{id}"),
                })),
            )
                .into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

fn outcome_response(o: &crate::OperationOutcome) -> Response {
    let status = if o.status == "applied" {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    (
        status,
        Json(serde_json::json!({
            "operation": o.id,
            "kind": o.kind,
            "instance_id": o.instance_id,
            "status": o.status,
            "detail": o.detail,
            "state_changes": o.state_changes,
        })),
    )
        .into_response()
}

fn operation(
    kind: OperationKind,
    root_host: String,
    instance_id: &str,
    requested_by: String,
) -> Operation {
    Operation {
        id: String::new(),
        root_host,
        instance_id: instance_id.to_string(),
        kind,
        monitor_id: None,
        alert_id: None,
        task_id: None,
        reason: String::new(),
        comment: String::new(),
        until: None,
        requested_by,
        requested_at: now_ms(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    reason: Option<String>,
    comment: Option<String>,
    /// Planned end, ms since the epoch.
    until: Option<i64>,
    /// Or a duration from now.
    minutes: Option<u64>,
    requested_by: Option<String>,
}

/// SCOM's maintenance reasons.
const REASONS: &[&str] = &[
    "PlannedOther",
    "UnplannedOther",
    "PlannedHardwareMaintenance",
    "UnplannedHardwareMaintenance",
    "PlannedHardwareInstallation",
    "UnplannedHardwareInstallation",
    "PlannedOperatingSystemReconfiguration",
    "UnplannedOperatingSystemReconfiguration",
    "PlannedApplicationMaintenance",
    "UnplannedApplicationMaintenance",
    "ApplicationInstallation",
    "ApplicationUnresponsive",
    "ApplicationUnstable",
    "SecurityIssue",
    "LossOfNetworkConnectivity",
];

/// `POST /v1/maintenance/{instance}` `{"reason", "comment", "minutes" | "until"}`.
async fn maintenance_start(
    State(ops): State<Ops>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let b: StartBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let reason = b.reason.unwrap_or_else(|| "PlannedOther".into());
    if !REASONS.contains(&reason.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("reason {reason:?} is not one of {}", REASONS.join(", ")),
        );
    }
    let root = match ops.root_of(&instance).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let mut op = operation(
        OperationKind::MaintenanceStart,
        root,
        &instance,
        requester(&headers, b.requested_by.as_deref()),
    );
    op.until = match (b.until, b.minutes) {
        (Some(_), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either until or minutes, not both",
            )
        }
        (Some(u), None) if u <= op.requested_at => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("until ({u}) is not in the future"),
            )
        }
        (Some(u), None) => Some(u),
        (None, Some(m)) if m == 0 || m > MAX_MAINTENANCE_MINUTES => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("minutes must be between 1 and {MAX_MAINTENANCE_MINUTES}, not {m}"),
            )
        }
        (None, Some(m)) => Some(op.requested_at + (m as i64) * 60_000),
        (None, None) => None,
    };
    op.reason = reason;
    op.comment = b.comment.unwrap_or_default();
    ops.submit(op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionQuery {
    comment: Option<String>,
    requested_by: Option<String>,
}

/// `DELETE /v1/maintenance/{instance}`: end it now.
async fn maintenance_end(
    State(ops): State<Ops>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ActionQuery>,
) -> Response {
    let root = match ops.root_of(&instance).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let mut op = operation(
        OperationKind::MaintenanceEnd,
        root,
        &instance,
        requester(&headers, q.requested_by.as_deref()),
    );
    op.comment = q.comment.unwrap_or_default();
    ops.submit(op).await
}

/// `GET /v1/maintenance/{instance}`: the maintenance it is in (its own or a host's).
async fn maintenance_get(State(ops): State<Ops>, Path(instance): Path<String>) -> Response {
    let (partition, _) =
        match stored(|| crate::stored_instance(&ops.store, &instance, ops.partitions)).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("unknown instance {instance} (or not on this processor's partitions)"),
                )
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    match crate::maintenance_of(&ops.store, &instance, partition) {
        Ok(Some((on, m))) => Json(serde_json::json!({
            "instance_id": instance,
            "in_maintenance": true,
            "set_on": on,
            "reason": m.reason,
            "comment": m.comment,
            "by": m.by,
            "start": m.start,
            "until": m.until,
        }))
        .into_response(),
        Ok(None) => Json(serde_json::json!({ "instance_id": instance, "in_maintenance": false }))
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn monitor_action(
    ops: Ops,
    kind: OperationKind,
    instance: String,
    monitor: String,
    headers: HeaderMap,
    q: ActionQuery,
) -> Response {
    let root = match ops.root_of(&instance).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let mut op = operation(
        kind,
        root,
        &instance,
        requester(&headers, q.requested_by.as_deref()),
    );
    op.monitor_id = Some(monitor);
    op.comment = q.comment.unwrap_or_default();
    ops.submit(op).await
}

/// `POST /v1/health/{instance}/monitors/{monitor}/reset`.
async fn reset(
    State(ops): State<Ops>,
    Path((instance, monitor)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<ActionQuery>,
) -> Response {
    monitor_action(
        ops,
        OperationKind::ResetMonitor,
        instance,
        monitor,
        headers,
        q,
    )
    .await
}

/// `POST /v1/health/{instance}/monitors/{monitor}/recalculate`.
async fn recalculate(
    State(ops): State<Ops>,
    Path((instance, monitor)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<ActionQuery>,
) -> Response {
    monitor_action(
        ops,
        OperationKind::RecalculateMonitor,
        instance,
        monitor,
        headers,
        q,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    comment: Option<String>,
    requested_by: Option<String>,
}

/// `POST /v1/alerts/{alert_id}/close` `{"comment"}`.
async fn close_alert(
    State(ops): State<Ops>,
    Path(alert_id): Path<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let b: CloseBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let a = match stored(|| crate::alert(&ops.store, &alert_id)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no alert {alert_id} (or not on this processor's partitions)"),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let root = match ops.root_of(&a.instance_id).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let mut op = operation(
        OperationKind::CloseAlert,
        root,
        &a.instance_id,
        requester(&headers, b.requested_by.as_deref()),
    );
    op.alert_id = Some(alert_id);
    op.comment = b.comment.unwrap_or_default();
    ops.submit(op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    instance_id: String,
    comment: Option<String>,
    requested_by: Option<String>,
}

/// `POST /v1/tasks/{task}/run` `{"instance_id"}`: run a task (or a diagnostic or recovery)
/// on the collector of the instance's host. The outcome names the command; its result is at
/// `/v1/commands/{id}` once the collector reported it.
async fn run_task(
    State(ops): State<Ops>,
    Path(task): Path<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let b: RunBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if b.instance_id.is_empty() {
        return error(StatusCode::BAD_REQUEST, "instance_id is required");
    }
    let root = match ops.root_of(&b.instance_id).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let mut op = operation(
        OperationKind::RunTask,
        root,
        &b.instance_id,
        requester(&headers, b.requested_by.as_deref()),
    );
    op.task_id = Some(task);
    op.comment = b.comment.unwrap_or_default();
    ops.submit(op).await
}

/// `GET /v1/commands/{id}`: a command sent to a collector and its result.
async fn command(State(ops): State<Ops>, Path(id): Path<String>) -> Response {
    match stored(|| crate::command(&ops.store, &id)).await {
        Ok(Some(c)) => Json(serde_json::json!({
            "command_id": c.id,
            "kind": format!("{:?}", c.planned.kind).to_lowercase(),
            "workflow_id": c.planned.workflow_id,
            "name": c.planned.name,
            "instance_id": c.planned.instance_id,
            "root_host": c.planned.root_host,
            "argv": c.planned.argv,
            "timeout_seconds": c.planned.timeout_seconds,
            "requested_by": c.requested_by,
            "requested_at": c.requested_at,
            "alert_id": c.alert_id,
            "result": c.result.map(|r| serde_json::json!({
                "status": r.status, "exit_code": r.exit_code, "output": r.output,
                "truncated": r.truncated, "started_at": r.started_at, "finished_at": r.finished_at,
            })),
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no command {id} (or not on this processor's partitions)"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /v1/operations/{id}`: the outcome of an operation (404 while not applied).
async fn outcome(State(ops): State<Ops>, Path(id): Path<String>) -> Response {
    match crate::operation_outcome(&ops.store, &id) {
        Ok(Some(o)) => outcome_response(&o),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("operation {id} is not applied here (yet)"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
