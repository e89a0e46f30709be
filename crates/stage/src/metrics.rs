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
        "Time from applying an input record to its outputs being durable (apply, then the group commit).",
        &["stage"],
        vec![0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]
    )
    .expect("metric registers once")
});

pub(crate) static COMMIT_RECORDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_commit_records",
        "Input records whose outputs were awaited together (a group commit).",
        &["stage"],
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    )
    .expect("metric registers once")
});

pub(crate) static CHECKPOINT_RECORDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_checkpoint_records",
        "Input records whose state one checkpoint stored (the state batch written with their offsets).",
        &["stage"],
        vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0]
    )
    .expect("metric registers once")
});

pub(crate) static CHECKPOINT_WRITE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_checkpoint_write_seconds",
        "Time to write a checkpoint to the store (on a writer thread, while the stage goes on).",
        &["stage"],
        vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]
    )
    .expect("metric registers once")
});

pub(crate) static CHECKPOINT_AGE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_stage_checkpoint_age_seconds",
        "Time from applying the first record of a checkpoint to the checkpoint being stored: what a restart may apply again.",
        &["stage"],
        vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
    )
    .expect("metric registers once")
});
