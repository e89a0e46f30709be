//! Read API of the health processor.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_store::Store;
use serde::Deserialize;

use crate::latest_samples;

#[derive(Debug, Deserialize)]
struct Paging {
    limit: Option<usize>,
}

/// `GET /v1/perf/{root_host}`: the latest sample of every counter of a hosting tree.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/v1/perf/{root_host}", get(perf_latest))
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
