//! The engine of one partition: its instances, a detector per unit monitor copy (one per
//! managed instance of the target class), the rollup tree of each instance, and the index that
//! dispatches each perf sample to the copies that read it.
//!
//! Every input returns the state changes it caused, in order, one per monitor that really
//! changed: unit monitors first, then their aggregates up to the entity health, then the
//! dependency monitors of the hosts above, up to the root host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use healthstream_model::catalog::Catalog;
use healthstream_model::expr::{CmpOp, Expr, Operand, Value};
use healthstream_model::overrides::{resolve_from, InstanceContext};
use healthstream_model::pack::{
    AggregateMonitor, Condition, DataSource, DependencyMonitor, Detection, Health, RelationshipKind,
};
use healthstream_model::params::ParamValue;
use healthstream_model::reference::{TargetContext, Template};

use crate::detect::{Detector, Fields, ServiceReading};
use crate::pairs::{Handle, PairMap, RecentPairs, Slots};
use crate::rollup::{aggregate, counted_as, dependency_counts, Counts, Member};
use crate::{FastMap, FastSet};

/// An instance as the engine sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub id: String,
    /// The root host of its hosting tree (its partition).
    pub root_host: String,
    pub class: String,
    pub host_id: Option<String>,
    /// Keys and properties, as text.
    pub properties: BTreeMap<String, String>,
    pub managed: bool,
    /// Groups it is a member of.
    pub groups: Vec<String>,
}

/// A state change.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub instance_id: String,
    pub monitor_id: String,
    pub old: Health,
    pub new: Health,
    pub time: i64,
    /// What kind of input caused it.
    pub kind: CauseKind,
    /// What caused it: the sample or event, or the child or member that drove a rollup.
    pub cause: String,
}

/// The kind of input behind a state change (`cause.kind` of the state record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    Sample,
    Event,
    Heartbeat,
    Time,
    Rollup,
    Operator,
    Maintenance,
}

impl CauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Sample => "sample",
            CauseKind::Event => "event",
            CauseKind::Heartbeat => "heartbeat",
            CauseKind::Time => "time",
            CauseKind::Rollup => "rollup",
            CauseKind::Operator => "operator",
            CauseKind::Maintenance => "maintenance",
        }
    }
}

/// Maintenance mode of an instance (and everything it hosts).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Maintenance {
    pub reason: String,
    pub comment: String,
    pub by: String,
    /// Start (ms).
    pub start: i64,
    /// Planned end (ms); `None`: until an operator ends it.
    pub until: Option<i64>,
}

/// A reading held back while its instance is in maintenance, applied on exit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Held {
    Value(f64),
    Service(ServiceReading),
}

/// What is kept of a monitor between inputs (persisted by the processor).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Saved {
    Unit {
        health: Health,
        memory: crate::detect::Memory,
        /// Readings that arrived while in maintenance.
        #[serde(default)]
        held: Vec<Held>,
    },
    Rollup(Health),
    Rule(crate::rules::RuleState),
}

/// What is kept and changed since the last [`Engine::take_kept`].
#[derive(Debug, Default)]
pub struct Kept {
    /// Root hosts whose unit monitors' kept state changed (a copy's state, or a copy made or
    /// removed): what to keep of each is [`Engine::host_units`], kept as one value per root
    /// host (a perf batch changes many of one host's monitors: one write, not one each).
    pub hosts: BTreeSet<String>,
    /// Root hosts whose rollup monitors' states changed (or a rollup was made or removed):
    /// what to keep of each is [`Engine::host_rollups`], kept as one value per root host (a
    /// state change changes the rollups above it, up to the host: one write, not one each).
    pub rollup_hosts: BTreeSet<String>,
    /// Rule monitors whose kept state changed, and removed monitors of any kind (`None`:
    /// forget what was kept of it on its own).
    pub monitors: Vec<((String, String), Option<Saved>)>,
}

/// The state of one rollup monitor of an instance (see [`Engine::host_rollups`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeptRollup<'a> {
    pub instance: &'a str,
    pub monitor: &'a str,
    pub health: Health,
}

/// What is kept of one unit monitor copy (see [`Engine::host_units`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeptUnit<'a> {
    pub instance: &'a str,
    pub monitor: &'a str,
    pub health: Health,
    pub memory: &'a crate::detect::Memory,
    pub held: &'a [Held],
}

impl KeptUnit<'_> {
    /// What [`Engine::restore`] takes back.
    pub fn to_saved(&self) -> Saved {
        Saved::Unit {
            health: self.health,
            memory: self.memory.clone(),
            held: self.held.to_vec(),
        }
    }
}

/// A perf sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub object: &'a str,
    pub counter: &'a str,
    pub instance: &'a str,
    pub value: f64,
    pub time: i64,
}

#[derive(Debug, Clone)]
struct Copy {
    detector: Detector,
    /// The place of the aggregate it reports to among its instance class's rollups
    /// ([`ClassRollups::aggs`]); `None`: no aggregate of the class is its parent.
    parent: Option<u16>,
    /// Event sources: the source's own filter (boxed: most copies read perf, and a copy is
    /// read for every sample it gets; the smaller, the fewer cache lines).
    filter: Option<Box<healthstream_model::expr::Expr>>,
    held: Vec<Held>,
    /// In [`Engine::touched_copies`] since the last [`Engine::take_kept`] (saves looking
    /// there).
    dirty: bool,
}

/// Instances whose monitors' resolved alert settings are kept, used last (see
/// `Engine::monitor_alerts`; twice as many at most).
const MONITOR_ALERTS_KEPT: usize = 1 << 15;

/// The engine of one partition.
pub struct Engine {
    /// The knowledge text of each workflow that has some (see [`Engine::knowledge`]).
    knowledge: FastMap<String, String>,
    /// The monitors some pack's diagnostics or recoveries run on (see
    /// [`Engine::commands_on_state`]).
    command_monitors: FastSet<String>,
    /// The caller's generation of marked hosts, when it keeps the hosts
    /// [`Engine::take_kept`] gives until it writes them ([`Engine::set_mark_generation`]):
    /// a perf batch then marks its host once per generation instead of with every batch.
    /// `None` (no such caller): every time.
    mark_generation: Option<u64>,
    /// Every argument of the packs' tasks, diagnostics and recoveries, parsed (or why it
    /// cannot be), by its text: a command's `$Target` parts are resolved for each
    /// instance it runs on, the text is parsed once per set of packs.
    command_args: FastMap<String, Result<Template, String>>,
    catalog: Catalog,
    /// By id; never iterated where order would show in the outputs.
    instances: FastMap<String, Instance>,
    /// (instance, unit monitor) -> copy.
    copies: Slots<Copy>,
    /// The copies whose state can change with time alone (timer reset, heartbeat): what a
    /// tick looks at.
    timed: BTreeSet<(String, String)>,
    /// Rollup states: (instance, aggregate or dependency monitor) -> health.
    rollups: PairMap<Health>,
    /// Root host -> the copies reading its counters and the layout of its last batch (one
    /// lookup per batch: each lookup of a host among thousands is a few cache misses).
    perf_hosts: FastMap<String, PerfHost>,
    /// Children by host.
    hosted: FastMap<String, BTreeSet<String>>,
    /// Monitors whose kept state changed since the last [`Engine::take_kept`].
    touched: BTreeSet<(String, String)>,
    /// Copies whose kept state a sample changed since the last [`Engine::take_kept`]
    /// (by handle: marked for every sample of a window monitor, without building a key).
    touched_copies: Vec<Handle>,
    /// Root hosts that lost or replaced unit copies since the last [`Engine::take_kept`].
    touched_roots: BTreeSet<String>,
    /// Root hosts whose rollups were removed or moved to another root host since the last
    /// [`Engine::take_kept`] (their other changes are found from `touched`).
    touched_rollup_roots: BTreeSet<String>,
    /// The distinct resolved configurations of each monitor (as resolved, and read),
    /// shared by its copies.
    detections: FastMap<String, Vec<(toml::Table, Arc<Detection>)>>,
    /// (instance, rule) -> rule copy (rules with an alert action).
    rules: Slots<crate::rules::RuleCopy>,
    /// Rule copies whose kept state an item changed since the last [`Engine::take_kept`]
    /// (by handle, as [`Engine::touched_copies`]).
    touched_rules: Vec<Handle>,
    /// Rule alerts to raise, since the last [`Engine::take_firings`].
    firings: Vec<crate::rules::Firing>,
    /// (root host, channel) -> event-driven monitor and rule copies reading it.
    event_index: FastMap<String, FastMap<String, EventIndex>>,
    /// Instances by root host (in order within a host; hosts never iterated where order
    /// would show in the outputs).
    by_root: FastMap<String, BTreeSet<String>>,
    /// Per root host, the handles of its instances' unit copies in (instance, monitor)
    /// order: what [`Engine::host_units`] goes through, made again after the root host's
    /// instances or copies change (dropped then).
    unit_lists: FastMap<String, Vec<Handle>>,
    /// Instances put in maintenance (what they host is in maintenance with them).
    maintenance: BTreeMap<String, Maintenance>,
    /// Root hosts whose collector is missing its heartbeats.
    unavailable: BTreeSet<String>,
    /// Root hosts that became unavailable or available again, and when, since the last
    /// [`Engine::take_availability_changes`].
    availability_touched: BTreeMap<String, i64>,
    /// Instances whose maintenance was set or ended since the last
    /// [`Engine::take_maintenance_changes`].
    maintenance_touched: BTreeMap<String, String>,
    /// Container -> (relationship, member) -> what is known of the member: its states as
    /// its own partition reports them (containment and reference rollups, any host).
    external: BTreeMap<String, BTreeMap<(String, String), ExternalMember>>,
    /// Container -> dependency monitor -> its members counted by the state each counts as,
    /// worked out from `external` when first needed and kept up to date by each member's
    /// change.
    member_counts: FastMap<String, FastMap<String, Counts>>,
    /// Container -> its hosted members counted by the state each counts as, per hosting
    /// dependency monitor whose member monitor is a rollup. Kept up to date by each member's
    /// rollup change ([`Engine::recompute`]), so a change does not count every sibling
    /// again; forgotten whenever members, their flags or their kept states change any other
    /// way (instances, maintenance, availability, restore).
    hosting_counts: FastMap<String, HostingCounts>,
    /// The alert settings of each monitor of each instance, as [`Engine::monitor_alert`]
    /// resolved them (overrides, `$Target`): worked out at a monitor's first state change,
    /// forgotten when the instance or one of its hosts is added, changed or removed (their
    /// properties, classes and groups decide them; the packs are the engine's own), kept for
    /// the [`MONITOR_ALERTS_KEPT`] instances used last (a few hundred bytes a monitor).
    monitor_alerts: RecentPairs<Option<Arc<crate::alerts::MonitorAlert>>>,
    /// The rollup monitors of each class, worked out when first needed.
    class_rollups: FastMap<String, Arc<ClassRollups>>,
    /// The unit monitors targeting each class, read once per set of packs (see
    /// [`MonitorPlan`]).
    class_monitors: FastMap<String, Arc<[MonitorPlan]>>,
    /// Copies created by the current upsert in a state other than uninitialized, and its time.
    initial: Vec<StateChange>,
    upsert_time: i64,
    /// Monitor, aggregate or dependency monitor id -> its alert settings as the packs
    /// define them (the first pack defining the id; `None`: it raises no alert), read once
    /// per set of packs: every state change asks.
    alert_settings: FastMap<String, Option<healthstream_model::pack::AlertSettings>>,
}

/// Instances a propagation pass looks through one by one before it indexes them.
const LOOKED_THROUGH: usize = 32;

/// A change that reaches an instance as its rollups are worked out: the instance below it
/// it came through (none: a change of the instance's own), and what caused it, as the
/// state changes say it ("monitor: what" for a change of a unit monitor).
#[derive(Clone, Copy)]
struct Cause<'a> {
    below: Option<&'a str>,
    text: &'a str,
}

/// The rollup monitors of a class: its dependency monitors (with the class their members
/// must be and whether they roll up hosting, read here, or other relationships, whose members
/// are reported) and its aggregates, deepest first, with the rollups whose parent each is.
struct ClassRollups {
    deps: Vec<(DependencyMonitor, String, bool)>,
    aggs: Vec<(AggregateMonitor, Vec<String>)>,
    /// Per dependency monitor: it rolls up hosting and its member monitor is a rollup
    /// (its counts can be kept, see [`Engine::hosting_counts`]).
    kept: Vec<bool>,
}

/// A unit monitor as each of its copies starts: its configuration as tables, which of its
/// parameters some override names, and whether its data source names `$Target` (a copy's
/// configuration differs from the monitor's only in those).
struct MonitorPlan {
    monitor: healthstream_model::pack::UnitMonitor,
    detect: toml::Table,
    source: toml::Table,
    overridden: Vec<String>,
    /// The data source's values that name `$Target`, parsed.
    templates: Vec<(String, Template)>,
    /// With nothing overridden and no `$Target` part: the data source of every copy.
    plain_source: Option<DataSource>,
}

