//! The engine of one partition: its instances, a detector per unit monitor copy (one per
//! managed instance of the target class), the rollup tree of each instance, and the index that
//! dispatches each perf sample to the copies that read it.
//!
//! Every input returns the state changes it caused, in order, one per monitor that really
//! changed: unit monitors first, then their aggregates up to the entity health, then the
//! dependency monitors of the hosts above, up to the root host.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use healthstream_model::catalog::Catalog;
use healthstream_model::expr::Value;
use healthstream_model::overrides::{resolve_from, InstanceContext};
use healthstream_model::pack::{DataSource, Detection, Health, RelationshipKind};
use healthstream_model::params::ParamValue;
use healthstream_model::reference::{TargetContext, Template};

use crate::detect::{Detector, Fields, ServiceReading};
use crate::rollup::{aggregate, dependency, Member};

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
    /// What caused it: the sample or event, or the child or member that drove a rollup.
    pub cause: String,
}

/// What is kept of a monitor between inputs (persisted by the processor).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Saved {
    Unit {
        health: Health,
        memory: crate::detect::Memory,
    },
    Rollup(Health),
    Rule(crate::rules::RuleState),
}

/// A perf sample.
#[derive(Debug, Clone, PartialEq)]
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
    parent: String,
}

/// The engine of one partition.
pub struct Engine {
    catalog: Catalog,
    instances: BTreeMap<String, Instance>,
    /// (instance, unit monitor) -> copy.
    copies: BTreeMap<(String, String), Copy>,
    /// Rollup states: (instance, aggregate or dependency monitor) -> health.
    rollups: BTreeMap<(String, String), Health>,
    /// (object, counter, instance) -> copies reading it; instance "*" for every instance.
    perf_index: HashMap<(String, String, String), Vec<(String, String)>>,
    /// Children by host.
    hosted: BTreeMap<String, BTreeSet<String>>,
    /// Monitors whose kept state changed since the last [`Engine::take_touched`].
    touched: BTreeSet<(String, String)>,
    /// (instance, rule) -> rule copy (rules with an alert action).
    rules: BTreeMap<(String, String), crate::rules::RuleCopy>,
    /// Rule alerts to raise, since the last [`Engine::take_firings`].
    firings: Vec<crate::rules::Firing>,
    /// (object, counter, instance) -> rule copies reading it.
    rule_perf_index: HashMap<(String, String, String), Vec<(String, String)>>,
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

impl Engine {
    pub fn new(catalog: Catalog) -> Engine {
        Engine {
            catalog,
            instances: BTreeMap::new(),
            copies: BTreeMap::new(),
            rollups: BTreeMap::new(),
            perf_index: HashMap::new(),
            hosted: BTreeMap::new(),
            touched: BTreeSet::new(),
            rules: BTreeMap::new(),
            firings: Vec::new(),
            rule_perf_index: HashMap::new(),
        }
    }

    /// The instances of a root host.
    fn instances_of(&self, root: &str) -> Vec<String> {
        self.instances
            .values()
            .filter(|i| i.root_host == root)
            .map(|i| i.id.clone())
            .collect()
    }

    /// The monitors whose kept state changed since the last call, with what to keep (`None`:
    /// forget it).
    pub fn take_touched(&mut self) -> Vec<((String, String), Option<Saved>)> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .map(|key| {
                let saved = self
                    .copies
                    .get(&key)
                    .map(|c| Saved::Unit {
                        health: c.detector.health,
                        memory: c.detector.memory.clone(),
                    })
                    .or_else(|| self.rollups.get(&key).map(|h| Saved::Rollup(*h)))
                    .or_else(|| self.rules.get(&key).map(|r| Saved::Rule(r.state.clone())));
                (key, saved)
            })
            .collect()
    }

