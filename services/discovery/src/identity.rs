//! Instance identity (DESIGN.md section 3): an instance's id is derived from the class that
//! owns its key properties, the key values, and its host's id, so the whole hosting chain
//! identifies it and the same data always gives the same id.

use std::collections::{BTreeMap, HashMap};

use healthstream_contracts::derived_id;
use healthstream_contracts::records::{InstanceRef, Properties, PropertyValue};
use healthstream_model::pack::PropertyType;
use healthstream_model::Catalog;

/// What identity and validation need to know of a class.
#[derive(Debug, Clone)]
pub struct ClassShape {
    pub id: String,
    /// The class whose keys identify the instance (the topmost one declaring a key).
    pub key_owner: String,
    /// Key properties (inherited included), by name.
    pub keys: BTreeMap<String, PropertyType>,
    /// Every property, keys included.
    pub properties: HashMap<String, PropertyType>,
    /// The host class, own or inherited.
    pub host: Option<String>,
    pub is_abstract: bool,
    pub singleton: bool,
    /// The class and its bases, nearest first.
    pub ancestors: Vec<String>,
}

/// Class shapes of one catalog, computed once per class.
pub struct Classes {
    catalog: Catalog,
    cache: HashMap<String, Option<ClassShape>>,
    groups: Option<std::sync::Arc<(Vec<crate::groups::GroupDef>, String)>>,
    plans: Option<std::sync::Arc<crate::plans::PlanIndex>>,
    digest: Option<String>,
}

impl Classes {
    pub fn new(catalog: Catalog) -> Classes {
        Classes {
            catalog,
            cache: HashMap::new(),
            groups: None,
            plans: None,
            digest: None,
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The workflows a collection plan is made of.
    pub fn plan_index(&mut self) -> std::sync::Arc<crate::plans::PlanIndex> {
        if let Some(p) = &self.plans {
            return p.clone();
        }
        let p = std::sync::Arc::new(crate::plans::PlanIndex::new(&self.catalog));
        self.plans = Some(p.clone());
        p
    }

    /// A digest of the packs in force: what the stored memberships and plans reflect.
    pub fn digest(&mut self) -> String {
        if let Some(d) = &self.digest {
            return d.clone();
        }
        let mut text = String::new();
        for p in self.catalog.packs() {
            text.push_str(&format!(
                "{} {} {}\n",
                p.pack.pack.id,
                p.pack.pack.version,
                healthstream_model::store::digest(&p.text)
            ));
        }
        let d = healthstream_contracts::content_id(text.as_bytes());
        self.digest = Some(d.clone());
        d
    }

    /// The groups in evaluation order, and the digest of their definitions.
    pub fn groups(&mut self) -> std::sync::Arc<(Vec<crate::groups::GroupDef>, String)> {
        if let Some(g) = &self.groups {
            return g.clone();
        }
        let catalog = self.catalog.clone();
        let g = std::sync::Arc::new(crate::groups::groups(&catalog, self));
        self.groups = Some(g.clone());
        g
    }

    /// The shape of a class (or group), if the packs define it.
    pub fn shape(&mut self, class: &str) -> Option<&ClassShape> {
        if !self.cache.contains_key(class) {
            let shape = self.compute(class);
            self.cache.insert(class.to_string(), shape);
        }
        self.cache.get(class).and_then(Option::as_ref)
    }

    fn compute(&self, class: &str) -> Option<ClassShape> {
        let info = self.catalog.class(class)?;
        let ancestors: Vec<String> = self
            .catalog
            .ancestors(class)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut keys = BTreeMap::new();
        let mut properties = HashMap::new();
        let mut key_owner = None;
        // Root first, so the topmost class declaring a key owns the identity.
        for a in ancestors.iter().rev() {
            let Some(c) = self.catalog.class(a) else {
                continue;
            };
            for p in c.properties {
                properties.insert(p.name.clone(), p.kind);
                if p.key {
                    keys.insert(p.name.clone(), p.kind);
                    key_owner.get_or_insert_with(|| a.clone());
                }
            }
        }
        Some(ClassShape {
            id: class.to_string(),
            key_owner: key_owner.unwrap_or_else(|| class.to_string()),
            keys,
            properties,
            host: self.catalog.host_of(class).map(str::to_string),
            is_abstract: info.is_abstract,
            singleton: info.singleton,
            ancestors,
        })
    }

    /// Is `class` the same as `ancestor` or derived from it?
    pub fn is_a(&mut self, class: &str, ancestor: &str) -> bool {
        self.shape(class)
            .is_some_and(|s| s.ancestors.iter().any(|a| a == ancestor))
    }
}

/// A resolved reference: the instance id and its host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: String,
    pub host_id: Option<String>,
    /// Depth in the hosting chain (0: unhosted).
    pub depth: usize,
}

/// The canonical bytes of a property value of a declared type; an error says what is wrong.
pub fn canonical(name: &str, kind: PropertyType, v: &PropertyValue) -> Result<Vec<u8>, String> {
    let bad =
        |got: &str| Err(format!("property {name}: expected {kind:?}, got {got}").to_lowercase());
    let got = match v {
        PropertyValue::Null => "null",
        PropertyValue::Boolean(_) => "a boolean",
        PropertyValue::Long(_) => "an integer",
        PropertyValue::Double(_) => "a number",
        PropertyValue::String(_) => "text",
    };
    let mut out = Vec::new();
    match (kind, v) {
        (_, PropertyValue::Null) => return bad(got),
        (PropertyType::Int, PropertyValue::Long(i)) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_be_bytes());
        }
        (PropertyType::Float, PropertyValue::Long(i)) => {
            out.push(b'f');
            out.extend_from_slice(&(*i as f64).to_bits().to_be_bytes());
        }
        (PropertyType::Float, PropertyValue::Double(f)) if f.is_finite() => {
            out.push(b'f');
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        (PropertyType::Bool, PropertyValue::Boolean(b)) => {
            out.extend_from_slice(if *b { b"b1" } else { b"b0" })
        }
        (
            PropertyType::String | PropertyType::Guid | PropertyType::Datetime,
            PropertyValue::String(s),
        ) => {
            out.push(b's');
            out.extend_from_slice(s.as_bytes());
        }
        (PropertyType::Datetime, PropertyValue::Long(i)) => {
            out.push(b't');
            out.extend_from_slice(&i.to_be_bytes());
        }
        _ => return bad(got),
    }
    Ok(out)
}

