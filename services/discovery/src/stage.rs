//! The instance-space stage: discovery topic in, instance topic out.

use std::sync::Arc;

use healthstream_bus::{Message, OutboundRecord};
use healthstream_contracts::records::{
    ChangeKind, CollectionPlan, DeadLetter, DeadLetterClass, DiscoveryData, DiscoveryMode,
    InstanceChange,
};
use healthstream_contracts::{derived_id, partition_for_key, Codec, Topic};
use healthstream_packfeed::{PackSnapshot, Packs};
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{Store, StoreBatch};

use crate::identity::Classes;
use crate::metrics;
use crate::space::{self, Rejected};
use crate::state::WorkingSet;

/// The stage.
pub struct DiscoveryStage {
    partitions: u32,
    dead_letter_partitions: i32,
    packs: Packs,
    /// The class shapes of the packs at `packs_offset`.
    classes: Option<(i64, Classes)>,
}

impl DiscoveryStage {
    /// `partitions`: of the discovery topic (each record must be on its root host's);
    /// `packs`: the live packs (classes are checked against them).
    pub fn new(partitions: i32, dead_letter_partitions: i32, packs: Packs) -> Self {
        DiscoveryStage {
            partitions: partitions.max(1) as u32,
            dead_letter_partitions,
            packs,
            classes: None,
        }
    }

    fn classes(&mut self) -> &mut Classes {
        let snapshot: Arc<PackSnapshot> = self.packs.borrow().clone();
        let fresh = matches!(&self.classes, Some((offset, _)) if *offset == snapshot.next_offset);
        if !fresh {
            self.classes = Some((snapshot.next_offset, Classes::new(snapshot.store.catalog())));
        }
        match &mut self.classes {
            Some((_, c)) => c,
            None => unreachable!("set above"),
        }
    }
}

impl Processor for DiscoveryStage {
    type Input = DiscoveryData;

    fn name(&self) -> &'static str {
        "discovery"
    }

    fn decode(&self, message: &Message) -> Result<DiscoveryData, Rejection> {
        let Some(value) = message.value.as_deref() else {
            return Err(Rejection::validation(
                "tombstone on the discovery topic, which is not compacted",
            ));
        };
        let d: DiscoveryData = Codec::shared().decode(value)?;
        if d.root_host.is_empty() {
            return Err(Rejection::validation("root_host is empty"));
        }
        if d.source.id.is_empty() {
            return Err(Rejection::validation("source.id is empty"));
        }
        let expected = partition_for_key(d.root_host.as_bytes(), self.partitions) as i32;
        if message.partition != expected {
            return Err(Rejection::validation(format!(
                "discovery data of root host {:?} is on partition {}, but belongs on partition {expected}",
                d.root_host, message.partition
            )));
        }
        if d.mode == DiscoveryMode::Snapshot
            && !(d.removed_instances.is_empty() && d.removed_relationships.is_empty())
        {
            return Err(Rejection::validation(
                "a snapshot lists removals: a snapshot removes what it does not send; use incremental mode to list removals",
            ));
        }
        Ok(d)
    }

    fn apply(
        &mut self,
        store: &Store,
        batch: &mut StoreBatch,
        input: DiscoveryData,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        let mut ws = WorkingSet::new(store);
        let outcome = space::apply(&mut ws, self.classes(), &input, at.offset)?;
        ws.flush(batch)?;
        if outcome.unchanged {
            metrics::UNCHANGED.inc();
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(outcome.changes.len() + 1);
        for (i, c) in outcome.changes.iter().enumerate() {
            let (change, v) = match &c.view {
                Some(v) => (ChangeKind::Upsert, v.clone()),
                None => (
                    ChangeKind::Delete,
                    space::View {
                        class: String::new(),
                        keys: Default::default(),
                        properties: Default::default(),
                        host_id: None,
                        source_id: None,
                        target_id: None,
                        managed: false,
                        claimed_by: vec![],
                    },
                ),
            };
            let record = InstanceChange {
                id: at.output_id(self.name(), i),
                root_host: input.root_host.clone(),
                entity_id: c.entity_id.clone(),
                kind: c.kind,
                change,
                time: input.time,
                class: v.class,
                keys: v.keys,
                properties: v.properties,
                host_id: v.host_id,
                source_id: v.source_id,
                target_id: v.target_id,
                managed: v.managed,
                claimed_by: v.claimed_by,
            };
            let value = Codec::shared()
                .encode(&record)
                .map_err(|e| internal(e.to_string()))?;
            out.push(OutboundRecord {
                topic: Topic::Instances,
                partition: at.partition,
                key: Some(c.entity_id.as_bytes().to_vec()),
                value: Some(value),
                timestamp_ms: input.time,
            });
        }
        metrics::CHANGES.inc_by(outcome.changes.len() as u64);
        if let Some(plan) = &outcome.plan {
            for s in &plan.skipped {
                tracing::warn!(root_host = %input.root_host, reason = %s, "workflow copy left out of the collection plan");
            }
            metrics::PLANS.inc();
            let record = CollectionPlan {
                id: derived_id(&[b"plan", input.root_host.as_bytes(), plan.digest.as_bytes()]),
                root_host: input.root_host.clone(),
                collector: input.root_host.clone(),
                digest: plan.digest.clone(),
                generated_at: input.time,
                data_sources: plan.data_sources.clone(),
            };
            let value = Codec::shared()
                .encode(&record)
                .map_err(|e| internal(e.to_string()))?;
            out.push(OutboundRecord {
                topic: Topic::CollectionPlans,
                partition: at.partition,
                key: Some(input.root_host.as_bytes().to_vec()),
                value: Some(value),
                timestamp_ms: input.time,
            });
        }
        if !outcome.rejected.is_empty() {
            metrics::REJECTED.inc_by(outcome.rejected.len() as u64);
            out.push(self.dead_letter(&input, &outcome.rejected, at)?);
        }
        Ok(out)
    }
}

