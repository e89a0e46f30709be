//! Containment and reference rollups across hosts (DESIGN.md sections 4 and 7): a member's
//! health processor partition sends its states to the partition of the container's root
//! host on the rollup-members topic, and the health processor owning that partition reads
//! them back and computes the container's dependency monitors with the rest of its health.
//!
//! Two containers: a group whose members are two computers (its singleton instance is its
//! own root), and a distributed application discovered in its own tree, with a unit monitor
//! of its own, containing the same two computers. Each run feeds the member records back
//! as the bus would, and again with the processor restarted in the middle: same output.

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::{change, extra_pack, operation, packs_with};
use healthstream_bus::{Assignment, Message, OutboundRecord};
use healthstream_contracts::records::{
    AlertRecord, ChangeKind, DeadLetterClass, EntityKind, Event, EventBatch, EventLevel,
    InstanceChange, MemberState, OperationKind, PerfBatch, PerfSample, PropertyValue, Record,
    StateChange,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_health::{container_members, monitor_states, HealthStage, HEALTH_CFS};
use healthstream_stage::{Position, Processor};
use healthstream_store::Store;

const PARTITIONS: i32 = 4;
const GROUP: &str = "System.Group.AllComputers";
const CONTAINER: &str = "group-all-computers";
const MEMBER_HEALTH: &str = "System.Group.MemberHealth";
const ENTITY: &str = "System.Health.EntityState";
const SHOP_ROOT: &str = "web-shop";
const SHOP: &str = "shop-1";

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

/// A computer with its root filesystem.
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
    ]
}

/// A relationship of type `class` from `container` to the computer `root`, on the
/// computer's partition.
fn relationship(
    root: &str,
    id: &str,
    class: &str,
    container: &str,
    kind: ChangeKind,
) -> InstanceChange {
    let mut rel = change(root, id, EntityKind::Relationship, kind);
    rel.class = class.into();
    rel.source_id = Some(container.into());
    rel.target_id = Some(root.into());
    rel
}

/// The group membership of a computer, as the instance space sends it (on the member's
/// partition, claimed by the group).
fn membership(root: &str, kind: ChangeKind) -> Message {
    let id = format!("member-{root}");
    let mut rel = relationship(root, &id, "System.GroupContainsEntities", CONTAINER, kind);
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
        &operation(root, kind, root, time),
    )
}

/// Two computers in the group: db-01's disk fills, it goes into maintenance and out, then
/// leaves the group.
fn group_inputs() -> Vec<Message> {
    let mut m = computer("web-01");
    m.push(membership("web-01", ChangeKind::Upsert));
    m.extend(computer("db-01"));
    m.push(membership("db-01", ChangeKind::Upsert));
    m.push(free("web-01", 60_000, 50.0));
    m.push(free("db-01", 60_000, 50.0));
    m.push(free("db-01", 120_000, 4.0));
    m.push(maintenance(
        "db-01",
        OperationKind::MaintenanceStart,
        130_000,
    ));
    m.push(maintenance("db-01", OperationKind::MaintenanceEnd, 140_000));
    m.push(membership("db-01", ChangeKind::Delete));
    m
}

/// A group (or its parent) over the inputs of [`group_inputs`]: healthy, critical when
/// db-01's disk fills, healthy while db-01 is in maintenance (left out), critical again
/// after it, healthy once db-01 left.
const DB01_IN_AND_OUT: [&str; 5] = [
    "Uninitialized->Healthy",
    "Healthy->Critical",
    "Critical->Healthy",
    "Healthy->Critical",
    "Critical->Healthy",
];

/// What one run emitted: the member records (decoded) and every state change and alert
/// change (as text), in order.
struct Run {
    members: Vec<(i32, MemberState)>,
    out: Vec<String>,
    dir: tempfile::TempDir,
}

