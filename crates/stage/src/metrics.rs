//! Metrics of the processor runtime.

use std::sync::LazyLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

/// Records processed, by stage, topic and outcome (`applied`, `dead_lettered`).
pub static STAGE_RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_stage_records_total",
        "Input records processed, by stage, topic and outcome (applied, dead_lettered).",
        &["stage", "topic", "outcome"]
    )
    .expect("metric registers once")
});

pub(crate) static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_stage_dead_letters_total",
        "Input records sent to the dead-letter topic, by stage, source topic and class.",
        &["stage", "topic", "class"]
    )
    .expect("metric registers once")
});

pub(crate) static PROCESS_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_process_seconds",
        "Time from applying an input record to its state and offset being stored (apply, outputs durable, the group's store write).",
        &["stage"],
        vec![0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]
    )
    .expect("metric registers once")
});

pub(crate) static COMMIT_RECORDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_commit_records",
        "Input records applied into one store write (a group commit).",
        &["stage"],
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    )
    .expect("metric registers once")
});
