//! The processor runtime.
//!
//! A processor is a pure core in a thin async shell. The core ([`Processor`]) decodes an
//! input and applies it: it reads its state from the store, stages its state writes in a
//! batch and returns the records to produce. The shell ([`run`]) moves records in and out:
//!
//! 1. take the next event from the consumer (rebalances are passed to the core's hooks);
//!    records are held briefly and applied earliest timestamp first across the stage's
//!    topics, each topic-partition in offset order (see `inbox`);
//! 2. decode the record; a record that cannot be decoded or validated is sent to the
//!    dead-letter topic with the reason and its topic/partition/offset, and processing goes
//!    on (poison messages never stop a partition);
//! 3. apply it into the open state batch (which it reads its state from, so it sees what
//!    the records before it wrote) and enqueue its outputs;
//! 4. when no record is ready, or the group of records applied since the last wait is full
//!    or has been open long enough, wait until every output of the group is durable (a
//!    group commit: an output's latency is bounded by the group, not by the state write);
//! 5. store the state batch together with the input offsets it reflects, atomically (a
//!    checkpoint), begun after the group commit that follows two seconds of applying or a
//!    large batch, and done at once when the stage has had nothing to apply for a moment,
//!    before partitions move and when it stops. A checkpoint is sealed: the batch so far is
//!    set aside (the next one reads through it), the processor writes what it keeps in
//!    memory as of the seal a little between each following group ([`Processor::seal`],
//!    [`Processor::seal_step`]; what an input is about to change is written first), and a
//!    writer thread stores it all while the stage goes on. A key written several times
//!    between checkpoints is written once, with its last value: state rewritten by every
//!    record (a host's monitor states, its latest samples) costs one write per checkpoint.
//!
//! After a crash anywhere, the inputs since the last checkpoint are applied again from the
//! stored state and produce the same outputs with the same deterministic ids: downstream,
//! deduplicated by id, sees exactly what an uninterrupted run would. Outputs are durable
//! before the state that produced them is stored, so none is ever missing.

mod inbox;
mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use healthstream_bus::{
    Assignment, Bus, BusError, Consumer, ConsumerEvent, DeliveryFuture, Message, OffsetSource,
    OutboundRecord, Producer,
};
use healthstream_contracts::records::{DeadLetter, DeadLetterClass};
use healthstream_contracts::{derived_id, Codec, Topic};
use healthstream_store::{Store, StoreBatch, StoreError};
use healthstream_telemetry::Readiness;
use inbox::Inbox;
use tokio::sync::watch;

/// Records a stage holds to order what it read from several topics (see [`inbox`]).
const INBOX_CAPACITY: usize = 2048;

/// Most input records applied before their outputs are awaited (a group commit).
const MAX_GROUP_RECORDS: usize = 256;

/// Longest a group stays open while records keep coming (a bound on the latency a group
/// adds to its first record).
const MAX_GROUP_TIME: Duration = Duration::from_millis(5);

/// Longest the state of applied records waits to be stored while records keep coming: the
/// most a restart applies again, and how far behind the stage the store's readers (the
/// APIs) may be under load. Each checkpoint writes again every host whose state changed
/// (its monitors' states, its latest samples), so the interval divides what a steady load
/// of every host costs in those writes (see BENCHMARKS.md).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// How long the state waits once the stage has nothing to apply, so that readers of the
/// store (the APIs) see a record's effect soon after it was applied.
const IDLE_CHECKPOINT: Duration = Duration::from_millis(50);

/// Bytes staged in the state batch (keys and values written, counted once per write) at
/// which it is stored at the next group commit.
const MAX_STAGED_BYTES: usize = 64 << 20;

pub use metrics::STAGE_RECORDS;

/// Why an input cannot be processed: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub class: DeadLetterClass,
    pub reason: String,
}

impl Rejection {
    pub fn validation(reason: impl Into<String>) -> Self {
        Rejection {
            class: DeadLetterClass::Validation,
            reason: reason.into(),
        }
    }
}

impl From<healthstream_contracts::DecodeError> for Rejection {
    fn from(e: healthstream_contracts::DecodeError) -> Self {
        Rejection {
            class: e.class(),
            reason: e.to_string(),
        }
    }
}

/// A failure that stops the stage (it resumes from its stored offsets when restarted).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("stage {stage}: {message}")]
    Internal { stage: String, message: String },
}

/// Where an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