fn apply(
    stage: &mut HealthStage,
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
    let out = stage.apply(&mut batch, input, at).expect("applies");
    batch.set_offset(msg.topic.name(), msg.partition, msg.offset + 1);
    stage.seal();
    assert!(stage.seal_step(&mut batch, usize::MAX).expect("seal"));
    store.write(batch).expect("write");
    out
}

fn assigned() -> Vec<Assignment> {
    (0..PARTITIONS)
        .map(|partition| Assignment {
            topic: Topic::Perf,
            partition,
            start: None,
        })
        .collect()
}

/// The inputs through one health processor owning every partition; each member record it
/// sends is read back right after the input that caused it (as the bus delivers it). The
/// processor is restarted (store reopened, state reloaded) before its `restart_at`-th input.
/// One health processor owning every partition; each member record it sends is read back
/// right after the input that caused it (as the bus delivers it).
struct Driver {
    /// The processor and its store.
    running: Option<(HealthStage, Store)>,
    offsets: BTreeMap<(Topic, i32), i64>,
    /// Inputs applied so far (member records read back included).
    applied: usize,
    members: Vec<(i32, MemberState)>,
    out: Vec<String>,
}

impl Driver {
    fn new(dir: &std::path::Path, packs: healthstream_packfeed::Packs) -> Driver {
        let mut d = Driver {
            running: None,
            offsets: BTreeMap::new(),
            applied: 0,
            members: Vec::new(),
            out: Vec::new(),
        };
        d.restart(dir, packs);
        d
    }

    /// The processor (stopped, if it runs) starts on its store: its state is loaded.
    fn restart(&mut self, dir: &std::path::Path, packs: healthstream_packfeed::Packs) {
        drop(self.running.take());
        let store = Store::open(dir, HEALTH_CFS).expect("store");
        let mut stage = HealthStage::new(PARTITIONS, packs);
        stage.on_assigned(&store, &assigned()).expect("assigned");
        self.running = Some((stage, store));
    }

    /// Apply one input and what it sends back to the processor; `before` runs before each.
    fn feed(&mut self, input: Message, before: &mut dyn FnMut(&mut Driver)) {
        let mut queue = VecDeque::from([input]);
        while let Some(m) = queue.pop_front() {
            before(self);
            self.applied += 1;
            let mut fed_back = Vec::new();
            let (stage, store) = self.running.as_mut().expect("running");
            for r in apply(stage, store, &m, &mut self.offsets) {
                let value = r.value.clone().expect("value");
                match r.topic {
                    Topic::RollupMembers => {
                        let record: MemberState = Codec::shared().decode(&value).expect("member");
                        self.members.push((r.partition, record));
                        fed_back.push(Message {
                            topic: Topic::RollupMembers,
                            partition: r.partition,
                            offset: 0,
                            key: r.key,
                            value: Some(value),
                            timestamp_ms: r.timestamp_ms,
                        });
                    }
                    Topic::Alerts => {
                        let a: AlertRecord = Codec::shared().decode(&value).expect("alert");
                        self.out.push(format!(
                            "{} alert {} {} {:?} state={} change={}",
                            a.id,
                            a.alert.instance_id,
                            a.alert.name,
                            a.alert.severity,
                            a.alert.resolution_state,
                            a.change.comment
                        ));
                    }
                    Topic::State => {
                        let s: StateChange = Codec::shared().decode(&value).expect("state");
                        assert_eq!(r.partition, partition(&s.root_host), "{s:?}");
                        self.out.push(format!(
                            "{} {} {} {:?}->{:?} ({})",
                            s.id,
                            s.instance_id,
                            s.monitor_id,
                            s.old_state,
                            s.new_state,
                            s.cause.summary
                        ));
                    }
                    _ => {}
                }
            }
            for m in fed_back.into_iter().rev() {
                queue.push_front(m);
            }
        }
    }
}

