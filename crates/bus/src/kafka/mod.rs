//! The Kafka backend, through rdkafka.
//!
//! - Producers are idempotent (`enable.idempotence=true`, `acks=all`) with a bounded send
//!   queue: when it is full, [`Producer::enqueue`] waits for room instead of buffering
//!   without bound.
//! - Consumers are group members with eager rebalancing. On every assignment the rebalance
//!   callback positions each partition at the offset kept with the processor's state
//!   ([`OffsetSource`]) before the partition is assigned, so the first record read is the
//!   first one the state does not reflect. The group's committed offsets are informational.
//! - librdkafka statistics become metrics; raw librdkafka options pass through, applied
//!   last, refusing keys that conflict with the typed settings.

mod context;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use healthstream_contracts::Topic;
use healthstream_topology::Topology;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use self::context::{ConsumerCtx, Events, StatsCtx};
use crate::metrics::{PRODUCE_WAIT, RECORDS_CONSUMED, RECORDS_PRODUCED};
use crate::{
    check_partition, Bus, BusError, Consumer, ConsumerEvent, Delivery, DeliveryFuture, Message,
    OffsetSource, OutboundRecord, Producer,
};

const BACKEND: &str = "kafka";

/// Settings of the Kafka backend.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port` of the bootstrap brokers.
    pub brokers: String,
    /// Client id prefix (the member's service name is appended).
    pub client_id: String,
    /// Most messages in the producer's send queue before `enqueue` waits.
    pub queue_max_messages: u32,
    /// Most kilobytes in the producer's send queue before `enqueue` waits.
    pub queue_max_kbytes: u32,
    /// How long the producer waits to batch records.
    pub linger: Duration,
    /// How often librdkafka reports statistics (zero: never).
    pub statistics_interval: Duration,
    /// Create missing topics from the topology at start-up.
    pub create_topics: bool,
    /// Raw librdkafka options, applied last. Keys set by the typed fields above or forced
    /// by healthstream's guarantees are refused.
    pub options: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            client_id: "healthstream".to_string(),
            queue_max_messages: 100_000,
            queue_max_kbytes: 256 * 1024,
            linger: Duration::from_millis(5),
            statistics_interval: Duration::from_secs(15),
            create_topics: true,
            options: BTreeMap::new(),
        }
    }
}

/// Keys the typed settings own, and keys healthstream forces.
const RESERVED_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by brokers"),
    ("metadata.broker.list", "set by brokers"),
    ("client.id", "set by client_id"),
    ("queue.buffering.max.messages", "set by queue_max_messages"),
    ("queue.buffering.max.kbytes", "set by queue_max_kbytes"),
    ("linger.ms", "set by linger"),
    ("queue.buffering.max.ms", "set by linger"),
    ("statistics.interval.ms", "set by statistics_interval"),
    ("enable.idempotence", "always on: producers are idempotent"),
    ("acks", "always all: required by idempotence"),
    ("group.id", "set from the topology's consumer groups"),
    (
        "enable.auto.commit",
        "offsets live with the processor's state",
    ),
    (
        "enable.auto.offset.store",
        "offsets live with the processor's state",
    ),
    (
        "partition.assignment.strategy",
        "eager assignment is required by the seek-on-assign hand-off",
    ),
];

