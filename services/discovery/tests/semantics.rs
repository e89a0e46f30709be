//! The instance space's semantics (DESIGN.md section 3), on the real RocksDB state: snapshot
//! and incremental discovery, claims by several sources, the hosting cascade, connector
//! removal, no churn, managed flags, unknown hosts and malformed data.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use healthstream_contracts::records::{
    DiscoveredInstance, DiscoveredRelationship, DiscoveryMode, DiscoverySourceKind, EntityKind,
    InstanceRef, Properties, PropertyValue,
};
use healthstream_discovery::space::{Change, Outcome};
use healthstream_discovery::Classes;
use healthstream_model::load::parse_pack;
use healthstream_model::{shipped, Catalog};

#[test]
fn identity_is_deterministic_and_includes_the_hosting_chain() {
    let mut a = Harness::new();
    let mut b = Harness::new();
    assert_eq!(
        a.id(&database("srv1", "sales")),
        b.id(&database("srv1", "sales"))
    );
    assert_ne!(
        a.id(&database("srv1", "sales")),
        a.id(&database("srv2", "sales"))
    );
    assert_ne!(
        a.id(&database("srv1", "sales")),
        a.id(&database("srv1", "hr"))
    );
    // The key owner is System.Computer: a T.Server and a Linux.Computer of the same name are
    // the same computer.
    let linux = InstanceRef {
        class: "Linux.Computer".into(),
        keys: props(&[("PrincipalName", s("srv1"))]),
        host: None,
    };
    assert_eq!(a.id(&linux), a.id(&server("srv1")));
}

#[test]
fn snapshot_removal() {
    let mut h = Harness::new();
    let first = h.submit(&snapshot(
        "db-discovery",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(
                &database("srv1", "sales"),
                props(&[("SizeGb", PropertyValue::Long(10))]),
            ),
            inst(&database("srv1", "hr"), props(&[])),
        ],
    ));
    assert_eq!(instances(&first).len(), 3);
    assert!(first.rejected.is_empty(), "{:?}", first.rejected);
    let sales = h.id(&database("srv1", "sales"));
    let view = change(&first, &sales).view.clone().expect("upsert");
    assert_eq!(view.class, "T.Database");
    assert_eq!(view.properties["SizeGb"], PropertyValue::Long(10));
    assert_eq!(view.host_id, Some(h.id(&server("srv1"))));
    assert_eq!(view.claimed_by, ["discovery:db-discovery"]);

    let second = h.submit(&snapshot(
        "db-discovery",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(
                &database("srv1", "sales"),
                props(&[("SizeGb", PropertyValue::Long(10))]),
            ),
        ],
    ));
    assert_eq!(deleted(&second), [h.id(&database("srv1", "hr"))]);
    assert!(
        upserted(&second).is_empty(),
        "nothing else changed: {:?}",
        second.changes
    );
}

#[test]
fn identical_submission_changes_nothing() {
    let mut h = Harness::new();
    let d = snapshot(
        "db-discovery",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "sales"), props(&[])),
        ],
    );
    assert!(!h.submit(&d).changes.is_empty());
    let again = h.submit(&d);
    assert!(again.unchanged);
    assert!(again.changes.is_empty());
    // A property change is a change of that instance only.
    let mut changed = d.clone();
    changed.instances[1].properties = props(&[("SizeGb", PropertyValue::Long(3))]);
    let out = h.submit(&changed);
    assert_eq!(upserted(&out), [h.id(&database("srv1", "sales"))]);
}

