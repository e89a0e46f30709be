//! The element-by-element conversion of a SCOM management pack.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use roxmltree::{Document, Node};

use crate::expr::Expr;
use crate::pack::*;
use crate::params::ParamValue;

use super::expression::{
    child, child_text, children, convert as convert_expr, mp_element, ExprContext,
};
use super::library::{self, modules, NATIVE_LIBRARY};
use super::{Entry, ImportError, MissingPack, Outcome, Report, ScomImport};

pub struct Importer<'a, 'i> {
    doc: &'a Document<'i>,
    present: &'a BTreeMap<String, Version>,
    /// alias -> (pack id, version text)
    aliases: BTreeMap<String, (String, String)>,
    /// Native references to write: pack -> version.
    references: BTreeMap<String, Version>,
    missing: BTreeMap<String, MissingPack>,
    /// (element id, sub element id) -> (name, description)
    strings: HashMap<(String, Option<String>), (String, String)>,
    /// Module types defined in this pack, by id.
    module_types: HashMap<String, Node<'a, 'i>>,
    knowledge: HashMap<String, Knowledge>,
    entries: Vec<Entry>,
    pack: Pack,
}

/// The notes of the element being converted.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !self.0.contains(&s) {
            self.0.push(s);
        }
    }
}

impl<'a, 'i> Importer<'a, 'i> {
    pub fn run(
        doc: &'a Document<'i>,
        file: &Path,
        present: &'a BTreeMap<String, Version>,
    ) -> Result<ScomImport, ImportError> {
        let root = doc.root_element();
        let not_mp = |message: String| ImportError::NotAManagementPack {
            file: file.to_path_buf(),
            message,
        };
        if root.tag_name().name() != "ManagementPack" {
            return Err(not_mp(format!(
                "the root element is <{}>, not <ManagementPack>",
                root.tag_name().name()
            )));
        }
        let schema_version = root.attribute("SchemaVersion").unwrap_or("1.0").to_string();
        if !(schema_version.starts_with("1.")
            || schema_version.starts_with("2.")
            || schema_version == "1"
            || schema_version == "2")
        {
            return Err(not_mp(format!(
                "SchemaVersion {schema_version:?} is not 1.x or 2.0"
            )));
        }
        let manifest = child(root, "Manifest").ok_or_else(|| not_mp("no <Manifest>".into()))?;
        let identity =
            child(manifest, "Identity").ok_or_else(|| not_mp("no <Manifest><Identity>".into()))?;
        let id = child_text(identity, "ID")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| not_mp("no <Identity><ID>".into()))?;
        let version_text = child_text(identity, "Version").unwrap_or_default();
        let version = Version::parse(&version_text)
            .map_err(|e| not_mp(format!("<Identity><Version>: {e}")))?;
        let mut pack = Pack::new(&id, version.clone());
        pack.pack.name = child_text(manifest, "Name").filter(|s| !s.is_empty());