impl MonitorPlan {
    fn new(catalog: &Catalog, monitor: &healthstream_model::pack::UnitMonitor) -> Option<Self> {
        let toml::Value::Table(detect) = toml::Value::try_from(&monitor.detect).ok()? else {
            return None;
        };
        let toml::Value::Table(source) = toml::Value::try_from(&monitor.source).ok()? else {
            return None;
        };
        let mut overridden: Vec<String> = catalog
            .overrides()
            .filter(|(_, o)| o.workflow == monitor.id)
            .map(|(_, o)| o.parameter.clone())
            .collect();
        overridden.sort();
        overridden.dedup();
        let templates: Vec<(String, Template)> = source
            .iter()
            .filter_map(|(k, v)| {
                let toml::Value::String(text) = v else {
                    return None;
                };
                let t = Template::parse(text).ok()?;
                let names_target = t.target_refs().next().is_some();
                names_target.then(|| (k.clone(), t))
            })
            .collect();
        let plain_source = if overridden.is_empty() && templates.is_empty() {
            Some(toml::Value::Table(source.clone()).try_into().ok()?)
        } else {
            None
        };
        Some(MonitorPlan {
            monitor: monitor.clone(),
            detect,
            source,
            overridden,
            templates,
            plain_source,
        })
    }
}

/// The kept counts of one container (see [`Engine::hosting_counts`]).
struct HostingCounts {
    plan: Arc<ClassRollups>,
    /// Per dependency monitor of `plan`.
    counts: Vec<Option<Counts>>,
}

/// A member of a container, as its state records report it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExternalMember {
    pub class: String,
    /// Monitor -> state.
    pub states: BTreeMap<String, Health>,
    pub in_maintenance: bool,
    pub unavailable: bool,
}

/// A reported member as a dependency monitor reads it.
fn reported(m: &ExternalMember, d: &DependencyMonitor) -> Member {
    Member {
        health: m
            .states
            .get(&d.member_monitor)
            .copied()
            .unwrap_or(Health::Uninitialized),
        in_maintenance: m.in_maintenance,
        unavailable: m.unavailable,
    }
}

/// Where a member counts in a dependency monitor's [`Counts`].
fn slot(m: &Member, d: &DependencyMonitor) -> usize {
    counted_as(m, d.member_in_maintenance, d.member_unavailable) as usize
}

/// Per root host: "object, counter" (see [`counter_key`]) -> the copies reading it.
type PerfIndex<T> = FastMap<String, CounterIndex<T>>;

/// What a root host's perf samples are matched with. Taken out of the engine for a batch
/// (moved, not copied: the copies change while the batch reads it) and put back after.
#[derive(Default)]
struct PerfHost {
    /// The unit monitor copies reading each counter; instance "*" for every instance.
    monitors: PerfIndex<Handle>,
    /// The rule copies reading each counter.
    rules: PerfIndex<Handle>,
    /// The layout of the host's last batch with each sample's monitor copies: a host's
    /// batches bring the same counters in the same order, so a sample is matched by its
    /// place and names instead of looked up. Emptied whenever `monitors` changes.
    layout: Layout,
}

/// The copies reading one counter: those reading every instance of it, and those reading
/// one instance, by instance; each list in (instance, workflow) order.
#[derive(Debug, Clone)]
struct CounterIndex<T> {
    any: Vec<T>,
    by_instance: FastMap<String, Vec<T>>,
}

impl<T> Default for CounterIndex<T> {
    fn default() -> Self {
        CounterIndex {
            any: Vec::new(),
            by_instance: FastMap::default(),
        }
    }
}

impl<T: Clone> CounterIndex<T> {
    /// The list of copies reading one instance (`*`: every instance).
    fn list(&mut self, instance: &str) -> &mut Vec<T> {
        if instance == "*" {
            &mut self.any
        } else {
            self.by_instance.entry(instance.to_string()).or_default()
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.any.retain(&mut keep);
        self.by_instance.retain(|_, list| {
            list.retain(&mut keep);
            !list.is_empty()
        });
    }

    /// The copies reading a sample of this instance, into `out`; `true` when both the
    /// instance's list and the every-instance list gave some (then `out` is not in order).
    fn targets(&self, instance: &str, out: &mut Vec<T>) -> bool {
        out.clear();
        out.extend_from_slice(&self.any);
        match self.by_instance.get(instance) {
            Some(list) if !list.is_empty() => {
                let both = !out.is_empty();
                out.extend_from_slice(list);
                both
            }
            _ => false,
        }
    }
}

/// The index key of a counter: object and counter joined by a separator no name contains.
fn counter_key(buf: &mut String, object: &str, counter: &str) {
    buf.clear();
    buf.push_str(object);
    buf.push('\u{1f}');
    buf.push_str(counter);
}

/// Whether two names are the same, compared eight bytes at a time in line (a sample's
/// object and counter are compared with the previous sample's for every sample; the
/// library comparison is a call per string).
fn same_name(a: &str, b: &str) -> bool {
    same_name_bytes(a.as_bytes(), b)
}

/// [`same_name`] of stored bytes and a name.
fn same_name_bytes(a: &[u8], b: &str) -> bool {
    let b = b.as_bytes();
    if a.len() != b.len() {
        return false;
    }
    let (mut xs, mut ys) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut xs).zip(&mut ys) {
        let word = |c: &[u8]| <[u8; 8]>::try_from(c).map(u64::from_ne_bytes).ok();
        if word(x) != word(y) {
            return false;
        }
    }
    xs.remainder()
        .iter()
        .zip(ys.remainder())
        .all(|(x, y)| x == y)
}

/// The counter index of a sample, looked up once for a run of samples of one counter.
struct CounterCursor<'i, 's, T> {
    index: Option<&'i PerfIndex<T>>,
    last: Option<(&'s str, &'s str, Option<&'i CounterIndex<T>>)>,
    buf: String,
}

impl<'i, 's, T> CounterCursor<'i, 's, T> {
    fn new(index: Option<&'i PerfIndex<T>>) -> Self {
        CounterCursor {
            index,
            last: None,
            buf: String::new(),
        }
    }

    fn get(&mut self, s: &Sample<'s>) -> Option<&'i CounterIndex<T>> {
        let index = self.index?;
        if let Some((o, c, found)) = self.last {
            if same_name(o, s.object) && same_name(c, s.counter) {
                return found;
            }
        }
        counter_key(&mut self.buf, s.object, s.counter);
        let found = index.get(self.buf.as_str());
        self.last = Some((s.object, s.counter, found));
        found
    }
}

/// A root host's last perf batch: the names of its samples in order and, for each place,
/// the copies its sample reached; valid while the host's index is the one it was made
/// with (see [`PerfHost::layout`]). Flat lists, so that a host's layout is a few runs of memory rather than four
/// allocations per place (reading them was a cache miss per sample).
#[derive(Default)]
struct Layout {
    /// The [`Engine::mark_generation`] in which a batch of the host last marked it (0:
    /// none).
    marked: u64,
    /// Each place's object, counter and instance, each followed by [`NAME_END`].
    names: Vec<u8>,
    /// Per place: where its names end in `names` and its copies in `targets`.
    ends: Vec<(usize, usize)>,
    targets: Vec<Handle>,
}

/// Ends each name in [`Layout::names`]: a byte no UTF-8 text has.
const NAME_END: u8 = 0xff;

impl Layout {
    /// Where the `place`-th place's names and copies start (where the one before ends).
    fn start(&self, place: usize) -> (usize, usize) {
        match place {
            0 => (0, 0),
            p => self.ends[p - 1],
        }
    }

    /// The copies of the `place`-th sample `s` as the last batch had them, when its sample
    /// there had the same names.
    fn known(&self, place: usize, s: &Sample<'_>) -> Option<std::ops::Range<usize>> {
        let &(names_end, targets_end) = self.ends.get(place)?;
        let (names_start, targets_start) = self.start(place);
        let mut names = &self.names[names_start..names_end];
        for name in [s.object, s.counter, s.instance] {
            let n = name.len();
            if names.len() <= n || names[n] != NAME_END || !same_name_bytes(&names[..n], name) {
                return None;
            }
            names = &names[n + 1..];
        }
        names.is_empty().then_some(targets_start..targets_end)
    }

    /// Forgets the places from `place` on.
    fn truncate(&mut self, place: usize) {
        if place < self.ends.len() {
            let (names, targets) = self.start(place);
            self.names.truncate(names);
            self.targets.truncate(targets);
            self.ends.truncate(place);
        }
    }

    /// Adds the next place, of sample `s`, whose copies were pushed on `targets`.
    fn push(&mut self, s: &Sample<'_>) {
        for name in [s.object, s.counter, s.instance] {
            self.names.extend_from_slice(name.as_bytes());
            self.names.push(NAME_END);
        }
        self.ends.push((self.names.len(), self.targets.len()));
    }
}

/// The copies reading one channel of one root host: those whose filters require an event
/// id, by that id, and the others.
#[derive(Debug, Default)]
struct EventIndex {
    any: Vec<(String, String)>,
    by_id: FastMap<i64, Vec<(String, String)>>,
}

impl EventIndex {
    fn add(&mut self, event_id: Option<i64>, key: (String, String)) {
        match event_id {
            Some(id) => self.by_id.entry(id).or_default().push(key),
            None => self.any.push(key),
        }
    }

    fn remove_instance(&mut self, id: &str) {
        self.any.retain(|(i, _)| i != id);
        for list in self.by_id.values_mut() {
            list.retain(|(i, _)| i != id);
        }
    }

    /// The copies an event with this id may concern, in a stable order.
    fn candidates(&self, event_id: Option<i64>) -> Vec<(String, String)> {
        let mut out = self.any.clone();
        if let Some(list) = event_id.and_then(|id| self.by_id.get(&id)) {
            out.extend(list.iter().cloned());
        }
        out.sort();
        out
    }
}

/// The literal a filter requires a field to equal (`Field == literal`, alone or in a
/// conjunction); the index uses it to skip the copies an item cannot match.
fn required<'e>(e: &'e Expr, field: &str) -> Option<&'e Operand> {
    let literal = |o: &'e Operand| matches!(o, Operand::Text(_) | Operand::Number(_)).then_some(o);
    match e {
        Expr::Compare {
            left: Operand::Path(p),
            op: CmpOp::Eq,
            right,
        } if p.simple_name() == Some(field) => literal(right),
        Expr::Compare {
            left,
            op: CmpOp::Eq,
            right: Operand::Path(p),
        } if p.simple_name() == Some(field) => literal(left),
        Expr::And(list) => list.iter().find_map(|x| required(x, field)),
        _ => None,
    }
}

/// The event id a filter requires, if it requires one.
fn required_event_id(e: Option<&Expr>) -> Option<i64> {
    match required(e?, "EventId")? {
        Operand::Number(n) if n.fract() == 0.0 => Some(*n as i64),
        Operand::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

/// The first filter condition of a rule.
fn first_filter(conditions: &[Condition]) -> Option<&Expr> {
    match conditions.first() {
        Some(Condition::Filter { expression }) => Some(expression),
        _ => None,
    }
}

/// Add a copy to an index list, keeping the list in (instance, workflow) order: the same
/// order whatever order the copies were built in (live or restored).
fn index_in_order(list: &mut Vec<Handle>, h: Handle, copies: &Slots<Copy>) {
    let key = |h: &Handle| copies.at(*h).map(|(k, _)| k.clone());
    let mine = key(&h);
    let at = list.partition_point(|x| key(x) < mine);
    list.insert(at, h);
}

struct Ctx<'a>(Vec<&'a Instance>);

impl TargetContext for Ctx<'_> {
    fn property(&self, hops: usize, name: &str) -> Option<String> {
        self.0.get(hops)?.properties.get(name).cloned()
    }
    fn id(&self, hops: usize) -> Option<String> {
        self.0.get(hops).map(|i| i.id.clone())
    }
    fn display_name(&self, hops: usize) -> Option<String> {
        self.property(hops, "DisplayName").or_else(|| self.id(hops))
    }
}

fn to_toml(v: &ParamValue) -> toml::Value {
    match v {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Int(i) => toml::Value::Integer(*i),
        ParamValue::Float(f) => toml::Value::Float(*f),
        ParamValue::Text(t) => toml::Value::String(t.clone()),
    }
}

/// The knowledge of each workflow of the packs that has some, as text shown with its
/// alerts (the first pack's, for an id in several): its summary, causes and resolutions.
fn knowledge_texts(catalog: &Catalog) -> FastMap<String, String> {
    let mut out = FastMap::default();
    for p in catalog.packs() {
        let pack = &p.pack;
        let all = pack.monitors.iter().map(|m| (&m.id, &m.knowledge));
        let all = all.chain(pack.rules.iter().map(|r| (&r.id, &r.knowledge)));
        let all = all.chain(pack.aggregates.iter().map(|a| (&a.id, &a.knowledge)));
        let all = all.chain(pack.dependencies.iter().map(|d| (&d.id, &d.knowledge)));
        for (id, k) in all {
            let Some(k) = k else { continue };
            out.entry(id.clone()).or_insert_with(|| {
                let mut text = k.summary.clone();
                for (title, lines) in [("Causes", &k.causes), ("Resolutions", &k.resolutions)] {
                    if lines.is_empty() {
                        continue;
                    }
                    text.push_str(&format!("\n{title}:"));
                    for line in lines {
                        text.push_str(&format!("\n- {line}"));
                    }
                }
                text
            });
        }
    }
    out
}