#[test]
fn incremental_add_and_remove() {
    let mut h = Harness::new();
    h.submit(&snapshot(
        "db-discovery",
        vec![inst(&server("srv1"), props(&[]))],
    ));
    let mut add = data(
        "db-discovery",
        DiscoverySourceKind::Discovery,
        DiscoveryMode::Incremental,
        vec![inst(&database("srv1", "sales"), props(&[]))],
    );
    let out = h.submit(&add);
    assert_eq!(upserted(&out), [h.id(&database("srv1", "sales"))]);
    // An increment does not unclaim what it does not mention.
    add.instances = vec![inst(&database("srv1", "hr"), props(&[]))];
    let out = h.submit(&add);
    assert_eq!(upserted(&out), [h.id(&database("srv1", "hr"))]);
    assert!(deleted(&out).is_empty());
    let mut remove = data(
        "db-discovery",
        DiscoverySourceKind::Discovery,
        DiscoveryMode::Incremental,
        vec![],
    );
    remove.removed_instances = vec![database("srv1", "sales")];
    let out = h.submit(&remove);
    assert_eq!(deleted(&out), [h.id(&database("srv1", "sales"))]);
    // A later snapshot of the source knows the server and hr: nothing to delete.
    let out = h.submit(&snapshot(
        "db-discovery",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "hr"), props(&[])),
        ],
    ));
    assert!(deleted(&out).is_empty(), "{:?}", out.changes);
}

#[test]
fn two_sources_claim_one_instance() {
    let mut h = Harness::new();
    h.submit(&snapshot(
        "a",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(
                &database("srv1", "sales"),
                props(&[("SizeGb", PropertyValue::Long(1))]),
            ),
        ],
    ));
    let out = h.submit(&snapshot(
        "b",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(
                &database("srv1", "sales"),
                props(&[("SizeGb", PropertyValue::Long(2))]),
            ),
        ],
    ));
    let sales = h.id(&database("srv1", "sales"));
    let v = change(&out, &sales).view.clone().expect("upsert");
    assert_eq!(v.claimed_by, ["discovery:a", "discovery:b"]);
    assert_eq!(
        v.properties["SizeGb"],
        PropertyValue::Long(2),
        "the later claim wins a property conflict"
    );
    // A drops it: it lives on, claimed by B.
    let out = h.submit(&snapshot("a", vec![inst(&server("srv1"), props(&[]))]));
    let v = change(&out, &sales).view.clone().expect("still there");
    assert_eq!(v.claimed_by, ["discovery:b"]);
    // B drops it: deleted.
    let out = h.submit(&snapshot("b", vec![inst(&server("srv1"), props(&[]))]));
    assert_eq!(deleted(&out), [sales]);
}

#[test]
fn deleting_a_host_deletes_what_it_hosts_three_levels_down() {
    let mut h = Harness::new();
    let mut d = snapshot(
        "inventory",
        vec![
            inst(&table("srv1", "sales", "orders"), props(&[])),
            inst(&database("srv1", "sales"), props(&[])),
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "hr"), props(&[])),
            inst(&table("srv1", "hr", "people"), props(&[])),
        ],
    );
    d.relationships = vec![DiscoveredRelationship {
        kind: "T.DatabaseUsesDatabase".into(),
        source: database("srv1", "hr"),
        target: database("srv1", "sales"),
        properties: props(&[]),
        target_root_host: None,
    }];
    let out = h.submit(&d);
    assert!(
        out.rejected.is_empty(),
        "children listed before their hosts still apply: {:?}",
        out.rejected
    );
    assert_eq!(instances(&out).len(), 5);
    assert_eq!(relationships(&out).len(), 1);
    // Another source claims only the hr table: the cascade deletes it anyway.
    h.submit(&snapshot(
        "other",
        vec![inst(&table("srv1", "hr", "people"), props(&[]))],
    ));
    let out = h.submit(&snapshot("inventory", vec![]));
    let mut gone = deleted(&out);
    gone.sort();
    let mut want = vec![
        h.id(&server("srv1")),
        h.id(&database("srv1", "sales")),
        h.id(&database("srv1", "hr")),
        h.id(&table("srv1", "sales", "orders")),
        h.id(&table("srv1", "hr", "people")),
    ];
    want.sort();
    let rel: Vec<&Change> = out
        .changes
        .iter()
        .filter(|c| c.kind == EntityKind::Relationship)
        .collect();
    assert_eq!(
        rel.len(),
        2,
        "the relationship and the server's group membership go with their ends"
    );
    assert!(rel.iter().all(|r| r.view.is_none()));
    assert_eq!(gone, want);
    // The other source's next snapshot cannot bring the table back without its host.
    let out = h.submit(&snapshot(
        "other",
        vec![inst(&table("srv1", "hr", "people"), props(&[]))],
    ));
    assert!(out.changes.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0]
            .reason()
            .contains("its host (T.Database Name=hr) is not known"),
        "{:?}",
        out.rejected
    );
}