fn internal(message: String) -> StageError {
    StageError::Internal {
        stage: "discovery".into(),
        message,
    }
}

impl DiscoveryStage {
    /// The parts of a submission that were not applied, as a discovery record of their own
    /// (replayable once the cause is fixed), with every reason.
    fn dead_letter(
        &self,
        input: &DiscoveryData,
        rejected: &[Rejected],
        at: Position,
    ) -> Result<OutboundRecord, StageError> {
        let mut part = input.clone();
        part.instances.clear();
        part.relationships.clear();
        part.removed_instances.clear();
        part.removed_relationships.clear();
        part.mode = DiscoveryMode::Incremental;
        let mut reasons = Vec::new();
        for r in rejected {
            match r {
                Rejected::Instance(i, why) => {
                    reasons.push(format!("instance {} {:?}: {why}", i.class, i.keys));
                    part.instances.push(i.clone());
                }
                Rejected::Relationship(rel, why) => {
                    reasons.push(format!("relationship {}: {why}", rel.kind));
                    part.relationships.push(rel.clone());
                }
                Rejected::RemovedInstance(i, why) => {
                    reasons.push(format!("removed instance {} {:?}: {why}", i.class, i.keys));
                    part.removed_instances.push(i.clone());
                }
                Rejected::RemovedRelationship(rel, why) => {
                    reasons.push(format!("removed relationship {}: {why}", rel.kind));
                    part.removed_relationships.push(rel.clone());
                }
            }
        }
        let value = Codec::shared()
            .encode(&part)
            .map_err(|e| internal(e.to_string()))?;
        let record = DeadLetter {
            id: derived_id(&[
                b"dead-letter",
                b"discovery",
                at.topic.name().as_bytes(),
                &at.partition.to_be_bytes(),
                &at.offset.to_be_bytes(),
            ]),
            stage: "discovery".into(),
            source_topic: at.topic.name().to_string(),
            source_partition: at.partition,
            source_offset: at.offset,
            key: Some(input.root_host.as_bytes().to_vec()),
            value: Some(value),
            error_class: DeadLetterClass::Validation,
            reason: format!(
                "{} part(s) of the submission not applied: {}",
                rejected.len(),
                reasons.join("; ")
            ),
            time: at.timestamp_ms,
        };
        let value = Codec::shared()
            .encode(&record)
            .map_err(|e| internal(e.to_string()))?;
        Ok(OutboundRecord {
            topic: Topic::DeadLetters,
            partition: at.partition.rem_euclid(self.dead_letter_partitions.max(1)),
            key: Some(format!("{}/{}/{}", at.topic.name(), at.partition, at.offset).into_bytes()),
            value: Some(value),
            timestamp_ms: at.timestamp_ms,
        })
    }
}
