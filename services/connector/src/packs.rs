//! The packs API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_bus::Bus;
use healthstream_model::load::MAX_PACK_BYTES;
use healthstream_model::store::{ChangeKind, StoreError};
use healthstream_packfeed::{catch_up, publish, wait_for, FeedError, PackSnapshot};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{watch, Mutex};

/// How long a request waits for its change to come back from the pack topic.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the packs API.
#[derive(Clone)]
pub struct PackApi {
    bus: Arc<dyn Bus>,
    snapshot: watch::Receiver<Arc<PackSnapshot>>,
    /// One change at a time: each is checked against the packs its predecessor left.
    writer: Arc<Mutex<()>>,
}

impl PackApi {
    /// The API over a bus and the pack feed this process follows.
    pub fn new(bus: Arc<dyn Bus>, snapshot: watch::Receiver<Arc<PackSnapshot>>) -> PackApi {
        PackApi {
            bus,
            snapshot,
            writer: Arc::new(Mutex::new(())),
        }
    }
}

/// The routes.
pub fn router(api: PackApi) -> Router {
    Router::new()
        .route("/v1/packs", get(list).post(import))
        .route("/v1/packs/{id}", get(show).delete(remove))
        .layer(DefaultBodyLimit::max(MAX_PACK_BYTES))
        .with_state(api)
}

#[derive(Serialize)]
struct PackInfo {
    id: String,
    version: String,
    sealed: bool,
    references: Vec<String>,
    digest: String,
}

async fn list(State(api): State<PackApi>) -> Response {
    let s = api.snapshot.borrow().clone();
    let packs: Vec<PackInfo> = s
        .store
        .packs()
        .map(|p| PackInfo {
            id: p.pack.pack.id.clone(),
            version: p.pack.pack.version.to_string(),
            sealed: p.pack.pack.sealed,
            references: p
                .pack
                .references
                .iter()
                .map(|r| format!("{} >= {}", r.pack, r.version))
                .collect(),
            digest: s
                .store
                .get(&p.pack.pack.id)
                .map(|(_, d)| d.to_string())
                .unwrap_or_default(),
        })
        .collect();
    Json(json!({ "packs": packs, "pack_topic_offset": s.next_offset })).into_response()
}

async fn show(State(api): State<PackApi>, Path(id): Path<String>) -> Response {
    let s = api.snapshot.borrow().clone();
    match s.store.get(&id) {
        Some((p, _)) => ([("content-type", "application/toml")], p.text.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no pack {id} is imported"),
            vec![],
        ),
    }
}

fn error(status: StatusCode, message: String, problems: Vec<String>) -> Response {
    (
        status,
        Json(json!({ "error": message, "problems": problems })),
    )
        .into_response()
}

fn refused(e: StoreError) -> Response {
    match e {
        StoreError::Invalid { problems } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the pack is refused: {} problem(s)", problems.len()),
            problems.iter().map(|p| p.to_string()).collect(),
        ),
        StoreError::Unknown(_) => error(StatusCode::NOT_FOUND, e.to_string(), vec![]),
        other => error(StatusCode::CONFLICT, other.to_string(), vec![]),
    }
}

fn unavailable(e: FeedError) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), vec![]);
    r.headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("5"));
    r
}

async fn import(State(api): State<PackApi>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 TOML".into(),
            vec![],
        );
    };
    let _guard = api.writer.lock().await;
    let mut rx = api.snapshot.clone();
    let current = match catch_up(api.bus.as_ref(), &mut rx, APPLY_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let change = match current.store.plan_import(text, "request body") {
        Ok(c) => c,
        Err(StoreError::Unchanged { pack, version }) => {
            return Json(
                json!({ "change": "unchanged", "pack": pack, "version": version.to_string() }),
            )
            .into_response();
        }
        Err(e) => return refused(e),
    };
    apply(&api, rx, change).await
}

async fn remove(State(api): State<PackApi>, Path(id): Path<String>) -> Response {
    let _guard = api.writer.lock().await;
    let mut rx = api.snapshot.clone();
    let current = match catch_up(api.bus.as_ref(), &mut rx, APPLY_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    match current.store.plan_remove(&id) {
        Ok(change) => apply(&api, rx, change).await,
        Err(e) => refused(e),
    }
}

async fn apply(
    api: &PackApi,
    mut rx: watch::Receiver<Arc<PackSnapshot>>,
    change: healthstream_model::store::PackChange,
) -> Response {
    let offset = match publish(api.bus.as_ref(), &change, "api").await {
        Ok(o) => o,
        Err(e) => return unavailable(e),
    };
    if let Err(e) = wait_for(&mut rx, offset + 1, APPLY_TIMEOUT).await {
        return unavailable(e);
    }
    let kind = match change.kind {
        ChangeKind::Import => "import",
        ChangeKind::Upgrade => "upgrade",
        ChangeKind::Remove => "remove",
    };
    tracing::info!(pack = %change.pack_id, version = %change.version, change = kind, "pack change published");
    Json(json!({ "change": kind, "pack": change.pack_id, "version": change.version.to_string(), "offset": offset })).into_response()
}

/// Import the shipped packs that are missing or older than the shipped version. Packs that
/// are newer in the deployment are left alone.
pub async fn seed(api: &PackApi, packs: &[(&str, &str)]) -> Result<Vec<String>, String> {
    let _guard = api.writer.lock().await;
    let mut rx = api.snapshot.clone();
    let mut done = Vec::new();
    for (path, text) in packs {
        let current = catch_up(api.bus.as_ref(), &mut rx, APPLY_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        match current.store.plan_import(text, path) {
            Ok(change) => {
                let offset = publish(api.bus.as_ref(), &change, "shipped packs")
                    .await
                    .map_err(|e| e.to_string())?;
                wait_for(&mut rx, offset + 1, APPLY_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                done.push(format!("{} {}", change.pack_id, change.version));
            }
            Err(StoreError::Unchanged { .. } | StoreError::Downgrade { .. }) => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(done)
}
