//! Consumer groups of the embedded bus.
//!
//! Each group has members, each subscribed to some topics. Partition `p` of a topic goes
//! to the `p mod n`-th of the `n` members subscribed to it (sorted by member id), so the
//! same partition number of co-partitioned topics lands on the same member. A partition
//! moves only when its old owner gives it up, which a member does when it next asks for
//! an event: as with Kafka's eager rebalancing, work in flight completes before another
//! member starts on the partition, so nothing is processed twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use healthstream_contracts::Topic;

pub(crate) type MemberId = u64;

/// Partitions given up and partitions taken by one sync.
pub(crate) type Moves = (Vec<(Topic, i32)>, Vec<(Topic, i32)>);

#[derive(Default)]
pub(crate) struct Group {
    members: BTreeMap<MemberId, BTreeSet<Topic>>,
    owners: HashMap<(Topic, i32), MemberId>,
    /// Committed positions (informational): the next offset to read.
    pub(crate) committed: BTreeMap<(Topic, i32), i64>,
    /// Counts the changes of members and owners: a member that synced at this generation
    /// has nothing to move until it changes.
    generation: u64,
}

impl Group {
    pub(crate) fn join(&mut self, member: MemberId, topics: &[Topic]) {
        self.members
            .insert(member, topics.iter().copied().collect());
        self.generation += 1;
    }

    /// Removes a member and releases what it owned.
    pub(crate) fn leave(&mut self, member: MemberId) {
        self.members.remove(&member);
        self.owners.retain(|_, owner| *owner != member);
        self.generation += 1;
    }

    /// See the field.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member that should own `(topic, partition)`.
    fn target(&self, topic: Topic, partition: i32) -> Option<MemberId> {
        let subscribed: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(id, _)| *id)
            .collect();
        if subscribed.is_empty() {
            return None;
        }
        Some(subscribed[partition as usize % subscribed.len()])
    }

    /// Releases what `member` owns but should not, and takes what it should own and nobody
    /// holds. Returns `(revoked, acquired)`.
    pub(crate) fn sync(&mut self, member: MemberId, partitions_of: impl Fn(Topic) -> i32) -> Moves {
        let mut revoked = Vec::new();
        let owned: Vec<(Topic, i32)> = self
            .owners
            .iter()
            .filter(|(_, owner)| **owner == member)
            .map(|(tp, _)| *tp)
            .collect();
        for (topic, partition) in owned {
            if self.target(topic, partition) != Some(member) {
                self.owners.remove(&(topic, partition));
                revoked.push((topic, partition));
            }
        }
        let mut acquired = Vec::new();
        let topics = self.members.get(&member).cloned().unwrap_or_default();
        for topic in topics {
            for partition in 0..partitions_of(topic) {
                if self.target(topic, partition) == Some(member)
                    && !self.owners.contains_key(&(topic, partition))
                {
                    self.owners.insert((topic, partition), member);
                    acquired.push((topic, partition));
                }
            }
        }
        revoked.sort();
        acquired.sort();
        if !(revoked.is_empty() && acquired.is_empty()) {
            self.generation += 1;
        }
        (revoked, acquired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_moves_with_members_and_owners_only() {
        let mut g = Group::default();
        g.join(1, &[Topic::Perf]);
        let joined = g.generation();
        let (_, acq) = g.sync(1, |_| 2);
        assert_eq!(acq.len(), 2);
        let owned = g.generation();
        assert!(owned > joined, "taking partitions is a change");
        let (rev, acq) = g.sync(1, |_| 2);
        assert!(rev.is_empty() && acq.is_empty());
        assert_eq!(
            g.generation(),
            owned,
            "a sync that moves nothing changes nothing"
        );
        g.join(2, &[Topic::Perf]);
        assert!(g.generation() > owned, "a member joining is a change");
        let before = g.generation();
        let (rev, _) = g.sync(1, |_| 2);
        assert_eq!(rev, vec![(Topic::Perf, 1)]);
        assert!(g.generation() > before, "giving a partition up is a change");
        g.leave(2);
        assert!(g.generation() > before + 1, "a member leaving is a change");
    }

    #[test]
    fn partitions_move_only_after_release() {
        let mut g = Group::default();
        g.join(1, &[Topic::Perf, Topic::Events]);
        let (rev, acq) = g.sync(1, |_| 4);
        assert!(rev.is_empty());
        assert_eq!(acq.len(), 8);
        g.join(2, &[Topic::Perf, Topic::Events]);
        // Member 2 gets nothing until member 1 releases.
        let (_, acq2) = g.sync(2, |_| 4);
        assert!(acq2.is_empty());
        let (rev1, _) = g.sync(1, |_| 4);
        assert_eq!(
            rev1,
            vec![
                (Topic::Perf, 1),
                (Topic::Perf, 3),
                (Topic::Events, 1),
                (Topic::Events, 3)
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        let (_, acq2) = g.sync(2, |_| 4);
        assert_eq!(acq2.len(), 4);
        // Co-partitioning: partition 1 of both topics is on member 2.
        assert!(acq2.contains(&(Topic::Perf, 1)) && acq2.contains(&(Topic::Events, 1)));
        g.leave(2);
        let (_, acq1) = g.sync(1, |_| 4);
        assert_eq!(acq1.len(), 4);
    }
}
