//! A set of packs loaded together, with lookups across them (what SCOM calls the management
//! group's configuration).

use std::collections::{BTreeMap, HashMap};

use crate::load::LoadedPack;
use crate::pack::*;

/// Where an element lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementRef {
    /// Index into [`Catalog::packs`].
    pub pack: usize,
    pub kind: ElementKind,
    /// Index into the pack's list of that kind.
    pub pos: usize,
}

/// A class or a group seen as a class.
#[derive(Debug, Clone, Copy)]
pub struct ClassInfo<'a> {
    pub id: &'a str,
    pub base: Option<&'a str>,
    pub is_abstract: bool,
    pub singleton: bool,
    pub host: Option<&'a str>,
    pub properties: &'a [Property],
    pub is_group: bool,
}

/// A workflow: anything overrides can change.
#[derive(Debug, Clone, Copy)]
pub enum Workflow<'a> {
    Discovery(&'a Discovery),
    Rule(&'a Rule),
    Monitor(&'a UnitMonitor),
    Aggregate(&'a AggregateMonitor),
    Dependency(&'a DependencyMonitor),
    Diagnostic(&'a Diagnostic),
    Recovery(&'a Recovery),
}

/// The default base class of groups.
pub const GROUP_BASE: &str = "System.Group";
/// The root class.
pub const ROOT_CLASS: &str = "System.Entity";

/// Packs loaded together.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packs: Vec<LoadedPack>,
    index: HashMap<String, Vec<ElementRef>>,
    /// Each class and group with its bases, nearest first (worked out once: `is_a` is on
    /// the health engine's path).
    ancestry: HashMap<String, Vec<String>>,
}

impl Catalog {
    /// Index the packs (duplicates are kept: validation reports them).
    pub fn new(packs: Vec<LoadedPack>) -> Catalog {
        let mut index: HashMap<String, Vec<ElementRef>> = HashMap::new();
        for (pi, lp) in packs.iter().enumerate() {
            let mut counters: BTreeMap<ElementKind, usize> = BTreeMap::new();
            for (kind, id) in lp.pack.elements() {
                let pos = counters.entry(kind).or_default();
                index.entry(id.to_string()).or_default().push(ElementRef {
                    pack: pi,
                    kind,
                    pos: *pos,
                });
                *pos += 1;
            }
        }
        let mut catalog = Catalog {
            packs,
            index,
            ancestry: HashMap::new(),
        };
        let classes: Vec<String> = catalog
            .index
            .iter()
            .filter(|(_, refs)| {
                refs.iter()
                    .any(|r| matches!(r.kind, ElementKind::Class | ElementKind::Group))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let ancestry = classes
            .into_iter()
            .map(|c| {
                let a = catalog
                    .ancestors(&c)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                (c, a)
            })
            .collect();
        catalog.ancestry = ancestry;
        catalog
    }

    /// The packs, in load order.
    pub fn packs(&self) -> &[LoadedPack] {
        &self.packs
    }

    /// Consume into the packs.
    pub fn into_packs(self) -> Vec<LoadedPack> {
        self.packs
    }

    /// The pack with this id (the first if loaded twice).
    pub fn pack(&self, id: &str) -> Option<&LoadedPack> {
        self.packs.iter().find(|p| p.pack.pack.id == id)
    }

    /// Index of the pack with this id.
    pub fn pack_index(&self, id: &str) -> Option<usize> {
        self.packs.iter().position(|p| p.pack.pack.id == id)
    }

    /// Every definition of an element id.
    pub fn find(&self, id: &str) -> &[ElementRef] {
        self.index.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The single definition of `id`, if there is exactly one.
    pub fn one(&self, id: &str) -> Option<ElementRef> {
        match self.find(id) {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The pack holding an element.
    pub fn pack_of(&self, r: ElementRef) -> &LoadedPack {
        &self.packs[r.pack]
    }

    /// A class or group by id.
    pub fn class(&self, id: &str) -> Option<ClassInfo<'_>> {
        self.find(id).iter().find_map(|r| {
            let pack = &self.packs[r.pack].pack;
            match r.kind {
                ElementKind::Class => {
                    let c = &pack.classes[r.pos];
                    Some(ClassInfo {
                        id: &c.id,
                        base: c.base.as_deref(),
                        is_abstract: c.is_abstract,
                        singleton: c.singleton,
                        host: c.host.as_deref(),
                        properties: &c.properties,
                        is_group: false,
                    })
                }
                ElementKind::Group => {
                    let g = &pack.groups[r.pos];
                    Some(ClassInfo {
                        id: &g.id,
                        base: Some(g.base.as_deref().unwrap_or(GROUP_BASE)),
                        is_abstract: false,
                        singleton: true,
                        host: None,
                        properties: &[],
                        is_group: true,
                    })
                }
                _ => None,
            }
        })
    }

    /// A group by id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.find(id).iter().find_map(|r| {
            (r.kind == ElementKind::Group).then(|| &self.packs[r.pack].pack.groups[r.pos])
        })
    }

    /// A relationship by id.
    pub fn relationship(&self, id: &str) -> Option<&Relationship> {
        self.find(id).iter().find_map(|r| {
            (r.kind == ElementKind::Relationship)
                .then(|| &self.packs[r.pack].pack.relationships[r.pos])
        })
    }

    /// The class and its bases, nearest first; stops at an unknown class or a cycle.
    pub fn ancestors<'a>(&'a self, class: &'a str) -> Vec<&'a str> {
        let mut out = vec![class];
        let mut cur = class;
        while let Some(base) = self.class(cur).and_then(|c| c.base) {
            if out.contains(&base) {
                break;
            }
            out.push(base);
            cur = base;
        }
        out
    }

    /// Is `class` the same as `ancestor` or derived from it?
    pub fn is_a(&self, class: &str, ancestor: &str) -> bool {
        class == ancestor
            || self
                .ancestry
                .get(class)
                .is_some_and(|a| a.iter().any(|x| x == ancestor))
    }

    /// Distance from the root: `System.Entity` is 0.
    pub fn depth(&self, class: &str) -> usize {
        self.ancestors(class).len().saturating_sub(1)
    }

    /// The host class of a class: its own, or inherited from a base.
    pub fn host_of(&self, class: &str) -> Option<&str> {
        self.ancestors(class)
            .into_iter()
            .find_map(|c| self.class(c).and_then(|c| c.host))
    }

    /// The host classes, nearest first (stops at a cycle).
    pub fn host_chain<'a>(&'a self, class: &'a str) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        let mut cur = class;
        while let Some(h) = self.host_of(cur) {
            if out.contains(&h) || h == class {
                break;
            }
            out.push(h);
            cur = h;
        }
        out
    }

    /// Every property of a class, inherited ones included (base first).
    pub fn properties(&self, class: &str) -> Vec<&Property> {
        let mut chain = self.ancestors(class);
        chain.reverse();
        chain
            .into_iter()
            .filter_map(|c| self.class(c))
            .flat_map(|c| c.properties.iter())
            .collect()
    }

    /// A workflow by id.
    pub fn workflow(&self, id: &str) -> Option<Workflow<'_>> {
        self.find(id).iter().find_map(|r| {
            let p = &self.packs[r.pack].pack;
            Some(match r.kind {
                ElementKind::Discovery => Workflow::Discovery(&p.discoveries[r.pos]),
                ElementKind::Rule => Workflow::Rule(&p.rules[r.pos]),
                ElementKind::UnitMonitor => Workflow::Monitor(&p.monitors[r.pos]),
                ElementKind::AggregateMonitor => Workflow::Aggregate(&p.aggregates[r.pos]),
                ElementKind::DependencyMonitor => Workflow::Dependency(&p.dependencies[r.pos]),
                ElementKind::Diagnostic => Workflow::Diagnostic(&p.diagnostics[r.pos]),
                ElementKind::Recovery => Workflow::Recovery(&p.recoveries[r.pos]),
                _ => return None,
            })
        })
    }

    /// Every override in every pack, with its pack index.
    pub fn overrides(&self) -> impl Iterator<Item = (usize, &Override)> {
        self.packs
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.pack.overrides.iter().map(move |o| (i, o)))
    }

    /// The kind of monitor an id names, if it is one.
    pub fn monitor_kind(&self, id: &str) -> Option<ElementKind> {
        self.find(id).iter().map(|r| r.kind).find(|k| {
            matches!(
                k,
                ElementKind::UnitMonitor
                    | ElementKind::AggregateMonitor
                    | ElementKind::DependencyMonitor
            )
        })
    }
}

impl<'a> Workflow<'a> {
    /// The workflow's id.
    pub fn id(&self) -> &'a str {
        match self {
            Workflow::Discovery(w) => &w.id,
            Workflow::Rule(w) => &w.id,
            Workflow::Monitor(w) => &w.id,
            Workflow::Aggregate(w) => &w.id,
            Workflow::Dependency(w) => &w.id,
            Workflow::Diagnostic(w) => &w.id,
            Workflow::Recovery(w) => &w.id,
        }
    }

    /// The kind of element.
    pub fn kind(&self) -> ElementKind {
        match self {
            Workflow::Discovery(_) => ElementKind::Discovery,
            Workflow::Rule(_) => ElementKind::Rule,
            Workflow::Monitor(_) => ElementKind::UnitMonitor,
            Workflow::Aggregate(_) => ElementKind::AggregateMonitor,
            Workflow::Dependency(_) => ElementKind::DependencyMonitor,
            Workflow::Diagnostic(_) => ElementKind::Diagnostic,
            Workflow::Recovery(_) => ElementKind::Recovery,
        }
    }

    /// Configuration parameters overrides may change (declared by the element).
    pub fn overridable(&self) -> &'a [String] {
        match self {
            Workflow::Discovery(w) => &w.overridable,
            Workflow::Rule(w) => &w.overridable,
            Workflow::Monitor(w) => &w.overridable,
            _ => &[],
        }
    }
}
