//! Collection plans: cook-down toward collectors (DESIGN.md section 5).
//!
//! For one root host, every enabled discovery, rule and unit monitor runs once per managed
//! instance of its target class (one workflow copy per instance, seed 004). Each copy's data
//! source, after overrides and `$Target/...$` resolution, is a module type plus a configuration;
//! copies whose module and configuration are equal share one planned data source. The plan is
//! republished only when that set changes.

use std::collections::{BTreeMap, HashMap};

use healthstream_contracts::content_id;
use healthstream_contracts::records::{PlannedDataSource, Properties, PropertyValue};
use healthstream_model::catalog::{Catalog, Workflow};
use healthstream_model::modules::source_name;
use healthstream_model::overrides::{resolve, InstanceContext};
use healthstream_model::pack::DataSource;
use healthstream_model::params::ParamValue;
use healthstream_model::reference::{TargetContext, Template};

/// Workflows with a data source the collector runs, by target class, and which of them have
/// overrides.
pub struct PlanIndex {
    /// (workflow id, target class, its data source).
    workflows: Vec<(String, String, DataSource)>,
    overridden: HashMap<String, Vec<String>>,
}

impl PlanIndex {
    pub fn new(catalog: &Catalog) -> PlanIndex {
        let mut workflows = Vec::new();
        for p in catalog.packs() {
            for d in &p.pack.discoveries {
                if let Some(s) = &d.source {
                    workflows.push((d.id.clone(), d.target.clone(), s.clone()));
                }
            }
            for r in &p.pack.rules {
                workflows.push((r.id.clone(), r.target.clone(), r.source.clone()));
            }
            for m in &p.pack.monitors {
                workflows.push((m.id.clone(), m.target.clone(), m.source.clone()));
            }
        }
        workflows.retain(|(_, _, s)| !matches!(s, DataSource::Unsupported { .. }));
        let mut overridden: HashMap<String, Vec<String>> = HashMap::new();
        for (_, o) in catalog.overrides() {
            let params = overridden.entry(o.workflow.clone()).or_default();
            if !params.contains(&o.parameter) {
                params.push(o.parameter.clone());
            }
        }
        PlanIndex {
            workflows,
            overridden,
        }
    }
}

/// One instance as the plan sees it.
pub struct PlanInstance {
    pub id: String,
    pub class: String,
    pub managed: bool,
    /// Its properties (keys included), then its hosts', nearest first.
    pub chain: Vec<(String, Properties)>,
    /// Host ids and classes, nearest first.
    pub hosts: Vec<(String, String)>,
    /// Groups it (hops 0) or a host (hops n) is a member of.
    pub groups: Vec<(String, usize)>,
}

struct Ctx<'a>(&'a PlanInstance);

fn text(v: &PropertyValue) -> Option<String> {
    Some(match v {
        PropertyValue::Null => return None,
        PropertyValue::Boolean(b) => b.to_string(),
        PropertyValue::Long(i) => i.to_string(),
        PropertyValue::Double(f) => f.to_string(),
        PropertyValue::String(s) => s.clone(),
    })
}

impl TargetContext for Ctx<'_> {
    fn property(&self, hops: usize, name: &str) -> Option<String> {
        self.0
            .chain
            .get(hops)
            .and_then(|(_, p)| p.get(name))
            .and_then(text)
    }
    fn id(&self, hops: usize) -> Option<String> {
        self.0.chain.get(hops).map(|(id, _)| id.clone())
    }
    fn display_name(&self, hops: usize) -> Option<String> {
        self.property(hops, "DisplayName").or_else(|| self.id(hops))
    }
}

/// A plan: its data sources (sorted by id) and digest. Also the workflow copies that could not
/// be planned and why.
#[derive(Debug, Clone)]
pub struct Plan {
    pub data_sources: Vec<PlannedDataSource>,
    pub digest: String,
    pub skipped: Vec<String>,
}

/// Compute the plan of a root host's instances.
pub fn plan(catalog: &Catalog, index: &PlanIndex, instances: &[PlanInstance]) -> Plan {
    let mut sources: BTreeMap<String, PlannedDataSource> = BTreeMap::new();
    let mut skipped = Vec::new();
    for inst in instances.iter().filter(|i| i.managed) {
        for (wid, target, source) in &index.workflows {
            if !catalog.is_a(&inst.class, target) {
                continue;
            }
            let copy = format!("{wid}@{}", inst.id);
            let mut table = match toml::Value::try_from(source) {
                Ok(toml::Value::Table(t)) => t,
                _ => continue,
            };
            let mut enabled = match catalog.workflow(wid) {
                Some(Workflow::Discovery(d)) => d.enabled,
                Some(Workflow::Rule(r)) => r.enabled,
                Some(Workflow::Monitor(m)) => m.enabled,
                _ => true,
            };
            if let Some(params) = index.overridden.get(wid) {
                let ctx = InstanceContext {
                    id: inst.id.clone(),
                    class: inst.class.clone(),
                    hosts: inst.hosts.clone(),
                    groups: inst.groups.clone(),
                };
                for p in params {
                    let Ok(r) = resolve(catalog, wid, p, &ctx) else {
                        continue;
                    };
                    if p == "enabled" {
                        enabled = !matches!(r.value, ParamValue::Bool(false));
                    } else if table.contains_key(p) && p != "type" {
                        table.insert(p.clone(), to_toml(&r.value));
                    }
                }
            }
            if !enabled {
                continue;
            }
            let module = source_name(source).to_string();
            let mut interval_seconds = 0i32;
            let mut config = BTreeMap::new();
            let mut failed = None;
            for (k, v) in &table {
                if k == "type" {
                    continue;
                }
                let raw = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(items) => serde_json::to_string(
                        &items
                            .iter()
                            .map(|i| {
                                i.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| i.to_string())
                            })
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_default(),
                    other => other.to_string(),
                };
                let resolved = match Template::parse(&raw)
                    .map_err(|e| e.to_string())
                    .and_then(|t| t.resolve_target(&Ctx(inst)))
                {
                    Ok(r) => r,
                    Err(e) => {
                        failed = Some(format!("{copy}: {k}: {e}"));
                        break;
                    }
                };
                if k == "interval" {
                    interval_seconds = humantime::parse_duration(&resolved)
                        .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
                        .unwrap_or(0);
                    continue;
                }
                config.insert(k.clone(), resolved);
            }
            if let Some(f) = failed {
                skipped.push(f);
                continue;
            }
            let key = format!(
                "{module}|{interval_seconds}|{}",
                serde_json::to_string(&config).unwrap_or_default()
            );
            let id = content_id(key.as_bytes());
            sources
                .entry(id.clone())
                .or_insert_with(|| PlannedDataSource {
                    id,
                    module,
                    interval_seconds,
                    config,
                    workflows: Vec::new(),
                })
                .workflows
                .push(copy);
        }
    }
    let mut data_sources: Vec<PlannedDataSource> = sources.into_values().collect();
    for d in &mut data_sources {
        d.workflows.sort();
    }
    let digest = content_id(
        serde_json::to_string(
            &data_sources
                .iter()
                .map(|d| (&d.id, &d.workflows))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default()
        .as_bytes(),
    );
    Plan {
        data_sources,
        digest,
        skipped,
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
