//! The rollup stage (DESIGN.md sections 4 and 7): containment and reference rollups that
//! cross hosts.
//!
//! A group's members live on many hosts, so on many partitions of the health processor.
//! Each health processor sends, for every member of a group whose state or flags changed,
//! a member-state record keyed by the container (the group's singleton instance) to the
//! rollup-members topic; this stage owns the containers of its partitions of that topic and
//! runs the engine in containers' mode: the container's dependency monitors (WorstOf,
//! BestOf, Percentage, with maintenance and unavailable members counted as each monitor
//! says) and its aggregates up to the entity health. Each change goes to the state topic
//! like any other, with the container as its root host.
//!
//! State (containers, what is known of each member, kept rollup states) is in RocksDB with
//! the input offsets, so a restart resumes exactly where it stopped.

use std::collections::BTreeMap;

use healthstream_bus::{Assignment, Message, OutboundRecord};
use healthstream_contracts::records::{
    HealthState, MemberState, StateCause, StateChange as StateRecord,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_engine::engine::{Engine, ExternalMember, Instance, Saved};
use healthstream_model::pack::Health;
use healthstream_packfeed::Packs;
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{KeyReader, KeyWriter, Store, StoreBatch, StoreError};

pub mod api;
mod metrics;

/// Containers: (partition, container id) -> [`Instance`].
const CONTAINERS_CF: &str = "rollup_container";
/// What is known of each member: (container, relationship, member) -> [`ExternalMember`].
const MEMBERS_CF: &str = "rollup_member";
/// Kept rollup states: (container, monitor) -> [`Saved`].
const STATE_CF: &str = "rollup_state";
const CONTAINER_PREFIX: u8 = 0x50;
const MEMBER_PREFIX: u8 = 0x51;
const STATE_PREFIX: u8 = 0x52;

/// Column families of the rollup stage: its own, and those that keep the alerts of the
/// containers' monitors (as the health processor keeps them, see `ALERT_CFS`).
pub const ROLLUP_CFS: &[&str] = &[CONTAINERS_CF, MEMBERS_CF, STATE_CF, "alert", "alert_open"];

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(corrupt)
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(b).map_err(corrupt)
}

fn health(s: HealthState) -> Health {
    match s {
        HealthState::Uninitialized => Health::Uninitialized,
        HealthState::Healthy => Health::Healthy,
        HealthState::Warning => Health::Warning,
        HealthState::Critical => Health::Critical,
    }
}

fn health_state(h: Health) -> HealthState {
    match h {
        Health::Uninitialized => HealthState::Uninitialized,
        Health::Healthy => HealthState::Healthy,
        Health::Warning => HealthState::Warning,
        Health::Critical => HealthState::Critical,
    }
}

fn member_key(container: &str, relationship: &str, member: &str) -> Vec<u8> {
    KeyWriter::new(MEMBER_PREFIX)
        .str(container)
        .str(relationship)
        .str(member)
        .finish()
}

/// The monitor states of a container: (monitor, state).
pub fn container_states(
    store: &Store,
    container: &str,
) -> Result<Vec<(String, Health)>, StoreError> {
    let prefix = KeyWriter::new(STATE_PREFIX).str(container).finish();
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(STATE_CF, &prefix)? {
        let mut r = KeyReader::new(&k, STATE_PREFIX).map_err(corrupt)?;
        let _ = r.str().map_err(corrupt)?;
        let monitor = r.str().map_err(corrupt)?;
        if let Saved::Rollup(h) = decode::<Saved>(&v)? {
            out.push((monitor, h));
        }
    }
    Ok(out)
}

/// The members of a container: (relationship, member, what is known of it).
pub fn container_members(
    store: &Store,
    container: &str,
) -> Result<Vec<(String, String, ExternalMember)>, StoreError> {
    let prefix = KeyWriter::new(MEMBER_PREFIX).str(container).finish();
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(MEMBERS_CF, &prefix)? {
        let mut r = KeyReader::new(&k, MEMBER_PREFIX).map_err(corrupt)?;
        let _ = r.str().map_err(corrupt)?;
        let relationship = r.str().map_err(corrupt)?;
        let member = r.str().map_err(corrupt)?;
        out.push((relationship, member, decode(&v)?));
    }
    Ok(out)
}