impl Position {
    /// Deterministic id of the `index`-th output caused by this input.
    pub fn output_id(&self, stage: &str, index: usize) -> String {
        derived_id(&[
            stage.as_bytes(),
            self.topic.name().as_bytes(),
            &self.partition.to_be_bytes(),
            &self.offset.to_be_bytes(),
            &(index as u64).to_be_bytes(),
        ])
    }
}

/// The pure core of a stage.
pub trait Processor: Send + 'static {
    /// A decoded input.
    type Input: Send;

    /// Name, used in metrics, logs, dead letters and output ids.
    fn name(&self) -> &'static str;

    /// Decodes a record; a rejection sends it to the dead-letter topic.
    fn decode(&self, message: &Message) -> Result<Self::Input, Rejection>;

    /// Applies an input: read the state from `state` and stage writes in it (it holds the
    /// writes of the records applied before this one in the same group), return the
    /// records to produce.
    fn apply(
        &mut self,
        state: &mut StoreBatch,
        input: Self::Input,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError>;

    /// Partitions were assigned (their state is in the store).
    fn on_assigned(&mut self, _store: &Store, _assigned: &[Assignment]) -> Result<(), StageError> {
        Ok(())
    }

    /// Partitions were revoked: drop any cached state of them.
    fn on_revoked(&mut self, _revoked: &[(Topic, i32)]) {}

    /// A checkpoint begins: the state to store is the state as of now (every record applied
    /// so far). What the processor keeps in memory and has not written into the state batch
    /// is written by [`Processor::seal_step`], as of now: state changed before it is written
    /// must be written first (copy on write).
    fn seal(&mut self) {}

    /// Writes part (about `budget` items) of the state sealed by [`Processor::seal`] into
    /// `state`; true once all of it is written. Called between groups of records, so that a
    /// large state does not stop the stage for long, and at once to the end when the stage
    /// is idle, stops or partitions move.
    fn seal_step(&mut self, _state: &mut StoreBatch, _budget: usize) -> Result<bool, StageError> {
        Ok(true)
    }
}

/// Offsets kept in the stage's store.
pub struct StoreOffsets(pub Store);

impl OffsetSource for StoreOffsets {
    fn next_offset(&self, topic: Topic, partition: i32) -> Result<Option<i64>, String> {
        self.0
            .offset(topic.name(), partition)
            .map_err(|e| e.to_string())
    }
}

/// Encodes an output record; a record its own contract refuses is a bug of the stage, which
/// stops (and says which record).
pub fn encode_output<R: healthstream_contracts::records::Record>(
    stage: &str,
    record: &R,
) -> Result<Vec<u8>, StageError> {
    Codec::shared()
        .encode(record)
        .map_err(|e| StageError::Internal {
            stage: stage.to_string(),
            message: e.to_string(),
        })
}

/// Builds the dead-letter record of a rejected input.
pub fn dead_letter(
    stage: &str,
    message: &Message,
    rejection: &Rejection,
    dead_letter_partitions: i32,
) -> Result<OutboundRecord, StageError> {
    let id = derived_id(&[
        b"dead-letter",
        stage.as_bytes(),
        message.topic.name().as_bytes(),
        &message.partition.to_be_bytes(),
        &message.offset.to_be_bytes(),
    ]);
    let record = DeadLetter {
        id,
        stage: stage.to_string(),
        source_topic: message.topic.name().to_string(),
        source_partition: message.partition,
        source_offset: message.offset,
        key: message.key.clone(),
        value: message.value.clone(),
        error_class: rejection.class,
        reason: rejection.reason.clone(),
        time: message.timestamp_ms,
    };
    let value = encode_output(stage, &record)?;
    Ok(OutboundRecord {
        topic: Topic::DeadLetters,
        partition: message.partition.rem_euclid(dead_letter_partitions.max(1)),
        key: Some(
            format!(
                "{}/{}/{}",
                message.topic.name(),
                message.partition,
                message.offset
            )
            .into_bytes(),
        ),
        value: Some(value),
        timestamp_ms: message.timestamp_ms,
    })
}

/// How often the group's informational offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a stage until `shutdown` turns true or an error stops it.
pub async fn run<P: Processor>(
    processor: P,
    bus: Arc<dyn Bus>,
    group: &str,
    topics: &[Topic],
    store: Store,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let component = format!("stage:{}", processor.name());
    readiness.register(&component);
    let result = run_inner(
        processor, bus, group, topics, store, &readiness, &component, shutdown,
    )
    .await;
    if let Err(e) = &result {
        // A stopped stage must not look ready: /readyz reports why.
        readiness.set_not_ready(&component, &format!("failed: {e}"));
    }
    result
}

