//! A stage reading several topics applies what it has read earliest timestamp first, each
//! topic-partition in offset order: an instance change sent before a sample is applied
//! before it, though the sample's topic was read first (the embedded consumer reads the
//! perf topic before the instance topic).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthstream_bus::{Message, OutboundRecord};
use healthstream_contracts::Topic;
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{Store, StoreBatch};
use healthstream_tests::Backend;

/// Records what it applies: (topic, timestamp).
struct Recorder(Arc<Mutex<Vec<(Topic, i64)>>>);

impl Processor for Recorder {
    type Input = (Topic, i64);

    fn name(&self) -> &'static str {
        "recorder"
    }

    fn decode(&self, message: &Message) -> Result<(Topic, i64), Rejection> {
        Ok((message.topic, message.timestamp_ms))
    }

    fn apply(
        &mut self,
        _batch: &mut StoreBatch,
        input: (Topic, i64),
        _at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        self.0.lock().expect("lock").push(input);
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn records_of_several_topics_are_applied_in_timestamp_order() {
    let backend = Backend::embedded();
    let bus = backend.connect().await;
    let producer = bus.producer().expect("producer");
    // Samples at 20 and 40 sent (and read) before instance changes at 10 and 30.
    for (topic, ts) in [
        (Topic::Perf, 20),
        (Topic::Perf, 40),
        (Topic::Instances, 10),
        (Topic::Instances, 30),
    ] {
        producer
            .send(OutboundRecord {
                topic,
                partition: 0,
                key: Some(b"web-01".to_vec()),
                value: Some(vec![1]),
                timestamp_ms: ts,
            })
            .await
            .expect("send");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &[]).expect("store");
    let applied = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let (bus, store, applied) = (bus.clone(), store.clone(), applied.clone());
        async move {
            healthstream_stage::run(
                Recorder(applied),
                bus,
                "order",
                &[Topic::Instances, Topic::Perf],
                store,
                healthstream_telemetry::Readiness::new(),
                rx,
            )
            .await
        }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while applied.lock().expect("lock").len() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("all four applied");
    tx.send(true).expect("stop");
    run.await.expect("task").expect("stage ok");
    assert_eq!(
        *applied.lock().expect("lock"),
        [
            (Topic::Instances, 10),
            (Topic::Perf, 20),
            (Topic::Instances, 30),
            (Topic::Perf, 40)
        ]
    );
}