/// The inputs through one [`Driver`], restarted before its `restart_at`-th input.
fn run(extra: &[String], inputs: Vec<Message>, restart_at: Option<usize>) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Driver::new(dir.path(), packs_with(extra));
    let mut restart = |d: &mut Driver| {
        if restart_at == Some(d.applied) {
            d.restart(dir.path(), packs_with(extra));
        }
    };
    for m in inputs {
        d.feed(m, &mut restart);
    }
    let Driver { members, out, .. } = d;
    Run { members, out, dir }
}

fn transitions(out: &[String], instance: &str, monitor: &str) -> Vec<String> {
    out.iter()
        .filter(|l| l.contains(&format!(" {instance} {monitor} ")))
        .map(|l| l.split_whitespace().nth(3).expect("transition").to_string())
        .collect()
}

#[test]
fn a_group_across_two_hosts() {
    let run = run(&[], group_inputs(), None);
    let text = run.out.join("\n");
    // What the member side sent: both members, keyed by the container, to its partition
    // (a group's singleton is its own root), with their entity health and flags.
    assert!(run.members.iter().all(|(p, m)| m.container_id == CONTAINER
        && m.container_class == GROUP
        && m.container_root() == CONTAINER
        && *p == partition(CONTAINER)));
    assert!(run
        .members
        .iter()
        .any(|(_, m)| m.member_id == "db-01" && m.in_maintenance && m.present));
    assert!(run
        .members
        .iter()
        .any(|(_, m)| m.member_id == "db-01" && !m.present));
    // The group follows db-01 in and out.
    assert_eq!(
        transitions(&run.out, CONTAINER, MEMBER_HEALTH),
        DB01_IN_AND_OUT,
        "{text}"
    );
    // The rollup feeds the group's aggregates up to its entity health, each change once.
    assert_eq!(
        transitions(&run.out, CONTAINER, ENTITY),
        DB01_IN_AND_OUT,
        "{text}"
    );
    assert!(text.contains("member db-01 left"), "{text}");
    let store = Store::open(run.dir.path(), HEALTH_CFS).expect("reopen");
    let states: BTreeMap<String, String> = monitor_states(&store, CONTAINER, PARTITIONS)
        .expect("states")
        .into_iter()
        .map(|(m, h)| (m, h.to_string()))
        .collect();
    assert_eq!(
        states.get(MEMBER_HEALTH).map(String::as_str),
        Some("healthy")
    );
    let left: Vec<String> = container_members(&store, CONTAINER, PARTITIONS)
        .expect("members")
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    assert_eq!(left, vec!["web-01".to_string()]);
}

#[test]
fn a_restart_in_the_middle_gives_the_same_output() {
    let straight = run(&[], group_inputs(), None);
    let total = group_inputs().len() + straight.members.len();
    for at in [3, total / 2, total - 2] {
        assert_eq!(
            run(&[], group_inputs(), Some(at)).out,
            straight.out,
            "restart before input {at}"
        );
    }
}

#[test]
fn malformed_member_records_are_rejected_with_the_reason() {
    let stage = HealthStage::new(PARTITIONS, packs_with(&[]));
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
        container_root_host: String::new(),
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
    // Partitioned by the container's root host when it has one.
    let rooted = MemberState {
        container_root_host: SHOP_ROOT.into(),
        ..good.clone()
    };
    assert!(stage.decode(&msg(&rooted, partition(SHOP_ROOT))).is_ok());
    let wrong = (partition(CONTAINER) + 1) % PARTITIONS;
    let Err(e) = stage.decode(&msg(&good, wrong)) else {
        panic!("a record on the wrong partition decoded");
    };
    assert!(e.reason.contains("belongs on partition"), "{e:?}");
    let empty = MemberState {
        member_id: String::new(),
        ..good.clone()
    };
    let Err(e) = stage.decode(&msg(&empty, partition(CONTAINER))) else {
        panic!("a record without member decoded");
    };
    assert!(e.reason.contains("member_id is empty"), "{e:?}");
    let mut garbage = msg(&good, partition(CONTAINER));
    garbage.value = Some(vec![0, 0, 0, 5, 1, 2, 3]);
    let Err(e) = stage.decode(&garbage) else {
        panic!("a record of no known schema decoded");
    };
    assert_eq!(e.class, DeadLetterClass::Framing, "{e:?}");
    assert!(e.reason.contains("unknown schema id"), "{e:?}");
    garbage.value = None;
    let Err(e) = stage.decode(&garbage) else {
        panic!("a tombstone decoded");
    };
    assert!(e.reason.contains("tombstone"), "{e:?}");
}