#[test]
fn removing_a_connector_removes_its_claims() {
    let mut h = Harness::new();
    h.submit(&snapshot("agent", vec![inst(&server("srv1"), props(&[]))]));
    let connector = |instances| {
        data(
            "cmdb",
            DiscoverySourceKind::Connector,
            DiscoveryMode::Snapshot,
            instances,
        )
    };
    let out = h.submit(&connector(vec![
        inst(&server("srv1"), props(&[])),
        inst(&database("srv1", "erp"), props(&[])),
    ]));
    let erp = h.id(&database("srv1", "erp"));
    let v = change(&out, &erp).view.clone().expect("inserted");
    assert_eq!(v.claimed_by, ["connector:cmdb"]);
    // The connector goes away: an empty snapshot. Its claims go; the server stays (the agent claims it).
    let out = h.submit(&connector(vec![]));
    assert_eq!(deleted(&out), [erp]);
    let srv = h.id(&server("srv1"));
    let v = change(&out, &srv)
        .view
        .clone()
        .expect("server still claimed");
    assert_eq!(v.claimed_by, ["discovery:agent"]);
}

#[test]
fn managed_comes_from_a_managing_source_or_a_managed_host() {
    let mut h = Harness::new();
    // A connector that does not manage inserts a server and a database: unmanaged.
    let mut d = data(
        "cmdb",
        DiscoverySourceKind::Connector,
        DiscoveryMode::Snapshot,
        vec![
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "erp"), props(&[])),
        ],
    );
    d.source.managing = false;
    let out = h.submit(&d);
    assert!(instances(&out)
        .iter()
        .all(|c| !c.view.as_ref().expect("upsert").managed));
    // A managing discovery claims the server: it and what it hosts become managed.
    let out = h.submit(&snapshot("agent", vec![inst(&server("srv1"), props(&[]))]));
    let erp = h.id(&database("srv1", "erp"));
    assert!(
        change(&out, &h.id(&server("srv1")))
            .view
            .as_ref()
            .expect("upsert")
            .managed
    );
    assert!(
        change(&out, &erp).view.as_ref().expect("upsert").managed,
        "hosted by a managed instance"
    );
    // The managing claim goes: unmanaged again.
    let out = h.submit(&snapshot("agent", vec![]));
    assert!(!change(&out, &erp).view.as_ref().expect("upsert").managed);
}

#[test]
fn unknown_host_is_dead_lettered_and_retried_when_the_host_appears() {
    let mut h = Harness::new();
    let d = snapshot(
        "db-discovery",
        vec![inst(&database("srv1", "sales"), props(&[]))],
    );
    let out = h.submit(&d);
    assert!(out.changes.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].reason().contains("is not known"));
    h.submit(&snapshot("agent", vec![inst(&server("srv1"), props(&[]))]));
    // The identical submission is applied again (it was not applied in full before).
    let out = h.submit(&d);
    assert!(!out.unchanged);
    assert_eq!(upserted(&out), [h.id(&database("srv1", "sales"))]);
}

