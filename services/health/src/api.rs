//! Read API of the health processor.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_packfeed::PackSnapshot;
use healthstream_store::Store;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::watch;

use crate::latest_samples;

#[derive(Debug, Deserialize)]
struct Paging {
    limit: Option<usize>,
}

/// `GET /v1/perf/{root_host}`: the latest sample of every counter of a hosting tree.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/v1/perf/{root_host}", get(perf_latest))
        .route("/v1/health/{instance_id}", get(instance_health))
        .route("/v1/health/{instance_id}/history", get(instance_history))
        .with_state(store)
}

async fn perf_latest(
    State(store): State<Store>,
    Path(root_host): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let limit = paging.limit.unwrap_or(1000).min(10_000);
    match latest_samples(&store, &root_host, limit) {
        Ok(samples) => Json(samples).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /v1/health/{instance_id}`: the state of every monitor of an instance.
async fn instance_health(State(store): State<Store>, Path(instance): Path<String>) -> Response {
    match crate::monitor_states(&store, &instance) {
        Ok(states) if states.is_empty() => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no monitor state for instance {instance}")})),
        )
            .into_response(),
        Ok(states) => {
            let mut alerts = Vec::new();
            for (m, _) in &states {
                if let Ok(Some(a)) = crate::open_alert(&store, &instance, m) {
                    alerts.push(serde_json::json!({
                        "alert_id": a.id, "monitor_id": a.workflow_id, "name": a.name,
                        "severity": format!("{:?}", a.severity).to_lowercase(), "raised_at": a.raised_at,
                        "history": a.history.iter().map(|c| c.comment.clone()).collect::<Vec<_>>(),
                    }));
                }
            }
            let monitors: serde_json::Map<String, serde_json::Value> = states
                .into_iter()
                .map(|(m, h)| (m, serde_json::Value::String(h.to_string())))
                .collect();
            Json(serde_json::json!({ "instance_id": instance, "monitors": monitors, "open_alerts": alerts })).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    monitor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/health/{instance_id}/history?monitor=M&limit=N`: state changes, oldest first.
async fn instance_history(
    State(store): State<Store>,
    Path(instance): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(1000).min(10_000);
    match crate::state_history(&store, &instance, q.monitor.as_deref(), limit) {
        Ok(entries) => Json(serde_json::json!({
            "instance_id": instance,
            "changes": entries.iter().map(|e| serde_json::json!({
                "monitor_id": e.monitor_id, "old": e.old.to_string(), "new": e.new.to_string(), "time": e.time, "cause": e.cause,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()}))).into_response(),
    }
}

/// `GET /v1/model`: the packs this health processor holds (followed from the pack topic).
pub fn model_router(packs: watch::Receiver<Arc<PackSnapshot>>) -> Router {
    Router::new()
        .route("/v1/model", get(model))
        .with_state(packs)
}

async fn model(State(packs): State<watch::Receiver<Arc<PackSnapshot>>>) -> Response {
    let s = packs.borrow().clone();
    let catalog = s.store.catalog();
    let packs: Vec<serde_json::Value> = catalog
        .packs()
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.pack.pack.id,
                "version": p.pack.pack.version.to_string(),
                "monitors": p.pack.monitors.len() + p.pack.aggregates.len() + p.pack.dependencies.len(),
                "rules": p.pack.rules.len(),
            })
        })
        .collect();
    Json(serde_json::json!({ "packs": packs, "pack_topic_offset": s.next_offset })).into_response()
}
