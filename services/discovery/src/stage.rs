//! The instance-space stage: discovery topic in, instance topic out.

use std::sync::Arc;

use healthstream_bus::{Message, OutboundRecord};
use healthstream_contracts::records::{
    ChangeKind, CollectionPlan, DeadLetter, DeadLetterClass, DiscoveryData, DiscoveryMode,
    InstanceChange,
};
use healthstream_contracts::{derived_id, partition_for_key, Codec, Contract, Topic};
use healthstream_packfeed::{PackSnapshot, Packs};
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::StoreBatch;

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

/// A discovery record as read from the topic: enough to route it and to recognise an
/// identical resubmission without decoding it.
pub struct RawDiscovery {
    framed: Vec<u8>,
    root_host: String,
    source: String,
    /// Digest of the encoded submission without its id and time.
    digest: String,
}

/// Read the head of an encoded `DiscoveryData` (every version so far starts with id,
/// root_host, source {kind, id, managing}, mode, time) and digest everything but the id and
/// the time (the schema id included). `None` for an unknown schema id or a malformed head
/// (the full decode then says why).
fn head(framed: &[u8]) -> Option<(String, String, String)> {
    struct Cursor<'a>(&'a [u8], usize);
    impl Cursor<'_> {
        fn long(&mut self) -> Option<i64> {
            let mut v: u64 = 0;
            for shift in (0..64).step_by(7) {
                let b = *self.0.get(self.1)?;
                self.1 += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
                }
            }
            None
        }
        fn string(&mut self) -> Option<String> {
            let n = usize::try_from(self.long()?).ok()?;
            let end = self.1.checked_add(n)?;
            let s = std::str::from_utf8(self.0.get(self.1..end)?)
                .ok()?
                .to_string();
            self.1 = end;
            Some(s)
        }
    }
    if framed.len() < 5 || framed[0] != 0 {
        return None;
    }
    let schema_id = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]);
    if !Contract::DiscoveryData
        .versions()
        .iter()
        .any(|v| v.schema_id == schema_id && v.version <= 2)
    {
        return None;
    }
    let mut c = Cursor(framed, 5);
    c.string()?; // id
    let after_id = c.1;
    let root = c.string()?;
    let kind = c.long()?;
    let source_id = c.string()?;
    let _managing = *c.0.get(c.1)?;
    c.1 += 1;
    let _mode = c.long()?;
    let before_time = c.1;
    c.long()?; // time
    let after_time = c.1;
    let source = match kind {
        0 => format!("discovery:{source_id}"),
        1 => format!("connector:{source_id}"),
        _ => return None,
    };
    let digest = derived_id(&[
        &framed[1..5],
        &framed[after_id..before_time],
        &framed[after_time..],
    ]);
    Some((root, source, digest))
}

impl Processor for DiscoveryStage {
    type Input = RawDiscovery;

