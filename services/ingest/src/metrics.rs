//! Metrics of the ingest service.

use std::sync::LazyLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

pub(crate) static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_ingest_requests_total",
        "Ingest requests, by topic and HTTP status.",
        &["topic", "status"]
    )
    .expect("metric registers once")
});

pub(crate) static ACCEPTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_ingest_records_accepted_total",
        "Records accepted and durable on the bus, by topic.",
        &["topic"]
    )
    .expect("metric registers once")
});

pub(crate) static REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_ingest_records_rejected_total",
        "Records refused because their batch failed validation, by topic.",
        &["topic"]
    )
    .expect("metric registers once")
});

pub(crate) static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_ingest_request_seconds",
        "Time to validate a batch and make it durable on the bus, by topic.",
        &["topic"],
        vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]
    )
    .expect("metric registers once")
});

pub(crate) static BODY_BYTES: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_ingest_body_bytes",
        "Size of ingest request bodies, by topic.",
        &["topic"],
        prometheus::exponential_buckets(256.0, 4.0, 10).unwrap_or_default()
    )
    .expect("metric registers once")
});
