//! Workflow parameters and override resolution (DESIGN.md section 4).
//!
//! For one workflow, one parameter and one target instance, every applicable override is
//! ranked by these rules, in order; the first rule that separates two overrides decides:
//!
//! 1. **context**: an instance override beats a group override beats a class override;
//! 2. **enforced** beats not enforced;
//! 3. **unsealed** pack beats sealed pack;
//! 4. **hosting**: a context matching the target itself beats one matching its host, and a
//!    nearer host beats a farther one (a class override of the hosted class beats one of the
//!    host);
//! 5. **derived class** beats base class (class contexts);
//! 6. **tie**: the smaller pack id, then the smaller override id. SCOM picks at random here;
//!    healthstream never does, so the result is the same across restarts and replays.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::catalog::{Catalog, Workflow};
use crate::pack::*;
use crate::params::ParamValue;

/// Whether a parameter may always be overridden or only when the element declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// SCOM's property overrides: `enabled`, alert settings, rollup settings.
    Property,
    /// Module configuration: only when listed in the element's `overridable`.
    Config,
}

/// The parameters of a workflow with their values as defined (before overrides).
pub fn parameters(w: Workflow<'_>) -> BTreeMap<String, (ParamValue, ParamKind)> {
    let mut out = BTreeMap::new();
    let prop = |out: &mut BTreeMap<String, (ParamValue, ParamKind)>, k: &str, v: ParamValue| {
        out.insert(k.to_string(), (v, ParamKind::Property));
    };
    match w {
        Workflow::Discovery(d) => {
            prop(&mut out, "enabled", ParamValue::Bool(d.enabled));
            if let Some(s) = &d.source {
                flatten_config(&mut out, s);
            }
        }
        Workflow::Rule(r) => {
            prop(&mut out, "enabled", ParamValue::Bool(r.enabled));
            flatten_config(&mut out, &r.source);
            for c in &r.conditions {
                flatten_config(&mut out, c);
            }
            for a in &r.actions {
                if let Action::Alert {
                    severity, priority, ..
                } = a
                {
                    prop(&mut out, "severity", text_of(severity));
                    prop(&mut out, "priority", text_of(priority));
                }
            }
        }
        Workflow::Monitor(m) => {
            prop(&mut out, "enabled", ParamValue::Bool(m.enabled));
            flatten_config(&mut out, &m.source);
            for c in &m.conditions {
                flatten_config(&mut out, c);
            }
            flatten_config(&mut out, &m.detect);
            alert_params(&mut out, m.alert.as_ref());
        }
        Workflow::Aggregate(a) => {
            prop(&mut out, "enabled", ParamValue::Bool(a.enabled));
            prop(&mut out, "algorithm", text_of(&a.algorithm));
            alert_params(&mut out, a.alert.as_ref());
        }
        Workflow::Dependency(d) => {
            prop(&mut out, "enabled", ParamValue::Bool(d.enabled));
            prop(&mut out, "algorithm", text_of(&d.algorithm));
            prop(
                &mut out,
                "percentage",
                ParamValue::Int(i64::from(d.percentage.unwrap_or(100))),
            );
            prop(
                &mut out,
                "member_in_maintenance",
                text_of(&d.member_in_maintenance),
            );
            prop(
                &mut out,
                "member_unavailable",
                text_of(&d.member_unavailable),
            );
            alert_params(&mut out, d.alert.as_ref());
        }
        Workflow::Diagnostic(d) => {
            prop(&mut out, "enabled", ParamValue::Bool(d.enabled));
            out.insert(
                "timeout".into(),
                (ParamValue::Text(d.timeout.to_string()), ParamKind::Config),
            );
        }
        Workflow::Recovery(r) => {
            prop(&mut out, "enabled", ParamValue::Bool(r.enabled));
            out.insert(
                "timeout".into(),
                (ParamValue::Text(r.timeout.to_string()), ParamKind::Config),
            );
        }
    }
    out
}

fn alert_params(out: &mut BTreeMap<String, (ParamValue, ParamKind)>, a: Option<&AlertSettings>) {
    let p = ParamKind::Property;
    out.insert(
        "generate_alert".into(),
        (ParamValue::Bool(a.is_some_and(|a| a.generate)), p),
    );
    if let Some(a) = a {
        out.insert("alert_on".into(), (text_of(&a.on), p));
        out.insert("auto_resolve".into(), (ParamValue::Bool(a.auto_resolve), p));
        let sev = a
            .severity
            .map(|s| text_of(&s))
            .unwrap_or_else(|| ParamValue::Text("match_state".into()));
        out.insert("severity".into(), (sev, p));
        out.insert("priority".into(), (text_of(&a.priority), p));
    }
}

