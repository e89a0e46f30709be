//! Applying discovery data to the instance space (DESIGN.md section 3).
//!
//! - A source's `snapshot` is everything it knows: what it claimed before and no longer sends
//!   loses that claim. `incremental` adds claims and removes the ones listed.
//! - An instance lives while at least one source claims it; deleting it deletes everything
//!   it hosts, recursively, and every relationship it is an end of.
//! - A submission identical to the source's last one changes nothing and emits nothing.
//! - Managed: an instance inserted by a managing source, or hosted by a managed instance.
//! - An instance whose host is neither known nor in the same submission is not applied: it
//!   goes to the dead-letter topic with the reason (in a replayable discovery record), the
//!   rest of the submission is applied, and the source's next submission is applied in full
//!   even if identical (so the instance appears once its host does).

use std::collections::{BTreeMap, BTreeSet};

use healthstream_contracts::content_id;
use healthstream_contracts::records::{
    DiscoveredInstance, DiscoveredRelationship, DiscoveryData, DiscoveryMode, DiscoverySourceKind,
    EntityKind, InstanceRef, Properties, PropertyValue, RelationshipRef,
};
use healthstream_model::pack::RelationshipKind;
use healthstream_store::StoreError;

use crate::groups::{Candidate, GroupDef};
use crate::identity::{check_properties, relationship_id, resolve, Classes};
use crate::plans::{Plan, PlanInstance};
use crate::state::*;

/// A change to emit on the instance topic (the stage adds the id and encodes it).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub entity_id: String,
    pub kind: EntityKind,
    /// `None`: deleted.
    pub view: Option<View>,
    /// The root host whose partition the change goes to, when it is not the submission's
    /// (a relationship to an instance of another hosting tree).
    pub route: Option<String>,
}

/// What the instance topic says of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Class of an instance, type of a relationship.
    pub class: String,
    pub keys: Properties,
    pub properties: Properties,
    pub host_id: Option<String>,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub managed: bool,
    pub claimed_by: Vec<String>,
    /// Class of a relationship's source.
    pub source_class: Option<String>,
}

/// A part of a submission that was not applied, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    Instance(DiscoveredInstance, String),
    Relationship(DiscoveredRelationship, String),
    RemovedInstance(InstanceRef, String),
    RemovedRelationship(RelationshipRef, String),
}

impl Rejected {
    pub fn reason(&self) -> &str {
        match self {
            Rejected::Instance(_, r)
            | Rejected::Relationship(_, r)
            | Rejected::RemovedInstance(_, r)
            | Rejected::RemovedRelationship(_, r) => r,
        }
    }
}

/// The outcome of one submission.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub rejected: Vec<Rejected>,
    /// The submission was identical to the source's last one.
    pub unchanged: bool,
    /// The root host's collection plan, when it changed.
    pub plan: Option<Plan>,
}

/// The source id of a submission (`discovery:<id>` or `connector:<id>`).
pub fn source_id(d: &DiscoveryData) -> String {
    match d.source.kind {
        DiscoverySourceKind::Discovery => format!("discovery:{}", d.source.id),
        DiscoverySourceKind::Connector => format!("connector:{}", d.source.id),
    }
}

/// Digest of what a submission says (not its id or time). The stage uses a digest of the
/// encoded record instead ([`crate::stage`]), which is cheaper and equally deterministic.
pub fn digest(d: &DiscoveryData) -> String {
    let body = serde_json::json!([
        d.mode,
        d.source.managing,
        d.instances,
        d.relationships,
        d.removed_instances,
        d.removed_relationships
    ]);
    content_id(body.to_string().as_bytes())
}

/// Apply a submission. `seq` orders claims (the input's offset: the same on a replay).
pub fn apply(
    ws: &mut WorkingSet<'_>,
    classes: &mut Classes,
    d: &DiscoveryData,
    seq: i64,
) -> Result<Outcome, StoreError> {
    let digest = digest(d);
    apply_with_digest(ws, classes, d, &digest, seq)
}