#[test]
fn malformed_instances_are_rejected_with_reasons_and_the_rest_applied() {
    let mut h = Harness::new();
    let bad = |class: &str, keys: Properties, properties: Properties, host: Option<InstanceRef>| {
        DiscoveredInstance {
            class: class.into(),
            keys,
            properties,
            host,
        }
    };
    let d = snapshot(
        "db-discovery",
        vec![
            inst(&server("srv1"), props(&[])),
            bad("T.Nope", props(&[]), props(&[]), None),
            bad(
                "System.Computer",
                props(&[("PrincipalName", s("x"))]),
                props(&[]),
                None,
            ),
            bad("T.Database", props(&[]), props(&[]), Some(server("srv1"))),
            bad(
                "T.Database",
                props(&[("Name", s("a")), ("Colour", s("red"))]),
                props(&[]),
                Some(server("srv1")),
            ),
            bad(
                "T.Database",
                props(&[("Name", PropertyValue::Long(5))]),
                props(&[]),
                Some(server("srv1")),
            ),
            bad("T.Database", props(&[("Name", s("b"))]), props(&[]), None),
            bad(
                "T.Server",
                props(&[("PrincipalName", s("y"))]),
                props(&[]),
                Some(server("srv1")),
            ),
            bad(
                "T.Database",
                props(&[("Name", s("c"))]),
                props(&[("SizeGb", s("big"))]),
                Some(server("srv1")),
            ),
            bad(
                "T.Database",
                props(&[("Name", s("d"))]),
                props(&[("Owner", s("me"))]),
                Some(server("srv1")),
            ),
            bad(
                "T.Table",
                props(&[("Name", s("t"))]),
                props(&[]),
                Some(server("srv1")),
            ),
        ],
    );
    let out = h.submit(&d);
    assert_eq!(upserted(&out), [h.id(&server("srv1"))]);
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason()).collect();
    let expect = [
        "class \"T.Nope\" is not defined",
        "class System.Computer is abstract",
        "key property Name of T.Database is missing",
        "\"Colour\" is not a key property of T.Database",
        "property name: expected string, got an integer",
        "T.Database is hosted by T.Server: the host is missing",
        "T.Server is not a hosted class, but a host was given",
        "property sizegb: expected int, got text",
        "T.Database has no property \"Owner\"",
        "T.Table is hosted by T.Database, not by T.Server",
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for (got, want) in reasons.iter().zip(expect) {
        assert!(got.contains(want), "{got:?} should say {want:?}");
    }
    // Not applied in full: the next identical submission is tried again.
    assert!(!h.submit(&d).unchanged);
}