    /// Put back what was kept of a monitor (after its instance is back with [`Engine::upsert`]).
    pub fn restore(&mut self, instance: &str, monitor: &str, saved: Saved) {
        let key = (instance.to_string(), monitor.to_string());
        match saved {
            Saved::Unit { health, memory } => {
                if let Some(c) = self.copies.get_mut(&key) {
                    c.detector.health = health;
                    c.detector.memory = memory;
                }
            }
            Saved::Rollup(h) => {
                self.rollups.insert(key, h);
            }
            Saved::Rule(state) => {
                if let Some(r) = self.rules.get_mut(&key) {
                    r.state = state;
                }
            }
        }
    }

    /// The alert settings of a monitor of an instance, overrides applied and `$Target`
    /// references resolved; `None` when it raises no alert.
    pub fn monitor_alert(
        &self,
        instance: &str,
        monitor: &str,
    ) -> Option<crate::alerts::MonitorAlert> {
        let settings = self.catalog.packs().iter().find_map(|p| {
            p.pack
                .monitors
                .iter()
                .find(|m| m.id == monitor)
                .map(|m| m.alert.clone())
                .or_else(|| {
                    p.pack
                        .aggregates
                        .iter()
                        .find(|a| a.id == monitor)
                        .map(|a| a.alert.clone())
                })
                .or_else(|| {
                    p.pack
                        .dependencies
                        .iter()
                        .find(|d| d.id == monitor)
                        .map(|d| d.alert.clone())
                })
        })??;
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
                let alert = crate::rules::AlertAction {
                    name: fill(&name),
                    description: fill(&description),
                    severity,
                    priority,
                    suppression: suppression
                        .iter()
                        .filter_map(|s| healthstream_model::expr::Path::parse(s).ok())
                        .collect(),
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
                        instance.as_deref().map(fill).unwrap_or_else(|| "*".into()),
                    )),
                    _ => None,
                };
                built.push((
                    r.id.clone(),
                    perf_key,
                    crate::rules::RuleCopy {
                        rule: r.id.clone(),
                        source: r.source.clone(),
                        conditions: r.conditions.clone(),
                        alert,
                        state: Default::default(),
                    },
                ));
            }
            for list in self.rule_perf_index.values_mut() {
                list.retain(|(i, _)| i != id);
            }
            for (rid, perf_key, copy) in built {
                let key = (id.to_string(), rid.clone());
                if let Some(pk) = perf_key {
                    self.rule_perf_index
                        .entry(pk)
                        .or_default()
                        .push(key.clone());
                }
                keep.insert(rid);
                let state = self
                    .rules
                    .get(&key)
                    .map(|c| c.state.clone())
                    .unwrap_or_default();
                self.rules
                    .insert(key, crate::rules::RuleCopy { state, ..copy });
            }
        }
        self.rules.retain(|(i, r), _| i != id || keep.contains(r));
    }

    /// Feed an item to the rule copies that read this kind of source.
    fn feed_rules(
        &mut self,
        keys: Vec<(String, String)>,
        item: &dyn healthstream_model::expr::Subject,
        value: Option<f64>,
        at: i64,
    ) {
        for key in keys {
            let Some(r) = self.rules.get_mut(&key) else {
                continue;
            };
            self.touched.insert(key.clone());
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

    /// The knowledge of a monitor or rule, as text shown with its alerts.
    pub fn knowledge(&self, workflow: &str) -> String {
        let k = self.catalog.packs().iter().find_map(|p| {
            p.pack
                .monitors
                .iter()
                .find(|m| m.id == workflow)
                .and_then(|m| m.knowledge.clone())
                .or_else(|| {
                    p.pack
                        .rules
                        .iter()
                        .find(|r| r.id == workflow)
                        .and_then(|r| r.knowledge.clone())
                })
                .or_else(|| {
                    p.pack
                        .aggregates
                        .iter()
                        .find(|a| a.id == workflow)
                        .and_then(|a| a.knowledge.clone())
                })
                .or_else(|| {
                    p.pack
                        .dependencies
                        .iter()
                        .find(|d| d.id == workflow)
                        .and_then(|d| d.knowledge.clone())
                })
        });
        let Some(k) = k else { return String::new() };
        let mut out = k.summary.clone();
        if !k.causes.is_empty() {
            out.push_str("\nCauses:\n");
            out.push_str(
                &k.causes
                    .iter()
                    .map(|c| format!("- {c}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        if !k.resolutions.is_empty() {
            out.push_str("\nResolutions:\n");
            out.push_str(
                &k.resolutions
                    .iter()
                    .map(|c| format!("- {c}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        out
    }

    /// Every instance.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// The state of a monitor of an instance.
    pub fn state(&self, instance: &str, monitor: &str) -> Health {
        let key = (instance.to_string(), monitor.to_string());
        self.copies
            .get(&key)
            .map(|c| c.detector.health)
            .or_else(|| self.rollups.get(&key).copied())
            .unwrap_or(Health::Uninitialized)
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
        let id = instance.id.clone();
        if let Some(old) = self.instances.get(&id) {
            if let Some(h) = &old.host_id {
                if let Some(set) = self.hosted.get_mut(h) {
                    set.remove(&id);
                }
            }
        }
        if let Some(h) = &instance.host_id {
            self.hosted.entry(h.clone()).or_default().insert(id.clone());
        }
        self.instances.insert(id.clone(), instance);
        self.rebuild(&id);
        self.propagate(&id, time, "instance changed")
    }

    /// Remove an instance and its copies.
    pub fn remove(&mut self, id: &str, time: i64) -> Vec<StateChange> {
        let Some(old) = self.instances.remove(id) else {
            return Vec::new();
        };
        let gone: Vec<(String, String)> = self
            .copies
            .keys()
            .chain(self.rollups.keys())
            .filter(|(i, _)| i == id)
            .cloned()
            .collect();
        self.touched.extend(gone);
        let gone_rules: Vec<(String, String)> = self
            .rules
            .keys()
            .filter(|(i, _)| i == id)
            .cloned()
            .collect();
        self.touched.extend(gone_rules);
        self.rules.retain(|(i, _), _| i != id);
        self.copies.retain(|(i, _), _| i != id);
        self.rollups.retain(|(i, _), _| i != id);
        self.unindex(id);
        if let Some(h) = &old.host_id {
            if let Some(set) = self.hosted.get_mut(h) {
                set.remove(id);
            }
            return self.propagate(h, time, &format!("instance {id} removed"));
        }
        Vec::new()
    }

    fn unindex(&mut self, id: &str) {
        for list in self.perf_index.values_mut() {
            list.retain(|(i, _)| i != id);
        }
    }

    fn rebuild(&mut self, id: &str) {
        self.unindex(id);
        let Some(inst) = self.instances.get(id).cloned() else {
            return;
        };
        let Some(ctx) = self.context(id) else { return };
        self.rebuild_rules(id, &ctx);
        let mut keep = BTreeSet::new();
        if inst.managed {
            let monitors: Vec<_> = self
                .catalog
                .packs()
                .iter()
                .flat_map(|p| p.pack.monitors.iter())
                .filter(|m| self.catalog.is_a(&inst.class, &m.target))
                .cloned()
                .collect();
            for m in monitors {
                let Some((enabled, detection, source)) = self.resolve_copy(&m, &ctx) else {
                    continue;
                };
                if !enabled {
                    continue;
                }
                let key = (id.to_string(), m.id.clone());
                keep.insert(m.id.clone());
                let fresh = match self.copies.get(&key) {
                    Some(c) if c.detector.detection == detection => c.detector.clone(),
                    _ => Detector::new(detection),
                };
                self.copies.insert(
                    key,
                    Copy {
                        detector: fresh,
                        parent: m.parent.clone(),
                    },
                );
                if let DataSource::Perf {
                    object,
                    counter,
                    instance,
                    ..
                } = &source
                {
                    let inst_key = instance.clone().unwrap_or_else(|| "*".into());
                    self.perf_index
                        .entry((object.clone(), counter.clone(), inst_key))
                        .or_default()
                        .push((id.to_string(), m.id.clone()));
                }
                if let DataSource::Service { service, .. } = &source {
                    for counter in ["Running", "Automatic"] {
                        self.perf_index
                            .entry(("Service".into(), counter.into(), service.clone()))
                            .or_default()
                            .push((id.to_string(), m.id.clone()));
                    }
                }
            }
        }
        let dropped: Vec<(String, String)> = self
            .copies
            .keys()
            .filter(|(i, m)| i == id && !keep.contains(m))
            .cloned()
            .collect();
        self.touched.extend(dropped);
        self.copies.retain(|(i, m), _| i != id || keep.contains(m));
    }

    /// A copy's enabled flag, detection and data source, overrides applied, `$Target` resolved.
    fn resolve_copy(
        &self,
        m: &healthstream_model::pack::UnitMonitor,
        ctx: &InstanceContext,
    ) -> Option<(bool, Detection, DataSource)> {
        let mut enabled = m.enabled;
        let mut detect = match toml::Value::try_from(&m.detect) {
            Ok(toml::Value::Table(t)) => t,
            _ => return None,
        };
        let mut source = match toml::Value::try_from(&m.source) {
            Ok(toml::Value::Table(t)) => t,
            _ => return None,
        };
        let overridden: BTreeSet<&str> = self
            .catalog
            .overrides()
            .filter(|(_, o)| o.workflow == m.id)
            .map(|(_, o)| o.parameter.as_str())
            .collect();
        for p in overridden {
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
        let keys: Vec<String> = source.keys().cloned().collect();
        for k in keys {
            let Some(toml::Value::String(text)) = source.get(&k).cloned() else {
                continue;
            };
            if let Ok(t) = Template::parse(&text) {
                if t.target_refs().next().is_some() {
                    let resolved = t.resolve_target(&Ctx(chain.clone())).ok()?;
                    source.insert(k, toml::Value::String(resolved));
                }
            }
        }
        let detection: Detection = toml::Value::Table(detect).try_into().ok()?;
        let source: DataSource = toml::Value::Table(source).try_into().ok()?;
        Some((enabled, detection, source))
    }

    /// Perf samples of one root host. Service samples (`Service/Running|Automatic/<unit>`) feed
    /// basic service monitors.
    pub fn perf(&mut self, samples: &[Sample<'_>]) -> Vec<StateChange> {
        let mut out = Vec::new();
        for s in samples {
            if !self.rule_perf_index.is_empty() {
                let mut rule_keys = Vec::new();
                for inst in [s.instance, "*"] {
                    if let Some(list) = self.rule_perf_index.get(&(
                        s.object.to_string(),
                        s.counter.to_string(),
                        inst.to_string(),
                    )) {
                        rule_keys.extend(list.iter().cloned());
                    }
                }
                if !rule_keys.is_empty() {
                    let fields = [
                        ("Object", Value::text(s.object)),
                        ("Counter", Value::text(s.counter)),
                        ("Instance", Value::text(s.instance)),
                        ("Value", Value::Number(s.value)),
                    ];
                    self.feed_rules(rule_keys, &Fields(&fields), Some(s.value), s.time);
                }
            }
            let mut targets: Vec<(String, String)> = Vec::new();
            for inst in [s.instance, "*"] {
                if let Some(list) = self.perf_index.get(&(
                    s.object.to_string(),
                    s.counter.to_string(),
                    inst.to_string(),
                )) {
                    targets.extend(list.iter().cloned());
                }
            }
            for (i, m) in targets {
                let key = (i.clone(), m.clone());
                let Some(copy) = self.copies.get_mut(&key) else {
                    continue;
                };
                self.touched.insert(key.clone());
                let before = copy.detector.health;
                let decided = if s.object == "Service" {
                    let on = s.value >= 0.5;
                    copy.detector.service(if s.counter == "Running" {
                        ServiceReading::Running(on)
                    } else {
                        ServiceReading::Automatic(on)
                    })
                } else {
                    copy.detector.sample(s.value)
                };
                if let Some(after) = decided {
                    if after != before {
                        let cause =
                            format!("{}/{}/{} = {}", s.object, s.counter, s.instance, s.value);
                        out.push(StateChange {
                            instance_id: i.clone(),
                            monitor_id: m.clone(),
                            old: before,
                            new: after,
                            time: s.time,
                            cause: cause.clone(),
                        });
                        out.extend(self.propagate(&i, s.time, &format!("{m}: {cause}")));
                    }
                }
            }
        }
        out
    }

    /// An event of one root host: every event-driven copy of its instances sees it.
    pub fn event(
        &mut self,
        root: &str,
        fields: &[(&str, Value<'_>)],
        time: i64,
    ) -> Vec<StateChange> {
        let root_instances = self.instances_of(root);
        let rule_keys: Vec<(String, String)> = self
            .rules
            .iter()
            .filter(|((i, _), r)| {
                root_instances.contains(i)
                    && matches!(
                        r.source,
                        DataSource::Event { .. } | DataSource::LogFile { .. }
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !rule_keys.is_empty() {
            self.feed_rules(rule_keys, &Fields(fields), None, time);
        }
        let mut out = Vec::new();
        let keys: Vec<(String, String)> = self
            .copies
            .iter()
            .filter(|((i, _), c)| {
                root_instances.contains(i)
                    && matches!(
                        c.detector.detection,
                        Detection::EventReset { .. }
                            | Detection::ManualReset { .. }
                            | Detection::TimerReset { .. }
                            | Detection::Expression { .. }
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(copy) = self.copies.get_mut(&key) else {
                continue;
            };
            self.touched.insert(key.clone());
            let before = copy.detector.health;
            if let Some(after) = copy.detector.item(&Fields(fields), time) {
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time,
                        cause: "event".into(),
                    });
                    out.extend(self.propagate(&key.0, time, &format!("{}: event", key.1)));
                }
            }
        }
        out
    }

    /// Time passed: timer resets and heartbeats.
    pub fn tick(&mut self, now: i64) -> Vec<StateChange> {
        let mut out = Vec::new();
        let keys: Vec<(String, String)> = self.copies.keys().cloned().collect();
        for key in keys {
            let Some(copy) = self.copies.get_mut(&key) else {
                continue;
            };
            self.touched.insert(key.clone());
            let before = copy.detector.health;
            if let Some(after) = copy.detector.tick(now) {
                if after != before {
                    out.push(StateChange {
                        instance_id: key.0.clone(),
                        monitor_id: key.1.clone(),
                        old: before,
                        new: after,
                        time: now,
                        cause: "time".into(),
                    });
                    out.extend(self.propagate(&key.0, now, &format!("{}: time", key.1)));
                }
            }
        }
        out
    }

    /// A heartbeat for the collector instances of a root host.
    pub fn heartbeat(&mut self, root: &str, at: i64, interval_seconds: i32) -> Vec<StateChange> {
        let collector_instances = self.instances_of(root);
        let mut out = Vec::new();
        let keys: Vec<(String, String)> = self
            .copies
            .iter()
            .filter(|((i, _), c)| {
                collector_instances.contains(i)
                    && matches!(c.detector.detection, Detection::Heartbeat { .. })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(copy) = self.copies.get_mut(&key) else {
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
                        cause: "heartbeat".into(),
                    });
                    out.extend(self.propagate(&key.0, at, &format!("{}: heartbeat", key.1)));
                }
            }
        }
        out
    }

    /// An operator reset of a unit monitor.
    pub fn reset(&mut self, instance: &str, monitor: &str, time: i64) -> Vec<StateChange> {
        let key = (instance.to_string(), monitor.to_string());
        let Some(copy) = self.copies.get_mut(&key) else {
            return Vec::new();
        };
        self.touched.insert(key.clone());
        let before = copy.detector.health;
        let after = copy.detector.reset();
        let mut out = Vec::new();
        if after != before {
            out.push(StateChange {
                instance_id: key.0.clone(),
                monitor_id: key.1.clone(),
                old: before,
                new: after,
                time,
                cause: "reset by an operator".into(),
            });
            out.extend(self.propagate(instance, time, &format!("{monitor}: reset")));
        }
        out
    }

    /// Recompute the rollups of an instance and of its hosts, one pass, bottom up.
    fn propagate(&mut self, id: &str, time: i64, cause: &str) -> Vec<StateChange> {
        let mut out = Vec::new();
        let ids: Vec<String> = self.chain(id).iter().map(|i| i.id.clone()).collect();
        for i in ids {
            out.extend(self.recompute(&i, time, cause));
        }
        out
    }

    /// The rollup monitors of one instance: dependencies first (they feed aggregates), then
    /// aggregates from the leaves of the tree to the entity health.
    fn recompute(&mut self, id: &str, time: i64, cause: &str) -> Vec<StateChange> {
        let Some(inst) = self.instances.get(id).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let deps: Vec<_> = self
            .catalog
            .packs()
            .iter()
            .flat_map(|p| p.pack.dependencies.iter())
            .filter(|d| self.catalog.is_a(&inst.class, &d.target))
            .cloned()
            .collect();
        for d in deps {
            let Some(rel) = self.catalog.relationship(&d.relationship) else {
                continue;
            };
            if rel.kind != RelationshipKind::Hosting {
                continue; // containment and reference rollups cross hosts: the rollup stage
            }
            let members: Vec<Member> = self
                .hosted
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|c| self.instances.get(c))
                .filter(|c| self.catalog.is_a(&c.class, &rel.target))
                .map(|c| Member {
                    health: self.state(&c.id, &d.member_monitor),
                    in_maintenance: false,
                    unavailable: false,
                })
                .collect();
            let h = dependency(
                d.algorithm,
                d.percentage,
                &members,
                d.member_in_maintenance,
                d.member_unavailable,
            );
            out.extend(self.set_rollup(id, &d.id, h, time, cause));
        }
        // Aggregates, deepest first: an aggregate's children are unit monitors, dependency
        // monitors and aggregates whose parent it is.
        let mut aggs: Vec<_> = self
            .catalog
            .packs()
            .iter()
            .flat_map(|p| p.pack.aggregates.iter())
            .filter(|a| self.catalog.is_a(&inst.class, &a.target))
            .cloned()
            .collect();
        let depth = |a: &healthstream_model::pack::AggregateMonitor, cat: &Catalog| {
            let mut d = 0;
            let mut p = a.parent.clone();
            while let Some(x) = p {
                d += 1;
                if d > 32 {
                    break;
                }
                p = cat
                    .packs()
                    .iter()
                    .flat_map(|pk| pk.pack.aggregates.iter())
                    .find(|y| y.id == x)
                    .and_then(|y| y.parent.clone());
            }
            d
        };
        aggs.sort_by_key(|a| std::cmp::Reverse(depth(a, &self.catalog)));
        for a in aggs {
            let mut children: Vec<Health> = self
                .copies
                .iter()
                .filter(|((i, _), c)| i == id && c.parent == a.id)
                .map(|(_, c)| c.detector.health)
                .collect();
            for p in self.catalog.packs() {
                for d in &p.pack.dependencies {
                    if d.parent == a.id && self.catalog.is_a(&inst.class, &d.target) {
                        children.push(self.state(id, &d.id));
                    }
                }
                for sub in &p.pack.aggregates {
                    if sub.parent.as_deref() == Some(a.id.as_str())
                        && self.catalog.is_a(&inst.class, &sub.target)
                    {
                        children.push(self.state(id, &sub.id));
                    }
                }
            }
            let h = aggregate(a.algorithm, &children);
            out.extend(self.set_rollup(id, &a.id, h, time, cause));
        }
        out
    }

    fn set_rollup(
        &mut self,
        id: &str,
        monitor: &str,
        h: Health,
        time: i64,
        cause: &str,
    ) -> Option<StateChange> {
        let key = (id.to_string(), monitor.to_string());
        let before = self
            .rollups
            .get(&key)
            .copied()
            .unwrap_or(Health::Uninitialized);
        if before == h {
            return None;
        }
        self.touched.insert(key.clone());
        self.rollups.insert(key, h);
        Some(StateChange {
            instance_id: id.to_string(),
            monitor_id: monitor.to_string(),
            old: before,
            new: h,
            time,
            cause: cause.to_string(),
        })
    }
}
