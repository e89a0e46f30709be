//! Golden scenarios through the health stage's core (decode, apply, state stored with the
//! offsets at checkpoints): recorded inputs of one host (instances, perf, events,
//! heartbeats), the expected state changes and alerts, and the same run again with a crash
//! in the middle (what was applied since the last checkpoint lost and applied again) that
//! must produce exactly the same output, ids included, once deduplicated by id.

mod common;

use std::collections::BTreeMap;

use common::{change, extra_pack, operation, packs_with};
use healthstream_bus::{Assignment, Message, OutboundRecord};
use healthstream_contracts::records::Record;
use healthstream_contracts::records::{
    AlertRecord, ChangeKind, Command, EntityKind, Event, EventBatch, EventLevel, Heartbeat,
    InstanceChange, Operation, OperationKind, PerfBatch, PerfSample, PropertyValue, StateChange,
    TaskResult, TaskStatus,
};
use healthstream_contracts::{partition_for_key, Codec, Topic};
use healthstream_health::{
    alert, command, groom_alerts, groom_commands, groom_history, maintenance_of, operation_outcome,
    state_history, stored_instance, unavailable_since, HealthStage, OperationOutcome, HEALTH_CFS,
};
use healthstream_stage::{Position, Processor};
use healthstream_store::{Store, StoreBatch};

const PARTITIONS: i32 = 4;
const HOST: &str = "web-01";

fn partition() -> i32 {
    partition_for_key(HOST.as_bytes(), PARTITIONS as u32) as i32
}

fn packs() -> healthstream_packfeed::Packs {
    packs_with(
        &EXTRA
            .with(|e| e.borrow().clone())
            .into_iter()
            .collect::<Vec<_>>(),
    )
}

thread_local! {
    /// A pack added to the shipped ones by the test running on this thread.
    static EXTRA: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
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
    let mut c = change(HOST, id, EntityKind::Instance, ChangeKind::Upsert);
    c.class = class.into();
    c.properties = props
        .iter()
        .map(|(k, v)| (k.to_string(), PropertyValue::String(v.to_string())))
        .collect();
    c.host_id = host.map(str::to_string);
    c
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
    run_inputs(&inputs(), restart_at).0
}

/// Inputs applied between two checkpoints of the scenario runs (the stage runner begins one
/// every two seconds or so under load; a crash loses what was applied since the last one
/// stored).
const CHECKPOINT_EVERY: usize = 3;

/// The state of a scenario run as the stage runner keeps it: the open batch, and the
/// checkpoint being sealed (the batch of the inputs before it, what the stage writes of its
/// in-memory state as of the seal, and how many inputs it covers).
struct Checkpoints {
    store: Store,
    batch: StoreBatch,
    sealing: Option<(std::sync::Arc<StoreBatch>, StoreBatch, usize)>,
}

impl Checkpoints {
    fn new(store: Store) -> Checkpoints {
        let batch = store.batch();
        Checkpoints {
            store,
            batch,
            sealing: None,
        }
    }

    /// Applies an input into the open batch with its offset.
    fn apply(&mut self, stage: &mut HealthStage, m: &Message) -> Vec<OutboundRecord> {
        let input = stage.decode(m).expect("decodes");
        let at = Position {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
        };
        let records = stage.apply(&mut self.batch, input, at).expect("applies");
        self.batch
            .set_offset(m.topic.name(), m.partition, m.offset + 1);
        records
    }

    /// Seals a checkpoint of the first `inputs` inputs: the open batch is set aside.
    fn seal(&mut self, stage: &mut HealthStage, inputs: usize) {
        assert!(self.sealing.is_none(), "one checkpoint sealed at a time");
        let base = std::sync::Arc::new(std::mem::replace(&mut self.batch, self.store.batch()));
        self.batch.set_base(base.clone());
        stage.seal();
        self.sealing = Some((base, self.store.batch(), inputs));
    }

    /// Lets the stage write `budget` items of the sealed checkpoint; when it is whole, it is
    /// stored and the inputs it covers are returned.
    fn step(&mut self, stage: &mut HealthStage, budget: usize) -> Option<usize> {
        let (_, rest, _) = self.sealing.as_mut()?;
        if !stage.seal_step(rest, budget).expect("seal step") {
            return None;
        }
        let (base, rest, inputs) = self.sealing.take()?;
        self.store.write_all(&[&base, &rest]).expect("write");
        self.batch.drop_base();
        Some(inputs)
    }

    /// Stores everything: the sealed checkpoint, then the rest.
    fn finish(mut self, stage: &mut HealthStage) -> Store {
        self.step(stage, usize::MAX);
        stage.seal();
        assert!(stage
            .seal_step(&mut self.batch, usize::MAX)
            .expect("seal step"));
        self.store.write(self.batch).expect("write");
        self.store
    }
}

