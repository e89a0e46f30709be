//! The contracts: one Avro schema per kind of topic value, with its committed versions.

/// One kind of topic value, described by `schemas/<name>.avsc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contract {
    DiscoveryData,
    PerfBatch,
    EventBatch,
    Heartbeat,
    InstanceChange,
    StateChange,
    Alert,
    Command,
    PackRecord,
    CollectionPlan,
    TaskResult,
    DeadLetter,
    Operation,
    MemberState,
}

/// One committed version of a contract's schema.
#[derive(Debug, Clone, Copy)]
pub struct SchemaVersion {
    pub contract: Contract,
    /// 1, 2, ...: the file `schemas/history/<name>/<version>.avsc`.
    pub version: u32,
    /// The Confluent schema id written in front of values of this version:
    /// `base * 100 + version` (see `schemas/README.md`).
    pub schema_id: u32,
    pub text: &'static str,
}

macro_rules! versions {
    ($contract:expr, $name:literal, $base:literal, [$($v:literal),+]) => {
        &[$(SchemaVersion {
            contract: $contract,
            version: $v,
            schema_id: $base * 100 + $v,
            text: include_str!(concat!("../../../schemas/history/", $name, "/", stringify!($v), ".avsc")),
        }),+]
    };
}

impl Contract {
    /// Every contract.
    pub const ALL: [Contract; 14] = [
        Contract::DiscoveryData,
        Contract::PerfBatch,
        Contract::EventBatch,
        Contract::Heartbeat,
        Contract::InstanceChange,
        Contract::StateChange,
        Contract::Alert,
        Contract::Command,
        Contract::PackRecord,
        Contract::CollectionPlan,
        Contract::TaskResult,
        Contract::DeadLetter,
        Contract::Operation,
        Contract::MemberState,
    ];

    /// File stem of the schema under `schemas/`.
    pub fn name(self) -> &'static str {
        match self {
            Contract::DiscoveryData => "discovery_data",
            Contract::PerfBatch => "perf_batch",
            Contract::EventBatch => "event_batch",
            Contract::Heartbeat => "heartbeat",
            Contract::InstanceChange => "instance_change",
            Contract::StateChange => "state_change",
            Contract::Alert => "alert",
            Contract::Command => "command",
            Contract::PackRecord => "pack_record",
            Contract::CollectionPlan => "collection_plan",
            Contract::TaskResult => "task_result",
            Contract::DeadLetter => "dead_letter",
            Contract::Operation => "operation",
            Contract::MemberState => "member_state",
        }
    }

    /// Looks a contract up by its schema file stem.
    pub fn from_name(name: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The current schema text (`schemas/<name>.avsc`).
    pub fn current_text(self) -> &'static str {
        match self {
            Contract::DiscoveryData => include_str!("../../../schemas/discovery_data.avsc"),
            Contract::PerfBatch => include_str!("../../../schemas/perf_batch.avsc"),
            Contract::EventBatch => include_str!("../../../schemas/event_batch.avsc"),
            Contract::Heartbeat => include_str!("../../../schemas/heartbeat.avsc"),
            Contract::InstanceChange => include_str!("../../../schemas/instance_change.avsc"),
            Contract::StateChange => include_str!("../../../schemas/state_change.avsc"),
            Contract::Alert => include_str!("../../../schemas/alert.avsc"),
            Contract::Command => include_str!("../../../schemas/command.avsc"),
            Contract::PackRecord => include_str!("../../../schemas/pack_record.avsc"),
            Contract::CollectionPlan => include_str!("../../../schemas/collection_plan.avsc"),
            Contract::TaskResult => include_str!("../../../schemas/task_result.avsc"),
            Contract::DeadLetter => include_str!("../../../schemas/dead_letter.avsc"),
            Contract::Operation => include_str!("../../../schemas/operation.avsc"),
            Contract::MemberState => include_str!("../../../schemas/member_state.avsc"),
        }
    }

    /// Every committed version, oldest first. The last one is the version written.
    pub fn versions(self) -> &'static [SchemaVersion] {
        match self {
            Contract::DiscoveryData => {
                versions!(Contract::DiscoveryData, "discovery_data", 1, [1, 2])
            }
            Contract::PerfBatch => versions!(Contract::PerfBatch, "perf_batch", 2, [1]),
            Contract::EventBatch => versions!(Contract::EventBatch, "event_batch", 3, [1]),
            Contract::Heartbeat => versions!(Contract::Heartbeat, "heartbeat", 4, [1]),
            Contract::InstanceChange => {
                versions!(Contract::InstanceChange, "instance_change", 5, [1, 2])
            }
            Contract::StateChange => versions!(Contract::StateChange, "state_change", 6, [1]),
            Contract::Alert => versions!(Contract::Alert, "alert", 7, [1]),
            Contract::Command => versions!(Contract::Command, "command", 8, [1]),
            Contract::PackRecord => versions!(Contract::PackRecord, "pack_record", 9, [1]),
            Contract::CollectionPlan => {
                versions!(Contract::CollectionPlan, "collection_plan", 10, [1])
            }
            Contract::TaskResult => versions!(Contract::TaskResult, "task_result", 11, [1]),
            Contract::DeadLetter => versions!(Contract::DeadLetter, "dead_letter", 12, [1]),
            Contract::Operation => versions!(Contract::Operation, "operation", 13, [1]),
            Contract::MemberState => versions!(Contract::MemberState, "member_state", 14, [1, 2]),
        }
    }

    /// The version written by this build.
    pub fn latest(self) -> &'static SchemaVersion {
        let versions = self.versions();
        &versions[versions.len() - 1]
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
