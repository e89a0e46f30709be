//! A group whose members live on two hosts (two partitions of the health processor): the
//! health stage sends each member's state to the container's partition of the
//! rollup-members topic, and the rollup stage rolls the group's health up from them (worst
//! of its members' entity health; a member in maintenance left out; a member that leaves
//! no longer counts). The same run with the rollup stage restarted in the middle gives the
//! same output.

use std::collections::BTreeMap;
use std::sync::Arc;

use healthstream_bus::{Assignment, Message, OutboundRecord};
use healthstream_contracts::records::{
    AlertRecord, ChangeKind, EntityKind, InstanceChange, MemberState, Operation, OperationKind,
    PerfBatch, PerfSample, PropertyValue, Record, StateChange,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_health::{HealthStage, HEALTH_CFS};
use healthstream_model::store::PackStore;
use healthstream_packfeed::PackSnapshot;
use healthstream_rollup::{container_members, container_states, RollupStage, ROLLUP_CFS};
use healthstream_stage::{Position, Processor};
use healthstream_store::Store;

const PARTITIONS: i32 = 4;
const GROUP: &str = "System.Group.AllComputers";
const CONTAINER: &str = "group-all-computers";
const MEMBER_HEALTH: &str = "System.Group.MemberHealth";

thread_local! {
    /// A pack added to the shipped ones by the test running on this thread.
    static EXTRA: std::cell::RefCell<Option<&'static str>> = const { std::cell::RefCell::new(None) };
}

fn packs() -> healthstream_packfeed::Packs {
    let mut store = PackStore::new();
    for (path, text) in healthstream_model::SHIPPED {
        let c = store.plan_import(text, path).expect("shipped");
        store.apply(&c).expect("applies");
    }
    if let Some(text) = EXTRA.with(|e| *e.borrow()) {
        let c = store.plan_import(text, "extra.toml").expect("extra pack");
        store.apply(&c).expect("applies");
    }
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(PackSnapshot {
        store,
        next_offset: 2,
    }));
    std::mem::forget(tx);
    rx
}

fn partition(key: &str) -> i32 {
    partition_for_key(key.as_bytes(), PARTITIONS as u32) as i32
}

fn message<R: Record>(topic: Topic, root: &str, time: i64, r: &R) -> Message {
    Message {
        topic,
        partition: partition(root),
        offset: 0,
        key: Some(root.as_bytes().to_vec()),
        value: Some(Codec::shared().encode(r).expect("encode")),
        timestamp_ms: time,
    }
}

fn change(root: &str, id: &str, kind: EntityKind, change: ChangeKind) -> InstanceChange {
    InstanceChange {
        id: format!("x-{id}-{change:?}"),
        root_host: root.into(),
        entity_id: id.into(),
        kind,
        change,
        time: 0,
        class: String::new(),
        keys: BTreeMap::new(),
        properties: BTreeMap::new(),
        host_id: None,
        source_id: None,
        target_id: None,
        managed: true,
        claimed_by: vec!["discovery:test".into()],
    }
}

fn computer(root: &str) -> Vec<Message> {
    let mut host = change(root, root, EntityKind::Instance, ChangeKind::Upsert);
    host.class = "Linux.Computer".into();
    host.properties = BTreeMap::from([(
        "PrincipalName".to_string(),
        PropertyValue::String(root.into()),
    )]);
    let mut fs = change(
        root,
        &format!("{root}-fs"),
        EntityKind::Instance,
        ChangeKind::Upsert,
    );
    fs.class = "Linux.Filesystem".into();
    fs.host_id = Some(root.into());
    fs.properties = BTreeMap::from([
        ("MountPoint".to_string(), PropertyValue::String("/".into())),
        ("Type".to_string(), PropertyValue::String("ext4".into())),
    ]);
    vec![
        message(Topic::Instances, root, 0, &host),
        message(Topic::Instances, root, 0, &fs),
        membership(root, ChangeKind::Upsert),
    ]
}