/// [`run`] over any inputs; also the outcome of every operation among them, in order, and
/// the store's directory (closed) to look into.
///
/// As the stage runner does: every [`CHECKPOINT_EVERY`] inputs a checkpoint is sealed and
/// the stage writes its in-memory state into it one item per input applied after (an input
/// changing a host first has the host's sealed state taken); it is stored when complete. A
/// restart before input `restart_at` is a crash: what was not stored is lost, the store is
/// reopened, the engine rebuilt from it and the inputs after the stored offsets applied
/// again. Their outputs come again: each must be the same record as the first time (same
/// id, same content), and is listed once, as a consumer deduplicating by id sees it.
fn run_inputs(
    inputs: &[Message],
    restart_at: Option<usize>,
) -> (Vec<String>, Vec<OperationOutcome>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), HEALTH_CFS).expect("store");
    let mut stage = HealthStage::new(PARTITIONS, packs());
    let assigned = [Assignment {
        topic: Topic::Perf,
        partition: partition(),
        start: None,
    }];
    stage.on_assigned(&store, &assigned).expect("assigned");
    let mut out = Vec::new();
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    let mut operations = Vec::new();
    let mut run = Checkpoints::new(store);
    let mut stored = 0;
    let mut restarted = false;
    let mut i = 0;
    while i < inputs.len() {
        let m = &inputs[i];
        if restart_at == Some(i) && !restarted {
            // A crash: the process goes with what it had not stored; the store is
            // reopened, the engine rebuilt from it, and the inputs after the stored
            // offsets are applied again.
            restarted = true;
            drop((run, stage));
            let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
            stage = HealthStage::new(PARTITIONS, packs());
            stage
                .on_assigned(&store, &assigned)
                .expect("assigned again");
            run = Checkpoints::new(store);
            i = stored;
            continue;
        }
        if m.topic == Topic::Operations {
            let op: Operation = Codec::shared()
                .decode(m.value.as_deref().expect("value"))
                .expect("operation");
            if !operations.contains(&op.id) {
                operations.push(op.id);
            }
        }
        let records = run.apply(&mut stage, m);
        i += 1;
        if run.sealing.is_some() {
            if let Some(n) = run.step(&mut stage, 1) {
                stored = n;
            }
        } else if i % CHECKPOINT_EVERY == 0 {
            run.seal(&mut stage, i);
        }
        for r in records {
            let (id, text) = output_text(r);
            match by_id.get(&id) {
                Some(first) => assert_eq!(first, &text, "output {id} applied again differs"),
                None => {
                    by_id.insert(id, text.clone());
                    out.push(text);
                }
            }
        }
    }
    let store = run.finish(&mut stage);
    let outcomes = operations
        .iter()
        .map(|id| {
            operation_outcome(&store, id)
                .expect("read")
                .unwrap_or_else(|| panic!("operation {id} has no outcome"))
        })
        .collect();
    drop(store);
    (out, outcomes, dir)
}

