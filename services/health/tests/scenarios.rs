//! Golden scenarios through the health stage's core (decode, apply, state written with the
//! offsets): recorded inputs of one host (instances, perf, events, heartbeats), the expected
//! state changes and alerts, and the same run again with a restart in the middle that must
//! produce exactly the same output, ids included.

use std::collections::BTreeMap;
use std::sync::Arc;

use healthstream_bus::{Assignment, Message};
use healthstream_contracts::records::Record;
use healthstream_contracts::records::{
    AlertRecord, ChangeKind, EntityKind, Event, EventBatch, EventLevel, Heartbeat, InstanceChange,
    PerfBatch, PerfSample, PropertyValue, StateChange,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_health::{HealthStage, HEALTH_CFS};
use healthstream_model::store::PackStore;
use healthstream_packfeed::PackSnapshot;
use healthstream_stage::{Position, Processor};
use healthstream_store::Store;

const PARTITIONS: i32 = 4;
const HOST: &str = "web-01";

fn partition() -> i32 {
    partition_for_key(HOST.as_bytes(), PARTITIONS as u32) as i32
}

fn packs() -> healthstream_packfeed::Packs {
    let mut store = PackStore::new();
    for (path, text) in healthstream_model::SHIPPED {
        let c = store.plan_import(text, path).expect("shipped");
        store.apply(&c).expect("applies");
    }
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(PackSnapshot {
        store,
        next_offset: 2,
    }));
    std::mem::forget(tx);
    rx
}

fn message<R: Record>(topic: Topic, offset: i64, time: i64, r: &R) -> Message {
    Message {
        topic,
        partition: partition(),
        offset,
        key: Some(HOST.as_bytes().to_vec()),
        value: Some(Codec::shared().encode(r).expect("encode")),
        timestamp_ms: time,
    }
}

fn instance(id: &str, class: &str, host: Option<&str>, props: &[(&str, &str)]) -> InstanceChange {
    InstanceChange {
        id: format!("x-{id}"),
        root_host: HOST.into(),
        entity_id: id.into(),
        kind: EntityKind::Instance,
        change: ChangeKind::Upsert,
        time: 0,
        class: class.into(),
        keys: BTreeMap::new(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), PropertyValue::String(v.to_string())))
            .collect(),
        host_id: host.map(str::to_string),
        source_id: None,
        target_id: None,
        managed: true,
        claimed_by: vec!["discovery:test".into()],
    }
}

fn perf(time: i64, samples: &[(&str, &str, &str, f64)]) -> PerfBatch {
    PerfBatch {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        samples: samples
            .iter()
            .map(|(o, c, i, v)| PerfSample {
                time,
                object: o.to_string(),
                counter: c.to_string(),
                instance: i.to_string(),
                value: *v,
            })
            .collect(),
    }
}

/// The recorded inputs of the scenario, in order.
fn inputs() -> Vec<Message> {
    let mut m = Vec::new();
    let mut offset = 0;
    let mut push = |msg: Message| m.push(msg);
    let mut next = || {
        offset += 1;
        offset - 1
    };
    for i in [
        instance("web", "Linux.Computer", None, &[("PrincipalName", HOST)]),
        instance("collector", "System.Collector", Some("web"), &[]),
        instance(
            "fs-root",
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", "/"), ("Type", "ext4")],
        ),
        instance(
            "fs-var",
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", "/var"), ("Type", "xfs")],
        ),
    ] {
        push(message(Topic::Instances, next(), 0, &i));
    }
    let hb = |t: i64, seq: i64| Heartbeat {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        time: t,
        interval_seconds: 60,
        sequence: seq,
        version: "1".into(),
    };
    push(message(Topic::Heartbeats, next(), 0, &hb(0, 1)));
    // Free space: fine, then /var fills up (warning, critical), then recovers.
    for (t, root, var) in [
        (60_000, 50.0, 40.0),
        (120_000, 50.0, 9.0),
        (180_000, 50.0, 4.0),
        (240_000, 50.0, 60.0),
    ] {
        push(message(
            Topic::Heartbeats,
            next(),
            t,
            &hb(t, t / 60_000 + 1),
        ));
        push(message(
            Topic::Perf,
            next(),
            t,
            &perf(
                t,
                &[
                    ("Filesystem", "% Free Space", "/", root),
                    ("Filesystem", "% Free Space", "/var", var),
                ],
            ),
        ));
    }
    // A disk I/O error in the journal: the manual-reset monitor.
    let ev = EventBatch {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        events: vec![Event {
            time: 250_000,
            channel: "journal".into(),
            source: "kernel".into(),
            event_id: 0,
            level: EventLevel::Error,
            message: "blk_update_request: I/O error, dev vda, sector 7".into(),
            params: vec![],
            properties: BTreeMap::new(),
        }],
    };
    push(message(Topic::Events, next(), 250_000, &ev));
    // Rules: two out-of-memory kills from the kernel (one alert, repeated), and five
    // segfaults within ten minutes (consolidated into one alert).
    let journal = |t: i64, source: &str, message: &str| EventBatch {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        events: vec![Event {
            time: t,
            channel: "journal".into(),
            source: source.into(),
            event_id: 0,
            level: EventLevel::Error,
            message: message.into(),
            params: vec![],
            properties: BTreeMap::new(),
        }],
    };
    for t in [251_000, 252_000] {
        push(message(
            Topic::Events,
            next(),
            t,
            &journal(t, "kernel", "Out of memory: Killed process 4242 (java)"),
        ));
    }
    for t in [253_000, 254_000, 255_000, 256_000, 257_000] {
        push(message(
            Topic::Events,
            next(),
            t,
            &journal(t, "kernel", "app[77]: segfault at 0 ip 00007f"),
        ));
    }
    // The collector stops: only perf from another path arrives; after four minutes the
    // heartbeat monitor turns critical.
    for t in [300_000, 400_000, 500_000, 560_000] {
        push(message(
            Topic::Perf,
            next(),
            t,
            &perf(t, &[("Filesystem", "% Free Space", "/", 50.0)]),
        ));
    }
    m
}

