//! The bus: topics of partitions of offset-addressed records, behind one interface with two
//! backends.
//!
//! - [`embedded::EmbeddedBus`]: in-process, with Kafka's topic/partition/offset and
//!   consumer-group semantics, persisted in the data directory so a restart loses nothing.
//!   Used whenever no brokers are configured.
//! - [`kafka::KafkaBus`]: Kafka through rdkafka, with idempotent producers that apply
//!   back-pressure, consumer groups whose members seek to the offsets kept with their state
//!   on every assignment, and librdkafka statistics exported as metrics.
//!
//! Processors keep their input offsets in their own state store ([`OffsetSource`]); the
//! group's committed offsets are informational (used only when a processor has no state).

pub mod embedded;
pub mod kafka;
mod metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use healthstream_contracts::Topic;

pub use metrics::consumer_lag_gauge;

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone (a deletion in a compacted topic).
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
}

/// A record to write to a chosen partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub topic: Topic,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Resolves when the record is durably written (acknowledged by the brokers, or in the
/// embedded log).
pub type DeliveryFuture = Pin<Box<dyn Future<Output = Result<Delivery, BusError>> + Send>>;

/// What the bus can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("topic {topic} has {partitions} partitions, partition {partition} does not exist")]
    NoSuchPartition {
        topic: Topic,
        partition: i32,
        partitions: i32,
    },
    #[error("topic {0} is not declared in the topology")]
    UndeclaredTopic(String),
    #[error("bus configuration: {0}")]
    Config(String),
    #[error("embedded log {path}: {message}")]
    Log { path: String, message: String },
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("offset store: {0}")]
    OffsetSource(String),
    #[error("the bus is shut down")]
    Closed,
}

impl BusError {
    /// Whether retrying later can help (a broker or disk problem), as opposed to a
    /// configuration or programming error.
    pub fn is_retriable(&self) -> bool {
        matches!(self, BusError::Kafka(_) | BusError::Log { .. })
    }
}

/// Writes records.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Waits for room in the send queue (back-pressure: a full queue slows the caller),
    /// enqueues the record and returns a future that resolves when it is durable.
    async fn enqueue(&self, record: OutboundRecord) -> Result<DeliveryFuture, BusError>;

    /// Enqueues and waits until durable.
    async fn send(&self, record: OutboundRecord) -> Result<Delivery, BusError> {
        self.enqueue(record).await?.await
    }

    /// Waits until everything enqueued is durable.
    async fn flush(&self) -> Result<(), BusError>;
}

/// Where a consumer's offsets live: the processor's state store. Returns the next offset
/// to read, or `None` if the state reflects nothing of that partition.
pub trait OffsetSource: Send + Sync {
    fn next_offset(&self, topic: Topic, partition: i32) -> Result<Option<i64>, String>;
}

/// An offset source that knows nothing: start from the group's committed offset, or the
/// beginning.
pub struct NoStoredOffsets;

impl OffsetSource for NoStoredOffsets {
    fn next_offset(&self, _: Topic, _: i32) -> Result<Option<i64>, String> {
        Ok(None)
    }
}

/// A partition handed to a consumer, and the offset it reads from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub topic: Topic,
    pub partition: i32,
    /// The offset the consumer was positioned at (`None`: the group's committed offset or
    /// the beginning, as the backend decides).
    pub start: Option<i64>,
}

/// What a consumer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// Partitions were assigned to this member and positioned at their stored offsets.
    Assigned(Vec<Assignment>),
    /// Partitions were taken away; nothing more will be read from them.
    Revoked(Vec<(Topic, i32)>),
    Message(Message),
}

/// Reads records: as a member of a consumer group, or from partitions assigned by hand.
#[async_trait]
pub trait Consumer: Send {
    /// The next event. Rebalances are reported before any message of the new assignment.
    /// A member holds its partitions until it asks for the next event, so work in flight
    /// when a rebalance starts always completes before the partition moves.
    async fn next(&mut self) -> Result<ConsumerEvent, BusError>;

    /// Records the group's (informational) position: the next offsets to read.
    fn commit(&mut self, positions: &[(Topic, i32, i64)]) -> Result<(), BusError>;

    /// Partitions currently owned.
    fn assignment(&self) -> Vec<(Topic, i32)>;
}

/// A bus backend.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Name of the backend, for logs.
    fn backend(&self) -> &'static str;

    /// Creates the topology's topics where they are missing and checks the others.
    async fn ensure_topics(&self) -> Result<(), BusError>;

    /// Number of partitions of a topic.
    fn partitions(&self, topic: Topic) -> i32;

    /// The shared producer.
    fn producer(&self) -> Result<Arc<dyn Producer>, BusError>;

    /// A member of consumer group `group` reading `topics`, positioned on each assignment
    /// at the offsets `offsets` returns.
    fn consumer(
        &self,
        group: &str,
        topics: &[Topic],
        offsets: Arc<dyn OffsetSource>,
    ) -> Result<Box<dyn Consumer>, BusError>;

    /// A consumer of exactly these partitions, from these offsets, outside any group (for
    /// restoring state from compacted topics, tools and tests).
    fn reader(&self, partitions: &[(Topic, i32, i64)]) -> Result<Box<dyn Consumer>, BusError>;

    /// The offset the next record written to a partition will get (the high watermark).
    async fn end_offset(&self, topic: Topic, partition: i32) -> Result<i64, BusError>;

    /// Makes everything written so far durable before the process exits: flushes the
    /// producer (Kafka) or syncs the logs to disk (embedded).
    async fn close(&self) -> Result<(), BusError> {
        self.producer()?.flush().await
    }
}

/// Checks a partition number against a partition count.
pub(crate) fn check_partition(
    topic: Topic,
    partition: i32,
    partitions: i32,
) -> Result<(), BusError> {
    if partition < 0 || partition >= partitions {
        Err(BusError::NoSuchPartition {
            topic,
            partition,
            partitions,
        })
    } else {
        Ok(())
    }
}