/// An output's id and its content as comparable text.
fn output_text(r: OutboundRecord) -> (String, String) {
    let v = r.value.expect("value");
    match r.topic {
        Topic::State => {
            let s: StateChange = Codec::shared().decode(&v).expect("state change");
            let text = format!(
                "{} state {} {} {:?}->{:?} cause={} maintenance={} unavailable={}",
                s.id,
                s.instance_id,
                s.monitor_id,
                s.old_state,
                s.new_state,
                s.cause.kind,
                s.in_maintenance,
                s.unavailable
            );
            (s.id, text)
        }
        Topic::Alerts => {
            let a: AlertRecord = Codec::shared().decode(&v).expect("alert");
            let text = format!(
                "{} alert {} {} {:?} state={} change={} | {} {:?}",
                a.id,
                a.alert.alert_id,
                a.alert.name,
                a.alert.severity,
                a.alert.resolution_state,
                a.change.comment,
                a.alert.description,
                a.alert.parameters
            );
            (a.id, text)
        }
        Topic::Commands => {
            let c: Command = Codec::shared().decode(&v).expect("command");
            let text = format!(
                "{} command {:?} {} on {} argv={} alert={} by={}",
                c.id,
                c.kind,
                c.workflow_id,
                c.instance_id,
                c.parameters.get("argv").cloned().unwrap_or_default(),
                c.alert_id.unwrap_or_default(),
                c.requested_by
            );
            (c.id, text)
        }
        other => panic!("unexpected output on {other:?}"),
    }
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
        // Event-driven monitors start healthy, and say so.
        "web Linux.Monitor.DiskIoErrors Uninitialized->Healthy cause=rollup",
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
    // The rule's description reads the event: its parameters are the values it read.
    assert!(
        has(
            &out,
            "change=raised | The kernel killed a process to free memory: Out of memory: Killed process 4242 (java) [\"Out of memory: Killed process 4242 (java)\"]"
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

/// The alerts of an output and whether each was closed last.
fn alerts_closed(out: &[String]) -> BTreeMap<String, bool> {
    let mut closed = BTreeMap::new();
    for line in out {
        let mut words = line.split(' ');
        if let (Some(_), Some("alert"), Some(id)) = (words.next(), words.next(), words.next()) {
            closed.insert(id.to_string(), line.contains(" state=255 "));
        }
    }
    closed
}

#[test]
fn grooming_drops_what_is_older_than_the_retention_and_keeps_the_rest() {
    let (out, _, dir) = run_inputs(&inputs(), None);
    let closed = alerts_closed(&out);
    assert!(
        closed.values().any(|c| *c),
        "some alert resolved: {closed:?}"
    );
    assert!(
        closed.values().any(|c| !c),
        "some alert still open: {closed:?}"
    );
    // A monitor that changed more than once.
    let mut changes: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in &out {
        let words: Vec<&str> = line.split(' ').collect();
        if words.get(1) == Some(&"state") && words.len() > 3 {
            *changes
                .entry((words[2].to_string(), words[3].to_string()))
                .or_default() += 1;
        }
    }
    let ((instance, monitor), _) = changes
        .into_iter()
        .find(|(_, n)| *n > 1)
        .expect("a monitor changed twice");
    let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
    let history = || state_history(&store, &instance, Some(&monitor), usize::MAX).expect("read");
    let before = history();
    assert!(before.len() > 1, "{before:?}");
    // Nothing is older than the start of the scenario.
    assert_eq!(groom_history(&store, 0).expect("grooms"), 0);
    assert_eq!(groom_alerts(&store, 0).expect("grooms"), 0);
    assert_eq!(groom_commands(&store, 0).expect("grooms"), 0);
    // Past its end: every closed alert goes, open ones stay; each monitor keeps its latest
    // change (since when it is in its state).
    let gone = groom_alerts(&store, i64::MAX).expect("grooms");
    assert_eq!(gone, closed.values().filter(|c| **c).count() as u64);
    for (id, was_closed) in &closed {
        assert_eq!(
            alert(&store, id).expect("read").is_none(),
            *was_closed,
            "alert {id}"
        );
    }
    assert!(groom_history(&store, i64::MAX).expect("grooms") > 0);
    let after = history();
    assert_eq!(after.len(), 1);
    assert_eq!(after.last(), before.last(), "the latest change stays");
}

/// Two hosts of one partition: the second's collector goes silent while the first keeps
/// sending, so the timer that makes the second's heartbeat monitor critical runs in the
/// first's inputs, while a checkpoint holding both hosts is being sealed: the second host's
/// states must be taken for the checkpoint before the timer changes them (the stage's debug
/// assertion fails otherwise), and a crash before any input gives the same output.
#[test]
fn a_timer_changing_another_host_while_a_checkpoint_is_sealed() {
    let other = (2..100)
        .map(|n| format!("web-{n:02}"))
        .find(|h| partition_for_key(h.as_bytes(), PARTITIONS as u32) as i32 == partition())
        .expect("a host of the same partition");
    let on = |host: &str, mut msg: Message| {
        msg.key = Some(host.as_bytes().to_vec());
        msg
    };
    let mut inputs = Vec::new();
    let mut offset = 0;
    let mut next = || {
        offset += 1;
        offset - 1
    };
    for host in [HOST, other.as_str()] {
        for (id, class, on_host) in [
            ("computer", "Linux.Computer", None),
            ("collector", "System.Collector", Some("computer")),
            ("fs", "Linux.Filesystem", Some("computer")),
        ] {
            let mut c = instance(
                &format!("{host}/{id}"),
                class,
                None,
                &[("MountPoint", "/"), ("Type", "ext4")],
            );
            c.root_host = host.into();
            c.host_id = on_host.map(|h| format!("{host}/{h}"));
            if class == "Linux.Computer" {
                c.properties.insert(
                    "PrincipalName".into(),
                    PropertyValue::String(host.to_string()),
                );
            }
            inputs.push(on(host, message(Topic::Instances, next(), 0, &c)));
        }
    }
    let hb = |host: &str, t: i64| Heartbeat {
        id: String::new(),
        collector: host.into(),
        root_host: host.into(),
        time: t,
        interval_seconds: 60,
        sequence: t / 60_000,
        version: "1".into(),
    };
    for host in [HOST, other.as_str(), HOST] {
        inputs.push(on(
            host,
            message(Topic::Heartbeats, next(), 0, &hb(host, 0)),
        ));
    }
    // The scenario runs seal a checkpoint after every third input: after the second host's
    // samples here.
    assert_eq!(inputs.len() % CHECKPOINT_EVERY, 0);
    // Only the first host's collector goes on; the second's samples come another way, last
    // in each minute (a checkpoint sealed after them holds the second host, and the first
    // input of the next minute runs the timers).
    for t in (1..=6).map(|m| m * 60_000) {
        inputs.push(on(
            HOST,
            message(Topic::Heartbeats, next(), t, &hb(HOST, t)),
        ));
        let p = perf(t, &[("Memory", "Available MBytes", "", 800.0)]);
        inputs.push(on(HOST, message(Topic::Perf, next(), t, &p)));
        let mut p = perf(t + 1, &[("Filesystem", "% Free Space", "/", 50.0)]);
        p.root_host = other.clone();
        p.collector = other.clone();
        inputs.push(on(&other, message(Topic::Perf, next(), t + 1, &p)));
    }
    let straight = run_inputs(&inputs, None).0;
    let silent = format!("state {other}/collector System.Collector.Heartbeat");
    assert!(
        straight
            .iter()
            .any(|l| l.contains(&silent) && l.contains("->Critical")),
        "the silent collector's heartbeat monitor turns critical: {straight:#?}"
    );
    assert!(
        !straight.iter().any(|l| l.contains(&format!(
            "state {HOST}/collector System.Collector.Heartbeat"
        )) && l.contains("->Critical")),
        "the other collector stays healthy: {straight:#?}"
    );
    for at in 1..inputs.len() {
        assert_eq!(
            run_inputs(&inputs, Some(at)).0,
            straight,
            "restart before input {at}"
        );
    }
}

#[test]
fn a_restart_anywhere_gives_the_same_output() {
    let straight = run(None);
    let n = inputs().len();
    // And inside the segfault consolidation (the rule's window of five is kept state).
    let first_segfault = inputs()
        .iter()
        .position(|m| {
            m.topic == Topic::Events
                && m.value
                    .as_deref()
                    .is_some_and(|v| v.windows(8).any(|w| w == b"segfault"))
        })
        .expect("segfault events");
    assert!(
        has(&straight, "Repeated segmentation faults on web-01"),
        "{straight:?}"
    );
    assert!(first_segfault + 2 < n);
    // Every point: each falls at a different place of a checkpoint being sealed.
    for at in 1..n {
        assert_eq!(run(Some(at)), straight, "restart before input {at}");
    }
}

fn op(kind: OperationKind, instance: &str, at: i64) -> Operation {
    operation(HOST, kind, instance, at)
}

const FREE: &str = "Linux.Monitor.FilesystemFreeSpace";

/// Operators at work on one host: a close refused while the monitor is critical,
/// maintenance mode of the whole computer (with its end by time), a reset refused during
/// it and applied after, heartbeats missed after it (unavailable, then back), and a manual
/// maintenance of one filesystem. `close_alert`: the id of the /var alert to close (known
/// after a first run of the prefix).
fn operator_inputs(close_alert: &str) -> Vec<Message> {
    let mut m = Vec::new();
    let mut offset = 0;
    let mut add = |topic: Topic, time: i64, msg: &dyn Fn(Topic, i64, i64) -> Message| {
        m.push(msg(topic, offset, time));
        offset += 1;
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
        add(Topic::Instances, 0, &|t, o, time| message(t, o, time, &i));
    }
    let hb = |t: i64| Heartbeat {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        time: t,
        interval_seconds: 60,
        sequence: t / 60_000,
        version: "1".into(),
    };
    let free = |t: i64, samples: &[(&str, f64)]| {
        let s: Vec<(&str, &str, &str, f64)> = samples
            .iter()
            .map(|(mount, v)| ("Filesystem", "% Free Space", *mount, *v))
            .collect();
        perf(t, &s)
    };
    add(Topic::Heartbeats, 0, &|t, o, time| {
        message(t, o, time, &hb(0))
    });
    add(Topic::Heartbeats, 60_000, &|t, o, time| {
        message(t, o, time, &hb(60_000))
    });
    // /var is almost full: critical, its alert raised.
    add(Topic::Perf, 60_000, &|t, o, time| {
        message(t, o, time, &free(60_000, &[("/", 50.0), ("/var", 4.0)]))
    });
    if close_alert.is_empty() {
        return m;
    }
    // Closing it by hand is refused while the monitor is critical.
    let mut close = op(OperationKind::CloseAlert, "fs-var", 70_000);
    close.alert_id = Some(close_alert.to_string());
    add(Topic::Operations, 70_000, &|t, o, time| {
        message(t, o, time, &close)
    });
    // The computer goes into maintenance for ten minutes.
    let mut start = op(OperationKind::MaintenanceStart, "web", 80_000);
    start.until = Some(680_000);
    add(Topic::Operations, 80_000, &|t, o, time| {
        message(t, o, time, &start)
    });
    // During it: / fills up, /var is cleaned, heartbeats stop (a reboot). Nothing changes.
    add(Topic::Perf, 120_000, &|t, o, time| {
        message(t, o, time, &free(120_000, &[("/", 3.0), ("/var", 60.0)]))
    });
    for at in [300_000, 500_000] {
        add(Topic::Perf, at, &|t, o, time| {
            message(t, o, time, &free(at, &[("/", 3.0)]))
        });
    }
    let mut reset = op(OperationKind::ResetMonitor, "fs-root", 550_000);
    reset.monitor_id = Some(FREE.into());
    add(Topic::Operations, 550_000, &|t, o, time| {
        message(t, o, time, &reset)
    });
    // The maintenance ends with time (the first input after 680 s): the held readings
    // decide at once.
    add(Topic::Perf, 690_000, &|t, o, time| {
        message(t, o, time, &free(690_000, &[("/", 3.0)]))
    });
    // No heartbeat since: four intervals after the end, the tree is unavailable.
    add(Topic::Perf, 930_000, &|t, o, time| {
        message(t, o, time, &free(930_000, &[("/", 3.0)]))
    });
    // The collector is back.
    add(Topic::Heartbeats, 1_000_000, &|t, o, time| {
        message(t, o, time, &hb(1_000_000))
    });
    // Now the reset is applied; the next sample decides again.
    let mut reset = op(OperationKind::ResetMonitor, "fs-root", 1_010_000);
    reset.monitor_id = Some(FREE.into());
    add(Topic::Operations, 1_010_000, &|t, o, time| {
        message(t, o, time, &reset)
    });
    add(Topic::Perf, 1_020_000, &|t, o, time| {
        message(t, o, time, &free(1_020_000, &[("/", 3.0)]))
    });
    // Ending a maintenance that is over is refused.
    add(Topic::Operations, 1_030_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &op(OperationKind::MaintenanceEnd, "web", 1_030_000),
        )
    });
    // /var alone, by hand: it fills during its maintenance and turns critical at the end.
    add(Topic::Operations, 1_100_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &op(OperationKind::MaintenanceStart, "fs-var", 1_100_000),
        )
    });
    add(Topic::Heartbeats, 1_120_000, &|t, o, time| {
        message(t, o, time, &hb(1_120_000))
    });
    add(Topic::Perf, 1_150_000, &|t, o, time| {
        message(t, o, time, &free(1_150_000, &[("/var", 2.0)]))
    });
    add(Topic::Operations, 1_200_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &op(OperationKind::MaintenanceEnd, "fs-var", 1_200_000),
        )
    });
    m
}

