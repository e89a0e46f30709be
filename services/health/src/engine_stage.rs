//! The health stage: the instance, perf, event and heartbeat topics of a partition (they are
//! co-partitioned by root host) fed to the health engine; state changes out on the state
//! topic; the engine's instances and kept monitor state in RocksDB with the input offsets.
//!
//! Time-based decisions (timer resets, missed heartbeats) are taken on the inputs' own
//! timestamps, at most once per second of input time, so a replay decides the same.

use std::collections::{BTreeMap, HashMap};

use healthstream_bus::{Assignment, Message, OutboundRecord};
use healthstream_contracts::records::{
    ChangeKind, EntityKind, EventBatch, HealthState, Heartbeat, InstanceChange, MemberState,
    Operation, OperationKind, PropertyValue, StateCause, StateChange as StateRecord, TaskResult,
    TaskStatus,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_engine::commands::{CommandKind as PlannedKind, PlannedCommand};
use healthstream_engine::engine::{
    Engine, ExternalMember, Instance, Maintenance, Saved, StateChange,
};
use healthstream_engine::pairs::PairMap;
use healthstream_model::expr::Value;
use healthstream_model::pack::Health;
use healthstream_packfeed::Packs;
use healthstream_stage::{Position, Processor, Rejection, StageError};
use healthstream_store::{KeyReader, KeyWriter, StateRead, Store, StoreBatch, StoreError, Tuning};

use crate::kept::{
    decode_host_rollups, decode_host_units, encode_host_rollups, encode_host_units, health_at,
    health_byte,
};
use crate::perf::{store_latest, LatestCache};
use crate::sealed::{self, SealedHosts};
use crate::FastMap;

/// The engine's instances: (partition, instance id) -> [`Instance`].
const INSTANCES_CF: &str = "engine_instance";
/// Kept monitor state: (instance id, rollup or rule monitor id) -> [`Saved`], and (root host)
/// -> the kept states of its unit monitors (see `kept.rs`).
const STATE_CF: &str = "engine_state";
/// Memberships of this partition's instances in containers (groups, distributed
/// applications, any containment or reference): relationship id -> [`Membership`], and
/// (partition, member, relationship id) -> [`Membership`] to load them.
const MEMBERSHIP_CF: &str = "engine_membership";
/// What is known of the members of this partition's containers (reported by their own
/// partitions): (partition, container, relationship, member) -> [`ExternalMember`].
const MEMBERS_CF: &str = "container_member";
/// State history: (instance, monitor, time, input partition, input offset, index) -> change.
const HISTORY_CF: &str = "state_history";
/// Alerts by id -> [`healthstream_engine::alerts::Alert`].
const ALERTS_CF: &str = "alert";
/// Open monitor alerts: (instance, monitor) -> alert id; open rule alerts: (instance, rule,
/// suppression values) -> alert id.
const OPEN_ALERTS_CF: &str = "alert_open";
/// Storm bookkeeping per rule -> [`healthstream_engine::alerts::Storm`].
const STORMS_CF: &str = "rule_storm";
/// Maintenance set on an instance: (partition, instance id) -> [`Maintenance`].
const MAINTENANCE_CF: &str = "maintenance";
/// Outcome of each operator action: operation id -> [`OperationOutcome`].
const OPERATIONS_CF: &str = "operation";
/// Root hosts whose collector misses its heartbeats: (root host) -> since (ms).
const UNAVAILABLE_CF: &str = "unavailable";
/// Commands sent to collectors and their results: command id -> [`CommandEntry`].
const COMMANDS_CF: &str = "command";
const INSTANCE_PREFIX: u8 = 0x30;
const STATE_PREFIX: u8 = 0x31;
const MEMBERSHIP_PREFIX: u8 = 0x32;
const HISTORY_PREFIX: u8 = 0x33;
const ALERT_PREFIX: u8 = 0x34;
const OPEN_ALERT_PREFIX: u8 = 0x35;
const OPEN_RULE_ALERT_PREFIX: u8 = 0x36;
const STORM_PREFIX: u8 = 0x37;
const MAINTENANCE_PREFIX: u8 = 0x38;
const OPERATION_PREFIX: u8 = 0x39;
const UNAVAILABLE_PREFIX: u8 = 0x3a;
const COMMAND_PREFIX: u8 = 0x3c;
const MEMBERSHIP_BY_MEMBER_PREFIX: u8 = 0x3d;
const CONTAINER_MEMBER_PREFIX: u8 = 0x3e;
const HOST_UNITS_PREFIX: u8 = 0x3f;
const HOST_ROLLUPS_PREFIX: u8 = 0x40;

/// Column families of the health stage (with the perf stage's).
pub const HEALTH_CFS: &[&str] = &[
    "perf_latest",
    INSTANCES_CF,
    STATE_CF,
    MEMBERSHIP_CF,
    MEMBERS_CF,
    HISTORY_CF,
    ALERTS_CF,
    OPEN_ALERTS_CF,
    STORMS_CF,
    MAINTENANCE_CF,
    OPERATIONS_CF,
    UNAVAILABLE_CF,
    COMMANDS_CF,
];

/// Column families rewritten by nearly every perf batch (the kept states of a host's unit
/// monitors, its latest samples).
pub const HEALTH_HOT_CFS: &[&str] = &["perf_latest", STATE_CF];

/// Column families written by many inputs between two checkpoints and read back by key
/// only (hosts' latest samples and unit states, the rollup states, alerts and commands of
/// state changes; prefix reads of them go to the store, or happen when partitions are
/// loaded).
const HEALTH_KEYED_CFS: &[&str] = &[
    "perf_latest",
    STATE_CF,
    ALERTS_CF,
    OPEN_ALERTS_CF,
    COMMANDS_CF,
];

/// Opens (creating if needed) the health processor's store at `path`.
pub fn open_store(path: impl AsRef<std::path::Path>) -> Result<Store, StoreError> {
    let tuning = Tuning {
        hot: HEALTH_HOT_CFS,
        logs: &[HISTORY_CF],
        keyed: HEALTH_KEYED_CFS,
    };
    Store::open_tuned(path, HEALTH_CFS, &tuning)
}

/// A command sent to a collector (a diagnostic, recovery or task), with its result once
/// it came back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandEntry {
    pub id: String,
    pub planned: PlannedCommand,
    pub requested_by: String,
    pub requested_at: i64,
    /// The alert its outcome is attached to.
    pub alert_id: Option<String>,
    pub result: Option<CommandOutcome>,
}

/// What a collector reported for a command.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutcome {
    /// `succeeded`, `failed`, `timed_out` or `refused`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub output: String,
    pub truncated: bool,
    pub started_at: i64,
    pub finished_at: i64,
}

/// A command and its result, by id.
pub fn command(state: &impl StateRead, id: &str) -> Result<Option<CommandEntry>, StoreError> {
    get_by_name(state, COMMANDS_CF, COMMAND_PREFIX, id)
}

/// The value kept under `prefix` + `name` in a column family, decoded.
fn get_by_name<T: serde::de::DeserializeOwned>(
    state: &impl StateRead,
    cf: &str,
    prefix: u8,
    name: &str,
) -> Result<Option<T>, StoreError> {
    state
        .get(cf, &KeyWriter::new(prefix).str(name).finish())?
        .map(|v| decode(&v))
        .transpose()
}

/// Since when the collector of a root host misses its heartbeats (`None`: available).
pub fn unavailable_since(
    state: &impl StateRead,
    root_host: &str,
) -> Result<Option<i64>, StoreError> {
    get_by_name(state, UNAVAILABLE_CF, UNAVAILABLE_PREFIX, root_host)
}

/// What became of an operator action.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationOutcome {
    pub id: String,
    pub kind: String,
    pub instance_id: String,
    /// `applied` or `refused`.
    pub status: String,
    pub detail: String,
    /// State changes it caused.
    pub state_changes: usize,
}

/// The outcome of an operator action, once its partition's processor applied it.
pub fn operation_outcome(
    state: &impl StateRead,
    id: &str,
) -> Result<Option<OperationOutcome>, StoreError> {
    get_by_name(state, OPERATIONS_CF, OPERATION_PREFIX, id)
}

/// The maintenance an instance is in: its own, or that of a host above it, as
/// (the instance it was set on, the maintenance).
pub fn maintenance_of(
    state: &impl StateRead,
    instance: &str,
    partition: i32,
) -> Result<Option<(String, Maintenance)>, StoreError> {
    let mut cur = Some(instance.to_string());
    let mut hops = 0;
    while let Some(id) = cur {
        let key = KeyWriter::new(MAINTENANCE_PREFIX)
            .i32(partition)
            .str(&id)
            .finish();
        if let Some(v) = state.get(MAINTENANCE_CF, &key)? {
            return Ok(Some((id, decode(&v)?)));
        }
        hops += 1;
        if hops > 32 {
            break;
        }
        cur = match state.get(INSTANCES_CF, &instance_key(partition, &id))? {
            Some(v) => decode::<Instance>(&v)?.host_id,
            None => None,
        };
    }
    Ok(None)
}

/// An instance of the engine as stored, looked up in every partition (the API does not
/// know the partition of an instance id).
pub fn stored_instance(
    state: &impl StateRead,
    instance: &str,
    partitions: i32,
) -> Result<Option<(i32, Instance)>, StoreError> {
    for p in 0..partitions.max(1) {
        if let Some(v) = state.get(INSTANCES_CF, &instance_key(p, instance))? {
            return Ok(Some((p, decode(&v)?)));
        }
    }
    Ok(None)
}

/// Keep an alert (and whether it is open) in `batch`, and make the record of its last change
/// for the alert topic: the full alert and the change.
fn keep_alert(
    batch: &mut StoreBatch,
    a: &healthstream_engine::alerts::Alert,
    root: &str,
    partition: i32,
    knowledge: String,
    record_id: String,
) -> Result<Option<OutboundRecord>, StageError> {
    use healthstream_contracts::records::{
        Alert as AlertOut, AlertChange, AlertPriority, AlertRecord, AlertSeverity, FieldChange,
        WorkflowKind,
    };
    use healthstream_engine::alerts::{Source, CLOSED};
    use healthstream_model::pack::{Priority, Severity};
    batch.set(
        ALERTS_CF,
        KeyWriter::new(ALERT_PREFIX).str(&a.id).finish(),
        Some(crate::alert_value::encode_alert(a)),
    )?;
    let open_key = match a.source {
        Source::Monitor => KeyWriter::new(OPEN_ALERT_PREFIX)
            .str(&a.instance_id)
            .str(&a.workflow_id)
            .finish(),
        Source::Rule => open_rule_key(&a.instance_id, &a.workflow_id, &a.suppression),
    };
    if a.resolution_state == CLOSED {
        batch.delete(OPEN_ALERTS_CF, &open_key)?;
    } else {
        batch.put(OPEN_ALERTS_CF, &open_key, a.id.as_bytes())?;
    }
    let Some(last) = a.history.last().cloned() else {
        return Ok(None);
    };
    let record = AlertRecord {
        id: record_id,
        alert: AlertOut {
            alert_id: a.id.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            severity: match a.severity {
                Severity::Information => AlertSeverity::Information,
                Severity::Warning => AlertSeverity::Warning,
                Severity::Critical => AlertSeverity::Critical,
            },
            priority: match a.priority {
                Priority::Low => AlertPriority::Low,
                Priority::Normal => AlertPriority::Medium,
                Priority::High => AlertPriority::High,
            },
            root_host: root.to_string(),
            instance_id: a.instance_id.clone(),
            workflow_id: a.workflow_id.clone(),
            workflow_kind: if a.source == Source::Monitor {
                WorkflowKind::Monitor
            } else {
                WorkflowKind::Rule
            },
            raised_at: a.raised_at,
            modified_at: a.modified_at,
            resolution_state: a.resolution_state,
            owner: None,
            ticket_id: None,
            connector_id: None,
            custom_fields: BTreeMap::new(),
            repeat_count: a.repeat_count,
            parameters: a.parameters.clone(),
            knowledge,
            version: a.history.len() as i64,
        },
        change: AlertChange {
            sequence: last.sequence,
            changed_by: last.by.clone(),
            changed_at: last.at,
            comment: last.comment.clone(),
            fields: last
                .fields
                .iter()
                .map(|(f, o, n)| FieldChange {
                    field: f.clone(),
                    old: o.clone(),
                    new: n.clone(),
                })
                .collect(),
        },
    };
    let value = Codec::shared().encode_alert(&record);
    Ok(Some(OutboundRecord {
        topic: Topic::Alerts,
        partition,
        key: Some(a.id.as_bytes().to_vec()),
        value: Some(value),
        timestamp_ms: last.at,
    }))
}

