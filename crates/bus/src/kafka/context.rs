//! rdkafka contexts: statistics as metrics, and the rebalance callback that positions
//! assigned partitions at the offsets kept with the processor's state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use healthstream_contracts::Topic;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::{
    consumer_lag_gauge, forget_partition_lag, KAFKA_BROKER_RTT, KAFKA_STAT, REBALANCES,
};
use crate::{Assignment, ConsumerEvent, OffsetSource};

fn export_stats(client: &str, s: &Statistics) {
    for (stat, v) in [
        ("msg_cnt", s.msg_cnt as i64),
        ("msg_size", s.msg_size as i64),
        ("replyq", s.replyq),
        ("tx", s.tx),
        ("rx", s.rx),
        ("txmsgs", s.txmsgs),
        ("rxmsgs", s.rxmsgs),
    ] {
        KAFKA_STAT.with_label_values(&[client, stat]).set(v);
    }
    for b in s.brokers.values() {
        if let Some(rtt) = &b.rtt {
            KAFKA_BROKER_RTT
                .with_label_values(&[client, &b.name])
                .set(rtt.avg);
        }
    }
}

/// Context of producers, admin clients and watermark queries: exports statistics.
pub(crate) struct StatsCtx {
    client: String,
}

impl StatsCtx {
    pub(crate) fn new(client: &str) -> Self {
        StatsCtx {
            client: client.to_string(),
        }
    }
}

impl ClientContext for StatsCtx {
    fn stats(&self, statistics: Statistics) {
        export_stats(&self.client, &statistics);
    }
}

/// Group events raised inside the client's poll, waiting to be handed out by `next`.
#[derive(Default)]
pub(crate) struct Events {
    queue: Mutex<VecDeque<ConsumerEvent>>,
    /// Wakes a `next` waiting for a message when an event is queued without one.
    pub(crate) wake: Notify,
}

impl Events {
    pub(crate) fn push(&self, ev: ConsumerEvent) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(ev);
        self.wake.notify_one();
    }

    pub(crate) fn pop(&self) -> Option<ConsumerEvent> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// Context of consumers.
pub(crate) struct ConsumerCtx {
    group: String,
    offsets: Arc<dyn OffsetSource>,
    events: Arc<Events>,
    /// Set when the consumer is being closed: revoked partitions are then released at once.
    pub(crate) closing: AtomicBool,
}

impl ConsumerCtx {
    pub(crate) fn new(group: &str, offsets: Arc<dyn OffsetSource>, events: Arc<Events>) -> Self {
        ConsumerCtx {
            group: group.to_string(),
            offsets,
            events,
            closing: AtomicBool::new(false),
        }
    }

    fn push(&self, ev: ConsumerEvent) {
        self.events.push(ev);
    }
}

impl ClientContext for ConsumerCtx {
    fn stats(&self, statistics: Statistics) {
        export_stats(&format!("consumer:{}", self.group), &statistics);
        if self.group.is_empty() {
            return;
        }
        for (name, topic) in &statistics.topics {
            for (p, part) in &topic.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    consumer_lag_gauge()
                        .with_label_values(&[&self.group, name, &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if super::is_assign(err) {
            let mut assignments = Vec::new();
            let elements: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            for (name, partition) in elements {
                let Some(topic) = Topic::from_name(&name) else {
                    continue;
                };
                let start = match self.offsets.next_offset(topic, partition) {
                    Ok(v) => v,
                    Err(e) => {
                        // Without the stored offset the partition cannot be positioned
                        // correctly: fail loudly rather than reprocess or skip.
                        tracing::error!(topic = %topic, partition, error = %e, "cannot read stored offset; leaving the group");
                        self.push(ConsumerEvent::Revoked(Vec::new()));
                        let _ = base_consumer.unassign();
                        return;
                    }
                };
                if let Some(o) = start {
                    if let Err(e) = tpl.set_partition_offset(&name, partition, Offset::Offset(o)) {
                        tracing::error!(topic = %topic, partition, error = %e, "cannot set offset");
                    }
                }
                assignments.push(Assignment {
                    topic,
                    partition,
                    start,
                });
            }
            REBALANCES.with_label_values(&["kafka", "assign"]).inc();
            if let Err(e) = base_consumer.assign(tpl) {
                tracing::error!(error = %e, "assign failed");
            }
            self.push(ConsumerEvent::Assigned(assignments));
        } else {
            let revoked: Vec<(Topic, i32)> = tpl
                .elements()
                .iter()
                .filter_map(|e| Topic::from_name(e.topic()).map(|t| (t, e.partition())))
                .collect();
            for (t, p) in &revoked {
                forget_partition_lag(&self.group, t.name(), *p);
            }
            REBALANCES.with_label_values(&["kafka", "revoke"]).inc();
            // The partitions are released (and the group moves on) when the consumer is next
            // asked for an event, once the caller has stored what it did with them: the next
            // owner then starts from that state. Closing releases them at once.
            if self.closing.load(Ordering::Acquire) {
                if let Err(e) = base_consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            if !matches!(err, RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                tracing::warn!(?err, "rebalance error; assignment cleared");
            }
            self.push(ConsumerEvent::Revoked(revoked));
        }
    }

    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {}
}

impl ConsumerContext for StatsCtx {}