fn position(out: &[String], needle: &str) -> usize {
    out.iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("missing {needle:?} in:\n{}", out.join("\n")))
}

#[test]
fn operators_maintenance_and_availability() {
    // The /var alert's id, from the first part of the run.
    let (prefix, _, _) = run_inputs(&operator_inputs(""), None);
    let raised = &prefix[position(&prefix, "/var on web-01 is running out of space Critical")];
    let alert_id = raised
        .split_whitespace()
        .nth(2)
        .expect("alert id")
        .to_string();

    let inputs = operator_inputs(&alert_id);
    let (out, outcomes, dir) = run_inputs(&inputs, None);
    let text = out.join("\n");
    let summary: Vec<(String, String)> = outcomes
        .iter()
        .map(|o| (o.status.clone(), o.detail.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("refused".into(), format!("alert {alert_id} cannot be closed while its monitor is critical: it is resolved when the monitor returns to healthy")),
            ("applied".into(), "web is in maintenance".into()),
            ("refused".into(), "instance fs-root is in maintenance (set on web): its monitors are stopped".into()),
            ("applied".into(), format!("{FREE} reset")),
            ("refused".into(), "instance web is not in maintenance".into()),
            ("applied".into(), "fs-var is in maintenance".into()),
            ("applied".into(), "maintenance of fs-var ended".into()),
        ]
    );
    // Nothing during the maintenance: the first change after it is at its end.
    let root_critical = position(
        &out,
        &format!("fs-root {FREE} Healthy->Critical cause=maintenance maintenance=false unavailable=false"),
    );
    let var_healthy = position(
        &out,
        &format!("fs-var {FREE} Critical->Healthy cause=maintenance"),
    );
    let var_resolved = position(
        &out,
        "/var on web-01 is running out of space Critical state=255 change=resolved",
    );
    let started = position(
        &out,
        "/var on web-01 is running out of space Critical state=0 change=raised",
    );
    assert!(
        started < root_critical && root_critical.max(var_healthy) < var_resolved,
        "{text}"
    );
    // Between: only the flags of the computer and what it hosts entering maintenance
    // (entity health unchanged, in maintenance), no state change.
    let between: Vec<&String> = out[started + 1..root_critical.min(var_healthy)]
        .iter()
        .filter(|l| l.contains(" state "))
        .collect();
    assert_eq!(between.len(), 4, "{between:#?}");
    for id in ["web", "collector", "fs-root", "fs-var"] {
        assert!(
            between.iter().any(|l| l.contains(&format!(
                "state {id} System.Health.EntityState Healthy->Healthy cause=maintenance maintenance=true"
            )) || l.contains(&format!(
                "state {id} System.Health.EntityState Critical->Critical cause=maintenance maintenance=true"
            ))),
            "{id}: {between:#?}"
        );
    }
    let root_alert = position(
        &out,
        "/ on web-01 is running out of space Critical state=0 change=raised",
    );
    assert!(root_alert > root_critical);
    // The heartbeat: not missed during the maintenance (one failure only, after it), the
    // tree unavailable, then back.
    let missed = position(
        &out,
        "collector System.Collector.Heartbeat Healthy->Critical cause=time maintenance=false unavailable=true",
    );
    assert!(missed > root_critical);
    // Every instance of the tree is flagged unavailable (grey), then available again.
    assert!(has(&out, "state fs-root System.Health.EntityState Critical->Critical cause=heartbeat maintenance=false unavailable=true"), "{text}");
    assert!(has(&out, "state fs-var System.Health.EntityState Healthy->Healthy cause=heartbeat maintenance=false unavailable=true"), "{text}");
    assert!(has(&out, "state fs-var System.Health.EntityState Healthy->Healthy cause=heartbeat maintenance=false unavailable=false"), "{text}");
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("System.Collector.Heartbeat Healthy->Critical"))
            .count(),
        1,
        "{text}"
    );
    assert!(has(&out, "web System.Computer.CollectorAvailability Healthy->Critical cause=rollup maintenance=false unavailable=true"), "{text}");
    assert!(has(&out, "web System.Computer.CollectorAvailability Critical->Healthy cause=heartbeat maintenance=false unavailable=false"), "{text}");
    let back = position(
        &out,
        "collector System.Collector.Heartbeat Critical->Healthy cause=heartbeat maintenance=false unavailable=false",
    );
    assert!(has(
        &out,
        "Collector heartbeat failure Critical state=0 change=raised"
    ));
    // The reset: healthy by hand, critical again with the next sample.
    let reset = position(
        &out,
        &format!("fs-root {FREE} Critical->Healthy cause=operator"),
    );
    let again = position(
        &out,
        &format!("fs-root {FREE} Healthy->Critical cause=sample"),
    );
    assert!(back < reset && reset < again, "{text}");
    // /var's own maintenance: critical at its end, with an alert.
    let var_end = position(
        &out,
        &format!("fs-var {FREE} Healthy->Critical cause=maintenance"),
    );
    assert!(var_end > again);
    // What is left in the store: no maintenance, the collector available.
    let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
    let (p, web) = stored_instance(&store, "web", PARTITIONS)
        .expect("ok")
        .expect("web");
    assert_eq!(web.root_host, HOST);
    assert_eq!(maintenance_of(&store, "fs-var", p).expect("ok"), None);
    assert_eq!(unavailable_since(&store, HOST).expect("ok"), None);
    drop(store);

    // In the middle: the computer's maintenance covers its filesystems, and later the
    // tree is unavailable since the heartbeats were missed.
    let (_, _, dir) = run_inputs(&inputs[..10], None);
    let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
    let (on, m) = maintenance_of(&store, "fs-root", p)
        .expect("ok")
        .expect("in maintenance");
    assert_eq!(
        (on.as_str(), m.until, m.by.as_str()),
        ("web", Some(680_000), "ops")
    );
    drop(store);
    let (_, _, dir) = run_inputs(&inputs[..15], None);
    let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
    assert_eq!(unavailable_since(&store, HOST).expect("ok"), Some(930_000));
    drop(store);

    // A restart anywhere gives the same output and outcomes.
    for at in [5, 8, 10, 14, 16, inputs.len() - 2] {
        let (again, again_outcomes, _) = run_inputs(&inputs, Some(at));
        assert_eq!(again, out, "restart before input {at}");
        assert_eq!(again_outcomes, outcomes);
    }
}