/// Records applied whose outputs are not yet known durable.
struct Group {
    deliveries: Vec<DeliveryFuture>,
    /// Next offset of each input partition the group read from.
    next: BTreeMap<(Topic, i32), i64>,
    /// Records per topic and outcome, for the metrics.
    counts: Vec<(Topic, &'static str, u64)>,
    /// When each record was applied, for the process-time histogram.
    applied_at: Vec<Instant>,
    /// When the first record was applied.
    opened: Instant,
}

impl Group {
    fn new() -> Group {
        Group {
            deliveries: Vec::new(),
            next: BTreeMap::new(),
            counts: Vec::new(),
            applied_at: Vec::new(),
            opened: Instant::now(),
        }
    }

    fn records(&self) -> usize {
        self.applied_at.len()
    }

    /// Whether the group is to be committed, at `now`.
    fn is_full(&self, now: Instant) -> bool {
        self.records() >= MAX_GROUP_RECORDS || now.duration_since(self.opened) >= MAX_GROUP_TIME
    }

    fn count(&mut self, topic: Topic, outcome: &'static str) {
        match self
            .counts
            .iter_mut()
            .find(|(t, o, _)| *t == topic && *o == outcome)
        {
            Some((_, _, n)) => *n += 1,
            None => self.counts.push((topic, outcome, 1)),
        }
    }
}

/// The state of the records applied since the last checkpoint.
struct Staged {
    batch: StoreBatch,
    /// Next offset of each input partition whose records' outputs are durable.
    next: BTreeMap<(Topic, i32), i64>,
    /// Records whose outputs are durable, not yet stored.
    records: usize,
    /// When the first of them was applied.
    since: Option<Instant>,
}

impl Staged {
    fn new(store: &Store) -> Staged {
        Staged {
            batch: store.batch(),
            next: BTreeMap::new(),
            records: 0,
            since: None,
        }
    }

    /// Whether a checkpoint begins at this group commit, while records keep coming.
    fn is_due(&self) -> bool {
        self.since
            .is_some_and(|since| since.elapsed() >= CHECKPOINT_INTERVAL)
            || self.batch.staged_bytes() >= MAX_STAGED_BYTES
    }
}

/// A checkpoint whose processor state is still being written (as of when it was sealed).
struct Sealing {
    /// The state batch of the records applied before the seal; the open batch reads
    /// through it until it is stored.
    base: Arc<StoreBatch>,
    /// The processor's in-memory state as of the seal, and the offsets.
    rest: StoreBatch,
    records: usize,
    began: Instant,
}

/// A stage's checkpoints: at most one sealing and one being written.
struct Checkpoints {
    stage: &'static str,
    sealing: Option<Sealing>,
    writing: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

/// Processor items written per step of a sealed checkpoint (between two groups).
const SEAL_STEP: usize = 128;

impl Checkpoints {
    fn busy(&self) -> bool {
        self.sealing.is_some() || self.writing.is_some()
    }

    /// Waits for the checkpoint being written; the open batch reads the store again.
    async fn written(&mut self, staged: &mut Staged) -> Result<(), StageError> {
        if let Some(writing) = self.writing.take() {
            writing.await.map_err(|e| StageError::Internal {
                stage: self.stage.to_string(),
                message: format!("the checkpoint writer failed: {e}"),
            })??;
            if let Some(base) = staged.batch.drop_base() {
                // A second of state: freed on a blocking thread, not the stage's.
                tokio::task::spawn_blocking(move || drop(base));
            }
        }
        Ok(())
    }

    /// Seals the staged state (the open group committed): a new batch opens over it.
    async fn begin<P: Processor>(
        &mut self,
        processor: &mut P,
        store: &Store,
        staged: &mut Staged,
    ) -> Result<(), StageError> {
        if self.sealing.is_some() || staged.records == 0 {
            return Ok(());
        }
        self.written(staged).await?;
        let done = std::mem::replace(staged, Staged::new(store));
        let base = Arc::new(done.batch);
        staged.batch.set_base(base.clone());
        let mut rest = store.batch();
        for ((topic, partition), next) in &done.next {
            rest.set_offset(topic.name(), *partition, *next);
        }
        processor.seal();
        self.sealing = Some(Sealing {
            base,
            rest,
            records: done.records,
            began: done.since.unwrap_or_else(Instant::now),
        });
        Ok(())
    }