fn open_rule_key(instance: &str, rule: &str, suppression: &[String]) -> Vec<u8> {
    let mut w = KeyWriter::new(OPEN_RULE_ALERT_PREFIX)
        .str(instance)
        .str(rule);
    for s in suppression {
        w = w.str(s);
    }
    w.finish()
}

/// An alert by id.
pub fn alert(
    state: &impl StateRead,
    id: &str,
) -> Result<Option<healthstream_engine::alerts::Alert>, StoreError> {
    state
        .get(ALERTS_CF, &KeyWriter::new(ALERT_PREFIX).str(id).finish())?
        .map(|v| stored_alert(&v))
        .transpose()
}

/// An alert as it is kept: in its own format, or as MessagePack (earlier versions).
fn stored_alert(v: &[u8]) -> Result<healthstream_engine::alerts::Alert, StoreError> {
    match v.first() {
        Some(&crate::alert_value::TAG) => {
            crate::alert_value::decode_alert(v).map_err(StoreError::Corrupt)
        }
        _ => decode(v),
    }
}

/// The open alert of a monitor of an instance.
pub fn open_alert(
    state: &impl StateRead,
    instance: &str,
    monitor: &str,
) -> Result<Option<healthstream_engine::alerts::Alert>, StoreError> {
    match state.get(
        OPEN_ALERTS_CF,
        &KeyWriter::new(OPEN_ALERT_PREFIX)
            .str(instance)
            .str(monitor)
            .finish(),
    )? {
        Some(id) => alert(state, &String::from_utf8_lossy(&id)),
        None => Ok(None),
    }
}

/// One entry of a monitor's state history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    pub monitor_id: String,
    pub old: Health,
    pub new: Health,
    pub time: i64,
    pub cause: String,
}

/// The latest `limit` state changes of an instance (of one monitor, when given), oldest
/// first.
pub fn state_history(
    store: &Store,
    instance: &str,
    monitor: Option<&str>,
    limit: usize,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let prefix = history_prefix(instance, monitor).finish();
    match monitor {
        // One monitor's changes are in time order under its prefix: read from the end.
        Some(_) => store
            .scan_prefix_last(HISTORY_CF, &prefix, limit)?
            .iter()
            .map(|(k, v)| decode_history(k, v))
            .collect(),
        // The instance's are by monitor, then time: put in time order (kept history is
        // bounded by its retention, see [`groom_history`]).
        None => {
            let mut all: Vec<HistoryEntry> = store
                .scan_prefix(HISTORY_CF, &prefix)?
                .iter()
                .map(|(k, v)| decode_history(k, v))
                .collect::<Result<_, _>>()?;
            all.sort_by_key(|e| e.time);
            let skip = all.len().saturating_sub(limit);
            Ok(all.split_off(skip))
        }
    }
}

