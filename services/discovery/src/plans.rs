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
use healthstream_model::catalog::Catalog;
use healthstream_model::modules::source_name;
use healthstream_model::overrides::{resolve_from, InstanceContext};
use healthstream_model::pack::DataSource;
use healthstream_model::params::ParamValue;
use healthstream_model::reference::{TargetContext, Template};

/// A workflow with a data source the collector runs, prepared once per set of packs.
struct PlanWorkflow {
    id: String,
    target: String,
    module: String,
    enabled: bool,
    /// The source's configuration, `type` removed.
    table: toml::map::Map<String, toml::Value>,
    /// Each configuration value as a template (`$Target/...$` resolved per instance).
    templates: Vec<(String, Template)>,
    /// The planned entry when no value refers to the target: the same for every instance.
    fixed: Option<(i32, BTreeMap<String, String>, String)>,
}

/// Workflows with a data source the collector runs, and which of them have overrides.
pub struct PlanIndex {
    workflows: Vec<PlanWorkflow>,
    overridden: HashMap<String, Vec<String>>,
    referenced: std::sync::Arc<std::collections::BTreeSet<String>>,
}

fn value_text(v: &toml::Value) -> String {
    match v {
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
    }
}

fn templates(
    table: &toml::map::Map<String, toml::Value>,
) -> Result<Vec<(String, Template)>, String> {
    table
        .iter()
        .map(|(k, v)| {
            Template::parse(&value_text(v))
                .map(|t| (k.clone(), t))
                .map_err(|e| format!("{k}: {e}"))
        })
        .collect()
}

impl PlanIndex {
    /// Property names that data sources read through `$Target/...$`.
    pub fn referenced(&self) -> std::sync::Arc<std::collections::BTreeSet<String>> {
        self.referenced.clone()
    }

