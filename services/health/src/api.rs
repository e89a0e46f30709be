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

/// `GET /v1/perf/{root_host}`: the latest sample of every counter of a hosting tree;
/// `GET /v1/health/{instance_id}` and its history. `partitions`: of the input topics.
pub fn router(store: Store, partitions: i32) -> Router {
    Router::new()
        .route("/v1/perf/{root_host}", get(perf_latest))
        .route("/v1/health/{instance_id}/history", get(instance_history))
        .with_state(store.clone())
        .merge(
            Router::new()
                .route("/v1/health/{instance_id}", get(instance_health))
                .route("/v1/containers/{container_id}", get(container))
                .with_state((store, partitions)),
        )
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
async fn instance_health(
    State((store, partitions)): State<(Store, i32)>,
    Path(instance): Path<String>,
) -> Response {
    // One point in time for every read: a checkpoint written between two of them would
    // show a unit monitor's new state without the rollups it changed.
    let store = store.snapshot();
    match crate::monitor_states(&store, &instance, partitions) {
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
            // Maintenance (its own or a host's) and availability: shown grey when its
            // collector misses its heartbeats.
            let (maintenance, unavailable_since) =
                match crate::stored_instance(&store, &instance, partitions) {
                    Ok(Some((p, i))) => (
                        crate::maintenance_of(&store, &instance, p).ok().flatten(),
                        crate::unavailable_since(&store, &i.root_host)
                            .ok()
                            .flatten(),
                    ),
                    _ => (None, None),
                };
            let maintenance = maintenance.map(|(on, m)| {
                serde_json::json!({
                    "set_on": on, "reason": m.reason, "comment": m.comment, "by": m.by,
                    "start": m.start, "until": m.until,
                })
            });
            Json(serde_json::json!({
                "instance_id": instance,
                "monitors": monitors,
                "open_alerts": alerts,
                "maintenance": maintenance,
                "unavailable": unavailable_since.is_some(),
                "unavailable_since": unavailable_since,
            }))
            .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /v1/containers/{container_id}`: a container's monitor states and what its
/// members (on any host) last reported.
async fn container(
    State((store, partitions)): State<(Store, i32)>,
    Path(id): Path<String>,
) -> Response {
    let store = store.snapshot();
    let read = crate::monitor_states(&store, &id, partitions).and_then(|states| {
        crate::engine_stage::container_members(&store, &id, partitions).map(|m| (states, m))
    });
    let (states, members) = match read {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    if states.is_empty() && members.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no container {id} (or not on this processor's partitions)")})),
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
            let mut v = member_json(&member, &known);
            v["relationship"] = relationship.into();
            v["states"] = known
                .states
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                .collect::<serde_json::Map<_, _>>()
                .into();
            v
        })
        .collect();
    Json(serde_json::json!({ "container_id": id, "monitors": monitors, "members": members }))
        .into_response()
}

/// What a container knows of a member: its id, class and flags.
fn member_json(
    member: &str,
    known: &healthstream_engine::engine::ExternalMember,
) -> serde_json::Value {
    serde_json::json!({
        "member_id": member,
        "class": known.class,
        "in_maintenance": known.in_maintenance,
        "unavailable": known.unavailable,
    })
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    monitor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/health/{instance_id}/history?monitor=M&limit=N`: the latest N state changes
/// (1,000 unless given, at most 10,000), oldest first.
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

/// `GET /v1/model`: the packs this health processor holds (followed from the pack topic);
/// `GET /v1/health/{instance_id}/tree`: the health explorer (needs the packs for the tree).
/// `partitions`: of the input topics.
pub fn model_router(
    packs: watch::Receiver<Arc<PackSnapshot>>,
    store: Store,
    partitions: i32,
) -> Router {
    Router::new()
        .route("/v1/model", get(model))
        .with_state(packs.clone())
        .merge(
            Router::new()
                .route("/v1/health/{instance_id}/tree", get(tree))
                .with_state((packs, store, partitions)),
        )
}

/// One node of the health explorer's tree.
#[derive(serde::Serialize)]
struct Node {
    monitor_id: String,
    kind: &'static str,
    state: String,
    since: Option<i64>,
    cause: Option<String>,
    /// A dependency monitor over reported members (containment, reference): each member
    /// with the state it reported for the monitor's member monitor, and its flags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<serde_json::Value>,
    children: Vec<Node>,
}

/// The monitor tree of an instance: every monitor with state, the time and data of its last
/// change; rollups say which child or member drove them (their cause names it).
async fn tree(
    State((packs, store, partitions)): State<(watch::Receiver<Arc<PackSnapshot>>, Store, i32)>,
    Path(instance): Path<String>,
) -> Response {
    let snapshot = store.snapshot();
    let reported = crate::container_members(&snapshot, &instance, partitions).unwrap_or_default();
    let states = match crate::monitor_states(&snapshot, &instance, partitions) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no monitor state for instance {instance}")})),
        )
            .into_response(),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    let catalog = packs.borrow().store.catalog();
    let mut parent_of: std::collections::BTreeMap<String, (Option<String>, &'static str)> =
        Default::default();
    for p in catalog.packs() {
        for m in &p.pack.monitors {
            parent_of.insert(m.id.clone(), (Some(m.parent.clone()), "unit"));
        }
        for a in &p.pack.aggregates {
            parent_of.insert(a.id.clone(), (a.parent.clone(), "aggregate"));
        }
        for d in &p.pack.dependencies {
            parent_of.insert(d.id.clone(), (Some(d.parent.clone()), "dependency"));
        }
    }
    // What each dependency monitor over reported members reads of them.
    let mut members_of: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        Default::default();
    for d in catalog
        .packs()
        .iter()
        .flat_map(|p| p.pack.dependencies.iter())
    {
        let list: Vec<serde_json::Value> = reported
            .iter()
            .filter(|(relationship, _, _)| *relationship == d.relationship)
            .map(|(_, member, known)| {
                let mut v = member_json(member, known);
                v["state"] = known
                    .states
                    .get(&d.member_monitor)
                    .map_or("uninitialized".to_string(), |h| h.to_string())
                    .into();
                v
            })
            .collect();
        if !list.is_empty() {
            members_of.insert(d.id.clone(), list);
        }
    }
    // Since when each monitor is in its state: its latest change, all read at once.
    let ids: Vec<&str> = states.iter().map(|(m, _)| m.as_str()).collect();
    let latest: std::collections::BTreeMap<&str, (i64, String)> =
        crate::engine_stage::latest_changes(&store, &instance, &ids)
            .unwrap_or_default()
            .into_iter()
            .zip(&ids)
            .filter_map(|(e, m)| e.map(|e| (*m, (e.time, e.cause))))
            .collect();
    let last = |monitor: &str| latest.get(monitor).cloned();
    fn build(
        id: &str,
        states: &[(String, healthstream_model::pack::Health)],
        parent_of: &std::collections::BTreeMap<String, (Option<String>, &'static str)>,
        members_of: &std::collections::BTreeMap<String, Vec<serde_json::Value>>,
        last: &dyn Fn(&str) -> Option<(i64, String)>,
        depth: usize,
    ) -> Node {
        let state = states
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, h)| h.to_string())
            .unwrap_or_else(|| "uninitialized".into());
        let (since, cause) = last(id)
            .map(|(t, c)| (Some(t), Some(c)))
            .unwrap_or((None, None));
        let children = if depth > 16 {
            Vec::new()
        } else {
            states
                .iter()
                .filter(|(m, _)| parent_of.get(m).and_then(|(p, _)| p.as_deref()) == Some(id))
                .map(|(m, _)| build(m, states, parent_of, members_of, last, depth + 1))
                .collect()
        };
        Node {
            monitor_id: id.to_string(),
            kind: parent_of.get(id).map_or("unit", |(_, k)| k),
            state,
            since,
            cause,
            members: members_of.get(id).cloned().unwrap_or_default(),
            children,
        }
    }
    let roots: Vec<Node> = states
        .iter()
        .filter(|(m, _)| parent_of.get(m).is_some_and(|(p, _)| p.is_none()))
        .map(|(m, _)| build(m, &states, &parent_of, &members_of, &last, 0))
        .collect();
    Json(serde_json::json!({ "instance_id": instance, "tree": roots })).into_response()
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
