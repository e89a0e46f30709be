//! Metrics of the health processor.

use std::sync::LazyLock;

use prometheus::{register_int_counter, IntCounter};

pub(crate) static SAMPLES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "healthstream_health_perf_samples_total",
        "Perf samples applied to the health processor's state."
    )
    .expect("metric registers once")
});
