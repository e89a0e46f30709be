//! Read API of the rollup stage: a container's monitor states and its members.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_store::Store;

/// `GET /v1/containers/{container_id}`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/v1/containers/{container_id}", get(container))
        .with_state(store)
}

async fn container(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let states = match crate::container_states(&store, &id) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    let members = crate::container_members(&store, &id).unwrap_or_default();
    if states.is_empty() && members.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no container {id} (or not on this stage's partitions)")})),
        )
            .into_response();
    }
    let monitors: serde_json::Map<String, serde_json::Value> = states
        .into_iter()
        .map(|(m, h)| (m, serde_json::Value::String(h.to_string())))
        .collect();
    let members: Vec<serde_json::Value> = members
        .into_iter()
        .map(|(relationship, member, known)| {
            serde_json::json!({
                "member_id": member,
                "relationship": relationship,
                "class": known.class,
                "states": known.states.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                "in_maintenance": known.in_maintenance,
                "unavailable": known.unavailable,
            })
        })
        .collect();
    Json(serde_json::json!({ "container_id": id, "monitors": monitors, "members": members }))
        .into_response()
}
