//! Collection plans for collectors: `GET /v1/plans/{root_host}` answers the latest plan of a
//! host, read from the compacted collection-plan topic (every partition, from the start).
//! The plan's digest is its `ETag`: a collector polling with `If-None-Match` gets `304`
//! until its plan changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_bus::{Bus, BusError, ConsumerEvent};
use healthstream_contracts::records::CollectionPlan;
use healthstream_contracts::{Codec, Topic};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The latest plan of every root host.
pub type Plans = Arc<RwLock<HashMap<String, KeptPlan>>>;

/// A plan as kept: its digest and its record as read from the topic (framed Avro, a
/// fraction of the decoded plan's size: every host of the fleet has one), decoded when
/// a collector asks for it.
pub struct KeptPlan {
    pub digest: String,
    framed: Arc<[u8]>,
}

/// Follow the collection-plan topic into `Plans` until `stop`.
pub fn follow_plans(
    bus: Arc<dyn Bus>,
    mut stop: watch::Receiver<bool>,
) -> Result<(Plans, JoinHandle<Result<(), BusError>>), BusError> {
    let parts: Vec<(Topic, i32, i64)> = (0..bus.partitions(Topic::CollectionPlans))
        .map(|p| (Topic::CollectionPlans, p, 0))
        .collect();
    let mut consumer = bus.reader(&parts)?;
    let plans: Plans = Arc::default();
    let out = plans.clone();
    let task = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                e = consumer.next() => e?,
                _ = stop.changed() => return Ok(()),
            };
            let ConsumerEvent::Message(m) = event else {
                continue;
            };
            let key = m
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).to_string());
            match m
                .value
                .as_deref()
                .map(|v| Codec::shared().decode::<CollectionPlan>(v).map(|p| (p, v)))
            {
                Some(Ok((plan, framed))) => {
                    if let Ok(mut map) = plans.write() {
                        let kept = KeptPlan {
                            digest: plan.digest,
                            framed: framed.into(),
                        };
                        map.insert(plan.root_host, kept);
                    }
                }
                None => {
                    if let (Some(k), Ok(mut map)) = (key, plans.write()) {
                        map.remove(&k);
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(offset = m.offset, error = %e, "collection plan cannot be decoded; skipped")
                }
            }
        }
    });
    Ok((out, task))
}

/// The route.
pub fn router(plans: Plans) -> Router {
    Router::new()
        .route("/v1/plans/{root_host}", get(plan))
        .with_state(plans)
}

async fn plan(
    State(plans): State<Plans>,
    Path(root): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = plans
        .read()
        .ok()
        .and_then(|m| m.get(&root).map(|k| (k.digest.clone(), k.framed.clone())));
    let Some((digest, framed)) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no collection plan for {root} yet") })),
        )
            .into_response();
    };
    let etag = format!("\"{digest}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    match Codec::shared().decode::<CollectionPlan>(&framed) {
        Ok(plan) => ([(header::ETAG, etag)], Json(plan)).into_response(),
        // It decoded when it was read: only a changed schema registry could make it fail.
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": format!("collection plan of {root}: {e}") })),
        )
            .into_response(),
    }
}
