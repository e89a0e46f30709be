//! Validation of a set of packs: every problem at once, each with file, line, element and what
//! is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, ElementRef, Workflow, GROUP_BASE, ROOT_CLASS};
use crate::expr::Expr;
use crate::load::Problem;
use crate::modules::{self, DataType};
use crate::overrides::{parameters, ParamKind};
use crate::pack::*;
use crate::reference::{TargetField, Template};

/// Validate every pack of the catalog against the others.
pub fn validate(catalog: &Catalog) -> Vec<Problem> {
    let mut v = Validator {
        cat: catalog,
        problems: Vec::new(),
    };
    v.packs();
    for pi in 0..catalog.packs().len() {
        v.pack(pi);
    }
    v.class_cycles();
    v.monitor_cycles();
    v.problems.sort();
    v.problems.dedup();
    v.problems
}

struct Validator<'a> {
    cat: &'a Catalog,
    problems: Vec<Problem>,
}

/// What an element id must name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Class,
    ClassOrGroup,
    Group,
    Relationship,
    Monitor,
    Aggregate,
    UnitOrAnyMonitor,
    Workflow,
    Diagnostic,
}

impl Want {
    fn accepts(self, k: ElementKind) -> bool {
        use ElementKind as K;
        match self {
            Want::Class => k == K::Class,
            Want::ClassOrGroup => matches!(k, K::Class | K::Group),
            Want::Group => k == K::Group,
            Want::Relationship => k == K::Relationship,
            Want::Monitor | Want::UnitOrAnyMonitor => {
                matches!(
                    k,
                    K::UnitMonitor | K::AggregateMonitor | K::DependencyMonitor
                )
            }
            Want::Aggregate => k == K::AggregateMonitor,
            Want::Workflow => matches!(
                k,
                K::Discovery
                    | K::Rule
                    | K::UnitMonitor
                    | K::AggregateMonitor
                    | K::DependencyMonitor
                    | K::Diagnostic
                    | K::Recovery
            ),
            Want::Diagnostic => k == K::Diagnostic,
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Want::Class => "a class",
            Want::ClassOrGroup => "a class or group",
            Want::Group => "a group",
            Want::Relationship => "a relationship",
            Want::Monitor | Want::UnitOrAnyMonitor => "a monitor",
            Want::Aggregate => "an aggregate monitor",
            Want::Workflow => "a discovery, rule, monitor, diagnostic or recovery",
            Want::Diagnostic => "a diagnostic",
        }
    }
}

impl<'a> Validator<'a> {
    fn report(
        &mut self,
        pi: usize,
        kind: Option<ElementKind>,
        id: Option<&str>,
        n: usize,
        message: String,
    ) {
        let lp = &self.cat.packs()[pi];
        let line = match (kind, id) {
            (Some(k), Some(id)) => lp.line_of(k, id, n),
            _ => None,
        };
        self.problems.push(Problem {
            file: Some(lp.file.clone()),
            line,
            pack: Some(lp.pack.pack.id.clone()),
            element: id.map(|s| s.to_string()),
            message,
        });
    }

    fn at(&mut self, pi: usize, kind: ElementKind, id: &str, message: String) {
        self.report(pi, Some(kind), Some(id), 0, message);
    }