const ALERTING_GROUP: &str = r#"
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
    let extra = [extra_pack("Test.GroupAlert", ALERTING_GROUP)];
    let out = run(&extra, group_inputs(), None).out;
    let again = run(&extra, group_inputs(), Some(9)).out;
    let text = out.join("\n");
    let alerts: Vec<&String> = out
        .iter()
        .filter(|l| l.contains(&format!(" alert {CONTAINER} ")))
        .collect();
    // Critical when db-01's disk fills, resolved while it is in maintenance, raised again
    // after, resolved when it leaves.
    assert_eq!(alerts.len(), 4, "{text}");
    assert!(
        alerts[0]
            .contains("A computer of all computers is unhealthy Critical state=0 change=raised"),
        "{text}"
    );
    assert!(alerts[1].contains("state=255 change=resolved"), "{text}");
    assert!(alerts[2].contains("state=0 change=raised"), "{text}");
    assert!(alerts[3].contains("state=255 change=resolved"), "{text}");
    assert_eq!(again, out, "a restart gives the same");
}

/// A distributed application: its own class and tree, a containment relationship to
/// computers (on other hosts), a dependency monitor over them, and a unit monitor of its
/// own reading the application's events.
const SHOP_PACK: &str = r#"
[[class]]
id = "Test.Shop"
base = "System.LogicalEntity"

[[class.property]]
name = "Name"
key = true

[[relationship]]
id = "Test.ShopContainsComputer"
kind = "containment"
source = "Test.Shop"
target = "Linux.Computer"

[[dependency]]
id = "Test.Shop.Computers"
name = "Shop computers"
target = "Test.Shop"
parent = "System.Health.AvailabilityState"
relationship = "Test.ShopContainsComputer"
member_monitor = "System.Health.EntityState"
algorithm = "worst_of"

[[monitor]]
id = "Test.Shop.Checkout"
name = "Checkout"
target = "Test.Shop"
parent = "System.Health.PerformanceState"

[monitor.source]
type = "event"
log = "orders"

[monitor.detect]
type = "event_reset"
unhealthy_when = 'Message contains "checkout failing"'
healthy_when = 'Message contains "checkout ok"'
unhealthy = "warning"
"#;

/// The application's relationship to a computer as the instance space sends it: on the
/// computer's partition, naming the application's root host and class.
fn contains(root: &str, kind: ChangeKind) -> Message {
    let id = format!("shop-contains-{root}");
    let mut rel = relationship(root, &id, "Test.ShopContainsComputer", SHOP, kind);
    rel.source_root_host = Some(SHOP_ROOT.into());
    rel.source_class = Some("Test.Shop".into());
    rel.claimed_by = vec!["discovery:shop-model".into()];
    message(Topic::Instances, root, 0, &rel)
}

fn shop_event(time: i64, text: &str) -> Message {
    message(
        Topic::Events,
        SHOP_ROOT,
        time,
        &EventBatch {
            id: String::new(),
            collector: SHOP_ROOT.into(),
            root_host: SHOP_ROOT.into(),
            events: vec![Event {
                time,
                channel: "orders".into(),
                source: "shop".into(),
                event_id: 0,
                level: EventLevel::Warning,
                message: text.into(),
                params: vec![],
                properties: BTreeMap::new(),
            }],
        },
    )
}