fn membership(root: &str, kind: ChangeKind) -> Message {
    let mut rel = change(
        root,
        &format!("member-{root}"),
        EntityKind::Relationship,
        kind,
    );
    rel.class = "System.GroupContainsEntities".into();
    rel.source_id = Some(CONTAINER.into());
    rel.target_id = Some(root.into());
    rel.claimed_by = vec![format!("group:{GROUP}")];
    message(Topic::Instances, root, 0, &rel)
}

fn free(root: &str, time: i64, value: f64) -> Message {
    message(
        Topic::Perf,
        root,
        time,
        &PerfBatch {
            id: String::new(),
            collector: root.into(),
            root_host: root.into(),
            samples: vec![PerfSample {
                time,
                object: "Filesystem".into(),
                counter: "% Free Space".into(),
                instance: "/".into(),
                value,
            }],
        },
    )
}

fn maintenance(root: &str, kind: OperationKind, time: i64) -> Message {
    message(
        Topic::Operations,
        root,
        time,
        &Operation {
            id: format!("op-{root}-{kind:?}-{time}"),
            root_host: root.into(),
            instance_id: root.into(),
            kind,
            monitor_id: None,
            alert_id: None,
            task_id: None,
            reason: "PlannedOther".into(),
            comment: String::new(),
            until: None,
            requested_by: "ops".into(),
            requested_at: time,
        },
    )
}

/// The recorded inputs of the health processor, two hosts.
fn inputs() -> Vec<Message> {
    let mut m = computer("web-01");
    m.extend(computer("db-01"));
    m.push(free("web-01", 60_000, 50.0));
    m.push(free("db-01", 60_000, 50.0));
    // db-01's disk fills: the group is critical.
    m.push(free("db-01", 120_000, 4.0));
    // db-01 in maintenance: left out, the group is healthy again; back out, critical.
    m.push(maintenance(
        "db-01",
        OperationKind::MaintenanceStart,
        130_000,
    ));
    m.push(maintenance("db-01", OperationKind::MaintenanceEnd, 140_000));
    // db-01 leaves the group: healthy.
    m.push(membership("db-01", ChangeKind::Delete));
    m
}

fn apply<P: Processor>(
    stage: &mut P,
    store: &Store,
    m: &Message,
    offsets: &mut BTreeMap<(Topic, i32), i64>,
) -> Vec<OutboundRecord> {
    let offset = offsets.entry((m.topic, m.partition)).or_insert(0);
    let mut msg = m.clone();
    msg.offset = *offset;
    *offset += 1;
    let input = stage.decode(&msg).expect("decodes");
    let mut batch = store.batch();
    let at = Position {
        topic: msg.topic,
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms: msg.timestamp_ms,
    };
    let out = stage.apply(store, &mut batch, input, at).expect("applies");
    batch.set_offset(msg.topic.name(), msg.partition, msg.offset + 1);
    store.write(batch).expect("write");
    out
}

fn all_partitions(topic: Topic) -> Vec<Assignment> {
    (0..PARTITIONS)
        .map(|partition| Assignment {
            topic,
            partition,
            start: None,
        })
        .collect()
}

