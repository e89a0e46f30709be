//! Typed records, one per contract, field for field as in `schemas/*.avsc`.
//!
//! Times are milliseconds since the Unix epoch (`timestamp-millis`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A property value: Avro union `["null", "boolean", "long", "double", "string"]`.
///
/// Serialized untagged (the natural value); deserialized by the value's own type, without
/// serde's trial-and-error over variants (which builds an error per failed attempt and was
/// the largest cost of reading stored instances).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Null,
    Boolean(bool),
    Long(i64),
    Double(f64),
    String(String),
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PropertyValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, a boolean, an integer, a number or a string")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Null)
            }
            fn visit_some<D2: serde::Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<PropertyValue, D2::Error> {
                PropertyValue::deserialize(d)
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Boolean(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Long(v))
            }
            fn visit_i32<E: serde::de::Error>(self, v: i32) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Long(i64::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PropertyValue, E> {
                i64::try_from(v)
                    .map(PropertyValue::Long)
                    .map_err(|_| E::custom(format!("integer {v} is out of range")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Double(v))
            }
            fn visit_f32<E: serde::de::Error>(self, v: f32) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Double(f64::from(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PropertyValue, E> {
                Ok(PropertyValue::String(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<PropertyValue, E> {
                Ok(PropertyValue::String(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Property values by property name.
pub type Properties = BTreeMap<String, PropertyValue>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoverySourceKind {
    Discovery,
    Connector,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoverySource {
    pub kind: DiscoverySourceKind,
    pub id: String,
    pub managing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryMode {
    Snapshot,
    Incremental,
}

/// A reference to an instance by class, key properties and hosting chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRef {
    pub class: String,
    pub keys: Properties,
    pub host: Option<Box<InstanceRef>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredInstance {
    pub class: String,
    pub keys: Properties,
    pub properties: Properties,
    pub host: Option<InstanceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredRelationship {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: InstanceRef,
    pub target: InstanceRef,
    pub properties: Properties,
    /// The target's root host, when it is in another hosting tree (schema version 2).
    #[serde(default)]
    pub target_root_host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: InstanceRef,
    pub target: InstanceRef,
}

/// `schemas/discovery_data.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryData {
    pub id: String,
    pub root_host: String,
    pub source: DiscoverySource,
    pub mode: DiscoveryMode,
    pub time: i64,
    pub instances: Vec<DiscoveredInstance>,
    pub relationships: Vec<DiscoveredRelationship>,
    pub removed_instances: Vec<InstanceRef>,
    pub removed_relationships: Vec<RelationshipRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSample {
    pub time: i64,
    pub object: String,
    pub counter: String,
    pub instance: String,
    pub value: f64,
}

/// `schemas/perf_batch.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfBatch {
    pub id: String,
    pub collector: String,
    pub root_host: String,
    pub samples: Vec<PerfSample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventLevel {
    Critical,
    Error,
    Warning,
    Information,
    Verbose,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: i64,
    pub channel: String,
    pub source: String,
    pub event_id: i64,
    pub level: EventLevel,
    pub message: String,
    pub params: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

/// `schemas/event_batch.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub id: String,
    pub collector: String,
    pub root_host: String,
    pub events: Vec<Event>,
}

/// `schemas/heartbeat.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    pub collector: String,
    pub root_host: String,
    pub time: i64,
    pub interval_seconds: i32,
    pub sequence: i64,
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityKind {
    Instance,
    Relationship,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// `schemas/instance_change.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub id: String,
    pub root_host: String,
    pub entity_id: String,
    pub kind: EntityKind,
    pub change: ChangeKind,
    pub time: i64,
    pub class: String,
    pub keys: Properties,
    pub properties: Properties,
    pub host_id: Option<String>,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub managed: bool,
    pub claimed_by: Vec<String>,
    /// A relationship to another hosting tree: its source's root host (schema version 2).
    #[serde(default)]
    pub source_root_host: Option<String>,
    /// A relationship: its source's class (schema version 2).
    #[serde(default)]
    pub source_class: Option<String>,
}

/// Health states, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthState {
    Uninitialized,
    Healthy,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateCause {
    pub kind: String,
    pub summary: String,
    pub data: BTreeMap<String, String>,
}

/// `schemas/state_change.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub id: String,
    pub root_host: String,
    pub instance_id: String,
    pub monitor_id: String,
    pub old_state: HealthState,
    pub new_state: HealthState,
    pub time: i64,
    pub in_maintenance: bool,
    pub unavailable: bool,
    pub cause: StateCause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertSeverity {
    Information,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertPriority {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowKind {
    Monitor,
    Rule,
}

/// The full alert as it stands after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub name: String,
    pub description: String,
    pub severity: AlertSeverity,
    pub priority: AlertPriority,
    pub root_host: String,
    pub instance_id: String,
    pub workflow_id: String,
    pub workflow_kind: WorkflowKind,
    pub raised_at: i64,
    pub modified_at: i64,
    pub resolution_state: i32,
    pub owner: Option<String>,
    pub ticket_id: Option<String>,
    pub connector_id: Option<String>,
    pub custom_fields: BTreeMap<String, String>,
    pub repeat_count: i64,
    pub parameters: Vec<String>,
    pub knowledge: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Who changed what, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    pub sequence: i64,
    pub changed_by: String,
    pub changed_at: i64,
    pub comment: String,
    pub fields: Vec<FieldChange>,
}

/// `schemas/alert.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    pub alert: Alert,
    pub change: AlertChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    Task,
    Diagnostic,
    Recovery,
}

/// `schemas/command.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    pub root_host: String,
    pub collector: String,
    pub kind: CommandKind,
    pub workflow_id: String,
    pub instance_id: String,
    pub module: String,
    pub parameters: BTreeMap<String, String>,
    pub timeout_seconds: i32,
    pub requested_by: String,
    pub requested_at: i64,
    pub alert_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Succeeded,
    Failed,
    TimedOut,
    Refused,
}

/// `schemas/task_result.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub id: String,
    pub command_id: String,
    pub root_host: String,
    pub collector: String,
    pub status: TaskStatus,
    pub exit_code: Option<i32>,
    pub output: String,
    pub truncated: bool,
    pub started_at: i64,
    pub finished_at: i64,
}

/// `schemas/member_state.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    pub id: String,
    pub container_id: String,
    pub container_class: String,
    pub relationship: String,
    pub member_id: String,
    pub member_class: String,
    pub present: bool,
    pub states: BTreeMap<String, HealthState>,
    pub in_maintenance: bool,
    pub unavailable: bool,
    pub time: i64,
    /// Root host of the container's tree; empty: the container is its own root (version 2).
    #[serde(default)]
    pub container_root_host: String,
}

impl MemberState {
    /// The root host whose partition the record belongs on: the container's.
    pub fn container_root(&self) -> &str {
        if self.container_root_host.is_empty() {
            &self.container_id
        } else {
            &self.container_root_host
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationKind {
    MaintenanceStart,
    MaintenanceEnd,
    ResetMonitor,
    RecalculateMonitor,
    CloseAlert,
    RunTask,
}

/// `schemas/operation.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub root_host: String,
    pub instance_id: String,
    pub kind: OperationKind,
    pub monitor_id: Option<String>,
    pub alert_id: Option<String>,
    pub task_id: Option<String>,
    pub reason: String,
    pub comment: String,
    pub until: Option<i64>,
    pub requested_by: String,
    pub requested_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PackChange {
    Import,
    Upgrade,
    Remove,
}

/// `schemas/pack_record.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackRecord {
    pub id: String,
    pub pack_id: String,
    pub version: String,
    pub sealed: bool,
    pub change: PackChange,
    pub content: String,
    pub digest: String,
    pub changed_by: String,
    pub time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedDataSource {
    pub id: String,
    pub module: String,
    pub interval_seconds: i32,
    pub config: BTreeMap<String, String>,
    pub workflows: Vec<String>,
}

/// `schemas/collection_plan.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionPlan {
    pub id: String,
    pub root_host: String,
    pub collector: String,
    pub digest: String,
    pub generated_at: i64,
    pub data_sources: Vec<PlannedDataSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadLetterClass {
    /// Not a Confluent-framed value, or an unknown schema id.
    Framing,
    /// The Avro datum does not decode with its schema.
    Decode,
    /// Decoded, but breaks a rule of the contract.
    Validation,
}

/// `schemas/dead_letter.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub stage: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
    pub error_class: DeadLetterClass,
    pub reason: String,
    pub time: i64,
}

/// A typed record and the contract it belongs to.
pub trait Record: Serialize + serde::de::DeserializeOwned {
    const CONTRACT: crate::Contract;
}

macro_rules! record {
    ($($ty:ty => $contract:ident),+ $(,)?) => {
        $(impl Record for $ty { const CONTRACT: crate::Contract = crate::Contract::$contract; })+
    };
}

record! {
    DiscoveryData => DiscoveryData,
    PerfBatch => PerfBatch,
    EventBatch => EventBatch,
    Heartbeat => Heartbeat,
    InstanceChange => InstanceChange,
    StateChange => StateChange,
    AlertRecord => Alert,
    Command => Command,
    PackRecord => PackRecord,
    CollectionPlan => CollectionPlan,
    TaskResult => TaskResult,
        DeadLetter => DeadLetter,
        Operation => Operation,
    MemberState => MemberState,
}
