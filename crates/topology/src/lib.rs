//! Topologies: where every topic and consumer group is declared.
//!
//! A topology file (`topologies/*.toml`) declares each topic of [`Topic::ALL`] with its
//! partitions, key, cleanup policy and retention, which services produce and consume it,
//! and each service's consumer group. Services take their wiring from the loaded topology:
//! a service that would produce or consume a topic the topology does not give it gets an
//! error at start-up, not a silent misroute.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use healthstream_contracts::Topic;
use serde::Deserialize;

/// The deployable services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Ingest,
    Discovery,
    Health,
    Connector,
    Collector,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Ingest,
        Service::Discovery,
        Service::Health,
        Service::Connector,
        Service::Collector,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Ingest => "ingest",
            Service::Discovery => "discovery",
            Service::Health => "health",
            Service::Connector => "connector",
            Service::Collector => "collector",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka cleanup policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    Delete,
    Compact,
}

impl CleanupPolicy {
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        }
    }
}

/// What a topic's records are keyed and partitioned by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The root host of the hosting tree.
    RootHost,
    /// The entity (instance, relationship) id; partitioned by root host.
    EntityId,
    /// Instance id and monitor id; partitioned by root host.
    InstanceMonitor,
    /// Alert id; partitioned by root host.
    AlertId,
    /// Pack id; one partition.
    PackId,
    /// Source topic, partition and offset of a dead letter.
    SourcePosition,
    /// Container, relationship and member; partitioned by the container's root host (a
    /// repartition topic: the health processor sends it and reads it back, co-partitioned).
    ContainerMember,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    /// Name of the topology.
    name: String,
    /// What it is for.
    #[serde(default)]
    description: String,
    /// Defaults for topics that do not say.
    defaults: RawDefaults,
    /// Topics, by name on the bus.
    topics: BTreeMap<String, RawTopic>,
    /// Services and their consumer groups.
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    /// Partitions of a topic that does not set its own.
    partitions: u32,
    /// Replication factor of every topic.
    #[serde(default = "default_replication")]
    replication_factor: u16,
}

fn default_replication() -> u16 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    /// Contract of the values: a schema file stem under `schemas/`.
    contract: String,
    /// What records are keyed by.
    key: KeyKind,
    /// Partitions; the default if absent.
    partitions: Option<u32>,
    /// `delete` or `compact`.
    cleanup_policy: CleanupPolicy,
    /// How long records are kept (human duration, `7d`); absent = broker default.
    retention: Option<String>,
    /// Services that write the topic.
    producers: Vec<Service>,
    /// Services that read the topic.
    #[serde(default)]
    consumers: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    /// Consumer group of the service's members.
    group: Option<String>,
    /// Members to run (a hint for deployments; the embedded runtime runs one).
    #[serde(default = "one")]
    replicas: u32,
    /// Port of the service's HTTP endpoint (API, `/metrics`, `/healthz`, `/readyz`).
    port: Option<u16>,
}

fn one() -> u32 {
    1
}

/// One declared topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub topic: Topic,
    pub partitions: u32,
    pub replication_factor: u16,
    pub key: KeyKind,
    pub cleanup_policy: CleanupPolicy,
    pub retention: Option<Duration>,
    pub producers: BTreeSet<Service>,
    pub consumers: BTreeSet<Service>,
}

/// One declared service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub service: Service,
    pub group: Option<String>,
    pub replicas: u32,
    pub port: Option<u16>,
}

/// A loaded, validated topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    pub description: String,
    topics: BTreeMap<Topic, TopicSpec>,
    services: BTreeMap<Service, ServiceSpec>,
}

/// A topology that cannot be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topology {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("topology {path} is invalid:\n  - {}", problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("topology {topology}: service {service} does not {action} topic {topic}")]
    NotWired {
        topology: String,
        service: Service,
        action: &'static str,
        topic: Topic,
    },
    #[error("topology {topology}: service {service} has no consumer group")]
    NoGroup { topology: String, service: Service },
}

