//! The topics of DESIGN.md section 7 and the contract of their values.
//!
//! Code names a topic only through this enum; partitions, keys, cleanup policy and who
//! produces and consumes each topic are declared in `topologies/*.toml`, and a test checks
//! that every topology declares exactly these topics.

use crate::Contract;

/// A healthstream topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Discovery,
    Perf,
    Events,
    Heartbeats,
    Instances,
    State,
    Alerts,
    Commands,
    Packs,
    CollectionPlans,
    TaskResults,
    DeadLetters,
    Operations,
    RollupMembers,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 14] = [
        Topic::Discovery,
        Topic::Perf,
        Topic::Events,
        Topic::Heartbeats,
        Topic::Instances,
        Topic::State,
        Topic::Alerts,
        Topic::Commands,
        Topic::Packs,
        Topic::CollectionPlans,
        Topic::TaskResults,
        Topic::DeadLetters,
        Topic::Operations,
        Topic::RollupMembers,
    ];

    /// The topic's name on the bus.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Discovery => "healthstream.discovery",
            Topic::Perf => "healthstream.perf",
            Topic::Events => "healthstream.events",
            Topic::Heartbeats => "healthstream.heartbeats",
            Topic::Instances => "healthstream.instances",
            Topic::State => "healthstream.state",
            Topic::Alerts => "healthstream.alerts",
            Topic::Commands => "healthstream.commands",
            Topic::Packs => "healthstream.packs",
            Topic::CollectionPlans => "healthstream.collection-plans",
            Topic::TaskResults => "healthstream.task-results",
            Topic::DeadLetters => "healthstream.dead-letters",
            Topic::Operations => "healthstream.operations",
            Topic::RollupMembers => "healthstream.rollup-members",
        }
    }

    /// Looks a topic up by its name on the bus.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The contract of the topic's values.
    pub fn contract(self) -> Contract {
        match self {
            Topic::Discovery => Contract::DiscoveryData,
            Topic::Perf => Contract::PerfBatch,
            Topic::Events => Contract::EventBatch,
            Topic::Heartbeats => Contract::Heartbeat,
            Topic::Instances => Contract::InstanceChange,
            Topic::State => Contract::StateChange,
            Topic::Alerts => Contract::Alert,
            Topic::Commands => Contract::Command,
            Topic::Packs => Contract::PackRecord,
            Topic::CollectionPlans => Contract::CollectionPlan,
            Topic::TaskResults => Contract::TaskResult,
            Topic::DeadLetters => Contract::DeadLetter,
            Topic::Operations => Contract::Operation,
            Topic::RollupMembers => Contract::MemberState,
        }
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