/// The body of pack Tuning.Restarts (see [`extra_pack`]).
const RESTART_ENABLED: &str = r#"
[[override]]
id = "Tuning.RestartSshd"
workflow = "Linux.Recovery.RestartService"
parameter = "enabled"
value = true
context = "Linux.Service"
instance = "sshd"
"#;

fn task_result(command: &str, at: i64, status: TaskStatus, output: &str) -> TaskResult {
    TaskResult {
        id: format!("r-{command}"),
        command_id: command.into(),
        root_host: HOST.into(),
        collector: HOST.into(),
        status,
        exit_code: Some(if status == TaskStatus::Succeeded {
            0
        } else {
            1
        }),
        output: output.into(),
        truncated: false,
        started_at: at - 100,
        finished_at: at,
    }
}

/// Diagnostics, recoveries and tasks: `results` are the command ids to answer, known from
/// the previous phase's output.
fn command_inputs(results: &[(&str, TaskStatus, &str)]) -> Vec<Message> {
    let mut m = Vec::new();
    let mut offset = 0;
    let mut add = |topic: Topic, time: i64, msg: &dyn Fn(Topic, i64, i64) -> Message| {
        m.push(msg(topic, offset, time));
        offset += 1;
    };
    for i in [
        instance("web", "Linux.Computer", None, &[("PrincipalName", HOST)]),
        instance(
            "fs-root",
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", "/"), ("Type", "ext4")],
        ),
        instance(
            "sshd",
            "Linux.Service",
            Some("web"),
            &[("Name", "sshd.service")],
        ),
    ] {
        add(Topic::Instances, 0, &|t, o, time| message(t, o, time, &i));
    }
    // The disk fills (its diagnostic runs, attached to its alert); sshd stops (its journal,
    // then the restart once the journal was read).
    add(Topic::Perf, 60_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &perf(
                60_000,
                &[
                    ("Filesystem", "% Free Space", "/", 4.0),
                    ("Service", "Running", "sshd.service", 1.0),
                ],
            ),
        )
    });
    add(Topic::Perf, 120_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &perf(120_000, &[("Service", "Running", "sshd.service", 0.0)]),
        )
    });
    // An operator runs a task, and one that does not exist.
    let mut run = op(OperationKind::RunTask, "web", 130_000);
    run.task_id = Some("Linux.Task.TopProcesses".into());
    add(Topic::Operations, 130_000, &|t, o, time| {
        message(t, o, time, &run)
    });
    let mut bad = op(OperationKind::RunTask, "web", 131_000);
    bad.task_id = Some("Linux.Task.Nothing".into());
    add(Topic::Operations, 131_000, &|t, o, time| {
        message(t, o, time, &bad)
    });
    // A result for a command nobody sent changes nothing.
    add(Topic::TaskResults, 132_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &task_result("nobody-sent-this", 132_000, TaskStatus::Succeeded, ""),
        )
    });
    for (i, (id, status, output)) in results.iter().enumerate() {
        let at = 200_000 + i as i64 * 10_000;
        let r = task_result(id, at, *status, output);
        add(Topic::TaskResults, at, &|t, o, time| {
            message(t, o, time, &r)
        });
        // Twice: the second is a duplicate.
        add(Topic::TaskResults, at + 1, &|t, o, time| {
            message(t, o, time, &r)
        });
    }
    m
}

