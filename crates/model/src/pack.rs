//! The native pack format: one TOML file per pack, every element of DESIGN.md section 2.
//!
//! These types are both the file format (serde, unknown fields refused) and the in-memory
//! model: a pack read from TOML and written back is the same pack (a property test holds it).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::expr::Expr;
use crate::params::ParamValue;

/// One management pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    /// Identity, version and sealing.
    pub pack: Manifest,
    /// Packs whose elements this one uses, each with the minimum version it needs.
    #[serde(default, rename = "reference", skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Types of object.
    #[serde(default, rename = "class", skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Class>,
    /// Hosting, containment and reference relationship types.
    #[serde(
        default,
        rename = "relationship",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub relationships: Vec<Relationship>,
    /// Singleton classes whose members come from membership rules.
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// How instances are found.
    #[serde(default, rename = "discovery", skip_serializing_if = "Vec::is_empty")]
    pub discoveries: Vec<Discovery>,
    /// Data source -> conditions -> actions; never sets state.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Unit monitors.
    #[serde(default, rename = "monitor", skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<UnitMonitor>,
    /// Aggregate monitors (rollups of the same instance's monitors).
    #[serde(default, rename = "aggregate", skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<AggregateMonitor>,
    /// Dependency monitors (rollups over related instances).
    #[serde(default, rename = "dependency", skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencyMonitor>,
    /// Parameter changes for a context.
    #[serde(default, rename = "override", skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// On-demand actions against an instance.
    #[serde(default, rename = "task", skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// Read-only actions run on demand or when a monitor enters a state.
    #[serde(default, rename = "diagnostic", skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// Actions that change the system, on demand or when a monitor enters a state.
    #[serde(default, rename = "recovery", skip_serializing_if = "Vec::is_empty")]
    pub recoveries: Vec<Recovery>,
}

/// `[pack]`: who this pack is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Pack id, e.g. `Contoso.Linux`.
    pub id: String,
    /// Dotted numeric version, e.g. `1.2.0`.
    pub version: Version,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the pack is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sealed packs are read-only: their overrides live in unsealed packs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sealed: bool,
}

/// `[[reference]]`: a pack this one needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The referenced pack's id.
    pub pack: String,
    /// Minimum version needed.
    pub version: Version,
    /// The alias the SCOM original used for it (kept by the importer, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// `[[class]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    /// Element id, unique across all packs.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Base class (single inheritance); only `System.Entity` has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Abstract classes have no instances of their own.
    #[serde(default, rename = "abstract", skip_serializing_if = "is_false")]
    pub is_abstract: bool,
    /// Exactly one instance, with no key properties.
    #[serde(default, skip_serializing_if = "is_false")]
    pub singleton: bool,
    /// Hosted classes live on an instance of this host class; their identity includes the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Properties declared by this class (inherited ones are not repeated).
    #[serde(default, rename = "property", skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    /// What the class models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A typed class property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    /// Property name.
    pub name: String,
    /// Value type.
    #[serde(rename = "type", default)]
    pub kind: PropertyType,
    /// Key properties identify the instance (with its host).
    #[serde(default, skip_serializing_if = "is_false")]
    pub key: bool,
}

/// Property value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    #[default]
    String,
    Int,
    Float,
    Bool,
    Datetime,
    Guid,
}

/// `[[relationship]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hosting, containment or reference.
    pub kind: RelationshipKind,
    /// Source class (the host or container).
    pub source: String,
    /// Target class (the hosted or contained).
    pub target: String,
    /// Abstract relationship types are only bases.
    #[serde(default, rename = "abstract", skip_serializing_if = "is_false")]
    pub is_abstract: bool,
}

/// The three kinds of relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationshipKind {
    Hosting,
    Containment,
    Reference,
}

/// `[[group]]`: a singleton class with membership rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Element id (also the id of the group's singleton class).
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Base group class; default `System.Group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Relationship used for membership; default `System.GroupContainsEntities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// Membership rules: an instance matching any rule is a member.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<MembershipRule>,
    /// Instance ids always members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Instance ids never members (beats rules and include).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Groups (by id) whose singleton instances are members: nested groups, rolled up like
    /// any member (SCOM: a group populated with other groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subgroups: Vec<String>,
    /// What the group is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One membership rule: instances of `class` (derived classes included) for which `expression`