    /// Lets the processor write up to `budget` items of the sealed state; when all is
    /// written, the checkpoint is stored by a writer thread.
    fn step<P: Processor>(
        &mut self,
        processor: &mut P,
        store: &Store,
        budget: usize,
    ) -> Result<(), StageError> {
        let Some(sealing) = self.sealing.as_mut() else {
            return Ok(());
        };
        if !processor.seal_step(&mut sealing.rest, budget)? {
            return Ok(());
        }
        let Some(done) = self.sealing.take() else {
            return Ok(());
        };
        let stage = self.stage;
        let store = store.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            store.write_all(&[&done.base, &done.rest])?;
            metrics::CHECKPOINT_RECORDS
                .with_label_values(&[stage])
                .observe(done.records as f64);
            metrics::CHECKPOINT_WRITE_SECONDS
                .with_label_values(&[stage])
                .observe(started.elapsed().as_secs_f64());
            metrics::CHECKPOINT_AGE_SECONDS
                .with_label_values(&[stage])
                .observe(done.began.elapsed().as_secs_f64());
            Ok(())
        }));
        Ok(())
    }
}

/// Where a stage is between reading and storing: the open group, the state staged since
/// the last checkpoint, the checkpoints in progress, and the next offset of every input
/// partition whose outputs are durable.
struct Progress {
    group: Group,
    staged: Staged,
    checkpoints: Checkpoints,
    positions: BTreeMap<(Topic, i32), i64>,
}

impl Progress {
    fn new(stage: &'static str, store: &Store) -> Progress {
        Progress {
            group: Group::new(),
            staged: Staged::new(store),
            checkpoints: Checkpoints {
                stage,
                sealing: None,
                writing: None,
            },
            positions: BTreeMap::new(),
        }
    }

    /// Waits until the group's outputs are durable; its records' state joins what is staged.
    async fn commit(&mut self) -> Result<(), StageError> {
        let stage = self.checkpoints.stage;
        if self.group.records() == 0 {
            return Ok(());
        }
        let done = std::mem::replace(&mut self.group, Group::new());
        // Outputs are durable before the state that produced them is stored.
        for delivery in done.deliveries {
            delivery.await?;
        }
        let staged = &mut self.staged;
        if staged.since.is_none() {
            staged.since = Some(done.opened);
        }
        staged.records += done.applied_at.len();
        staged.next.extend(done.next.iter().map(|(k, v)| (*k, *v)));
        self.positions.extend(done.next);
        for (topic, outcome, n) in done.counts {
            STAGE_RECORDS
                .with_label_values(&[stage, topic.name(), outcome])
                .inc_by(n);
        }
        let histogram = metrics::PROCESS_SECONDS.with_label_values(&[stage]);
        for at in &done.applied_at {
            histogram.observe(at.elapsed().as_secs_f64());
        }
        metrics::COMMIT_RECORDS
            .with_label_values(&[stage])
            .observe(done.applied_at.len() as f64);
        Ok(())
    }

    /// Commits the group; then a step of the sealed checkpoint, or a new one when one is due.
    async fn commit_and_step<P: Processor>(
        &mut self,
        processor: &mut P,
        store: &Store,
    ) -> Result<(), StageError> {
        self.commit().await?;
        let (staged, checkpoints) = (&mut self.staged, &mut self.checkpoints);
        if checkpoints
            .writing
            .as_ref()
            .is_some_and(|w| w.is_finished())
        {
            // Stored: the open batch reads the store again, the stored one is freed.
            checkpoints.written(staged).await?;
        }
        if checkpoints.sealing.is_some() {
            checkpoints.step(processor, store, SEAL_STEP)
        } else if staged.is_due() {
            checkpoints.begin(processor, store, staged).await?;
            checkpoints.step(processor, store, SEAL_STEP)
        } else {
            Ok(())
        }
    }

    /// Stores everything applied so far: commits the open group, completes the checkpoint
    /// in progress, and seals and stores what was applied since (when the stage is idle,
    /// before partitions move, when it stops).
    async fn checkpoint<P: Processor>(
        &mut self,
        processor: &mut P,
        store: &Store,
    ) -> Result<(), StageError> {
        self.commit().await?;
        let (staged, checkpoints) = (&mut self.staged, &mut self.checkpoints);
        loop {
            checkpoints.step(processor, store, usize::MAX)?;
            checkpoints.written(staged).await?;
            if staged.records == 0 {
                return Ok(());
            }
            checkpoints.begin(processor, store, staged).await?;
        }
    }