fn text_of<T: serde::Serialize>(v: &T) -> ParamValue {
    match toml::Value::try_from(v) {
        Ok(v) => ParamValue::from(v),
        Err(_) => ParamValue::Text(String::new()),
    }
}

/// Scalar configuration fields of a module (its `type` excluded).
fn flatten_config<T: serde::Serialize>(out: &mut BTreeMap<String, (ParamValue, ParamKind)>, v: &T) {
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(v) {
        for (k, v) in t {
            if k == "type" || matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
                continue;
            }
            out.entry(k)
                .or_insert((ParamValue::from(v), ParamKind::Config));
        }
    }
}

/// Check an override value against the parameter it replaces: same kind, and for durations,
/// enumerations and counts a value the workflow can use.
pub fn check_value(
    parameter: &str,
    default: &ParamValue,
    value: &ParamValue,
) -> Result<(), String> {
    if !value.same_kind(default) {
        return Err(format!(
            "value {value} is {}, but {parameter} is {} ({default})",
            value.kind(),
            default.kind()
        ));
    }
    let one_of = |allowed: &[&str]| match value {
        ParamValue::Text(t) if allowed.contains(&t.as_str()) => Ok(()),
        _ => Err(format!(
            "value {value} of {parameter} is not one of {}",
            allowed.join(", ")
        )),
    };
    match parameter {
        "interval" | "timeout" | "after" | "window" | "within" => match value {
            ParamValue::Text(t) => match humantime::parse_duration(t) {
                Ok(d) if !d.is_zero() => Ok(()),
                Ok(_) => Err(format!("{parameter} {t:?} must be greater than zero")),
                Err(e) => Err(format!(
                    "{parameter} {t:?} is not a duration ({e}); write e.g. \"5m\""
                )),
            },
            _ => Ok(()),
        },
        "severity" => one_of(&["information", "warning", "critical", "match_state"]),
        "priority" => one_of(&["low", "normal", "high"]),
        "alert_on" => one_of(&["warning", "critical"]),
        "direction" => one_of(&["above", "below"]),
        "unhealthy" => one_of(&["warning", "critical"]),
        "below" | "between" | "above" => one_of(&["healthy", "warning", "critical"]),
        "member_in_maintenance" | "member_unavailable" => {
            one_of(&["uninitialized", "healthy", "warning", "critical"])
        }
        "algorithm" => one_of(&["worst_of", "best_of", "percentage"]),
        "percentage" => match value.as_f64() {
            Some(p) if (1.0..=100.0).contains(&p) && p.fract() == 0.0 => Ok(()),
            _ => Err(format!(
                "percentage {value} is not a whole number from 1 to 100"
            )),
        },
        "samples" | "missed" | "count" => match value {
            ParamValue::Int(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Ok(()),
            _ => Err(format!(
                "{parameter} {value} is not a whole number of at least 1"
            )),
        },
        _ => match value.as_f64() {
            Some(f) if !f.is_finite() => Err(format!("{parameter} {value} is not a finite number")),
            _ => Ok(()),
        },
    }
}

/// The class a workflow runs for (a diagnostic or recovery: its monitor's target).
pub fn workflow_target<'a>(catalog: &'a Catalog, w: Workflow<'a>) -> Option<&'a str> {
    match w {
        Workflow::Discovery(d) => Some(&d.target),
        Workflow::Rule(r) => Some(&r.target),
        Workflow::Monitor(m) => Some(&m.target),
        Workflow::Aggregate(a) => Some(&a.target),
        Workflow::Dependency(d) => Some(&d.target),
        Workflow::Diagnostic(d) => catalog
            .workflow(&d.monitor)
            .and_then(|m| workflow_target(catalog, m)),
        Workflow::Recovery(r) => catalog
            .workflow(&r.monitor)
            .and_then(|m| workflow_target(catalog, m)),
    }
}

/// What override resolution needs to know about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceContext {
    /// Instance id.
    pub id: String,
    /// Its class.
    pub class: String,
    /// Its hosts, nearest first: (id, class).
    pub hosts: Vec<(String, String)>,
    /// Groups it is a member of, with how far up the hosting chain the member is (0: the
    /// instance itself, 1: its host, ...).
    pub groups: Vec<(String, usize)>,
}