        let mut imp = Importer {
            doc,
            present,
            aliases: BTreeMap::new(),
            references: BTreeMap::new(),
            missing: BTreeMap::new(),
            strings: HashMap::new(),
            module_types: HashMap::new(),
            knowledge: HashMap::new(),
            entries: Vec::new(),
            pack,
        };
        if let Some(refs) = child(manifest, "References") {
            for r in children(refs, "Reference") {
                let alias = r.attribute("Alias").unwrap_or("").to_string();
                let pid = child_text(r, "ID").unwrap_or_default();
                let ver = child_text(r, "Version").unwrap_or_default();
                imp.aliases.insert(alias, (pid, ver));
            }
        }
        imp.read_strings(root);
        imp.read_knowledge(root);
        imp.read_module_types(root);
        imp.convert_all(root);
        if let Some((name, desc)) = imp.strings.get(&(id.clone(), None)) {
            imp.pack.pack.name = Some(name.clone());
            if !desc.is_empty() {
                imp.pack.pack.description = Some(desc.clone());
            }
        }
        imp.pack.references = imp
            .references
            .iter()
            .map(|(p, v)| Reference {
                pack: p.clone(),
                version: v.clone(),
                alias: imp
                    .aliases
                    .iter()
                    .find(|(_, (pid, _))| pid == p)
                    .map(|(a, _)| a.clone()),
            })
            .collect();
        let report = Report {
            source: file.to_path_buf(),
            pack: id,
            version: version.to_string(),
            schema_version,
            missing_packs: imp.missing.into_values().collect(),
            entries: imp.entries,
        };
        Ok(ScomImport {
            pack: imp.pack,
            report,
        })
    }

    fn line(&self, n: Node<'_, '_>) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    fn entry(&mut self, n: Node<'_, '_>, outcome: Outcome, notes: Notes) {
        let outcome = match outcome {
            Outcome::Imported if !notes.0.is_empty() => Outcome::ImportedWithChanges,
            o => o,
        };
        self.entries.push(Entry {
            scom_type: n.tag_name().name().to_string(),
            id: n.attribute("ID").unwrap_or("").to_string(),
            line: self.line(n),
            outcome,
            notes: notes.0,
        });
    }

    fn skip(&mut self, n: Node<'_, '_>, reason: &str) {
        let mut notes = Notes::default();
        notes.add(reason);
        self.entry(n, Outcome::Skipped, notes);
    }

    /// Resolve an element reference (`Alias!Id` or a local `Id`) to its native id, recording
    /// the pack reference it needs.
    fn element(&mut self, reference: &str, owner: &str, notes: &mut Notes) -> String {
        let reference = mp_element(reference);
        let Some((alias, id)) = reference.split_once('!') else {
            return reference;
        };
        let Some((pack, version)) = self.aliases.get(alias).cloned() else {
            notes.add(format!(
                "{reference}: alias {alias} is not among the references"
            ));
            return id.to_string();
        };
        if let Some(native) = library::native(&pack, id) {
            let v = self
                .present
                .get(NATIVE_LIBRARY)
                .cloned()
                .unwrap_or_else(|| Version(vec![1, 0]));
            self.references
                .entry(NATIVE_LIBRARY.to_string())
                .or_insert(v);
            return native.to_string();
        }
        let v = Version::parse(&version).unwrap_or_else(|_| Version(vec![0]));
        self.references.entry(pack.clone()).or_insert(v);
        if !self.present.contains_key(&pack) {
            let m = self
                .missing
                .entry(pack.clone())
                .or_insert_with(|| MissingPack {
                    alias: alias.to_string(),
                    pack: pack.clone(),
                    version: version.clone(),
                    used_by: Vec::new(),
                });
            if !m.used_by.iter().any(|u| u == owner) {
                m.used_by.push(owner.to_string());
            }
            notes.add(format!("needs {id} from pack {pack}, which is not present"));
        }
        id.to_string()
    }

    /// Rewrite alias-qualified class names inside `$Target/...Property[Type="Alias!X"]/P$`.
    fn text(&mut self, text: &str, owner: &str, notes: &mut Notes) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("Type=\"") {
            out.push_str(&rest[..i + 6]);
            let after = &rest[i + 6..];
            let end = after.find('"').unwrap_or(after.len());
            let name = &after[..end];
            let native = self.element(name, owner, notes);
            out.push_str(&native);
            rest = &after[end..];
            if native == "System.Computer" {
                // `"]/Property$`: SCOM's Windows computer properties by their native names.
                if let Some(tail) = rest.strip_prefix("\"]/") {
                    let prop_end = tail.find('$').unwrap_or(tail.len());
                    let prop = &tail[..prop_end];
                    let mapped = match prop {
                        "NetbiosComputerName" | "DNSName" | "NetworkName" => "NetworkName",
                        "PrincipalName" => "PrincipalName",
                        other => other,
                    };
                    if mapped != prop {
                        notes.add(format!("computer property {prop} read as {mapped}"));
                    }
                    out.push_str("\"]/");
                    out.push_str(mapped);
                    rest = &tail[prop_end..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn read_strings(&mut self, root: Node<'a, 'i>) {
        let Some(lps) = child(root, "LanguagePacks") else {
            return;
        };
        let packs: Vec<Node<'_, '_>> = children(lps, "LanguagePack").collect();
        let chosen = packs
            .iter()
            .find(|p| p.attribute("ID") == Some("ENU"))
            .or_else(|| {
                packs
                    .iter()
                    .find(|p| p.attribute("IsDefault") == Some("true"))
            })
            .or(packs.first());
        let Some(lp) = chosen else { return };
        if let Some(ds) = child(*lp, "DisplayStrings") {
            for d in children(ds, "DisplayString") {
                let key = (
                    d.attribute("ElementID").unwrap_or("").to_string(),
                    d.attribute("SubElementID").map(str::to_string),
                );
                let name = child_text(d, "Name").unwrap_or_default();
                let desc = child_text(d, "Description").unwrap_or_default();
                self.strings.insert(key, (name, desc));
            }
        }
    }

    fn read_knowledge(&mut self, root: Node<'a, 'i>) {
        for lps in children(root, "LanguagePacks") {
            for lp in children(lps, "LanguagePack") {
                let Some(ka) = child(lp, "KnowledgeArticles") else {
                    continue;
                };
                for a in children(ka, "KnowledgeArticle") {
                    let Some(el) = a.attribute("ElementID") else {
                        continue;
                    };
                    let mut k = Knowledge {
                        summary: String::new(),
                        causes: vec![],
                        resolutions: vec![],
                    };
                    for section in a
                        .descendants()
                        .filter(|n| n.is_element() && n.tag_name().name() == "section")
                    {
                        let title = section
                            .children()
                            .find(|c| c.is_element() && c.tag_name().name() == "title")
                            .and_then(|t| t.text())
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase();
                        let paras: Vec<String> = section
                            .descendants()
                            .filter(|n| n.is_element() && n.tag_name().name() == "para")
                            .map(|p| {
                                p.descendants()
                                    .filter(|t| t.is_text())
                                    .filter_map(|t| t.text())
                                    .collect::<Vec<_>>()
                                    .join("")
                                    .trim()
                                    .to_string()
                            })
                            .filter(|s| !s.is_empty())
                            .collect();
                        if title.starts_with("summary") {
                            k.summary = paras.join("\n");
                        } else if title.starts_with("cause") {
                            k.causes.extend(paras);
                        } else if title.starts_with("resolution") {
                            k.resolutions.extend(paras);
                        }
                    }
                    self.knowledge.entry(el.to_string()).or_insert(k);
                }
            }
        }
    }

    fn read_module_types(&mut self, root: Node<'a, 'i>) {
        if let Some(td) = child(root, "TypeDefinitions") {
            for section in ["ModuleTypes", "MonitorTypes"] {
                for s in td
                    .children()
                    .filter(|c| c.is_element() && c.tag_name().name() == section)
                {
                    for m in s.children().filter(|c| c.is_element()) {
                        if let Some(id) = m.attribute("ID") {
                            self.module_types.insert(id.to_string(), m);
                        }
                    }
                }
            }
        }
    }

    fn convert_all(&mut self, root: Node<'a, 'i>) {
        let groups = self.group_ids(root);
        for top in root.children().filter(|c| c.is_element()) {
            match top.tag_name().name() {
                "Manifest" | "LanguagePacks" => {}
                "TypeDefinitions" => {
                    for section in top.children().filter(|c| c.is_element()) {
                        match section.tag_name().name() {
                            "EntityTypes" => {
                                for list in section.children().filter(|c| c.is_element()) {
                                    for e in list.children().filter(|c| c.is_element()) {
                                        match e.tag_name().name() {
                                            "ClassType" => self.class(e, &groups),
                                            "RelationshipType" => self.relationship(e),
                                            _ => self.skip(e, "unknown entity type element"),
                                        }
                                    }
                                }
                            }
                            "ModuleTypes" | "MonitorTypes" => {
                                for e in section.children().filter(|c| c.is_element()) {
                                    self.skip(e, "module type: healthstream has a fixed module catalogue; the workflows using it are converted where it maps onto one");
                                }
                            }
                            other => {
                                for e in section.children().filter(|c| c.is_element()) {
                                    self.skip(e, &format!("{other}: not part of the health model"));
                                }
                            }
                        }
                    }
                }
                "Monitoring" => {
                    for section in top.children().filter(|c| c.is_element()) {
                        for e in section.children().filter(|c| c.is_element()) {
                            match e.tag_name().name() {
                                "Discovery" => self.discovery(e),
                                "Rule" => self.rule(e),
                                "UnitMonitor" => self.unit_monitor(e),
                                "AggregateMonitor" => self.aggregate(e),
                                "DependencyMonitor" => self.dependency(e),
                                "Diagnostic" => self.diagnostic(e),
                                "Recovery" => self.recovery(e),
                                "Task" => self.task(e),
                                name if name.ends_with("Override") => self.override_(e),
                                other => self.skip(e, &format!("<{other}> is not supported")),
                            }
                        }
                    }
                }
                "Presentation" | "Reporting" | "Warehouse" | "Categories" | "Templates"
                | "PresentationTypes" | "Resources" | "Extensions" => {
                    for section in top.children().filter(|c| c.is_element()) {
                        let elements: Vec<Node<'_, '_>> =
                            section.children().filter(|c| c.is_element()).collect();
                        if elements.is_empty() || section.attribute("ID").is_some() {
                            self.skip(section, "presentation, reporting and resources are not part of the health model");
                        } else {
                            for e in elements {
                                self.skip(e, "presentation, reporting and resources are not part of the health model");
                            }
                        }
                    }
                }
                other => self.skip(top, &format!("unknown section <{other}>")),
            }
        }
    }

    /// Singleton classes populated as groups: base InstanceGroup/ComputerGroup/System.Group.
    fn group_ids(&self, root: Node<'_, '_>) -> Vec<String> {
        root.descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "ClassType")
            .filter(|n| n.attribute("Singleton") == Some("true"))
            .filter(|n| {
                let base = n.attribute("Base").unwrap_or("");
                let id = base.split_once('!').map_or(base, |(_, i)| i);
                matches!(
                    id,
                    "Microsoft.SystemCenter.InstanceGroup"
                        | "Microsoft.SystemCenter.ComputerGroup"
                        | "System.Group"
                )
            })
            .filter_map(|n| n.attribute("ID").map(str::to_string))
            .collect()
    }

    fn name_of(&self, id: &str) -> Option<String> {
        self.strings
            .get(&(id.to_string(), None))
            .map(|(n, _)| n.clone())
            .filter(|n| !n.is_empty())
    }

    fn class(&mut self, e: Node<'a, 'i>, groups: &[String]) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        if e.attribute("Extension") == Some("true") {
            self.skip(
                e,
                "class extensions (properties added to another pack's class) are not supported",
            );
            return;
        }
        let base = e
            .attribute("Base")
            .map(|b| self.element(b, &id, &mut notes));
        let description = self
            .strings
            .get(&(id.clone(), None))
            .map(|(_, d)| d.clone())
            .filter(|d| !d.is_empty());
        if groups.contains(&id) {
            if !e
                .children()
                .any(|c| c.is_element() && c.tag_name().name() == "Property")
            {
                self.pack.groups.push(Group {
                    id: id.clone(),
                    name: self.name_of(&id),
                    base: base.filter(|b| b != crate::catalog::GROUP_BASE),
                    relationship: None,
                    rules: vec![],
                    include: vec![],
                    exclude: vec![],
                    subgroups: vec![],
                    description,
                });
                self.entry(e, Outcome::Imported, notes);
                return;
            }
            notes.add("a group class with properties: imported as a class");
        }
        let mut properties = Vec::new();
        for p in children(e, "Property") {
            let kind = match p.attribute("Type").unwrap_or("string") {
                "int" | "integer" => PropertyType::Int,
                "decimal" | "double" => PropertyType::Float,
                "bool" | "boolean" => PropertyType::Bool,
                "datetime" => PropertyType::Datetime,
                "guid" => PropertyType::Guid,
                "string" | "richtext" => PropertyType::String,
                other => {
                    notes.add(format!(
                        "property {}: type {other} is kept as a string",
                        p.attribute("ID").unwrap_or("")
                    ));
                    PropertyType::String
                }
            };
            properties.push(Property {
                name: p.attribute("ID").unwrap_or("").to_string(),
                kind,
                key: p.attribute("Key") == Some("true"),
            });
        }
        let host = if e.attribute("Hosted") == Some("true") {
            let found = self.hosting_source(&id);
            match found {
                Some(src) => Some(self.element(&src, &id, &mut notes)),
                None => {
                    let inherits = base.as_deref().is_some_and(|b| {
                        matches!(
                            b,
                            "System.LocalApplication"
                                | "System.ApplicationComponent"
                                | "System.Collector"
                        ) || self
                            .pack
                            .classes
                            .iter()
                            .any(|c| c.id == b && c.host.is_some())
                    });
                    if !inherits {
                        notes.add("Hosted=\"true\" but no hosting relationship targets it and its base is not hosted: imported unhosted");
                    }
                    None
                }
            }
        } else {
            None
        };
        self.pack.classes.push(Class {
            id: id.clone(),
            name: self.name_of(&id),
            base,
            is_abstract: e.attribute("Abstract") == Some("true"),
            singleton: e.attribute("Singleton") == Some("true"),
            host,
            properties,
            description,
        });
        self.entry(e, Outcome::Imported, notes);
    }

    /// The source class of a hosting relationship type of this pack that targets `class`.
    fn hosting_source(&self, class: &str) -> Option<String> {
        let root = self.doc.root_element();
        root.descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "RelationshipType")
            .filter(|n| {
                n.attribute("Base")
                    .is_some_and(|b| b.ends_with("System.Hosting"))
            })
            .find(|n| child(*n, "Target").and_then(|t| t.attribute("Type")) == Some(class))
            .and_then(|n| {
                child(n, "Source")
                    .and_then(|s| s.attribute("Type"))
                    .map(str::to_string)
            })
    }

    fn relationship(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let base = e.attribute("Base").unwrap_or("");
        let base_id = base.split_once('!').map_or(base, |(_, i)| i);
        let kind = match base_id {
            "System.Hosting" => RelationshipKind::Hosting,
            "System.Containment"
            | "Microsoft.SystemCenter.InstanceGroupContainsEntities"
            | "Microsoft.SystemCenter.ComputerGroupContainsComputer" => {
                RelationshipKind::Containment
            }
            "System.Reference" => RelationshipKind::Reference,
            local => match self.pack.relationships.iter().find(|r| r.id == local) {
                Some(r) => r.kind,
                None => {
                    notes.add(format!(
                        "base {base} is not a known relationship type: imported as a reference"
                    ));
                    RelationshipKind::Reference
                }
            },
        };
        let source = child(e, "Source")
            .and_then(|s| s.attribute("Type"))
            .unwrap_or("");
        let target = child(e, "Target")
            .and_then(|s| s.attribute("Type"))
            .unwrap_or("");
        let source = self.element(source, &id, &mut notes);
        let target = self.element(target, &id, &mut notes);
        self.pack.relationships.push(Relationship {
            id: id.clone(),
            name: self.name_of(&id),
            kind,
            source,
            target,
            is_abstract: e.attribute("Abstract") == Some("true"),
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn discovery(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let ds = child(e, "DataSource");
        let ds_type = ds.and_then(|d| d.attribute("TypeID")).unwrap_or("");
        if let Some(populator) = ds.filter(|_| ds_type.ends_with("GroupPopulator")) {
            self.group_populator(e, populator, notes);
            return;
        }
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let mut classes = Vec::new();
        let mut relationships = Vec::new();
        if let Some(types) = child(e, "DiscoveryTypes") {
            for c in children(types, "DiscoveryClass") {
                classes.push(self.element(c.attribute("TypeID").unwrap_or(""), &id, &mut notes));
            }
            for r in children(types, "DiscoveryRelationship") {
                relationships.push(self.element(
                    r.attribute("TypeID").unwrap_or(""),
                    &id,
                    &mut notes,
                ));
            }
        }
        if ds.is_some() {
            notes.add(format!(
                "data source {ds_type} runs on Windows only: imported as a declaration (instances come from discovery data sent by a collector or connector)"
            ));
        }
        let enabled = e.attribute("Enabled").is_none_or(|v| v != "false");
        self.pack.discoveries.push(Discovery {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            enabled,
            classes,
            relationships,
            source: None,
            overridable: vec![],
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn group_populator(&mut self, e: Node<'a, 'i>, ds: Node<'a, 'i>, mut notes: Notes) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let group_id = child_text(ds, "GroupInstanceId")
            .map(|g| mp_element(&g))
            .unwrap_or_default();
        let group_id = self.element(&group_id, &id, &mut notes);
        let mut rules = Vec::new();
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        let mut subgroups = Vec::new();
        let mut relationship = None;
        if let Some(mrs) = child(ds, "MembershipRules") {
            for mr in children(mrs, "MembershipRule") {
                let class = child_text(mr, "MonitoringClass").unwrap_or_default();
                let class = self.element(&class, &id, &mut notes);
                if let Some(rel) = child_text(mr, "RelationshipClass") {
                    relationship = Some(self.element(&rel, &id, &mut notes));
                }
                let expression = match child(mr, "Expression") {
                    None => None,
                    Some(x) => match self.expr(x, &id, &BTreeMap::new(), &mut notes) {
                        Ok(e) => Some(e),
                        Err(msg) => {
                            notes.add(format!("membership expression not carried over ({msg}): the rule matches every {class}"));
                            None
                        }
                    },
                };
                for (list, out) in [("IncludeList", &mut include), ("ExcludeList", &mut exclude)] {
                    if let Some(l) = child(mr, list) {
                        out.extend(
                            children(l, "MonitoringObjectId")
                                .filter_map(|m| m.text())
                                .map(|t| t.trim().to_string()),
                        );
                    }
                }
                // A rule over another group class of this pack, without a condition: that
                // group is a member (a nested group).
                if expression.is_none() && self.pack.groups.iter().any(|g| g.id == class) {
                    notes.add(format!("group {class} carried over as a subgroup"));
                    subgroups.push(class);
                    continue;
                }
                rules.push(MembershipRule { class, expression });
            }
        }
        let relationship = relationship.filter(|r| r != "System.GroupContainsEntities");
        match self.pack.groups.iter_mut().find(|g| g.id == group_id) {
            Some(g) => {
                g.rules.extend(rules);
                g.include.extend(include);
                g.exclude.extend(exclude);
                g.subgroups.extend(subgroups);
                if g.relationship.is_none() {
                    g.relationship = relationship;
                }
                notes.add(format!("became the membership rules of group {group_id}"));
                self.entry(e, Outcome::Imported, notes);
            }
            None => self.skip(
                e,
                &format!("populates {group_id}, which is not a group class of this pack"),
            ),
        }
    }

    fn expr(
        &mut self,
        node: Node<'_, '_>,
        owner: &str,
        config: &BTreeMap<String, String>,
        notes: &mut Notes,
    ) -> Result<Expr, String> {
        let mut resolved: Vec<(String, String)> = Vec::new();
        let mut lookup = |r: &str| {
            let r = r.to_string();
            resolved.push((r.clone(), String::new()));
            r
        };
        let mut ctx = ExprContext {
            config,
            element: &mut lookup,
            notes: Vec::new(),
        };
        let result = convert_expr(node, &mut ctx, 0);
        let extra = std::mem::take(&mut ctx.notes);
        drop(ctx);
        for n in extra {
            notes.add(n);
        }
        let mut e = result?;
        for (r, _) in resolved {
            let native = self.element(&r, owner, notes);
            rename_groups(&mut e, &r, &native);
        }
        Ok(e)
    }

    fn config(e: Node<'_, '_>) -> BTreeMap<String, String> {
        child(e, "Configuration")
            .map(|c| {
                c.children()
                    .filter(|n| n.is_element())
                    .map(|n| {
                        (
                            n.tag_name().name().to_string(),
                            n.text().unwrap_or("").trim().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn alert(&mut self, e: Node<'_, '_>, owner: &str, notes: &mut Notes) -> Option<AlertSettings> {
        let a = child(e, "AlertSettings")?;
        let message = a.attribute("AlertMessage").unwrap_or(owner).to_string();
        let (mut name, mut description) = self
            .strings
            .get(&(message.clone(), None))
            .cloned()
            .unwrap_or_else(|| {
                (
                    self.name_of(owner).unwrap_or_else(|| owner.to_string()),
                    String::new(),
                )
            });
        if name.trim().is_empty() {
            name = owner.to_string();
        }
        if let Some(params) = child(a, "AlertParameters") {
            for (i, p) in params.children().filter(|c| c.is_element()).enumerate() {
                let value = data_fields(
                    &self
                        .text(p.text().unwrap_or("").trim(), owner, notes)
                        .replace("$Data/Context/", "$Data/"),
                );
                name = name.replace(&format!("{{{i}}}"), &value);
                description = description.replace(&format!("{{{i}}}"), &value);
            }
        }
        let on = match child_text(a, "AlertOnState").as_deref() {
            Some("Warning") => Health::Warning,
            _ => Health::Critical,
        };
        let severity = match child_text(a, "AlertSeverity").as_deref() {
            Some("Information") => Some(Severity::Information),
            Some("Warning") => Some(Severity::Warning),
            Some("Error") => Some(Severity::Critical),
            _ => None,
        };
        let priority = match child_text(a, "AlertPriority").as_deref() {
            Some("Low") => Priority::Low,
            Some("High") => Priority::High,
            _ => Priority::Normal,
        };
        Some(AlertSettings {
            generate: true,
            on,
            auto_resolve: child_text(a, "AutoResolve").as_deref() != Some("false"),
            severity,
            priority,
            name,
            description,
        })
    }

    fn health(text: &str) -> Health {
        match text {
            "Success" => Health::Healthy,
            "Warning" => Health::Warning,
            "Error" => Health::Critical,
            _ => Health::Uninitialized,
        }
    }

    /// Monitor type state -> health, from `<OperationalStates>`.
    fn states(e: Node<'_, '_>) -> Vec<(String, Health)> {
        child(e, "OperationalStates")
            .map(|s| {
                children(s, "OperationalState")
                    .map(|o| {
                        (
                            o.attribute("MonitorTypeStateID").unwrap_or("").to_string(),
                            Self::health(o.attribute("HealthState").unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn seconds(text: Option<&String>) -> Option<Interval> {
        text.and_then(|t| t.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Interval::secs)
    }

    fn unit_monitor(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let parent = self.element(
            e.attribute("ParentMonitorID")
                .unwrap_or("System!System.Health.EntityState"),
            &id,
            &mut notes,
        );
        let mut enabled = e.attribute("Enabled").is_none_or(|v| v != "false");
        let type_ref = e.attribute("TypeID").unwrap_or("").to_string();
        let type_id = type_ref
            .split_once('!')
            .map_or(type_ref.as_str(), |(_, i)| i)
            .to_string();
        let config = Self::config(e);
        let states = Self::states(e);
        let unhealthy_of = |true_states: &[&str]| {
            states
                .iter()
                .find(|(s, _)| true_states.contains(&s.as_str()))
                .map(|(_, h)| *h)
                .filter(|h| matches!(h, Health::Warning | Health::Critical))
                .unwrap_or(Health::Critical)
        };
        let mut overridable = Vec::new();
        let converted: Option<(DataSource, Detection)> = if let Some(kind) =
            modules::perf_monitor_type(&type_id)
        {
            self.perf_monitor(
                kind,
                &type_id,
                &config,
                &states,
                &id,
                &mut notes,
                &mut overridable,
                &mut enabled,
            )
        } else if let Some(kind) = modules::event_monitor_type(&type_id) {
            self.event_monitor(
                kind,
                &config,
                unhealthy_of(&["FirstEventRaised", "EventRaised"]),
                &id,
                &mut notes,
                &mut overridable,
            )
        } else if modules::is_service_monitor(&type_id) {
            let service = config.get("ServiceName").cloned().unwrap_or_default();
            let service = self.text(&service, &id, &mut notes);
            overridable.push("interval".to_string());
            Some((
                DataSource::Service {
                    service,
                    interval: Interval::secs(60),
                },
                Detection::BasicService {
                    check_start_mode: config.get("CheckStartupType").is_some_and(|v| v == "true"),
                    unhealthy: unhealthy_of(&["NotRunning", "Stopped", "Error"]),
                },
            ))
        } else if let Some(mt) = self.module_types.get(&type_id).copied() {
            self.custom_monitor(
                mt,
                &config,
                &states,
                &id,
                &mut notes,
                &mut overridable,
                &mut enabled,
            )
        } else {
            None
        };
        let (source, detect) = match converted {
            Some(c) => c,
            None => {
                if enabled {
                    notes.add("disabled until it has a runnable source");
                }
                enabled = false;
                notes.add(format!("monitor type {type_ref} cannot be evaluated by healthstream: its states and alert settings are kept"));
                let hs: Vec<Health> = states.iter().map(|(_, h)| *h).collect();
                (
                    DataSource::Unsupported {
                        module: type_ref.clone(),
                        produces: "property_bag".into(),
                    },
                    Detection::Unsupported {
                        monitor_type: type_ref.clone(),
                        states: if hs.len() >= 2 {
                            hs
                        } else {
                            vec![Health::Healthy, Health::Critical]
                        },
                    },
                )
            }
        };
        let alert = self.alert(e, &id, &mut notes);
        self.pack.monitors.push(UnitMonitor {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            parent,
            enabled,
            source,
            conditions: vec![],
            detect,
            alert,
            overridable,
            knowledge: self.knowledge.get(&id).cloned(),
        });
        self.entry(e, Outcome::Imported, notes);
    }

    #[allow(clippy::too_many_arguments)]
    fn perf_monitor(
        &mut self,
        kind: &str,
        type_id: &str,
        config: &BTreeMap<String, String>,
        states: &[(String, Health)],
        id: &str,
        notes: &mut Notes,
        overridable: &mut Vec<String>,
        enabled: &mut bool,
    ) -> Option<(DataSource, Detection)> {
        let number = |k: &str| {
            config
                .get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|f| f.is_finite())
        };
        let direction = match config.get("Direction").map(|d| d.to_ascii_lowercase()) {
            Some(d) if d.starts_with("less") => Direction::Below,
            _ => Direction::Above,
        };
        let unhealthy = states
            .iter()
            .map(|(_, h)| *h)
            .find(|h| matches!(h, Health::Warning | Health::Critical))
            .unwrap_or(Health::Critical);
        let samples = match config.get("NumSamples") {
            None => 1,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    notes.add(format!(
                        "NumSamples {v:?} is not a whole number from 1 to {}",
                        u32::MAX
                    ));
                    return None;
                }
            },
        };
        for key in ["Threshold", "Threshold1", "Threshold2"] {
            if let Some(v) = config.get(key) {
                if number(key).is_none() {
                    notes.add(format!("{key} {v:?} is not a finite number"));
                    return None;
                }
            }
        }
        let threshold = number("Threshold");
        let detect = match kind {
            "consecutive_samples" => Detection::ConsecutiveSamples {
                direction,
                threshold: threshold?,
                samples,
                unhealthy,
            },
            "average_threshold" => Detection::AverageThreshold {
                direction,
                threshold: threshold?,
                samples,
                unhealthy,
            },
            "delta_threshold" => Detection::DeltaThreshold {
                direction,
                threshold: threshold?,
                samples,
                unhealthy,
            },
            "double_threshold" => Detection::DoubleThreshold {
                low: number("Threshold1").or_else(|| number("LowerThreshold"))?,
                high: number("Threshold2").or_else(|| number("UpperThreshold"))?,
                below: states.first().map(|s| s.1).unwrap_or(Health::Critical),
                between: Health::Healthy,
                above: states.last().map(|s| s.1).unwrap_or(Health::Critical),
            },
            _ => Detection::SimpleThreshold {
                direction,
                threshold: Some(threshold?),
                warning: None,
                critical: None,
                unhealthy,
            },
        };
        overridable.extend(["threshold", "interval"].map(String::from));
        if matches!(
            kind,
            "consecutive_samples" | "average_threshold" | "delta_threshold"
        ) {
            overridable.push("samples".into());
        }
        if kind == "double_threshold" {
            overridable.retain(|p| p != "threshold");
            overridable.extend(["low", "high"].map(String::from));
        }
        let interval = Self::seconds(config.get("Frequency").or(config.get("IntervalSeconds")))
            .unwrap_or(Interval::secs(300));
        let object = self.text(
            config.get("ObjectName").map_or("", |s| s.as_str()),
            id,
            notes,
        );
        let counter = self.text(
            config.get("CounterName").map_or("", |s| s.as_str()),
            id,
            notes,
        );
        let instance = if config.get("AllInstances").is_some_and(|v| v == "true") {
            Some("*".to_string())
        } else {
            config
                .get("InstanceName")
                .filter(|s| !s.is_empty())
                .map(|s| self.text(s, id, notes))
        };
        if config.contains_key("ComputerName") {
            notes.add("ComputerName dropped: the collector on the target's computer samples it");
        }
        let source = if type_id.contains("WmiBased") || type_id.contains("ScriptBased") {
            notes.add(format!("{type_id} samples through a Windows-only WMI query or script: source not runnable, monitor disabled"));
            *enabled = false;
            overridable.retain(|p| p != "interval");
            DataSource::Unsupported {
                module: type_id.to_string(),
                produces: "perf".into(),
            }
        } else {
            if object.is_empty() || counter.is_empty() {
                return None;
            }
            DataSource::Perf {
                object,
                counter,
                instance,
                interval,
            }
        };
        Some((source, detect))
    }

    fn event_monitor(
        &mut self,
        kind: &str,
        config: &BTreeMap<String, String>,
        unhealthy: Health,
        id: &str,
        notes: &mut Notes,
        overridable: &mut Vec<String>,
    ) -> Option<(DataSource, Detection)> {
        let doc_node = self.monitor_node(id)?;
        let conf = child(doc_node, "Configuration")?;
        let expr_of = |imp: &mut Self, name: &'static str, notes: &mut Notes| -> Option<Expr> {
            let x = child(conf, name)?;
            match imp.expr(x, id, config, notes) {
                Ok(e) => Some(e),
                Err(msg) => {
                    notes.add(format!("{name}: {msg}"));
                    None
                }
            }
        };
        let (log, detect) = match kind {
            "event_reset" => {
                let first = expr_of(self, "FirstExpression", notes)?;
                let second = expr_of(self, "SecondExpression", notes)?;
                if config.get("SecondLogName") != config.get("FirstLogName") {
                    notes.add(
                        "the two events come from different logs: both are read from the first log",
                    );
                }
                (
                    config.get("FirstLogName"),
                    Detection::EventReset {
                        unhealthy_when: first,
                        healthy_when: second,
                        unhealthy,
                    },
                )
            }
            "manual_reset" => {
                let x = expr_of(self, "Expression", notes)?;
                (
                    config.get("LogName"),
                    Detection::ManualReset {
                        unhealthy_when: x,
                        unhealthy,
                    },
                )
            }
            _ => {
                let x = expr_of(self, "Expression", notes)?;
                let after =
                    Self::seconds(config.get("TimerWaitInSeconds")).unwrap_or(Interval::secs(900));
                overridable.push("after".into());
                (
                    config.get("LogName"),
                    Detection::TimerReset {
                        unhealthy_when: x,
                        after,
                        unhealthy,
                    },
                )
            }
        };
        let log = log.cloned().unwrap_or_else(|| "Application".into());
        if config.keys().any(|k| k.ends_with("ComputerName")) {
            notes.add("ComputerName dropped: the collector on the target's computer reads its log");
        }
        Some((DataSource::Event { log, filter: None }, detect))
    }

    fn monitor_node(&self, id: &str) -> Option<Node<'a, 'i>> {
        self.doc.root_element().descendants().find(|n| {
            n.is_element() && n.tag_name().name() == "UnitMonitor" && n.attribute("ID") == Some(id)
        })
    }

    /// A monitor type of this pack: expression detections over its data source.
    #[allow(clippy::too_many_arguments)]
    fn custom_monitor(
        &mut self,
        mt: Node<'a, 'i>,
        config: &BTreeMap<String, String>,
        states: &[(String, Health)],
        id: &str,
        notes: &mut Notes,
        overridable: &mut Vec<String>,
        enabled: &mut bool,
    ) -> Option<(DataSource, Detection)> {
        let imp = child(mt, "MonitorImplementation")?;
        let members = child(imp, "MemberModules")?;
        let mut conditions: HashMap<String, Node<'a, 'i>> = HashMap::new();
        let mut source_type = String::new();
        for m in members.children().filter(|c| c.is_element()) {
            match m.tag_name().name() {
                "DataSource" if source_type.is_empty() => {
                    source_type = m.attribute("TypeID").unwrap_or("").to_string()
                }
                "ConditionDetection"
                    if m.attribute("TypeID")
                        .is_some_and(|t| t.ends_with("System.ExpressionFilter")) =>
                {
                    conditions.insert(m.attribute("ID").unwrap_or("").to_string(), m);
                }
                _ => {}
            }
        }
        let detections = child(imp, "RegularDetections")?;
        let mut out = Vec::new();
        for d in children(detections, "RegularDetection") {
            let state = d.attribute("MonitorTypeStateID").unwrap_or("");
            let health = states.iter().find(|(s, _)| s == state).map(|(_, h)| *h)?;
            // The condition is the outermost node of the detection chain.
            let node_id = child(d, "Node")?.attribute("ID")?.to_string();
            let cond = conditions.get(&node_id)?;
            let expr_node = child(*cond, "Expression")?;
            let when = match self.expr(expr_node, id, config, notes) {
                Ok(e) => e,
                Err(msg) => {
                    notes.add(format!("state {state}: {msg}"));
                    return None;
                }
            };
            out.push(StateCondition { health, when });
        }
        if out.len() < 2 || !out.iter().any(|s| s.health == Health::Healthy) {
            return None;
        }
        if let Some(params) = child(mt, "OverrideableParameters") {
            for p in children(params, "OverrideableParameter") {
                if matches!(p.attribute("ID"), Some("IntervalSeconds" | "Frequency")) {
                    overridable.push("interval".into());
                }
            }
        }
        notes.add(format!(
            "data source {source_type} runs a Windows script: source not runnable, monitor disabled; its states became expressions over the property bag"
        ));
        *enabled = false;
        overridable.retain(|p| p != "interval");
        let source = DataSource::Unsupported {
            module: source_type.clone(),
            produces: "property_bag".into(),
        };
        Some((source, Detection::Expression { states: out }))
    }

    fn aggregate(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let parent = e
            .attribute("ParentMonitorID")
            .map(|p| self.element(p, &id, &mut notes));
        let algorithm = match child_text(e, "Algorithm").as_deref() {
            Some("BestOf") => Algorithm::BestOf,
            Some("WorstOf") => Algorithm::WorstOf,
            other => {
                notes.add(format!(
                    "algorithm {other:?} is not WorstOf or BestOf: WorstOf used"
                ));
                Algorithm::WorstOf
            }
        };
        let alert = self.alert(e, &id, &mut notes);
        self.pack.aggregates.push(AggregateMonitor {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            parent,
            enabled: e.attribute("Enabled").is_none_or(|v| v != "false"),
            algorithm,
            alert,
            knowledge: self.knowledge.get(&id).cloned(),
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn dependency(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let parent = self.element(
            e.attribute("ParentMonitorID")
                .unwrap_or("Health!System.Health.EntityState"),
            &id,
            &mut notes,
        );
        let relationship = self.element(
            e.attribute("RelationshipType").unwrap_or(""),
            &id,
            &mut notes,
        );
        let member_monitor =
            self.element(e.attribute("MemberMonitor").unwrap_or(""), &id, &mut notes);
        let (algorithm, percentage) = match child_text(e, "Algorithm").as_deref() {
            Some("BestOf") => (DependencyAlgorithm::BestOf, None),
            Some("Percentage") | Some("WorstOfAPercentage") => {
                let p = child_text(e, "AlgorithmParameter")
                    .and_then(|p| p.parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p));
                if p.is_none() {
                    notes.add("percentage missing or out of range: 100 used");
                }
                (DependencyAlgorithm::Percentage, Some(p.unwrap_or(100)))
            }
            _ => (DependencyAlgorithm::WorstOf, None),
        };
        let member_state = |text: Option<String>, default: Health| {
            text.map(|t| Self::health(&t)).unwrap_or(default)
        };
        let alert = self.alert(e, &id, &mut notes);
        self.pack.dependencies.push(DependencyMonitor {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            parent,
            enabled: e.attribute("Enabled").is_none_or(|v| v != "false"),
            relationship,
            member_monitor,
            algorithm,
            percentage,
            member_in_maintenance: member_state(
                child_text(e, "MemberInMaintenance"),
                Health::Uninitialized,
            ),
            member_unavailable: member_state(
                child_text(e, "MemberUnAvailable").or_else(|| child_text(e, "MemberUnavailable")),
                Health::Critical,
            ),
            alert,
            knowledge: self.knowledge.get(&id).cloned(),
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn rule(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let mut enabled = e.attribute("Enabled").is_none_or(|v| v != "false");
        let category = child_text(e, "Category").map(|c| snake(&c));
        let mut overridable = Vec::new();
        // Data source.
        let ds = child(e, "DataSources").and_then(|d| child(d, "DataSource"));
        let ds_type_ref = ds
            .and_then(|d| d.attribute("TypeID"))
            .unwrap_or("")
            .to_string();
        let ds_type = ds_type_ref
            .split_once('!')
            .map_or(ds_type_ref.as_str(), |(_, i)| i)
            .to_string();
        let ds_config: BTreeMap<String, String> = ds
            .map(|d| {
                d.children()
                    .filter(|n| n.is_element())
                    .map(|n| {
                        (
                            n.tag_name().name().to_string(),
                            n.text().unwrap_or("").trim().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let writes: Vec<Node<'_, '_>> = child(e, "WriteActions")
            .map(|w| children(w, "WriteAction").collect())
            .unwrap_or_default();
        let write_types: Vec<String> = writes
            .iter()
            .map(|w| {
                w.attribute("TypeID")
                    .unwrap_or("")
                    .split_once('!')
                    .map_or(w.attribute("TypeID").unwrap_or(""), |(_, i)| i)
                    .to_string()
            })
            .collect();
        let source = if modules::is_perf_provider(&ds_type) {
            overridable.push("interval".into());
            let object = self.text(
                ds_config.get("ObjectName").map_or("", |s| s.as_str()),
                &id,
                &mut notes,
            );
            let counter = self.text(
                ds_config.get("CounterName").map_or("", |s| s.as_str()),
                &id,
                &mut notes,
            );
            let instance = if ds_config.get("AllInstances").is_some_and(|v| v == "true") {
                Some("*".to_string())
            } else {
                ds_config
                    .get("InstanceName")
                    .filter(|s| !s.is_empty())
                    .map(|s| self.text(s, &id, &mut notes))
            };
            let interval = Self::seconds(
                ds_config
                    .get("Frequency")
                    .or(ds_config.get("IntervalSeconds")),
            )
            .unwrap_or(Interval::secs(300));
            if ds_config.contains_key("Tolerance")
                && ds_config.get("Tolerance").is_some_and(|t| t != "0")
            {
                notes.add("optimized collection (Tolerance) dropped: every sample is collected");
            }
            DataSource::Perf {
                object,
                counter,
                instance,
                interval,
            }
        } else if modules::is_event_provider(&ds_type) {
            let log = ds_config
                .get("LogName")
                .cloned()
                .unwrap_or_else(|| "Application".into());
            let filter = match ds.and_then(|d| child(d, "Expression")) {
                Some(x) => match self.expr(x, &id, &BTreeMap::new(), &mut notes) {
                    Ok(f) => Some(f),
                    Err(msg) => {
                        notes.add(format!(
                            "event filter not carried over ({msg}); rule disabled"
                        ));
                        enabled = false;
                        None
                    }
                },
                None => None,
            };
            DataSource::Event { log, filter }
        } else if modules::is_scheduler(&ds_type) {
            let secs = ds
                .and_then(|d| {
                    d.descendants()
                        .find(|n| n.is_element() && n.tag_name().name() == "Interval")
                })
                .and_then(|n| {
                    let v: u64 = n.text()?.trim().parse().ok()?;
                    Some(match n.attribute("Unit") {
                        Some("Minutes") => v * 60,
                        Some("Hours") => v * 3600,
                        Some("Days") => v * 86400,
                        _ => v,
                    })
                })
                .or_else(|| {
                    ds_config
                        .get("IntervalSeconds")
                        .and_then(|v| v.parse().ok())
                })
                .filter(|s| *s > 0)
                .unwrap_or(3600);
            overridable.push("interval".into());
            DataSource::Schedule {
                interval: Interval::secs(secs),
            }
        } else {
            let produces = if write_types.iter().any(|w| modules::is_collect_perf(w))
                && !e
                    .children()
                    .any(|c| c.is_element() && c.tag_name().name() == "ConditionDetection")
            {
                "perf"
            } else if write_types.iter().any(|w| modules::is_collect_event(w)) {
                "event"
            } else {
                "property_bag"
            };
            notes.add(format!("data source {ds_type_ref} runs a Windows script, WMI query or custom module: source not runnable, rule disabled"));
            enabled = false;
            DataSource::Unsupported {
                module: ds_type_ref.clone(),
                produces: produces.into(),
            }
        };
        // Condition detection.
        let mut conditions = Vec::new();
        for cd in children(e, "ConditionDetection") {
            let t = cd.attribute("TypeID").unwrap_or("");
            let cfg: BTreeMap<String, String> = cd
                .children()
                .filter(|n| n.is_element())
                .map(|n| {
                    (
                        n.tag_name().name().to_string(),
                        n.text().unwrap_or("").trim().to_string(),
                    )
                })
                .collect();
            if t.ends_with("System.ExpressionFilter") {
                match child(cd, "Expression")
                    .map(|x| self.expr(x, &id, &BTreeMap::new(), &mut notes))
                {
                    Some(Ok(x)) => conditions.push(Condition::Filter { expression: x }),
                    Some(Err(msg)) => {
                        notes.add(format!("filter not carried over ({msg}); rule disabled"));
                        enabled = false;
                    }
                    None => {}
                }
            } else if t.ends_with("DataGenericMapper") {
                let get = |imp: &mut Self, k: &str, notes: &mut Notes| {
                    imp.text(cfg.get(k).map_or("", |s| s.as_str()), &id, notes)
                };
                conditions.push(Condition::MapPerf {
                    object: get(self, "ObjectName", &mut notes),
                    counter: get(self, "CounterName", &mut notes),
                    instance: get(self, "InstanceName", &mut notes),
                    value: get(self, "Value", &mut notes),
                });
            } else if t.ends_with("System.ConsolidatorCondition") {
                let count = cd
                    .descendants()
                    .find(|n| n.is_element() && n.tag_name().name() == "Count")
                    .and_then(|n| n.text()?.trim().parse().ok())
                    .unwrap_or(1);
                let window = cd
                    .descendants()
                    .find(|n| n.is_element() && n.tag_name().name() == "Interval")
                    .and_then(|n| n.text()?.trim().parse().ok())
                    .filter(|s: &u64| *s > 0)
                    .unwrap_or(60);
                conditions.push(Condition::Consolidate {
                    count,
                    window: Interval::secs(window),
                });
            } else {
                notes.add(format!(
                    "condition {t} is not supported: dropped, rule disabled"
                ));
                enabled = false;
            }
        }
        // Write actions.
        let mut actions = Vec::new();
        for (w, t) in writes.iter().zip(&write_types) {
            if modules::is_collect_perf(t) {
                if !actions.contains(&Action::CollectPerf) {
                    actions.push(Action::CollectPerf);
                }
            } else if modules::is_collect_event(t) {
                if !actions.contains(&Action::CollectEvent) {
                    actions.push(Action::CollectEvent);
                }
            } else if modules::is_generate_alert(t) {
                actions.push(self.alert_action(*w, &id, &mut notes));
            } else if modules::is_command(t) {
                let app = child_text(*w, "ApplicationName").unwrap_or_default();
                let line = child_text(*w, "CommandLine").unwrap_or_default();
                let mut command = vec![app];
                command.extend(line.split_whitespace().map(str::to_string));
                actions.push(Action::Command {
                    command,
                    timeout: Self::seconds(child_text(*w, "TimeoutSeconds").as_ref())
                        .unwrap_or(Interval::secs(30)),
                });
            } else {
                let script = child_text(*w, "ScriptName").unwrap_or_else(|| "script".into());
                notes.add(format!("write action {t} runs a Windows script: kept as the command pwsh -File {script}, rule disabled"));
                enabled = false;
                actions.push(Action::Command {
                    command: vec!["pwsh".into(), "-File".into(), script],
                    timeout: Interval::secs(300),
                });
            }
        }
        if actions.is_empty() {
            notes.add("no write action: an alert-less event collection is assumed");
            actions.push(Action::CollectEvent);
        }
        self.pack.rules.push(Rule {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            enabled,
            category,
            source,
            conditions,
            actions,
            overridable,
            knowledge: self.knowledge.get(&id).cloned(),
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn alert_action(&mut self, w: Node<'_, '_>, owner: &str, notes: &mut Notes) -> Action {
        let message = child_text(w, "AlertMessageId")
            .map(|m| mp_element(&m))
            .unwrap_or_default();
        let (mut name, mut description) = self
            .strings
            .get(&(message, None))
            .cloned()
            .unwrap_or_else(|| (owner.to_string(), String::new()));
        if let Some(params) = child(w, "AlertParameters") {
            for (i, p) in params.children().filter(|c| c.is_element()).enumerate() {
                let value = data_fields(&self.text(p.text().unwrap_or("").trim(), owner, notes));
                name = name.replace(&format!("{{{i}}}"), &value);
                description = description.replace(&format!("{{{i}}}"), &value);
            }
        }
        let severity = match child_text(w, "Severity").as_deref() {
            Some("0") => Severity::Information,
            Some("1") => Severity::Warning,
            _ => Severity::Critical,
        };
        let priority = match child_text(w, "Priority").as_deref() {
            Some("0") => Priority::Low,
            Some("2") => Priority::High,
            _ => Priority::Normal,
        };
        let suppression = child(w, "Suppression")
            .map(|s| {
                children(s, "SuppressionValue")
                    .filter_map(|v| v.text())
                    .map(|t| {
                        library::event_field(
                            t.trim().trim_start_matches("$Data/").trim_end_matches('$'),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Action::Alert {
            name: if name.trim().is_empty() {
                owner.to_string()
            } else {
                name
            },
            description,
            severity,
            priority,
            suppression,
        }
    }

    fn command_of(
        &mut self,
        e: Node<'_, '_>,
        owner: &str,
        notes: &mut Notes,
        enabled: &mut bool,
    ) -> (Vec<String>, Interval) {
        let module = e.children().find(|c| {
            c.is_element() && matches!(c.tag_name().name(), "ProbeAction" | "WriteAction")
        });
        let Some(m) = module else {
            notes.add("no probe or write action: an empty command, disabled");
            *enabled = false;
            return (vec!["true".into()], Interval::secs(30));
        };
        let t = m.attribute("TypeID").unwrap_or("");
        let t_id = t.split_once('!').map_or(t, |(_, i)| i);
        let timeout =
            Self::seconds(child_text(m, "TimeoutSeconds").as_ref()).unwrap_or(Interval::secs(60));
        if modules::is_command(t_id) {
            let app = child_text(m, "ApplicationName").unwrap_or_default();
            let line = self.text(
                &child_text(m, "CommandLine").unwrap_or_default(),
                owner,
                notes,
            );
            let windows = app.contains('%')
                || app.contains('\\')
                || app.to_ascii_lowercase().ends_with(".exe");
            let mut cmd = vec![app];
            cmd.extend(line.split_whitespace().map(str::to_string));
            if windows {
                notes.add("runs a Windows program: kept as written, disabled");
                *enabled = false;
            }
            return (cmd, timeout);
        }
        let script = child_text(m, "ScriptName").unwrap_or_else(|| "script".into());
        notes.add(format!(
            "{t} runs a Windows script: kept as the command pwsh -File {script}, disabled"
        ));
        *enabled = false;
        (vec!["pwsh".into(), "-File".into(), script], timeout)
    }

    fn diagnostic(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let monitor = self.element(e.attribute("Monitor").unwrap_or(""), &id, &mut notes);
        let mut enabled = e.attribute("Enabled").is_none_or(|v| v != "false");
        let on_state = execute_on_state(e);
        let (command, timeout) = self.command_of(e, &id, &mut notes, &mut enabled);
        self.pack.diagnostics.push(Diagnostic {
            id: id.clone(),
            name: self.name_of(&id),
            monitor,
            on_state,
            enabled,
            command,
            timeout,
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn recovery(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let monitor = self.element(e.attribute("Monitor").unwrap_or(""), &id, &mut notes);
        let mut enabled = e.attribute("Enabled").is_none_or(|v| v != "false");
        let on_state = execute_on_state(e);
        let after_diagnostic = e
            .attribute("ExecuteOnDiagnostic")
            .map(|d| self.element(d, &id, &mut notes));
        let (command, timeout) = self.command_of(e, &id, &mut notes, &mut enabled);
        self.pack.recoveries.push(Recovery {
            id: id.clone(),
            name: self.name_of(&id),
            monitor,
            on_state: if after_diagnostic.is_some() {
                None
            } else {
                on_state
            },
            after_diagnostic,
            reset_monitor: e.attribute("ResetMonitor") == Some("true"),
            enabled,
            command,
            timeout,
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn task(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let target = self.element(e.attribute("Target").unwrap_or(""), &id, &mut notes);
        let mut enabled = true;
        let (command, timeout) = self.command_of(e, &id, &mut notes, &mut enabled);
        if !enabled {
            notes.add("tasks cannot be disabled: it will fail until its command is replaced");
        }
        self.pack.tasks.push(Task {
            id: id.clone(),
            name: self.name_of(&id),
            target,
            command,
            timeout,
        });
        self.entry(e, Outcome::Imported, notes);
    }

    fn override_(&mut self, e: Node<'a, 'i>) {
        let id = e.attribute("ID").unwrap_or("").to_string();
        let mut notes = Notes::default();
        let kind = e.tag_name().name();
        let workflow_attr = ["Monitor", "Rule", "Discovery", "Diagnostic", "Recovery"]
            .iter()
            .find_map(|a| e.attribute(*a));
        let Some(workflow) = workflow_attr else {
            self.skip(e, &format!("{kind}: the overridden element is not a discovery, rule, monitor, diagnostic or recovery"));
            return;
        };
        let workflow = self.element(workflow, &id, &mut notes);
        let context = self.element(e.attribute("Context").unwrap_or(""), &id, &mut notes);
        let value_text = child_text(e, "Value").unwrap_or_default();
        let (parameter, value) = if let Some(p) = e.attribute("Property") {
            property_override(p, &value_text, &mut notes)
        } else if let Some(p) = e.attribute("Parameter") {
            let (name, value) = config_override(p, &value_text);
            if name == p {
                notes.add(format!(
                    "parameter {p} kept as written: healthstream does not know it"
                ));
            }
            (name, value)
        } else {
            self.skip(e, "neither Property nor Parameter is given");
            return;
        };
        self.pack.overrides.push(Override {
            id: id.clone(),
            workflow,
            parameter,
            value,
            context,
            instance: e.attribute("ContextInstance").map(str::to_string),
            enforced: e.attribute("Enforced") == Some("true"),
        });
        self.entry(e, Outcome::Imported, notes);
    }
}

/// `ExecuteOnState` of a diagnostic or recovery.
fn execute_on_state(e: Node<'_, '_>) -> Option<Health> {
    match e.attribute("ExecuteOnState") {
        Some("Warning") => Some(Health::Warning),
        Some("Error") => Some(Health::Critical),
        _ => None,
    }
}

/// SCOM event fields in `$Data/...$` references -> the names healthstream's events use.
fn data_fields(text: &str) -> String {
    let mut out = text.to_string();
    for (scom, native) in [
        ("EventDescription", "Message"),
        ("EventDisplayNumber", "EventId"),
        ("PublisherName", "Source"),
        ("EventLevel", "Level"),
    ] {
        out = out.replace(&format!("$Data/{scom}$"), &format!("$Data/{native}$"));
    }
    out
}

fn rename_groups(e: &mut Expr, from: &str, to: &str) {
    match e {
        Expr::And(xs) | Expr::Or(xs) => xs.iter_mut().for_each(|x| rename_groups(x, from, to)),
        Expr::Not(x) => rename_groups(x, from, to),
        Expr::Contained(g) if g == from => *g = to.to_string(),
        _ => {}
    }
}

/// SCOM property overrides -> native parameter and value.
fn property_override(property: &str, value: &str, notes: &mut Notes) -> (String, ParamValue) {
    let text = |v: &str| ParamValue::Text(v.to_string());
    match property {
        "Enabled" => (
            "enabled".into(),
            ParamValue::Bool(!matches!(value, "false" | "False")),
        ),
        "GenerateAlert" => ("generate_alert".into(), ParamValue::from_text(value)),
        "AutoResolve" => ("auto_resolve".into(), ParamValue::from_text(value)),
        "AlertSeverity" | "Severity" => (
            "severity".into(),
            text(match value {
                "Information" | "0" => "information",
                "Warning" | "1" => "warning",
                "Error" | "Critical" | "2" => "critical",
                _ => "match_state",
            }),
        ),
        "AlertPriority" | "Priority" => (
            "priority".into(),
            text(match value {
                "Low" | "0" => "low",
                "High" | "2" => "high",
                _ => "normal",
            }),
        ),
        "AlertOnState" => (
            "alert_on".into(),
            text(if value == "Warning" {
                "warning"
            } else {
                "critical"
            }),
        ),
        other => {
            notes.add(format!(
                "property {other} kept as written: healthstream does not know it"
            ));
            (other.to_string(), ParamValue::from_text(value))
        }
    }
}

/// SCOM configuration overrides -> native parameter and value.
fn config_override(parameter: &str, value: &str) -> (String, ParamValue) {
    match parameter {
        "Threshold" => ("threshold".into(), ParamValue::from_text(value)),
        "NumSamples" => ("samples".into(), ParamValue::from_text(value)),
        "Frequency" | "IntervalSeconds" => (
            "interval".into(),
            match value.trim().parse::<u64>() {
                Ok(s) if s > 0 => ParamValue::Text(Interval::secs(s).to_string()),
                _ => ParamValue::Text(value.to_string()),
            },
        ),
        "TimeoutSeconds" => (
            "timeout".into(),
            match value.trim().parse::<u64>() {
                Ok(s) if s > 0 => ParamValue::Text(Interval::secs(s).to_string()),
                _ => ParamValue::Text(value.to_string()),
            },
        ),
        "TimerWaitInSeconds" => (
            "after".into(),
            match value.trim().parse::<u64>() {
                Ok(s) if s > 0 => ParamValue::Text(Interval::secs(s).to_string()),
                _ => ParamValue::Text(value.to_string()),
            },
        ),
        other => (other.to_string(), ParamValue::from_text(value)),
    }
}

/// `PerformanceCollection` -> `performance_collection`.
fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}