    /// Pack-level: duplicate packs, references present with the version needed.
    fn packs(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (pi, lp) in self.cat.packs().iter().enumerate() {
            let id = lp.pack.pack.id.as_str();
            if let Some(first) = seen.insert(id, pi) {
                let other = self.cat.packs()[first].file.display().to_string();
                self.report(
                    pi,
                    None,
                    None,
                    0,
                    format!("pack {id} is loaded twice (also from {other})"),
                );
            }
            if id.trim().is_empty() {
                self.report(pi, None, None, 0, "the pack id is empty".into());
            }
            let mut refs = BTreeSet::new();
            for r in &lp.pack.references {
                if !refs.insert(r.pack.as_str()) {
                    self.report(
                        pi,
                        None,
                        None,
                        0,
                        format!("pack {} is referenced twice", r.pack),
                    );
                }
                if r.pack == id {
                    self.report(pi, None, None, 0, "a pack cannot reference itself".into());
                    continue;
                }
                match self.cat.pack(&r.pack) {
                    None => self.report(
                        pi,
                        None,
                        None,
                        0,
                        format!(
                            "references pack {} (>= {}), which is not loaded",
                            r.pack, r.version
                        ),
                    ),
                    Some(p) if p.pack.pack.version < r.version => self.report(
                        pi,
                        None,
                        None,
                        0,
                        format!(
                            "references pack {} >= {}, but version {} is loaded",
                            r.pack, r.version, p.pack.pack.version
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    /// Resolve an element reference from pack `pi`: it must exist once, be of the wanted
    /// kind, and live in this pack or one it references.
    fn resolve(
        &mut self,
        pi: usize,
        kind: ElementKind,
        owner: &str,
        field: &str,
        id: &str,
        want: Want,
    ) -> Option<ElementRef> {
        let defs: Vec<ElementRef> = self.cat.find(id).to_vec();
        let visible: Vec<ElementRef> = defs
            .iter()
            .copied()
            .filter(|r| self.visible(pi, r.pack))
            .collect();
        let fitting: Vec<ElementRef> = visible
            .iter()
            .copied()
            .filter(|r| want.accepts(r.kind))
            .collect();
        match (defs.is_empty(), visible.is_empty(), fitting.len()) {
            (true, _, _) => {
                let hint = self.missing_pack_hint(pi);
                self.at(
                    pi,
                    kind,
                    owner,
                    format!("{field} {id:?}: no such element{hint}"),
                );
                None
            }
            (false, true, _) => {
                let home = &self.cat.packs()[defs[0].pack].pack.pack.id;
                self.at(
                    pi,
                    kind,
                    owner,
                    format!("{field} {id:?} is in pack {home}, which this pack does not reference"),
                );
                None
            }
            (_, _, 0) => {
                let k = visible[0].kind;
                self.at(
                    pi,
                    kind,
                    owner,
                    format!("{field} {id:?} is a {k}, not {}", want.noun()),
                );
                None
            }
            (_, _, 1) => Some(fitting[0]),
            _ => {
                let packs: Vec<&str> = fitting
                    .iter()
                    .map(|r| self.cat.packs()[r.pack].pack.pack.id.as_str())
                    .collect();
                self.at(
                    pi,
                    kind,
                    owner,
                    format!(
                        "{field} {id:?} is ambiguous: defined in {}",
                        packs.join(" and ")
                    ),
                );
                None
            }
        }
    }

    fn missing_pack_hint(&self, pi: usize) -> String {
        let missing: Vec<&str> = self.cat.packs()[pi]
            .pack
            .references
            .iter()
            .filter(|r| self.cat.pack(&r.pack).is_none())
            .map(|r| r.pack.as_str())
            .collect();
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                " (it may be in {}, which is not loaded)",
                missing.join(", ")
            )
        }
    }

    /// May pack `from` use elements of pack `to`?
    fn visible(&self, from: usize, to: usize) -> bool {
        from == to
            || self.cat.packs()[from]
                .pack
                .references
                .iter()
                .any(|r| r.pack == self.cat.packs()[to].pack.pack.id)
    }

    fn pack(&mut self, pi: usize) {
        let pack = &self.cat.packs()[pi].pack;
        self.duplicates(pi);
        for c in &pack.classes {
            self.class(pi, c);
        }
        for r in &pack.relationships {
            self.relationship(pi, r);
        }
        for g in &pack.groups {
            self.group(pi, g);
        }
        for d in &pack.discoveries {
            self.discovery(pi, d);
        }
        for r in &pack.rules {
            self.rule(pi, r);
        }
        for m in &pack.monitors {
            self.unit_monitor(pi, m);
        }
        for a in &pack.aggregates {
            self.aggregate(pi, a);
        }
        for d in &pack.dependencies {
            self.dependency(pi, d);
        }
        for o in &pack.overrides {
            self.override_(pi, o);
        }
        for t in &pack.tasks {
            self.target(pi, ElementKind::Task, &t.id, &t.target);
            self.command(pi, ElementKind::Task, &t.id, &t.command, Some(&t.target));
        }
        for d in &pack.diagnostics {
            self.resolve(
                pi,
                ElementKind::Diagnostic,
                &d.id,
                "monitor",
                &d.monitor,
                Want::UnitOrAnyMonitor,
            );
            self.state_trigger(pi, ElementKind::Diagnostic, &d.id, d.on_state);
            self.command(pi, ElementKind::Diagnostic, &d.id, &d.command, None);
        }
        for r in &pack.recoveries {
            self.resolve(
                pi,
                ElementKind::Recovery,
                &r.id,
                "monitor",
                &r.monitor,
                Want::UnitOrAnyMonitor,
            );
            self.state_trigger(pi, ElementKind::Recovery, &r.id, r.on_state);
            if let Some(d) = &r.after_diagnostic {
                if let Some(dr) = self.resolve(
                    pi,
                    ElementKind::Recovery,
                    &r.id,
                    "after_diagnostic",
                    d,
                    Want::Diagnostic,
                ) {
                    let diag = &self.cat.packs()[dr.pack].pack.diagnostics[dr.pos];
                    if diag.monitor != r.monitor {
                        self.at(
                            pi,
                            ElementKind::Recovery,
                            &r.id,
                            format!(
                                "after_diagnostic {d:?} belongs to monitor {}, not {}",
                                diag.monitor, r.monitor
                            ),
                        );
                    }
                }
            }
            self.command(pi, ElementKind::Recovery, &r.id, &r.command, None);
        }
    }

    fn duplicates(&mut self, pi: usize) {
        let pack = &self.cat.packs()[pi].pack;
        let mut counts: BTreeMap<(ElementKind, &str), usize> = BTreeMap::new();
        for (kind, id) in pack.elements() {
            if id.trim().is_empty() {
                self.report(
                    pi,
                    Some(kind),
                    Some(id),
                    0,
                    format!("a {kind} has an empty id"),
                );
                continue;
            }
            let n = counts.entry((kind, id)).or_default();
            let defs = self.cat.find(id);
            let first = defs[0];
            let is_first = first.pack == pi && first.kind == kind && *n == 0;
            if !is_first {
                let other = &self.cat.packs()[first.pack];
                self.report(
                    pi,
                    Some(kind),
                    Some(id),
                    *n,
                    format!(
                        "duplicate id: already defined as a {} in pack {} ({})",
                        first.kind,
                        other.pack.pack.id,
                        other.file.display()
                    ),
                );
            }
            *n += 1;
        }
    }

    fn class(&mut self, pi: usize, c: &Class) {
        let k = ElementKind::Class;
        match &c.base {
            None if c.id != ROOT_CLASS => self.at(pi, k, &c.id, format!("no base class: every class derives from {ROOT_CLASS} (write base = \"{ROOT_CLASS}\")")),
            Some(b) => {
                self.resolve(pi, k, &c.id, "base", b, Want::Class);
            }
            None => {}
        }
        if let Some(h) = &c.host {
            self.resolve(pi, k, &c.id, "host", h, Want::Class);
        }
        let mut names = BTreeSet::new();
        for p in &c.properties {
            if !names.insert(p.name.as_str()) {
                self.at(
                    pi,
                    k,
                    &c.id,
                    format!("property {:?} is declared twice", p.name),
                );
            }
        }
        let inherited: Vec<String> = self
            .cat
            .ancestors(&c.id)
            .into_iter()
            .skip(1)
            .filter_map(|a| self.cat.class(a))
            .flat_map(|a| a.properties.iter().map(|p| p.name.clone()))
            .collect();
        for p in &c.properties {
            if inherited.contains(&p.name) {
                self.at(
                    pi,
                    k,
                    &c.id,
                    format!("property {:?} is already declared by a base class", p.name),
                );
            }
        }
        let has_key = self.cat.properties(&c.id).iter().any(|p| p.key);
        if c.singleton && has_key {
            self.at(
                pi,
                k,
                &c.id,
                "a singleton class cannot have key properties".into(),
            );
        }
        if c.singleton && c.host.is_some() {
            self.at(pi, k, &c.id, "a singleton class cannot be hosted".into());
        }
        let hosted = self.cat.host_of(&c.id).is_some();
        let rooted = self.cat.ancestors(&c.id).last() == Some(&ROOT_CLASS);
        if rooted && !c.is_abstract && !c.singleton && !hosted && !has_key && c.id != ROOT_CLASS {
            self.at(pi, k, &c.id, "missing key property: an unhosted class that is neither abstract nor a singleton needs at least one key property to identify its instances".into());
        }
    }

    fn relationship(&mut self, pi: usize, r: &Relationship) {
        let k = ElementKind::Relationship;
        self.resolve(pi, k, &r.id, "source", &r.source, Want::ClassOrGroup);
        self.resolve(pi, k, &r.id, "target", &r.target, Want::ClassOrGroup);
        if r.kind == RelationshipKind::Hosting && !r.is_abstract {
            if let Some(host) = self.cat.host_of(&r.target) {
                if self.cat.class(&r.source).is_some()
                    && !self.cat.is_a(&r.source, host)
                    && !self.cat.is_a(host, &r.source)
                {
                    self.at(
                        pi,
                        k,
                        &r.id,
                        format!(
                            "hosting relationship: {} is hosted by {host}, not by {}",
                            r.target, r.source
                        ),
                    );
                }
            } else if self.cat.class(&r.target).is_some() {
                self.at(pi, k, &r.id, format!("hosting relationship: target {} is not a hosted class (give it host = \"{}\")", r.target, r.source));
            }
        }
    }

    fn group(&mut self, pi: usize, g: &Group) {
        let k = ElementKind::Group;
        if let Some(b) = &g.base {
            if let Some(r) = self.resolve(pi, k, &g.id, "base", b, Want::ClassOrGroup) {
                if r.kind == ElementKind::Class
                    && self.cat.class(GROUP_BASE).is_some()
                    && !self.cat.is_a(b, GROUP_BASE)
                {
                    self.at(
                        pi,
                        k,
                        &g.id,
                        format!("base {b:?} is not a group class (derived from {GROUP_BASE})"),
                    );
                }
            }
        }
        if let Some(r) = &g.relationship {
            if let Some(er) = self.resolve(pi, k, &g.id, "relationship", r, Want::Relationship) {
                let rel = &self.cat.packs()[er.pack].pack.relationships[er.pos];
                if rel.kind != RelationshipKind::Containment {
                    self.at(
                        pi,
                        k,
                        &g.id,
                        format!(
                            "relationship {r:?} is {:?}; group membership is containment",
                            rel.kind
                        ),
                    );
                }
            }
        }
        for rule in &g.rules {
            self.resolve(pi, k, &g.id, "rule class", &rule.class, Want::ClassOrGroup);
            if let Some(e) = &rule.expression {
                self.property_expr(pi, k, &g.id, &rule.class, e);
                for grp in e.groups() {
                    if grp == g.id {
                        self.at(
                            pi,
                            k,
                            &g.id,
                            "a membership rule cannot test membership of its own group".into(),
                        );
                    } else {
                        self.resolve(pi, k, &g.id, "contained(...)", grp, Want::Group);
                    }
                }
            }
        }
        for sub in &g.subgroups {
            if *sub == g.id {
                self.at(pi, k, &g.id, "a group cannot be its own subgroup".into());
                continue;
            }
            if self
                .resolve(pi, k, &g.id, "subgroup", sub, Want::Group)
                .is_none()
            {
                continue;
            }
            if let Some(path) = self.subgroup_path(sub, &g.id) {
                self.at(
                    pi,
                    k,
                    &g.id,
                    format!("subgroups form a cycle: {} -> {}", g.id, path.join(" -> ")),
                );
            }
        }
        let both: Vec<&String> = g.include.iter().filter(|i| g.exclude.contains(i)).collect();
        for i in both {
            self.at(
                pi,
                k,
                &g.id,
                format!("instance {i:?} is both included and excluded (exclude wins)"),
            );
        }
    }

    /// The subgroups leading from group `from` to group `to` (`from` first), if any.
    fn subgroup_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut stack: Vec<Vec<String>> = vec![vec![from.to_string()]];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last()?.clone();
            if last == to {
                return Some(path);
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for next in self
                .cat
                .group(&last)
                .map(|g| g.subgroups.clone())
                .unwrap_or_default()
            {
                let mut p = path.clone();
                p.push(next);
                stack.push(p);
            }
        }
        None
    }

    /// Expressions over instance properties: every path names a property of the class.
    fn property_expr(&mut self, pi: usize, k: ElementKind, id: &str, class: &str, e: &Expr) {
        if self.cat.class(class).is_none() {
            return;
        }
        let props: Vec<String> = self
            .cat
            .properties(class)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for p in e.paths() {
            let known = match p.simple_name() {
                Some(n) => props.iter().any(|x| x == n) || n == "DisplayName" || n == "Id",
                None => false,
            };
            if !known {
                self.at(
                    pi,
                    k,
                    id,
                    format!(
                        "expression reads {p}, which is not a property of {class} (it has: {})",
                        if props.is_empty() {
                            "none".to_string()
                        } else {
                            props.join(", ")
                        }
                    ),
                );
            }
        }
    }

    fn target(&mut self, pi: usize, k: ElementKind, id: &str, target: &str) -> bool {
        self.resolve(pi, k, id, "target", target, Want::ClassOrGroup)
            .is_some()
    }

    fn state_trigger(&mut self, pi: usize, k: ElementKind, id: &str, on: Option<Health>) {
        if matches!(on, Some(Health::Healthy | Health::Uninitialized)) {
            self.at(pi, k, id, "on_state must be warning or critical".into());
        }
    }

    fn command(
        &mut self,
        pi: usize,
        k: ElementKind,
        id: &str,
        cmd: &[String],
        target: Option<&str>,
    ) {
        if cmd.is_empty() || cmd[0].trim().is_empty() {
            self.at(
                pi,
                k,
                id,
                "command is empty: give the program and its arguments".into(),
            );
        }
        for part in cmd {
            self.template(pi, k, id, "command", part, target);
        }
    }

    /// A text with `$Target/...$` references: syntax, and properties of the target class.
    fn template(
        &mut self,
        pi: usize,
        k: ElementKind,
        id: &str,
        field: &str,
        text: &str,
        target: Option<&str>,
    ) {
        let t = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.at(pi, k, id, format!("{field}: {e}"));
                return;
            }
        };
        let Some(target) = target.filter(|t| self.cat.class(t).is_some()) else {
            return;
        };
        let chain: Vec<String> = std::iter::once(target)
            .chain(self.cat.host_chain(target))
            .map(str::to_string)
            .collect();
        for r in t.target_refs() {
            let Some(class) = chain.get(r.hops) else {
                self.at(
                    pi,
                    k,
                    id,
                    format!(
                        "{field}: {} climbs {} hosts, but {target} has {}",
                        crate::reference::Part::Target(r.clone()),
                        r.hops,
                        chain.len() - 1
                    ),
                );
                continue;
            };
            if let TargetField::Property {
                class: declared,
                name,
            } = &r.field
            {
                let owner = declared.as_deref().unwrap_or(class);
                let has = self.cat.class(owner).is_none() && declared.is_some()
                    || self.cat.properties(owner).iter().any(|p| &p.name == name);
                if !has {
                    self.at(
                        pi,
                        k,
                        id,
                        format!("{field}: property {name:?} is not a property of {owner}"),
                    );
                }
            }
        }
    }

    fn pipeline(
        &mut self,
        pi: usize,
        k: ElementKind,
        id: &str,
        source: &DataSource,
        conditions: &[Condition],
        target: &str,
    ) -> Option<DataType> {
        self.source(pi, k, id, source, target);
        let mut ty = modules::output_of(source);
        for (i, c) in conditions.iter().enumerate() {
            match modules::condition_output(c, ty) {
                Ok(t) => ty = t,
                Err(msg) => {
                    self.at(
                        pi,
                        k,
                        id,
                        format!(
                            "condition {} ({}): {msg}",
                            i + 1,
                            modules::condition_name(c)
                        ),
                    );
                    return None;
                }
            }
            if let Condition::MapPerf {
                object,
                counter,
                instance,
                value,
            } = c
            {
                for (f, t) in [
                    ("object", object),
                    ("counter", counter),
                    ("instance", instance),
                    ("value", value),
                ] {
                    self.template(pi, k, id, f, t, Some(target));
                }
            }
        }
        Some(ty)
    }

    fn source(&mut self, pi: usize, k: ElementKind, id: &str, s: &DataSource, target: &str) {
        if let Err(msg) = modules::check_source(s) {
            self.at(
                pi,
                k,
                id,
                format!("source ({}): {msg}", modules::source_name(s)),
            );
        }
        match s {
            DataSource::Perf {
                object,
                counter,
                instance,
                ..
            } => {
                for t in [Some(object), Some(counter), instance.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    self.template(pi, k, id, "source", t, Some(target));
                }
            }
            DataSource::Service { service, .. } => {
                self.template(pi, k, id, "source", service, Some(target))
            }
            DataSource::LogFile { path, .. } => {
                self.template(pi, k, id, "source", path, Some(target))
            }
            DataSource::Command { command, .. } => self.command(pi, k, id, command, Some(target)),
            _ => {}
        }
    }

    fn discovery(&mut self, pi: usize, d: &Discovery) {
        let k = ElementKind::Discovery;
        self.target(pi, k, &d.id, &d.target);
        if d.classes.is_empty() && d.relationships.is_empty() {
            self.at(
                pi,
                k,
                &d.id,
                "discovers nothing: list its classes or relationships".into(),
            );
        }
        for c in &d.classes {
            self.resolve(pi, k, &d.id, "class", c, Want::ClassOrGroup);
        }
        for r in &d.relationships {
            self.resolve(pi, k, &d.id, "relationship", r, Want::Relationship);
        }
        if let Some(s) = &d.source {
            self.source(pi, k, &d.id, s, &d.target);
            if modules::output_of(s) != DataType::Discovery {
                self.at(pi, k, &d.id, format!(
                    "source {} produces {} data; a discovery needs a source that produces discovery data (inventory)",
                    modules::source_name(s), modules::output_of(s)
                ));
            }
        }
        self.overridable(pi, k, &d.id, Workflow::Discovery(d));
    }

    fn rule(&mut self, pi: usize, r: &Rule) {
        let k = ElementKind::Rule;
        self.target(pi, k, &r.id, &r.target);
        let ty = self.pipeline(pi, k, &r.id, &r.source, &r.conditions, &r.target);
        if r.actions.is_empty() {
            self.at(pi, k, &r.id, "a rule needs at least one action".into());
        }
        if let Some(ty) = ty {
            for a in &r.actions {
                if let Err(msg) = modules::action_accepts(a, ty) {
                    self.at(
                        pi,
                        k,
                        &r.id,
                        format!("action {}: {msg}", modules::action_name(a)),
                    );
                }
            }
        }
        for a in &r.actions {
            match a {
                Action::Alert {
                    name, description, ..
                } => {
                    if name.trim().is_empty() {
                        self.at(pi, k, &r.id, "alert name is empty".into());
                    }
                    self.template(pi, k, &r.id, "alert name", name, Some(&r.target));
                    self.template(
                        pi,
                        k,
                        &r.id,
                        "alert description",
                        description,
                        Some(&r.target),
                    );
                }
                Action::Command { command, .. } => {
                    self.command(pi, k, &r.id, command, Some(&r.target))
                }
                _ => {}
            }
        }
        self.overridable(pi, k, &r.id, Workflow::Rule(r));
    }

    fn unit_monitor(&mut self, pi: usize, m: &UnitMonitor) {
        let k = ElementKind::UnitMonitor;
        self.target(pi, k, &m.id, &m.target);
        self.parent(pi, k, &m.id, &m.parent, &m.target);
        if let Some(ty) = self.pipeline(pi, k, &m.id, &m.source, &m.conditions, &m.target) {
            if let Err(msg) = modules::detection_accepts(&m.detect, ty) {
                self.at(
                    pi,
                    k,
                    &m.id,
                    format!("detect ({}): {msg}", m.detect.type_name()),
                );
            }
        }
        if let Err(msg) = modules::check_detection(&m.detect) {
            self.at(
                pi,
                k,
                &m.id,
                format!("detect ({}): {msg}", m.detect.type_name()),
            );
        }
        self.alert(pi, k, &m.id, m.alert.as_ref(), &m.target);
        self.overridable(pi, k, &m.id, Workflow::Monitor(m));
    }

    fn alert(
        &mut self,
        pi: usize,
        k: ElementKind,
        id: &str,
        a: Option<&AlertSettings>,
        target: &str,
    ) {
        let Some(a) = a else { return };
        if !matches!(a.on, Health::Warning | Health::Critical) {
            self.at(
                pi,
                k,
                id,
                "alert.on must be warning (warning or critical) or critical".into(),
            );
        }
        if a.name.trim().is_empty() {
            self.at(pi, k, id, "alert name is empty".into());
        }
        self.template(pi, k, id, "alert name", &a.name, Some(target));
        self.template(pi, k, id, "alert description", &a.description, Some(target));
    }

    /// A monitor's parent: an aggregate of the same class or a base class.
    fn parent(&mut self, pi: usize, k: ElementKind, id: &str, parent: &str, target: &str) {
        if let Some(r) = self.resolve(pi, k, id, "parent", parent, Want::Aggregate) {
            let agg = &self.cat.packs()[r.pack].pack.aggregates[r.pos];
            if self.cat.class(target).is_some() && !self.cat.is_a(target, &agg.target) {
                self.at(pi, k, id, format!(
                    "parent {parent} targets {}, which is neither {target} nor a base class of it", agg.target
                ));
            }
        }
    }

    fn aggregate(&mut self, pi: usize, a: &AggregateMonitor) {
        let k = ElementKind::AggregateMonitor;
        self.target(pi, k, &a.id, &a.target);
        if let Some(p) = &a.parent {
            self.parent(pi, k, &a.id, p, &a.target);
        }
        self.alert(pi, k, &a.id, a.alert.as_ref(), &a.target);
    }

    fn dependency(&mut self, pi: usize, d: &DependencyMonitor) {
        let k = ElementKind::DependencyMonitor;
        self.target(pi, k, &d.id, &d.target);
        self.parent(pi, k, &d.id, &d.parent, &d.target);
        if let Some(r) = self.resolve(
            pi,
            k,
            &d.id,
            "relationship",
            &d.relationship,
            Want::Relationship,
        ) {
            let rel = &self.cat.packs()[r.pack].pack.relationships[r.pos];
            if rel.kind == RelationshipKind::Reference {
                self.at(pi, k, &d.id, format!("relationship {} is a reference; dependency monitors roll up hosting or containment", rel.id));
            }
            if self.cat.class(&d.target).is_some() && !self.cat.is_a(&d.target, &rel.source) {
                self.at(
                    pi,
                    k,
                    &d.id,
                    format!(
                        "target {} is not the source class {} of {} (or derived from it)",
                        d.target, rel.source, rel.id
                    ),
                );
            }
            if let Some(m) = self.resolve(
                pi,
                k,
                &d.id,
                "member_monitor",
                &d.member_monitor,
                Want::Monitor,
            ) {
                let mt = self.monitor_target(m);
                if let Some(mt) = mt {
                    if self.cat.class(&rel.target).is_some()
                        && !self.cat.is_a(&rel.target, &mt)
                        && !self.cat.is_a(&mt, &rel.target)
                    {
                        self.at(pi, k, &d.id, format!(
                            "member_monitor {} targets {mt}, but the members ({}) are of class {}", d.member_monitor, rel.id, rel.target
                        ));
                    }
                }
            }
        }
        match (d.algorithm, d.percentage) {
            (DependencyAlgorithm::Percentage, None) => self.at(
                pi,
                k,
                &d.id,
                "algorithm percentage needs percentage = N (1 to 100)".into(),
            ),
            (DependencyAlgorithm::Percentage, Some(p)) if !(1..=100).contains(&p) => self.at(
                pi,
                k,
                &d.id,
                format!("percentage {p} is not between 1 and 100"),
            ),
            (DependencyAlgorithm::WorstOf | DependencyAlgorithm::BestOf, Some(_)) => self.at(
                pi,
                k,
                &d.id,
                "percentage is only used with algorithm = \"percentage\"".into(),
            ),
            _ => {}
        }
        self.alert(pi, k, &d.id, d.alert.as_ref(), &d.target);
    }

    fn monitor_target(&self, r: ElementRef) -> Option<String> {
        let p = &self.cat.packs()[r.pack].pack;
        Some(match r.kind {
            ElementKind::UnitMonitor => p.monitors[r.pos].target.clone(),
            ElementKind::AggregateMonitor => p.aggregates[r.pos].target.clone(),
            ElementKind::DependencyMonitor => p.dependencies[r.pos].target.clone(),
            _ => return None,
        })
    }

    fn overridable(&mut self, pi: usize, k: ElementKind, id: &str, w: Workflow<'_>) {
        let params = parameters(w);
        for name in w.overridable() {
            match params.get(name) {
                None => self.at(pi, k, id, format!(
                    "overridable parameter {name:?} is not a configuration parameter of this {k} (it has: {})",
                    params.iter().filter(|(_, (_, pk))| *pk == ParamKind::Config).map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some((_, ParamKind::Property)) => self.at(pi, k, id, format!(
                    "{name:?} is always overridable; do not list it in overridable"
                )),
                Some(_) => {}
            }
        }
    }

    fn override_(&mut self, pi: usize, o: &Override) {
        let k = ElementKind::Override;
        let context_ok = self
            .resolve(pi, k, &o.id, "context", &o.context, Want::ClassOrGroup)
            .is_some();
        if o.instance.as_deref().is_some_and(|i| i.trim().is_empty()) {
            self.at(pi, k, &o.id, "instance is empty".into());
        }
        let Some(wr) = self.resolve(pi, k, &o.id, "workflow", &o.workflow, Want::Workflow) else {
            return;
        };
        let Some(w) = self.cat.workflow(&o.workflow) else {
            return;
        };
        let _ = wr;
        let params = parameters(w);
        match params.get(&o.parameter) {
            None => self.at(
                pi,
                k,
                &o.id,
                format!(
                    "{} has no parameter {:?} (it has: {})",
                    o.workflow,
                    o.parameter,
                    params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Some((_, ParamKind::Config)) if !w.overridable().contains(&o.parameter) => {
                self.at(
                    pi,
                    k,
                    &o.id,
                    format!(
                "parameter {:?} of {} is not overridable (the {} declares overridable = [{}])",
                o.parameter, o.workflow, w.kind(),
                w.overridable().iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
            ),
                )
            }
            Some((default, _)) => {
                if let Err(msg) = crate::overrides::check_value(&o.parameter, default, &o.value) {
                    self.at(pi, k, &o.id, format!("{msg} (override of {})", o.workflow));
                }
            }
        }
        if context_ok {
            if let Some(target) = crate::overrides::workflow_target(self.cat, w) {
                let ctx = o.context.as_str();
                // The context must be able to cover target instances: the target class itself,
                // a class of the hosting chain (either way along inheritance), or a group.
                let chain: Vec<&str> = std::iter::once(target)
                    .chain(self.cat.host_chain(target))
                    .collect();
                let related = self.cat.group(ctx).is_some()
                    || chain
                        .iter()
                        .any(|c| self.cat.is_a(c, ctx) || self.cat.is_a(ctx, c));
                if !related {
                    self.at(pi, k, &o.id, format!(
                        "context {ctx} can never apply: {} targets {target}, which is neither a {ctx} nor hosted by one", o.workflow
                    ));
                }
            }
        }
    }

    fn class_cycles(&mut self) {
        // Inheritance and hosting, per class, reported once per cycle at its smallest id.
        let mut reported = BTreeSet::new();
        for (pi, lp) in self.cat.packs().iter().enumerate() {
            for c in &lp.pack.classes {
                for (what, next) in [("inheritance", 0), ("hosting", 1)] {
                    let mut path = vec![c.id.clone()];
                    let mut cur = c.id.clone();
                    loop {
                        let n = if next == 0 {
                            self.cat
                                .class(&cur)
                                .and_then(|x| x.base)
                                .map(str::to_string)
                        } else {
                            self.cat.host_of(&cur).map(str::to_string)
                        };
                        let Some(n) = n else { break };
                        if let Some(start) = path.iter().position(|p| *p == n) {
                            let cycle = &path[start..];
                            if cycle.contains(&c.id) {
                                let mut key: Vec<String> = cycle.to_vec();
                                key.sort();
                                if reported.insert((what, key)) {
                                    let mut shown = cycle.to_vec();
                                    shown.push(n.clone());
                                    self.at(
                                        pi,
                                        ElementKind::Class,
                                        &c.id,
                                        format!("{what} cycle: {}", shown.join(" -> ")),
                                    );
                                }
                            }
                            break;
                        }
                        path.push(n.clone());
                        cur = n;
                    }
                }
            }
        }
    }

    /// Monitor trees: every monitor feeds its parent on the same instance; a cycle there never
    /// settles. Dependency monitors cross instances: a cycle of rollups between classes that
    /// are not related by inheritance (A rolls up B, B rolls up A) is a containment rollup
    /// cycle. (A class rolling up its own kind, like groups of groups, is legal; instance
    /// cycles there are the health engine's to stop.)
    fn monitor_cycles(&mut self) {
        let mut tree: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut home: BTreeMap<String, (usize, ElementKind)> = BTreeMap::new();
        let mut rollups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut rollup_home: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (pi, lp) in self.cat.packs().iter().enumerate() {
            let p = &lp.pack;
            for m in &p.monitors {
                tree.entry(m.id.clone()).or_default().push(m.parent.clone());
                home.insert(m.id.clone(), (pi, ElementKind::UnitMonitor));
            }
            for a in &p.aggregates {
                if let Some(par) = &a.parent {
                    tree.entry(a.id.clone()).or_default().push(par.clone());
                }
                home.insert(a.id.clone(), (pi, ElementKind::AggregateMonitor));
            }
            for d in &p.dependencies {
                tree.entry(d.id.clone()).or_default().push(d.parent.clone());
                home.insert(d.id.clone(), (pi, ElementKind::DependencyMonitor));
                if let Some(rel) = self.cat.relationship(&d.relationship) {
                    let (u, t) = (rel.target.clone(), d.target.clone());
                    if !self.cat.is_a(&u, &t) && !self.cat.is_a(&t, &u) {
                        rollups.entry(u.clone()).or_default().push(t.clone());
                        rollup_home.entry(t).or_insert((pi, d.id.clone()));
                    }
                }
            }
        }
        for cycle in cycles(&tree) {
            if let Some(&(pi, kind)) = cycle.iter().find_map(|c| home.get(c)) {
                let at = cycle
                    .iter()
                    .find(|c| home.contains_key(*c))
                    .cloned()
                    .unwrap_or_default();
                self.at(
                    pi,
                    kind,
                    &at,
                    format!("monitor tree cycle: {}", cycle.join(" -> ")),
                );
            }
        }
        for cycle in cycles(&rollups) {
            if let Some((pi, id)) = cycle.iter().find_map(|c| rollup_home.get(c)).cloned() {
                self.at(
                    pi,
                    ElementKind::DependencyMonitor,
                    &id,
                    format!(
                        "containment rollup cycle between classes: {} (each rolls up the next)",
                        cycle.join(" <- ")
                    ),
                );
            }
        }
    }
}

/// Every cycle of a directed graph, each once, as the node list with its first node repeated.
fn cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for start in edges.keys() {
        if colour.get(start.as_str()).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        colour.insert(start, 1);
        while let Some(top) = stack.last_mut() {
            let (node, i) = (top.0, top.1);
            top.1 += 1;
            match edges.get(node).and_then(|v| v.get(i)) {
                None => {
                    colour.insert(node, 2);
                    stack.pop();
                }
                Some(n) => match colour.get(n.as_str()).copied().unwrap_or(0) {
                    0 => {
                        colour.insert(n, 1);
                        stack.push((n, 0));
                    }
                    1 => {
                        let pos = stack
                            .iter()
                            .position(|(s, _)| *s == n.as_str())
                            .unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[pos..].iter().map(|(s, _)| s.to_string()).collect();
                        let mut key = cycle.clone();
                        key.sort();
                        if seen.insert(key) {
                            cycle.push(n.clone());
                            out.push(cycle);
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    out
}