/// What the packs' commands need at every state change: the monitors some diagnostic or
/// recovery runs on, and every argument of the tasks, diagnostics and recoveries parsed (or
/// why it cannot be), by its text.
fn command_tables(catalog: &Catalog) -> CommandTables {
    let mut monitors = FastSet::default();
    let mut args = FastMap::default();
    for p in catalog.packs() {
        let pack = &p.pack;
        let tasks = pack.tasks.iter().map(|t| (None, &t.command));
        let diagnostics = pack
            .diagnostics
            .iter()
            .map(|d| (Some(&d.monitor), &d.command));
        let recoveries = pack
            .recoveries
            .iter()
            .map(|r| (Some(&r.monitor), &r.command));
        for (monitor, command) in tasks.chain(diagnostics).chain(recoveries) {
            monitors.extend(monitor.cloned());
            for arg in command {
                args.entry(arg.clone())
                    .or_insert_with(|| Template::parse(arg).map_err(|e| e.to_string()));
            }
        }
    }
    (monitors, args)
}

/// See [`command_tables`].
type CommandTables = (FastSet<String>, FastMap<String, Result<Template, String>>);

impl Engine {
    pub fn new(catalog: Catalog) -> Engine {
        let mut alert_settings = FastMap::default();
        for p in catalog.packs() {
            let pack = &p.pack;
            let ids = pack.monitors.iter().map(|m| (&m.id, &m.alert));
            let ids = ids.chain(pack.aggregates.iter().map(|a| (&a.id, &a.alert)));
            let ids = ids.chain(pack.dependencies.iter().map(|d| (&d.id, &d.alert)));
            for (id, alert) in ids {
                alert_settings
                    .entry(id.clone())
                    .or_insert_with(|| alert.clone());
            }
        }
        let (command_monitors, command_args) = command_tables(&catalog);
        Engine {
            alert_settings,
            knowledge: knowledge_texts(&catalog),
            command_monitors,
            mark_generation: None,
            command_args,
            catalog,
            instances: FastMap::default(),
            copies: Slots::default(),
            timed: BTreeSet::new(),
            rollups: PairMap::default(),
            perf_hosts: FastMap::default(),
            hosted: FastMap::default(),
            touched: BTreeSet::new(),
            touched_copies: Vec::new(),
            touched_roots: BTreeSet::new(),
            touched_rollup_roots: BTreeSet::new(),
            detections: FastMap::default(),
            rules: Slots::default(),
            touched_rules: Vec::new(),
            firings: Vec::new(),
            event_index: FastMap::default(),
            by_root: FastMap::default(),
            unit_lists: FastMap::default(),
            maintenance: BTreeMap::new(),
            unavailable: BTreeSet::new(),
            maintenance_touched: BTreeMap::new(),
            availability_touched: BTreeMap::new(),
            external: BTreeMap::new(),
            member_counts: FastMap::default(),
            hosting_counts: FastMap::default(),
            monitor_alerts: RecentPairs::new(MONITOR_ALERTS_KEPT),
            class_rollups: FastMap::default(),
            class_monitors: FastMap::default(),
            initial: Vec::new(),
            upsert_time: 0,
        }
    }

    /// What is known of a member of a container changed (`None`: it left). Returns the
    /// state changes of the container's rollups and of its hosts'. Members of containment
    /// and reference relationships are known only this way, on every host (their states
    /// come through the repartition topic keyed by the container), so a container's
    /// dependency monitors are computed in the same engine as its own unit monitors and
    /// aggregates.
    pub fn member_changed(
        &mut self,
        container: &str,
        relationship: &str,
        member: &str,
        known: Option<ExternalMember>,
        time: i64,
    ) -> Vec<StateChange> {
        let key = (relationship.to_string(), member.to_string());
        if self.external.get(container).and_then(|m| m.get(&key)) == known.as_ref() {
            return Vec::new();
        }
        let cause = match &known {
            Some(m) => {
                let states: Vec<String> =
                    m.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!("member {member}: {}", states.join(", "))
            }
            None => format!("member {member} left"),
        };
        let members = self.external.entry(container.to_string()).or_default();
        let before = match &known {
            Some(m) => members.insert(key, m.clone()),
            None => members.remove(&key),
        };
        if members.is_empty() {
            self.external.remove(container);
        }
        self.recount(container, relationship, before.as_ref(), known.as_ref());
        self.propagate(container, time, &cause)
    }

    /// Keep a container's member counts up to date with one member's change.
    fn recount(
        &mut self,
        container: &str,
        relationship: &str,
        before: Option<&ExternalMember>,
        after: Option<&ExternalMember>,
    ) {
        let Some(class) = self.instances.get(container).map(|i| i.class.clone()) else {
            self.member_counts.remove(container);
            return;
        };
        let plan = self.class_rollups(&class);
        let Some(counts) = self.member_counts.get_mut(container) else {
            return;
        };
        for (d, member_class, hosting) in &plan.deps {
            if *hosting || d.relationship != relationship {
                continue;
            }
            let Some(c) = counts.get_mut(&d.id) else {
                continue;
            };
            for (m, delta) in [(before, -1i64), (after, 1)] {
                let Some(m) = m.filter(|m| self.catalog.is_a(&m.class, member_class)) else {
                    continue;
                };
                let n = &mut c[slot(&reported(m, d), d)];
                *n = (i64::from(*n) + delta).max(0) as u32;
            }
        }
    }

    /// The members of a container's dependency monitor counted by the state each counts as.
    fn counts(&mut self, container: &str, d: &DependencyMonitor, member_class: &str) -> Counts {
        if let Some(c) = self.member_counts.get(container).and_then(|m| m.get(&d.id)) {
            return *c;
        }
        let mut c: Counts = [0; 4];
        for ((r, _), m) in self.external.get(container).into_iter().flatten() {
            if *r == d.relationship && self.catalog.is_a(&m.class, member_class) {
                c[slot(&reported(m, d), d)] += 1;
            }
        }
        self.member_counts
            .entry(container.to_string())
            .or_default()
            .insert(d.id.clone(), c);
        c
    }

    /// Forget the members of a container whose partition went elsewhere.
    pub fn forget_members(&mut self, container: &str) {
        self.external.remove(container);
        self.member_counts.remove(container);
    }

    /// Put back what was known of a member (restore, before the kept rollup states).
    pub fn restore_member(
        &mut self,
        container: &str,
        relationship: &str,
        member: &str,
        known: ExternalMember,
    ) {
        self.external
            .entry(container.to_string())
            .or_default()
            .insert((relationship.to_string(), member.to_string()), known);
        self.member_counts.remove(container);
    }

    /// Root hosts that became unavailable (`Some(since)`) or available again (`None`) since
    /// the last call.
    pub fn take_availability_changes(&mut self) -> Vec<(String, Option<i64>)> {
        std::mem::take(&mut self.availability_touched)
            .into_iter()
            .map(|(root, at)| {
                let since = self.unavailable.contains(&root).then_some(at);
                (root, since)
            })
            .collect()
    }

    /// The maintenances set or ended since the last call: (instance, its root host, what
    /// to keep; `None`: it ended).
    pub fn take_maintenance_changes(&mut self) -> Vec<(String, String, Option<Maintenance>)> {
        std::mem::take(&mut self.maintenance_touched)
            .into_iter()
            .map(|(id, root)| {
                let m = self.maintenance.get(&id).cloned();
                (id, root, m)
            })
            .collect()
    }

    /// The instances of a root host.
    fn instances_of(&self, root: &str) -> Vec<String> {
        self.by_root
            .get(root)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// What is kept and changed since the last call.
    pub fn take_kept(&mut self) -> Kept {
        // The copies a sample changed: their root host is marked with them. (The lists are
        // emptied, not dropped: a batch of a host's samples fills them again.)
        let mut touched = std::mem::take(&mut self.touched_copies);
        for h in touched.drain(..) {
            // A copy removed since is in `touched` by its key (and its place may hold
            // another copy: the handle then reads nothing).
            if let Some((_, c)) = self.copies.at_mut(h) {
                c.dirty = false;
            }
        }
        self.touched_copies = touched;
        let mut touched = std::mem::take(&mut self.touched_rules);
        for h in touched.drain(..) {
            if let Some((key, r)) = self.rules.at_mut(h) {
                if std::mem::take(&mut r.dirty) {
                    self.touched.insert((**key).clone());
                }
            }
        }
        self.touched_rules = touched;
        let mut hosts = std::mem::take(&mut self.touched_roots);
        let mut rollup_hosts = std::mem::take(&mut self.touched_rollup_roots);
        let mut monitors = Vec::new();
        for key in std::mem::take(&mut self.touched) {
            let root = self.instances.get(&key.0).map(|i| &i.root_host);
            if let Some(c) = self.copies.get_mut(&key.0, &key.1) {
                c.dirty = false;
                if let Some(root) = root {
                    mark_root(&mut hosts, root);
                }
                continue;
            }
            if self.rollups.contains(&key.0, &key.1) {
                if let Some(root) = root {
                    mark_root(&mut rollup_hosts, root);
                }
                continue;
            }
            let saved = self
                .rules
                .get(&key.0, &key.1)
                .map(|r| Saved::Rule(r.state.clone()));
            if saved.is_none() {
                // Removed from an instance still there: its host is kept again without it.
                if let Some(root) = root {
                    mark_root(&mut hosts, root);
                    mark_root(&mut rollup_hosts, root);
                }
            }
            monitors.push((key, saved));
        }
        Kept {
            hosts,
            rollup_hosts,
            monitors,
        }
    }

    /// The caller keeps the hosts [`Engine::take_kept`] gives until it writes them, in
    /// generations (from 1) that move on whenever it has written or dropped them all: a
    /// host's perf batches mark it once per generation. Set before the inputs it applies.
    pub fn set_mark_generation(&mut self, generation: u64) {
        self.mark_generation = Some(generation);
    }

    /// What is kept of the unit monitors of a root host's instances, by instance and
    /// monitor in order. Copies in their initial state are left out (a copy is made in it).
    pub fn host_units(&mut self, root: &str) -> Vec<KeptUnit<'_>> {
        let list = match self.unit_lists.get(root) {
            Some(list) => list,
            None => {
                let list: Vec<Handle> = self
                    .by_root
                    .get(root)
                    .into_iter()
                    .flatten()
                    .flat_map(|id| self.copies.handles_of(id))
                    .collect();
                self.unit_lists.entry(root.to_string()).or_insert(list)
            }
        };
        let mut out = Vec::with_capacity(list.len());
        for h in list {
            let Some((key, c)) = self.copies.at(*h) else {
                continue;
            };
            if c.held.is_empty() && c.detector.is_initial() {
                continue;
            }
            out.push(KeptUnit {
                instance: &key.0,
                monitor: &key.1,
                health: c.detector.health,
                memory: &c.detector.memory,
                held: &c.held,
            });
        }
        out
    }