/// Is a submission with this digest identical to its source's last one, with the same packs
/// in force? Then it changes nothing: two reads, no decoding of the submission.
pub fn unchanged(
    ws: &WorkingSet<'_>,
    classes: &mut Classes,
    root: &str,
    source: &str,
    digest: &str,
) -> Result<bool, StoreError> {
    let packs_digest = classes.digest();
    Ok(ws
        .get_raw(META_CF, &source_digest_key(root, source))?
        .as_deref()
        == Some(digest.as_bytes())
        && ws.get_raw(META_CF, &meta_key(root))?.as_deref() == Some(packs_digest.as_bytes()))
}

/// [`apply`] with the submission's digest given.
pub fn apply_with_digest(
    ws: &mut WorkingSet<'_>,
    classes: &mut Classes,
    d: &DiscoveryData,
    digest: &str,
    seq: i64,
) -> Result<Outcome, StoreError> {
    let root = d.root_host.as_str();
    let src = source_id(d);
    if unchanged(ws, classes, root, &src, digest)? {
        return Ok(Outcome {
            unchanged: true,
            ..Outcome::default()
        });
    }
    let skey = source_key(root, &src);
    let mut source: SourceState = ws.get(SOURCES_CF, &skey)?.unwrap_or_default();
    // Packs changed since this root host's memberships and plan were computed: everything
    // is evaluated again at this submission (even an identical one).
    let defs = classes.groups();
    let packs_digest = classes.digest();
    let mkey = meta_key(root);
    let packs_changed = ws.get_raw(META_CF, &mkey)?.as_deref() != Some(packs_digest.as_bytes());
    let mut space = Space {
        ws,
        root,
        src: &src,
        out: Vec::new(),
        touched: BTreeSet::new(),
        referenced: classes.plan_index().referenced(),
        plan_dirty: false,
    };
    let mut rejected = Vec::new();

    // Instances, hosts first.
    let mut resolved = Vec::new();
    for inst in &d.instances {
        let as_ref = InstanceRef {
            class: inst.class.clone(),
            keys: inst.keys.clone(),
            host: inst.host.clone().map(Box::new),
        };
        let r = resolve(classes, &as_ref, true, 32).and_then(|r| {
            let shape = classes
                .shape(&inst.class)
                .cloned()
                .ok_or("class vanished")?;
            check_properties(&shape, &inst.properties)?;
            Ok(r)
        });
        match r {
            Ok(r) => resolved.push((r, inst)),
            Err(reason) => rejected.push(Rejected::Instance(inst.clone(), reason)),
        }
    }
    resolved.sort_by_key(|(r, _)| r.depth);
    let mut claimed_now: BTreeSet<String> = BTreeSet::new();
    for (r, inst) in resolved {
        if let Some(host) = &r.host_id {
            if space.instance(host)?.is_none() {
                rejected.push(Rejected::Instance(
                    inst.clone(),
                    format!(
                        "its host ({}) is not known: send the host first or in the same submission",
                        describe(inst.host.as_ref())
                    ),
                ));
                continue;
            }
        }
        let claim = Claim {
            class: inst.class.clone(),
            properties: inst
                .properties
                .iter()
                .filter(|(_, v)| !matches!(v, PropertyValue::Null))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            managing: d.source.managing,
            seq,
        };
        space.claim_instance(classes, &r.id, r.host_id.clone(), &inst.keys, &src, claim)?;
        claimed_now.insert(r.id);
    }

    // Relationships.
    let mut rels_now: BTreeSet<String> = BTreeSet::new();
    for rel in &d.relationships {
        let target_root = rel
            .target_root_host
            .as_deref()
            .filter(|r| !r.is_empty() && *r != root);
        match space.resolve_relationship(
            classes,
            &rel.kind,
            &rel.source,
            &rel.target,
            target_root,
            true,
        ) {
            Ok((id, s, t)) => {
                let props: Properties = rel
                    .properties
                    .iter()
                    .filter(|(_, v)| !matches!(v, PropertyValue::Null))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                space.claim_relationship(
                    &id,
                    (&rel.kind, &s, &t, target_root),
                    &src,
                    props,
                    seq,
                )?;
                rels_now.insert(id);
            }
            Err(reason) => rejected.push(Rejected::Relationship(rel.clone(), reason)),
        }
    }

    // What the source no longer claims.
    match d.mode {
        DiscoveryMode::Snapshot => {
            for id in source
                .relationships
                .difference(&rels_now)
                .cloned()
                .collect::<Vec<_>>()
            {
                space.unclaim_relationship(&id, &src)?;
            }
            for id in source
                .instances
                .difference(&claimed_now)
                .cloned()
                .collect::<Vec<_>>()
            {
                space.unclaim_instance(classes, &id, &src)?;
            }
            source.instances = claimed_now;
            source.relationships = rels_now;
        }
        DiscoveryMode::Incremental => {
            for r in &d.removed_relationships {
                match space
                    .resolve_relationship(classes, &r.kind, &r.source, &r.target, None, false)
                {
                    Ok((id, _, _)) => {
                        space.unclaim_relationship(&id, &src)?;
                        source.relationships.remove(&id);
                    }
                    Err(reason) => rejected.push(Rejected::RemovedRelationship(r.clone(), reason)),
                }
            }
            for r in &d.removed_instances {
                match resolve(classes, r, false, 32) {
                    Ok(res) => {
                        space.unclaim_instance(classes, &res.id, &src)?;
                        source.instances.remove(&res.id);
                    }
                    Err(reason) => rejected.push(Rejected::RemovedInstance(r.clone(), reason)),
                }
            }
            source.instances.extend(claimed_now);
            source.relationships.extend(rels_now);
        }
    }
    // Group memberships of what changed (of everything, when the groups changed).
    if packs_changed {
        space.touch_all()?;
        space.ws.put_raw(META_CF, mkey, packs_digest.into_bytes());
    }
    space.recalc_groups(classes, &defs.0, seq)?;

    // Instances deleted by a cascade are no longer claimed by anyone.
    let mut gone = Vec::new();
    for id in &source.instances {
        if space.instance(id)?.is_none() {
            gone.push(id.clone());
        }
    }
    for id in gone {
        source.instances.remove(&id);
    }
    let mut gone = Vec::new();
    for id in &source.relationships {
        if space.relationship(id)?.is_none() {
            gone.push(id.clone());
        }
    }
    for id in gone {
        source.relationships.remove(&id);
    }
    let dkey = source_digest_key(root, &src);
    if rejected.is_empty() {
        space.ws.put_raw(META_CF, dkey, digest.as_bytes().to_vec());
    } else {
        space.ws.delete(META_CF, dkey);
    }
    let out = std::mem::take(&mut space.out);
    let plan = if space.plan_dirty || packs_changed {
        space.plan(classes)?
    } else {
        None
    };
    if source.instances.is_empty() && source.relationships.is_empty() {
        ws.delete(SOURCES_CF, skey);
    } else {
        ws.put(SOURCES_CF, skey, &source)?;
    }
    Ok(Outcome {
        changes: coalesce(out),
        rejected,
        unchanged: false,
        plan,
    })
}