    /// Every input partition's next offset, for the consumer group's informational commit.
    fn offsets(&self) -> Vec<(Topic, i32, i64)> {
        self.positions
            .iter()
            .map(|((t, p), o)| (*t, *p, *o))
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_inner<P: Processor>(
    mut processor: P,
    bus: Arc<dyn Bus>,
    group_id: &str,
    topics: &[Topic],
    store: Store,
    readiness: &Readiness,
    component: &str,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let stage = processor.name();
    let producer: Arc<dyn Producer> = bus.producer()?;
    let mut consumer: Box<dyn Consumer> =
        bus.consumer(group_id, topics, Arc::new(StoreOffsets(store.clone())))?;
    let dl_partitions = bus.partitions(Topic::DeadLetters);
    let embedded = bus.backend() == "embedded";
    let mut last_commit = Instant::now();
    let mut last_lag = Instant::now();
    readiness.set_ready(component);
    tracing::info!(
        stage,
        group = group_id,
        backend = bus.backend(),
        "stage started"
    );
    // One topic needs no ordering: a record is applied as soon as it is read.
    let capacity = if topics.len() > 1 { INBOX_CAPACITY } else { 1 };
    let mut inbox = Inbox::new(topics, capacity);
    let mut progress = Progress::new(stage, &store);
    loop {
        if *shutdown.borrow() {
            break;
        }
        // What the consumer has ready goes to the inbox (without waiting while the inbox
        // holds something); the inbox gives out the earliest record of its topics. Before
        // waiting for the consumer, the open group's outputs are awaited, and the state is
        // stored if nothing comes for a moment.
        let event = if inbox.is_empty() {
            match consumer.next().now_or_never() {
                Some(ev) => Some(ev?),
                None if progress.group.records() > 0 => {
                    progress.commit_and_step(&mut processor, &store).await?;
                    continue;
                }
                None => tokio::select! {
                    ev = consumer.next() => Some(ev?),
                    _ = shutdown.changed() => continue,
                    _ = tokio::time::sleep(IDLE_CHECKPOINT), if progress.staged.records > 0 || progress.checkpoints.busy() => {
                        progress.checkpoint(&mut processor, &store).await?;
                        continue;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)), if embedded => {
                        update_lag(&*bus, group_id, &progress.positions).await;
                        last_lag = Instant::now();
                        continue;
                    }
                },
            }
        } else if inbox.is_full() {
            None
        } else {
            consumer.next().now_or_never().transpose()?
        };
        let message = match event {
            Some(ConsumerEvent::Message(m)) => {
                inbox.push(m);
                continue;
            }
            Some(ConsumerEvent::Assigned(assigned)) => {
                progress.checkpoint(&mut processor, &store).await?;
                if *shutdown.borrow() {
                    // Partitions of a peer that is stopping too (the process is shutting
                    // down): not loaded only to be dropped.
                    break;
                }
                tracing::info!(stage, partitions = ?assigned, "partitions assigned");
                for a in &assigned {
                    if let Some(start) = a.start {
                        progress.positions.insert((a.topic, a.partition), start);
                    }
                }
                processor.on_assigned(&store, &assigned)?;
                continue;
            }
            Some(ConsumerEvent::Revoked(revoked)) => {
                progress.checkpoint(&mut processor, &store).await?;
                tracing::info!(stage, partitions = ?revoked, "partitions revoked");
                inbox.revoke(&revoked);
                for tp in &revoked {
                    progress.positions.remove(tp);
                }
                processor.on_revoked(&revoked);
                continue;
            }
            None => match inbox.pop() {
                Some(m) => m,
                None => continue,
            },
        };
        let at = Position {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            timestamp_ms: message.timestamp_ms,
        };
        let applied_at = Instant::now();
        let group = &mut progress.group;
        if group.records() == 0 {
            group.opened = applied_at;
        }
        group.applied_at.push(applied_at);
        let (outputs, outcome) = match processor.decode(&message) {
            Ok(input) => (
                processor.apply(&mut progress.staged.batch, input, at)?,
                "applied",
            ),
            Err(rejection) => {
                tracing::warn!(
                    stage,
                    topic = %message.topic,
                    partition = message.partition,
                    offset = message.offset,
                    reason = %rejection.reason,
                    "record sent to dead letters"
                );
                metrics::DEAD_LETTERS
                    .with_label_values(&[stage, message.topic.name(), class_label(rejection.class)])
                    .inc();
                (
                    vec![dead_letter(stage, &message, &rejection, dl_partitions)?],
                    "dead_lettered",
                )
            }
        };
        let group = &mut progress.group;
        for out in outputs {
            group.deliveries.push(producer.enqueue(out).await?);
        }
        group
            .next
            .insert((message.topic, message.partition), message.offset + 1);
        group.count(message.topic, outcome);
        // The time the record was taken up stands for now (its apply takes microseconds):
        // one reading of the clock a record instead of four.
        if group.is_full(applied_at) {
            progress.commit_and_step(&mut processor, &store).await?;
        }
        if applied_at.duration_since(last_commit) >= COMMIT_INTERVAL {
            consumer.commit(&progress.offsets())?;
            last_commit = Instant::now();
        }
        if embedded && applied_at.duration_since(last_lag) >= Duration::from_secs(1) {
            update_lag(&*bus, group_id, &progress.positions).await;
            last_lag = Instant::now();
        }
    }
    progress.checkpoint(&mut processor, &store).await?;
    consumer.commit(&progress.offsets())?;
    readiness.set_not_ready(component, "stopped");
    tracing::info!(stage, "stage stopped");
    Ok(())
}

fn class_label(class: DeadLetterClass) -> &'static str {
    match class {
        DeadLetterClass::Framing => "framing",
        DeadLetterClass::Decode => "decode",
        DeadLetterClass::Validation => "validation",
    }
}