#[test]
fn relationships_need_known_ends_and_a_matching_type() {
    let mut h = Harness::new();
    let mut d = snapshot(
        "db",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "a"), props(&[])),
            inst(&database("srv1", "b"), props(&[])),
        ],
    );
    let rel = |kind: &str, s: InstanceRef, t: InstanceRef| DiscoveredRelationship {
        kind: kind.into(),
        source: s,
        target: t,
        properties: props(&[]),
        target_root_host: None,
    };
    d.relationships = vec![
        rel(
            "T.DatabaseUsesDatabase",
            database("srv1", "a"),
            database("srv1", "b"),
        ),
        rel("T.Nope", database("srv1", "a"), database("srv1", "b")),
        rel(
            "T.DatabaseUsesDatabase",
            database("srv1", "a"),
            database("srv1", "zzz"),
        ),
        rel(
            "T.DatabaseUsesDatabase",
            server("srv1"),
            database("srv1", "b"),
        ),
    ];
    let out = h.submit(&d);
    let rels = relationships(&out);
    assert_eq!(rels.len(), 1);
    let v = rels[0].view.as_ref().expect("upsert");
    assert_eq!(
        v.source_id.as_deref(),
        Some(h.id(&database("srv1", "a")).as_str())
    );
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason()).collect();
    assert!(
        reasons[0].contains("relationship type \"T.Nope\" is not defined"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("its target is not a known instance"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("goes from T.Database, not from T.Server"),
        "{reasons:?}"
    );
    // Dropping an end deletes the relationship.
    d.instances.pop();
    d.relationships.truncate(1);
    let out = h.submit(&d);
    assert!(relationships(&out).iter().any(|c| c.view.is_none()));
    let _: BTreeMap<(), ()> = BTreeMap::new();
}

const SIZE_GROUPS: &str = r#"
[[group]]
id = "T.BigDatabases"

[[group.rule]]
class = "T.Database"
expression = 'SizeGb >= 100'

[[group]]
id = "T.SmallDatabases"

[[group.rule]]
class = "T.Database"
expression = 'not contained("T.BigDatabases")'
"#;

/// Group memberships of an outcome: (group instance id, member id, created?).
fn memberships(out: &Outcome) -> Vec<(String, String, bool)> {
    out.changes
        .iter()
        .filter(|c| c.kind == EntityKind::Relationship)
        .filter_map(|c| match &c.view {
            Some(v) if v.claimed_by.iter().any(|s| s.starts_with("group:")) => Some((
                v.source_id.clone().unwrap_or_default(),
                v.target_id.clone().unwrap_or_default(),
                true,
            )),
            None => Some((String::new(), c.entity_id.clone(), false)),
            _ => None,
        })
        .collect()
}

fn group_instance(h: &mut Harness, group: &str) -> String {
    h.id(&InstanceRef {
        class: group.into(),
        keys: props(&[]),
        host: None,
    })
}

#[test]
fn groups_follow_property_changes() {
    let mut h = Harness::with(SIZE_GROUPS);
    let small = group_instance(&mut h, "T.SmallDatabases");
    let big = group_instance(&mut h, "T.BigDatabases");
    let sales = h.id(&database("srv1", "sales"));
    let d = |size: i64| {
        snapshot(
            "db",
            vec![
                inst(&server("srv1"), props(&[])),
                inst(
                    &database("srv1", "sales"),
                    props(&[("SizeGb", PropertyValue::Long(size))]),
                ),
            ],
        )
    };
    let out = h.submit(&d(10));
    let m = memberships(&out);
    assert!(m.contains(&(small.clone(), sales.clone(), true)), "{m:?}");
    assert!(!m.iter().any(|(g, _, _)| *g == big));
    // Grows: joins the big group and, through not contained(...), leaves the small one.
    let out = h.submit(&d(500));
    let m = memberships(&out);
    assert!(m.contains(&(big.clone(), sales.clone(), true)), "{m:?}");
    let deleted: Vec<&String> = m
        .iter()
        .filter(|(_, _, created)| !created)
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(deleted.len(), 1, "the small-group membership goes: {m:?}");
    assert_eq!(
        *deleted[0],
        healthstream_discovery::relationship_id("System.GroupContainsEntities", &small, &sales)
    );
    // An unrelated change leaves memberships alone.
    let mut same = d(500);
    same.instances[0].properties = props(&[("NetworkName", s("srv1.example"))]);
    assert!(memberships(&h.submit(&same)).is_empty());
    // The member goes: so does its membership.
    let out = h.submit(&snapshot("db", vec![inst(&server("srv1"), props(&[]))]));
    let m = memberships(&out);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(!m[0].2);
}

#[test]
fn include_and_exclude_lists_beat_rules() {
    let mut probe = Harness::new();
    let sales = probe.id(&database("srv1", "sales"));
    let hr = probe.id(&database("srv1", "hr"));
    let group = format!(
        "\n[[group]]\nid = \"T.Pinned\"\ninclude = [\"{hr}\"]\nexclude = [\"{sales}\"]\n\n[[group.rule]]\nclass = \"T.Database\"\nexpression = 'SizeGb > 1000'\n\n[[group.rule]]\nclass = \"T.Database\"\nexpression = 'Name == \"sales\"'\n"
    );
    let mut h = Harness::with(&group);
    let pinned = group_instance(&mut h, "T.Pinned");
    let out = h.submit(&snapshot(
        "db",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(&database("srv1", "sales"), props(&[])),
            inst(&database("srv1", "hr"), props(&[])),
        ],
    ));
    let members: Vec<String> = memberships(&out)
        .into_iter()
        .filter(|(g, _, c)| *g == pinned && *c)
        .map(|(_, m, _)| m)
        .collect();
    assert_eq!(
        members,
        [hr],
        "hr is included; sales matches a rule but is excluded"
    );
}

#[test]
fn a_group_definition_change_applies_at_the_next_submission_even_if_identical() {
    let d = snapshot(
        "db",
        vec![
            inst(&server("srv1"), props(&[])),
            inst(
                &database("srv1", "sales"),
                props(&[("SizeGb", PropertyValue::Long(50))]),
            ),
        ],
    );
    let mut h = Harness::with(SIZE_GROUPS);
    h.submit(&d);
    let sales = h.id(&database("srv1", "sales"));
    // The same store under packs where "big" starts at 20 GB.
    let mut packs = shipped().expect("shipped");
    packs.push(
        parse_pack(
            &format!("{TEST_PACK}{}", SIZE_GROUPS.replace(">= 100", ">= 20")),
            Path::new("t.toml"),
        )
        .expect("pack"),
    );
    h.classes = Classes::new(Catalog::new(packs));
    let out = h.submit(&d);
    assert!(!out.unchanged);
    let big = group_instance(&mut h, "T.BigDatabases");
    assert!(
        memberships(&out).contains(&(big, sales, true)),
        "{:?}",
        out.changes
    );
    // Then identical again: nothing.
    assert!(h.submit(&d).unchanged);
}

