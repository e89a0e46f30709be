//! What every service exposes about itself: Prometheus metrics at `/metrics`, liveness at
//! `/healthz` and readiness at `/readyz` (ready once every registered component says so).
//!
//! Metrics are declared as statics in each crate's `metrics.rs`, registered in the default
//! registry and named `healthstream_<subsystem>_<name>_<unit>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};

/// Components that must be ready before the service is.
#[derive(Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<String, Option<String>>>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component, not ready yet.
    pub fn register(&self, component: &str) {
        self.lock()
            .insert(component.to_string(), Some("starting".to_string()));
    }

    /// Marks a component ready.
    pub fn set_ready(&self, component: &str) {
        self.lock().insert(component.to_string(), None);
    }

    /// Marks a component not ready, with the reason.
    pub fn set_not_ready(&self, component: &str, reason: &str) {
        self.lock()
            .insert(component.to_string(), Some(reason.to_string()));
    }

    /// `Ok` if every component is ready, else the ones that are not, with why.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let waiting: Vec<String> = self
            .lock()
            .iter()
            .filter_map(|(c, why)| why.as_ref().map(|w| format!("{c}: {w}")))
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<String>>> {
        self.components.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Prometheus text of every registered metric.
pub fn render_metrics() -> String {
    let families = prometheus::gather();
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        return format!("# error encoding metrics: {e}\n");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render_metrics(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    match readiness.check() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                        Err(waiting) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready:\n{}\n", waiting.join("\n")),
                        )
                            .into_response(),
                    }
                }
            }),
        )
}

/// Sets up logging to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).to_string())
    }

    #[tokio::test]
    async fn readiness_waits_for_every_component() {
        let readiness = Readiness::new();
        readiness.register("bus");
        readiness.register("store");
        let router = router(readiness.clone());
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        let (status, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("bus: starting") && body.contains("store: starting"));
        readiness.set_ready("bus");
        readiness.set_not_ready("store", "restoring partition 3");
        let (status, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("store: restoring partition 3") && !body.contains("bus"));
        readiness.set_ready("store");
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let c = prometheus::register_int_counter!(
            "healthstream_telemetry_test_events_total",
            "test counter"
        )
        .expect("register");
        c.inc_by(3);
        let (status, body) = get(&router(Readiness::new()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("healthstream_telemetry_test_events_total 3"),
            "{body}"
        );
    }
}