impl Topology {
    /// Loads and validates a topology file.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::parse(&text, path)
    }

    /// Parses and validates topology text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, TopologyError> {
        let raw: RawTopology = toml::from_str(text).map_err(|e| TopologyError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        if raw.defaults.partitions == 0 {
            problems.push("defaults.partitions must be at least 1".to_string());
        }
        let mut topics = BTreeMap::new();
        for (name, t) in &raw.topics {
            let Some(topic) = Topic::from_name(name) else {
                problems.push(format!("topics.{name:?}: not a healthstream topic"));
                continue;
            };
            let expected = topic.contract().name();
            if t.contract != expected {
                problems.push(format!(
                    "topics.{name:?}: contract is {:?}, but the topic carries {expected:?}",
                    t.contract
                ));
            }
            let partitions = t.partitions.unwrap_or(raw.defaults.partitions);
            if partitions == 0 {
                problems.push(format!("topics.{name:?}: partitions must be at least 1"));
            }
            if t.key == KeyKind::PackId && partitions != 1 {
                problems.push(format!(
                    "topics.{name:?}: keyed by pack id, must have exactly 1 partition (pack changes are totally ordered)"
                ));
            }
            let must_compact = matches!(
                topic,
                Topic::Instances
                    | Topic::State
                    | Topic::Alerts
                    | Topic::Packs
                    | Topic::CollectionPlans
            );
            if must_compact && t.cleanup_policy != CleanupPolicy::Compact {
                problems.push(format!("topics.{name:?}: must be compacted"));
            }
            let retention = match &t.retention {
                None => None,
                Some(s) => match humantime::parse_duration(s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        problems.push(format!("topics.{name:?}.retention: {s:?}: {e}"));
                        None
                    }
                },
            };
            if t.producers.is_empty() {
                problems.push(format!("topics.{name:?}: no producer"));
            }
            topics.insert(
                topic,
                TopicSpec {
                    topic,
                    partitions,
                    replication_factor: raw.defaults.replication_factor,
                    key: t.key,
                    cleanup_policy: t.cleanup_policy,
                    retention,
                    producers: t.producers.iter().copied().collect(),
                    consumers: t.consumers.iter().copied().collect(),
                },
            );
        }
        for topic in Topic::ALL {
            if !raw.topics.contains_key(topic.name()) {
                problems.push(format!("topic {:?} is not declared", topic.name()));
            }
        }
        // Co-partitioning: topics keyed by root host or partitioned by it share a count.
        let root_partitioned: BTreeSet<u32> = topics
            .values()
            .filter(|t| !matches!(t.key, KeyKind::PackId | KeyKind::SourcePosition))
            .map(|t| t.partitions)
            .collect();
        if root_partitioned.len() > 1 {
            problems.push(format!(
                "topics partitioned by root host must have the same partition count (co-partitioning), found {root_partitioned:?}"
            ));
        }
        let mut services = BTreeMap::new();
        for (name, s) in &raw.services {
            let Some(service) = Service::ALL.into_iter().find(|svc| svc.name() == name) else {
                problems.push(format!("services.{name:?}: not a healthstream service"));
                continue;
            };
            services.insert(
                service,
                ServiceSpec {
                    service,
                    group: s.group.clone(),
                    replicas: s.replicas,
                    port: s.port,
                },
            );
        }
        for spec in topics.values() {
            for consumer in &spec.consumers {
                let has_group = services.get(consumer).is_some_and(|s| s.group.is_some());
                if !has_group && *consumer != Service::Collector {
                    problems.push(format!(
                        "service {consumer} consumes {} but has no consumer group",
                        spec.topic
                    ));
                }
            }
        }
        let mut groups = BTreeMap::new();
        for s in services.values() {
            if let Some(g) = &s.group {
                if let Some(other) = groups.insert(g.clone(), s.service) {
                    problems.push(format!(
                        "services {other} and {} share consumer group {g:?}",
                        s.service
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(TopologyError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Topology {
            name: raw.name,
            description: raw.description,
            topics,
            services,
        })
    }

    /// The spec of a topic (every topic is declared in a valid topology).
    pub fn topic(&self, topic: Topic) -> &TopicSpec {
        &self.topics[&topic]
    }

    /// Every declared topic.
    pub fn topics(&self) -> impl Iterator<Item = &TopicSpec> {
        self.topics.values()
    }

    /// A declared service.
    pub fn service(&self, service: Service) -> Option<&ServiceSpec> {
        self.services.get(&service)
    }

    /// Every declared service.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.values()
    }

    /// Topics `service` consumes.
    pub fn inputs(&self, service: Service) -> Vec<Topic> {
        self.topics
            .values()
            .filter(|t| t.consumers.contains(&service))
            .map(|t| t.topic)
            .collect()
    }

    /// Topics `service` produces.
    pub fn outputs(&self, service: Service) -> Vec<Topic> {
        self.topics
            .values()
            .filter(|t| t.producers.contains(&service))
            .map(|t| t.topic)
            .collect()
    }

    /// Checks that `service` is declared a producer of `topic`.
    pub fn check_produces(&self, service: Service, topic: Topic) -> Result<(), TopologyError> {
        if self.topic(topic).producers.contains(&service) {
            Ok(())
        } else {
            Err(TopologyError::NotWired {
                topology: self.name.clone(),
                service,
                action: "produce",
                topic,
            })
        }
    }

    /// Checks that `service` is declared a consumer of `topic`.
    pub fn check_consumes(&self, service: Service, topic: Topic) -> Result<(), TopologyError> {
        if self.topic(topic).consumers.contains(&service) {
            Ok(())
        } else {
            Err(TopologyError::NotWired {
                topology: self.name.clone(),
                service,
                action: "consume",
                topic,
            })
        }
    }

    /// The consumer group of `service`.
    pub fn group(&self, service: Service) -> Result<&str, TopologyError> {
        self.services
            .get(&service)
            .and_then(|s| s.group.as_deref())
            .ok_or_else(|| TopologyError::NoGroup {
                topology: self.name.clone(),
                service,
            })
    }
}

#[cfg(test)]
mod tests;