    /// The states of the rollup monitors of a root host's instances, by instance and
    /// monitor in order.
    pub fn host_rollups(&self, root: &str) -> Vec<KeptRollup<'_>> {
        let mut out = Vec::new();
        for id in self.by_root.get(root).into_iter().flatten() {
            out.extend(self.rollups.of(id).map(|(monitor, health)| KeptRollup {
                instance: id,
                monitor,
                health: *health,
            }));
        }
        out
    }

    /// Put back what was kept of a monitor (after its instance is back with [`Engine::upsert`]).
    pub fn restore(&mut self, instance: &str, monitor: &str, saved: Saved) {
        self.hosting_counts.clear();
        match saved {
            Saved::Unit {
                health,
                memory,
                held,
            } => {
                if let Some(c) = self.copies.get_mut(instance, monitor) {
                    c.detector.health = health;
                    c.detector.memory = memory;
                    c.held = held;
                }
            }
            Saved::Rollup(h) => {
                self.rollups.insert(instance, monitor, h);
            }
            Saved::Rule(state) => {
                if let Some(r) = self.rules.get_mut(instance, monitor) {
                    r.state = state;
                }
            }
        }
    }

    /// The alert settings of a monitor of an instance, overrides applied and `$Target`
    /// references resolved; `None` when it raises no alert.
    pub fn monitor_alert(
        &mut self,
        instance: &str,
        monitor: &str,
    ) -> Option<Arc<crate::alerts::MonitorAlert>> {
        // Most state changes are of monitors without alerts.
        if !matches!(self.alert_settings.get(monitor), Some(Some(_))) {
            return None;
        }
        if let Some(resolved) = self.monitor_alerts.get(instance, monitor) {
            return resolved;
        }
        let resolved = self.resolve_monitor_alert(instance, monitor).map(Arc::new);
        self.monitor_alerts
            .insert(instance, monitor, resolved.clone());
        resolved
    }

    fn resolve_monitor_alert(
        &self,
        instance: &str,
        monitor: &str,
    ) -> Option<crate::alerts::MonitorAlert> {
        let settings = self.alert_settings.get(monitor)?.as_ref()?;
        let ctx = self.context(instance)?;
        let param = |name: &str, default: ParamValue| {
            resolve_from(&self.catalog, monitor, name, default, &ctx).value
        };
        if matches!(
            param("generate_alert", ParamValue::Bool(settings.generate)),
            ParamValue::Bool(false)
        ) {
            return None;
        }
        let text = |v: ParamValue| match v {
            ParamValue::Text(t) => t,
            other => other.to_string(),
        };
        let on = match text(param("alert_on", ParamValue::Text(settings.on.to_string()))).as_str() {
            "warning" => Health::Warning,
            _ => Health::Critical,
        };
        let auto_resolve = !matches!(
            param("auto_resolve", ParamValue::Bool(settings.auto_resolve)),
            ParamValue::Bool(false)
        );
        let default_severity = settings
            .severity
            .map(|s| format!("{s:?}").to_lowercase())
            .unwrap_or_else(|| "match_state".into());
        let severity = match text(param("severity", ParamValue::Text(default_severity))).as_str() {
            "information" => Some(healthstream_model::pack::Severity::Information),
            "warning" => Some(healthstream_model::pack::Severity::Warning),
            "critical" => Some(healthstream_model::pack::Severity::Critical),
            _ => None,
        };
        let priority = match text(param(
            "priority",
            ParamValue::Text(format!("{:?}", settings.priority).to_lowercase()),
        ))
        .as_str()
        {
            "low" => healthstream_model::pack::Priority::Low,
            "high" => healthstream_model::pack::Priority::High,
            _ => healthstream_model::pack::Priority::Normal,
        };
        let chain = self.chain(instance);
        let fill = |t: &str| match Template::parse(t) {
            Ok(tpl) => tpl
                .resolve_target(&Ctx(chain.clone()))
                .unwrap_or_else(|_| t.to_string()),
            Err(_) => t.to_string(),
        };
        Some(crate::alerts::MonitorAlert {
            on,
            auto_resolve,
            severity,
            priority,
            name: fill(&settings.name),
            description: fill(&settings.description),
        })
    }

    /// Rule alerts to raise since the last call.
    pub fn take_firings(&mut self) -> Vec<crate::rules::Firing> {
        std::mem::take(&mut self.firings)
    }

    /// Build the rule copies of an instance (rules with an alert action).
    fn rebuild_rules(&mut self, id: &str, ctx: &InstanceContext) {
        use healthstream_model::pack::Action;
        let Some(inst) = self.instances.get(id).cloned() else {
            return;
        };
        let mut keep = BTreeSet::new();
        if inst.managed {
            let rules: Vec<_> = self
                .catalog
                .packs()
                .iter()
                .flat_map(|p| p.pack.rules.iter())
                .filter(|r| self.catalog.is_a(&inst.class, &r.target))
                .cloned()
                .collect();
            let chain = self.chain(id);
            let fill = |t: &str| match Template::parse(t) {
                Ok(tpl) => tpl
                    .resolve_target(&Ctx(chain.clone()))
                    .unwrap_or_else(|_| t.to_string()),
                Err(_) => t.to_string(),
            };
            let mut built = Vec::new();
            for r in rules {
                let enabled = !matches!(
                    resolve_from(
                        &self.catalog,
                        &r.id,
                        "enabled",
                        ParamValue::Bool(r.enabled),
                        ctx
                    )
                    .value,
                    ParamValue::Bool(false)
                );
                if !enabled {
                    continue;
                }
                let Some(Action::Alert {
                    name,
                    description,
                    severity,
                    priority,
                    suppression,
                }) = r
                    .actions
                    .iter()
                    .find(|a| matches!(a, Action::Alert { .. }))
                    .cloned()
                else {
                    continue;
                };
                let with_data = |t: &str| Template::parse(t).ok().filter(Template::uses_data);
                let (name, description) = (fill(&name), fill(&description));
                let alert = crate::rules::AlertAction {
                    name_data: with_data(&name),
                    description_data: with_data(&description),
                    name,
                    description,
                    severity,
                    priority,
                    suppression: suppression
                        .iter()
                        .filter_map(|s| healthstream_model::expr::Path::parse(s).ok())
                        .collect(),
                };
                // A rule on every instance whose first filter names one is indexed by it.
                let filtered_instance = match required(
                    first_filter(&r.conditions).unwrap_or(&Expr::And(Vec::new())),
                    "Instance",
                ) {
                    Some(Operand::Text(t)) => Some(t.clone()),
                    _ => None,
                };
                let perf_key = match &r.source {
                    DataSource::Perf {
                        object,
                        counter,
                        instance,
                        ..
                    } => Some((
                        object.clone(),
                        counter.clone(),
                        instance
                            .as_deref()
                            .filter(|i| *i != "*")
                            .map(fill)
                            .or(filtered_instance)
                            .unwrap_or_else(|| "*".into()),
                    )),
                    _ => None,
                };
                let event_id = match &r.source {
                    DataSource::Event { filter, .. } => required_event_id(filter.as_ref())
                        .or_else(|| required_event_id(first_filter(&r.conditions))),
                    _ => None,
                };
                let channel = match &r.source {
                    DataSource::Event { log, .. } => Some(log.clone()),
                    DataSource::LogFile { path, .. } => Some(fill(path)),
                    _ => None,
                };
                built.push((
                    r.id.clone(),
                    perf_key,
                    channel.map(|c| (c, event_id)),
                    crate::rules::RuleCopy {
                        rule: r.id.clone(),
                        source: r.source.clone(),
                        conditions: r.conditions.clone(),
                        alert,
                        state: Default::default(),
                        dirty: false,
                    },
                ));
            }
            // (Its old copies left the rule index with `unindex`.)
            for (rid, perf_key, channel, copy) in built {
                let key = (id.to_string(), rid.clone());
                if let Some((ch, event_id)) = channel {
                    self.event_index
                        .entry(inst.root_host.clone())
                        .or_default()
                        .entry(ch)
                        .or_default()
                        .add(event_id, key.clone());
                }
                keep.insert(rid);
                let (handle, replaced) = self.rules.insert(&key.0, &key.1, copy);
                // The copy it replaces hands on its state, and a change not yet taken stays
                // to be taken (the handle is the same).
                if let (Some(old), Some((_, r))) = (replaced, self.rules.at_mut(handle)) {
                    r.state = old.state;
                    r.dirty = old.dirty;
                }
                if let Some((object, counter, instance)) = perf_key {
                    let mut k = String::new();
                    counter_key(&mut k, &object, &counter);
                    self.perf_hosts
                        .entry(inst.root_host.clone())
                        .or_default()
                        .rules
                        .entry(k)
                        .or_default()
                        .list(&instance)
                        .push(handle);
                }
            }
        }
        for key in self.rules.keys_of(id) {
            if !keep.contains(&key.1) {
                self.rules.remove(&key.0, &key.1);
            }
        }
    }

    /// Feed an item to the rule copies that read this kind of source.
    fn feed_rules(
        &mut self,
        rules: &[Handle],
        item: &dyn healthstream_model::expr::Subject,
        value: Option<f64>,
        at: i64,
    ) {
        for h in rules {
            let Some((key, r)) = self.rules.at_mut(*h) else {
                continue;
            };
            if !r.dirty {
                r.dirty = true;
                self.touched_rules.push(*h);
            }
            if let Some(alert) = r.item(item, value, at) {
                self.firings.push(crate::rules::Firing {
                    rule: key.1.clone(),
                    instance: key.0.clone(),
                    alert,
                    time: at,
                });
            }
        }
    }

    /// Whether some pack's diagnostics or recoveries run on `monitor`'s states.
    pub(crate) fn runs_commands(&self, monitor: &str) -> bool {
        self.command_monitors.contains(monitor)
    }

    /// The knowledge of a monitor or rule, as text shown with its alerts.
    pub fn knowledge(&self, workflow: &str) -> String {
        self.knowledge.get(workflow).cloned().unwrap_or_default()
    }

    /// Every instance, in no particular order.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// An instance.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.get(id)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn instance_context(&self, id: &str) -> Option<InstanceContext> {
        self.context(id)
    }

    /// An argument of a pack's command, parsed when the packs were read (one from
    /// elsewhere is parsed now).
    pub(crate) fn command_arg(&self, arg: &str) -> Result<std::borrow::Cow<'_, Template>, String> {
        match self.command_args.get(arg) {
            Some(Ok(t)) => Ok(std::borrow::Cow::Borrowed(t)),
            Some(Err(e)) => Err(e.clone()),
            None => Template::parse(arg)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| e.to_string()),
        }
    }

    /// What `$Target/...$` references of an instance resolve against.
    pub(crate) fn target_context(&self, id: &str) -> impl TargetContext + '_ {
        Ctx(self.chain(id))
    }

    /// The monitors that containment and reference rollups read of their members.
    pub fn member_monitors(&self) -> BTreeSet<String> {
        self.catalog
            .packs()
            .iter()
            .flat_map(|p| p.pack.dependencies.iter())
            .filter(|d| {
                self.catalog
                    .relationship(&d.relationship)
                    .is_some_and(|r| r.kind != RelationshipKind::Hosting)
            })
            .map(|d| d.member_monitor.clone())
            .collect()
    }

    /// The state of a monitor of an instance.
    pub fn state(&self, instance: &str, monitor: &str) -> Health {
        self.copies
            .get(instance, monitor)
            .map(|c| c.detector.health)
            .or_else(|| self.rollups.get(instance, monitor).copied())
            .unwrap_or(Health::Uninitialized)
    }

    /// Forgets the resolved alert settings of an instance and of everything it hosts, down
    /// the hosting tree: what they were resolved from changes with it.
    fn forget_alert_settings(&mut self, id: &str) {
        let mut todo = vec![id.to_string()];
        let mut seen = FastSet::default();
        while let Some(i) = todo.pop() {
            if let Some(hosted) = self.hosted.get(&i) {
                todo.extend(hosted.iter().filter(|h| !seen.contains(*h)).cloned());
            }
            self.monitor_alerts.forget(&i);
            seen.insert(i);
        }
    }

    fn chain(&self, id: &str) -> Vec<&Instance> {
        let mut out = Vec::new();
        let mut cur = self.instances.get(id);
        while let Some(i) = cur {
            if out.len() > 32 {
                break;
            }
            out.push(i);
            cur = i.host_id.as_ref().and_then(|h| self.instances.get(h));
        }
        out
    }

    fn context(&self, id: &str) -> Option<InstanceContext> {
        let chain = self.chain(id);
        let me = chain.first()?;
        let mut groups: Vec<(String, usize)> = Vec::new();
        for (hops, i) in chain.iter().enumerate() {
            groups.extend(i.groups.iter().map(|g| (g.clone(), hops)));
        }
        Some(InstanceContext {
            id: me.id.clone(),
            class: me.class.clone(),
            hosts: chain
                .iter()
                .skip(1)
                .map(|h| (h.id.clone(), h.class.clone()))
                .collect(),
            groups,
        })
    }

    /// Add or update an instance; its monitor copies are (re)built with overrides and
    /// `$Target` resolved. Returns the state changes of the rebuild (a copy that goes away, or
    /// a rollup that changes because of it).
    pub fn upsert(&mut self, instance: Instance, time: i64) -> Vec<StateChange> {
        self.hosting_counts.clear();
        self.forget_alert_settings(&instance.id);
        let id = instance.id.clone();
        // Its class may change what its dependency monitors count.
        self.member_counts.remove(&id);
        // (The list of its root host's unit copies is made again by `rebuild`.)
        if let Some(old) = self.instances.get(&id) {
            if let Some(h) = &old.host_id {
                if let Some(set) = self.hosted.get_mut(h) {
                    set.remove(&id);
                }
            }
            if let Some(set) = self.by_root.get_mut(&old.root_host) {
                set.remove(&id);
            }
            if old.root_host != instance.root_host {
                let root = old.root_host.clone();
                self.unit_lists.remove(&root);
                self.unindex(&id, &root);
                // Its copies' and rollups' kept states move to the other root host.
                mark_root(&mut self.touched_roots, &root);
                mark_root(&mut self.touched_roots, &instance.root_host);
                mark_root(&mut self.touched_rollup_roots, &root);
                mark_root(&mut self.touched_rollup_roots, &instance.root_host);
            }
        }
        self.by_root
            .entry(instance.root_host.clone())
            .or_default()
            .insert(id.clone());
        if let Some(h) = &instance.host_id {
            self.hosted.entry(h.clone()).or_default().insert(id.clone());
        }
        self.instances.insert(id.clone(), instance);
        self.upsert_time = time;
        self.rebuild(&id);
        let mut out = std::mem::take(&mut self.initial);
        out.extend(self.propagate(&id, time, "instance changed"));
        out
    }

    /// Remove an instance and its copies.
    pub fn remove(&mut self, id: &str, time: i64) -> Vec<StateChange> {
        self.hosting_counts.clear();
        self.forget_alert_settings(id);
        let Some(old) = self.instances.remove(id) else {
            return Vec::new();
        };
        self.unit_lists.remove(&old.root_host);
        if let Some(set) = self.by_root.get_mut(&old.root_host) {
            set.remove(id);
            if set.is_empty() {
                self.by_root.remove(&old.root_host);
            }
        }
        if self.maintenance.remove(id).is_some() {
            self.maintenance_touched
                .insert(id.to_string(), old.root_host.clone());
        }

        self.unindex(id, &old.root_host);
        for key in self.copies.keys_of(id) {
            self.copies.remove(&key.0, &key.1);
            self.timed.remove(&key);
            self.touched.insert(key);
            mark_root(&mut self.touched_roots, &old.root_host);
        }
        for key in self.rollups.keys_of(id) {
            self.rollups.remove(&key.0, &key.1);
            self.touched.insert(key);
            mark_root(&mut self.touched_rollup_roots, &old.root_host);
        }
        for key in self.rules.keys_of(id) {
            self.rules.remove(&key.0, &key.1);
            self.touched.insert(key);
        }
        // What its members reported stays: they say when they leave (a container that comes
        // back finds them).
        self.member_counts.remove(id);
        if let Some(h) = &old.host_id {
            if let Some(set) = self.hosted.get_mut(h) {
                set.remove(id);
            }
            return self.propagate(h, time, &format!("instance {id} removed"));
        }
        Vec::new()
    }

    /// Take an instance's copies out of the indexes of its root host.
    fn unindex(&mut self, id: &str, root: &str) {
        if let Some(host) = self.perf_hosts.get_mut(root) {
            host.layout = Layout::default();
            let copies = &self.copies;
            for counter in host.monitors.values_mut() {
                counter.retain(|h| copies.at(*h).is_some_and(|(k, _)| k.0 != id));
            }
            let rules = &self.rules;
            for counter in host.rules.values_mut() {
                counter.retain(|h| rules.at(*h).is_some_and(|(k, _)| k.0 != id));
            }
        }
        if let Some(m) = self.event_index.get_mut(root) {
            for idx in m.values_mut() {
                idx.remove_instance(id);
            }
        }
    }

    fn rebuild(&mut self, id: &str) {
        let Some(inst) = self.instances.get(id).cloned() else {
            return;
        };
        self.unit_lists.remove(&inst.root_host);
        self.unindex(id, &inst.root_host);
        let Some(ctx) = self.context(id) else { return };
        self.rebuild_rules(id, &ctx);
        let mut keep = BTreeSet::new();
        if inst.managed {
            let plans = self.class_monitors(&inst.class);
            let rollups = self.class_rollups(&inst.class);
            for plan in plans.iter() {
                let m = &plan.monitor;
                let Some((enabled, detect, source)) = self.resolve_copy(plan, &ctx) else {
                    continue;
                };
                if !enabled {
                    continue;
                }
                let Some(detection) = shared_detection(&mut self.detections, &m.id, detect) else {
                    continue;
                };
                let key = (id.to_string(), m.id.clone());
                keep.insert(m.id.clone());
                let (fresh, held) = match self.copies.get(id, &m.id) {
                    Some(c) if c.detector.detection == detection => {
                        (c.detector.clone(), c.held.clone())
                    }
                    old => {
                        if old.is_some() {
                            // What was kept of the copy goes with its old configuration.
                            mark_root(&mut self.touched_roots, &inst.root_host);
                        }
                        let d = Detector::new(detection);
                        // Event-driven types start healthy: say so, as the other types do
                        // with their first sample.
                        let before = old.map_or(Health::Uninitialized, |c| c.detector.health);
                        if d.health != before {
                            self.initial.push(StateChange {
                                instance_id: id.to_string(),
                                monitor_id: m.id.clone(),
                                old: before,
                                new: d.health,
                                time: self.upsert_time,
                                kind: CauseKind::Rollup,
                                cause: "monitor created".into(),
                            });
                        }
                        (d, Vec::new())
                    }
                };
                let (channel, filter) = match &source {
                    DataSource::Event { log, filter } => (Some(log.clone()), filter.clone()),
                    DataSource::LogFile { path, .. } => (Some(path.clone()), None),
                    _ => (None, None),
                };
                if let Some(ch) = &channel {
                    self.event_index
                        .entry(inst.root_host.clone())
                        .or_default()
                        .entry(ch.clone())
                        .or_default()
                        .add(required_event_id(filter.as_ref()), key.clone());
                }
                if matches!(
                    *fresh.detection,
                    Detection::TimerReset { .. } | Detection::Heartbeat { .. }
                ) {
                    self.timed.insert(key.clone());
                } else {
                    self.timed.remove(&key);
                }
                let (handle, replaced) = self.copies.insert(
                    id,
                    &m.id,
                    Copy {
                        detector: fresh,
                        parent: rollups
                            .aggs
                            .iter()
                            .position(|(a, _)| a.id == m.parent)
                            .and_then(|place| u16::try_from(place).ok()),
                        filter: filter.map(Box::new),
                        held,
                        dirty: false,
                    },
                );
                // A change not yet taken stays to be taken (the handle is the same).
                if replaced.is_some_and(|old| old.dirty) {
                    if let Some((_, c)) = self.copies.at_mut(handle) {
                        c.dirty = true;
                    }
                }
                let mut counters = Vec::new();
                match &source {
                    DataSource::Perf {
                        object,
                        counter,
                        instance,
                        ..
                    } => counters.push((
                        object.as_str(),
                        counter.as_str(),
                        instance.as_deref().unwrap_or("*"),
                    )),
                    DataSource::Service { service, .. } => {
                        for counter in ["Running", "Automatic"] {
                            counters.push(("Service", counter, service.as_str()));
                        }
                    }
                    _ => {}
                }
                if !counters.is_empty() {
                    let host = self.perf_hosts.entry(inst.root_host.clone()).or_default();
                    host.layout = Layout::default();
                    for (object, counter, instance) in counters {
                        let mut k = String::new();
                        counter_key(&mut k, object, counter);
                        let list = host.monitors.entry(k).or_default().list(instance);
                        index_in_order(list, handle, &self.copies);
                    }
                }
            }
        }
        for key in self.copies.keys_of(id) {
            if !keep.contains(&key.1) {
                self.copies.remove(&key.0, &key.1);
                self.timed.remove(&key);
                self.touched.insert(key);
                mark_root(&mut self.touched_roots, &inst.root_host);
            }
        }
    }

    /// The unit monitors targeting a class (its base classes' included), worked out once per
    /// class.
    fn class_monitors(&mut self, class: &str) -> Arc<[MonitorPlan]> {
        if let Some(p) = self.class_monitors.get(class) {
            return p.clone();
        }
        let cat = &self.catalog;
        let plans: Arc<[MonitorPlan]> = cat
            .packs()
            .iter()
            .flat_map(|p| p.pack.monitors.iter())
            .filter(|m| cat.is_a(class, &m.target))
            .filter_map(|m| MonitorPlan::new(cat, m))
            .collect();
        self.class_monitors.insert(class.to_string(), plans.clone());
        plans
    }

    /// A copy's enabled flag, detection and data source, overrides applied, `$Target` resolved.
    fn resolve_copy(
        &self,
        plan: &MonitorPlan,
        ctx: &InstanceContext,
    ) -> Option<(bool, toml::Table, DataSource)> {
        let m = &plan.monitor;
        if let Some(source) = &plan.plain_source {
            return Some((m.enabled, plan.detect.clone(), source.clone()));
        }
        let mut enabled = m.enabled;
        let mut detect = plan.detect.clone();
        let mut source = plan.source.clone();
        for p in &plan.overridden {
            let p = p.as_str();
            if p == "enabled" {
                let r = resolve_from(&self.catalog, &m.id, p, ParamValue::Bool(m.enabled), ctx);
                enabled = !matches!(r.value, ParamValue::Bool(false));
            } else if p != "type" && (detect.contains_key(p) || source.contains_key(p)) {
                let table = if detect.contains_key(p) {
                    &mut detect
                } else {
                    &mut source
                };
                let default = table
                    .get(p)
                    .cloned()
                    .map(ParamValue::from)
                    .unwrap_or(ParamValue::Bool(false));
                let r = resolve_from(&self.catalog, &m.id, p, default, ctx);
                if !r.candidates.is_empty() {
                    table.insert(p.to_string(), to_toml(&r.value));
                }
            }
        }
        let chain = self.chain(&ctx.id);
        let overridden = |k: &str| plan.overridden.iter().any(|p| p == k);
        for (k, t) in &plan.templates {
            if !overridden(k) {
                let resolved = t.resolve_target(&Ctx(chain.clone())).ok()?;
                source.insert(k.clone(), toml::Value::String(resolved));
            }
        }
        // An overridden value may name `$Target` too.
        for k in &plan.overridden {
            let Some(toml::Value::String(text)) = source.get(k) else {
                continue;
            };
            if let Ok(t) = Template::parse(text) {
                if t.target_refs().next().is_some() {
                    let resolved = t.resolve_target(&Ctx(chain.clone())).ok()?;
                    source.insert(k.clone(), toml::Value::String(resolved));
                }
            }
        }
        let source: DataSource = toml::Value::Table(source).try_into().ok()?;
        Some((enabled, detect, source))
    }

    /// Perf samples of one root host, dispatched to the copies of that host's instances that
    /// read them. Service samples (`Service/Running|Automatic/<unit>`) feed basic service
    /// monitors.
    pub fn perf(&mut self, root: &str, samples: &[Sample<'_>]) -> Vec<StateChange> {
        self.perf_each(root, samples.iter().copied())
    }

    /// [`Engine::perf`] over samples as they are read (a batch read in place need not be
    /// copied into a list first).
    pub fn perf_each<'s>(
        &mut self,
        root: &str,
        samples: impl IntoIterator<Item = Sample<'s>>,
    ) -> Vec<StateChange> {
        let mut out = Vec::new();
        // The instances whose unit monitors changed (with the time and cause of the
        // change), their rollups recomputed once when the batch is through.
        let mut changed: Vec<(String, i64, String)> = Vec::new();
        let mut rule_targets: Vec<Handle> = Vec::new();
        let mut found: Vec<Handle> = Vec::new();
        // The root host's indexes and last layout, taken out for the batch (the copies
        // change, not the indexes) and put back after.
        let Some(PerfHost {
            monitors,
            rules,
            mut layout,
        }) = self.perf_hosts.get_mut(root).map(std::mem::take)
        else {
            return out;
        };
        let mut rule_counters = CounterCursor::new((!rules.is_empty()).then_some(&rules));
        let mut monitor_counters = CounterCursor::new(Some(&monitors));
        // The copies the host's last batch reached (most likely this one's): read all at
        // once first, their detectors and windows come into cache together rather than
        // one cache miss after the other as the samples reach them.
        std::hint::black_box(
            self.copies
                .touch(&layout.targets, |c| c.detector.memory.probe()),
        );
        let mut place = 0;
        // Whether a copy of the host changed what is kept of it.
        let mut changed_copies = false;
        for sample in samples {
            let s = &sample;
            if let Some(counter) = rule_counters.get(s) {
                if counter.targets(s.instance, &mut rule_targets) {
                    let rules = &self.rules;
                    rule_targets.sort_by_cached_key(|h| rules.at(*h).map(|(k, _)| k.clone()));
                }
                if !self.maintenance.is_empty() {
                    let rules = &self.rules;
                    rule_targets.retain(|h| {
                        rules
                            .at(*h)
                            .is_some_and(|(k, _)| self.in_maintenance(&k.0).is_none())
                    });
                }
                if !rule_targets.is_empty() {
                    let fields = [
                        ("Object", Value::text(s.object)),
                        ("Counter", Value::text(s.counter)),
                        ("Instance", Value::text(s.instance)),
                        ("Value", Value::Number(s.value)),
                    ];
                    self.feed_rules(&rule_targets, &Fields(&fields), Some(s.value), s.time);
                }
            }
            if monitors.is_empty() {
                continue;
            }
            // The copies of this place of the batch: as in the host's last batch when the
            // sample there had the same names, else looked up (and kept for the next;
            // the places after a changed one are looked up again too).
            let targets = match layout.known(place, s) {
                Some(range) => range,
                None => {
                    layout.truncate(place);
                    let start = layout.targets.len();
                    if let Some(counter) = monitor_counters.get(s) {
                        if counter.targets(s.instance, &mut found) {
                            let copies = &self.copies;
                            found.sort_by_cached_key(|h| copies.at(*h).map(|(k, _)| k.clone()));
                        }
                        layout.targets.extend_from_slice(&found);
                    }
                    layout.push(s);
                    start..layout.targets.len()
                }
            };
            place += 1;
            if targets.is_empty() {
                continue;
            }
            let targets = &layout.targets[targets];
            let reading = if s.object == "Service" {
                let on = s.value >= 0.5;
                Held::Service(if s.counter == "Running" {
                    ServiceReading::Running(on)
                } else {
                    ServiceReading::Automatic(on)
                })
            } else {
                Held::Value(s.value)
            };
            for &h in targets {
                let held = !self.maintenance.is_empty()
                    && self
                        .copies
                        .at(h)
                        .is_some_and(|(k, _)| self.in_maintenance(&k.0).is_some());
                let Some((key, copy)) = self.copies.at_mut(h) else {
                    continue;
                };
                if held {
                    // Only the latest reading of each kind matters on exit.
                    copy.held.retain(|x| !same_kind(x, &reading));
                    copy.held.push(reading);
                    if !copy.dirty {
                        copy.dirty = true;
                        self.touched_copies.push(h);
                        changed_copies = true;
                    }
                    continue;
                }
                let before = copy.detector.health;
                // What is kept of the copy is written again only when it changed: a
                // threshold whose state stays the same keeps nothing new. (A window of
                // samples changes with every sample.)
                let memory_before = match &copy.detector.memory {
                    crate::detect::Memory::Window(_) => None,
                    m => Some(m.clone()),
                };
                let decided = match reading {
                    Held::Service(r) => copy.detector.service(r),
                    Held::Value(v) => copy.detector.sample(v),
                };
                if !copy.dirty
                    && (copy.detector.health != before
                        || memory_before.as_ref() != Some(&copy.detector.memory))
                {
                    copy.dirty = true;
                    self.touched_copies.push(h);
                    changed_copies = true;
                }
                if let Some(after) = decided {
                    if after != before {
                        let key = key.clone();
                        let (i, m) = &*key;
                        // Made with room for its value: `format!` grows its string a few
                        // times on the way (a state change per crossing value).
                        let mut cause = String::with_capacity(
                            s.object.len() + s.counter.len() + s.instance.len() + 32,
                        );
                        let _ = write!(
                            cause,
                            "{}/{}/{} = {}",
                            s.object, s.counter, s.instance, s.value
                        );
                        let mut why = String::with_capacity(m.len() + 2 + cause.len());
                        why.push_str(m);
                        why.push_str(": ");
                        why.push_str(&cause);
                        changed.push((i.clone(), s.time, why));
                        out.push(StateChange {
                            instance_id: i.clone(),
                            monitor_id: m.clone(),
                            old: before,
                            new: after,
                            time: s.time,
                            kind: CauseKind::Sample,
                            cause,
                        });
                    }
                }
            }
        }
        if changed_copies && self.mark_generation != Some(layout.marked) {
            mark_root(&mut self.touched_roots, root);
            layout.marked = self.mark_generation.unwrap_or(0);
        }
        out.extend(self.propagate_kind(&changed, CauseKind::Rollup));
        if let Some(host) = self.perf_hosts.get_mut(root) {
            *host = PerfHost {
                monitors,
                rules,
                layout,
            };
        }
        out
    }

    /// An event of one root host, dispatched through the index by (root host, channel) to
    /// the monitor and rule copies that read that channel; each source's own filter is
    /// applied before the copy sees it. Copies in maintenance do not see it.
    pub fn event(
        &mut self,
        root: &str,
        fields: &[(&str, Value<'_>)],
        time: i64,
    ) -> Vec<StateChange> {
        let channel = fields
            .iter()
            .find(|(k, _)| *k == "Channel")
            .and_then(|(_, v)| match v {
                Value::Text(t) => Some(t.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let event_id = fields
            .iter()
            .find(|(k, _)| *k == "EventId")
            .and_then(|(_, v)| match v {
                Value::Number(n) if n.fract() == 0.0 => Some(*n as i64),
                _ => None,
            });
        let Some(keys) = self
            .event_index
            .get(root)
            .and_then(|m| m.get(&channel))
            .map(|idx| idx.candidates(event_id))
        else {
            return Vec::new();
        };
        let item = Fields(fields);
        let mut rule_keys = Vec::new();
        let mut monitor_keys = Vec::new();
        for key in keys {
            if self.in_maintenance(&key.0).is_some() {
                continue;
            }
            if let Some(h) = self.rules.handle(&key.0, &key.1) {
                let passes = self.rules.at(h).is_some_and(|(_, r)| match &r.source {
                    DataSource::Event {
                        filter: Some(f), ..
                    } => f.eval(&item),
                    _ => true,
                });
                if passes {
                    rule_keys.push(h);
                }
            } else if let Some(c) = self.copies.get(&key.0, &key.1) {
                if c.filter.as_ref().is_none_or(|f| f.eval(&item)) {
                    monitor_keys.push(key);
                }
            }
        }
        if !rule_keys.is_empty() {
            self.feed_rules(&rule_keys, &item, None, time);
        }
        let mut out = Vec::new();
        let mut changed: Vec<(String, i64, String)> = Vec::new();
        for key in monitor_keys {
            let Some(copy) = self.copies.get_mut(&key.0, &key.1) else {
                continue;
            };
            let before = copy.detector.health;
            if let Some(after) = copy.detector.item(&item, time) {
                self.touched.insert(key.clone());
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time,
                        kind: CauseKind::Event,
                        cause: event_summary(fields),
                    });
                    changed.push((key.0.clone(), time, format!("{}: event", key.1)));
                }
            }
        }
        out.extend(self.propagate_kind(&changed, CauseKind::Rollup));
        out
    }

    /// The root hosts whose monitors [`Engine::tick`] at `now` may change (a maintenance
    /// ending, a timer or a heartbeat monitor due), without changing anything.
    pub fn tick_roots(&self, now: i64) -> BTreeSet<String> {
        let root_of = |id: &str| self.instances.get(id).map(|i| i.root_host.clone());
        let mut roots: BTreeSet<String> = self
            .maintenance
            .iter()
            .filter(|(_, m)| m.until.is_some_and(|u| u <= now))
            .filter_map(|(id, _)| root_of(id))
            .collect();
        for key in &self.timed {
            let due = self
                .copies
                .get(&key.0, &key.1)
                .is_some_and(|c| c.detector.tick_target(now).is_some());
            if due {
                roots.extend(root_of(&key.0));
            }
        }
        roots
    }

    /// Time passed: maintenance windows that end, timer resets and missed heartbeats.
    pub fn tick(&mut self, now: i64) -> Vec<StateChange> {
        let mut out = Vec::new();
        let ending: Vec<String> = self
            .maintenance
            .iter()
            .filter(|(_, m)| m.until.is_some_and(|u| u <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ending {
            out.extend(self.end_maintenance(&id, now).unwrap_or_default());
        }
        // The copies due now (most are not: only those are copied out to be changed).
        let keys: Vec<(String, String)> = self
            .timed
            .iter()
            .filter(|(i, m)| {
                self.copies
                    .get(i, m)
                    .is_some_and(|c| c.detector.tick_target(now).is_some())
            })
            .cloned()
            .collect();
        let mut heartbeat_roots = BTreeSet::new();
        // The instances whose monitors the time changed: their rollups move once, after
        // all of them (two timers of one host due in one tick change its health once).
        let mut changed: Vec<(String, i64, String)> = Vec::new();
        for key in keys {
            if !self.maintenance.is_empty() && self.in_maintenance(&key.0).is_some() {
                continue;
            }
            let Some(copy) = self.copies.get_mut(&key.0, &key.1) else {
                continue;
            };
            let before = copy.detector.health;
            let is_heartbeat = matches!(*copy.detector.detection, Detection::Heartbeat { .. });
            if let Some(after) = copy.detector.tick(now) {
                self.touched.insert(key.clone());
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time: now,
                        kind: CauseKind::Time,
                        cause: if is_heartbeat {
                            "heartbeats missed".into()
                        } else {
                            "timer reset".into()
                        },
                    });
                    changed.push((key.0.clone(), now, format!("{}: time", key.1)));
                    if is_heartbeat {
                        if let Some(root) = self.instances.get(&key.0).map(|i| i.root_host.clone())
                        {
                            heartbeat_roots.insert(root);
                        }
                    }
                }
            }
        }
        out.extend(self.propagate_kind(&changed, CauseKind::Rollup));
        for root in heartbeat_roots {
            out.extend(self.refresh_availability(&root, now));
        }
        out
    }

    /// A heartbeat for the collector instances of a root host.
    pub fn heartbeat(&mut self, root: &str, at: i64, interval_seconds: i32) -> Vec<StateChange> {
        let collector_instances = self.instances_of(root);
        let mut out = Vec::new();
        let keys: Vec<(String, String)> = collector_instances
            .iter()
            .flat_map(|i| {
                self.copies
                    .of(i)
                    .filter(|(_, c)| matches!(*c.detector.detection, Detection::Heartbeat { .. }))
                    .map(|(m, _)| (i.clone(), m.to_string()))
            })
            .collect();
        let mut changed = Vec::new();
        for key in keys {
            if self.in_maintenance(&key.0).is_some() {
                continue;
            }
            let Some(copy) = self.copies.get_mut(&key.0, &key.1) else {
                continue;
            };
            self.touched.insert(key.clone());
            let before = copy.detector.health;
            if let Some(after) = copy.detector.heartbeat(at, interval_seconds) {
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time: at,
                        kind: CauseKind::Heartbeat,
                        cause: "heartbeat received".into(),
                    });
                    changed.push((key.0, at, format!("{}: heartbeat", key.1)));
                }
            }
        }
        // Available again first, so the rollups see the members as they now are; then the
        // rollups above every monitor the heartbeat changed, once.
        out.extend(self.refresh_availability(root, at));
        out.extend(self.propagate_kind(&changed, CauseKind::Rollup));
        out
    }

    /// An operator reset of a unit monitor: back to healthy.
    pub fn reset(
        &mut self,
        instance: &str,
        monitor: &str,
        time: i64,
    ) -> Result<Vec<StateChange>, String> {
        self.operate(instance, monitor, time, true)
    }

    /// An operator asks a unit monitor to recalculate from what it keeps (window and service
    /// types; the others keep their state).
    pub fn recalculate(
        &mut self,
        instance: &str,
        monitor: &str,
        time: i64,
    ) -> Result<Vec<StateChange>, String> {
        self.operate(instance, monitor, time, false)
    }

    fn operate(
        &mut self,
        instance: &str,
        monitor: &str,
        time: i64,
        reset: bool,
    ) -> Result<Vec<StateChange>, String> {
        if !self.instances.contains_key(instance) {
            return Err(format!("unknown instance {instance}"));
        }
        if let Some((covering, _)) = self.in_maintenance(instance) {
            return Err(format!(
                "instance {instance} is in maintenance (set on {covering}): its monitors are stopped"
            ));
        }
        let key = (instance.to_string(), monitor.to_string());
        let Some(copy) = self.copies.get_mut(instance, monitor) else {
            return Err(if self.rollups.contains(instance, monitor) {
                format!("{monitor} is a rollup monitor: reset or recalculate its unit monitors")
            } else {
                format!("instance {instance} has no unit monitor {monitor}")
            });
        };
        self.touched.insert(key.clone());
        let before = copy.detector.health;
        let (after, what) = if reset {
            (copy.detector.reset(), "reset")
        } else {
            (copy.detector.recalculate(), "recalculated")
        };
        let mut out = Vec::new();
        if after != before {
            out.push(StateChange {
                instance_id: key.0.clone(),
                monitor_id: key.1.clone(),
                old: before,
                new: after,
                time,
                kind: CauseKind::Operator,
                cause: format!("{what} by an operator"),
            });
            out.extend(self.propagate(instance, time, &format!("{monitor}: {what}")));
        }
        Ok(out)
    }

    /// The maintenance an instance is in, its own or a host's: (the instance it was set
    /// on, the maintenance).
    pub fn in_maintenance(&self, id: &str) -> Option<(&str, &Maintenance)> {
        if self.maintenance.is_empty() {
            return None;
        }
        self.chain(id)
            .into_iter()
            .find_map(|i| self.maintenance.get_key_value(&i.id))
            .map(|(k, m)| (k.as_str(), m))
    }

    /// Every maintenance set, by the instance it was set on.
    pub fn maintenances(&self) -> impl Iterator<Item = (&String, &Maintenance)> {
        self.maintenance.iter()
    }

    /// Whether the collector of an instance's root host is missing its heartbeats.
    pub fn is_unavailable(&self, id: &str) -> bool {
        !self.unavailable.is_empty()
            && self
                .instances
                .get(id)
                .is_some_and(|i| self.unavailable.contains(&i.root_host))
    }

    /// Put an instance (and everything it hosts) in maintenance: its workflows stop, no
    /// state changes and no alerts until it ends. Returns the changes of the rollups above
    /// it (a member in maintenance counts as each dependency monitor says).
    pub fn start_maintenance(
        &mut self,
        id: &str,
        m: Maintenance,
    ) -> Result<Vec<StateChange>, String> {
        let Some(inst) = self.instances.get(id) else {
            return Err(format!("unknown instance {id}"));
        };
        let host = inst.host_id.clone();
        let root = inst.root_host.clone();
        let time = m.start;
        if m.until.is_some_and(|u| u <= m.start) {
            return Err("the maintenance would end before it starts".into());
        }
        let was = self.in_maintenance(id).is_some();
        self.maintenance.insert(id.to_string(), m);
        self.hosting_counts.clear();
        self.maintenance_touched.insert(id.to_string(), root);
        if was {
            return Ok(Vec::new());
        }
        let covered = self.covered(id);
        let mut out = self.flags(
            &covered,
            time,
            CauseKind::Maintenance,
            &format!("in maintenance (set on {id})"),
            &[],
        );
        if let Some(h) = host {
            let cause = format!("{id} entered maintenance");
            out.extend(self.propagate_kind(&[(h, time, cause)], CauseKind::Maintenance));
        }
        Ok(out)
    }

    /// An instance and what it hosts, except what is in its own maintenance.
    fn covered(&self, id: &str) -> Vec<String> {
        let mut covered = Vec::new();
        let mut stack = vec![id.to_string()];
        while let Some(i) = stack.pop() {
            if i != id && self.maintenance.contains_key(&i) {
                continue;
            }
            stack.extend(self.hosted.get(&i).into_iter().flatten().cloned());
            covered.push(i);
        }
        covered
    }

    /// A flag (maintenance, availability) of these instances changed: one record per
    /// instance for its top monitor (the entity health), old and new state equal, unless
    /// `already` has a real change of it.
    fn flags(
        &self,
        ids: &[String],
        time: i64,
        kind: CauseKind,
        cause: &str,
        already: &[StateChange],
    ) -> Vec<StateChange> {
        let mut out = Vec::new();
        for id in ids {
            let Some(inst) = self.instances.get(id) else {
                continue;
            };
            for p in self.catalog.packs() {
                for a in &p.pack.aggregates {
                    if a.parent.is_none()
                        && self.catalog.is_a(&inst.class, &a.target)
                        && !already
                            .iter()
                            .any(|c| c.instance_id == *id && c.monitor_id == a.id)
                    {
                        let h = self.state(id, &a.id);
                        out.push(StateChange {
                            instance_id: id.clone(),
                            monitor_id: a.id.clone(),
                            old: h,
                            new: h,
                            time,
                            kind,
                            cause: cause.to_string(),
                        });
                    }
                }
            }
        }
        out
    }

    /// End the maintenance set on an instance: the monitors of everything it covered
    /// recalculate, readings held back are applied, collectors get a full heartbeat
    /// period, and the rollups are recomputed from the leaves up.
    pub fn end_maintenance(&mut self, id: &str, time: i64) -> Result<Vec<StateChange>, String> {
        self.hosting_counts.clear();
        if self.maintenance.remove(id).is_none() {
            return Err(match self.in_maintenance(id) {
                Some((on, _)) => {
                    format!("instance {id} is in maintenance through {on}: end it there")
                }
                None => format!("instance {id} is not in maintenance"),
            });
        }
        let Some(root) = self.instances.get(id).map(|i| i.root_host.clone()) else {
            return Ok(Vec::new());
        };
        self.maintenance_touched.insert(id.to_string(), root);
        if self.in_maintenance(id).is_some() {
            return Ok(Vec::new());
        }
        let covered = self.covered(id);
        let mut out = Vec::new();
        for i in &covered {
            let keys: Vec<(String, String)> = self.copies.keys_of(i);
            for key in keys {
                let Some(copy) = self.copies.get_mut(&key.0, &key.1) else {
                    continue;
                };
                self.touched.insert(key.clone());
                let before = copy.detector.health;
                if let crate::detect::Memory::Heartbeat { last, .. } = &mut copy.detector.memory {
                    if *last != i64::MIN {
                        *last = (*last).max(time);
                    }
                }
                copy.detector.recalculate();
                for h in std::mem::take(&mut copy.held) {
                    match h {
                        Held::Value(v) => copy.detector.sample(v),
                        Held::Service(r) => copy.detector.service(r),
                    };
                }
                let after = copy.detector.health;
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time,
                        kind: CauseKind::Maintenance,
                        cause: format!("recalculated at the end of the maintenance of {id}"),
                    });
                }
            }
        }
        // Rollups from the deepest instance up, then the hosts above.
        let mut by_depth: Vec<(usize, String)> = covered
            .into_iter()
            .map(|i| (self.chain(&i).len(), i))
            .collect();
        by_depth.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let cause = format!("maintenance of {id} ended");
        for (_, i) in &by_depth {
            out.extend(self.recompute(i, time, &cause, CauseKind::Maintenance));
        }
        let ids: Vec<String> = by_depth.into_iter().map(|(_, i)| i).collect();
        let flags = self.flags(&ids, time, CauseKind::Maintenance, &cause, &out);
        out.extend(flags);
        if let Some(h) = self.instances.get(id).and_then(|i| i.host_id.clone()) {
            out.extend(self.propagate_kind(&[(h.as_str(), time, &cause)], CauseKind::Maintenance));
        }
        Ok(out)
    }

    /// Put back a maintenance (after the instances are back).
    pub fn restore_maintenance(&mut self, id: &str, m: Maintenance) {
        self.maintenance.insert(id.to_string(), m);
        self.hosting_counts.clear();
    }

    /// Recompute which root hosts are unavailable (after a restore): no state changes, the
    /// kept rollup states already reflect it.
    pub fn restore_availability(&mut self) {
        self.hosting_counts.clear();
        let roots: Vec<String> = self.by_root.keys().cloned().collect();
        for r in roots {
            if self.heartbeat_missing(&r) {
                self.unavailable.insert(r);
            } else {
                self.unavailable.remove(&r);
            }
        }
    }

    fn heartbeat_missing(&self, root: &str) -> bool {
        self.by_root.get(root).into_iter().flatten().any(|i| {
            self.copies.of(i).any(|(_, c)| {
                matches!(*c.detector.detection, Detection::Heartbeat { .. })
                    && c.detector.health == Health::Critical
            })
        })
    }

    /// A root host becomes unavailable when a heartbeat monitor of its collector is
    /// critical, and available again when none is; the rollups of its tree are recomputed
    /// with the new member treatment.
    fn refresh_availability(&mut self, root: &str, time: i64) -> Vec<StateChange> {
        let missing = self.heartbeat_missing(root);
        if missing == self.unavailable.contains(root) {
            return Vec::new();
        }
        self.hosting_counts.clear();
        if missing {
            self.unavailable.insert(root.to_string());
        } else {
            self.unavailable.remove(root);
        }
        self.availability_touched.insert(root.to_string(), time);
        let mut ids: Vec<(usize, String)> = self
            .instances_of(root)
            .into_iter()
            .map(|i| (self.chain(&i).len(), i))
            .collect();
        ids.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let cause = if missing {
            format!("{root} unavailable: heartbeats missed")
        } else {
            format!("{root} available again: heartbeats resumed")
        };
        let mut out = Vec::new();
        for (_, i) in &ids {
            if self.in_maintenance(i).is_none() {
                out.extend(self.recompute(i, time, &cause, CauseKind::Heartbeat));
            }
        }
        let ids: Vec<String> = ids.into_iter().map(|(_, i)| i).collect();
        let flags = self.flags(&ids, time, CauseKind::Heartbeat, &cause, &out);
        out.extend(flags);
        out
    }

    /// Recompute the rollups of an instance and of its hosts, one pass, bottom up.
    fn propagate(&mut self, id: &str, time: i64, cause: &str) -> Vec<StateChange> {
        self.propagate_kind(&[(id, time, cause)], CauseKind::Rollup)
    }

    /// The rollups above the instances of `changed` (each with the time and cause of its
    /// first change in one input), in one pass: every instance on their chains is
    /// recomputed once, deeper ones first (in the order reached within a depth), so that a
    /// rollup changes at most once per input however many of the monitors below it changed
    /// (a sample that turns a filesystem's free space critical and its fill rate warning
    /// changes its entity health once, not twice). Instances in maintenance keep their
    /// rollup states; `kind` is the kind of cause recorded.
    fn propagate_kind<S: AsRef<str>>(
        &mut self,
        changed: &[(S, i64, S)],
        kind: CauseKind,
    ) -> Vec<StateChange> {
        // (depth below the root, instance, time, the changes that reach it: the place in
        // `todo` of the instance below it they come through, none for its own, and their
        // cause), in the order first reached.
        type Reach<'c> = Vec<(Option<usize>, &'c str)>;
        let mut todo: Vec<(usize, String, i64, Reach<'_>)> = Vec::new();
        {
            // The instances of `todo`, looked through one by one while they are few, by an
            // index once they are many (a tick may fire thousands of timers at once).
            let mut reached: Vec<&str> = Vec::new();
            let mut index: FastMap<&str, usize> = FastMap::default();
            for (id, time, cause) in changed {
                let chain = self.chain(id.as_ref());
                let depth = chain.len();
                let mut below = None;
                for (up, i) in chain.into_iter().enumerate() {
                    let known = if index.is_empty() {
                        reached.iter().position(|t| *t == i.id)
                    } else {
                        index.get(i.id.as_str()).copied()
                    };
                    let at = match known {
                        Some(at) => at,
                        None => {
                            let at = todo.len();
                            todo.push((depth - up, i.id.clone(), *time, Vec::new()));
                            reached.push(&i.id);
                            if !index.is_empty() {
                                index.insert(&i.id, at);
                            } else if reached.len() > LOOKED_THROUGH {
                                index.extend(reached.iter().enumerate().map(|(at, t)| (*t, at)));
                            }
                            at
                        }
                    };
                    todo[at].3.push((below, cause.as_ref()));
                    below = Some(at);
                }
            }
        }
        // Deepest first; the places in `todo` are the order reached.
        let mut order: Vec<usize> = (0..todo.len()).collect();
        order.sort_by_key(|&at| std::cmp::Reverse(todo[at].0));
        let mut out = Vec::new();
        let mut causes: Vec<Cause<'_>> = Vec::new();
        for at in order {
            let (_, i, time, reach) = &todo[at];
            if self.in_maintenance(i).is_some() {
                continue;
            }
            causes.clear();
            causes.extend(reach.iter().map(|(below, text)| Cause {
                below: below.map(|b| todo[b].1.as_str()),
                text,
            }));
            out.extend(self.recompute_from(i, *time, &causes, kind));
        }
        out
    }

    /// The rollup monitors of instances of a class, worked out once per class.
    fn class_rollups(&mut self, class: &str) -> Arc<ClassRollups> {
        if let Some(r) = self.class_rollups.get(class) {
            return r.clone();
        }
        let cat = &self.catalog;
        let deps: Vec<(DependencyMonitor, String, bool)> = cat
            .packs()
            .iter()
            .flat_map(|p| p.pack.dependencies.iter())
            .filter(|d| cat.is_a(class, &d.target))
            .filter_map(|d| {
                let rel = cat.relationship(&d.relationship)?;
                Some((
                    d.clone(),
                    rel.target.clone(),
                    rel.kind == RelationshipKind::Hosting,
                ))
            })
            .collect();
        let all_aggs: Vec<&AggregateMonitor> = cat
            .packs()
            .iter()
            .flat_map(|p| p.pack.aggregates.iter())
            .collect();
        let depth = |a: &AggregateMonitor| {
            let mut d = 0;
            let mut p = a.parent.clone();
            while let Some(x) = p {
                d += 1;
                if d > 32 {
                    break;
                }
                p = all_aggs
                    .iter()
                    .find(|y| y.id == x)
                    .and_then(|y| y.parent.clone());
            }
            d
        };
        let mut aggs: Vec<(AggregateMonitor, Vec<String>)> = all_aggs
            .iter()
            .filter(|a| cat.is_a(class, &a.target))
            .map(|a| {
                // Rollup children: dependency monitors and aggregates whose parent it is.
                let mut children: Vec<String> = cat
                    .packs()
                    .iter()
                    .flat_map(|p| p.pack.dependencies.iter())
                    .filter(|d| d.parent == a.id && cat.is_a(class, &d.target))
                    .map(|d| d.id.clone())
                    .collect();
                children.extend(
                    all_aggs
                        .iter()
                        .filter(|sub| {
                            sub.parent.as_deref() == Some(a.id.as_str())
                                && cat.is_a(class, &sub.target)
                        })
                        .map(|sub| sub.id.clone()),
                );
                ((*a).clone(), children)
            })
            .collect();
        aggs.sort_by_key(|(a, _)| std::cmp::Reverse(depth(a)));
        let is_rollup = |m: &str| {
            cat.packs().iter().any(|p| {
                p.pack.aggregates.iter().any(|a| a.id == m)
                    || p.pack.dependencies.iter().any(|d| d.id == m)
            })
        };
        let kept = deps
            .iter()
            .map(|(d, _, hosting)| *hosting && is_rollup(&d.member_monitor))
            .collect();
        let r = Arc::new(ClassRollups { deps, aggs, kept });
        self.class_rollups.insert(class.to_string(), r.clone());
        r
    }

    /// The rollup monitors of one instance: dependencies first (they feed aggregates), then
    /// aggregates from the leaves of the tree to the entity health.
    fn recompute(&mut self, id: &str, time: i64, cause: &str, kind: CauseKind) -> Vec<StateChange> {
        self.recompute_from(
            id,
            time,
            &[Cause {
                below: None,
                text: cause,
            }],
            kind,
        )
    }

    /// [`Engine::recompute`] for the changes that reach the instance in one pass: each
    /// rollup that moves names the one that drove it (see [`Engine::rollup_cause`]).
    fn recompute_from(
        &mut self,
        id: &str,
        time: i64,
        causes: &[Cause<'_>],
        kind: CauseKind,
    ) -> Vec<StateChange> {
        let known = match self.instances.get(id) {
            Some(i) => self
                .class_rollups
                .get(&i.class)
                .cloned()
                .ok_or(i.class.clone()),
            None => return Vec::new(),
        };
        let plan = match known {
            Ok(plan) => plan,
            Err(class) => self.class_rollups(&class),
        };
        // Every rollup of the instance worked out first, an aggregate reading the states
        // just worked out for its rollup children, then set with one lookup of the
        // instance: an instance has a dozen rollups and each lookup is a hash and a search
        // by name.
        let mut targets: Vec<(&str, Health)> =
            Vec::with_capacity(plan.deps.len() + plan.aggs.len());
        for (at, (d, member_class, hosting)) in plan.deps.iter().enumerate() {
            let counts = if *hosting {
                self.hosted_counts(id, &plan, at)
            } else {
                // Reported members: counted as they change (a group may have thousands).
                self.counts(id, d, member_class)
            };
            targets.push((&d.id, dependency_counts(d.algorithm, d.percentage, &counts)));
        }
        // The unit monitors' states, by the aggregate (its place in the plan) they report to.
        let units: Vec<(usize, Health)> = self
            .copies
            .of(id)
            .filter_map(|(_, c)| Some((usize::from(c.parent?), c.detector.health)))
            .collect();
        // Aggregates, deepest first: an aggregate's children are the instance's unit
        // monitors and the rollups whose parent it is.
        let mut children: Vec<Health> = Vec::new();
        for (place, (a, rollup_children)) in plan.aggs.iter().enumerate() {
            children.clear();
            children.extend(units.iter().filter(|(p, _)| *p == place).map(|(_, h)| *h));
            for c in rollup_children {
                children.push(match targets.iter().find(|(m, _)| *m == c.as_str()) {
                    Some((_, h)) => *h,
                    None => self.state(id, c),
                });
            }
            targets.push((&a.id, aggregate(a.algorithm, &children)));
        }
        // A rollup without a state stays so while it works out uninitialized.
        let moved = self
            .rollups
            .set_each(id, &targets, |h| *h != Health::Uninitialized);
        if !moved.is_empty() {
            // A root host's rollup states are kept in one value (see `Kept::rollup_hosts`).
            if let Some(i) = self.instances.get(id) {
                mark_root(&mut self.touched_rollup_roots, &i.root_host);
            }
        }
        let mut out: Vec<StateChange> = Vec::with_capacity(moved.len());
        for (monitor, before, h) in moved {
            let before = before.unwrap_or(Health::Uninitialized);
            let cause = self.rollup_cause(id, &plan, (monitor, h), causes, &out);
            if !self.hosting_counts.is_empty() {
                self.hosted_member_moved(id, monitor, before, h);
            }
            out.push(StateChange {
                instance_id: id.to_string(),
                monitor_id: monitor.to_string(),
                old: before,
                new: h,
                time,
                kind,
                cause: cause.to_string(),
            });
        }
        out
    }

    /// What drove a rollup of `id` that moved to `health` (`moved`: the instance's rollups
    /// that moved before it, deepest first), among the changes that reach the instance in
    /// one pass: for a dependency monitor, a change that came through a member of its
    /// member class, one whose member monitor is in that state first; for an aggregate, a
    /// rollup child of it that moved, or a change of one of its own unit monitors, one now
    /// in that state first (the worst child makes a worst-of); else the first change.
    fn rollup_cause(
        &self,
        id: &str,
        plan: &ClassRollups,
        (monitor, health): (&str, Health),
        causes: &[Cause<'_>],
        moved: &[StateChange],
    ) -> String {
        let first = causes.first().map_or("", |c| c.text);
        if causes.len() < 2 {
            return first.to_string();
        }
        if let Some((d, member_class, _)) = plan.deps.iter().find(|(d, _, _)| d.id == monitor) {
            // (the change, whether its member's monitor is in the rollup's new state)
            let through_members = causes.iter().filter_map(|c| {
                let member = self.instances.get(c.below?)?;
                self.catalog
                    .is_a(&member.class, member_class)
                    .then(|| (c.text, self.state(&member.id, &d.member_monitor) == health))
            });
            return pick(through_members).unwrap_or(first).to_string();
        }
        let Some((place, (_, children))) = plan
            .aggs
            .iter()
            .enumerate()
            .find(|(_, (a, _))| a.id == monitor)
        else {
            return first.to_string();
        };
        let children_moved = moved
            .iter()
            .filter(|c| children.contains(&c.monitor_id))
            .map(|c| (c.cause.as_str(), c.new == health));
        let own_units = causes.iter().filter_map(|c| {
            let (unit, _) = c.text.split_once(": ").filter(|_| c.below.is_none())?;
            let (_, copy) = self.copies.of(id).find(|(m, _)| *m == unit)?;
            (copy.parent == Some(place as u16)).then_some((c.text, copy.detector.health == health))
        });
        pick(children_moved.chain(own_units))
            .unwrap_or(first)
            .to_string()
    }

    /// The hosted members of a container's dependency monitor (the `at`th of its class),
    /// counted by the state each counts as: kept when its member monitor is a rollup.
    fn hosted_counts(&mut self, id: &str, plan: &Arc<ClassRollups>, at: usize) -> Counts {
        let kept = self
            .hosting_counts
            .get(id)
            .and_then(|k| k.counts.get(at).copied().flatten());
        if let Some(c) = kept {
            debug_assert_eq!(
                c,
                self.count_hosted(id, at, plan),
                "kept counts of {id} {} went wrong",
                plan.deps[at].0.id
            );
            return c;
        }
        let c = self.count_hosted(id, at, plan);
        if plan.kept[at] {
            let entry = self
                .hosting_counts
                .entry(id.to_string())
                .or_insert_with(|| HostingCounts {
                    plan: plan.clone(),
                    counts: vec![None; plan.deps.len()],
                });
            if let Some(slot) = entry.counts.get_mut(at) {
                *slot = Some(c);
            }
        }
        c
    }

    /// Count a container's hosted members of a dependency monitor, one by one.
    fn count_hosted(&self, id: &str, at: usize, plan: &ClassRollups) -> Counts {
        let (d, member_class, _) = &plan.deps[at];
        let mut c: Counts = [0; 4];
        let hosted = self.hosted.get(id).into_iter().flatten();
        for child in hosted.filter_map(|c| self.instances.get(c)) {
            if self.catalog.is_a(&child.class, member_class) {
                let m = Member {
                    health: self.state(&child.id, &d.member_monitor),
                    in_maintenance: self.in_maintenance(&child.id).is_some(),
                    unavailable: self.unavailable.contains(&child.root_host),
                };
                c[slot(&m, d)] += 1;
            }
        }
        c
    }

    /// A rollup of an instance changed: move it in the kept counts of its host.
    fn hosted_member_moved(&mut self, id: &str, monitor: &str, before: Health, after: Health) {
        let Some(child) = self.instances.get(id) else {
            return;
        };
        let Some(host) = child.host_id.as_deref() else {
            return;
        };
        let Some(kept) = self.hosting_counts.get(host) else {
            return;
        };
        let in_maintenance = self.in_maintenance(id).is_some();
        let unavailable = self.unavailable.contains(&child.root_host);
        let mut moves = Vec::new();
        for (at, (d, member_class, _)) in kept.plan.deps.iter().enumerate() {
            if kept.counts[at].is_none()
                || d.member_monitor != monitor
                || !self.catalog.is_a(&child.class, member_class)
            {
                continue;
            }
            let member = |health| Member {
                health,
                in_maintenance,
                unavailable,
            };
            moves.push((at, slot(&member(before), d), slot(&member(after), d)));
        }
        if moves.is_empty() {
            return;
        }
        let host = host.to_string();
        if let Some(kept) = self.hosting_counts.get_mut(&host) {
            for (at, from, to) in moves {
                if let Some(c) = kept.counts[at].as_mut() {
                    c[from] = c[from].saturating_sub(1);
                    c[to] += 1;
                }
            }
        }
    }
}

/// The first of `candidates` (a cause, and whether it is in the state to explain) that is
/// in that state, else the first.
fn pick<'a>(candidates: impl Iterator<Item = (&'a str, bool)>) -> Option<&'a str> {
    let mut any = None;
    for (cause, in_state) in candidates {
        if in_state {
            return Some(cause);
        }
        any = any.or(Some(cause));
    }
    any
}

