//! Metrics of the pack feed.

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_gauge, IntCounter, IntGauge};

pub(crate) static PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_packs_published_total",
        "Pack changes (import, upgrade, remove) published on the pack topic by this process."
    )
    .expect("metric registers once")
});

pub(crate) static APPLIED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_packs_changes_applied_total",
        "Pack changes read from the pack topic and applied to this process's packs."
    )
    .expect("metric registers once")
});

pub(crate) static REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_packs_rejected_records_total",
        "Pack topic records that could not be decoded or applied (skipped)."
    )
    .expect("metric registers once")
});

pub(crate) static IN_FORCE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "healthstream_packs_in_force",
        "Packs in force in this process."
    )
    .expect("metric registers once")
});
