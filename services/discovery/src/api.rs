//! Reads of the instance space.
//!
//! - `GET /v1/instances?class=C&property=NAME=VALUE&host=ID&limit=N&after=CURSOR`: instances
//!   of a class (derived classes included), with a property value, or hosted by an instance;
//!   a page at a time (`next` is the cursor of the following page);
//! - `GET /v1/instances/{id}`: one instance with its properties, claiming sources,
//!   relationships, hosted tree and groups.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_contracts::records::{Properties, PropertyValue};
use healthstream_packfeed::Packs;
use healthstream_store::{KeyReader, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::*;

/// Largest page.
pub const MAX_PAGE: usize = 1000;
/// Deepest hosted tree shown.
const MAX_TREE: usize = 500;

#[derive(Clone)]
struct Reads {
    store: Store,
    packs: Packs,
}

/// The routes.
pub fn router(store: Store, packs: Packs) -> Router {
    Router::new()
        .route("/v1/instances", get(list))
        .route("/v1/instances/{id}", get(show))
        .with_state(Reads { store, packs })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    class: Option<String>,
    property: Option<String>,
    host: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// An instance in a listing.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub root_host: String,
    pub class: String,
    pub keys: Properties,
    pub properties: Properties,
    pub host_id: Option<String>,
    pub managed: bool,
    pub claimed_by: Vec<String>,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn internal(e: StoreError) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    crate::state::decode(bytes).map_err(StoreError::Corrupt)
}

fn effective_properties(s: &InstanceState) -> Properties {
    let mut claims: Vec<(&String, &Claim)> = s.claims.iter().collect();
    claims.sort_by_key(|(src, c)| (c.seq, (*src).clone()));
    let mut out = Properties::new();
    for (_, c) in claims {
        out.extend(c.properties.clone());
    }
    out
}

fn summary(root: &str, id: &str, s: &InstanceState) -> Summary {
    Summary {
        id: id.to_string(),
        root_host: root.to_string(),
        class: s.class.clone(),
        keys: s.keys.clone(),
        properties: effective_properties(s),
        host_id: s.host_id.clone(),
        managed: s.managed,
        claimed_by: s.claims.keys().cloned().collect(),
    }
}

fn value_matches(v: &PropertyValue, want: &str) -> bool {
    match v {
        PropertyValue::Null => want.is_empty(),
        PropertyValue::Boolean(b) => b.to_string() == want,
        PropertyValue::Long(i) => i.to_string() == want,
        PropertyValue::Double(f) => want.parse::<f64>().is_ok_and(|w| w == *f),
        PropertyValue::String(s) => s == want,
    }
}

/// The root host of an instance.
pub fn root_of(store: &Store, id: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(BY_ID_CF, &by_id_key(id))?
        .map(|r| String::from_utf8_lossy(&r).to_string()))
}

/// One instance by id.
pub fn instance(store: &Store, id: &str) -> Result<Option<(String, InstanceState)>, StoreError> {
    let Some(root) = root_of(store, id)? else {
        return Ok(None);
    };
    Ok(store
        .get(INSTANCES_CF, &instance_key(&root, id))?
        .map(|v| decode(&v))
        .transpose()?
        .map(|s| (root, s)))
}

async fn list(State(r): State<Reads>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let filter = match &q.property {
        None => None,
        Some(p) => match p.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => return bad_request(format!("property={p:?}: write property=NAME=VALUE")),
        },
    };
    let after = match q.after.as_deref().map(from_hex) {
        None => None,
        Some(Some(a)) => Some(a),
        Some(None) => return bad_request("after: not a cursor returned by this API".into()),
    };
    let result = match (&q.class, &q.host) {
        (_, Some(host)) => list_hosted(
            &r.store,
            host,
            filter.as_ref(),
            q.class.as_deref(),
            limit,
            after,
        ),
        (Some(class), None) => {
            let catalog = r.packs.borrow().store.catalog();
            let mut classes: Vec<String> = catalog
                .packs()
                .iter()
                .flat_map(|p| {
                    p.pack
                        .classes
                        .iter()
                        .map(|c| c.id.clone())
                        .chain(p.pack.groups.iter().map(|g| g.id.clone()))
                })
                .filter(|c| catalog.is_a(c, class))
                .collect();
            if classes.is_empty() {
                classes.push(class.clone());
            }
            classes.sort();
            list_by_class(&r.store, &classes, filter.as_ref(), limit, after)
        }
        (None, None) => list_all(&r.store, filter.as_ref(), limit, after),
    };
    match result {
        Ok((items, next)) => {
            Json(json!({ "instances": items, "next": next.map(|n| to_hex(&n)) })).into_response()
        }
        Err(e) => internal(e),
    }
}

type Page = (Vec<Summary>, Option<Vec<u8>>);

fn keep(s: &InstanceState, filter: Option<&(String, String)>) -> bool {
    match filter {
        None => true,
        Some((k, v)) => {
            s.keys.get(k).is_some_and(|x| value_matches(x, v))
                || effective_properties(s)
                    .get(k)
                    .is_some_and(|x| value_matches(x, v))
        }
    }
}

/// Every instance, in key order.
fn list_all(
    store: &Store,
    filter: Option<&(String, String)>,
    limit: usize,
    after: Option<Vec<u8>>,
) -> Result<Page, StoreError> {
    let prefix = all_instances_prefix();
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let entries =
            store.scan_prefix_after(INSTANCES_CF, &prefix, cursor.as_deref(), MAX_PAGE)?;
        if entries.is_empty() {
            return Ok((out, None));
        }
        for (k, v) in &entries {
            cursor = Some(k.clone());
            let mut rd = KeyReader::new(k, INSTANCE_KEY_PREFIX)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let root = rd.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let id = rd.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let s: InstanceState = decode(v)?;
            if keep(&s, filter) {
                out.push(summary(&root, &id, &s));
                if out.len() == limit {
                    return Ok((out, cursor));
                }
            }
        }
    }
}

