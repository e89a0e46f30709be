//! Metrics of the instance-space processor.

use std::sync::LazyLock;

use prometheus::{register_int_counter, IntCounter};

pub(crate) static CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_discovery_changes_total",
        "Instance and relationship changes emitted on the instance topic."
    )
    .expect("metric registers once")
});

pub(crate) static UNCHANGED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_discovery_unchanged_submissions_total",
        "Discovery submissions identical to their source's last one (nothing applied, nothing emitted)."
    )
    .expect("metric registers once")
});

pub(crate) static REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_discovery_rejected_parts_total",
        "Instances, relationships and removals of discovery submissions not applied (sent to dead letters)."
    )
    .expect("metric registers once")
});

pub(crate) static PLANS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_discovery_plans_published_total",
        "Collection plans published because a root host's set of data sources changed."
    )
    .expect("metric registers once")
});
