//! Metrics of the collector.

use std::sync::LazyLock;

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec,
    IntGauge,
};

pub(crate) static SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_collector_sent_records_total",
        "Records (instances, samples, events, heartbeats) the pipeline accepted from this collector.",
        &["kind"]
    )
    .expect("metric registers once")
});

pub(crate) static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_collector_dropped_records_total",
        "Records dropped: past the buffer bound while the pipeline was unreachable, or refused by ingest.",
        &["kind"]
    )
    .expect("metric registers once")
});

pub(crate) static BUFFERED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "healthstream_collector_buffered_records",
        "Records waiting to be sent."
    )
    .expect("metric registers once")
});

pub(crate) static SEND_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_collector_send_failures_total",
        "Attempts to send that failed because the pipeline was unreachable or unavailable."
    )
    .expect("metric registers once")
});