/// holds. The expression may use properties and `contained("Group")` / `not contained(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRule {
    /// Class of the candidate members.
    pub class: String,
    /// Condition over the candidate's properties and group memberships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<Expr>,
}

/// `[[discovery]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances run it.
    pub target: String,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Classes it discovers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Relationships it discovers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<String>,
    /// What the collector runs. Absent: a declaration whose data comes from elsewhere (a
    /// connector, or an imported discovery that cannot run here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DataSource>,
    /// Configuration parameters overrides may change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridable: Vec<String>,
}

/// The built-in data-source catalogue a collector can run (cook-down key: type + resolved
/// configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// A performance counter sample every `interval`.
    Perf {
        /// Counter object (`Processor`, `LogicalDisk`, ...).
        object: String,
        /// Counter name.
        counter: String,
        /// Counter instance; `*` for all instances.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// Sample interval.
        interval: Interval,
    },
    /// Entries of an event log or the systemd journal.
    Event {
        /// Log name: `journal`, `syslog`, or a Windows channel (`System`, `Application`).
        log: String,
        /// Only entries matching this (evaluated at the collector when it can).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<Expr>,
    },
    /// The collector's heartbeat.
    Heartbeat {
        /// Expected heartbeat interval.
        #[serde(default = "sixty_seconds")]
        interval: Interval,
    },
    /// State and start mode of a service.
    Service {
        /// Service (unit) name.
        service: String,
        /// Poll interval.
        interval: Interval,
    },
    /// A command whose output is a property bag (`key=value` lines or a JSON object).
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// Run interval.
        interval: Interval,
        /// Killed after this long.
        #[serde(default = "thirty_seconds")]
        timeout: Interval,
    },
    /// New lines of a log file.
    LogFile {
        /// File path (may use `$Target/...$`).
        path: String,
        /// Only lines matching this regular expression.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    /// A built-in inventory provider of the reference collector (discovery data).
    Inventory {
        /// `host`, `filesystems`, `block_devices`, `network_interfaces`, `services`.
        provider: String,
        /// Run interval.
        interval: Interval,
    },
    /// Trigger only: fires every `interval` (drives commands and scheduled checks).
    Schedule {
        /// Fire interval.
        interval: Interval,
    },
    /// A module healthstream cannot run (an imported Windows script or WMI query). The
    /// collector skips it; workflows using it are imported disabled, for an administrator to
    /// give them a runnable source.
    Unsupported {
        /// The original module type.
        module: String,
        /// The data type it produced: perf, event, property_bag, service_state, discovery, trigger.
        produces: String,
    },
}

/// A condition-detection module in a workflow pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Pass the items for which the expression holds.
    Filter {
        /// The condition.
        expression: Expr,
    },
    /// Pass perf samples beyond a threshold.
    Threshold {
        /// Threshold value.
        threshold: f64,
        /// `above` or `below`.
        direction: Direction,
    },
    /// Emit one consolidated item once `count` matching items arrived within `window`.
    Consolidate {
        /// Items needed.
        count: u32,
        /// Window length.
        window: Interval,
    },
    /// Emit when an item matching `first` is followed by one matching `then` within `within`.
    Correlate {
        /// The first item.
        first: Expr,
        /// The following item.
        then: Expr,
        /// Maximum time between them.
        within: Interval,
    },
    /// Property bag -> perf sample (seed 004's data mapper); values may use `$Data/...$`.
    MapPerf {
        /// Object name of the produced sample.
        object: String,
        /// Counter name.
        counter: String,
        /// Instance name.
        #[serde(default)]
        instance: String,
        /// The value, usually `$Data/Property[@Name='x']$`.
        value: String,
    },
    /// Property bag -> event.
    MapEvent {
        /// Event id of the produced event.
        event_id: i64,
        /// Source name.
        source: String,
        /// Level: `information`, `warning`, `error`.
        #[serde(default = "information")]
        level: String,
        /// Message text (may use `$Data/...$`).
        #[serde(default)]
        message: String,
    },
}