/// Keep the last change of each entity, in the order of their first change.
fn coalesce(changes: Vec<Change>) -> Vec<Change> {
    let mut last: BTreeMap<(String, u8), usize> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        last.insert((c.entity_id.clone(), c.kind as u8), i);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in &changes {
        let k = (c.entity_id.clone(), c.kind as u8);
        if seen.insert(k.clone()) {
            out.push(changes[last[&k]].clone());
        }
    }
    out
}

fn describe(r: Option<&InstanceRef>) -> String {
    match r {
        None => "none".into(),
        Some(r) => {
            let keys: Vec<String> = r
                .keys
                .iter()
                .map(|(k, v)| format!("{k}={}", value_text(v)))
                .collect();
            format!("{} {}", r.class, keys.join(","))
        }
    }
}

fn value_text(v: &PropertyValue) -> String {
    match v {
        PropertyValue::Null => "null".into(),
        PropertyValue::Boolean(b) => b.to_string(),
        PropertyValue::Long(i) => i.to_string(),
        PropertyValue::Double(f) => f.to_string(),
        PropertyValue::String(s) => s.clone(),
    }
}

struct Space<'w, 's> {
    ws: &'w mut WorkingSet<'s>,
    root: &'w str,
    /// The source being applied.
    src: &'w str,
    out: Vec<Change>,
    /// Instances whose view changed: their group memberships are evaluated again.
    touched: BTreeSet<String>,
    /// Property names collection plans read (`$Target/...$` in data sources).
    referenced: std::sync::Arc<BTreeSet<String>>,
    /// Something a collection plan depends on changed: instances came or went, or changed
    /// class, managed flag, group membership, or a property a data source reads.
    plan_dirty: bool,
}