impl KafkaConfig {
    /// Checks the raw options; reports every conflicting key.
    pub fn validate(&self) -> Result<(), BusError> {
        let mut problems = Vec::new();
        if self.brokers.trim().is_empty() {
            problems.push("brokers is empty".to_string());
        }
        for key in self.options.keys() {
            if let Some((_, why)) = RESERVED_KEYS.iter().find(|(k, _)| k == key) {
                problems.push(format!("option {key:?} cannot be passed through: {why}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BusError::Config(problems.join("; ")))
        }
    }

    fn base(&self, role: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}-{role}", self.client_id))
            .set(
                "statistics.interval.ms",
                self.statistics_interval.as_millis().to_string(),
            );
        c
    }

    fn apply_options(&self, c: &mut ClientConfig) {
        for (k, v) in &self.options {
            c.set(k, v);
        }
    }
}

fn kafka_err(e: KafkaError) -> BusError {
    BusError::Kafka(e.to_string())
}

/// The Kafka bus.
pub struct KafkaBus {
    config: KafkaConfig,
    topology: Topology,
    producer: Mutex<Option<Arc<KafkaProducer>>>,
}

impl KafkaBus {
    /// A bus over `config.brokers` with the topics of `topology`.
    pub fn new(config: KafkaConfig, topology: Topology) -> Result<KafkaBus, BusError> {
        config.validate()?;
        Ok(KafkaBus {
            config,
            topology,
            producer: Mutex::new(None),
        })
    }

    fn topic_of(name: &str) -> Result<Topic, BusError> {
        Topic::from_name(name).ok_or_else(|| BusError::UndeclaredTopic(name.to_string()))
    }

    fn consumer_config(&self, group: &str, role: &str) -> ClientConfig {
        let mut c = self.config.base(role);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        self.config.apply_options(&mut c);
        c
    }
}

struct KafkaProducer {
    producer: FutureProducer<StatsCtx>,
    partitions: HashMap<Topic, i32>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn enqueue(&self, record: OutboundRecord) -> Result<DeliveryFuture, BusError> {
        let n = self
            .partitions
            .get(&record.topic)
            .copied()
            .ok_or_else(|| BusError::UndeclaredTopic(record.topic.name().to_string()))?;
        check_partition(record.topic, record.partition, n)?;
        let mut waited: Option<Instant> = None;
        loop {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(record.topic.name())
                .partition(record.partition)
                .timestamp(record.timestamp_ms);
            if let Some(k) = record.key.as_deref() {
                rec = rec.key(k);
            }
            if let Some(v) = record.value.as_deref() {
                rec = rec.payload(v);
            }
            match self.producer.send_result(rec) {
                Ok(fut) => {
                    if let Some(start) = waited {
                        PRODUCE_WAIT
                            .with_label_values(&[BACKEND])
                            .observe(start.elapsed().as_secs_f64());
                    }
                    let topic = record.topic;
                    return Ok(Box::pin(async move {
                        match fut.await {
                            Ok(Ok(d)) => {
                                RECORDS_PRODUCED
                                    .with_label_values(&[BACKEND, topic.name()])
                                    .inc();
                                Ok(Delivery {
                                    partition: d.partition,
                                    offset: d.offset,
                                })
                            }
                            Ok(Err((e, _))) => Err(kafka_err(e)),
                            Err(_) => Err(BusError::Closed),
                        }
                    }));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Back-pressure: wait for deliveries to make room.
                    waited.get_or_insert_with(Instant::now);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(kafka_err(e)),
            }
        }
    }

    async fn flush(&self) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30))
                .map_err(kafka_err)
        })
        .await
        .map_err(|e| BusError::Kafka(e.to_string()))?
    }
}

struct KafkaConsumer {
    consumer: StreamConsumer<ConsumerCtx>,
    events: Arc<Events>,
    stashed: Option<Message>,
    group: Option<String>,
    /// A Revoked event was handed out: the partitions are released at the next call to
    /// `next`, when the caller has finished with them.
    release: bool,
}

impl KafkaConsumer {
    /// Hands the revoked partitions back to the group (see `ConsumerCtx::rebalance`).
    fn release_revoked(&mut self) {
        if let Err(e) = self.consumer.unassign() {
            tracing::error!(error = %e, "unassign failed");
        }
    }

    /// Hands an event out; a Revoked one drops the message read with it if that message is
    /// of a revoked partition, and releases the partitions at the next call.
    fn hand_out(&mut self, ev: ConsumerEvent) -> ConsumerEvent {
        if let ConsumerEvent::Revoked(revoked) = &ev {
            self.release = true;
            if self
                .stashed
                .as_ref()
                .is_some_and(|m| revoked.contains(&(m.topic, m.partition)))
            {
                self.stashed = None;
            }
        }
        ev
    }

