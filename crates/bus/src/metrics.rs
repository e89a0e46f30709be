//! Metrics of the bus.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};

pub(crate) static RECORDS_PRODUCED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_bus_records_produced_total",
        "Records written to the bus, by backend and topic.",
        &["backend", "topic"]
    )
    .expect("metric registers once")
});

pub(crate) static RECORDS_CONSUMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_bus_records_consumed_total",
        "Records handed to consumers, by backend and topic.",
        &["backend", "topic"]
    )
    .expect("metric registers once")
});

pub(crate) static PRODUCE_WAIT: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "healthstream_bus_produce_wait_seconds",
        "Time a producer waited for room in a full send queue (back-pressure).",
        &["backend"],
        vec![0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]
    )
    .expect("metric registers once")
});

pub(crate) static REBALANCES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "healthstream_bus_rebalances_total",
        "Partition assignments and revocations seen by consumers, by backend and kind.",
        &["backend", "kind"]
    )
    .expect("metric registers once")
});

pub(crate) static KAFKA_STAT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "healthstream_bus_kafka_client_stat",
        "librdkafka client statistics (statistics.interval.ms): msg_cnt, msg_size, tx, rx, txmsgs, rxmsgs, replyq, by client and stat.",
        &["client", "stat"]
    )
    .expect("metric registers once")
});

pub(crate) static KAFKA_BROKER_RTT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "healthstream_bus_kafka_broker_rtt_microseconds",
        "librdkafka average broker round-trip time, by client and broker.",
        &["client", "broker"]
    )
    .expect("metric registers once")
});

static CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "healthstream_bus_consumer_lag_records",
        "Records between a consumer's position and the end of the partition, by group, topic and partition.",
        &["group", "topic", "partition"]
    )
    .expect("metric registers once")
});

/// The consumer-lag gauge (exported for processors that compute lag from their own
/// positions).
pub fn consumer_lag_gauge() -> &'static IntGaugeVec {
    &CONSUMER_LAG
}

/// Removes a revoked partition's lag series, so a moved partition does not report a
/// stale value.
pub(crate) fn forget_partition_lag(group: &str, topic: &str, partition: i32) {
    let _ = CONSUMER_LAG.remove_label_values(&[group, topic, &partition.to_string()]);
}