    pub fn new(catalog: &Catalog) -> PlanIndex {
        let mut raw: Vec<(String, String, bool, DataSource)> = Vec::new();
        for p in catalog.packs() {
            for d in &p.pack.discoveries {
                if let Some(s) = &d.source {
                    raw.push((d.id.clone(), d.target.clone(), d.enabled, s.clone()));
                }
            }
            for r in &p.pack.rules {
                raw.push((r.id.clone(), r.target.clone(), r.enabled, r.source.clone()));
            }
            for m in &p.pack.monitors {
                raw.push((m.id.clone(), m.target.clone(), m.enabled, m.source.clone()));
            }
        }
        let mut workflows = Vec::new();
        for (id, target, enabled, source) in raw {
            if matches!(source, DataSource::Unsupported { .. }) {
                continue;
            }
            let Ok(toml::Value::Table(mut table)) = toml::Value::try_from(&source) else {
                continue;
            };
            table.remove("type");
            let Ok(templates) = templates(&table) else {
                continue;
            };
            let module = source_name(&source).to_string();
            let fixed = if templates
                .iter()
                .all(|(_, t)| t.target_refs().next().is_none())
            {
                resolve_entry(&module, &templates, &NoTarget).ok()
            } else {
                None
            };
            workflows.push(PlanWorkflow {
                id,
                target,
                module,
                enabled,
                table,
                templates,
                fixed,
            });
        }
        let mut overridden: HashMap<String, Vec<String>> = HashMap::new();
        for (_, o) in catalog.overrides() {
            let params = overridden.entry(o.workflow.clone()).or_default();
            if !params.contains(&o.parameter) {
                params.push(o.parameter.clone());
            }
        }
        let referenced = workflows
            .iter()
            .flat_map(|w| w.templates.iter().flat_map(|(_, t)| t.target_refs()))
            .filter_map(|r| match &r.field {
                healthstream_model::reference::TargetField::Property { name, .. } => {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        PlanIndex {
            workflows,
            overridden,
            referenced: std::sync::Arc::new(referenced),
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
    // The workflows that apply to each class, computed once per class.
    let mut by_class: HashMap<&str, Vec<usize>> = HashMap::new();
    for inst in instances.iter().filter(|i| i.managed) {
        let applicable = by_class.entry(inst.class.as_str()).or_insert_with(|| {
            let ancestors = catalog.ancestors(&inst.class);
            index
                .workflows
                .iter()
                .enumerate()
                .filter(|(_, w)| ancestors.contains(&w.target.as_str()))
                .map(|(i, _)| i)
                .collect()
        });
        for &wi in applicable.iter() {
            let w = &index.workflows[wi];
            let copy = format!("{}@{}", w.id, inst.id);
            let mut enabled = w.enabled;
            let mut patched: Option<toml::map::Map<String, toml::Value>> = None;
            if let Some(params) = index.overridden.get(&w.id) {
                let ctx = InstanceContext {
                    id: inst.id.clone(),
                    class: inst.class.clone(),
                    hosts: inst.hosts.clone(),
                    groups: inst.groups.clone(),
                };
                for p in params {
                    let default = if p == "enabled" {
                        ParamValue::Bool(w.enabled)
                    } else if let Some(v) = w.table.get(p) {
                        ParamValue::from(v.clone())
                    } else {
                        continue;
                    };
                    let r = resolve_from(catalog, &w.id, p, default, &ctx);
                    if r.candidates.is_empty() {
                        continue;
                    }
                    if p == "enabled" {
                        enabled = !matches!(r.value, ParamValue::Bool(false));
                    } else if w.table.contains_key(p) {
                        patched
                            .get_or_insert_with(|| w.table.clone())
                            .insert(p.clone(), to_toml(&r.value));
                    }
                }
            }
            if !enabled {
                continue;
            }
            let owned;
            let templates = match &patched {
                None => &w.templates,
                Some(t) => match templates(t) {
                    Ok(t) => {
                        owned = t;
                        &owned
                    }
                    Err(e) => {
                        skipped.push(format!("{copy}: {e}"));
                        continue;
                    }
                },
            };
            let entry = match (&patched, &w.fixed) {
                (None, Some(fixed)) => Ok(fixed.clone()),
                _ => resolve_entry(&w.module, templates, &Ctx(inst)),
            };
            let (interval_seconds, config, id) = match entry {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(format!("{copy}: {e}"));
                    continue;
                }
            };
            sources
                .entry(id.clone())
                .or_insert_with(|| PlannedDataSource {
                    id,
                    module: w.module.clone(),
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

/// A target context with no target (for sources that refer to none).
struct NoTarget;

impl TargetContext for NoTarget {
    fn property(&self, _: usize, _: &str) -> Option<String> {
        None
    }
    fn id(&self, _: usize) -> Option<String> {
        None
    }
    fn display_name(&self, _: usize) -> Option<String> {
        None
    }
}

/// Resolve a source's templates: (interval in seconds, configuration, entry id).
fn resolve_entry(
    module: &str,
    templates: &[(String, Template)],
    ctx: &dyn TargetContext,
) -> Result<(i32, BTreeMap<String, String>, String), String> {
    let mut interval_seconds = 0i32;
    let mut config = BTreeMap::new();
    for (k, t) in templates {
        let resolved = t.resolve_target(ctx).map_err(|e| format!("{k}: {e}"))?;
        if k == "interval" {
            interval_seconds = humantime::parse_duration(&resolved)
                .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
                .unwrap_or(0);
        } else {
            config.insert(k.clone(), resolved);
        }
    }
    let key = format!(
        "{module}|{interval_seconds}|{}",
        serde_json::to_string(&config).unwrap_or_default()
    );
    Ok((interval_seconds, config, content_id(key.as_bytes())))
}

fn to_toml(v: &ParamValue) -> toml::Value {
    match v {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Int(i) => toml::Value::Integer(*i),
        ParamValue::Float(f) => toml::Value::Float(*f),
        ParamValue::Text(t) => toml::Value::String(t.clone()),
    }
}