fn command_id(out: &[String], workflow: &str) -> String {
    let line = &out[position(out, &format!(" {workflow} on "))];
    line.split_whitespace().next().expect("id").to_string()
}

#[test]
fn diagnostics_recoveries_and_tasks() {
    EXTRA.with(|e| *e.borrow_mut() = Some(extra_pack("Tuning.Restarts", RESTART_ENABLED)));
    let (first, _, _) = run_inputs(&command_inputs(&[]), None);
    let text = first.join("\n");
    // The disk's diagnostic, attached to the disk's alert.
    let disk_alert = first[position(
        &first,
        "Filesystem / on web-01 is running out of space Critical state=0 change=raised",
    )]
    .split_whitespace()
    .nth(2)
    .expect("alert id")
    .to_string();
    assert!(
        has(&first, &format!("command Diagnostic Linux.Diagnostic.LargestDirectories on fs-root argv=[\"du\",\"-x\",\"-h\",\"--max-depth=2\",\"/\"] alert={disk_alert} by=health: Linux.Monitor.FilesystemFreeSpace entered critical")),
        "{text}"
    );
    assert!(has(&first, "command Diagnostic Linux.Diagnostic.ServiceJournal on sshd argv=[\"journalctl\",\"--no-pager\",\"-n\",\"50\",\"-u\",\"sshd.service\"]"), "{text}");
    assert!(
        has(
            &first,
            "command Task Linux.Task.TopProcesses on web argv=[\"ps\""
        ),
        "{text}"
    );
    assert!(
        !has(&first, "Linux.Recovery.RestartService"),
        "only after the journal: {text}"
    );
    let du = command_id(&first, "Linux.Diagnostic.LargestDirectories");
    let journal = command_id(&first, "Linux.Diagnostic.ServiceJournal");
    let task = command_id(&first, "Linux.Task.TopProcesses");

    let (second, _, _) = run_inputs(
        &command_inputs(&[
            (&du, TaskStatus::Succeeded, "12G\t/var\n3G\t/usr"),
            (
                &journal,
                TaskStatus::Succeeded,
                "sshd.service: Main process exited",
            ),
            (&task, TaskStatus::TimedOut, ""),
        ]),
        None,
    );
    let restart = command_id(&second, "Linux.Recovery.RestartService");
    let results = [
        (du.as_str(), TaskStatus::Succeeded, "12G\t/var\n3G\t/usr"),
        (
            journal.as_str(),
            TaskStatus::Succeeded,
            "sshd.service: Main process exited",
        ),
        (task.as_str(), TaskStatus::TimedOut, ""),
        (restart.as_str(), TaskStatus::Succeeded, ""),
    ];
    let inputs = command_inputs(&results);
    let (out, outcomes, dir) = run_inputs(&inputs, None);
    let text = out.join("\n");
    // The disk's alert carries the diagnostic's output.
    assert!(
        has(&out, &format!("alert {disk_alert} Filesystem / on web-01 is running out of space Critical state=0 change=diagnostic Largest directories succeeded (exit 0); command {du}:\n12G\t/var\n3G\t/usr")),
        "{text}"
    );
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("change=diagnostic Largest directories"))
            .count(),
        1,
        "the duplicate result is ignored: {text}"
    );
    // The journal was read, so the restart runs, attached to the service's alert.
    assert!(has(&out, "command Recovery Linux.Recovery.RestartService on sshd argv=[\"systemctl\",\"restart\",\"sshd.service\"]"), "{text}");
    assert!(
        has(
            &out,
            "by=health: after diagnostic Linux.Diagnostic.ServiceJournal"
        ),
        "{text}"
    );
    assert_eq!(
        outcomes
            .iter()
            .map(|o| (o.status.as_str(), o.detail.starts_with("command ")))
            .collect::<Vec<_>>(),
        vec![("applied", true), ("refused", false)]
    );
    assert_eq!(
        outcomes[1].detail,
        "no task, diagnostic or recovery Linux.Task.Nothing"
    );
    // What is kept: each command with its result (the duplicate ignored), and the notes in
    // the state history.
    let store = Store::open(dir.path(), HEALTH_CFS).expect("reopen");
    let kept = command(&store, &task).expect("read").expect("kept");
    assert_eq!(
        kept.result.as_ref().map(|r| r.status.as_str()),
        Some("timed_out")
    );
    assert_eq!(kept.planned.instance_id, "web");
    let history = state_history(&store, "fs-root", Some(FREE), 100).expect("history");
    assert!(
        history.iter().any(|h| h
            .cause
            .starts_with("diagnostic Largest directories succeeded (exit 0)")
            && h.old == h.new),
        "{history:?}"
    );
    let task_history =
        state_history(&store, "web", Some("Linux.Task.TopProcesses"), 100).expect("history");
    assert_eq!(task_history.len(), 1, "{task_history:?}");
    assert!(task_history[0]
        .cause
        .starts_with("task Top processes by processor time timed_out"));
    // Commands go once their result is older than the retention.
    assert_eq!(groom_commands(&store, 0).expect("grooms"), 0);
    assert!(command(&store, &task).expect("read").is_some());
    assert!(groom_commands(&store, i64::MAX).expect("grooms") > 0);
    assert!(command(&store, &task).expect("read").is_none());
    drop(store);
    // And a restart anywhere gives the same.
    for at in [4, 9, inputs.len() - 3] {
        assert_eq!(
            run_inputs(&inputs, Some(at)).0,
            out,
            "restart before input {at}"
        );
    }
    EXTRA.with(|e| *e.borrow_mut() = None);
}