/// The health stage's member records, then the rollup stage's state changes (as text),
/// with the rollup stage restarted before its `restart_at`-th input; the rollup store.
fn run(restart_at: Option<usize>) -> (Vec<MemberState>, Vec<String>, tempfile::TempDir) {
    let health_dir = tempfile::tempdir().expect("tempdir");
    let health_store = Store::open(health_dir.path(), HEALTH_CFS).expect("store");
    let mut health = HealthStage::new(PARTITIONS, packs());
    health
        .on_assigned(&health_store, &all_partitions(Topic::Perf))
        .expect("assigned");
    let mut offsets = BTreeMap::new();
    let mut members = Vec::new();
    for m in inputs() {
        for r in apply(&mut health, &health_store, &m, &mut offsets) {
            if r.topic == Topic::RollupMembers {
                let value = r.value.expect("value");
                let record: MemberState = Codec::shared().decode(&value).expect("member state");
                assert_eq!(r.partition, partition(&record.container_id));
                members.push(Message {
                    topic: Topic::RollupMembers,
                    partition: r.partition,
                    offset: 0,
                    key: r.key,
                    value: Some(value),
                    timestamp_ms: r.timestamp_ms,
                });
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path(), ROLLUP_CFS).expect("store");
    let mut rollup = RollupStage::new(PARTITIONS, PARTITIONS, packs());
    let assigned = all_partitions(Topic::RollupMembers);
    rollup.on_assigned(&store, &assigned).expect("assigned");
    let mut offsets = BTreeMap::new();
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if restart_at == Some(i) {
            drop(rollup);
            drop(store);
            store = Store::open(dir.path(), ROLLUP_CFS).expect("reopen");
            rollup = RollupStage::new(PARTITIONS, PARTITIONS, packs());
            rollup
                .on_assigned(&store, &assigned)
                .expect("assigned again");
        }
        for r in apply(&mut rollup, &store, m, &mut offsets) {
            if r.topic == Topic::Alerts {
                let a: AlertRecord = Codec::shared()
                    .decode(&r.value.expect("value"))
                    .expect("alert");
                assert_eq!(r.partition, partition(&a.alert.instance_id));
                out.push(format!(
                    "{} alert {} {} {:?} state={} change={}",
                    a.id,
                    a.alert.instance_id,
                    a.alert.name,
                    a.alert.severity,
                    a.alert.resolution_state,
                    a.change.comment
                ));
                continue;
            }
            assert_eq!(r.topic, Topic::State);
            let s: StateChange = Codec::shared()
                .decode(&r.value.expect("value"))
                .expect("state change");
            assert_eq!(r.partition, partition(&s.instance_id));
            out.push(format!(
                "{} {} {} {:?}->{:?} ({})",
                s.id, s.instance_id, s.monitor_id, s.old_state, s.new_state, s.cause.summary
            ));
        }
    }
    drop(store);
    let decoded = members
        .iter()
        .map(|m| {
            Codec::shared()
                .decode(m.value.as_deref().expect("value"))
                .expect("member state")
        })
        .collect();
    (decoded, out, dir)
}

fn transitions(out: &[String], monitor: &str) -> Vec<String> {
    out.iter()
        .filter(|l| l.contains(&format!(" {CONTAINER} {monitor} ")))
        .map(|l| l.split_whitespace().nth(3).expect("transition").to_string())
        .collect()
}

#[test]
fn a_group_across_two_hosts() {
    let (members, out, dir) = run(None);
    let text = out.join("\n");
    // What the health stage sent: both members, keyed by the container, their entity
    // health and flags.
    assert!(members
        .iter()
        .all(|m| m.container_id == CONTAINER && m.container_class == GROUP));
    assert!(members
        .iter()
        .any(|m| m.member_id == "db-01" && m.in_maintenance && m.present));
    assert!(members.iter().any(|m| m.member_id == "db-01" && !m.present));
    // The group: healthy, critical when db-01's disk fills, healthy while db-01 is in
    // maintenance (left out), critical again after it, healthy once db-01 left.
    assert_eq!(
        transitions(&out, MEMBER_HEALTH),
        vec![
            "Uninitialized->Healthy",
            "Healthy->Critical",
            "Critical->Healthy",
            "Healthy->Critical",
            "Critical->Healthy"
        ],
        "{text}"
    );
    // The rollup feeds the group's aggregates up to its entity health, each change once.
    assert_eq!(
        transitions(&out, "System.Health.EntityState"),
        vec![
            "Uninitialized->Healthy",
            "Healthy->Critical",
            "Critical->Healthy",
            "Healthy->Critical",
            "Critical->Healthy"
        ],
        "{text}"
    );
    assert!(text.contains("member db-01 left"), "{text}");
    let store = Store::open(dir.path(), ROLLUP_CFS).expect("reopen");
    let states: BTreeMap<String, String> = container_states(&store, CONTAINER)
        .expect("states")
        .into_iter()
        .map(|(m, h)| (m, h.to_string()))
        .collect();
    assert_eq!(
        states.get(MEMBER_HEALTH).map(String::as_str),
        Some("healthy")
    );
    let left: Vec<String> = container_members(&store, CONTAINER)
        .expect("members")
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    assert_eq!(left, vec!["web-01".to_string()]);
}

#[test]
fn a_restart_of_the_rollup_stage_gives_the_same_output() {
    let (members, straight, _) = run(None);
    for at in [1, members.len() / 2, members.len() - 1] {
        assert_eq!(
            run(Some(at)).1,
            straight,
            "restart before member record {at}"
        );
    }
}

#[test]
fn malformed_member_records_are_rejected_with_the_reason() {
    let stage = RollupStage::new(PARTITIONS, PARTITIONS, packs());
    let good = MemberState {
        id: "m".into(),
        container_id: CONTAINER.into(),
        container_class: GROUP.into(),
        relationship: "System.GroupContainsEntities".into(),
        member_id: "web-01".into(),
        member_class: "Linux.Computer".into(),
        present: true,
        states: BTreeMap::new(),
        in_maintenance: false,
        unavailable: false,
        time: 0,
    };
    let msg = |m: &MemberState, partition: i32| Message {
        topic: Topic::RollupMembers,
        partition,
        offset: 0,
        key: None,
        value: Some(Codec::shared().encode(m).expect("encode")),
        timestamp_ms: 0,
    };
    assert!(stage.decode(&msg(&good, partition(CONTAINER))).is_ok());
    let wrong = (partition(CONTAINER) + 1) % PARTITIONS;
    let e = stage
        .decode(&msg(&good, wrong))
        .expect_err("wrong partition");
    assert!(e.reason.contains("belongs on partition"), "{e:?}");
    let empty = MemberState {
        container_id: String::new(),
        ..good.clone()
    };
    let e = stage
        .decode(&msg(&empty, partition("")))
        .expect_err("no container");
    assert!(e.reason.contains("container_id is empty"), "{e:?}");
    let mut garbage = msg(&good, partition(CONTAINER));
    garbage.value = Some(vec![0, 0, 0, 5, 1, 2, 3]);
    assert!(stage.decode(&garbage).is_err());
    garbage.value = None;
    assert!(stage.decode(&garbage).is_err());
}

#[test]
fn the_store_keeps_alerts_as_the_health_processor_does() {
    for cf in healthstream_health::ALERT_CFS {
        assert!(ROLLUP_CFS.contains(cf), "{cf}");
    }
}

const ALERTING_GROUP: &str = r#"
[pack]
id = "Test.GroupAlert"
version = "1"
[[reference]]
pack = "System.Library"
version = "1.0"

[[dependency]]
id = "Test.AllComputersDown"
target = "System.Group.AllComputers"
parent = "System.Health.AvailabilityState"
relationship = "System.GroupContainsEntities"
member_monitor = "System.Health.EntityState"
algorithm = "worst_of"

[dependency.alert]
name = "A computer of all computers is unhealthy"
description = "At least one member is critical."
on = "critical"
severity = "critical"
priority = "high"
"#;

#[test]
fn a_group_monitor_raises_and_resolves_its_alert() {
    EXTRA.with(|e| *e.borrow_mut() = Some(ALERTING_GROUP));
    let (_, out, _) = run(None);
    let again = run(Some(3)).1;
    EXTRA.with(|e| *e.borrow_mut() = None);
    let text = out.join("\n");
    let alerts: Vec<&String> = out.iter().filter(|l| l.contains(" alert ")).collect();
    // Critical when db-01's disk fills, resolved while it is in maintenance, raised again
    // after, resolved when it leaves.
    assert_eq!(alerts.len(), 4, "{text}");
    assert!(alerts[0].contains(&format!("alert {CONTAINER} A computer of all computers is unhealthy Critical state=0 change=raised")), "{text}");
    assert!(alerts[1].contains("state=255 change=resolved"), "{text}");
    assert!(alerts[2].contains("state=0 change=raised"), "{text}");
    assert!(alerts[3].contains("state=255 change=resolved"), "{text}");
    assert_eq!(again, out, "a restart gives the same");
}