/// Threshold direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Beyond means greater than the threshold.
    Above,
    /// Beyond means less than the threshold.
    Below,
}

/// `[[rule]]`: data source -> conditions -> actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances run it.
    pub target: String,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Category (`performance_collection`, `event_collection`, `alert`, `maintenance`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Where the data comes from.
    pub source: DataSource,
    /// Condition detection, in order.
    #[serde(default, rename = "condition", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Write actions.
    #[serde(rename = "action")]
    pub actions: Vec<Action>,
    /// Configuration parameters overrides may change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridable: Vec<String>,
    /// Knowledge shown with its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<Knowledge>,
}

/// A rule's write action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Store perf samples (the perf history and the state of the perf stage).
    CollectPerf,
    /// Store events.
    CollectEvent,
    /// Raise an alert.
    Alert {
        /// Alert name (may use `$Target/...$` and `$Data/...$`).
        name: String,
        /// Description (same substitutions).
        #[serde(default)]
        description: String,
        /// Severity.
        #[serde(default = "Severity::warning")]
        severity: Severity,
        /// Priority.
        #[serde(default)]
        priority: Priority,
        /// Data fields whose equal values make a repeat (repeat count) instead of a new alert.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suppression: Vec<String>,
    },
    /// Run a command on the collector.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// Killed after this long.
        #[serde(default = "thirty_seconds")]
        timeout: Interval,
    },
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Information,
    Warning,
    Critical,
}

impl Severity {
    fn warning() -> Self {
        Severity::Warning
    }
}

/// Alert priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// Health states a monitor can be in (uninitialized is not configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Uninitialized,
    Healthy,
    Warning,
    Critical,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Uninitialized => "uninitialized",
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Critical => "critical",
        })
    }
}

/// `[[monitor]]`: a unit monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitMonitor {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances run it.
    pub target: String,
    /// Parent aggregate monitor (usually one of the four standard aggregates).
    pub parent: String,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Where the data comes from.
    pub source: DataSource,
    /// Conditions applied before the monitor type (filters, data mappers).
    #[serde(default, rename = "condition", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The monitor type and its configuration.
    pub detect: Detection,
    /// Alert settings; absent: no alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSettings>,
    /// Configuration parameters overrides may change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridable: Vec<String>,
    /// Knowledge shown with its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<Knowledge>,
}