/// A storm: out-of-memory kills from 60 different sources within a minute (each its own
/// alert: suppression is on the source), then more after the rule is suspended, then one
/// after the suspension ends.
fn storm_inputs() -> Vec<Message> {
    let mut m = Vec::new();
    let mut offset = 0;
    let mut add = |topic: Topic, time: i64, msg: &dyn Fn(Topic, i64, i64) -> Message| {
        m.push(msg(topic, offset, time));
        offset += 1;
    };
    let web = instance("web", "Linux.Computer", None, &[("PrincipalName", HOST)]);
    add(Topic::Instances, 0, &|t, o, time| message(t, o, time, &web));
    let oom = |t: i64, source: String| EventBatch {
        id: String::new(),
        collector: HOST.into(),
        root_host: HOST.into(),
        events: vec![Event {
            time: t,
            channel: "journal".into(),
            source,
            event_id: 0,
            level: EventLevel::Error,
            message: "Out of memory: Killed process 1 (x)".into(),
            params: vec![],
            properties: BTreeMap::new(),
        }],
    };
    for i in 0..60i64 {
        let t = 1_000 + i * 500;
        let e = oom(t, format!("proc-{i}"));
        add(Topic::Events, t, &|tp, o, time| message(tp, o, time, &e));
    }
    // Ten minutes after the storm alert the rule runs again.
    let e = oom(700_000, "after".into());
    add(Topic::Events, 700_000, &|tp, o, time| {
        message(tp, o, time, &e)
    });
    m
}

#[test]
fn storm_containment() {
    let inputs = storm_inputs();
    let (out, _, _) = run_inputs(&inputs, None);
    let text = out.join("\n");
    let raised = out
        .iter()
        .filter(|l| l.contains("Out-of-memory kill on web-01 Critical state=0 change=raised"))
        .count();
    assert_eq!(
        raised, 51,
        "50 within the minute (the 51st suspends the rule), and one after the suspension: {text}"
    );
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("Alert storm: rule Linux.Rule.OutOfMemoryKill suspended"))
            .count(),
        1,
        "{text}"
    );
    // Suspended: proc-51 .. proc-59 raise nothing; after ten minutes, alerts again.
    assert_eq!(
        out.iter().filter(|l| l.contains(" alert ")).count(),
        52,
        "nothing while suspended: {text}"
    );
    assert!(has(&out, "Out-of-memory kill on web-01 Critical state=0 change=raised | The kernel killed a process to free memory: Out of memory: Killed process 1 (x)"));
    let last = out.last().expect("output");
    assert!(
        last.contains("change=raised"),
        "the rule alerts again after the suspension: {last}"
    );
    for at in [10, 40, 55, inputs.len() - 1] {
        assert_eq!(
            run_inputs(&inputs, Some(at)).0,
            out,
            "restart before input {at}"
        );
    }
}

/// The body of pack Tuning.Root (see [`extra_pack`]).
const ROOT_TIGHTER: &str = r#"
[[override]]
id = "Tuning.RootWarnsEarly"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 60.0
context = "Linux.Filesystem"
instance = "fs-root"
"#;