/// What the stage emitted: state changes and alert changes, as comparable text.
fn run(restart_at: Option<usize>) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path(), HEALTH_CFS).expect("store");
    let mut stage = HealthStage::new(PARTITIONS, packs());
    let assigned = [Assignment {
        topic: Topic::Perf,
        partition: partition(),
        start: None,
    }];
    stage.on_assigned(&store, &assigned).expect("assigned");
    let mut out = Vec::new();
    for (i, m) in inputs().iter().enumerate() {
        if restart_at == Some(i) {
            // A restart: the process goes, the store is reopened, the engine is rebuilt
            // from it.
            drop(stage);
            drop(store);
            store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
            stage = HealthStage::new(PARTITIONS, packs());
            stage
                .on_assigned(&store, &assigned)
                .expect("assigned again");
        }
        let input = stage.decode(m).expect("decodes");
        let mut batch = store.batch();
        let at = Position {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
        };
        let records = stage.apply(&store, &mut batch, input, at).expect("applies");
        batch.set_offset(m.topic.name(), m.partition, m.offset + 1);
        store.write(batch).expect("write");
        for r in records {
            let v = r.value.expect("value");
            match r.topic {
                Topic::State => {
                    let s: StateChange = Codec::shared().decode(&v).expect("state change");
                    out.push(format!(
                        "{} state {} {} {:?}->{:?}",
                        s.id, s.instance_id, s.monitor_id, s.old_state, s.new_state
                    ));
                }
                Topic::Alerts => {
                    let a: AlertRecord = Codec::shared().decode(&v).expect("alert");
                    out.push(format!(
                        "{} alert {} {} {:?} state={} change={}",
                        a.id,
                        a.alert.alert_id,
                        a.alert.name,
                        a.alert.severity,
                        a.alert.resolution_state,
                        a.change.comment
                    ));
                }
                other => panic!("unexpected output on {other:?}"),
            }
        }
    }
    out
}

fn has(out: &[String], needle: &str) -> bool {
    out.iter().any(|l| l.contains(needle))
}

#[test]
fn the_golden_scenario() {
    let out = run(None);
    let text = out.join("\n");
    // /var: healthy, warning, critical, healthy; the computer follows through the rollup.
    for needle in [
        "fs-var Linux.Monitor.FilesystemFreeSpace Uninitialized->Healthy",
        "fs-var Linux.Monitor.FilesystemFreeSpace Healthy->Warning",
        "fs-var Linux.Monitor.FilesystemFreeSpace Warning->Critical",
        "fs-var Linux.Monitor.FilesystemFreeSpace Critical->Healthy",
        "web Linux.Computer.FilesystemAvailability Warning->Critical",
        "web System.Health.EntityState Warning->Critical",
        // The journal's I/O error: manual reset, stays critical.
        "web Linux.Monitor.DiskIoErrors Healthy->Critical",
        // Heartbeats stop at 240 s; four intervals later the collector is critical.
        "collector System.Collector.Heartbeat Healthy->Critical",
        "web System.Computer.CollectorAvailability Healthy->Critical",
    ] {
        assert!(has(&out, needle), "missing {needle:?} in:\n{text}");
    }
    // One alert for /var: raised at warning, made critical, resolved; the I/O error alert
    // and the heartbeat alert are raised and stay open.
    assert!(
        has(
            &out,
            "is running out of space Warning state=0 change=raised"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "is running out of space Critical state=0 change=the monitor is critical"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "state=255 change=resolved: the monitor is healthy again"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "Disk I/O errors on web-01 Critical state=0 change=raised"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "Collector heartbeat failure Critical state=0 change=raised"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "Out-of-memory kill on web-01 Critical state=0 change=raised"
        ),
        "{text}"
    );
    assert!(
        has(
            &out,
            "Out-of-memory kill on web-01 Critical state=0 change=repeated"
        ),
        "{text}"
    );
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("Repeated segmentation faults on web-01"))
            .count(),
        1,
        "{text}"
    );
    // One change per monitor that changed, per input: no duplicates.
    let mut seen = std::collections::BTreeSet::new();
    for l in &out {
        assert!(seen.insert(l.clone()), "duplicate output {l}");
    }
}

#[test]
fn a_restart_anywhere_gives_the_same_output() {
    let straight = run(None);
    let n = inputs().len();
    for at in [1, 5, n / 2, n - 3] {
        assert_eq!(run(Some(at)), straight, "restart before input {at}");
    }
}