/// How an override's context matched the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextMatch {
    /// The override names the instance (or, at `hops`, one of its hosts).
    Instance { hops: usize },
    /// The instance (or a host at `hops`) is a member of the group.
    Group { hops: usize },
    /// The instance (or a host at `hops`) is of the context class; `depth` is the context
    /// class's distance from `System.Entity`.
    Class { hops: usize, depth: usize },
}

impl ContextMatch {
    fn level(&self) -> u8 {
        match self {
            ContextMatch::Instance { .. } => 0,
            ContextMatch::Group { .. } => 1,
            ContextMatch::Class { .. } => 2,
        }
    }
    fn hops(&self) -> usize {
        match self {
            ContextMatch::Instance { hops }
            | ContextMatch::Group { hops }
            | ContextMatch::Class { hops, .. } => *hops,
        }
    }
}

impl fmt::Display for ContextMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whose = |h: usize| match h {
            0 => "the instance".to_string(),
            1 => "its host".to_string(),
            n => format!("its host {n} levels up"),
        };
        match self {
            ContextMatch::Instance { hops } => write!(f, "instance context: {}", whose(*hops)),
            ContextMatch::Group { hops } => {
                write!(f, "group context: {} is a member", whose(*hops))
            }
            ContextMatch::Class { hops, depth } => {
                write!(
                    f,
                    "class context (class depth {depth}): {} is of the class",
                    whose(*hops)
                )
            }
        }
    }
}

/// An override that applies, as ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub override_id: String,
    pub pack: String,
    pub sealed: bool,
    pub enforced: bool,
    pub context: String,
    pub matched: ContextMatch,
    pub value: ParamValue,
}

/// The precedence rule that put one override before another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    Context,
    Enforced,
    Unsealed,
    Hosting,
    DerivedClass,
    Tie,
}

impl fmt::Display for Precedence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precedence::Context => "instance beats group beats class",
            Precedence::Enforced => "enforced beats not enforced",
            Precedence::Unsealed => "unsealed pack beats sealed pack",
            Precedence::Hosting => {
                "the instance's own context beats its host's (nearer host first)"
            }
            Precedence::DerivedClass => "derived class beats base class",
            Precedence::Tie => "full tie: smaller pack id, then smaller override id",
        })
    }
}

/// Compare two candidates: `Less` means `a` wins; also the rule that decided.
pub fn rank(a: &Candidate, b: &Candidate) -> (Ordering, Precedence) {
    let steps: [(Ordering, Precedence); 5] = [
        (
            a.matched.level().cmp(&b.matched.level()),
            Precedence::Context,
        ),
        (b.enforced.cmp(&a.enforced), Precedence::Enforced),
        (a.sealed.cmp(&b.sealed), Precedence::Unsealed),
        (a.matched.hops().cmp(&b.matched.hops()), Precedence::Hosting),
        (
            match (&a.matched, &b.matched) {
                (ContextMatch::Class { depth: da, .. }, ContextMatch::Class { depth: db, .. }) => {
                    db.cmp(da)
                }
                _ => Ordering::Equal,
            },
            Precedence::DerivedClass,
        ),
    ];
    for (o, p) in steps {
        if o != Ordering::Equal {
            return (o, p);
        }
    }
    (
        a.pack
            .cmp(&b.pack)
            .then_with(|| a.override_id.cmp(&b.override_id)),
        Precedence::Tie,
    )
}

/// The effective value of one parameter of one workflow for one instance, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub workflow: String,
    pub parameter: String,
    /// The value as defined by the workflow.
    pub default: ParamValue,
    /// Applicable overrides, best first.
    pub candidates: Vec<Candidate>,
    /// For each candidate after the first: the rule by which the one before it won.
    pub decided_by: Vec<Precedence>,
    /// The effective value.
    pub value: ParamValue,
}

/// Errors of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no discovery, rule, monitor, diagnostic or recovery has id {0:?}")]
    UnknownWorkflow(String),
    #[error("{workflow} has no parameter {parameter:?}; it has: {known}")]
    UnknownParameter {
        workflow: String,
        parameter: String,
        known: String,
    },
    #[error(
        "{workflow} targets {target}; instance {instance} is of class {class}, which is not one"
    )]
    NotATarget {
        workflow: String,
        target: String,
        instance: String,
        class: String,
    },
}

/// Every parameter of a workflow resolved for an instance.
pub fn resolve_all(
    catalog: &Catalog,
    workflow: &str,
    instance: &InstanceContext,
) -> Result<Vec<Resolution>, ResolveError> {
    let w = catalog
        .workflow(workflow)
        .ok_or_else(|| ResolveError::UnknownWorkflow(workflow.to_string()))?;
    parameters(w)
        .keys()
        .map(|p| resolve(catalog, workflow, p, instance))
        .collect()
}

