//! Consumer groups of the embedded bus.
//!
//! Each group has members, each subscribed to some topics. Partition `p` of a topic goes
//! to the `p mod n`-th of the `n` members subscribed to it (sorted by member id), so the
//! same partition number of co-partitioned topics lands on the same member. A partition
//! moves in two steps, as with Kafka's eager rebalancing: its old owner is told (it is
//! revoked, nobody can take it yet), and only when that owner next asks for an event,
//! after it has stored what it did with the partition, is it released to the new owner.
//! So the new owner starts from the old owner's stored state and nothing is processed
//! twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use healthstream_contracts::Topic;

pub(crate) type MemberId = u64;

/// Partitions given up and partitions taken by one sync.
pub(crate) type Moves = (Vec<(Topic, i32)>, Vec<(Topic, i32)>);

/// Who holds a partition, and whether it was told to give it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    member: MemberId,
    revoked: bool,
}

#[derive(Default)]
pub(crate) struct Group {
    members: BTreeMap<MemberId, BTreeSet<Topic>>,
    owners: HashMap<(Topic, i32), Owner>,
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
        self.owners.retain(|_, owner| owner.member != member);
        self.generation += 1;
    }

    /// Releases the partitions `member` was told to give up: the member has finished with
    /// them. Returns whether anything was released.
    pub(crate) fn release(&mut self, member: MemberId) -> bool {
        let before = self.owners.len();
        self.owners
            .retain(|_, owner| !(owner.member == member && owner.revoked));
        let released = self.owners.len() != before;
        if released {
            self.generation += 1;
        }
        released
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

    /// Revokes what `member` owns but should not (it stays held until [`Group::release`]),
    /// and takes what it should own and nobody holds. Returns `(revoked, acquired)`.
    pub(crate) fn sync(&mut self, member: MemberId, partitions_of: impl Fn(Topic) -> i32) -> Moves {
        let mut revoked = Vec::new();
        let owned: Vec<(Topic, i32)> = self
            .owners
            .iter()
            .filter(|(_, owner)| owner.member == member && !owner.revoked)
            .map(|(tp, _)| *tp)
            .collect();
        for (topic, partition) in owned {
            if self.target(topic, partition) != Some(member) {
                if let Some(owner) = self.owners.get_mut(&(topic, partition)) {
                    owner.revoked = true;
                }
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
                    self.owners.insert(
                        (topic, partition),
                        Owner {
                            member,
                            revoked: false,
                        },
                    );
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
        assert!(
            g.generation() > before,
            "being told to give a partition up is a change"
        );
        let told = g.generation();
        assert!(g.release(1));
        assert!(g.generation() > told, "releasing a partition is a change");
        assert!(!g.release(1), "nothing left to release");
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
        // Revoked but not released: member 1 may still be storing what it did.
        let (_, acq2) = g.sync(2, |_| 4);
        assert!(acq2.is_empty(), "{acq2:?}");
        let (rev1, _) = g.sync(1, |_| 4);
        assert!(rev1.is_empty(), "revoked once only: {rev1:?}");
        assert!(g.release(1));
        let (_, acq2) = g.sync(2, |_| 4);
        assert_eq!(acq2.len(), 4);
        // Co-partitioning: partition 1 of both topics is on member 2.
        assert!(acq2.contains(&(Topic::Perf, 1)) && acq2.contains(&(Topic::Events, 1)));
        g.leave(2);
        let (_, acq1) = g.sync(1, |_| 4);
        assert_eq!(acq1.len(), 4);
    }
}