/// Instances of these classes, class by class.
fn list_by_class(
    store: &Store,
    classes: &[String],
    filter: Option<&(String, String)>,
    limit: usize,
    after: Option<Vec<u8>>,
) -> Result<Page, StoreError> {
    let mut out = Vec::new();
    for class in classes {
        let prefix = by_class_prefix(class);
        let mut cursor = match &after {
            Some(a) if a.as_slice() >= prefix.as_slice() && !a.starts_with(&prefix) => continue,
            Some(a) if a.starts_with(&prefix) => Some(a.clone()),
            _ => None,
        };
        loop {
            let entries =
                store.scan_prefix_after(BY_CLASS_CF, &prefix, cursor.as_deref(), MAX_PAGE)?;
            if entries.is_empty() {
                break;
            }
            for (k, _) in &entries {
                cursor = Some(k.clone());
                let mut rd = KeyReader::new(k, BY_CLASS_KEY_PREFIX)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let _class = rd.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let root = rd.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let id = rd.str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let Some(v) = store.get(INSTANCES_CF, &instance_key(&root, &id))? else {
                    continue;
                };
                let s: InstanceState = decode(&v)?;
                if keep(&s, filter) {
                    out.push(summary(&root, &id, &s));
                    if out.len() == limit {
                        return Ok((out, cursor));
                    }
                }
            }
        }
    }
    Ok((out, None))
}

/// Instances hosted directly by `host`.
fn list_hosted(
    store: &Store,
    host: &str,
    filter: Option<&(String, String)>,
    class: Option<&str>,
    limit: usize,
    after: Option<Vec<u8>>,
) -> Result<Page, StoreError> {
    let Some(root) = root_of(store, host)? else {
        return Ok((Vec::new(), None));
    };
    let prefix = hosted_prefix(&root, host);
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let entries = store.scan_prefix_after(HOSTED_CF, &prefix, cursor.as_deref(), MAX_PAGE)?;
        if entries.is_empty() {
            return Ok((out, None));
        }
        for (k, _) in &entries {
            cursor = Some(k.clone());
            let child = last_str(k, HOSTED_KEY_PREFIX, 3)?;
            let Some(v) = store.get(INSTANCES_CF, &instance_key(&root, &child))? else {
                continue;
            };
            let s: InstanceState = decode(&v)?;
            if class.is_none_or(|c| c == s.class) && keep(&s, filter) {
                out.push(summary(&root, &child, &s));
                if out.len() == limit {
                    return Ok((out, cursor));
                }
            }
        }
    }
}

#[derive(Serialize)]
struct TreeNode {
    id: String,
    class: String,
    keys: Properties,
    hosted: Vec<TreeNode>,
}

fn tree(
    store: &Store,
    root: &str,
    id: &str,
    budget: &mut usize,
) -> Result<Vec<TreeNode>, StoreError> {
    let mut out = Vec::new();
    for (k, _) in store.scan_prefix(HOSTED_CF, &hosted_prefix(root, id))? {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let child = last_str(&k, HOSTED_KEY_PREFIX, 3)?;
        let Some(v) = store.get(INSTANCES_CF, &instance_key(root, &child))? else {
            continue;
        };
        let s: InstanceState = decode(&v)?;
        let hosted = tree(store, root, &child, budget)?;
        out.push(TreeNode {
            id: child,
            class: s.class,
            keys: s.keys,
            hosted,
        });
    }
    Ok(out)
}

async fn show(State(r): State<Reads>, Path(id): Path<String>) -> Response {
    let result = (|| -> Result<Option<serde_json::Value>, StoreError> {
        let Some((root, s)) = instance(&r.store, &id)? else {
            return Ok(None);
        };
        let mut relationships = Vec::new();
        let mut groups = Vec::new();
        for (k, _) in r
            .store
            .scan_prefix(ENDPOINTS_CF, &endpoint_prefix(&root, &id))?
        {
            let rel_id = last_str(&k, ENDPOINT_KEY_PREFIX, 3)?;
            let Some(v) = r
                .store
                .get(RELATIONSHIPS_CF, &relationship_key(&root, &rel_id))?
            else {
                continue;
            };
            let rel: RelationshipState = decode(&v)?;
            let role = if rel.source_id == id {
                "source"
            } else {
                "target"
            };
            if let (Some(g), "target") = (&rel.group, role) {
                groups.push(json!({ "group": g, "group_instance_id": rel.source_id }));
            }
            relationships.push(json!({
                "id": rel_id,
                "type": rel.kind,
                "role": role,
                "source_id": rel.source_id,
                "target_id": rel.target_id,
                "claimed_by": rel.claims.keys().collect::<Vec<_>>(),
            }));
        }
        let mut budget = MAX_TREE;
        let hosted = tree(&r.store, &root, &id, &mut budget)?;
        let claims: BTreeMap<&String, serde_json::Value> = s
            .claims
            .iter()
            .map(|(src, c)| {
                (
                    src,
                    json!({ "class": c.class, "managing": c.managing, "properties": c.properties }),
                )
            })
            .collect();
        Ok(Some(json!({
            "instance": summary(&root, &id, &s),
            "claims": claims,
            "relationships": relationships,
            "groups": groups,
            "hosted": hosted,
            "hosted_truncated": budget == 0,
        })))
    })();
    match result {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no instance {id}") })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 4096 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