fn shop_inputs() -> Vec<Message> {
    // The relationship to web-01 arrives before web-01 itself (another tree's partition
    // is not ordered with this one's).
    let mut m = vec![contains("web-01", ChangeKind::Upsert)];
    m.extend(computer("web-01"));
    m.extend(computer("db-01"));
    m.push(contains("db-01", ChangeKind::Upsert));
    let mut shop = change(SHOP_ROOT, SHOP, EntityKind::Instance, ChangeKind::Upsert);
    shop.class = "Test.Shop".into();
    shop.keys = BTreeMap::from([("Name".to_string(), PropertyValue::String("shop".into()))]);
    m.push(message(Topic::Instances, SHOP_ROOT, 0, &shop));
    m.push(free("web-01", 60_000, 50.0));
    m.push(free("db-01", 60_000, 50.0));
    // db-01's disk fills: the shop's computers are critical, so is the shop.
    m.push(free("db-01", 120_000, 4.0));
    // The shop's own monitor: checkout failing (warning); the shop stays critical.
    m.push(shop_event(130_000, "checkout failing for 3 orders"));
    // db-01 recovers: the shop is warning (its checkout); then healthy.
    m.push(free("db-01", 140_000, 60.0));
    m.push(shop_event(150_000, "checkout ok"));
    // db-01 leaves the shop; web-01's disk fills: critical again.
    m.push(contains("db-01", ChangeKind::Delete));
    m.push(free("web-01", 160_000, 3.0));
    m
}

#[test]
fn a_distributed_application_with_members_on_two_hosts_and_a_monitor_of_its_own() {
    let extra = [extra_pack("Test.ShopModel", SHOP_PACK)];
    let run = run(&extra, shop_inputs(), None);
    let text = run.out.join("\n");
    // Member records go to the application's root host's partition, naming it.
    assert!(!run.members.is_empty());
    for (p, m) in &run.members {
        assert_eq!(m.container_id, SHOP);
        assert_eq!(m.container_class, "Test.Shop");
        assert_eq!(m.container_root(), SHOP_ROOT);
        assert_eq!(*p, partition(SHOP_ROOT));
    }
    // web-01 was a member before it existed: it is reported once it does.
    assert!(run
        .members
        .iter()
        .any(|(_, m)| m.member_id == "web-01" && m.present));
    assert_eq!(
        transitions(&run.out, SHOP, "Test.Shop.Computers"),
        [
            "Uninitialized->Healthy",
            "Healthy->Critical",
            "Critical->Healthy",
            "Healthy->Critical"
        ],
        "{text}"
    );
    assert_eq!(
        transitions(&run.out, SHOP, "Test.Shop.Checkout"),
        // An event-reset monitor starts healthy.
        [
            "Uninitialized->Healthy",
            "Healthy->Warning",
            "Warning->Healthy"
        ],
        "{text}"
    );
    // One engine owns the application's health: its entity health is the worst of its
    // own monitor and its members, each change once.
    assert_eq!(
        transitions(&run.out, SHOP, ENTITY),
        [
            "Uninitialized->Healthy",
            "Healthy->Critical",
            "Critical->Warning",
            "Warning->Healthy",
            "Healthy->Critical"
        ],
        "{text}"
    );
    // Its state records are on its own partition, under its root host.
    assert!(run
        .out
        .iter()
        .any(|l| l.contains(&format!(" {SHOP} {ENTITY} "))));
    let store = Store::open(run.dir.path(), HEALTH_CFS).expect("reopen");
    let left: Vec<String> = container_members(&store, SHOP, PARTITIONS)
        .expect("members")
        .into_iter()
        .map(|(_, m, _)| m)
        .collect();
    assert_eq!(left, vec!["web-01".to_string()]);
    // A restart anywhere gives the same.
    let total = shop_inputs().len() + run.members.len();
    for at in [2, total / 2, total - 3] {
        assert_eq!(
            run_restarted(&extra, at),
            run.out,
            "restart before input {at}"
        );
    }
}