impl Space<'_, '_> {
    fn instance(&self, id: &str) -> Result<Option<InstanceState>, StoreError> {
        self.ws.get(INSTANCES_CF, &instance_key(self.root, id))
    }

    fn relationship(&self, id: &str) -> Result<Option<RelationshipState>, StoreError> {
        self.ws
            .get(RELATIONSHIPS_CF, &relationship_key(self.root, id))
    }

    fn instance_view(&self, classes: &mut Classes, s: &InstanceState) -> View {
        // The most derived class claimed; properties merged in claim order.
        let mut claims: Vec<(&String, &Claim)> = s.claims.iter().collect();
        claims.sort_by_key(|(src, c)| (c.seq, (*src).clone()));
        let mut class = claims
            .first()
            .map(|(_, c)| c.class.clone())
            .unwrap_or_default();
        for (_, c) in &claims {
            if c.class != class && classes.is_a(&c.class, &class) {
                class = c.class.clone();
            }
        }
        let mut properties = Properties::new();
        for (_, c) in &claims {
            properties.extend(c.properties.clone());
        }
        View {
            class,
            keys: s.keys.clone(),
            properties,
            host_id: s.host_id.clone(),
            source_id: None,
            target_id: None,
            managed: s.managed,
            claimed_by: s.claims.keys().cloned().collect(),
            source_class: None,
        }
    }

    fn host_managed(&self, host: Option<&String>) -> Result<bool, StoreError> {
        Ok(match host {
            None => false,
            Some(h) => self.instance(h)?.is_some_and(|i| i.managed),
        })
    }

    fn claim_instance(
        &mut self,
        classes: &mut Classes,
        id: &str,
        host_id: Option<String>,
        keys: &Properties,
        src: &str,
        claim: Claim,
    ) -> Result<(), StoreError> {
        let before = self.instance(id)?;
        let mut state = before.clone().unwrap_or_else(|| InstanceState {
            class: String::new(),
            keys: keys.clone(),
            host_id: host_id.clone(),
            claims: BTreeMap::new(),
            managed: false,
            groups: BTreeMap::new(),
        });
        // A changed claim keeps its place in the order unless what it says changed.
        let claim = match state.claims.get(src) {
            Some(old)
                if old.class == claim.class
                    && old.properties == claim.properties
                    && old.managing == claim.managing =>
            {
                old.clone()
            }
            _ => claim,
        };
        state.claims.insert(src.to_string(), claim);
        state.managed = state.claims.values().any(|c| c.managing)
            || self.host_managed(state.host_id.as_ref())?;
        if before.is_none() {
            if let Some(h) = &host_id {
                self.ws.put_marker(HOSTED_CF, hosted_key(self.root, h, id));
            }
        }
        self.store_instance(classes, id, before, state)
    }

