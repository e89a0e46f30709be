//! Metrics of the rollup stage.

use std::sync::LazyLock;

use prometheus::{register_int_counter, IntCounter};

pub(crate) static MEMBER_UPDATES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_rollup_member_updates_total",
        "Member-state records applied to the containers' rollups."
    )
    .expect("metric registers once")
});

pub(crate) static STATE_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_rollup_state_changes_total",
        "Container monitor state changes emitted on the state topic."
    )
    .expect("metric registers once")
});