fn run_restarted(extra: &[String], at: usize) -> Vec<String> {
    run(extra, shop_inputs(), Some(at)).out
}

/// A group whose member is another group: the inner group's singleton reports its health to
/// the outer group's partition like any member.
#[test]
fn a_nested_group_rolls_up_into_its_parent() {
    let extra = [extra_pack(
        "Test.Nested",
        "[[group]]\nid = \"Test.AllServers\"\nsubgroups = [\"System.Group.AllComputers\"]\n",
    )];
    let straight = run(&extra, group_inputs(), None);
    let text = straight.out.join("\n");
    let parent = healthstream_contracts::singleton_id("Test.AllServers");
    let to_parent: Vec<&MemberState> = straight
        .members
        .iter()
        .filter(|(_, m)| m.container_id == parent)
        .map(|(p, m)| {
            assert_eq!(*p, partition(&parent));
            m
        })
        .collect();
    assert!(!to_parent.is_empty(), "{text}");
    assert!(to_parent
        .iter()
        .all(|m| m.member_id == CONTAINER && m.container_class == "Test.AllServers"));
    // The parent follows its subgroup's entity health.
    assert_eq!(
        transitions(&straight.out, &parent, MEMBER_HEALTH),
        DB01_IN_AND_OUT,
        "{text}"
    );
    assert_eq!(
        transitions(&straight.out, &parent, ENTITY),
        DB01_IN_AND_OUT,
        "{text}"
    );
    let total = group_inputs().len() + straight.members.len();
    for at in [4, total / 2, total - 2] {
        assert_eq!(
            run(&extra, group_inputs(), Some(at)).out,
            straight.out,
            "restart before input {at}"
        );
    }
}

/// Packs that change while the processor runs: a group listed as a subgroup by a new pack
/// reports to its new parent at once, and stops when the pack goes.
#[test]
fn a_subgroup_added_or_removed_by_a_pack_change_tells_its_parent() {
    let snapshot = |extra: &[String], offset: i64| {
        let mut s = packs_with(extra).borrow().as_ref().clone();
        s.next_offset = offset;
        std::sync::Arc::new(s)
    };
    let nested = [extra_pack(
        "Test.Nested",
        "[[group]]\nid = \"Test.AllServers\"\nsubgroups = [\"System.Group.AllComputers\"]\n",
    )];
    let (tx, rx) = tokio::sync::watch::channel(snapshot(&[], 10));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Driver::new(dir.path(), rx);
    let inputs = group_inputs();
    let (first, rest) = inputs.split_at(7);
    for m in first.iter().cloned() {
        d.feed(m, &mut |_| {});
    }
    let parent = healthstream_contracts::singleton_id("Test.AllServers");
    let to_parent = |d: &Driver| -> Vec<bool> {
        d.members
            .iter()
            .filter(|(_, m)| m.container_id == parent)
            .map(|(_, m)| m.present)
            .collect()
    };
    assert!(to_parent(&d).is_empty(), "no parent before the pack");
    // The pack comes: the next input, whatever it is, tells the parent.
    tx.send(snapshot(&nested, 11)).expect("send");
    d.feed(rest[0].clone(), &mut |_| {});
    assert_eq!(to_parent(&d), [true], "{:?}", d.members);
    // All computers is healthy (web-01 and db-01 at 50% free): so is its new parent.
    assert_eq!(
        transitions(&d.out, &parent, MEMBER_HEALTH),
        ["Uninitialized->Healthy"],
        "{}",
        d.out.join("\n")
    );
    // The pack goes: the parent (whose group no longer exists) hears its member left.
    tx.send(snapshot(&[], 12)).expect("send");
    d.feed(rest[1].clone(), &mut |_| {});
    assert_eq!(to_parent(&d), [true, false], "{:?}", d.members);
}