    /// Write an instance; emit its change if the view changed; carry a managed change to
    /// what it hosts.
    fn store_instance(
        &mut self,
        classes: &mut Classes,
        id: &str,
        before: Option<InstanceState>,
        state: InstanceState,
    ) -> Result<(), StoreError> {
        let old_view = before.as_ref().map(|b| self.instance_view(classes, b));
        let new_view = self.instance_view(classes, &state);
        let managed_changed = before.as_ref().map(|b| b.managed) != Some(state.managed);
        let mut state = state;
        state.class = new_view.class.clone();
        match &old_view {
            None => {
                self.ws
                    .put_raw(BY_ID_CF, by_id_key(id), self.root.as_bytes().to_vec());
                self.ws
                    .put_marker(BY_CLASS_CF, by_class_key(&state.class, self.root, id));
            }
            Some(old) if old.class != state.class => {
                self.ws
                    .delete(BY_CLASS_CF, by_class_key(&old.class, self.root, id));
                self.ws
                    .put_marker(BY_CLASS_CF, by_class_key(&state.class, self.root, id));
            }
            Some(_) => {}
        }
        self.ws
            .put(INSTANCES_CF, instance_key(self.root, id), &state)?;
        let plan_inputs_changed = match &old_view {
            None => true,
            Some(old) => {
                old.class != new_view.class
                    || managed_changed
                    || self.referenced.iter().any(|p| {
                        old.properties.get(p) != new_view.properties.get(p)
                            || old.keys.get(p) != new_view.keys.get(p)
                    })
            }
        };
        if plan_inputs_changed {
            self.plan_dirty = true;
        }
        if old_view.as_ref() != Some(&new_view) {
            self.touched.insert(id.to_string());
            self.out.push(Change {
                entity_id: id.to_string(),
                kind: EntityKind::Instance,
                view: Some(new_view),
                route: None,
            });
        }
        if managed_changed && before.is_some() {
            for child in self.children(id)? {
                if let Some(c) = self.instance(&child)? {
                    let managed = c.claims.values().any(|cl| cl.managing) || state.managed;
                    if managed != c.managed {
                        let mut next = c.clone();
                        next.managed = managed;
                        self.store_instance(classes, &child, Some(c), next)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn children(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.ws
            .keys_with_prefix(HOSTED_CF, &hosted_prefix(self.root, id))?
            .iter()
            .map(|k| last_str(k, HOSTED_KEY_PREFIX, 3))
            .collect()
    }

    fn unclaim_instance(
        &mut self,
        classes: &mut Classes,
        id: &str,
        src: &str,
    ) -> Result<(), StoreError> {
        let Some(before) = self.instance(id)? else {
            return Ok(());
        };
        if !before.claims.contains_key(src) {
            return Ok(());
        }
        let mut state = before.clone();
        state.claims.remove(src);
        if state.claims.is_empty() {
            return self.delete_instance(id);
        }
        state.managed = state.claims.values().any(|c| c.managing)
            || self.host_managed(state.host_id.as_ref())?;
        self.store_instance(classes, id, Some(before), state)
    }

    /// Delete an instance, what it hosts (recursively) and its relationships.
    fn delete_instance(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(state) = self.instance(id)? else {
            return Ok(());
        };
        for child in self.children(id)? {
            self.delete_instance(&child)?;
        }
        let rels: Vec<String> = self
            .ws
            .keys_with_prefix(ENDPOINTS_CF, &endpoint_prefix(self.root, id))?
            .iter()
            .map(|k| last_str(k, ENDPOINT_KEY_PREFIX, 3))
            .collect::<Result<_, _>>()?;
        for rel in rels {
            self.delete_relationship(&rel)?;
        }
        if let Some(h) = &state.host_id {
            self.ws.delete(HOSTED_CF, hosted_key(self.root, h, id));
        }
        for other in state.claims.keys() {
            self.forget(other, Some(id), None)?;
        }
        self.plan_dirty = true;
        self.ws.delete(INSTANCES_CF, instance_key(self.root, id));
        self.ws.delete(BY_ID_CF, by_id_key(id));
        self.ws
            .delete(BY_CLASS_CF, by_class_key(&state.class, self.root, id));
        self.out.push(Change {
            entity_id: id.to_string(),
            kind: EntityKind::Instance,
            view: None,
            route: None,
        });
        Ok(())
    }

    /// The root host's collection plan, if it differs from the last one published.
    fn plan(&mut self, classes: &mut Classes) -> Result<Option<Plan>, StoreError> {
        let mut all: BTreeMap<String, InstanceState> = BTreeMap::new();
        for (k, v) in self
            .ws
            .entries_with_prefix(INSTANCES_CF, &instances_prefix(self.root))?
        {
            let id = last_str(&k, INSTANCE_KEY_PREFIX, 2)?;
            let s: InstanceState =
                decode(&v).map_err(|e| StoreError::Corrupt(format!("instance: {e}")))?;
            all.insert(id, s);
        }
        let mut groups_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut props: BTreeMap<String, Properties> = BTreeMap::new();
        for (id, s) in &all {
            let view = self.instance_view(classes, s);
            let mut p = view.keys.clone();
            p.extend(view.properties);
            props.insert(id.clone(), p);
            groups_of.insert(id.clone(), s.groups.keys().cloned().collect());
        }
        let mut instances = Vec::with_capacity(all.len());
        for (id, s) in &all {
            let mut chain = vec![(id.clone(), props.get(id).cloned().unwrap_or_default())];
            let mut hosts = Vec::new();
            let mut groups: Vec<(String, usize)> = groups_of
                .get(id)
                .into_iter()
                .flatten()
                .map(|g| (g.clone(), 0))
                .collect();
            let mut next = s.host_id.clone();
            while let Some(h) = next.take() {
                let Some(hs) = all.get(&h) else { break };
                if chain.len() > 32 {
                    break;
                }
                hosts.push((h.clone(), hs.class.clone()));
                groups.extend(
                    groups_of
                        .get(&h)
                        .into_iter()
                        .flatten()
                        .map(|g| (g.clone(), chain.len())),
                );
                chain.push((h.clone(), props.get(&h).cloned().unwrap_or_default()));
                next = hs.host_id.clone();
            }
            instances.push(PlanInstance {
                id: id.clone(),
                class: s.class.clone(),
                managed: s.managed,
                chain,
                hosts,
                groups,
            });
        }
        let index = classes.plan_index();
        let plan = crate::plans::plan(classes.catalog(), &index, &instances);
        let key = plan_key(self.root);
        if self.ws.get_raw(META_CF, &key)?.as_deref() == Some(plan.digest.as_bytes()) {
            return Ok(None);
        }
        self.ws
            .put_raw(META_CF, key, plan.digest.clone().into_bytes());
        Ok(Some(plan))
    }

    fn touch_all(&mut self) -> Result<(), StoreError> {
        let prefix = instances_prefix(self.root);
        for k in self.ws.keys_with_prefix(INSTANCES_CF, &prefix)? {
            self.touched.insert(last_str(&k, INSTANCE_KEY_PREFIX, 2)?);
        }
        Ok(())
    }

    /// Evaluate the groups for every touched instance; create and delete membership
    /// relationships where membership changed.
    fn recalc_groups(
        &mut self,
        classes: &mut Classes,
        defs: &[GroupDef],
        seq: i64,
    ) -> Result<(), StoreError> {
        let touched = std::mem::take(&mut self.touched);
        for id in touched {
            let Some(mut state) = self.instance(&id)? else {
                continue;
            };
            let before = state.groups.clone();
            // Memberships of groups the packs no longer define.
            for (g, rel) in before.iter() {
                if !defs.iter().any(|d| &d.id == g) {
                    self.delete_relationship(rel)?;
                    state.groups.remove(g);
                }
            }
            if !defs.is_empty() {
                let view = self.instance_view(classes, &state);
                let mut memberships: BTreeMap<String, bool> = defs
                    .iter()
                    .map(|d| (d.id.clone(), state.groups.contains_key(&d.id)))
                    .collect();
                for d in defs {
                    let member = {
                        let c = Candidate {
                            id: &id,
                            keys: &view.keys,
                            properties: &view.properties,
                            memberships: &memberships,
                        };
                        d.admits(classes, &view.class, &c)
                    };
                    let was = memberships.get(&d.id).copied().unwrap_or(false);
                    if member && !was {
                        let rel = relationship_id(&d.relationship, &d.instance_id, &id);
                        let group_source = format!("group:{}", d.id);
                        let rs = RelationshipState {
                            kind: d.relationship.clone(),
                            source_id: d.instance_id.clone(),
                            target_id: id.clone(),
                            claims: BTreeMap::from([(group_source, (Properties::new(), seq))]),
                            group: Some(d.id.clone()),
                            target_root: None,
                        };
                        self.ws
                            .put_marker(ENDPOINTS_CF, endpoint_key(self.root, &id, &rel));
                        self.store_relationship(&rel, None, rs)?;
                        state.groups.insert(d.id.clone(), rel);
                    } else if !member && was {
                        if let Some(rel) = state.groups.remove(&d.id) {
                            self.delete_relationship(&rel)?;
                        }
                    }
                    memberships.insert(d.id.clone(), member);
                }
            }
            if state.groups != before {
                self.plan_dirty = true;
                self.ws
                    .put(INSTANCES_CF, instance_key(self.root, &id), &state)?;
            }
        }
        Ok(())
    }

    /// Another source's claim went with a cascade: it no longer claims the entity, and its
    /// next submission is applied even if identical to its last one (it may bring the
    /// entity back). The source being applied keeps its own bookkeeping.
    fn forget(
        &mut self,
        source: &str,
        instance: Option<&str>,
        relationship: Option<&str>,
    ) -> Result<(), StoreError> {
        if source == self.src {
            return Ok(());
        }
        let key = source_key(self.root, source);
        let Some(mut st) = self.ws.get::<SourceState>(SOURCES_CF, &key)? else {
            return Ok(());
        };
        if let Some(i) = instance {
            st.instances.remove(i);
        }
        if let Some(r) = relationship {
            st.relationships.remove(r);
        }
        self.ws
            .delete(META_CF, source_digest_key(self.root, source));
        self.ws.put(SOURCES_CF, key, &st)
    }

    /// The id and ends of a relationship. `target_root`: the target's root host when it is
    /// another hosting tree's (containment and reference only; the target is not known here
    /// and not checked). `claiming`: both ends known here must exist (a removal need not).
    fn resolve_relationship(
        &mut self,
        classes: &mut Classes,
        kind: &str,
        source: &InstanceRef,
        target: &InstanceRef,
        target_root: Option<&str>,
        claiming: bool,
    ) -> Result<(String, String, String), String> {
        let rel = classes
            .catalog()
            .relationship(kind)
            .cloned()
            .ok_or_else(|| {
                format!("relationship type {kind:?} is not defined by the packs in force")
            })?;
        let s = resolve(classes, source, false, 32)?;
        let t = resolve(classes, target, false, 32)?;
        let sc = &source.class;
        let tc = &target.class;
        if !(classes.is_a(sc, &rel.source) || classes.is_a(&rel.source, sc)) {
            return Err(format!("{kind} goes from {}, not from {sc}", rel.source));
        }
        if !(classes.is_a(tc, &rel.target) || classes.is_a(&rel.target, tc)) {
            return Err(format!("{kind} goes to {}, not to {tc}", rel.target));
        }
        if target_root.is_some() && rel.kind == RelationshipKind::Hosting {
            return Err(format!(
                "{kind} is a hosting relationship: a hosted instance is in its host's tree, so its target cannot be in another one (target_root_host)"
            ));
        }
        if claiming {
            let ends: &[(&str, &String)] = if target_root.is_some() {
                &[("source", &s.id)]
            } else {
                &[("source", &s.id), ("target", &t.id)]
            };
            for (end, id) in ends {
                if self.instance(id).map_err(|e| e.to_string())?.is_none() {
                    return Err(format!("its {end} is not a known instance"));
                }
            }
        }
        Ok((relationship_id(kind, &s.id, &t.id), s.id, t.id))
    }

    /// `what`: type, source, target and the target's root host when it is another tree's.
    fn claim_relationship(
        &mut self,
        id: &str,
        what: (&str, &str, &str, Option<&str>),
        src: &str,
        props: Properties,
        seq: i64,
    ) -> Result<(), StoreError> {
        let (kind, s, t, target_root) = what;
        let before = self.relationship(id)?;
        let mut state = before.clone().unwrap_or_else(|| RelationshipState {
            kind: kind.to_string(),
            source_id: s.to_string(),
            target_id: t.to_string(),
            claims: BTreeMap::new(),
            group: None,
            target_root: target_root.map(str::to_string),
        });
        let entry = match state.claims.get(src) {
            Some((p, old_seq)) if *p == props => (p.clone(), *old_seq),
            _ => (props, seq),
        };
        state.claims.insert(src.to_string(), entry);
        if before.is_none() {
            self.ws
                .put_marker(ENDPOINTS_CF, endpoint_key(self.root, s, id));
            if state.target_root.is_none() {
                self.ws
                    .put_marker(ENDPOINTS_CF, endpoint_key(self.root, t, id));
            }
        }
        self.store_relationship(id, before, state)
    }

    fn relationship_view(s: &RelationshipState, source_class: Option<String>) -> View {
        let mut claims: Vec<(&String, &(Properties, i64))> = s.claims.iter().collect();
        claims.sort_by_key(|(src, (_, seq))| (*seq, (*src).clone()));
        let mut properties = Properties::new();
        for (_, (p, _)) in claims {
            properties.extend(p.clone());
        }
        View {
            class: s.kind.clone(),
            keys: Properties::new(),
            properties,
            host_id: None,
            source_id: Some(s.source_id.clone()),
            target_id: Some(s.target_id.clone()),
            managed: true,
            claimed_by: s.claims.keys().cloned().collect(),
            source_class,
        }
    }

    fn store_relationship(
        &mut self,
        id: &str,
        before: Option<RelationshipState>,
        state: RelationshipState,
    ) -> Result<(), StoreError> {
        // A group's singleton is of the group's class (and not an instance of this tree).
        let source_class = match &state.group {
            Some(g) => Some(g.clone()),
            None => self.instance(&state.source_id)?.map(|i| i.class),
        };
        let old = before
            .as_ref()
            .map(|b| Self::relationship_view(b, source_class.clone()));
        let new = Self::relationship_view(&state, source_class);
        self.ws
            .put(RELATIONSHIPS_CF, relationship_key(self.root, id), &state)?;
        if old.as_ref() != Some(&new) {
            self.out.push(Change {
                entity_id: id.to_string(),
                kind: EntityKind::Relationship,
                view: Some(new),
                route: state.target_root.clone(),
            });
        }
        Ok(())
    }

    fn unclaim_relationship(&mut self, id: &str, src: &str) -> Result<(), StoreError> {
        let Some(before) = self.relationship(id)? else {
            return Ok(());
        };
        if !before.claims.contains_key(src) {
            return Ok(());
        }
        let mut state = before.clone();
        state.claims.remove(src);
        if state.claims.is_empty() {
            return self.delete_relationship(id);
        }
        self.store_relationship(id, Some(before), state)
    }

    fn delete_relationship(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(state) = self.relationship(id)? else {
            return Ok(());
        };
        self.ws
            .delete(ENDPOINTS_CF, endpoint_key(self.root, &state.source_id, id));
        if state.target_root.is_none() {
            self.ws
                .delete(ENDPOINTS_CF, endpoint_key(self.root, &state.target_id, id));
        }
        for other in state.claims.keys() {
            self.forget(other, None, Some(id))?;
        }
        self.ws
            .delete(RELATIONSHIPS_CF, relationship_key(self.root, id));
        self.out.push(Change {
            entity_id: id.to_string(),
            kind: EntityKind::Relationship,
            view: None,
            route: state.target_root.clone(),
        });
        Ok(())
    }
}