#[test]
fn an_override_changes_one_instance_only() {
    let inputs = inputs();
    EXTRA.with(|e| *e.borrow_mut() = Some(extra_pack("Tuning.Root", ROOT_TIGHTER)));
    let (tuned, _, _) = run_inputs(&inputs, None);
    let restarted = run_inputs(&inputs, Some(inputs.len() / 2)).0;
    EXTRA.with(|e| *e.borrow_mut() = None);
    let plain = run(None);
    // / at 50% free: warning with the override (below 60), healthy without; /var alike.
    assert!(
        has(
            &tuned,
            "fs-root Linux.Monitor.FilesystemFreeSpace Uninitialized->Warning"
        ),
        "{}",
        tuned.join("\n")
    );
    assert!(has(
        &plain,
        "fs-root Linux.Monitor.FilesystemFreeSpace Uninitialized->Healthy"
    ));
    let var = |out: &[String]| {
        out.iter()
            .filter(|l| l.contains(" fs-var Linux.Monitor.FilesystemFreeSpace "))
            .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(var(&tuned), var(&plain), "fs-var is not overridden");
    assert_eq!(restarted, tuned);
}

/// The body of pack Test.Rollups (see [`extra_pack`]).
const ROLLUPS: &str = r#"

[[dependency]]
id = "Test.FsBestOf"
target = "Linux.Computer"
parent = "System.Health.PerformanceState"
relationship = "Linux.ComputerHostsFilesystem"
member_monitor = "System.Health.AvailabilityState"
algorithm = "best_of"

[[dependency]]
id = "Test.FsPercent"
target = "Linux.Computer"
parent = "System.Health.PerformanceState"
relationship = "Linux.ComputerHostsFilesystem"
member_monitor = "System.Health.AvailabilityState"
algorithm = "percentage"
percentage = 60
"#;

/// Five filesystems going critical one after the other: WorstOf turns critical with the
/// first, Percentage(60) once more than 40% are critical (the third), BestOf with the last;
/// a member in maintenance is left out.
fn rollup_inputs() -> Vec<Message> {
    let mut m = Vec::new();
    let mut offset = 0;
    let mut add = |topic: Topic, time: i64, msg: &dyn Fn(Topic, i64, i64) -> Message| {
        m.push(msg(topic, offset, time));
        offset += 1;
    };
    let web = instance("web", "Linux.Computer", None, &[("PrincipalName", HOST)]);
    add(Topic::Instances, 0, &|t, o, time| message(t, o, time, &web));
    let mounts = ["/a", "/b", "/c", "/d", "/e"];
    for (i, mnt) in mounts.iter().enumerate() {
        let fs = instance(
            &format!("fs-{i}"),
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", mnt), ("Type", "xfs")],
        );
        add(Topic::Instances, 0, &|t, o, time| message(t, o, time, &fs));
    }
    let samples = |t: i64, critical: usize| {
        let s: Vec<(&str, &str, &str, f64)> = mounts
            .iter()
            .enumerate()
            .map(|(i, mnt)| {
                (
                    "Filesystem",
                    "% Free Space",
                    *mnt,
                    if i < critical { 2.0 } else { 50.0 },
                )
            })
            .collect();
        perf(t, &s)
    };
    for critical in 0..=5 {
        let t = 60_000 * (critical as i64 + 1);
        let b = samples(t, critical);
        add(Topic::Perf, t, &|tp, o, time| message(tp, o, time, &b));
    }
    // fs-4 (critical) in maintenance: four members left, all critical: unchanged; then
    // fs-0..3 recover: BestOf and Percentage healthy, fs-4 still left out.
    add(Topic::Operations, 500_000, &|t, o, time| {
        message(
            t,
            o,
            time,
            &op(OperationKind::MaintenanceStart, "fs-4", 500_000),
        )
    });
    let b = samples(560_000, 0);
    add(Topic::Perf, 560_000, &|tp, o, time| {
        message(tp, o, time, &b)
    });
    m
}

#[test]
fn rollup_algorithms() {
    EXTRA.with(|e| *e.borrow_mut() = Some(extra_pack("Test.Rollups", ROLLUPS)));
    let inputs = rollup_inputs();
    let (out, outcomes, _) = run_inputs(&inputs, None);
    let restarted = run_inputs(&inputs, Some(8)).0;
    EXTRA.with(|e| *e.borrow_mut() = None);
    let text = out.join("\n");
    assert!(outcomes.iter().all(|o| o.status == "applied"));
    // The order in which the three rollups turn critical follows the number of critical
    // filesystems: 1, 3 and 5.
    let fs_critical = |i: usize| {
        position(
            &out,
            &format!("fs-{i} Linux.Monitor.FilesystemFreeSpace Healthy->Critical"),
        )
    };
    let worst = position(
        &out,
        "web Linux.Computer.FilesystemAvailability Healthy->Critical",
    );
    let percent = position(&out, "web Test.FsPercent Healthy->Critical");
    let best = position(&out, "web Test.FsBestOf Healthy->Critical");
    assert!(fs_critical(0) < worst && worst < fs_critical(1), "{text}");
    assert!(
        fs_critical(2) < percent && percent < fs_critical(3),
        "{text}"
    );
    assert!(fs_critical(4) < best, "{text}");
    // Back to healthy with fs-4 in maintenance: it no longer counts.
    assert!(
        has(&out, "web Test.FsBestOf Critical->Healthy cause=rollup"),
        "{text}"
    );
    assert!(has(&out, "web Test.FsPercent Critical->Healthy"), "{text}");
    // WorstOf is healthy once fs-0..3 are: fs-4, still critical, is in maintenance.
    assert!(
        position(
            &out,
            "web Linux.Computer.FilesystemAvailability Critical->Healthy"
        ) > position(
            &out,
            "fs-3 Linux.Monitor.FilesystemFreeSpace Critical->Healthy"
        ),
        "{text}"
    );
    assert_eq!(restarted, out);
}

/// The packs change (to the same packs: the engine is rebuilt from the state) while a
/// checkpoint is sealed, at several points of the golden scenario: what the stage keeps in
/// memory and has not stored yet goes into the state it is rebuilt from, so the outputs are
/// those of the run without the change, and what is stored at the end is the same.
#[test]
fn a_pack_change_while_a_checkpoint_is_sealed_keeps_every_state() {
    let inputs = inputs();
    let (straight, _, straight_dir) = run_inputs(&inputs, None);
    let states = |dir: &std::path::Path| {
        let store = Store::open(dir, HEALTH_CFS).expect("open");
        ["web", "fs-root", "fs-var", "collector"]
            .iter()
            .map(|i| {
                (
                    i.to_string(),
                    healthstream_health::monitor_states(&store, i, PARTITIONS).expect("states"),
                )
            })
            .collect::<Vec<_>>()
    };
    let expected = states(straight_dir.path());
    for change_at in [4, inputs.len() / 3, inputs.len() / 2, inputs.len() - 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), HEALTH_CFS).expect("store");
        let first = packs().borrow().clone();
        let (tx, rx) = tokio::sync::watch::channel(first.clone());
        let mut stage = HealthStage::new(PARTITIONS, rx);
        let assigned = [Assignment {
            topic: Topic::Perf,
            partition: partition(),
            start: None,
        }];
        stage.on_assigned(&store, &assigned).expect("assigned");
        let mut out = Vec::new();
        let mut run = Checkpoints::new(store);
        for (i, m) in inputs.iter().enumerate() {
            if i == change_at {
                // A checkpoint is sealed, none of it written yet; then the packs change.
                run.seal(&mut stage, i);
                tx.send(std::sync::Arc::new(healthstream_packfeed::PackSnapshot {
                    store: first.store.clone(),
                    next_offset: first.next_offset + 1,
                }))
                .expect("packs sent");
            }
            for r in run.apply(&mut stage, m) {
                out.push(output_text(r).1);
            }
            run.step(&mut stage, 1);
        }
        let store = run.finish(&mut stage);
        drop((stage, store));
        assert_eq!(out, straight, "packs changed before input {change_at}");
        assert_eq!(
            states(dir.path()),
            expected,
            "stored states, packs changed before input {change_at}"
        );
    }
}