    fn name(&self) -> &'static str {
        "discovery"
    }

    fn decode(&self, message: &Message) -> Result<RawDiscovery, Rejection> {
        let Some(value) = message.value.as_deref() else {
            return Err(Rejection::validation(
                "tombstone on the discovery topic, which is not compacted",
            ));
        };
        let (root_host, source, digest) = match head(value) {
            Some(h) => h,
            None => {
                // Another schema version, or malformed: decode in full (errors say why).
                let d: DiscoveryData = Codec::shared().decode(value)?;
                let source = space::source_id(&d);
                let digest = space::digest(&d);
                (d.root_host, source, digest)
            }
        };
        if root_host.is_empty() {
            return Err(Rejection::validation("root_host is empty"));
        }
        if source.ends_with(':') {
            return Err(Rejection::validation("source.id is empty"));
        }
        let expected = partition_for_key(root_host.as_bytes(), self.partitions) as i32;
        if message.partition != expected {
            return Err(Rejection::validation(format!(
                "discovery data of root host {root_host:?} is on partition {}, but belongs on partition {expected}",
                message.partition
            )));
        }
        Ok(RawDiscovery {
            framed: value.to_vec(),
            root_host,
            source,
            digest,
        })
    }

    fn apply(
        &mut self,
        state: &mut StoreBatch,
        raw: RawDiscovery,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        let mut ws = WorkingSet::new(state);
        // An identical resubmission is recognised before it is decoded.
        if space::unchanged(
            &ws,
            self.classes(),
            &raw.root_host,
            &raw.source,
            &raw.digest,
        )? {
            metrics::UNCHANGED.inc();
            return Ok(Vec::new());
        }
        let input: DiscoveryData = match Codec::shared().decode(&raw.framed) {
            Ok(d) => d,
            Err(e) => return Ok(vec![self.rejected_whole(&raw, at, Rejection::from(e))?]),
        };
        if input.mode == DiscoveryMode::Snapshot
            && !(input.removed_instances.is_empty() && input.removed_relationships.is_empty())
        {
            let r = Rejection::validation(
                "a snapshot lists removals: a snapshot removes what it does not send; use incremental mode to list removals",
            );
            return Ok(vec![self.rejected_whole(&raw, at, r)?]);
        }
        let outcome =
            space::apply_with_digest(&mut ws, self.classes(), &input, &raw.digest, at.offset)?;
        ws.flush()?;
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
                        source_class: None,
                    },
                ),
            };
            // A relationship to another hosting tree goes to that tree's partition, where
            // its target's health is kept, naming its source's root host.
            let (root_host, partition, source_root_host) = match &c.route {
                Some(r) => (
                    r.clone(),
                    partition_for_key(r.as_bytes(), self.partitions) as i32,
                    Some(input.root_host.clone()),
                ),
                None => (input.root_host.clone(), at.partition, None),
            };
            let record = InstanceChange {
                id: at.output_id(self.name(), i),
                root_host,
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
                source_root_host,
                source_class: v.source_class,
            };
            let value = Codec::shared()
                .encode(&record)
                .map_err(|e| internal(e.to_string()))?;
            out.push(OutboundRecord {
                topic: Topic::Instances,
                partition,
                key: Some(c.entity_id.as_bytes().to_vec()),
                value: Some(value),
                // The input's timestamp (when the pipeline took the discovery data in), so
                // a processor reading instances beside other inputs orders them as sent.
                timestamp_ms: at.timestamp_ms,
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
    /// A whole record that cannot be applied, to the dead-letter topic as it was read.
    fn rejected_whole(
        &self,
        raw: &RawDiscovery,
        at: Position,
        rejection: Rejection,
    ) -> Result<OutboundRecord, StageError> {
        metrics::REJECTED.inc();
        let message = Message {
            topic: at.topic,
            partition: at.partition,
            offset: at.offset,
            key: Some(raw.root_host.as_bytes().to_vec()),
            value: Some(raw.framed.clone()),
            timestamp_ms: at.timestamp_ms,
        };
        healthstream_stage::dead_letter(
            "discovery",
            &message,
            &rejection,
            self.dead_letter_partitions,
        )
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_contracts::records::{DiscoverySource, DiscoverySourceKind};

    fn record(id: &str, time: i64, source: &str) -> DiscoveryData {
        DiscoveryData {
            id: id.into(),
            root_host: "web-01".into(),
            source: DiscoverySource {
                kind: DiscoverySourceKind::Connector,
                id: source.into(),
                managing: true,
            },
            mode: DiscoveryMode::Snapshot,
            time,
            instances: vec![],
            relationships: vec![],
            removed_instances: vec![],
            removed_relationships: vec![],
        }
    }

    #[test]
    fn the_head_digest_ignores_id_and_time_only() {
        let enc = |d: &DiscoveryData| Codec::shared().encode(d).expect("encodes");
        let (root, source, a) = head(&enc(&record("a", 1, "cmdb"))).expect("head");
        assert_eq!(
            (root.as_str(), source.as_str()),
            ("web-01", "connector:cmdb")
        );
        let (_, _, b) = head(&enc(&record("b", 999_999, "cmdb"))).expect("head");
        assert_eq!(a, b, "same content, other id and time");
        let (_, _, c) = head(&enc(&record("a", 1, "cmdb2"))).expect("head");
        assert_ne!(a, c);
        let mut managed = record("a", 1, "cmdb");
        managed.source.managing = false;
        assert_ne!(head(&enc(&managed)).expect("head").2, a);
    }

    #[test]
    fn malformed_heads_are_not_trusted() {
        let good = Codec::shared()
            .encode(&record("a", 1, "cmdb"))
            .expect("encodes");
        for cut in 0..good.len().min(40) {
            // Never a panic; a truncated head is None or a shorter valid prefix.
            let _ = head(&good[..cut]);
        }
        let mut huge = good.clone();
        huge[5] = 0xfe; // an absurd string length
        huge[6] = 0xff;
        assert!(head(&huge).is_none());
        assert!(head(&[1, 0, 0, 0, 0]).is_none(), "wrong magic byte");
    }
}