/// Unit monitor types (DESIGN.md section 2) with their configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Detection {
    /// Each sample compared. 2-state: `threshold` and `unhealthy`; 3-state: `warning` and
    /// `critical` thresholds.
    SimpleThreshold {
        /// `above` or `below`.
        direction: Direction,
        /// 2-state threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        /// 3-state warning threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warning: Option<f64>,
        /// 3-state critical threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        critical: Option<f64>,
        /// State beyond a 2-state threshold.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// Below `low` / between / above `high` map to three configured states.
    DoubleThreshold {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// State below `low`.
        below: Health,
        /// State from `low` to `high` inclusive.
        between: Health,
        /// State above `high`.
        above: Health,
    },
    /// The mean of the last `samples` samples compared; no state before that many.
    AverageThreshold {
        /// `above` or `below`.
        direction: Direction,
        /// Threshold.
        threshold: f64,
        /// Window size in samples.
        samples: u32,
        /// State beyond the threshold.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// Unhealthy after `samples` consecutive samples beyond the threshold; healthy again after
    /// `samples` consecutive samples that are not.
    ConsecutiveSamples {
        /// `above` or `below`.
        direction: Direction,
        /// Threshold.
        threshold: f64,
        /// Run length.
        samples: u32,
        /// State after the run.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// The newest sample minus the sample `samples` samples earlier, compared.
    DeltaThreshold {
        /// `above` or `below` (of the delta).
        direction: Direction,
        /// Threshold on the delta.
        threshold: f64,
        /// Distance in samples.
        samples: u32,
        /// State beyond the threshold.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// An event matching `unhealthy_when` sets unhealthy; one matching `healthy_when` sets
    /// healthy.
    EventReset {
        /// The bad event.
        unhealthy_when: Expr,
        /// The good event.
        healthy_when: Expr,
        /// State on the bad event.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// An event matching `unhealthy_when` sets unhealthy; only an operator reset sets healthy.
    ManualReset {
        /// The bad event.
        unhealthy_when: Expr,
        /// State on the bad event.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// An event matching `unhealthy_when` sets unhealthy; healthy `after` the last one.
    TimerReset {
        /// The bad event.
        unhealthy_when: Expr,
        /// Quiet time after which the monitor is healthy again.
        after: Interval,
        /// State on the bad event.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// Service-state samples: unhealthy when not running, or (if `check_start_mode`) not set
    /// to start automatically.
    BasicService {
        /// Also require automatic start.
        #[serde(default)]
        check_start_mode: bool,
        /// State when the check fails.
        #[serde(default = "Health::critical_default")]
        unhealthy: Health,
    },
    /// Two- or three-state: an expression per state, first match wins; no match: no change.
    Expression {
        /// Ordered state conditions.
        #[serde(rename = "state")]
        states: Vec<StateCondition>,
    },
    /// The collector's heartbeat: critical after `missed` intervals without one.
    Heartbeat {
        /// Intervals without a heartbeat before the instance is unavailable.
        #[serde(default = "four")]
        missed: u32,
    },
    /// An imported monitor type healthstream cannot evaluate; the monitor stays uninitialized
    /// (imported disabled).
    Unsupported {
        /// The original monitor type.
        monitor_type: String,
        /// The states it had.
        states: Vec<Health>,
    },
}

impl Detection {
    /// The type name used in the files and the report.
    pub fn type_name(&self) -> &'static str {
        match self {
            Detection::SimpleThreshold { .. } => "simple_threshold",
            Detection::DoubleThreshold { .. } => "double_threshold",
            Detection::AverageThreshold { .. } => "average_threshold",
            Detection::ConsecutiveSamples { .. } => "consecutive_samples",
            Detection::DeltaThreshold { .. } => "delta_threshold",
            Detection::EventReset { .. } => "event_reset",
            Detection::ManualReset { .. } => "manual_reset",
            Detection::TimerReset { .. } => "timer_reset",
            Detection::BasicService { .. } => "basic_service",
            Detection::Expression { .. } => "expression",
            Detection::Heartbeat { .. } => "heartbeat",
            Detection::Unsupported { .. } => "unsupported",
        }
    }
}

impl Health {
    fn critical_default() -> Self {
        Health::Critical
    }
}

/// One state of an expression monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateCondition {
    /// The state entered when `when` holds.
    pub health: Health,
    /// The condition over the data item.
    pub when: Expr,
}

/// Alert settings of a unit monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Raise an alert at all (override property `generate_alert`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub generate: bool,
    /// Alert when the monitor reaches `warning` (warning or critical) or only `critical`.
    #[serde(default = "Health::critical_default")]
    pub on: Health,
    /// Close the alert when the monitor returns to healthy.
    #[serde(default = "yes")]
    pub auto_resolve: bool,
    /// Severity; absent: follow the state (warning -> warning, critical -> critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Priority.
    #[serde(default)]
    pub priority: Priority,
    /// Alert name (may use `$Target/...$` and `$Data/...$`).
    pub name: String,
    /// Description (same substitutions).
    #[serde(default)]
    pub description: String,
}

/// Knowledge article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    /// What the workflow checks.
    #[serde(default)]
    pub summary: String,
    /// Likely causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// What to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolutions: Vec<String>,
}

/// Rollup algorithm of an aggregate monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    WorstOf,
    BestOf,
}

/// `[[aggregate]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateMonitor {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances have it.
    pub target: String,
    /// Parent aggregate; absent only for the entity health root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// WorstOf or BestOf.
    pub algorithm: Algorithm,
    /// Alert settings; absent: no alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSettings>,
    /// Knowledge shown with its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<Knowledge>,
}