fn same_kind(a: &Held, b: &Held) -> bool {
    matches!(
        (a, b),
        (Held::Value(_), Held::Value(_))
            | (
                Held::Service(ServiceReading::Running(_)),
                Held::Service(ServiceReading::Running(_))
            )
            | (
                Held::Service(ServiceReading::Automatic(_)),
                Held::Service(ServiceReading::Automatic(_))
            )
    )
}

/// What a state-change cause says of an event: its channel, source, id and level.
fn event_summary(fields: &[(&str, Value<'_>)]) -> String {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| match v {
                Value::Text(t) => t.to_string(),
                Value::Number(n) => n.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    format!(
        "event {} from {} on {} ({})",
        get("EventId"),
        get("Source"),
        get("Channel"),
        get("Level")
    )
}

/// Mark a root host (without a new string when it is marked already).
fn mark_root(roots: &mut BTreeSet<String>, root: &str) {
    if !roots.contains(root) {
        roots.insert(root.to_string());
    }
}

/// The configuration of `monitor` resolved as `detect` (overrides applied), read once and
/// shared by every copy resolved the same way (copies differ only where overrides make them
/// differ; reading compiles the configuration's expressions). `None`: it does not read.
fn shared_detection(
    known: &mut FastMap<String, Vec<(toml::Table, Arc<Detection>)>>,
    monitor: &str,
    detect: toml::Table,
) -> Option<Arc<Detection>> {
    let distinct = match known.get_mut(monitor) {
        Some(d) => d,
        None => known.entry(monitor.to_string()).or_default(),
    };
    if let Some((_, same)) = distinct.iter().find(|(t, _)| *t == detect) {
        return Some(same.clone());
    }
    let detection: Detection = toml::Value::Table(detect.clone()).try_into().ok()?;
    let shared = Arc::new(detection);
    distinct.push((detect, shared.clone()));
    Some(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(t: f64) -> toml::Table {
        let mut table = toml::Table::new();
        table.insert("type".into(), "simple_threshold".into());
        table.insert("direction".into(), "below".into());
        table.insert("threshold".into(), t.into());
        table
    }

    proptest::proptest! {
        /// The in-line comparison of names says what `==` says.
        #[test]
        fn names_compare_as_strings_do(a in "[a-c%/ ]{0,20}", b in "[a-c%/ ]{0,20}") {
            proptest::prop_assert_eq!(same_name(&a, &b), a == b);
            proptest::prop_assert!(same_name(&a, &a.clone()));
        }
    }

    #[test]
    fn copies_with_the_same_configuration_share_it() {
        let mut known = FastMap::default();
        let shared = |known: &mut FastMap<_, _>, m: &str, t| {
            shared_detection(known, m, threshold(t)).expect("reads")
        };
        let a = shared(&mut known, "m", 10.0);
        let b = shared(&mut known, "m", 10.0);
        assert!(Arc::ptr_eq(&a, &b), "equal configurations are one");
        let overridden = shared(&mut known, "m", 5.0);
        assert!(!Arc::ptr_eq(&a, &overridden), "an override makes its own");
        assert!(matches!(
            *overridden,
            Detection::SimpleThreshold { threshold: Some(t), .. } if t == 5.0
        ));
        let other = shared(&mut known, "n", 10.0);
        assert!(!Arc::ptr_eq(&a, &other), "per monitor");
        assert_eq!(known["m"].len(), 2);
        let mut unreadable = threshold(1.0);
        unreadable.insert("direction".into(), "sideways".into());
        assert!(shared_detection(&mut known, "m", unreadable).is_none());
        assert_eq!(known["m"].len(), 2, "what does not read is not kept");
    }
}
