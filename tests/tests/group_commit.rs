//! A stage applies records into one state batch, awaits their outputs in groups (a group
//! commit) and stores the batch with the offsets it reflects at checkpoints: each record
//! reads the state the records before it wrote, the state of several groups is stored in
//! one write, the state and its offsets are stored together, and a failure stores nothing
//! since the last checkpoint, so that a restart applies those records again and produces
//! the same outputs. Against both bus backends.

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
    /// Inputs whose state each checkpoint stored.
    checkpoints: Arc<Mutex<Vec<usize>>>,
    /// Inputs applied since the last checkpoint.
    since_checkpoint: usize,
    /// Offset at which `apply` fails (once), if any.
    fail_at: Option<i64>,
}

impl Counter {
    fn new(fail_at: Option<i64>) -> Counter {
        Counter {
            checkpoints: Arc::default(),
            since_checkpoint: 0,
            fail_at,
        }
    }
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
        self.since_checkpoint += 1;
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

    fn seal(&mut self) {
        self.checkpoints
            .lock()
            .expect("lock")
            .push(std::mem::take(&mut self.since_checkpoint));
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

/// `min_largest_checkpoint`: inputs the largest checkpoint must exceed (the embedded bus has
/// all 600 ready at once: more than a group of 256 in one write).
async fn inputs_of_a_group_read_each_others_writes(
    backend: Backend,
    min_largest_checkpoint: usize,
) {
    let bus = backend.connect().await;
    send(&bus, 600).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &[CF]).expect("store");
    let counter = Counter::new(None);
    let checkpoints = counter.checkpoints.clone();
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
    let checkpoints = checkpoints.lock().expect("lock").clone();
    assert_eq!(
        checkpoints.iter().sum::<usize>(),
        600,
        "each input's state stored once: {checkpoints:?}"
    );
    let largest = checkpoints.iter().copied().max().unwrap_or(0);
    assert!(
        largest > min_largest_checkpoint,
        "inputs that were ready together were stored together: {checkpoints:?}"
    );
    let counts: Vec<u64> = outputs(&bus).await.into_iter().map(|(_, c)| c).collect();
    assert_eq!(counts, (1..=600).collect::<Vec<u64>>());
}

async fn a_failure_stores_nothing_since_the_last_checkpoint(backend: Backend) {
    let bus = backend.connect().await;
    send(&bus, 400).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &[CF]).expect("store");
    let failing = Counter::new(Some(300));
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
    let restarted = Counter::new(None);
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
    inputs_of_a_group_read_each_others_writes(Backend::embedded(), 256).await
}

#[tokio::test]
async fn inputs_of_a_group_read_each_others_writes_kafka() {
    inputs_of_a_group_read_each_others_writes(Backend::kafka(), 1).await
}

#[tokio::test]
async fn a_failure_stores_nothing_since_the_last_checkpoint_embedded() {
    a_failure_stores_nothing_since_the_last_checkpoint(Backend::embedded()).await
}

#[tokio::test]
async fn a_failure_stores_nothing_since_the_last_checkpoint_kafka() {
    a_failure_stores_nothing_since_the_last_checkpoint(Backend::kafka()).await
}