/// Rollup algorithm of a dependency monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyAlgorithm {
    WorstOf,
    BestOf,
    /// The worst state among the healthiest `percentage`% of members.
    Percentage,
}

/// `[[dependency]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyMonitor {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances have it (the source side of `relationship`).
    pub target: String,
    /// Parent aggregate.
    pub parent: String,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Hosting or containment relationship to the members.
    pub relationship: String,
    /// The members' monitor rolled up.
    pub member_monitor: String,
    /// WorstOf, BestOf or Percentage.
    pub algorithm: DependencyAlgorithm,
    /// For Percentage: N in 1..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    /// How a member in maintenance counts; default: ignored (uninitialized).
    #[serde(default = "Health::uninitialized_default")]
    pub member_in_maintenance: Health,
    /// How an unavailable member counts; default: critical.
    #[serde(default = "Health::critical_default")]
    pub member_unavailable: Health,
    /// Alert settings; absent: no alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSettings>,
    /// Knowledge shown with its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<Knowledge>,
}

impl Health {
    fn uninitialized_default() -> Self {
        Health::Uninitialized
    }
}

/// `[[override]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Element id.
    pub id: String,
    /// The discovery, rule, monitor, diagnostic or recovery changed.
    pub workflow: String,
    /// Parameter name (`enabled`, `threshold`, `severity`, ...).
    pub parameter: String,
    /// New value.
    pub value: ParamValue,
    /// Context: a class or a group.
    pub context: String,
    /// Optional: one instance (of the context class) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Enforced overrides beat the others.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enforced: bool,
}

/// `[[task]]`: an on-demand action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Class whose instances it runs against.
    pub target: String,
    /// Program and arguments (may use `$Target/...$`).
    pub command: Vec<String>,
    /// Killed after this long.
    #[serde(default = "thirty_seconds")]
    pub timeout: Interval,
}

/// `[[diagnostic]]`: read-only; on demand or when its monitor enters a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnostic {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The monitor it belongs to.
    pub monitor: String,
    /// Run automatically when the monitor enters this state; absent: on demand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_state: Option<Health>,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Killed after this long.
    #[serde(default = "thirty_seconds")]
    pub timeout: Interval,
}

/// `[[recovery]]`: changes the system; on demand, when its monitor enters a state, or after a
/// diagnostic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Element id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The monitor it belongs to.
    pub monitor: String,
    /// Run automatically when the monitor enters this state; absent: on demand or after a
    /// diagnostic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_state: Option<Health>,
    /// Run after this diagnostic completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_diagnostic: Option<String>,
    /// Recalculate the monitor once the recovery finished.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset_monitor: bool,
    /// Default: enabled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Killed after this long.
    #[serde(default = "thirty_seconds")]
    pub timeout: Interval,
}

/// A dotted numeric version (`1.0`, `7.5.8501.0`), compared part by part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub Vec<u64>);