async fn update_lag(bus: &dyn Bus, group: &str, positions: &BTreeMap<(Topic, i32), i64>) {
    for ((topic, partition), pos) in positions {
        if let Ok(end) = bus.end_offset(*topic, *partition).await {
            healthstream_bus::consumer_lag_gauge()
                .with_label_values(&[group, topic.name(), &partition.to_string()])
                .set((end - pos).max(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            topic: Topic::Perf,
            partition: 5,
            offset: 42,
            key: Some(b"web-01".to_vec()),
            value: Some(b"garbage".to_vec()),
            timestamp_ms: 7,
        }
    }

    #[test]
    fn output_ids_are_deterministic_per_input_and_index() {
        let at = Position {
            topic: Topic::Perf,
            partition: 1,
            offset: 9,
            timestamp_ms: 0,
        };
        assert_eq!(at.output_id("health", 0), at.output_id("health", 0));
        assert_ne!(at.output_id("health", 0), at.output_id("health", 1));
        assert_ne!(at.output_id("health", 0), at.output_id("rollup", 0));
        let later = Position { offset: 10, ..at };
        assert_ne!(at.output_id("health", 0), later.output_id("health", 0));
    }

    #[test]
    fn dead_letters_carry_reason_position_and_bytes() {
        let rejection = Rejection::validation("root_host is empty");
        let out = dead_letter("perf", &message(), &rejection, 4).expect("builds");
        assert_eq!(out.topic, Topic::DeadLetters);
        assert_eq!(
            out.partition, 1,
            "source partition modulo the dead-letter partitions"
        );
        assert_eq!(out.key.as_deref(), Some(&b"healthstream.perf/5/42"[..]));
        let letter: DeadLetter = Codec::shared()
            .decode(out.value.as_deref().expect("value"))
            .expect("decodes");
        assert_eq!(letter.reason, "root_host is empty");
        assert_eq!(letter.error_class, DeadLetterClass::Validation);
        assert_eq!((letter.source_partition, letter.source_offset), (5, 42));
        assert_eq!(letter.value.as_deref(), Some(&b"garbage"[..]));
        let again = dead_letter("perf", &message(), &rejection, 4).expect("builds");
        assert_eq!(
            again.value, out.value,
            "the same input gives the same dead letter"
        );
    }

    #[test]
    fn decode_errors_become_classified_rejections() {
        let err = Codec::shared()
            .decode::<healthstream_contracts::records::PerfBatch>(b"x")
            .expect_err("not framed");
        let r = Rejection::from(err);
        assert_eq!(r.class, DeadLetterClass::Framing);
        assert!(
            r.reason
                .contains("shorter than the 5-byte Confluent header"),
            "{}",
            r.reason
        );
    }
}
