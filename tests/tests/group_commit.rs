//! A stage applies the records it has ready into one store write (a group commit): each
//! record reads the state the records before it in the group wrote, the state and the
//! offsets it reflects are stored together, and a failure in the middle of a group stores
//! nothing of it, so that a restart applies the whole group again and produces the same
//! outputs. Against both bus backends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthstream_bus::{Bus, ConsumerEvent, Message, OutboundRecord};
use healthstream_contracts::Topic;
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{Store, StoreBatch};
use healthstream_tests::Backend;

const CF: &str = "counts";

/// Counts its inputs in the store: each input reads the count, adds one, writes it back
/// (and a key of its own), and emits the new count keyed by its offset.
struct Counter {
    /// Inputs already applied in the group when each input came (from the batch's size).
    before_in_group: Arc<Mutex<Vec<usize>>>,
    /// Offset at which `apply` fails (once), if any.
    fail_at: Option<i64>,
}

impl Processor for Counter {
    type Input = ();

    fn name(&self) -> &'static str {
        "counter"
    }

    fn decode(&self, _message: &Message) -> Result<(), Rejection> {
        Ok(())
    }

    fn apply(
        &mut self,
        state: &mut StoreBatch,
        _input: (),
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        if self.fail_at == Some(at.offset) {
            return Err(StageError::Internal {
                stage: "counter".into(),
                message: format!("told to fail at offset {}", at.offset),
            });
        }
        // The count key plus one key per input already applied in this batch.
        self.before_in_group
            .lock()
            .expect("lock")
            .push(state.len().saturating_sub(1));
        let count = match state.get(CF, b"count")? {
            Some(v) => u64::from_be_bytes(v.try_into().unwrap_or([0; 8])),
            None => 0,
        } + 1;
        state.put(CF, b"count", &count.to_be_bytes())?;
        state.put(CF, format!("input/{:06}", at.offset).as_bytes(), b"")?;
        Ok(vec![OutboundRecord {
            topic: Topic::State,
            partition: 0,
            key: Some(at.offset.to_be_bytes().to_vec()),
            value: Some(count.to_be_bytes().to_vec()),
            timestamp_ms: at.timestamp_ms,
        }])
    }
}

async fn send(bus: &Arc<dyn Bus>, n: i64) {
    let producer = bus.producer().expect("producer");
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            producer
                .enqueue(OutboundRecord {
                    topic: Topic::Perf,
                    partition: 0,
                    key: Some(b"web-01".to_vec()),
                    value: Some(vec![1]),
                    timestamp_ms: i,
                })
                .await
                .expect("enqueue"),
        );
    }
    for p in pending {
        p.await.expect("durable");
    }
}

/// Runs the counter until it has stored `until` inputs (or fails), then stops it.
async fn run_counter(
    bus: &Arc<dyn Bus>,
    store: &Store,
    counter: Counter,
    until: i64,
) -> Result<(), StageError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            healthstream_stage::run(
                counter,
                bus,
                "counter",
                &[Topic::Perf],
                store,
                healthstream_telemetry::Readiness::new(),
                rx,
            )
            .await
        }
    });
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if run.is_finished()
                || store.offset(Topic::Perf.name(), 0).expect("offset") == Some(until)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.expect("the stage stores every input or stops");
    let _ = tx.send(true);
    run.await.expect("task")
}

fn stored_count(store: &Store) -> u64 {
    store
        .get(CF, b"count")
        .expect("get")
        .map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
        .unwrap_or(0)
}

/// Every output on the state topic: (input offset, count), in the order produced.
async fn outputs(bus: &Arc<dyn Bus>) -> Vec<(i64, u64)> {
    let end = bus.end_offset(Topic::State, 0).await.expect("end");
    let mut reader = bus.reader(&[(Topic::State, 0, 0)]).expect("reader");
    let mut out = Vec::new();
    while (out.len() as i64) < end {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("outputs readable")
            .expect("read");
        if let ConsumerEvent::Message(m) = event {
            let key = m.key.expect("key");
            let value = m.value.expect("value");
            out.push((
                i64::from_be_bytes(key.try_into().expect("8 bytes")),
                u64::from_be_bytes(value.try_into().expect("8 bytes")),
            ));
        }
    }
    out
}

async fn inputs_of_a_group_read_each_others_writes(backend: Backend) {
    let bus = backend.connect().await;
    send(&bus, 600).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &[CF]).expect("store");
    let before = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        before_in_group: before.clone(),
        fail_at: None,
    };
    run_counter(&bus, &store, counter, 600)
        .await
        .expect("stage ok");
    assert_eq!(
        stored_count(&store),
        600,
        "every input saw the count before it"
    );
    assert_eq!(
        store.offset(Topic::Perf.name(), 0).expect("offset"),
        Some(600)
    );
    let before = before.lock().expect("lock").clone();
    let largest = before.iter().copied().max().unwrap_or(0);
    assert!(
        largest >= 1,
        "inputs that were ready together were applied into one batch: {before:?}"
    );
    assert!(largest < 256, "a group holds at most 256 inputs: {largest}");
    let counts: Vec<u64> = outputs(&bus).await.into_iter().map(|(_, c)| c).collect();
    assert_eq!(counts, (1..=600).collect::<Vec<u64>>());
}

async fn a_failure_inside_a_group_stores_nothing_of_it(backend: Backend) {
    let bus = backend.connect().await;
    send(&bus, 400).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &[CF]).expect("store");
    let failing = Counter {
        before_in_group: Arc::default(),
        fail_at: Some(300),
    };
    let err = run_counter(&bus, &store, failing, 400)
        .await
        .expect_err("the stage stops at offset 300");
    assert!(
        err.to_string().contains("told to fail at offset 300"),
        "{err}"
    );
    let stored = store
        .offset(Topic::Perf.name(), 0)
        .expect("offset")
        .unwrap_or(0);
    assert!(
        stored <= 300,
        "nothing at or after the failure is stored: {stored}"
    );
    assert_eq!(
        stored_count(&store),
        stored as u64,
        "the state and the offsets it reflects are stored together"
    );
    let restarted = Counter {
        before_in_group: Arc::default(),
        fail_at: None,
    };
    run_counter(&bus, &store, restarted, 400)
        .await
        .expect("stage ok");
    assert_eq!(stored_count(&store), 400);
    // Outputs of inputs applied before the failure but not stored were produced again,
    // identical: by input offset, one value only, and every input has its output.
    let mut by_input: std::collections::BTreeMap<i64, Vec<u64>> = Default::default();
    for (offset, count) in outputs(&bus).await {
        by_input.entry(offset).or_default().push(count);
    }
    assert_eq!(by_input.len(), 400);
    for (offset, counts) in by_input {
        assert!(
            counts.iter().all(|c| *c == offset as u64 + 1),
            "input {offset}: {counts:?}"
        );
    }
}

#[tokio::test]
async fn inputs_of_a_group_read_each_others_writes_embedded() {
    inputs_of_a_group_read_each_others_writes(Backend::embedded()).await
}

#[tokio::test]
async fn inputs_of_a_group_read_each_others_writes_kafka() {
    inputs_of_a_group_read_each_others_writes(Backend::kafka()).await
}

#[tokio::test]
async fn a_failure_inside_a_group_stores_nothing_of_it_embedded() {
    a_failure_inside_a_group_stores_nothing_of_it(Backend::embedded()).await
}

#[tokio::test]
async fn a_failure_inside_a_group_stores_nothing_of_it_kafka() {
    a_failure_inside_a_group_stores_nothing_of_it(Backend::kafka()).await
}