impl Version {
    /// Parse `1.2.3`; every part a non-negative integer, 1 to 4 parts.
    pub fn parse(text: &str) -> Result<Version, String> {
        let parts: Result<Vec<u64>, _> = text.split('.').map(str::parse::<u64>).collect();
        match parts {
            Ok(p) if !p.is_empty() && p.len() <= 4 => Ok(Version(p)),
            _ => Err(format!(
                "version {text:?} is not 1 to 4 dot-separated numbers"
            )),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A duration written as a human string (`60s`, `5m`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl Interval {
    /// From whole seconds.
    pub fn secs(s: u64) -> Self {
        Interval(Duration::from_secs(s))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "duration {text:?}: {e} (write e.g. \"60s\", \"5m\")"
            ))
        })?;
        if parsed.is_zero() {
            return Err(serde::de::Error::custom(format!(
                "duration {text:?} must be greater than zero"
            )));
        }
        Ok(Interval(parsed))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_true(b: &bool) -> bool {
    *b
}
fn yes() -> bool {
    true
}
fn four() -> u32 {
    4
}
fn sixty_seconds() -> Interval {
    Interval::secs(60)
}
fn thirty_seconds() -> Interval {
    Interval::secs(30)
}
fn information() -> String {
    "information".to_string()
}

impl Pack {
    /// An empty pack with this identity.
    pub fn new(id: &str, version: Version) -> Pack {
        Pack {
            pack: Manifest {
                id: id.to_string(),
                version,
                name: None,
                description: None,
                sealed: false,
            },
            references: Vec::new(),
            classes: Vec::new(),
            relationships: Vec::new(),
            groups: Vec::new(),
            discoveries: Vec::new(),
            rules: Vec::new(),
            monitors: Vec::new(),
            aggregates: Vec::new(),
            dependencies: Vec::new(),
            overrides: Vec::new(),
            tasks: Vec::new(),
            diagnostics: Vec::new(),
            recoveries: Vec::new(),
        }
    }

    /// Every element: (kind, id).
    pub fn elements(&self) -> impl Iterator<Item = (ElementKind, &str)> + '_ {
        let c = self
            .classes
            .iter()
            .map(|e| (ElementKind::Class, e.id.as_str()));
        let r = self
            .relationships
            .iter()
            .map(|e| (ElementKind::Relationship, e.id.as_str()));
        let g = self
            .groups
            .iter()
            .map(|e| (ElementKind::Group, e.id.as_str()));
        let d = self
            .discoveries
            .iter()
            .map(|e| (ElementKind::Discovery, e.id.as_str()));
        let ru = self
            .rules
            .iter()
            .map(|e| (ElementKind::Rule, e.id.as_str()));
        let m = self
            .monitors
            .iter()
            .map(|e| (ElementKind::UnitMonitor, e.id.as_str()));
        let a = self
            .aggregates
            .iter()
            .map(|e| (ElementKind::AggregateMonitor, e.id.as_str()));
        let de = self
            .dependencies
            .iter()
            .map(|e| (ElementKind::DependencyMonitor, e.id.as_str()));
        let o = self
            .overrides
            .iter()
            .map(|e| (ElementKind::Override, e.id.as_str()));
        let t = self
            .tasks
            .iter()
            .map(|e| (ElementKind::Task, e.id.as_str()));
        let di = self
            .diagnostics
            .iter()
            .map(|e| (ElementKind::Diagnostic, e.id.as_str()));
        let re = self
            .recoveries
            .iter()
            .map(|e| (ElementKind::Recovery, e.id.as_str()));
        c.chain(r)
            .chain(g)
            .chain(d)
            .chain(ru)
            .chain(m)
            .chain(a)
            .chain(de)
            .chain(o)
            .chain(t)
            .chain(di)
            .chain(re)
    }

    /// Write the pack as TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// The kinds of element, as named in files and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementKind {
    Class,
    Relationship,
    Group,
    Discovery,
    Rule,
    UnitMonitor,
    AggregateMonitor,
    DependencyMonitor,
    Override,
    Task,
    Diagnostic,
    Recovery,
}

impl ElementKind {
    /// The TOML table name (`[[class]]`, `[[monitor]]`, ...).
    pub fn table(self) -> &'static str {
        match self {
            ElementKind::Class => "class",
            ElementKind::Relationship => "relationship",
            ElementKind::Group => "group",
            ElementKind::Discovery => "discovery",
            ElementKind::Rule => "rule",
            ElementKind::UnitMonitor => "monitor",
            ElementKind::AggregateMonitor => "aggregate",
            ElementKind::DependencyMonitor => "dependency",
            ElementKind::Override => "override",
            ElementKind::Task => "task",
            ElementKind::Diagnostic => "diagnostic",
            ElementKind::Recovery => "recovery",
        }
    }

    /// Every kind, in file order.
    pub const ALL: [ElementKind; 12] = [
        ElementKind::Class,
        ElementKind::Relationship,
        ElementKind::Group,
        ElementKind::Discovery,
        ElementKind::Rule,
        ElementKind::UnitMonitor,
        ElementKind::AggregateMonitor,
        ElementKind::DependencyMonitor,
        ElementKind::Override,
        ElementKind::Task,
        ElementKind::Diagnostic,
        ElementKind::Recovery,
    ];
}

impl fmt::Display for ElementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}