const SHOP: &str = r#"
[[class]]
id = "T.Shop"
base = "System.LogicalEntity"

[[class.property]]
name = "Name"
key = true

[[relationship]]
id = "T.ShopContainsDatabase"
kind = "containment"
source = "T.Shop"
target = "T.Database"
"#;

fn shop() -> InstanceRef {
    InstanceRef {
        class: "T.Shop".into(),
        keys: props(&[("Name", s("web-shop"))]),
        host: None,
    }
}

/// A distributed application in its own tree containing databases of two servers: each
/// relationship is kept with the application and sent to its database's tree; one to an
/// unknown tree without its root host, or a hosting one across trees, is refused.
#[test]
fn containment_across_hosting_trees() {
    let mut h = Harness::with(SHOP);
    let contains = |target: InstanceRef, root: Option<&str>| DiscoveredRelationship {
        kind: "T.ShopContainsDatabase".into(),
        source: shop(),
        target,
        properties: props(&[]),
        target_root_host: root.map(str::to_string),
    };
    let mut d = snapshot("shop-model", vec![inst(&shop(), props(&[]))]);
    d.root_host = "web-shop".into();
    d.relationships = vec![
        contains(database("srv1", "sales"), Some("srv1")),
        contains(database("srv2", "orders"), Some("srv2")),
        contains(database("srv3", "hr"), None),
        DiscoveredRelationship {
            kind: "T.ServerHostsDatabase".into(),
            source: server("srv4"),
            target: database("srv4", "x"),
            properties: props(&[]),
            target_root_host: Some("srv4".into()),
        },
    ];
    let out = h.submit(&d);
    let rels = relationships(&out);
    assert_eq!(rels.len(), 2, "{:?}", out.changes);
    let routes: Vec<Option<&str>> = rels.iter().map(|c| c.route.as_deref()).collect();
    assert_eq!(routes, [Some("srv1"), Some("srv2")]);
    let v = rels[1].view.as_ref().expect("upsert");
    assert_eq!(v.source_id.as_deref(), Some(h.id(&shop()).as_str()));
    assert_eq!(
        v.target_id.as_deref(),
        Some(h.id(&database("srv2", "orders")).as_str())
    );
    assert_eq!(v.source_class.as_deref(), Some("T.Shop"));
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("its target is not a known instance"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("hosting relationship") && reasons[1].contains("target_root_host"),
        "{reasons:?}"
    );
    // The same again: nothing changes.
    d.relationships.truncate(2);
    assert!(h.submit(&d).changes.is_empty());
    // One database no longer in the application: its relationship is deleted, on its tree.
    d.relationships.truncate(1);
    let out = h.submit(&d);
    let gone = relationships(&out);
    assert_eq!(gone.len(), 1, "{:?}", out.changes);
    assert!(gone[0].view.is_none());
    assert_eq!(gone[0].route.as_deref(), Some("srv2"));
    // The application itself goes: its remaining relationship goes with it.
    d.instances.clear();
    d.relationships.clear();
    let out = h.submit(&d);
    let gone = relationships(&out);
    assert_eq!(gone.len(), 1, "{:?}", out.changes);
    assert!(gone[0].view.is_none());
    assert_eq!(gone[0].route.as_deref(), Some("srv1"));
}

/// The health processor derives a group's singleton id without the instance space (for
/// nested groups): both must agree.
#[test]
fn a_groups_singleton_id_is_derivable_from_its_id() {
    let mut h = Harness::new();
    for group in [
        "System.Group.AllComputers",
        "Linux.Group.VolatileFilesystems",
    ] {
        let r = InstanceRef {
            class: group.into(),
            keys: props(&[]),
            host: None,
        };
        assert_eq!(h.id(&r), healthstream_contracts::singleton_id(group));
    }
}
