//! The Kafka producer against a real Kafka-protocol broker: a full send queue slows the
//! caller instead of failing or buffering without bound, every record still arrives in
//! order, and librdkafka's statistics show up as metrics.

use std::time::{Duration, Instant};

use healthstream_bus::kafka::{KafkaBus, KafkaConfig};
use healthstream_bus::{Bus, ConsumerEvent, OutboundRecord};
use healthstream_contracts::Topic;
use healthstream_tests::{topology, Broker};

fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_applies_back_pressure_and_loses_nothing() {
    let broker = Broker::start();
    let mut config = KafkaConfig::new(broker.bootstrap.clone());
    config.queue_max_messages = 4;
    config.linger = Duration::from_millis(20);
    config.statistics_interval = Duration::from_millis(500);
    let bus = KafkaBus::new(config, topology("embedded")).expect("bus");
    bus.ensure_topics().await.expect("topics");
    let producer = bus.producer().expect("producer");
    let mut pending = Vec::new();
    for i in 0..300 {
        let record = OutboundRecord {
            topic: Topic::Heartbeats,
            partition: 2,
            key: Some(b"h".to_vec()),
            value: Some(format!("{i:04}").into_bytes()),
            timestamp_ms: 1,
        };
        // With room for 4 messages, most of these calls must wait for deliveries.
        pending.push(
            producer
                .enqueue(record)
                .await
                .expect("enqueue waits, never fails"),
        );
    }
    let mut offsets = Vec::new();
    for p in pending {
        offsets.push(p.await.expect("delivered").offset);
    }
    assert_eq!(
        offsets,
        (0..300).collect::<Vec<i64>>(),
        "delivered in order, once each"
    );
    let metrics = healthstream_telemetry::render_metrics();
    assert!(
        metric_sum(
            &metrics,
            "healthstream_bus_produce_wait_seconds_count{backend=\"kafka\"}"
        ) > 0.0,
        "the producer waited on the full queue"
    );
    let mut reader = bus.reader(&[(Topic::Heartbeats, 2, 0)]).expect("reader");
    let mut values = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while values.len() < 300 {
            if let ConsumerEvent::Message(m) = reader.next().await.expect("next") {
                values.push(String::from_utf8(m.value.expect("value")).expect("utf8"));
            }
        }
    })
    .await
    .expect("read back");
    assert_eq!(
        values,
        (0..300).map(|i| format!("{i:04}")).collect::<Vec<_>>()
    );
    // Statistics arrive every 500 ms and become gauges.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = healthstream_telemetry::render_metrics();
        if text.contains("healthstream_bus_kafka_client_stat{client=\"producer\",stat=\"txmsgs\"}")
            && metric_sum(
                &text,
                "healthstream_bus_kafka_client_stat{client=\"producer\",stat=\"txmsgs\"}",
            ) > 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no librdkafka statistics in the metrics"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