    fn pop_event(&self) -> Option<ConsumerEvent> {
        self.events.pop()
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Closing the consumer revokes its partitions inside the close: they are released
        // at once then.
        self.consumer
            .context()
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        if self.release {
            self.release_revoked();
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn next(&mut self) -> Result<ConsumerEvent, BusError> {
        if std::mem::take(&mut self.release) {
            self.release_revoked();
        }
        loop {
            if let Some(ev) = self.pop_event() {
                return Ok(self.hand_out(ev));
            }
            if let Some(m) = self.stashed.take() {
                return Ok(ConsumerEvent::Message(m));
            }
            // A rebalance runs inside the client's poll and may queue an event without any
            // message arriving: the event wakes this wait.
            let received = tokio::select! {
                received = self.consumer.recv() => received,
                _ = self.events.wake.notified() => continue,
            };
            let msg = match received {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    if matches!(e, KafkaError::MessageConsumption(_)) {
                        continue;
                    }
                    return Err(kafka_err(e));
                }
            };
            let topic = KafkaBus::topic_of(msg.topic())?;
            RECORDS_CONSUMED
                .with_label_values(&[BACKEND, topic.name()])
                .inc();
            let m = Message {
                topic,
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().map(<[u8]>::to_vec),
                value: msg.payload().map(<[u8]>::to_vec),
                timestamp_ms: msg.timestamp().to_millis().unwrap_or(0),
            };
            // A rebalance that ran inside this poll is reported before the message.
            if let Some(ev) = self.pop_event() {
                self.stashed = Some(m);
                return Ok(self.hand_out(ev));
            }
            return Ok(ConsumerEvent::Message(m));
        }
    }

    fn commit(&mut self, positions: &[(Topic, i32, i64)]) -> Result<(), BusError> {
        if self.group.is_none() || positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in positions {
            tpl.add_partition_offset(t.name(), *p, Offset::Offset(*o))
                .map_err(kafka_err)?;
        }
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => Ok(()),
            // A commit racing a rebalance is harmless: the offsets live with the state.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownMemberId))
            | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration))
            | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress)) => Ok(()),
            Err(e) => Err(kafka_err(e)),
        }
    }

    fn assignment(&self) -> Vec<(Topic, i32)> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| Topic::from_name(e.topic()).map(|t| (t, e.partition())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_topics(&self) -> Result<(), BusError> {
        let mut c = self.config.base("admin");
        self.config.apply_options(&mut c);
        let admin: AdminClient<StatsCtx> = c
            .create_with_context(StatsCtx::new("admin"))
            .map_err(kafka_err)?;
        if self.config.create_topics {
            let specs: Vec<_> = self.topology.topics().collect();
            let retention: Vec<Option<String>> = specs
                .iter()
                .map(|s| s.retention.map(|d| d.as_millis().to_string()))
                .collect();
            let new_topics: Vec<NewTopic<'_>> = specs
                .iter()
                .zip(&retention)
                .map(|(s, r)| {
                    let mut t = NewTopic::new(
                        s.topic.name(),
                        s.partitions as i32,
                        TopicReplication::Fixed(i32::from(s.replication_factor)),
                    )
                    .set("cleanup.policy", s.cleanup_policy.as_kafka());
                    if let Some(ms) = r {
                        t = t.set("retention.ms", ms);
                    }
                    t
                })
                .collect();
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            let results = admin
                .create_topics(&new_topics, &opts)
                .await
                .map_err(kafka_err)?;
            for r in results {
                match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => {
                        return Err(BusError::Kafka(format!("creating topic {name}: {code}")))
                    }
                }
            }
        }
        // Existing topics must have the declared partition count (co-partitioning).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let meta = {
                let client = admin.inner();
                client
                    .fetch_metadata(None, Duration::from_secs(10))
                    .map_err(kafka_err)?
            };
            let mut problems = Vec::new();
            for spec in self.topology.topics() {
                match meta.topics().iter().find(|t| t.name() == spec.topic.name()) {
                    None => problems.push(format!("topic {} does not exist", spec.topic)),
                    Some(t) if t.partitions().len() != spec.partitions as usize => {
                        problems.push(format!(
                            "topic {} has {} partitions, the topology declares {}",
                            spec.topic,
                            t.partitions().len(),
                            spec.partitions
                        ))
                    }
                    Some(_) => {}
                }
            }
            if problems.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BusError::Config(problems.join("; ")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn partitions(&self, topic: Topic) -> i32 {
        self.topology.topic(topic).partitions as i32
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, BusError> {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let mut c = self.config.base("producer");
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "queue.buffering.max.messages",
                self.config.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.config.queue_max_kbytes.to_string(),
            )
            .set("linger.ms", self.config.linger.as_millis().to_string());
        self.config.apply_options(&mut c);
        let producer: FutureProducer<StatsCtx> = c
            .create_with_context(StatsCtx::new("producer"))
            .map_err(kafka_err)?;
        let partitions = self
            .topology
            .topics()
            .map(|s| (s.topic, s.partitions as i32))
            .collect();
        let p = Arc::new(KafkaProducer {
            producer,
            partitions,
        });
        *slot = Some(p.clone());
        Ok(p)
    }

    fn consumer(
        &self,
        group: &str,
        topics: &[Topic],
        offsets: Arc<dyn OffsetSource>,
    ) -> Result<Box<dyn Consumer>, BusError> {
        let events = Arc::new(Events::default());
        let ctx = ConsumerCtx::new(group, offsets, events.clone());
        let consumer: StreamConsumer<ConsumerCtx> = self
            .consumer_config(group, "consumer")
            .create_with_context(ctx)
            .map_err(kafka_err)?;
        let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
        consumer.subscribe(&names).map_err(kafka_err)?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            events,
            stashed: None,
            group: Some(group.to_string()),
            release: false,
        }))
    }

    fn reader(&self, partitions: &[(Topic, i32, i64)]) -> Result<Box<dyn Consumer>, BusError> {
        let events = Arc::new(Events::default());
        let ctx = ConsumerCtx::new("", Arc::new(crate::NoStoredOffsets), events.clone());
        let group = format!("healthstream-reader-{}", std::process::id());
        let consumer: StreamConsumer<ConsumerCtx> = self
            .consumer_config(&group, "reader")
            .create_with_context(ctx)
            .map_err(kafka_err)?;
        let mut tpl = TopicPartitionList::new();
        let mut assignments = Vec::new();
        for (t, p, o) in partitions {
            check_partition(*t, *p, self.partitions(*t))?;
            tpl.add_partition_offset(t.name(), *p, Offset::Offset((*o).max(0)))
                .map_err(kafka_err)?;
            assignments.push(crate::Assignment {
                topic: *t,
                partition: *p,
                start: Some((*o).max(0)),
            });
        }
        consumer.assign(&tpl).map_err(kafka_err)?;
        events.push(ConsumerEvent::Assigned(assignments));
        Ok(Box::new(KafkaConsumer {
            consumer,
            events,
            stashed: None,
            group: None,
            release: false,
        }))
    }

    async fn end_offset(&self, topic: Topic, partition: i32) -> Result<i64, BusError> {
        check_partition(topic, partition, self.partitions(topic))?;
        let mut c = self.config.base("watermarks");
        c.set("group.id", "healthstream-watermarks");
        self.config.apply_options(&mut c);
        let consumer: rdkafka::consumer::BaseConsumer<StatsCtx> = c
            .create_with_context(StatsCtx::new("watermarks"))
            .map_err(kafka_err)?;
        let name = topic.name().to_string();
        tokio::task::spawn_blocking(move || {
            consumer
                .fetch_watermarks(&name, partition, Duration::from_secs(10))
                .map(|(_, high)| high)
                .map_err(kafka_err)
        })
        .await
        .map_err(|e| BusError::Kafka(e.to_string()))?
    }
}

/// True if `err` is the error code of a rebalance assignment.
pub(crate) fn is_assign(err: RDKafkaRespErr) -> bool {
    err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_options_may_not_override_typed_or_forced_settings() {
        let mut c = KafkaConfig::new("localhost:9092");
        c.options.insert("compression.type".into(), "lz4".into());
        c.validate().expect("plain option passes");
        c.options
            .insert("enable.idempotence".into(), "false".into());
        c.options.insert("group.id".into(), "x".into());
        let err = c.validate().expect_err("conflicts").to_string();
        assert!(
            err.contains("\"enable.idempotence\" cannot be passed through"),
            "{err}"
        );
        assert!(
            err.contains("\"group.id\" cannot be passed through"),
            "{err}"
        );
        let empty = KafkaConfig::new(" ");
        assert!(empty.validate().is_err());
    }
}
