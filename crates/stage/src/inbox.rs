//! The order in which a stage applies what it consumed from several topics.
//!
//! A processor reading co-partitioned topics (the health processor: instances, perf,
//! events, ...) gets each topic-partition in offset order, but the bus says nothing of the
//! order between topics: a perf sample could be applied before the instance change that
//! was sent before it, and reach no monitor. The inbox holds what the consumer has ready
//! (up to a bound) and gives out the record with the earliest timestamp among the heads of
//! its topic-partitions (ties: the stage's topic order, then partition), as Kafka Streams
//! picks the next record of a task. Each topic-partition keeps its offset order.

use std::collections::{BTreeMap, VecDeque};

use healthstream_bus::Message;
use healthstream_contracts::Topic;

pub(crate) struct Inbox {
    /// Rank of each topic: its place in the stage's topic list.
    rank: BTreeMap<Topic, usize>,
    queues: BTreeMap<(usize, i32), VecDeque<Message>>,
    held: usize,
    capacity: usize,
}

impl Inbox {
    pub(crate) fn new(topics: &[Topic], capacity: usize) -> Inbox {
        Inbox {
            rank: topics.iter().enumerate().map(|(i, t)| (*t, i)).collect(),
            queues: BTreeMap::new(),
            held: 0,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.held >= self.capacity
    }

    pub(crate) fn push(&mut self, m: Message) {
        let rank = self.rank.get(&m.topic).copied().unwrap_or(usize::MAX);
        self.queues
            .entry((rank, m.partition))
            .or_default()
            .push_back(m);
        self.held += 1;
    }

    /// The record with the earliest timestamp among the heads.
    pub(crate) fn pop(&mut self) -> Option<Message> {
        let key = *self
            .queues
            .iter()
            .filter_map(|(k, q)| q.front().map(|m| (m.timestamp_ms, k)))
            .min()?
            .1;
        let q = self.queues.get_mut(&key)?;
        let m = q.pop_front();
        if q.is_empty() {
            self.queues.remove(&key);
        }
        if m.is_some() {
            self.held -= 1;
        }
        m
    }

    /// Forget what is held of partitions the stage no longer owns (their next owner reads
    /// them from the stored offsets).
    pub(crate) fn revoke(&mut self, revoked: &[(Topic, i32)]) {
        for (topic, partition) in revoked {
            let rank = self.rank.get(topic).copied().unwrap_or(usize::MAX);
            if let Some(q) = self.queues.remove(&(rank, *partition)) {
                self.held -= q.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(topic: Topic, partition: i32, offset: i64, timestamp_ms: i64) -> Message {
        Message {
            topic,
            partition,
            offset,
            key: None,
            value: None,
            timestamp_ms,
        }
    }

    fn drain(inbox: &mut Inbox) -> Vec<(Topic, i32, i64)> {
        std::iter::from_fn(|| inbox.pop())
            .map(|m| (m.topic, m.partition, m.offset))
            .collect()
    }

    #[test]
    fn earliest_head_first_and_each_partition_in_offset_order() {
        let mut inbox = Inbox::new(&[Topic::Instances, Topic::Perf], 100);
        // Perf read first, but the instance change was sent before the second sample.
        inbox.push(m(Topic::Perf, 0, 0, 10));
        inbox.push(m(Topic::Perf, 0, 1, 30));
        inbox.push(m(Topic::Instances, 0, 0, 20));
        // A sample whose timestamp goes back stays behind the one before it.
        inbox.push(m(Topic::Perf, 1, 0, 50));
        inbox.push(m(Topic::Perf, 1, 1, 5));
        assert_eq!(inbox.held, 5);
        assert_eq!(
            drain(&mut inbox),
            [
                (Topic::Perf, 0, 0),
                (Topic::Instances, 0, 0),
                (Topic::Perf, 0, 1),
                (Topic::Perf, 1, 0),
                (Topic::Perf, 1, 1),
            ]
        );
        assert!(inbox.is_empty());
    }

    #[test]
    fn ties_go_to_the_earlier_topic_of_the_stage() {
        let mut inbox = Inbox::new(&[Topic::Instances, Topic::Perf], 100);
        inbox.push(m(Topic::Perf, 0, 0, 7));
        inbox.push(m(Topic::Instances, 3, 0, 7));
        inbox.push(m(Topic::Instances, 0, 0, 7));
        assert_eq!(
            drain(&mut inbox),
            [
                (Topic::Instances, 0, 0),
                (Topic::Instances, 3, 0),
                (Topic::Perf, 0, 0)
            ]
        );
    }

    #[test]
    fn bounded_and_revoked_partitions_forgotten() {
        let mut inbox = Inbox::new(&[Topic::Perf], 2);
        inbox.push(m(Topic::Perf, 0, 0, 1));
        assert!(!inbox.is_full());
        inbox.push(m(Topic::Perf, 1, 0, 2));
        assert!(inbox.is_full());
        inbox.revoke(&[(Topic::Perf, 0)]);
        assert!(!inbox.is_full());
        assert_eq!(drain(&mut inbox), [(Topic::Perf, 1, 0)]);
        assert!(inbox.is_empty());
    }
}