/// The stage.
pub struct RollupStage {
    /// Partitions of the rollup-members topic.
    partitions: u32,
    /// Partitions of the state topic.
    state_partitions: u32,
    packs: Packs,
    packs_offset: i64,
    engine: Engine,
}

impl RollupStage {
    pub fn new(partitions: i32, state_partitions: i32, packs: Packs) -> RollupStage {
        let snapshot = packs.borrow().clone();
        RollupStage {
            partitions: partitions.max(1) as u32,
            state_partitions: state_partitions.max(1) as u32,
            engine: Engine::for_containers(snapshot.store.catalog()),
            packs_offset: snapshot.next_offset,
            packs,
        }
    }

    /// Containers, then what is known of their members, then the kept rollup states.
    fn load(&mut self, store: &Store, partitions: &[i32]) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        for p in partitions {
            let prefix = KeyWriter::new(CONTAINER_PREFIX).i32(*p).finish();
            for (_, v) in store.scan_prefix(CONTAINERS_CF, &prefix)? {
                let c: Instance = decode(&v)?;
                ids.push(c.id.clone());
                self.engine.upsert(c, 0);
            }
        }
        for id in &ids {
            for (relationship, member, known) in container_members(store, id)? {
                self.engine
                    .restore_member(id, &relationship, &member, known);
            }
            let prefix = KeyWriter::new(STATE_PREFIX).str(id).finish();
            for (k, v) in store.scan_prefix(STATE_CF, &prefix)? {
                let mut r = KeyReader::new(&k, STATE_PREFIX).map_err(corrupt)?;
                let _ = r.str().map_err(corrupt)?;
                let monitor = r.str().map_err(corrupt)?;
                self.engine.restore(id, &monitor, decode(&v)?);
            }
        }
        let _ = self.engine.take_touched();
        Ok(())
    }

    fn refresh_packs(&mut self, store: &Store) -> Result<(), StoreError> {
        let snapshot = self.packs.borrow().clone();
        if snapshot.next_offset == self.packs_offset {
            return Ok(());
        }
        let mut partitions: Vec<i32> = self
            .engine
            .instances()
            .map(|i| partition_for_key(i.id.as_bytes(), self.partitions) as i32)
            .collect();
        partitions.sort();
        partitions.dedup();
        self.engine = Engine::for_containers(snapshot.store.catalog());
        self.packs_offset = snapshot.next_offset;
        self.load(store, &partitions)
    }
}

impl Processor for RollupStage {
    type Input = MemberState;