/// Check the properties of an instance of `shape`: declared, of the declared type, and not
/// keys (keys travel separately).
pub fn check_properties(shape: &ClassShape, props: &Properties) -> Result<(), String> {
    for (name, v) in props {
        if matches!(v, PropertyValue::Null) {
            continue;
        }
        let Some(kind) = shape.properties.get(name) else {
            return Err(format!("{} has no property {name:?}", shape.id));
        };
        if shape.keys.contains_key(name) {
            return Err(format!(
                "{name} is a key property of {}: send it in keys",
                shape.id
            ));
        }
        canonical(name, *kind, v)?;
    }
    Ok(())
}

/// Resolve a reference (class, keys, host chain) to its id, validating it against the packs.
/// `concrete`: the reference creates an instance (its class must not be abstract).
pub fn resolve(
    classes: &mut Classes,
    r: &InstanceRef,
    concrete: bool,
    depth_left: usize,
) -> Result<Resolved, String> {
    if depth_left == 0 {
        return Err("the hosting chain is deeper than 32 levels".into());
    }
    let shape = classes
        .shape(&r.class)
        .cloned()
        .ok_or_else(|| format!("class {:?} is not defined by the packs in force", r.class))?;
    if concrete && shape.is_abstract {
        return Err(format!(
            "class {} is abstract: send its instances as a concrete class",
            shape.id
        ));
    }
    for name in r.keys.keys() {
        if !shape.keys.contains_key(name) {
            return Err(format!(
                "{name:?} is not a key property of {} (keys: {})",
                shape.id,
                names(&shape.keys)
            ));
        }
    }
    let mut parts: Vec<Vec<u8>> = vec![b"instance".to_vec(), shape.key_owner.as_bytes().to_vec()];
    for (name, kind) in &shape.keys {
        let v = r
            .keys
            .get(name)
            .ok_or_else(|| format!("key property {name} of {} is missing", shape.id))?;
        parts.push(name.as_bytes().to_vec());
        parts.push(canonical(name, *kind, v)?);
    }
    let (host_id, depth) = match (&shape.host, &r.host) {
        (None, None) => (None, 0),
        (None, Some(_)) => {
            return Err(format!(
                "{} is not a hosted class, but a host was given",
                shape.id
            ))
        }
        (Some(h), None) => {
            return Err(format!(
                "{} is hosted by {h}: the host is missing",
                shape.id
            ))
        }
        (Some(h), Some(host)) => {
            let related = classes.is_a(&host.class, h) || classes.is_a(h, &host.class);
            if !related {
                return Err(format!(
                    "{} is hosted by {h}, not by {}",
                    shape.id, host.class
                ));
            }
            let resolved = resolve(classes, host, false, depth_left - 1)?;
            (Some(resolved.id), resolved.depth + 1)
        }
    };
    parts.push(host_id.clone().unwrap_or_default().into_bytes());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Resolved {
        id: derived_id(&refs),
        host_id,
        depth,
    })
}

fn names(keys: &BTreeMap<String, PropertyType>) -> String {
    if keys.is_empty() {
        "none".into()
    } else {
        keys.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// The id of a relationship.
pub fn relationship_id(kind: &str, source: &str, target: &str) -> String {
    derived_id(&[
        b"relationship",
        kind.as_bytes(),
        source.as_bytes(),
        target.as_bytes(),
    ])
}