/// Resolve one parameter.
pub fn resolve(
    catalog: &Catalog,
    workflow: &str,
    parameter: &str,
    instance: &InstanceContext,
) -> Result<Resolution, ResolveError> {
    let w = catalog
        .workflow(workflow)
        .ok_or_else(|| ResolveError::UnknownWorkflow(workflow.to_string()))?;
    let params = parameters(w);
    let Some((default, _)) = params.get(parameter) else {
        return Err(ResolveError::UnknownParameter {
            workflow: workflow.to_string(),
            parameter: parameter.to_string(),
            known: params.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    if let Some(target) = workflow_target(catalog, w) {
        if catalog.class(&instance.class).is_some() && !catalog.is_a(&instance.class, target) {
            return Err(ResolveError::NotATarget {
                workflow: workflow.to_string(),
                target: target.to_string(),
                instance: instance.id.clone(),
                class: instance.class.clone(),
            });
        }
    }
    Ok(resolve_from(
        catalog,
        workflow,
        parameter,
        default.clone(),
        instance,
    ))
}

/// Resolve one parameter whose value as defined is `default`, without checking that the
/// workflow has it or targets the instance's class (for callers that already know).
pub fn resolve_from(
    catalog: &Catalog,
    workflow: &str,
    parameter: &str,
    default: ParamValue,
    instance: &InstanceContext,
) -> Resolution {
    let mut candidates: Vec<Candidate> = catalog
        .overrides()
        .filter(|(_, o)| o.workflow == workflow && o.parameter == parameter)
        .filter_map(|(pi, o)| {
            let matched = context_match(catalog, o, instance)?;
            let pack = &catalog.packs()[pi].pack.pack;
            Some(Candidate {
                override_id: o.id.clone(),
                pack: pack.id.clone(),
                sealed: pack.sealed,
                enforced: o.enforced,
                context: o.context.clone(),
                matched,
                value: o.value.clone(),
            })
        })
        .collect();
    candidates.sort_by(|a, b| rank(a, b).0);
    let decided_by = candidates
        .windows(2)
        .map(|w| rank(&w[0], &w[1]).1)
        .collect();
    let value = candidates
        .first()
        .map(|c| c.value.clone())
        .unwrap_or_else(|| default.clone());
    Resolution {
        workflow: workflow.to_string(),
        parameter: parameter.to_string(),
        default,
        candidates,
        decided_by,
        value,
    }
}

/// Does the override's context cover this instance, and how?
fn context_match(catalog: &Catalog, o: &Override, inst: &InstanceContext) -> Option<ContextMatch> {
    let chain = std::iter::once((inst.id.as_str(), inst.class.as_str()))
        .chain(inst.hosts.iter().map(|(i, c)| (i.as_str(), c.as_str())));
    if let Some(target_instance) = &o.instance {
        return chain
            .enumerate()
            .find(|(_, (id, _))| *id == target_instance.as_str())
            .map(|(hops, _)| ContextMatch::Instance { hops });
    }
    if catalog.group(&o.context).is_some() {
        return inst
            .groups
            .iter()
            .filter(|(g, _)| *g == o.context)
            .map(|(_, hops)| *hops)
            .min()
            .map(|hops| ContextMatch::Group { hops });
    }
    let depth = catalog.depth(&o.context);
    chain
        .enumerate()
        .find(|(_, (_, class))| catalog.is_a(class, &o.context))
        .map(|(hops, _)| ContextMatch::Class { hops, depth })
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} = {}", self.workflow, self.parameter, self.value)?;
        if self.candidates.is_empty() {
            return writeln!(
                f,
                "  no override applies: the value defined by the workflow ({})",
                self.default
            );
        }
        writeln!(f, "  defined by the workflow: {}", self.default)?;
        for (i, c) in self.candidates.iter().enumerate() {
            let mark = if i == 0 { "winner" } else { "      " };
            writeln!(
                f,
                "  {mark} {} (pack {}{}{}) context {}: {} -> {}",
                c.override_id,
                c.pack,
                if c.sealed { ", sealed" } else { "" },
                if c.enforced { ", enforced" } else { "" },
                c.context,
                c.matched,
                c.value
            )?;
            if i > 0 {
                writeln!(
                    f,
                    "         loses to {}: {}",
                    self.candidates[i - 1].override_id,
                    self.decided_by[i - 1]
                )?;
            }
        }
        Ok(())
    }
}