    fn name(&self) -> &'static str {
        "rollup"
    }

    fn decode(&self, message: &Message) -> Result<MemberState, Rejection> {
        let Some(value) = message.value.as_deref() else {
            return Err(Rejection::validation(format!(
                "tombstone on {} (ignored)",
                message.topic.name()
            )));
        };
        if message.topic != Topic::RollupMembers {
            return Err(Rejection::validation(format!(
                "the rollup stage does not read {}",
                message.topic.name()
            )));
        }
        let m: MemberState = Codec::shared().decode(value)?;
        for (field, v) in [
            ("container_id", &m.container_id),
            ("container_class", &m.container_class),
            ("relationship", &m.relationship),
            ("member_id", &m.member_id),
        ] {
            if v.is_empty() {
                return Err(Rejection::validation(format!("{field} is empty")));
            }
        }
        let expected = partition_for_key(m.container_id.as_bytes(), self.partitions) as i32;
        if message.partition != expected {
            return Err(Rejection::validation(format!(
                "member state of container {:?} is on partition {}, but belongs on partition {expected}",
                m.container_id, message.partition
            )));
        }
        Ok(m)
    }

    fn on_assigned(&mut self, store: &Store, assigned: &[Assignment]) -> Result<(), StageError> {
        let mut partitions: Vec<i32> = assigned.iter().map(|a| a.partition).collect();
        partitions.sort();
        partitions.dedup();
        self.load(store, &partitions)?;
        Ok(())
    }

    fn on_revoked(&mut self, revoked: &[(Topic, i32)]) {
        let gone: Vec<String> = self
            .engine
            .instances()
            .filter(|i| {
                revoked
                    .iter()
                    .any(|(_, p)| partition_for_key(i.id.as_bytes(), self.partitions) as i32 == *p)
            })
            .map(|i| i.id.clone())
            .collect();
        for id in gone {
            let _ = self.engine.remove(&id, 0);
        }
        let _ = self.engine.take_touched();
    }

    fn apply(
        &mut self,
        store: &Store,
        batch: &mut StoreBatch,
        m: MemberState,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        self.refresh_packs(store)?;
        let container = m.container_id.clone();
        // The container: a singleton, its own root.
        let wanted = Instance {
            id: container.clone(),
            root_host: container.clone(),
            class: m.container_class.clone(),
            host_id: None,
            properties: BTreeMap::new(),
            managed: true,
            groups: Vec::new(),
        };
        let mut changes = Vec::new();
        if self.engine.instance(&container) != Some(&wanted) {
            store.put(
                batch,
                CONTAINERS_CF,
                &KeyWriter::new(CONTAINER_PREFIX)
                    .i32(at.partition)
                    .str(&container)
                    .finish(),
                &encode(&wanted)?,
            )?;
            changes.extend(self.engine.upsert(wanted, m.time));
        }
        let key = member_key(&container, &m.relationship, &m.member_id);
        let known = m.present.then(|| ExternalMember {
            class: m.member_class.clone(),
            states: m
                .states
                .iter()
                .map(|(k, v)| (k.clone(), health(*v)))
                .collect(),
            in_maintenance: m.in_maintenance,
            unavailable: m.unavailable,
        });
        match &known {
            Some(k) => store.put(batch, MEMBERS_CF, &key, &encode(k)?)?,
            None => store.delete(batch, MEMBERS_CF, &key)?,
        }
        changes.extend(self.engine.member_changed(
            &container,
            &m.relationship,
            &m.member_id,
            known,
            m.time,
        ));
        for ((instance, monitor), saved) in self.engine.take_touched() {
            let key = KeyWriter::new(STATE_PREFIX)
                .str(&instance)
                .str(&monitor)
                .finish();
            match saved {
                Some(s) => store.put(batch, STATE_CF, &key, &encode(&s)?)?,
                None => store.delete(batch, STATE_CF, &key)?,
            }
        }
        let mut out = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().cloned().enumerate() {
            let record = StateRecord {
                id: at.output_id(self.name(), i),
                root_host: c.instance_id.clone(),
                instance_id: c.instance_id.clone(),
                monitor_id: c.monitor_id.clone(),
                old_state: health_state(c.old),
                new_state: health_state(c.new),
                time: c.time,
                in_maintenance: false,
                unavailable: false,
                cause: StateCause {
                    kind: c.kind.as_str().into(),
                    summary: c.cause,
                    data: BTreeMap::new(),
                },
            };
            let value = healthstream_stage::encode_output("rollup", &record)?;
            out.push(OutboundRecord {
                topic: Topic::State,
                partition: partition_for_key(c.instance_id.as_bytes(), self.state_partitions)
                    as i32,
                key: Some(format!("{}/{}", c.instance_id, c.monitor_id).into_bytes()),
                value: Some(value),
                timestamp_ms: c.time,
            });
        }
        metrics::STATE_CHANGES.inc_by(out.len() as u64);
        // The containers' monitors alert like any other: raised, made worse, resolved.
        let alert_partition = partition_for_key(container.as_bytes(), self.state_partitions) as i32;
        let mut next = 0;
        for c in &changes {
            let Some(settings) = self.engine.monitor_alert(&c.instance_id, &c.monitor_id) else {
                continue;
            };
            let mut alerts = healthstream_engine::alerts::Alerts::new();
            if let Some(open) =
                healthstream_health::open_alert(store, &c.instance_id, &c.monitor_id)?
            {
                alerts.load(open);
            }
            let new_id = at.output_id("rollup-alert", next);
            next += 1;
            for a in alerts.monitor_changed(
                &settings,
                &c.instance_id,
                &c.monitor_id,
                c.new,
                c.time,
                || new_id,
            ) {
                let record_id = at.output_id("rollup-alert-change", next);
                next += 1;
                let knowledge = self.engine.knowledge(&a.workflow_id);
                out.extend(healthstream_health::keep_alert(
                    store,
                    batch,
                    &a,
                    &container,
                    alert_partition,
                    knowledge,
                    record_id,
                )?);
            }
        }
        metrics::MEMBER_UPDATES.inc();
        Ok(out)
    }
}
