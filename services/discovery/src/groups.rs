//! Group membership (DESIGN.md section 3): a group's members are the instances that match one
//! of its membership rules (class, derived classes included, and an expression over the
//! instance's properties and its other group memberships), plus its include list, minus its
//! exclude list. Membership is a containment relationship from the group's singleton
//! instance to the member; it is computed on the member's partition, so it follows the
//! member's properties, relationships and deletion incrementally.

use std::collections::{BTreeMap, BTreeSet};

use healthstream_contracts::content_id;
use healthstream_contracts::records::{InstanceRef, Properties, PropertyValue};
use healthstream_model::catalog::Catalog;
use healthstream_model::expr::{Expr, Path, Subject, Value};

use crate::identity::{resolve, Classes};

/// The default membership relationship.
pub const GROUP_RELATIONSHIP: &str = "System.GroupContainsEntities";

/// One group, ready to evaluate.
#[derive(Debug, Clone)]
pub struct GroupDef {
    pub id: String,
    /// The group's singleton instance id.
    pub instance_id: String,
    pub relationship: String,
    pub rules: Vec<(String, Option<Expr>)>,
    pub include: BTreeSet<String>,
    pub exclude: BTreeSet<String>,
}

/// The groups of a catalog, in evaluation order (a group whose rules test membership of
/// another group comes after it), with a digest of their definitions.
pub fn groups(catalog: &Catalog, classes: &mut Classes) -> (Vec<GroupDef>, String) {
    let mut defs: BTreeMap<String, GroupDef> = BTreeMap::new();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut text = String::new();
    for p in catalog.packs() {
        for g in &p.pack.groups {
            let instance_id = resolve(
                classes,
                &InstanceRef {
                    class: g.id.clone(),
                    keys: Properties::new(),
                    host: None,
                },
                false,
                2,
            )
            .map(|r| r.id)
            .unwrap_or_default();
            let rules: Vec<(String, Option<Expr>)> = g
                .rules
                .iter()
                .map(|r| (r.class.clone(), r.expression.clone()))
                .collect();
            deps.insert(
                g.id.clone(),
                g.rules
                    .iter()
                    .filter_map(|r| r.expression.as_ref())
                    .flat_map(|e| e.groups().into_iter().map(str::to_string))
                    .collect(),
            );
            text.push_str(&format!(
                "{}|{:?}|{:?}|{:?}|{:?}\n",
                g.id, g.rules, g.include, g.exclude, g.relationship
            ));
            defs.insert(
                g.id.clone(),
                GroupDef {
                    id: g.id.clone(),
                    instance_id,
                    relationship: g
                        .relationship
                        .clone()
                        .unwrap_or_else(|| GROUP_RELATIONSHIP.to_string()),
                    rules,
                    include: g.include.iter().cloned().collect(),
                    exclude: g.exclude.iter().cloned().collect(),
                },
            );
        }
    }
    // Dependencies first; a cycle (which validation reports) is broken by id order.
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        id: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        on_path: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if done.contains(id) || !on_path.insert(id.to_string()) {
            return;
        }
        for d in deps.get(id).into_iter().flatten() {
            visit(d, deps, done, on_path, order);
        }
        on_path.remove(id);
        if done.insert(id.to_string()) {
            order.push(id.to_string());
        }
    }
    for id in defs.keys() {
        visit(id, &deps, &mut done, &mut BTreeSet::new(), &mut order);
    }
    let ordered = order
        .into_iter()
        .filter_map(|id| defs.remove(&id))
        .collect();
    (ordered, content_id(text.as_bytes()))
}

/// What a membership rule's expression sees of an instance.
pub struct Candidate<'a> {
    pub id: &'a str,
    pub keys: &'a Properties,
    pub properties: &'a Properties,
    /// Group id -> member (as computed so far in this pass, or stored).
    pub memberships: &'a BTreeMap<String, bool>,
}

impl Subject for Candidate<'_> {
    fn lookup(&self, path: &Path) -> Option<Value<'_>> {
        let name = path.simple_name()?;
        if name == "Id" {
            return Some(Value::text(self.id));
        }
        let v = self.keys.get(name).or_else(|| self.properties.get(name))?;
        Some(match v {
            PropertyValue::Null => return None,
            PropertyValue::Boolean(b) => Value::Bool(*b),
            PropertyValue::Long(i) => Value::Number(*i as f64),
            PropertyValue::Double(f) => Value::Number(*f),
            PropertyValue::String(s) => Value::text(s),
        })
    }

    fn contained_in(&self, group: &str) -> bool {
        self.memberships.get(group).copied().unwrap_or(false)
    }
}

impl GroupDef {
    /// Is an instance of `class` a member?
    pub fn admits(&self, classes: &mut Classes, class: &str, c: &Candidate<'_>) -> bool {
        if self.exclude.contains(c.id) {
            return false;
        }
        if self.include.contains(c.id) {
            return true;
        }
        self.rules.iter().any(|(rule_class, expr)| {
            classes.is_a(class, rule_class) && expr.as_ref().is_none_or(|e| e.eval(c))
        })
    }
}
