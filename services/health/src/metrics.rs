//! Metrics of the health processor.

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_counter_vec, IntCounter, IntCounterVec};

pub(crate) static SAMPLES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_perf_samples_total",
        "Perf samples applied to the health processor's state."
    )
    .expect("metric registers once")
});

pub(crate) static STATE_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_state_changes_total",
        "Monitor state changes emitted on the state topic."
    )
    .expect("metric registers once")
});

pub(crate) static ALERT_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_alert_changes_total",
        "Alert changes (raised, updated, resolved) emitted on the alert topic."
    )
    .expect("metric registers once")
});

pub(crate) static OPERATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_health_operations_total",
        "Operator actions (maintenance, monitor reset and recalculation, alert close) by outcome.",
        &["outcome"]
    )
    .expect("metric registers once")
});

pub(crate) static COMMANDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_commands_total",
        "Diagnostics, recoveries and tasks sent to collectors on the command topic."
    )
    .expect("metric registers once")
});

pub(crate) static TASK_RESULTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_health_task_results_total",
        "Command results from collectors, by status (and unknown or duplicate results).",
        &["status"]
    )
    .expect("metric registers once")
});

pub(crate) static MEMBER_UPDATES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_member_updates_total",
        "Member-state records applied to the rollups of this processor's containers."
    )
    .expect("metric registers once")
});

pub(crate) static GROOMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_health_groomed_total",
        "Kept entries dropped for being older than the retention: state history, closed alerts, finished commands.",
        &["kind"]
    )
    .expect("metric registers once")
});