/// Goes through every entry of `cf` under `prefix`, a page at a time, in key order:
/// `choose` says of each (key, value) which key goes, if any (it may name an earlier one).
/// Returns how many went.
fn groom_pages(
    store: &Store,
    cf: &str,
    prefix: u8,
    mut choose: impl FnMut(Vec<u8>, &[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<u64, StoreError> {
    let prefix = [prefix];
    let mut after: Option<Vec<u8>> = None;
    let mut dropped = 0u64;
    loop {
        let page = store.scan_prefix_after(cf, &prefix, after.as_deref(), GROOM_PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        let mut batch = store.batch();
        for (key, value) in page {
            if let Some(gone) = choose(key, &value)? {
                batch.delete(cf, &gone)?;
                dropped += 1;
            }
        }
        store.write(batch)?;
    }
    Ok(dropped)
}

/// Drops every value of `cf` under `prefix` whose decoded form `old` says is to go; returns
/// how many went.
fn groom_values<T: serde::de::DeserializeOwned>(
    store: &Store,
    cf: &str,
    prefix: u8,
    old: impl Fn(&T) -> bool,
) -> Result<u64, StoreError> {
    groom_pages(store, cf, prefix, |key, value| {
        Ok(old(&decode(value)?).then_some(key))
    })
}

/// Drops the alerts closed before `before` (ms since the epoch); returns how many went.
pub fn groom_alerts(store: &Store, before: i64) -> Result<u64, StoreError> {
    use healthstream_engine::alerts::CLOSED;
    groom_pages(store, ALERTS_CF, ALERT_PREFIX, |key, value| {
        let a = stored_alert(value)?;
        Ok((a.resolution_state == CLOSED && a.modified_at < before).then_some(key))
    })
}

/// Drops the commands whose result came before `before` (ms since the epoch), and those
/// requested before it that never had one; returns how many went.
pub fn groom_commands(store: &Store, before: i64) -> Result<u64, StoreError> {
    groom_values(
        store,
        COMMANDS_CF,
        COMMAND_PREFIX,
        |c: &CommandEntry| match &c.result {
            Some(r) => r.finished_at < before,
            None => c.requested_at < before,
        },
    )
}

/// The latest state change of each of an instance's `monitors` (since when it is in its
/// state), read with one iterator.
pub fn latest_changes(
    store: &Store,
    instance: &str,
    monitors: &[&str],
) -> Result<Vec<Option<HistoryEntry>>, StoreError> {
    let prefixes: Vec<Vec<u8>> = monitors
        .iter()
        .map(|m| history_prefix(instance, Some(m)).finish())
        .collect();
    store
        .last_of_each(HISTORY_CF, &prefixes)?
        .into_iter()
        .map(|e| e.map(|(k, v)| decode_history(&k, &v)).transpose())
        .collect()
}

/// Entries of the state history read per step of [`groom_history`].
const GROOM_PAGE: usize = 10_000;

/// Drops the state history older than `before` (ms since the epoch), except the latest
/// change of each instance's monitor (it says since when the monitor is in its state).
/// Returns how many entries went. Runs beside the stage: history is written once per
/// change and never read by it.
pub fn groom_history(store: &Store, before: i64) -> Result<u64, StoreError> {
    // The previous entry: its (instance, monitor), its time and its key.
    let mut previous: Option<((String, String), i64, Vec<u8>)> = None;
    groom_pages(store, HISTORY_CF, HISTORY_PREFIX, |key, _| {
        let (instance, monitor, time) = history_key_parts(&key)?;
        let group = (instance, monitor);
        // A later change of the same monitor follows: the older one may go.
        let gone = previous
            .take()
            .filter(|(g, t, _)| *g == group && *t < before)
            .map(|(_, _, k)| k);
        previous = Some((group, time, key));
        Ok(gone)
    })
}

fn refusal(r: &healthstream_engine::alerts::Refused) -> String {
    use healthstream_engine::alerts::Refused;
    match r {
        Refused::NoSuchAlert(id) => format!("no alert {id}"),
        Refused::AlreadyClosed(id) => format!("alert {id} is already closed"),
        Refused::MonitorStillUnhealthy { alert, state } => format!(
            "alert {alert} cannot be closed while its monitor is {state}: it is resolved when the monitor returns to healthy"
        ),
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(corrupt)
}

/// What is written most (a monitor's kept state, rewritten with every sample of a monitor
/// that keeps its samples; state history entries; alerts, rewritten whole with each change;
/// commands)
/// in MessagePack's compact form, fields by their place instead of their name: a window of
/// six samples is 79 bytes instead of 98 to write, flush and compact, a history entry about
/// half. [`decode`] reads both forms (earlier versions wrote field names). Only for types
/// that write every field (a skipped field would move the places of the next ones).
fn encode_compact<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(v).map_err(corrupt)
}

/// Where an operation's outcome is kept (read back by [`operation_outcome`]).
fn operation_key(id: &str) -> Vec<u8> {
    KeyWriter::new(OPERATION_PREFIX).str(id).finish()
}

/// The key of a state-change record on the state topic: `instance/monitor`.
fn state_record_key(instance: &str, monitor: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(instance.len() + 1 + monitor.len());
    key.extend_from_slice(instance.as_bytes());
    key.push(b'/');
    key.extend_from_slice(monitor.as_bytes());
    key
}

fn host_units_key(root_host: &str) -> Vec<u8> {
    KeyWriter::new(HOST_UNITS_PREFIX).str(root_host).finish()
}

fn host_rollups_key(root_host: &str) -> Vec<u8> {
    KeyWriter::new(HOST_ROLLUPS_PREFIX).str(root_host).finish()
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(b).map_err(corrupt)
}

fn instance_key(partition: i32, id: &str) -> Vec<u8> {
    KeyWriter::new(INSTANCE_PREFIX)
        .i32(partition)
        .str(id)
        .finish()
}

fn state_key(instance: &str, monitor: &str) -> Vec<u8> {
    KeyWriter::new(STATE_PREFIX)
        .str(instance)
        .str(monitor)
        .finish()
}

/// Where an instance's state history is (of one monitor, when given): every entry's key
/// starts so.
fn history_prefix(instance: &str, monitor: Option<&str>) -> KeyWriter {
    let w = KeyWriter::new(HISTORY_PREFIX).str(instance);
    match monitor {
        Some(m) => w.str(m),
        None => w,
    }
}

/// The key of a state-history entry: by instance, monitor and time, then the input that
/// caused it and the entry's place among that input's.
fn history_key(instance: &str, monitor: &str, time: i64, at: Position, index: u32) -> Vec<u8> {
    history_prefix(instance, Some(monitor))
        .i64(time)
        .i32(at.partition)
        .i64(at.offset)
        .u32(index)
        .finish()
}

/// The instance, monitor and time of a [`history_key`].
fn history_key_parts(key: &[u8]) -> Result<(String, String, i64), StoreError> {
    let mut r = KeyReader::new(key, HISTORY_PREFIX).map_err(corrupt)?;
    Ok((
        r.str().map_err(corrupt)?,
        r.str().map_err(corrupt)?,
        r.i64().map_err(corrupt)?,
    ))
}

/// First byte of a history entry stored without what its key holds: then the old and the
/// new health (a byte each, see [`crate::kept::health_byte`]) and the cause. (MessagePack,
/// the form of earlier entries, never uses this byte.)
const HISTORY_V2: u8 = 0xc1;

/// A history entry's value: the monitor and time are in its key ([`history_key`]).
fn encode_history(old: Health, new: Health, cause: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + cause.len());
    out.extend_from_slice(&[HISTORY_V2, health_byte(old), health_byte(new)]);
    out.extend_from_slice(cause.as_bytes());
    out
}

/// A history entry from its key and value (as [`encode_history`] wrote it, or whole in
/// MessagePack as earlier builds did).
fn decode_history(key: &[u8], value: &[u8]) -> Result<HistoryEntry, StoreError> {
    let Some((&HISTORY_V2, rest)) = value.split_first() else {
        return decode(value);
    };
    let bad = |what: String| StoreError::Corrupt(format!("history entry: {what}"));
    let [old, new, cause @ ..] = rest else {
        return Err(bad(format!("{} bytes, fewer than 3", value.len())));
    };
    let health = |b: u8, at: usize| {
        health_at(b).ok_or_else(|| bad(format!("byte {at}: {b} is not a health state")))
    };
    let (_instance, monitor_id, time) = history_key_parts(key)?;
    Ok(HistoryEntry {
        monitor_id,
        old: health(*old, 1)?,
        new: health(*new, 2)?,
        time,
        cause: std::str::from_utf8(cause)
            .map_err(|e| bad(format!("cause from byte 3: {e}")))?
            .to_string(),
    })
}

fn membership_key(rel: &str) -> Vec<u8> {
    KeyWriter::new(MEMBERSHIP_PREFIX).str(rel).finish()
}

fn member_index_key(partition: i32, member: &str, rel: &str) -> Vec<u8> {
    KeyWriter::new(MEMBERSHIP_BY_MEMBER_PREFIX)
        .i32(partition)
        .str(member)
        .str(rel)
        .finish()
}

fn container_member_key(
    partition: i32,
    container: &str,
    relationship: &str,
    member: &str,
) -> Vec<u8> {
    KeyWriter::new(CONTAINER_MEMBER_PREFIX)
        .i32(partition)
        .str(container)
        .str(relationship)
        .str(member)
        .finish()
}

/// A container an instance of this partition belongs to, as its membership relationship
/// (a group's, or any containment or reference) says: where its member states go.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Membership {
    pub relationship_id: String,
    /// Relationship type.
    pub relationship: String,
    pub member: String,
    pub container: String,
    pub container_class: String,
    /// Root host of the container's tree (its partition).
    pub container_root: String,
    /// The group, for a group's membership.
    pub group: Option<String>,
}

/// The members of a container as its partition knows them: (relationship, member, what
/// is known of it), looked up in every partition.
pub fn container_members(
    state: &impl StateRead,
    container: &str,
    partitions: i32,
) -> Result<Vec<(String, String, ExternalMember)>, StoreError> {
    let mut out = Vec::new();
    for p in 0..partitions.max(1) {
        let prefix = KeyWriter::new(CONTAINER_MEMBER_PREFIX)
            .i32(p)
            .str(container)
            .finish();
        out.extend(
            reported_members(state, &prefix)?
                .into_iter()
                .map(|(_, relationship, member, known)| (relationship, member, known)),
        );
    }
    Ok(out)
}

/// What members reported, under a prefix of their keys: (container, relationship, member,
/// what is known of it).
fn reported_members(
    state: &impl StateRead,
    prefix: &[u8],
) -> Result<Vec<(String, String, String, ExternalMember)>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in state.scan_prefix(MEMBERS_CF, prefix)? {
        let mut r = KeyReader::new(&k, CONTAINER_MEMBER_PREFIX).map_err(corrupt)?;
        let _ = r.i32().map_err(corrupt)?;
        let container = r.str().map_err(corrupt)?;
        let relationship = r.str().map_err(corrupt)?;
        let member = r.str().map_err(corrupt)?;
        out.push((container, relationship, member, decode(&v)?));
    }
    Ok(out)
}

/// The kept state of every monitor of an instance: (monitor id, state), in order.
pub fn monitor_states(
    state: &impl StateRead,
    instance: &str,
    partitions: i32,
) -> Result<Vec<(String, Health)>, StoreError> {
    // Rule monitors, and rollup monitors as an earlier version kept them: each on its own.
    let prefix = KeyWriter::new(STATE_PREFIX).str(instance).finish();
    let mut out = BTreeMap::new();
    for (k, v) in state.scan_prefix(STATE_CF, &prefix)? {
        let mut r = KeyReader::new(&k, STATE_PREFIX).map_err(corrupt)?;
        let _ = r.str().map_err(corrupt)?;
        let monitor = r.str().map_err(corrupt)?;
        let health = match decode::<Saved>(&v)? {
            Saved::Unit { health, .. } | Saved::Rollup(health) => health,
            Saved::Rule(_) => continue,
        };
        out.insert(monitor, health);
    }
    // Unit and rollup monitors: with those of the other instances of its root host (a
    // container of the rollup stage is not an instance there, and has none).
    if let Some((_, i)) = stored_instance(state, instance, partitions)? {
        if let Some(v) = state.get(STATE_CF, &host_units_key(&i.root_host))? {
            for (of, monitor, saved) in decode_host_units(&v).map_err(StoreError::Corrupt)? {
                if let (true, Saved::Unit { health, .. }) = (of == instance, saved) {
                    out.insert(monitor, health);
                }
            }
        }
        if let Some(v) = state.get(STATE_CF, &host_rollups_key(&i.root_host))? {
            for (of, monitor, health) in decode_host_rollups(&v).map_err(StoreError::Corrupt)? {
                if of == instance {
                    out.insert(monitor, health);
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// An input of the health stage.
pub enum HealthInput {
    Instance(Box<InstanceChange>),
    /// A perf batch, read and checked.
    Perf(Box<crate::perf::CheckedPerf>),
    Events(EventBatch),
    Heartbeat(Heartbeat),
    Operation(Box<Operation>),
    TaskResult(Box<TaskResult>),
    /// What a member of one of this partition's containers reports (repartitioned by the
    /// container's root host).
    Member(Box<MemberState>),
}

impl HealthInput {
    fn root_host(&self) -> &str {
        match self {
            HealthInput::Instance(c) => &c.root_host,
            HealthInput::Perf(p) => p.root_host(),
            HealthInput::Events(b) => &b.root_host,
            HealthInput::Heartbeat(h) => &h.root_host,
            HealthInput::Operation(o) => &o.root_host,
            HealthInput::TaskResult(r) => &r.root_host,
            HealthInput::Member(m) => m.container_root(),
        }
    }
}

/// The stage.
pub struct HealthStage {
    partitions: u32,
    /// Memberships that began or ended in the current input (or whose member came or went).
    membership_events: Vec<(Membership, bool)>,
    /// Member -> the containers it belongs to (this partition's instances).
    memberships: FastMap<String, Vec<Membership>>,
    /// Containers with reported members -> their partition (to forget them on revocation).
    container_partitions: FastMap<String, i32>,
    /// The monitors containment and reference rollups read of their members (of the packs
    /// in force).
    tracked: std::sync::Arc<std::collections::BTreeSet<String>>,
    /// Commands to send for the current input: (command, requested by, alert id).
    queued: Vec<(PlannedCommand, String, Option<String>)>,
    /// The open monitor alerts of this stage's instances, (instance, monitor) -> alert id,
    /// as the open-alert column family has them: loaded with the partitions and changed
    /// with every write of it, so that a state change looks for its monitor's open alert
    /// without reading the store (most find none).
    open_alerts: PairMap<String>,
    packs: Packs,
    packs_offset: i64,
    engine: Engine,
    last_tick: i64,
    latest_cache: LatestCache,
    /// Unit and rollup monitor states kept one per key by an earlier version, read by the
    /// last load: (key, root host). The next input deletes them and keeps their root hosts'
    /// states.
    legacy_units: Vec<(Vec<u8>, String)>,
    /// Root hosts whose unit or rollup monitors' kept state changed since the last
    /// checkpoint: each value is written once per checkpoint, however many inputs changed it.
    kept_hosts: KeptHosts,
}

/// The kept states of a root host's unit monitors as they are now, to write.
fn units_value(engine: &mut Engine, root_host: &str) -> Option<sealed::Write> {
    let units = engine.host_units(root_host);
    let value = (!units.is_empty()).then(|| encode_host_units(&units));
    Some((STATE_CF, host_units_key(root_host), value))
}

/// The states of a root host's rollup monitors as they are now, to write.
fn rollups_value(engine: &Engine, root_host: &str) -> Option<sealed::Write> {
    let rollups = engine.host_rollups(root_host);
    let value = (!rollups.is_empty()).then(|| encode_host_rollups(&rollups));
    Some((STATE_CF, host_rollups_key(root_host), value))
}

/// The root hosts whose kept unit states or rollup states are to be written at the next
/// checkpoint (each kind a value of its own, written when one of its states changed), and
/// those of a sealed checkpoint not written yet.
#[derive(Default)]
struct KeptHosts {
    units: SealedHosts,
    rollups: SealedHosts,
}

impl KeptHosts {
    /// See [`SealedHosts::take_before_change`].
    fn take_before_change(&mut self, engine: &mut Engine, root: &str) {
        self.units
            .take_before_change(root, |r| units_value(engine, r));
        self.rollups
            .take_before_change(root, |r| rollups_value(engine, r));
    }

    /// See [`SealedHosts::take_all`].
    fn take_all(&mut self, engine: &mut Engine) {
        self.units.take_all(|r| units_value(engine, r));
        self.rollups.take_all(|r| rollups_value(engine, r));
    }

    /// See [`SealedHosts::step`]: `budget` hosts of each kind.
    fn step(
        &mut self,
        engine: &mut Engine,
        batch: &mut StoreBatch,
        budget: usize,
    ) -> Result<bool, StoreError> {
        let units = self.units.step(batch, budget, |r| units_value(engine, r))?;
        let rollups = self
            .rollups
            .step(batch, budget, |r| rollups_value(engine, r))?;
        Ok(units && rollups)
    }

    /// See [`SealedHosts::write_readable`].
    fn write_readable(
        &mut self,
        engine: &mut Engine,
        batch: &mut StoreBatch,
    ) -> Result<(), StoreError> {
        self.units
            .write_readable(batch, |r| units_value(engine, r))?;
        self.rollups
            .write_readable(batch, |r| rollups_value(engine, r))
    }

    fn seal(&mut self) {
        self.units.seal();
        self.rollups.seal();
    }

    fn clear(&mut self) {
        self.units.clear();
        self.rollups.clear();
    }

    fn is_sealing_any(&self) -> bool {
        self.units.is_sealing_any() || self.rollups.is_sealing_any()
    }

    fn is_sealing(&self, root: &str) -> bool {
        self.units.is_sealing(root) || self.rollups.is_sealing(root)
    }

    /// The hosts `kept` names are to be written.
    fn mark(&mut self, kept: healthstream_engine::engine::Kept) {
        self.units.mark_all(kept.hosts);
        self.rollups.mark_all(kept.rollup_hosts);
    }
}

fn text(v: &PropertyValue) -> Option<String> {
    Some(match v {
        PropertyValue::Null => return None,
        PropertyValue::Boolean(b) => b.to_string(),
        PropertyValue::Long(i) => i.to_string(),
        PropertyValue::Double(f) => f.to_string(),
        PropertyValue::String(s) => s.clone(),
    })
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

impl HealthStage {
    /// `partitions`: of the co-partitioned input topics; `packs`: the live packs.
    pub fn new(partitions: i32, packs: Packs) -> HealthStage {
        let snapshot = packs.borrow().clone();
        let engine = Engine::new(snapshot.store.catalog());
        HealthStage {
            partitions: partitions.max(1) as u32,
            membership_events: Vec::new(),
            memberships: FastMap::default(),
            container_partitions: FastMap::default(),
            tracked: std::sync::Arc::new(engine.member_monitors()),
            queued: Vec::new(),
            open_alerts: PairMap::default(),
            engine,
            packs_offset: snapshot.next_offset,
            packs,
            last_tick: i64::MIN,
            latest_cache: LatestCache::default(),
            legacy_units: Vec::new(),
            kept_hosts: KeptHosts::default(),
        }
    }

    /// What the containers of the members touched by this input must know: the member's
    /// states of the monitors their rollups read and its flags, or that it left. Sent to
    /// the container's partition (of its root host), where its rollups are computed.
    fn fan_out(
        &mut self,
        changes: &[StateChange],
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        if self.memberships.is_empty() && self.membership_events.is_empty() {
            return Ok(Vec::new());
        }
        let tracked = self.tracked.clone();
        let mut touched: BTreeMap<(String, String), (Membership, bool)> = BTreeMap::new();
        for c in changes {
            if !tracked.contains(&c.monitor_id) {
                continue;
            }
            for m in self.memberships.get(&c.instance_id).into_iter().flatten() {
                touched.insert(
                    (m.member.clone(), m.relationship_id.clone()),
                    (m.clone(), true),
                );
            }
        }
        for (m, present) in std::mem::take(&mut self.membership_events) {
            touched.insert((m.member.clone(), m.relationship_id.clone()), (m, present));
        }
        let mut out = Vec::new();
        for (n, (m, present)) in touched.into_values().enumerate() {
            let member = &m.member;
            let inst = self.engine.instance(member);
            let present = present && inst.is_some();
            let record = MemberState {
                id: at.output_id("health-member", n),
                container_id: m.container.clone(),
                container_class: m.container_class.clone(),
                relationship: m.relationship.clone(),
                member_id: member.clone(),
                member_class: inst.map(|i| i.class.clone()).unwrap_or_default(),
                present,
                states: if present {
                    tracked
                        .iter()
                        .map(|t| (t.clone(), health_state(self.engine.state(member, t))))
                        .collect()
                } else {
                    BTreeMap::new()
                },
                in_maintenance: present && self.engine.in_maintenance(member).is_some(),
                unavailable: present && self.engine.is_unavailable(member),
                time: at.timestamp_ms,
                container_root_host: m.container_root.clone(),
            };
            let value = healthstream_stage::encode_output("health", &record)?;
            out.push(OutboundRecord {
                topic: Topic::RollupMembers,
                partition: partition_for_key(m.container_root.as_bytes(), self.partitions) as i32,
                key: Some(format!("{}/{}/{member}", m.container, m.relationship).into_bytes()),
                value: Some(value),
                timestamp_ms: at.timestamp_ms,
            });
        }
        Ok(out)
    }

    /// The memberships of a group's singleton instance in the groups that list the group as
    /// a subgroup (they follow from the packs alone, so they are not stored).
    fn subgroup_memberships(&self, container: &str, group: &str) -> Vec<Membership> {
        self.engine
            .catalog()
            .packs()
            .iter()
            .flat_map(|p| p.pack.groups.iter())
            .filter(|d| d.subgroups.iter().any(|s| s == group))
            .map(|d| {
                let parent = healthstream_contracts::singleton_id(&d.id);
                Membership {
                    relationship_id: healthstream_contracts::derived_id(&[
                        b"subgroup",
                        d.id.as_bytes(),
                        group.as_bytes(),
                    ]),
                    relationship: d
                        .relationship
                        .clone()
                        .unwrap_or_else(|| "System.GroupContainsEntities".into()),
                    member: container.to_string(),
                    container: parent.clone(),
                    container_class: d.id.clone(),
                    container_root: parent,
                    group: Some(d.id.clone()),
                }
            })
            .collect()
    }

    /// The subgroup memberships of every group container of the engine, by (member,
    /// relationship id).
    fn all_subgroup_memberships(&self) -> BTreeMap<(String, String), Membership> {
        self.engine
            .instances()
            .filter(|i| i.root_host == i.id && self.engine.catalog().group(&i.class).is_some())
            .flat_map(|i| self.subgroup_memberships(&i.id, &i.class))
            .map(|m| ((m.member.clone(), m.relationship_id.clone()), m))
            .collect()
    }

    /// A member of one of this partition's containers reported its states (or that it
    /// left): kept, and the container's rollups recomputed. A group's container (its
    /// singleton instance, its own root) is created here when its first member reports.
    fn member_state(
        &mut self,
        batch: &mut StoreBatch,
        m: &MemberState,
        at: Position,
    ) -> Result<Vec<StateChange>, StoreError> {
        let mut changes = Vec::new();
        let container = &m.container_id;
        if self.engine.instance(container).is_none()
            && m.container_root() == container
            && self.engine.catalog().group(&m.container_class).is_some()
        {
            // A nested group is a member of the groups listing it as a subgroup.
            let parents = self.subgroup_memberships(container, &m.container_class);
            let inst = Instance {
                id: container.clone(),
                root_host: container.clone(),
                class: m.container_class.clone(),
                host_id: None,
                properties: BTreeMap::new(),
                managed: true,
                groups: parents.iter().filter_map(|p| p.group.clone()).collect(),
            };
            batch.put(
                INSTANCES_CF,
                &instance_key(at.partition, container),
                &encode(&inst)?,
            )?;
            changes.extend(self.engine.upsert(inst, m.time));
            for p in parents {
                self.membership_events.push((p.clone(), true));
                self.memberships
                    .entry(p.member.clone())
                    .or_default()
                    .push(p);
            }
        }
        let key = container_member_key(at.partition, container, &m.relationship, &m.member_id);
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
            Some(k) => batch.put(MEMBERS_CF, &key, &encode(k)?)?,
            None => batch.delete(MEMBERS_CF, &key)?,
        }
        self.container_partitions
            .insert(container.clone(), at.partition);
        changes.extend(self.engine.member_changed(
            container,
            &m.relationship,
            &m.member_id,
            known,
            m.time,
        ));
        crate::metrics::MEMBER_UPDATES.inc();
        Ok(changes)
    }

    /// Put the engine back together from the store: every instance of these partitions, then
    /// every kept monitor state.
    fn load(&mut self, state: &impl StateRead, partitions: &[i32]) -> Result<(), StoreError> {
        let mut instances: Vec<Instance> = Vec::new();
        for p in partitions {
            let prefix = KeyWriter::new(INSTANCE_PREFIX).i32(*p).finish();
            for (_, v) in state.scan_prefix(INSTANCES_CF, &prefix)? {
                instances.push(decode(&v)?);
            }
        }
        // Hosts before what they host (depth in the hosting chain, through a map of hosts:
        // a partition holds tens of thousands of instances).
        let host_of: HashMap<&str, Option<&str>> = instances
            .iter()
            .map(|i| (i.id.as_str(), i.host_id.as_deref()))
            .collect();
        let depth = |i: &Instance| {
            let mut d = 0;
            let mut cur = i.host_id.as_deref();
            while let Some(h) = cur {
                d += 1;
                if d > 32 {
                    break;
                }
                cur = host_of.get(h).copied().flatten();
            }
            d
        };
        let depths: Vec<usize> = instances.iter().map(depth).collect();
        let mut ordered: Vec<(usize, Instance)> = depths.into_iter().zip(instances).collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        // Every instance first, then what was kept of every monitor: the kept rollup states
        // are authoritative (recomputing them from half-loaded children would not be).
        let ids: Vec<(String, String)> = ordered
            .iter()
            .map(|(_, i)| (i.id.clone(), i.root_host.clone()))
            .collect();
        let mut roots: Vec<String> = ids.iter().map(|(_, r)| r.clone()).collect();
        roots.sort();
        roots.dedup();
        for (_, i) in ordered {
            self.engine.upsert(i, 0);
        }
        self.legacy_units.clear();
        for (id, root) in ids {
            let prefix = KeyWriter::new(STATE_PREFIX).str(&id).finish();
            for (k, v) in state.scan_prefix(STATE_CF, &prefix)? {
                let mut r = KeyReader::new(&k, STATE_PREFIX).map_err(corrupt)?;
                let _ = r.str().map_err(corrupt)?;
                let monitor = r.str().map_err(corrupt)?;
                let saved: Saved = decode(&v)?;
                if matches!(saved, Saved::Unit { .. } | Saved::Rollup(_)) {
                    self.legacy_units.push((k.to_vec(), root.clone()));
                }
                self.engine.restore(&id, &monitor, saved);
            }
        }
        for root in roots {
            if let Some(v) = state.get(STATE_CF, &host_units_key(&root))? {
                for (id, monitor, saved) in decode_host_units(&v).map_err(StoreError::Corrupt)? {
                    self.engine.restore(&id, &monitor, saved);
                }
            }
            if let Some(v) = state.get(STATE_CF, &host_rollups_key(&root))? {
                for (id, monitor, health) in decode_host_rollups(&v).map_err(StoreError::Corrupt)? {
                    self.engine.restore(&id, &monitor, Saved::Rollup(health));
                }
            }
        }
        for p in partitions {
            let prefix = KeyWriter::new(MAINTENANCE_PREFIX).i32(*p).finish();
            for (k, v) in state.scan_prefix(MAINTENANCE_CF, &prefix)? {
                let mut r = KeyReader::new(&k, MAINTENANCE_PREFIX).map_err(corrupt)?;
                let _ = r.i32().map_err(corrupt)?;
                let id = r.str().map_err(corrupt)?;
                self.engine.restore_maintenance(&id, decode(&v)?);
            }
        }
        for p in partitions {
            let prefix = KeyWriter::new(MEMBERSHIP_BY_MEMBER_PREFIX).i32(*p).finish();
            for (_, v) in state.scan_prefix(MEMBERSHIP_CF, &prefix)? {
                let m: Membership = decode(&v)?;
                let list = self.memberships.entry(m.member.clone()).or_default();
                if !list.contains(&m) {
                    list.push(m);
                }
            }
            let prefix = KeyWriter::new(CONTAINER_MEMBER_PREFIX).i32(*p).finish();
            for (container, relationship, member, known) in reported_members(state, &prefix)? {
                self.engine
                    .restore_member(&container, &relationship, &member, known);
                self.container_partitions.insert(container, *p);
            }
        }
        for m in self.all_subgroup_memberships().into_values() {
            let list = self.memberships.entry(m.member.clone()).or_default();
            if !list.contains(&m) {
                list.push(m);
            }
        }
        for (k, id) in state.scan_prefix(OPEN_ALERTS_CF, &[OPEN_ALERT_PREFIX])? {
            let mut r = KeyReader::new(&k, OPEN_ALERT_PREFIX).map_err(corrupt)?;
            let instance = r.str().map_err(corrupt)?;
            let monitor = r.str().map_err(corrupt)?;
            let owned = self.engine.instance(&instance).is_some_and(|i| {
                partitions
                    .contains(&(partition_for_key(i.root_host.as_bytes(), self.partitions) as i32))
            });
            if owned {
                let id = String::from_utf8(id.to_vec()).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "open alert of {instance}/{monitor}: its id is not UTF-8"
                    ))
                })?;
                self.open_alerts.insert(&instance, &monitor, id);
            }
        }
        self.engine.restore_availability();
        // What the load itself touched is already stored.
        let _ = self.engine.take_kept();
        let _ = self.engine.take_maintenance_changes();
        let _ = self.engine.take_availability_changes();
        Ok(())
    }

    /// A new set of packs: rebuild the engine from the state (`batch` over the store).
    fn refresh_packs(&mut self, batch: &mut StoreBatch) -> Result<(), StoreError> {
        if self.packs.borrow().next_offset == self.packs_offset {
            return Ok(());
        }
        let snapshot = self.packs.borrow().clone();
        // What is kept in memory and not stored yet goes to the batch it is read back from
        // (a sealed checkpoint keeps its own copies).
        self.kept_hosts.write_readable(&mut self.engine, batch)?;
        self.latest_cache.write_readable(batch)?;
        let partitions: Vec<i32> = {
            let mut ps: Vec<i32> = self
                .engine
                .instances()
                .map(|i| partition_for_key(i.root_host.as_bytes(), self.partitions) as i32)
                .collect();
            ps.sort();
            ps.dedup();
            ps
        };
        let mut partitions = partitions;
        partitions.extend(self.container_partitions.values().copied());
        partitions.sort();
        partitions.dedup();
        // Only the subgroup memberships follow from the packs; the others are stored.
        let before = self.all_subgroup_memberships();
        self.memberships.clear();
        self.engine = Engine::new(snapshot.store.catalog());
        self.tracked = std::sync::Arc::new(self.engine.member_monitors());
        self.container_partitions.clear();
        self.packs_offset = snapshot.next_offset;
        self.load(&*batch, &partitions)?;
        // Memberships the new packs make or end (nested groups): their containers hear.
        let after = self.all_subgroup_memberships();
        for (key, m) in &after {
            if before.get(key) != Some(m) {
                self.membership_events.push((m.clone(), true));
            }
        }
        for (key, m) in before {
            if !after.contains_key(&key) {
                self.membership_events.push((m, false));
            }
        }
        Ok(())
    }

    fn instance_change(
        &mut self,
        batch: &mut StoreBatch,
        c: &InstanceChange,
        at: Position,
    ) -> Result<Vec<StateChange>, StoreError> {
        match (c.kind, c.change) {
            (EntityKind::Instance, ChangeKind::Upsert) => {
                let mut props: BTreeMap<String, String> = BTreeMap::new();
                for (k, v) in c.keys.iter().chain(c.properties.iter()) {
                    if let Some(t) = text(v) {
                        props.insert(k.clone(), t);
                    }
                }
                let key = instance_key(at.partition, &c.entity_id);
                let groups = match batch.get(INSTANCES_CF, &key)? {
                    Some(v) => decode::<Instance>(&v)?.groups,
                    None => {
                        // A member known before its instance (a relationship from another
                        // tree): its containers hear of it now.
                        for m in self.memberships.get(&c.entity_id).into_iter().flatten() {
                            self.membership_events.push((m.clone(), true));
                        }
                        Vec::new()
                    }
                };
                let inst = Instance {
                    id: c.entity_id.clone(),
                    root_host: c.root_host.clone(),
                    class: c.class.clone(),
                    host_id: c.host_id.clone(),
                    properties: props,
                    managed: c.managed,
                    groups,
                };
                batch.put(INSTANCES_CF, &key, &encode(&inst)?)?;
                Ok(self.engine.upsert(inst, c.time))
            }
            (EntityKind::Instance, ChangeKind::Delete) => {
                batch.delete(INSTANCES_CF, &instance_key(at.partition, &c.entity_id))?;
                for m in self.memberships.get(&c.entity_id).into_iter().flatten() {
                    self.membership_events.push((m.clone(), false));
                }
                Ok(self.engine.remove(&c.entity_id, c.time))
            }
            (EntityKind::Relationship, ChangeKind::Upsert) => {
                let Some(m) = self.membership_of(c) else {
                    return Ok(Vec::new());
                };
                let rel_key = membership_key(&c.entity_id);
                let mut changes = Vec::new();
                let before = match batch.get(MEMBERSHIP_CF, &rel_key)? {
                    Some(v) => self.stored_membership(batch, &v, &mut changes, c, at)?,
                    None => None,
                };
                if before.as_ref() == Some(&m) {
                    return Ok(changes);
                }
                if let Some(old) = before {
                    changes.extend(self.leave(batch, &old, c.time, at.partition)?);
                }
                batch.put(MEMBERSHIP_CF, &rel_key, &encode(&m)?)?;
                batch.put(
                    MEMBERSHIP_CF,
                    &member_index_key(at.partition, &m.member, &m.relationship_id),
                    &encode(&m)?,
                )?;
                let list = self.memberships.entry(m.member.clone()).or_default();
                list.retain(|x| x.relationship_id != m.relationship_id);
                list.push(m.clone());
                self.membership_events.push((m.clone(), true));
                if let Some(group) = &m.group {
                    changes.extend(self.set_group(
                        batch,
                        &m.member,
                        group,
                        true,
                        c.time,
                        at.partition,
                    )?);
                }
                Ok(changes)
            }
            (EntityKind::Relationship, ChangeKind::Delete) => {
                let rel_key = membership_key(&c.entity_id);
                let Some(v) = batch.get(MEMBERSHIP_CF, &rel_key)? else {
                    return Ok(Vec::new());
                };
                batch.delete(MEMBERSHIP_CF, &rel_key)?;
                let mut changes = Vec::new();
                if let Some(m) = self.stored_membership(batch, &v, &mut changes, c, at)? {
                    changes.extend(self.leave(batch, &m, c.time, at.partition)?);
                }
                Ok(changes)
            }
        }
    }

    /// A stored membership. A store written before memberships were kept whole holds
    /// (member, group) pairs: such a membership is taken off the member (its group
    /// overrides) and forgotten, to be made again whole by the next relationship change.
    fn stored_membership(
        &mut self,
        batch: &mut StoreBatch,
        v: &[u8],
        changes: &mut Vec<StateChange>,
        c: &InstanceChange,
        at: Position,
    ) -> Result<Option<Membership>, StoreError> {
        if let Ok(m) = decode::<Membership>(v) {
            return Ok(Some(m));
        }
        let (member, group): (String, String) = decode(v)?;
        changes.extend(self.set_group(batch, &member, &group, false, c.time, at.partition)?);
        Ok(None)
    }

    /// The container a relationship change makes its target a member of: a group's
    /// membership, or any containment or reference (hosting rollups are computed here,
    /// from the hosted instances themselves).
    fn membership_of(&self, c: &InstanceChange) -> Option<Membership> {
        let member = c.target_id.clone()?;
        let container = c.source_id.clone()?;
        let group = c
            .claimed_by
            .iter()
            .find_map(|s| s.strip_prefix("group:"))
            .map(str::to_string);
        let container_class = match &group {
            Some(g) => g.clone(),
            None => {
                let rel = self.engine.catalog().relationship(&c.class)?;
                if rel.kind == healthstream_model::pack::RelationshipKind::Hosting {
                    return None;
                }
                c.source_class
                    .clone()
                    .or_else(|| self.engine.instance(&container).map(|i| i.class.clone()))?
            }
        };
        // A group's singleton instance is its own root; another container is in the tree
        // the change names (its own, or the source's for a relationship across trees).
        let container_root = match (&group, &c.source_root_host) {
            (_, Some(r)) => r.clone(),
            (Some(_), None) => container.clone(),
            (None, None) => c.root_host.clone(),
        };
        Some(Membership {
            relationship_id: c.entity_id.clone(),
            relationship: c.class.clone(),
            member,
            container,
            container_class,
            container_root,
            group,
        })
    }

    /// A membership ended: forgotten, its container told, a group's noted on the member.
    fn leave(
        &mut self,
        batch: &mut StoreBatch,
        m: &Membership,
        time: i64,
        partition: i32,
    ) -> Result<Vec<StateChange>, StoreError> {
        batch.delete(
            MEMBERSHIP_CF,
            &member_index_key(partition, &m.member, &m.relationship_id),
        )?;
        if let Some(list) = self.memberships.get_mut(&m.member) {
            list.retain(|x| x.relationship_id != m.relationship_id);
            if list.is_empty() {
                self.memberships.remove(&m.member);
            }
        }
        self.membership_events.push((m.clone(), false));
        match &m.group {
            Some(group) => self.set_group(batch, &m.member, group, false, time, partition),
            None => Ok(Vec::new()),
        }
    }

    /// A member joined or left a group: its overrides by group change with it.
    #[allow(clippy::too_many_arguments)]
    fn set_group(
        &mut self,
        batch: &mut StoreBatch,
        member: &str,
        group: &str,
        add: bool,
        time: i64,
        partition: i32,
    ) -> Result<Vec<StateChange>, StoreError> {
        let key = instance_key(partition, member);
        let Some(v) = batch.get(INSTANCES_CF, &key)? else {
            return Ok(Vec::new());
        };
        let mut inst: Instance = decode(&v)?;
        inst.groups.retain(|g| g != group);
        if add {
            inst.groups.push(group.to_string());
            inst.groups.sort();
        }
        batch.put(INSTANCES_CF, &key, &encode(&inst)?)?;
        Ok(self.engine.upsert(inst, time))
    }
}

impl HealthStage {
    /// A collector's result for a command: kept with the command, noted in the state
    /// history of its monitor (or task) and in its alert; a diagnostic that succeeded starts
    /// the recoveries waiting for it, a recovery that resets its monitor recalculates it.
    fn task_result(
        &mut self,
        batch: &mut StoreBatch,
        r: &TaskResult,
        at: Position,
    ) -> Result<(Vec<StateChange>, Vec<healthstream_engine::alerts::Alert>), StoreError> {
        let key = KeyWriter::new(COMMAND_PREFIX).str(&r.command_id).finish();
        let Some(mut entry) = command(&*batch, &r.command_id)? else {
            tracing::warn!(command = %r.command_id, collector = %r.collector, "a result for a command this processor did not send");
            crate::metrics::TASK_RESULTS
                .with_label_values(&["unknown_command"])
                .inc();
            return Ok((Vec::new(), Vec::new()));
        };
        if entry.result.is_some() {
            crate::metrics::TASK_RESULTS
                .with_label_values(&["duplicate"])
                .inc();
            return Ok((Vec::new(), Vec::new()));
        }
        let status = match r.status {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Refused => "refused",
        };
        crate::metrics::TASK_RESULTS
            .with_label_values(&[status])
            .inc();
        entry.result = Some(CommandOutcome {
            status: status.into(),
            exit_code: r.exit_code,
            output: r.output.clone(),
            truncated: r.truncated,
            started_at: r.started_at,
            finished_at: r.finished_at,
        });
        batch.put(COMMANDS_CF, &key, &encode_compact(&entry)?)?;
        let p = entry.planned.clone();
        let kind = match p.kind {
            PlannedKind::Task => "task",
            PlannedKind::Diagnostic => "diagnostic",
            PlannedKind::Recovery => "recovery",
        };
        let exit = r
            .exit_code
            .map(|c| format!(" (exit {c})"))
            .unwrap_or_default();
        let first_lines: String = r.output.lines().take(20).collect::<Vec<_>>().join("\n");
        let note = format!(
            "{kind} {} {status}{exit}; command {}{}{}",
            p.name,
            r.command_id,
            if first_lines.is_empty() { "" } else { ":\n" },
            first_lines
        );
        let monitor = p
            .monitor_id
            .clone()
            .unwrap_or_else(|| p.workflow_id.clone());
        let state = self.engine.state(&p.instance_id, &monitor);
        let hkey = history_key(&p.instance_id, &monitor, r.finished_at, at, u32::MAX);
        batch.append(HISTORY_CF, hkey, encode_history(state, state, &note))?;
        let mut annotated = Vec::new();
        if let Some(aid) = &entry.alert_id {
            if let Some(a) = alert(&*batch, aid)? {
                let mut alerts = healthstream_engine::alerts::Alerts::new();
                alerts.load(a);
                annotated.extend(alerts.annotate(
                    aid,
                    &format!("collector:{}", r.collector),
                    r.finished_at,
                    &note,
                ));
            }
        }
        let mut changes = Vec::new();
        if r.status == TaskStatus::Succeeded {
            match p.kind {
                PlannedKind::Diagnostic => {
                    for c in self.engine.commands_after(&p.instance_id, &p.workflow_id) {
                        self.queued.push((
                            c,
                            format!("health: after diagnostic {}", p.workflow_id),
                            entry.alert_id.clone(),
                        ));
                    }
                }
                PlannedKind::Recovery if p.reset_monitor => {
                    if let Some(m) = &p.monitor_id {
                        changes.extend(
                            self.engine
                                .recalculate(&p.instance_id, m, r.finished_at)
                                .unwrap_or_default(),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok((changes, annotated))
    }

    /// The commands of this input: those asked for (tasks, recoveries after a diagnostic),
    /// then the diagnostics and recoveries of the monitors that entered their state, each
    /// kept and sent on the command topic to the collector of its host.
    fn send_commands(
        &mut self,
        batch: &mut StoreBatch,
        changes: &[StateChange],
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        use healthstream_contracts::records::{Command, CommandKind};
        for c in changes {
            if c.old == c.new {
                continue;
            }
            for planned in self
                .engine
                .commands_on_state(&c.instance_id, &c.monitor_id, c.new)
            {
                // The monitor's open alert, as this input left it: the command's output
                // is attached to it.
                let alert = self.open_alerts.get(&c.instance_id, &c.monitor_id).cloned();
                self.queued.push((
                    planned,
                    format!("health: {} entered {}", c.monitor_id, c.new),
                    alert,
                ));
            }
        }
        let mut out = Vec::new();
        for (n, (planned, by, alert_id)) in std::mem::take(&mut self.queued).into_iter().enumerate()
        {
            let id = at.output_id("health-command", n);
            let requested_at = at.timestamp_ms;
            let record = Command {
                id: id.clone(),
                root_host: planned.root_host.clone(),
                collector: planned.root_host.clone(),
                kind: match planned.kind {
                    PlannedKind::Task => CommandKind::Task,
                    PlannedKind::Diagnostic => CommandKind::Diagnostic,
                    PlannedKind::Recovery => CommandKind::Recovery,
                },
                workflow_id: planned.workflow_id.clone(),
                instance_id: planned.instance_id.clone(),
                module: "exec".into(),
                parameters: BTreeMap::from([(
                    "argv".to_string(),
                    serde_json::to_string(&planned.argv).unwrap_or_default(),
                )]),
                timeout_seconds: planned.timeout_seconds,
                requested_by: by.clone(),
                requested_at,
                alert_id: alert_id.clone(),
            };
            batch.put(
                COMMANDS_CF,
                &KeyWriter::new(COMMAND_PREFIX).str(&id).finish(),
                &encode_compact(&CommandEntry {
                    id: id.clone(),
                    planned: planned.clone(),
                    requested_by: by,
                    requested_at,
                    alert_id,
                    result: None,
                })?,
            )?;
            let value = Codec::shared().encode_command(&record);
            out.push(OutboundRecord {
                topic: Topic::Commands,
                partition: partition_for_key(planned.root_host.as_bytes(), self.partitions) as i32,
                key: Some(planned.root_host.as_bytes().to_vec()),
                value: Some(value),
                timestamp_ms: requested_at,
            });
            crate::metrics::COMMANDS.inc();
        }
        Ok(out)
    }

    /// An operator action on this partition: applied to the engine (or to the alert), its
    /// outcome kept under its id. Applied once: a repeat of an id already applied does
    /// nothing. Returns the state changes and the alerts it changed.
    fn operation(
        &mut self,
        batch: &mut StoreBatch,
        op: &Operation,
        at: Position,
    ) -> Result<(Vec<StateChange>, Vec<healthstream_engine::alerts::Alert>), StoreError> {
        let key = operation_key(&op.id);
        if batch.get(OPERATIONS_CF, &key)?.is_some() {
            return Ok((Vec::new(), Vec::new()));
        }
        let position = at;
        let at = op.requested_at;
        let monitor = op.monitor_id.as_deref().unwrap_or_default();
        let mut closed = Vec::new();
        let result: Result<(Vec<StateChange>, String), String> = match op.kind {
            OperationKind::MaintenanceStart => self
                .engine
                .start_maintenance(
                    &op.instance_id,
                    Maintenance {
                        reason: op.reason.clone(),
                        comment: op.comment.clone(),
                        by: op.requested_by.clone(),
                        start: at,
                        until: op.until,
                    },
                )
                .map(|c| (c, format!("{} is in maintenance", op.instance_id))),
            OperationKind::MaintenanceEnd => self
                .engine
                .end_maintenance(&op.instance_id, at)
                .map(|c| (c, format!("maintenance of {} ended", op.instance_id))),
            OperationKind::ResetMonitor => self
                .engine
                .reset(&op.instance_id, monitor, at)
                .map(|c| (c, format!("{monitor} reset"))),
            OperationKind::RecalculateMonitor => self
                .engine
                .recalculate(&op.instance_id, monitor, at)
                .map(|c| (c, format!("{monitor} recalculated"))),
            OperationKind::RunTask => {
                let task = op.task_id.clone().unwrap_or_default();
                self.engine
                    .command_on_demand(&task, &op.instance_id)
                    .map(|planned| {
                        let id = position.output_id("health-command", self.queued.len());
                        let detail = format!(
                            "command {id} sent to the collector of {}",
                            planned.root_host
                        );
                        self.queued.push((planned, op.requested_by.clone(), None));
                        (Vec::new(), detail)
                    })
            }
            OperationKind::CloseAlert => {
                let id = op.alert_id.clone().unwrap_or_default();
                match alert(&*batch, &id)? {
                    None => Err(format!("no alert {id}")),
                    Some(a) => {
                        let state = self.engine.state(&a.instance_id, &a.workflow_id);
                        let mut alerts = healthstream_engine::alerts::Alerts::new();
                        alerts.load(a);
                        match alerts.close(&id, &op.requested_by, at, state) {
                            Ok(mut a) => {
                                if let Some(last) = a.history.last_mut() {
                                    if !op.comment.is_empty() {
                                        last.comment = format!("closed: {}", op.comment);
                                    }
                                }
                                closed.push(a);
                                Ok((Vec::new(), format!("alert {id} closed")))
                            }
                            Err(r) => Err(refusal(&r)),
                        }
                    }
                }
            }
        };
        let outcome = match result {
            Ok((changes, detail)) => {
                let n = changes.len();
                let outcome = OperationOutcome {
                    id: op.id.clone(),
                    kind: format!("{:?}", op.kind),
                    instance_id: op.instance_id.clone(),
                    status: "applied".into(),
                    detail,
                    state_changes: n,
                };
                batch.put(OPERATIONS_CF, &key, &encode(&outcome)?)?;
                crate::metrics::OPERATIONS
                    .with_label_values(&["applied"])
                    .inc();
                return Ok((changes, closed));
            }
            Err(detail) => OperationOutcome {
                id: op.id.clone(),
                kind: format!("{:?}", op.kind),
                instance_id: op.instance_id.clone(),
                status: "refused".into(),
                detail,
                state_changes: 0,
            },
        };
        crate::metrics::OPERATIONS
            .with_label_values(&["refused"])
            .inc();
        batch.put(OPERATIONS_CF, &key, &encode(&outcome)?)?;
        Ok((Vec::new(), Vec::new()))
    }

    /// Monitor alerts of the state changes: raised, updated or resolved, stored, and emitted
    /// as full alerts with their change on the alert topic.
    fn alerts(
        &mut self,
        batch: &mut StoreBatch,
        root: &str,
        changes: &[StateChange],
        operator_changes: Vec<healthstream_engine::alerts::Alert>,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        use healthstream_engine::alerts::{Alerts, Source, CLOSED};
        let mut out = Vec::new();
        let mut next = 0usize;
        let mut batches: Vec<Vec<healthstream_engine::alerts::Alert>> = Vec::new();
        for c in changes {
            let Some(settings) = self.engine.monitor_alert(&c.instance_id, &c.monitor_id) else {
                continue;
            };
            let mut alerts = Alerts::new();
            if let Some(id) = self.open_alerts.get(&c.instance_id, &c.monitor_id) {
                match alert(&*batch, id)? {
                    Some(open) => alerts.load(open),
                    None => tracing::error!(
                        instance = %c.instance_id, monitor = %c.monitor_id, alert = %id,
                        "an open alert is missing from the store; a new one is raised"
                    ),
                }
            }
            let id = at.output_id("health-alert", next);
            next += 1;
            batches.push(alerts.monitor_changed(
                &settings,
                &c.instance_id,
                &c.monitor_id,
                c.new,
                c.time,
                || id,
            ));
        }
        // Rule alerts: suppression and repeat counts against the open alerts, storms against
        // each rule's bookkeeping.
        for f in self.engine.take_firings() {
            let mut alerts = Alerts::new();
            let okey = open_rule_key(&f.instance, &f.rule, &f.alert.suppression);
            if let Some(id) = batch.get(OPEN_ALERTS_CF, &okey)? {
                if let Some(a) = alert(&*batch, &String::from_utf8_lossy(&id))? {
                    alerts.load(a);
                }
            }
            let skey = KeyWriter::new(STORM_PREFIX).str(&f.rule).finish();
            if let Some(v) = batch.get(STORMS_CF, &skey)? {
                alerts.load_storm(&f.rule, decode(&v)?);
            }
            let first = at.output_id("health-alert", next);
            let second = at.output_id("health-alert", next + 1);
            next += 2;
            let mut ids = [first, second].into_iter();
            let changed = alerts.rule_fired(
                &f.rule,
                &f.instance,
                &f.alert,
                f.time,
                healthstream_engine::alerts::StormLimits::default(),
                || ids.next().unwrap_or_default(),
            );
            if let Some(storm) = alerts.storm(&f.rule) {
                batch.put(STORMS_CF, &skey, &encode(storm)?)?;
            }
            batches.push(changed);
        }
        batches.push(operator_changes);
        for changed in batches {
            for a in changed {
                if a.source == Source::Monitor {
                    if a.resolution_state == CLOSED {
                        self.open_alerts.remove(&a.instance_id, &a.workflow_id);
                    } else {
                        self.open_alerts
                            .insert(&a.instance_id, &a.workflow_id, a.id.clone());
                    }
                }
                let knowledge = self.engine.knowledge(&a.workflow_id);
                let id = at.output_id("health-alert-change", next);
                if let Some(r) = keep_alert(batch, &a, root, at.partition, knowledge, id)? {
                    next += 1;
                    out.push(r);
                    crate::metrics::ALERT_CHANGES.inc();
                }
            }
        }
        Ok(out)
    }
}

impl Processor for HealthStage {
    type Input = HealthInput;

    fn name(&self) -> &'static str {
        "health"
    }

    fn decode(&self, message: &Message) -> Result<HealthInput, Rejection> {
        let Some(value) = message.value.as_deref() else {
            // A compacted instance topic's tombstone: nothing to do.
            return Err(Rejection::validation(format!(
                "tombstone on {} (ignored)",
                message.topic.name()
            )));
        };
        let codec = Codec::shared();
        let input = match message.topic {
            Topic::Instances => HealthInput::Instance(Box::new(codec.decode(value)?)),
            Topic::Perf => HealthInput::Perf(Box::new(crate::perf::CheckedPerf::decode(value)?)),
            Topic::Events => HealthInput::Events(codec.decode(value)?),
            Topic::Heartbeats => HealthInput::Heartbeat(codec.decode(value)?),
            Topic::Operations => HealthInput::Operation(Box::new(codec.decode(value)?)),
            Topic::TaskResults => HealthInput::TaskResult(Box::new(codec.decode(value)?)),
            Topic::RollupMembers => {
                let m: MemberState = codec.decode(value)?;
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
                HealthInput::Member(Box::new(m))
            }
            other => {
                return Err(Rejection::validation(format!(
                    "the health stage does not read {}",
                    other.name()
                )))
            }
        };
        if input.root_host().is_empty() {
            return Err(Rejection::validation("root_host is empty"));
        }
        let expected = partition_for_key(input.root_host().as_bytes(), self.partitions) as i32;
        if message.partition != expected {
            return Err(Rejection::validation(format!(
                "record of root host {:?} is on partition {}, but belongs on partition {expected}",
                input.root_host(),
                message.partition
            )));
        }

        Ok(input)
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
                revoked.iter().any(|(_, p)| {
                    partition_for_key(i.root_host.as_bytes(), self.partitions) as i32 == *p
                })
            })
            .map(|i| i.id.clone())
            .collect();
        for id in gone {
            let _ = self.engine.remove(&id, 0);
        }
        let containers: Vec<String> = self
            .container_partitions
            .iter()
            .filter(|(_, p)| revoked.iter().any(|(_, r)| r == *p))
            .map(|(c, _)| c.clone())
            .collect();
        for c in containers {
            self.engine.forget_members(&c);
            self.container_partitions.remove(&c);
        }
        let engine = &self.engine;
        self.memberships
            .retain(|member, _| engine.instance(member).is_some());
        self.open_alerts
            .retain_instances(|instance| engine.instance(instance).is_some());
        let _ = self.engine.take_kept();
        self.latest_cache.clear();
        self.legacy_units.clear();
        self.kept_hosts.clear();
    }

    fn seal(&mut self) {
        self.kept_hosts.seal();
        self.latest_cache.seal();
    }

    fn seal_step(&mut self, batch: &mut StoreBatch, budget: usize) -> Result<bool, StageError> {
        let kept = self.kept_hosts.step(&mut self.engine, batch, budget)?;
        let latest = self.latest_cache.seal_step(batch, budget)?;
        Ok(kept && latest)
    }

    fn apply(
        &mut self,
        batch: &mut StoreBatch,
        input: HealthInput,
        at: Position,
    ) -> Result<Vec<OutboundRecord>, StageError> {
        let root = input.root_host().to_string();
        self.refresh_packs(batch)?;
        // The changed hosts are kept until a checkpoint writes them: the engine marks a
        // host once per generation of them.
        self.engine
            .set_mark_generation(self.kept_hosts.units.generation());
        // An input changes the states of its root host's monitors only (ticks and pack
        // changes aside, below and above): a sealed checkpoint takes that host's states
        // before they change.
        if self.legacy_units.is_empty() {
            self.kept_hosts.take_before_change(&mut self.engine, &root);
        } else {
            self.kept_hosts.take_all(&mut self.engine);
        }
        let mut changes: Vec<StateChange> = Vec::new();
        let mut closed_alerts = Vec::new();
        self.queued.clear();
        let mut now = at.timestamp_ms;
        match &input {
            HealthInput::Instance(c) => changes.extend(self.instance_change(batch, c, at)?),
            HealthInput::Perf(checked) => {
                let samples = checked.samples();
                let source = (root.as_str(), checked.collector());
                store_latest(batch, source, samples.clone(), at, &mut self.latest_cache)?;
                crate::metrics::SAMPLES.inc_by(samples.len() as u64);
                now = samples.clone().map(|s| s.time).max().unwrap_or(now);
                changes.extend(self.engine.perf_each(&root, samples));
            }
            HealthInput::Events(b) => {
                for e in &b.events {
                    let level = format!("{:?}", e.level).to_uppercase();
                    let mut fields: Vec<(&str, Value<'_>)> = vec![
                        ("EventId", Value::Number(e.event_id as f64)),
                        ("Source", Value::text(&e.source)),
                        ("Channel", Value::text(&e.channel)),
                        ("Level", Value::Text(level.into())),
                        ("Message", Value::text(&e.message)),
                    ];
                    for (k, v) in &e.properties {
                        fields.push((k.as_str(), Value::text(v)));
                    }
                    now = now.max(e.time);
                    changes.extend(self.engine.event(&root, &fields, e.time));
                }
            }
            HealthInput::Heartbeat(h) => {
                now = h.time;
                changes.extend(self.engine.heartbeat(&root, h.time, h.interval_seconds));
            }
            HealthInput::TaskResult(r) => {
                now = r.finished_at;
                let (c, annotated) = self.task_result(batch, r, at)?;
                changes.extend(c);
                closed_alerts.extend(annotated);
            }
            HealthInput::Member(m) => {
                changes.extend(self.member_state(batch, m, at)?);
            }
            HealthInput::Operation(op) => {
                now = op.requested_at;
                let (c, closed) = self.operation(batch, op, at)?;
                changes.extend(c);
                closed_alerts.extend(closed);
            }
        }
        if now >= self.last_tick.saturating_add(1000) {
            self.last_tick = now;
            // Timers may change other hosts' states: while a checkpoint is sealed, those due
            // are taken first.
            if self.kept_hosts.is_sealing_any() {
                for r in self.engine.tick_roots(now) {
                    self.kept_hosts.take_before_change(&mut self.engine, &r);
                }
            }
            changes.extend(self.engine.tick(now));
        }
        for (root_host, since) in self.engine.take_availability_changes() {
            let key = KeyWriter::new(UNAVAILABLE_PREFIX).str(&root_host).finish();
            match since {
                Some(t) => batch.put(UNAVAILABLE_CF, &key, &encode(&t)?)?,
                None => batch.delete(UNAVAILABLE_CF, &key)?,
            }
        }
        for (id, root_host, m) in self.engine.take_maintenance_changes() {
            let partition = partition_for_key(root_host.as_bytes(), self.partitions) as i32;
            let key = KeyWriter::new(MAINTENANCE_PREFIX)
                .i32(partition)
                .str(&id)
                .finish();
            match m {
                Some(m) => batch.put(MAINTENANCE_CF, &key, &encode(&m)?)?,
                None => batch.delete(MAINTENANCE_CF, &key)?,
            }
        }
        let mut kept = self.engine.take_kept();
        for ((instance, monitor), saved) in std::mem::take(&mut kept.monitors) {
            let value = saved.map(|s| encode_compact(&s)).transpose()?;
            batch.set(STATE_CF, state_key(&instance, &monitor), value)?;
        }
        for (key, root_host) in self.legacy_units.drain(..) {
            batch.delete(STATE_CF, &key)?;
            kept.rollup_hosts.insert(root_host.clone());
            kept.hosts.insert(root_host);
        }
        debug_assert!(
            kept.hosts
                .iter()
                .chain(&kept.rollup_hosts)
                .all(|h| !self.kept_hosts.is_sealing(h)),
            "an input changed a sealed host other than its own root host: {kept:?}"
        );
        self.kept_hosts.mark(kept);
        let mut out = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let hkey = history_key(&c.instance_id, &c.monitor_id, c.time, at, index);
            batch.append(HISTORY_CF, hkey, encode_history(c.old, c.new, &c.cause))?;
            let record = StateRecord {
                id: at.output_id(self.name(), i),
                root_host: root.clone(),
                instance_id: c.instance_id.clone(),
                monitor_id: c.monitor_id.clone(),
                old_state: health_state(c.old),
                new_state: health_state(c.new),
                time: c.time,
                in_maintenance: self.engine.in_maintenance(&c.instance_id).is_some(),
                unavailable: self.engine.is_unavailable(&c.instance_id),
                cause: StateCause {
                    kind: c.kind.as_str().into(),
                    summary: c.cause.clone(),
                    data: BTreeMap::new(),
                },
            };
            let value = Codec::shared().encode_state_change(&record);
            out.push(OutboundRecord {
                topic: Topic::State,
                partition: at.partition,
                key: Some(state_record_key(&c.instance_id, &c.monitor_id)),
                value: Some(value),
                timestamp_ms: c.time,
            });
        }
        crate::metrics::STATE_CHANGES.inc_by(out.len() as u64);
        out.extend(self.alerts(batch, &root, &changes, closed_alerts, at)?);
        out.extend(self.fan_out(&changes, at)?);
        out.extend(self.send_commands(batch, &changes, at)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_states_are_read_back_from_the_compact_and_the_named_form() {
        use healthstream_engine::detect::{Memory, ServiceReading};
        use healthstream_engine::engine::Held;
        use healthstream_engine::rules::RuleState;
        let states = [
            Saved::Unit {
                health: Health::Warning,
                memory: Memory::Window([1.5, -2.0, f64::MAX, 1.0, 2.0, 3.0].into()),
                held: vec![],
            },
            Saved::Unit {
                health: Health::Uninitialized,
                memory: Memory::Run {
                    beyond: true,
                    length: 3,
                },
                held: vec![
                    Held::Value(4.0),
                    Held::Service(ServiceReading::Running(false)),
                ],
            },
            Saved::Unit {
                health: Health::Healthy,
                memory: Memory::Heartbeat {
                    last: 1_700_000_000_000,
                    interval: 60_000,
                },
                held: vec![],
            },
            Saved::Unit {
                health: Health::Critical,
                memory: Memory::Service {
                    running: Some(true),
                    automatic: None,
                },
                held: vec![],
            },
            Saved::Unit {
                health: Health::Critical,
                memory: Memory::LastBad(-5),
                held: vec![],
            },
            Saved::Unit {
                health: Health::Healthy,
                memory: Memory::None,
                held: vec![],
            },
            Saved::Rollup(Health::Critical),
            Saved::Rule(RuleState {
                window: [1, 2, 3].into(),
                first_seen: Some(7),
            }),
        ];
        for state in states {
            let compact = encode_compact(&state).expect("compact");
            let named = encode(&state).expect("named");
            assert!(compact.len() <= named.len(), "{state:?}");
            assert_eq!(decode::<Saved>(&compact).expect("compact form"), state);
            assert_eq!(decode::<Saved>(&named).expect("named form"), state);
        }
        // A state written before readings were held in maintenance (no `held` field).
        let old = rmp_serde::to_vec_named(&serde_json::json!({
            "Unit": {"health": "critical", "memory": "None"}
        }))
        .expect("old form");
        assert_eq!(
            decode::<Saved>(&old).expect("old form"),
            Saved::Unit {
                health: Health::Critical,
                memory: Memory::None,
                held: vec![],
            }
        );
        assert!(decode::<Saved>(&[0x93, 0xc1]).is_err());
    }

    /// A store written when each unit and rollup monitor's state was its own value: the
    /// states are loaded, and the next input keeps them as one value of their root host
    /// instead.
    #[test]
    fn states_kept_one_per_key_move_to_their_root_host() {
        use healthstream_engine::detect::Memory;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), HEALTH_CFS).expect("store");
        let mut stage = HealthStage::new(4, packs());
        apply(
            &mut stage,
            &store,
            change("web-01", EntityKind::Instance, ChangeKind::Upsert),
            0,
        );
        let cpu = "Linux.Monitor.CpuUtilization";
        let legacy = state_key("web-01", cpu);
        let saved = Saved::Unit {
            health: Health::Warning,
            memory: Memory::Run {
                beyond: true,
                length: 7,
            },
            held: vec![],
        };
        let entity = "System.Health.EntityState";
        let legacy_rollup = state_key("web-01", entity);
        let mut batch = store.batch();
        batch
            .put(STATE_CF, &legacy, &encode(&saved).expect("encode"))
            .expect("put");
        batch
            .put(
                STATE_CF,
                &legacy_rollup,
                &encode(&Saved::Rollup(Health::Warning)).expect("encode"),
            )
            .expect("put");
        store.write(batch).expect("write");
        let partition = partition_for_key(b"web-01", 4) as i32;
        let mut stage = HealthStage::new(4, packs());
        stage
            .on_assigned(
                &store,
                &[Assignment {
                    topic: Topic::Instances,
                    partition,
                    start: None,
                }],
            )
            .expect("load");
        let cpu_state = |store: &Store| {
            monitor_states(store, "web-01", 4)
                .expect("states")
                .into_iter()
                .find(|(m, _)| m == cpu)
                .map(|(_, h)| h)
        };
        assert_eq!(cpu_state(&store), Some(Health::Warning));
        apply(
            &mut stage,
            &store,
            change("web-01", EntityKind::Instance, ChangeKind::Upsert),
            1,
        );
        assert!(store.get(STATE_CF, &legacy).expect("get").is_none());
        assert!(store.get(STATE_CF, &legacy_rollup).expect("get").is_none());
        let kept = |key: Vec<u8>| {
            store
                .get(STATE_CF, &key)
                .expect("get")
                .expect("kept with its root host")
        };
        assert_eq!(
            decode_host_units(&kept(host_units_key("web-01"))).expect("decode"),
            [("web-01".to_string(), cpu.to_string(), saved)]
        );
        let rollups = decode_host_rollups(&kept(host_rollups_key("web-01"))).expect("decode");
        assert!(
            rollups.contains(&("web-01".to_string(), entity.to_string(), Health::Warning)),
            "{rollups:?}"
        );
        assert_eq!(cpu_state(&store), Some(Health::Warning));
        assert!(
            monitor_states(&store, "web-01", 4)
                .expect("states")
                .contains(&(entity.to_string(), Health::Warning)),
            "read back from the root host's value"
        );
    }

    fn put_history(store: &Store, instance: &str, monitor: &str, times: &[i64]) {
        let mut batch = store.batch();
        for (i, t) in times.iter().enumerate() {
            let at = Position {
                topic: Topic::Perf,
                partition: 0,
                offset: i as i64,
                timestamp_ms: *t,
            };
            let key = history_key(instance, monitor, *t, at, 0);
            let entry = HistoryEntry {
                monitor_id: monitor.into(),
                old: Health::Healthy,
                new: Health::Critical,
                time: *t,
                cause: format!("at {t}"),
            };
            batch
                .put(HISTORY_CF, &key, &encode(&entry).expect("encodes"))
                .expect("put");
        }
        store.write(batch).expect("write");
    }

    fn times(entries: &[HistoryEntry]) -> Vec<(String, i64)> {
        entries
            .iter()
            .map(|e| (e.monitor_id.clone(), e.time))
            .collect()
    }

    /// History entries are written without what their key holds, alerts in the compact
    /// form; those earlier builds wrote (whole, with or without field names) read the same.
    #[test]
    fn history_alerts_and_commands_read_back_from_the_compact_and_the_named_form() {
        use healthstream_engine::alerts::{Alert, Change, Source};
        use healthstream_model::pack::{Priority, Severity};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).expect("store");
        let entry = |t: i64| HistoryEntry {
            monitor_id: "M".into(),
            old: Health::Healthy,
            new: Health::Critical,
            time: t,
            cause: format!("value {t} below 5"),
        };
        let an_alert = |id: &str| Alert {
            id: id.into(),
            name: "Low space".into(),
            description: "2% free".into(),
            severity: Severity::Critical,
            priority: Priority::High,
            instance_id: "fs".into(),
            workflow_id: "M".into(),
            source: Source::Monitor,
            raised_at: 5,
            modified_at: 6,
            resolution_state: 0,
            repeat_count: 2,
            suppression: vec!["a".into()],
            parameters: vec!["2".into()],
            history: vec![Change {
                sequence: 1,
                by: "system".into(),
                at: 5,
                comment: String::new(),
                fields: vec![("severity".into(), None, Some("critical".into()))],
            }],
        };
        let at = |offset: i64| Position {
            topic: Topic::Perf,
            partition: 0,
            offset,
            timestamp_ms: 0,
        };
        let mut batch = store.batch();
        let forms: [fn(&HistoryEntry) -> Vec<u8>; 3] = [
            |e| encode(e).expect("named"),
            |e| encode_compact(e).expect("compact"),
            |e| encode_history(e.old, e.new, &e.cause),
        ];
        for (t, form) in forms.iter().enumerate() {
            let key = history_key("fs", "M", t as i64, at(t as i64), 0);
            batch
                .put(HISTORY_CF, &key, &form(&entry(t as i64)))
                .expect("put");
        }
        let named = encode(&an_alert("named")).expect("named");
        let compact = encode_compact(&an_alert("compact")).expect("compact");
        assert!(
            compact.len() < named.len() * 2 / 3,
            "{} against {}",
            compact.len(),
            named.len()
        );
        for (id, bytes) in [("named", named), ("compact", compact)] {
            let key = KeyWriter::new(ALERT_PREFIX).str(id).finish();
            batch.put(ALERTS_CF, &key, &bytes).expect("put");
        }
        store.write(batch).expect("write");
        let read = state_history(&store, "fs", Some("M"), 10).expect("history");
        assert_eq!(read, vec![entry(0), entry(1), entry(2)]);
        let latest = latest_changes(&store, "fs", &["M"]).expect("latest");
        assert_eq!(latest, vec![Some(entry(2))]);
        let compact = encode_compact(&entry(2)).expect("compact");
        let short = encode_history(Health::Healthy, Health::Critical, "value 2 below 5");
        assert!(
            short.len() * 2 < compact.len(),
            "{} against {}",
            short.len(),
            compact.len()
        );
        for id in ["named", "compact"] {
            assert_eq!(alert(&store, id).expect("reads"), Some(an_alert(id)));
        }
        // Commands too: written with field names by earlier versions, compact now.
        let a_command = |id: &str| CommandEntry {
            id: id.into(),
            planned: PlannedCommand {
                kind: PlannedKind::Diagnostic,
                workflow_id: "D".into(),
                name: "top".into(),
                instance_id: "fs".into(),
                root_host: "web-01".into(),
                monitor_id: Some("M".into()),
                argv: vec!["top".into(), "-b".into()],
                timeout_seconds: 30,
                reset_monitor: false,
            },
            requested_by: "health: M entered critical".into(),
            requested_at: 5,
            alert_id: Some("a1".into()),
            result: None,
        };
        let mut batch = store.batch();
        for (id, form) in [
            ("named", encode as fn(&CommandEntry) -> _),
            ("compact", encode_compact),
        ] {
            let key = KeyWriter::new(COMMAND_PREFIX).str(id).finish();
            batch
                .put(COMMANDS_CF, &key, &form(&a_command(id)).expect("encode"))
                .expect("put");
        }
        store.write(batch).expect("write");
        for id in ["named", "compact"] {
            assert_eq!(command(&store, id).expect("reads"), Some(a_command(id)));
        }
    }

    /// A history value that does not read says what is wrong and where.
    #[test]
    fn a_bad_history_value_says_what_is_wrong() {
        let at = Position {
            topic: Topic::Perf,
            partition: 0,
            offset: 7,
            timestamp_ms: 0,
        };
        let key = history_key("fs", "M", 1_000, at, 0);
        let good = encode_history(Health::Warning, Health::Healthy, "back");
        let read = decode_history(&key, &good).expect("reads");
        assert_eq!(
            (read.monitor_id.as_str(), read.old, read.new, read.time),
            ("M", Health::Warning, Health::Healthy, 1_000)
        );
        let cases: [(&[u8], &[u8], &str); 5] = [
            (&key, &[HISTORY_V2, 1], "2 bytes, fewer than 3"),
            (&key, &[HISTORY_V2, 9, 1], "byte 1: 9 is not a health state"),
            (&key, &[HISTORY_V2, 1, 4], "byte 2: 4 is not a health state"),
            (&key, &[HISTORY_V2, 1, 2, 0xff], "cause from byte 3"),
            (&key[..6], &good, "key"),
        ];
        for (k, v, says) in cases {
            match decode_history(k, v) {
                Err(StoreError::Corrupt(m)) => assert!(m.contains(says), "{m:?} says {says:?}"),
                other => panic!("{v:?}: {other:?}"),
            }
        }
        // Neither form: MessagePack's error.
        assert!(matches!(
            decode_history(&key, &[0x93, 1]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn history_reads_the_latest_and_grooming_keeps_each_monitors_last_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).expect("store");
        put_history(&store, "fs", "A", &[10, 20, 30, 40]);
        put_history(&store, "fs", "B", &[5, 15]);
        put_history(&store, "fs2", "A", &[1]);
        // A monitor with more changes than a page of grooming reads.
        let many: Vec<i64> = (0..(GROOM_PAGE as i64 + 50)).collect();
        put_history(&store, "fs3", "C", &many);

        let a = |limit| times(&state_history(&store, "fs", Some("A"), limit).expect("read"));
        assert_eq!(
            a(2),
            vec![("A".into(), 30), ("A".into(), 40)],
            "the latest two"
        );
        assert_eq!(a(1), vec![("A".into(), 40)], "the latest: since when");
        let latest = latest_changes(&store, "fs", &["B", "Z", "A"]).expect("read");
        assert_eq!(
            latest
                .iter()
                .map(|e| e.as_ref().map(|e| e.time))
                .collect::<Vec<_>>(),
            vec![Some(15), None, Some(40)]
        );
        let all = times(&state_history(&store, "fs", None, 3).expect("read"));
        assert_eq!(
            all,
            vec![("A".into(), 20), ("A".into(), 30), ("A".into(), 40)],
            "the instance's latest three of every monitor, in time order"
        );
        assert_eq!(
            state_history(&store, "fs", Some("Z"), 5).expect("read"),
            Vec::new()
        );

        let dropped = groom_history(&store, 25).expect("grooms");
        // fs/A: 10 and 20; fs/B: 5 (15 is older than the cut but B's latest);
        // fs2/A: nothing (its only change); fs3/C: 0..=24.
        assert_eq!(dropped, 2 + 1 + 25);
        assert_eq!(a(10), vec![("A".into(), 30), ("A".into(), 40)]);
        let b = times(&state_history(&store, "fs", Some("B"), 10).expect("read"));
        assert_eq!(b, vec![("B".into(), 15)]);
        assert_eq!(
            times(&state_history(&store, "fs2", None, 10).expect("read")),
            vec![("A".into(), 1)]
        );
        let c = state_history(&store, "fs3", Some("C"), usize::MAX).expect("read");
        assert_eq!(c.len(), GROOM_PAGE + 50 - 25);
        assert_eq!(c.first().map(|e| e.time), Some(25));

        // Everything older than a cut past the end: each monitor's last change stays.
        let dropped = groom_history(&store, i64::MAX).expect("grooms");
        assert_eq!(dropped, 1 + (GROOM_PAGE as u64 + 50 - 25 - 1));
        assert_eq!(a(10), vec![("A".into(), 40)]);
        let c = state_history(&store, "fs3", Some("C"), 10).expect("read");
        assert_eq!(times(&c), vec![("C".into(), GROOM_PAGE as i64 + 49)]);
        assert_eq!(
            groom_history(&store, i64::MAX).expect("grooms"),
            0,
            "nothing left to go"
        );
    }

    #[tokio::test]
    async fn the_history_is_groomed_once_a_period_until_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).expect("store");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let day = 86_400_000;
        // Changes of ten days ago, two days ago, and an hour ago; three days kept.
        put_history(
            &store,
            "fs",
            "A",
            &[now - 10 * day, now - 2 * day, now - 3_600_000],
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crate::grooming::groom_periodically(
            store.clone(),
            std::time::Duration::from_secs(3 * 86_400),
            std::time::Duration::from_millis(20),
            stopped,
        ));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state_history(&store, "fs", Some("A"), 10)
            .expect("read")
            .len()
            == 3
        {
            assert!(std::time::Instant::now() < deadline, "groomed in time");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let left = state_history(&store, "fs", Some("A"), 10).expect("read");
        assert_eq!(
            left.iter().map(|e| e.time).collect::<Vec<_>>(),
            vec![now - 2 * day, now - 3_600_000],
            "only what is older than the retention went"
        );
        stop.send(true).expect("send");
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("stops at shutdown")
            .expect("task");
    }

    fn packs() -> Packs {
        healthstream_packfeed::fixed(&[]).expect("shipped packs")
    }

    fn change(id: &str, kind: EntityKind, change: ChangeKind) -> InstanceChange {
        InstanceChange {
            id: format!("x-{id}"),
            root_host: "web-01".into(),
            entity_id: id.into(),
            kind,
            change,
            time: 0,
            class: "Linux.Computer".into(),
            keys: BTreeMap::new(),
            properties: BTreeMap::new(),
            host_id: None,
            source_id: None,
            target_id: None,
            managed: true,
            claimed_by: vec![],
            source_root_host: None,
            source_class: None,
        }
    }

    /// A state-change record is keyed by its instance and monitor (`instance/monitor`), as
    /// the state topic's readers look for a monitor's changes.
    #[test]
    fn state_changes_are_keyed_by_instance_and_monitor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), HEALTH_CFS).expect("store");
        let mut stage = HealthStage::new(4, packs());
        let at = Position {
            topic: Topic::Instances,
            partition: partition_for_key(b"web-01", 4) as i32,
            offset: 0,
            timestamp_ms: 0,
        };
        let mut batch = store.batch();
        let input = change("web-01", EntityKind::Instance, ChangeKind::Upsert);
        let out = stage
            .apply(&mut batch, HealthInput::Instance(Box::new(input)), at)
            .expect("applies");
        let states: Vec<_> = out.iter().filter(|r| r.topic == Topic::State).collect();
        assert!(
            !states.is_empty(),
            "a new computer's monitors start: {out:?}"
        );
        for r in states {
            let value = r.value.as_deref().expect("a value");
            let c: healthstream_contracts::records::StateChange =
                Codec::shared().decode(value).expect("decodes");
            assert_eq!(
                r.key.as_deref(),
                Some(format!("{}/{}", c.instance_id, c.monitor_id).as_bytes())
            );
        }
    }

    fn apply(stage: &mut HealthStage, store: &Store, c: InstanceChange, offset: i64) {
        let at = Position {
            topic: Topic::Instances,
            partition: partition_for_key(b"web-01", 4) as i32,
            offset,
            timestamp_ms: 0,
        };
        let mut batch = store.batch();
        stage
            .apply(&mut batch, HealthInput::Instance(Box::new(c)), at)
            .expect("applies");
        stage.seal();
        assert!(stage.seal_step(&mut batch, usize::MAX).expect("seal"));
        store.write(batch).expect("write");
    }

    /// An operation its owner has not applied within the API's wait (no health stage runs
    /// here): 202 "pending" with where to ask, the operation on its root host's partition of
    /// the operations topic; asked there, 404 until an outcome is stored, then the outcome.
    #[tokio::test]
    async fn an_operation_not_applied_within_the_wait_is_pending() {
        use axum::body::Body;
        use axum::http::{Request, StatusCode};
        use healthstream_bus::embedded::{EmbeddedBus, EmbeddedOptions};
        use healthstream_bus::Bus;
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path().join("state")).expect("store");
        let mut stage = HealthStage::new(4, packs());
        apply(
            &mut stage,
            &store,
            change("web", EntityKind::Instance, ChangeKind::Upsert),
            0,
        );
        let topology = healthstream_topology::Topology::load(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/embedded.toml"),
        )
        .expect("topology");
        let bus = EmbeddedBus::open(
            dir.path().join("bus"),
            &topology,
            EmbeddedOptions::default(),
        )
        .expect("bus");
        let router = crate::operations_router_waiting(
            store.clone(),
            bus.producer().expect("producer"),
            4,
            std::time::Duration::from_millis(100),
        );
        let call = |method: &str, uri: String, body: &str| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request");
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await.expect("answer");
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                (status, json)
            }
        };
        let (status, json) = call(
            "POST",
            "/v1/maintenance/web".into(),
            r#"{"reason": "SecurityIssue", "minutes": 30}"#,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(json["status"], "pending");
        let id = json["operation"]
            .as_str()
            .expect("operation id")
            .to_string();
        assert_eq!(json["location"], format!("/v1/operations/{id}"));
        let partition = partition_for_key(b"web-01", 4) as i32;
        let end = bus
            .end_offset(Topic::Operations, partition)
            .await
            .expect("end");
        assert_eq!(end, 1, "the operation is on the root host's partition");
        let (status, json) = call("GET", format!("/v1/operations/{id}"), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
        // The owner applies it: the stored outcome is the answer.
        let outcome = OperationOutcome {
            id: id.clone(),
            kind: "MAINTENANCE_START".into(),
            instance_id: "web".into(),
            status: "applied".into(),
            detail: String::new(),
            state_changes: 0,
        };
        let mut batch = store.batch();
        batch
            .put(
                OPERATIONS_CF,
                &operation_key(&id),
                &encode(&outcome).expect("encode"),
            )
            .expect("put");
        store.write(batch).expect("write");
        let (status, json) = call("GET", format!("/v1/operations/{id}"), "").await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["status"], "applied");
    }

    /// A store written before memberships were kept whole holds (member, group) pairs: the
    /// membership's removal still applies (the member leaves the group) instead of stopping
    /// the stage on a value it cannot read.
    #[test]
    fn a_membership_kept_by_an_older_build_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), HEALTH_CFS).expect("store");
        let mut stage = HealthStage::new(4, packs());
        let group = "System.Group.AllComputers";
        apply(
            &mut stage,
            &store,
            change("web-01", EntityKind::Instance, ChangeKind::Upsert),
            0,
        );
        let partition = partition_for_key(b"web-01", 4) as i32;
        let key = instance_key(partition, "web-01");
        let mut inst: Instance =
            decode(&store.get(INSTANCES_CF, &key).expect("get").expect("kept")).expect("instance");
        inst.groups = vec![group.into()];
        let mut batch = store.batch();
        batch
            .put(INSTANCES_CF, &key, &encode(&inst).expect("encode"))
            .expect("put");
        let legacy = encode(&("web-01".to_string(), group.to_string())).expect("encode");
        batch
            .put(MEMBERSHIP_CF, &membership_key("rel-1"), &legacy)
            .expect("put");
        store.write(batch).expect("write");
        apply(
            &mut stage,
            &store,
            change("rel-1", EntityKind::Relationship, ChangeKind::Delete),
            1,
        );
        let inst: Instance =
            decode(&store.get(INSTANCES_CF, &key).expect("get").expect("kept")).expect("instance");
        assert!(inst.groups.is_empty(), "{:?}", inst.groups);
        assert!(store
            .get(MEMBERSHIP_CF, &membership_key("rel-1"))
            .expect("get")
            .is_none());
    }
}
