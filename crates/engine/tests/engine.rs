//! The engine over the shipped packs: samples dispatched to the copies that read them,
//! overrides and groups applied per instance, one state change per monitor that changed,
//! propagated through the aggregates and up the hosting tree.

use std::collections::BTreeMap;
use std::path::Path;

use healthstream_engine::engine::{
    CauseKind, Engine, Instance, Maintenance, Sample, Saved, StateChange,
};
use healthstream_model::load::parse_pack;
use healthstream_model::pack::Health;
use healthstream_model::{shipped, Catalog};

/// An engine over the shipped packs and, when `extra` is not empty, a pack `Test` with those
/// elements (it references the shipped packs).
fn engine(extra: &str) -> Engine {
    let mut packs = shipped().expect("shipped");
    if !extra.is_empty() {
        let text = format!(
            "[pack]\nid = \"Test\"\nversion = \"1\"\n\
             [[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n\
             [[reference]]\npack = \"Healthstream.Linux\"\nversion = \"1.0\"\n{extra}"
        );
        packs.push(parse_pack(&text, Path::new("extra.toml")).expect("extra pack"));
    }
    Engine::new(Catalog::new(packs))
}

fn inst(
    id: &str,
    class: &str,
    host: Option<&str>,
    props: &[(&str, &str)],
    groups: &[&str],
) -> Instance {
    Instance {
        id: id.into(),
        root_host: "web-01".into(),
        class: class.into(),
        host_id: host.map(str::to_string),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        managed: true,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn free(mount: &str, value: f64, time: i64) -> Sample<'_> {
    Sample {
        object: "Filesystem",
        counter: "% Free Space",
        instance: mount,
        value,
        time,
    }
}

fn changes(out: &[StateChange]) -> Vec<(String, String, Health)> {
    out.iter()
        .map(|c| (c.instance_id.clone(), c.monitor_id.clone(), c.new))
        .collect()
}

/// The computer `web`, with `props`.
fn computer(props: &[(&str, &str)]) -> Instance {
    inst("web", "Linux.Computer", None, props, &[])
}

fn host(e: &mut Engine) {
    e.upsert(computer(&[("PrincipalName", "web-01")]), 0);
    e.upsert(root_fs(&[]), 0);
}

/// The computer's /var filesystem.
fn var_fs() -> Instance {
    inst(
        "var-fs",
        "Linux.Filesystem",
        Some("web"),
        &[("MountPoint", "/var"), ("Type", "xfs")],
        &[],
    )
}

/// The rules that fired since the last call.
fn fired(e: &mut Engine) -> Vec<String> {
    e.take_firings().into_iter().map(|f| f.rule).collect()
}

/// The computer's root filesystem, a member of `groups`.
fn root_fs(groups: &[&str]) -> Instance {
    inst(
        "root-fs",
        "Linux.Filesystem",
        Some("web"),
        &[("MountPoint", "/"), ("Type", "ext4")],
        groups,
    )
}

#[test]
fn a_sample_propagates_to_the_top_once() {
    let mut e = engine("");
    host(&mut e);
    let out = e.perf("web-01", &[free("/", 50.0, 1)]);
    let c = changes(&out);
    assert!(
        c.contains(&(
            "root-fs".into(),
            "Linux.Monitor.FilesystemFreeSpace".into(),
            Health::Healthy
        )),
        "{c:?}"
    );
    assert!(c.contains(&(
        "root-fs".into(),
        "System.Health.EntityState".into(),
        Health::Healthy
    )));
    assert!(c.contains(&(
        "web".into(),
        "Linux.Computer.FilesystemAvailability".into(),
        Health::Healthy
    )));
    assert_eq!(e.state("web", "System.Health.EntityState"), Health::Healthy);

    let out = e.perf("web-01", &[free("/", 4.0, 2)]);
    let c = changes(&out);
    let expected = [
        ("root-fs", "Linux.Monitor.FilesystemFreeSpace"),
        ("root-fs", "System.Health.AvailabilityState"),
        ("root-fs", "System.Health.EntityState"),
        ("web", "Linux.Computer.FilesystemAvailability"),
        ("web", "System.Health.AvailabilityState"),
        ("web", "System.Health.EntityState"),
    ];
    for (i, m) in expected {
        assert_eq!(
            c.iter().filter(|(ci, cm, _)| ci == i && cm == m).count(),
            1,
            "{i} {m} once: {c:?}"
        );
        assert!(
            c.contains(&(i.to_string(), m.to_string(), Health::Critical)),
            "{i} {m}"
        );
    }
    // Each change says what caused it: the sample, or the monitor below whose change
    // rolled up.
    let causes: Vec<_> = out
        .iter()
        .map(|c| {
            (
                c.instance_id.as_str(),
                c.monitor_id.as_str(),
                c.cause.as_str(),
            )
        })
        .collect();
    assert!(
        causes.contains(&(
            "root-fs",
            "Linux.Monitor.FilesystemFreeSpace",
            "Filesystem/% Free Space// = 4"
        )),
        "{causes:?}"
    );
    assert!(
        causes.contains(&(
            "web",
            "System.Health.EntityState",
            "Linux.Monitor.FilesystemFreeSpace: Filesystem/% Free Space// = 4"
        )),
        "{causes:?}"
    );
    // The same value again changes nothing.
    assert!(e.perf("web-01", &[free("/", 4.0, 3)]).is_empty());
    // A sample of another filesystem reaches nobody.
    assert!(e.perf("web-01", &[free("/var", 1.0, 4)]).is_empty());
}

#[test]
fn overrides_and_groups_shape_each_copy() {
    let tuning = r#"
[[override]]
id = "Tuning.RootWarnsLater"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 3.0
context = "Linux.Filesystem"
instance = "root-fs"
[[override]]
id = "Tuning.RootCriticalLater"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "critical"
value = 2.0
context = "Linux.Filesystem"
instance = "root-fs"
"#;
    let mut e = engine(tuning);
    host(&mut e);
    e.upsert(
        inst(
            "run-fs",
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", "/run"), ("Type", "tmpfs")],
            &["Linux.Group.VolatileFilesystems"],
        ),
        0,
    );
    let out = e.perf("web-01", &[free("/", 4.0, 1), free("/run", 0.5, 1)]);
    assert_eq!(
        e.state("root-fs", "Linux.Monitor.FilesystemFreeSpace"),
        Health::Healthy,
        "4% is fine with the override"
    );
    assert_eq!(
        e.state("run-fs", "Linux.Monitor.FilesystemFreeSpace"),
        Health::Uninitialized,
        "disabled for volatile filesystems"
    );
    assert!(!out
        .iter()
        .any(|c| c.instance_id == "run-fs" && c.monitor_id == "Linux.Monitor.FilesystemFreeSpace"));
    e.perf("web-01", &[free("/", 1.0, 2)]);
    assert_eq!(
        e.state("root-fs", "Linux.Monitor.FilesystemFreeSpace"),
        Health::Critical
    );
}

#[test]
fn uninitialized_children_leave_parents_uninitialized_and_removal_recomputes() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(var_fs(), 0);
    // No sample yet: the perf monitors are uninitialized, and so is their aggregate (the event
    // monitors start healthy, so availability and the entity health are healthy).
    assert_eq!(
        e.state("web", "System.Health.PerformanceState"),
        Health::Uninitialized
    );
    assert_eq!(e.state("web", "System.Health.EntityState"), Health::Healthy);
    e.perf("web-01", &[free("/var", 1.0, 1)]);
    assert_eq!(
        e.state("web", "Linux.Computer.FilesystemAvailability"),
        Health::Critical,
        "one critical, one uninitialized"
    );
    let out = e.remove("var-fs", 2);
    assert!(
        out.iter().any(|c| c.instance_id == "web"
            && c.monitor_id == "Linux.Computer.FilesystemAvailability"
            && c.new == Health::Uninitialized),
        "{out:?}"
    );
}

#[test]
fn services_and_operator_reset() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(
        inst(
            "sshd",
            "Linux.Service",
            Some("web"),
            &[("Name", "sshd.service")],
            &[],
        ),
        0,
    );
    let svc = |counter: &'static str, v: f64, t: i64| Sample {
        object: "Service",
        counter,
        instance: "sshd.service",
        value: v,
        time: t,
    };
    e.perf("web-01", &[svc("Running", 1.0, 1)]);
    assert_eq!(
        e.state("sshd", "Linux.Monitor.ServiceRunning"),
        Health::Healthy
    );
    e.perf("web-01", &[svc("Running", 0.0, 2)]);
    assert_eq!(
        e.state("sshd", "Linux.Monitor.ServiceRunning"),
        Health::Critical
    );
    assert_eq!(
        e.state("web", "Linux.Computer.ServiceAvailability"),
        Health::Critical,
        "percentage 80 of one service"
    );
    let out = e
        .reset("sshd", "Linux.Monitor.ServiceRunning", 3)
        .expect("ok");
    assert!(out
        .iter()
        .any(|c| c.monitor_id == "Linux.Monitor.ServiceRunning" && c.new == Health::Healthy));
    assert_eq!(
        e.state("web", "Linux.Computer.ServiceAvailability"),
        Health::Healthy
    );
}

#[test]
fn events_heartbeats_and_time_by_root_host() {
    use healthstream_model::expr::Value;
    let mut e = engine("");
    host(&mut e);
    e.upsert(
        inst("collector", "System.Collector", Some("web"), &[], &[]),
        0,
    );
    // A disk I/O error: the manual-reset monitor goes critical and stays so.
    let io = [
        ("Channel", Value::text("journal")),
        (
            "Message",
            Value::text("blk_update_request: I/O error, dev vda, sector 42"),
        ),
    ];
    let elsewhere = [
        ("Channel", Value::text("/var/log/app.log")),
        (
            "Message",
            Value::text("blk_update_request: I/O error, dev vda, sector 42"),
        ),
    ];
    assert!(
        e.event("web-01", &elsewhere, 9).is_empty(),
        "a line of another log does not reach the journal monitor"
    );
    let out = e.event("web-01", &io, 10);
    assert!(
        out.iter().any(|c| c.instance_id == "web"
            && c.monitor_id == "Linux.Monitor.DiskIoErrors"
            && c.new == Health::Critical),
        "{out:?}"
    );
    assert!(
        e.event("other-host", &io, 11).is_empty(),
        "another root host's event reaches nobody here"
    );
    // Heartbeats: healthy, then four missed minutes make the collector critical.
    let out = e.heartbeat("web-01", 0, 60);
    assert!(out
        .iter()
        .any(|c| c.monitor_id == "System.Collector.Heartbeat" && c.new == Health::Healthy));
    assert!(e.tick_roots(200_000).is_empty(), "nothing due yet");
    assert!(e.tick(200_000).is_empty());
    assert_eq!(
        e.tick_roots(240_000).into_iter().collect::<Vec<_>>(),
        vec!["web-01".to_string()],
        "the heartbeat monitor is due: its root host may change"
    );
    let out = e.tick(240_000);
    assert!(out.iter().any(|c| c.instance_id == "collector"
        && c.monitor_id == "System.Collector.Heartbeat"
        && c.new == Health::Critical));
    assert!(
        out.iter().any(|c| c.instance_id == "web"
            && c.monitor_id == "System.Computer.CollectorAvailability"
            && c.new == Health::Critical),
        "rolled up to the computer: {out:?}"
    );
}

#[test]
fn kept_state_restores_an_engine_exactly() {
    let feed = |e: &mut Engine, values: &[f64]| -> Vec<StateChange> {
        values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| e.perf("web-01", &[free("/", *v, i as i64)]))
            .collect()
    };
    let mut a = engine("");
    host(&mut a);
    feed(&mut a, &[50.0, 40.0]);
    let kept = a.take_kept();
    assert_eq!(kept.hosts.iter().collect::<Vec<_>>(), ["web-01"]);
    assert_eq!(
        kept.rollup_hosts.iter().collect::<Vec<_>>(),
        ["web-01"],
        "the rollups are kept too, with their host"
    );
    assert!(kept.monitors.is_empty(), "{kept:?}");
    // Another engine, from the instances and what was kept.
    let mut b = engine("");
    host(&mut b);
    let rollups = a.host_rollups("web-01");
    assert!(
        rollups
            .iter()
            .any(|r| r.instance == "web" && r.monitor == "System.Health.EntityState"),
        "{rollups:?}"
    );
    for r in &rollups {
        b.restore(r.instance, r.monitor, Saved::Rollup(r.health));
    }
    for u in a.host_units("web-01") {
        b.restore(u.instance, u.monitor, u.to_saved());
    }
    let next = [45.0, 3.0, 60.0];
    assert_eq!(changes(&feed(&mut a, &next)), changes(&feed(&mut b, &next)));
    assert_eq!(
        a.state("web", "System.Health.EntityState"),
        b.state("web", "System.Health.EntityState")
    );
}

fn maintenance(start: i64, until: Option<i64>) -> Maintenance {
    Maintenance {
        reason: "PlannedOther".into(),
        comment: "resize".into(),
        by: "ops".into(),
        start,
        until,
    }
}

const FREE_SPACE: &str = "Linux.Monitor.FilesystemFreeSpace";

#[test]
fn maintenance_holds_an_instance_and_recalculates_when_it_ends() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(var_fs(), 0);
    e.perf("web-01", &[free("/", 50.0, 1), free("/var", 50.0, 1)]);
    let out = e
        .start_maintenance("root-fs", maintenance(10, Some(100_000)))
        .expect("ok");
    // Only the flag of the instance (its entity health, unchanged, now in maintenance): a
    // member in maintenance is left out of the rollup and the other is healthy.
    assert_eq!(
        out.iter()
            .map(|c| (
                c.instance_id.as_str(),
                c.monitor_id.as_str(),
                c.old,
                c.new,
                c.kind
            ))
            .collect::<Vec<_>>(),
        vec![(
            "root-fs",
            "System.Health.EntityState",
            Health::Healthy,
            Health::Healthy,
            CauseKind::Maintenance
        )]
    );
    assert_eq!(
        e.in_maintenance("var-fs").map(|(on, _)| on),
        None,
        "a sibling is not covered"
    );
    assert_eq!(
        e.in_maintenance("root-fs").map(|(on, _)| on),
        Some("root-fs")
    );
    // The disk fills during the maintenance: no state change, no rollup.
    assert!(e.perf("web-01", &[free("/", 1.0, 20)]).is_empty());
    assert_eq!(e.state("root-fs", FREE_SPACE), Health::Healthy);
    assert_eq!(
        e.reset("root-fs", FREE_SPACE, 30).expect_err("refused"),
        "instance root-fs is in maintenance (set on root-fs): its monitors are stopped"
    );
    assert_eq!(
        e.end_maintenance("var-fs", 30).expect_err("refused"),
        "instance var-fs is not in maintenance"
    );
    assert_eq!(
        e.take_maintenance_changes(),
        vec![(
            "root-fs".to_string(),
            "web-01".to_string(),
            Some(maintenance(10, Some(100_000)))
        )]
    );
    // Its end comes with time: the held reading is applied and rolled up at once.
    assert!(e.tick(99_999).is_empty());
    let out = e.tick(100_000);
    let c = changes(&out);
    assert!(
        c.contains(&("root-fs".into(), FREE_SPACE.into(), Health::Critical)),
        "{c:?}"
    );
    assert!(c.contains(&(
        "web".into(),
        "Linux.Computer.FilesystemAvailability".into(),
        Health::Critical
    )));
    assert!(out
        .iter()
        .all(|c| c.kind == CauseKind::Maintenance && c.time == 100_000));
    assert!(e.in_maintenance("root-fs").is_none());
    assert_eq!(
        e.take_maintenance_changes(),
        vec![("root-fs".to_string(), "web-01".to_string(), None)]
    );
}

#[test]
fn maintenance_of_a_host_covers_its_tree_and_its_collector() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(
        inst("collector", "System.Collector", Some("web"), &[], &[]),
        0,
    );
    e.heartbeat("web-01", 0, 60);
    e.perf("web-01", &[free("/", 50.0, 1)]);
    e.start_maintenance("web", maintenance(1_000, None))
        .expect("ok");
    assert_eq!(e.in_maintenance("root-fs").map(|(on, _)| on), Some("web"));
    // A reboot: the disk is full, heartbeats stop; nothing changes and no alert can follow.
    assert!(e.perf("web-01", &[free("/", 1.0, 2_000)]).is_empty());
    assert!(e.tick(600_000).is_empty());
    assert!(!e.is_unavailable("web"));
    assert_eq!(
        e.end_maintenance("root-fs", 700_000).expect_err("refused"),
        "instance root-fs is in maintenance through web: end it there"
    );
    let out = e.end_maintenance("web", 700_000).expect("ok");
    assert!(
        changes(&out).contains(&("root-fs".into(), FREE_SPACE.into(), Health::Critical)),
        "{out:?}"
    );
    assert_eq!(
        e.state("collector", "System.Collector.Heartbeat"),
        Health::Healthy,
        "the collector gets a full heartbeat period after the maintenance"
    );
    assert!(e.tick(700_000 + 239_000).is_empty());
    let out = e.tick(700_000 + 240_000);
    assert!(out.iter().any(|c| c.instance_id == "collector"
        && c.monitor_id == "System.Collector.Heartbeat"
        && c.new == Health::Critical));
}

#[test]
fn timers_due_in_one_tick_change_each_rollup_above_them_once() {
    use healthstream_model::expr::Value;
    // A second timer-reset monitor of the computer, critical on the same journal line as the
    // shipped out-of-memory one (warning), reset after the same 30 minutes. Its id sorts
    // first: one at a time, the computer's availability would go critical -> warning ->
    // healthy.
    let mut e = engine(
        r#"
[[monitor]]
id = "A.Monitor.OomCritical"
name = "Out-of-memory kills (critical)"
target = "Linux.Computer"
parent = "System.Health.AvailabilityState"

[monitor.source]
type = "event"
log = "journal"

[monitor.detect]
type = "timer_reset"
unhealthy_when = 'Message contains "Out of memory: Killed process"'
after = "30m"
unhealthy = "critical"
"#,
    );
    host(&mut e);
    let oom = [
        ("Channel", Value::text("journal")),
        (
            "Message",
            Value::text("Out of memory: Killed process 4242 (java)"),
        ),
    ];
    let availability = "System.Health.AvailabilityState";
    let entity = "System.Health.EntityState";
    let out = e.event("web-01", &oom, 1_000);
    assert!(
        out.iter().any(|c| c.instance_id == "web"
            && c.monitor_id == availability
            && c.new == Health::Critical),
        "{out:?}"
    );
    assert_eq!(e.state("web", "Linux.Monitor.OutOfMemory"), Health::Warning);
    assert!(
        e.tick(1_000 + 30 * 60_000 - 1).is_empty(),
        "nothing due yet"
    );
    let out = e.tick(1_000 + 30 * 60_000);
    let got = changes(&out);
    for monitor in ["A.Monitor.OomCritical", "Linux.Monitor.OutOfMemory"] {
        assert!(
            got.contains(&("web".into(), monitor.into(), Health::Healthy)),
            "{monitor} reset: {got:?}"
        );
    }
    for monitor in [availability, entity] {
        let moves: Vec<_> = out
            .iter()
            .filter(|c| c.instance_id == "web" && c.monitor_id == monitor)
            .map(|c| (c.old, c.new, c.kind))
            .collect();
        assert_eq!(
            moves,
            vec![(Health::Critical, Health::Healthy, CauseKind::Rollup)],
            "{monitor} changes once, straight to where the tick leaves it: {got:?}"
        );
    }
    // The rollups come after both timers that drove them.
    let place = |m: &str| {
        out.iter()
            .position(|c| c.instance_id == "web" && c.monitor_id == m)
            .expect("changed")
    };
    assert!(place("Linux.Monitor.OutOfMemory") < place(availability));
    assert_eq!(e.state("web", entity), Health::Healthy);
}

#[test]
fn a_silent_collector_makes_its_tree_unavailable_until_heartbeats_resume() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(
        inst("collector", "System.Collector", Some("web"), &[], &[]),
        0,
    );
    e.heartbeat("web-01", 0, 60);
    assert!(!e.is_unavailable("root-fs"));
    let out = e.tick(240_000);
    assert!(e.is_unavailable("root-fs") && e.is_unavailable("web"));
    assert!(out.iter().any(|c| c.instance_id == "web"
        && c.monitor_id == "System.Computer.CollectorAvailability"
        && c.new == Health::Critical));
    let out = e.heartbeat("web-01", 250_000, 60);
    assert!(!e.is_unavailable("root-fs"));
    assert!(
        out.iter().any(|c| c.instance_id == "web"
            && c.monitor_id == "System.Computer.CollectorAvailability"
            && c.new == Health::Healthy
            && c.kind == CauseKind::Heartbeat),
        "{out:?}"
    );
}

#[test]
fn a_sample_reaches_only_the_copies_of_its_own_host() {
    let mut e = engine("");
    host(&mut e);
    let other = |id: &str, class: &str, host: Option<&str>, props: &[(&str, &str)]| Instance {
        root_host: "db-01".into(),
        ..inst(id, class, host, props, &[])
    };
    e.upsert(
        other("db", "Linux.Computer", None, &[("PrincipalName", "db-01")]),
        0,
    );
    e.upsert(
        other(
            "db-root-fs",
            "Linux.Filesystem",
            Some("db"),
            &[("MountPoint", "/"), ("Type", "ext4")],
        ),
        0,
    );
    let out = e.perf("db-01", &[free("/", 4.0, 1)]);
    assert!(
        out.iter().all(|c| c.instance_id.starts_with("db")),
        "{out:?}"
    );
    assert_eq!(e.state("db-root-fs", FREE_SPACE), Health::Critical);
    assert_eq!(
        e.state("root-fs", FREE_SPACE),
        Health::Uninitialized,
        "web-01's / is another filesystem"
    );
    assert!(e.perf("nobody", &[free("/", 4.0, 2)]).is_empty());
}

#[test]
fn diagnostics_recoveries_and_tasks_resolve_their_commands() {
    use healthstream_engine::commands::CommandKind;
    let enable_restart = r#"
[[override]]
id = "Tuning.RestartSshd"
workflow = "Linux.Recovery.RestartService"
parameter = "enabled"
value = true
context = "Linux.Service"
instance = "sshd"
"#;
    for (extra, recovers) in [("", false), (enable_restart, true)] {
        let mut e = engine(extra);
        host(&mut e);
        e.upsert(
            inst(
                "sshd",
                "Linux.Service",
                Some("web"),
                &[("Name", "sshd.service")],
                &[],
            ),
            0,
        );
        // The disk fills: its diagnostic runs on the filesystem's mount point.
        let on_disk = e.commands_on_state("root-fs", FREE_SPACE, Health::Critical);
        assert_eq!(on_disk.len(), 1);
        assert_eq!(on_disk[0].kind, CommandKind::Diagnostic);
        assert_eq!(
            on_disk[0].workflow_id,
            "Linux.Diagnostic.LargestDirectories"
        );
        assert_eq!(on_disk[0].root_host, "web-01");
        assert_eq!(on_disk[0].argv, ["du", "-x", "-h", "--max-depth=2", "/"]);
        assert!(e
            .commands_on_state("root-fs", FREE_SPACE, Health::Warning)
            .is_empty());
        // The service stops: its journal first; the restart only where it is enabled.
        let on_service =
            e.commands_on_state("sshd", "Linux.Monitor.ServiceRunning", Health::Critical);
        assert_eq!(
            on_service
                .iter()
                .map(|c| c.workflow_id.as_str())
                .collect::<Vec<_>>(),
            ["Linux.Diagnostic.ServiceJournal"]
        );
        assert_eq!(
            on_service[0].argv,
            ["journalctl", "--no-pager", "-n", "50", "-u", "sshd.service"]
        );
        let after = e.commands_after("sshd", "Linux.Diagnostic.ServiceJournal");
        assert_eq!(after.len(), usize::from(recovers), "{after:?}");
        if recovers {
            assert_eq!(after[0].argv, ["systemctl", "restart", "sshd.service"]);
            assert!(after[0].reset_monitor);
            assert_eq!(
                after[0].monitor_id.as_deref(),
                Some("Linux.Monitor.ServiceRunning")
            );
        }
    }
    let mut e = engine("");
    host(&mut e);
    let task = e
        .command_on_demand("Linux.Task.TopProcesses", "web")
        .expect("a computer task");
    assert_eq!((task.kind, task.timeout_seconds), (CommandKind::Task, 30));
    assert_eq!(
        e.command_on_demand("Linux.Task.TopProcesses", "root-fs")
            .expect_err("not a computer"),
        "task Linux.Task.TopProcesses targets Linux.Computer, and root-fs is a Linux.Filesystem"
    );
    assert_eq!(
        e.command_on_demand("Linux.Task.Nothing", "web")
            .expect_err("unknown"),
        "no task, diagnostic or recovery Linux.Task.Nothing"
    );
    assert!(e
        .command_on_demand("Linux.Diagnostic.LargestDirectories", "root-fs")
        .is_ok());
    // The arguments are parsed once; each instance resolves them to its own.
    e.upsert(var_fs(), 0);
    for (fs, mount) in [("var-fs", "/var"), ("root-fs", "/"), ("var-fs", "/var")] {
        let planned = e
            .command_on_demand("Linux.Diagnostic.LargestDirectories", fs)
            .expect("a filesystem diagnostic");
        assert_eq!(planned.argv, ["du", "-x", "-h", "--max-depth=2", mount]);
    }
}

#[test]
fn rules_are_reached_through_their_indexed_filters_only_when_they_can_match() {
    use healthstream_model::expr::Value;
    let rules = r#"
[[rule]]
id = "Indexed.LogonFailure"
target = "Linux.Computer"
[rule.source]
type = "event"
log = "journal"
filter = 'EventId == 4625 and Source == "sshd"'
[[rule.action]]
type = "alert"
name = "Logon failure"
description = "$Data/Message$"
severity = "warning"

[[rule]]
id = "Indexed.OneOrTwo"
target = "Linux.Computer"
[rule.source]
type = "event"
log = "journal"
[[rule.condition]]
type = "filter"
expression = 'EventId == 1 or EventId == 2'
[[rule.action]]
type = "alert"
name = "One or two"
description = ""
severity = "warning"

[[rule]]
id = "Indexed.RootLow"
target = "Linux.Computer"
[rule.source]
type = "perf"
object = "Filesystem"
counter = "% Free Space"
interval = "60s"
[[rule.condition]]
type = "filter"
expression = 'Instance == "/"'
[[rule.condition]]
type = "threshold"
threshold = 10.0
direction = "below"
[[rule.action]]
type = "alert"
name = "Root low"
description = ""
severity = "warning"
"#;
    let mut e = engine(rules);
    host(&mut e);
    let event = |id: f64, source: &'static str| {
        vec![
            ("Channel", Value::text("journal")),
            ("EventId", Value::Number(id)),
            ("Source", Value::text(source)),
            ("Message", Value::text("nope")),
        ]
    };
    e.event("web-01", &event(4625.0, "sshd"), 1);
    assert_eq!(fired(&mut e), ["Indexed.LogonFailure"]);
    e.event("web-01", &event(4625.0, "login"), 2);
    e.event("web-01", &event(4624.0, "sshd"), 3);
    assert!(fired(&mut e).is_empty());
    e.event("web-01", &event(2.0, "x"), 4);
    assert_eq!(fired(&mut e), ["Indexed.OneOrTwo"]);
    e.perf(
        "web-01",
        &[free("/", 4.0, 5), free("/var", 4.0, 5), free("/", 40.0, 6)],
    );
    assert_eq!(fired(&mut e), ["Indexed.RootLow"]);
}

#[test]
fn only_what_changed_is_kept_again() {
    // Without the fill-rate monitor, whose window changes with every sample.
    let mut e = engine(
        r#"
[[override]]
id = "Test.NoFillRate"
workflow = "Linux.Monitor.FilesystemFillRate"
parameter = "enabled"
value = false
context = "Linux.Filesystem"
"#,
    );
    host(&mut e);
    e.perf("web-01", &[free("/", 50.0, 1)]);
    let first = e.take_kept();
    assert!(first.hosts.contains("web-01"), "{first:?}");
    let units: Vec<(&str, &str, Health)> = e
        .host_units("web-01")
        .iter()
        .map(|u| (u.instance, u.monitor, u.health))
        .collect();
    assert_eq!(
        units,
        [("root-fs", FREE_SPACE, Health::Healthy)],
        "only copies out of their initial state are kept"
    );
    // The same state again: the threshold keeps nothing new, nothing is kept again.
    e.perf("web-01", &[free("/", 49.0, 2)]);
    let again = e.take_kept();
    assert!(
        again.hosts.is_empty() && again.monitors.is_empty(),
        "{again:?}"
    );
    // A change is kept, with its rollups.
    e.perf("web-01", &[free("/", 3.0, 3)]);
    let changed = e.take_kept();
    assert!(changed.hosts.contains("web-01"), "{changed:?}");
    assert!(changed.rollup_hosts.contains("web-01"), "{changed:?}");
    let rollups: Vec<(&str, &str, Health)> = e
        .host_rollups("web-01")
        .iter()
        .map(|r| (r.instance, r.monitor, r.health))
        .collect();
    for (i, m) in [
        ("root-fs", "System.Health.EntityState"),
        ("web", "System.Health.EntityState"),
    ] {
        assert!(
            rollups.contains(&(i, m, Health::Critical)),
            "{i} {m}: {rollups:?}"
        );
    }
    assert_eq!(e.host_units("web-01")[0].health, Health::Critical);
}

/// A caller that keeps the marked hosts until it writes them sets their generation: a
/// host's perf batches mark it once per generation (what changed is still kept), and again
/// in the next one.
#[test]
fn a_host_is_marked_once_per_generation() {
    let mut e = engine("");
    host(&mut e);
    e.set_mark_generation(1);
    e.perf("web-01", &[free("/", 50.0, 1)]);
    assert!(e.take_kept().hosts.contains("web-01"));
    e.perf("web-01", &[free("/", 49.0, 2)]);
    let kept = e.take_kept();
    assert!(
        kept.hosts.is_empty(),
        "marked in this generation already: {kept:?}"
    );
    assert_eq!(
        free_space_kept(&mut e, "web-01"),
        [("root-fs".to_string(), Health::Healthy)]
    );
    // A state change changes rollups above it: kept with their host, in their own value.
    e.perf("web-01", &[free("/", 3.0, 3)]);
    let kept = e.take_kept();
    assert!(kept.hosts.is_empty(), "{kept:?}");
    assert!(
        kept.rollup_hosts.contains("web-01"),
        "its rollups changed: {kept:?}"
    );
    assert_eq!(
        free_space_kept(&mut e, "web-01"),
        [("root-fs".to_string(), Health::Critical)]
    );
    e.set_mark_generation(2);
    e.perf("web-01", &[free("/", 50.0, 4)]);
    let kept = e.take_kept();
    assert!(kept.hosts.contains("web-01"), "a new generation: {kept:?}");
}

/// What is kept of a root host follows its instances: one discovered after the host's
/// states were listed is listed with them, in instance order, once it has something to keep.
#[test]
fn an_instance_discovered_later_is_kept_with_its_host() {
    let mut e = engine("");
    host(&mut e);
    e.perf("web-01", &[free("/", 50.0, 1)]);
    let _ = e.take_kept();
    let listed = |e: &mut Engine| free_space_kept(e, "web-01");
    assert_eq!(listed(&mut e), [("root-fs".into(), Health::Healthy)]);
    e.upsert(
        inst(
            "data-fs",
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", "/data"), ("Type", "xfs")],
            &[],
        ),
        2,
    );
    assert_eq!(
        listed(&mut e),
        [("root-fs".into(), Health::Healthy)],
        "a new copy has nothing to keep yet"
    );
    e.perf("web-01", &[free("/data", 2.0, 3)]);
    assert!(e.take_kept().hosts.contains("web-01"));
    assert_eq!(
        listed(&mut e),
        [
            ("data-fs".into(), Health::Critical),
            ("root-fs".into(), Health::Healthy)
        ]
    );
}

/// (instance, health) of the free-space copies kept for a root host.
fn free_space_kept(e: &mut Engine, root: &str) -> Vec<(String, Health)> {
    e.host_units(root)
        .iter()
        .filter(|u| u.monitor == FREE_SPACE)
        .map(|u| (u.instance.to_string(), u.health))
        .collect()
}

/// An instance reported under another root host is kept with that host, no longer with
/// the one it left.
#[test]
fn an_instance_moved_to_another_root_host_is_kept_with_it() {
    let mut e = engine("");
    host(&mut e);
    e.perf("web-01", &[free("/", 50.0, 1)]);
    let _ = e.take_kept();
    assert_eq!(
        free_space_kept(&mut e, "web-01"),
        [("root-fs".into(), Health::Healthy)]
    );
    let mut moved = root_fs(&[]);
    moved.root_host = "web-02".into();
    e.upsert(moved, 2);
    let kept = e.take_kept();
    assert!(
        kept.hosts.contains("web-01") && kept.hosts.contains("web-02"),
        "{kept:?}"
    );
    e.perf("web-02", &[free("/", 3.0, 3)]);
    let _ = e.take_kept();
    assert_eq!(free_space_kept(&mut e, "web-01"), []);
    assert_eq!(
        free_space_kept(&mut e, "web-02"),
        [("root-fs".into(), Health::Critical)]
    );
}

#[test]
fn a_window_monitor_is_kept_with_its_latest_window() {
    use healthstream_engine::detect::Memory;
    fn fill_rate(e: &mut Engine) -> Option<Vec<f64>> {
        let kept = e.take_kept();
        if !kept.hosts.contains("web-01") {
            return None;
        }
        e.host_units("web-01")
            .into_iter()
            .find(|u| u.instance == "root-fs" && u.monitor == "Linux.Monitor.FilesystemFillRate")
            .map(|u| match u.memory {
                Memory::Window(w) => w.iter().copied().collect(),
                other => panic!("a window monitor keeps its window: {other:?}"),
            })
    }
    let mut e = engine("");
    host(&mut e);
    // Two samples in one call: both are kept.
    e.perf("web-01", &[free("/", 50.0, 1), free("/", 48.0, 2)]);
    assert_eq!(fill_rate(&mut e), Some(vec![50.0, 48.0]));
    assert_eq!(fill_rate(&mut e), None, "nothing new: nothing taken");
    // A window changes with every sample: kept again, each time.
    e.perf("web-01", &[free("/", 47.0, 3)]);
    assert_eq!(fill_rate(&mut e), Some(vec![50.0, 48.0, 47.0]));
    // A sample, then its instance is discovered again before the change is taken: the
    // copy is replaced in place and the change is still taken.
    e.perf("web-01", &[free("/", 46.0, 4)]);
    host(&mut e);
    assert_eq!(fill_rate(&mut e), Some(vec![50.0, 48.0, 47.0, 46.0]));
    // A copy removed before its change is taken: its host is kept again, without it.
    e.perf("web-01", &[free("/", 45.0, 5)]);
    e.remove("root-fs", 6);
    let kept = e.take_kept();
    assert!(kept.hosts.contains("web-01"), "{kept:?}");
    assert!(
        e.host_units("web-01")
            .iter()
            .all(|u| u.instance != "root-fs"),
        "{:?}",
        e.host_units("web-01")
    );
    assert!(kept.rollup_hosts.contains("web-01"), "{kept:?}");
    assert!(
        e.host_rollups("web-01")
            .iter()
            .all(|r| r.instance != "root-fs"),
        "its rollups go with it"
    );
    // Its last instance removed, a root host keeps nothing.
    e.remove("web", 7);
    let kept = e.take_kept();
    assert!(
        kept.hosts.contains("web-01") && kept.rollup_hosts.contains("web-01"),
        "{kept:?}"
    );
    assert!(e.host_units("web-01").is_empty());
    assert!(e.host_rollups("web-01").is_empty());
}

/// A copy whose configuration changes starts again: its root host's kept states are
/// written again, without what the old configuration kept.
#[test]
fn a_copy_made_again_by_an_override_is_kept_again() {
    let mut e = engine(
        r#"
[[group]]
id = "Test.Scratch"
name = "Scratch filesystems"

[[override]]
id = "Test.LowerThreshold"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "critical"
value = 1.0
context = "Test.Scratch"
"#,
    );
    host(&mut e);
    e.perf("web-01", &[free("/", 4.0, 1)]);
    let _ = e.take_kept();
    let free_space = |e: &mut Engine| {
        e.host_units("web-01")
            .iter()
            .find(|u| u.monitor == FREE_SPACE)
            .map(|u| u.health)
    };
    assert_eq!(free_space(&mut e), Some(Health::Critical));
    // The filesystem joins the group: its copy is made again with the lower threshold.
    e.upsert(root_fs(&["Test.Scratch"]), 2);
    assert!(e.take_kept().hosts.contains("web-01"));
    assert_eq!(
        free_space(&mut e),
        None,
        "the new copy has nothing to keep yet"
    );
    e.perf("web-01", &[free("/", 4.0, 3)]);
    assert!(e.take_kept().hosts.contains("web-01"));
    assert_eq!(free_space(&mut e), Some(Health::Warning));
}

/// A container hosted on a computer, containing members of other hosts: its dependency
/// monitor is computed from what the members report, in the same engine as the rest of its
/// health; members in maintenance count as the monitor says; a container in maintenance
/// keeps its states and recalculates when it ends.
#[test]
fn reported_members_roll_up_with_the_containers_own_health() {
    use healthstream_engine::engine::ExternalMember;
    let mut e = engine(
        r#"
[[class]]
id = "T.Farm"
base = "System.LocalApplication"
host = "Linux.Computer"

[[relationship]]
id = "T.FarmHostedOnComputer"
kind = "hosting"
source = "Linux.Computer"
target = "T.Farm"

[[relationship]]
id = "T.FarmContainsComputer"
kind = "containment"
source = "T.Farm"
target = "Linux.Computer"

[[dependency]]
id = "T.Farm.Nodes"
target = "T.Farm"
parent = "System.Health.AvailabilityState"
relationship = "T.FarmContainsComputer"
member_monitor = "System.Health.EntityState"
algorithm = "worst_of"
member_in_maintenance = "healthy"
"#,
    );
    host(&mut e);
    e.upsert(inst("farm", "T.Farm", Some("web"), &[], &[]), 0);
    let member = |h: Health, in_maintenance: bool| ExternalMember {
        class: "Linux.Computer".into(),
        states: BTreeMap::from([("System.Health.EntityState".to_string(), h)]),
        in_maintenance,
        unavailable: false,
    };
    // A member's report: the farm's state changes (instance, monitor, new state).
    let report = |e: &mut Engine, node: &str, known: Option<ExternalMember>, time: i64| {
        changes(&e.member_changed("farm", "T.FarmContainsComputer", node, known, time))
    };
    let nodes = |h: Health| ("farm".to_string(), "T.Farm.Nodes".to_string(), h);
    let c = report(&mut e, "node-1", Some(member(Health::Healthy, false)), 10);
    assert!(c.contains(&nodes(Health::Healthy)), "{c:?}");
    let c = report(&mut e, "node-2", Some(member(Health::Critical, false)), 20);
    assert!(c.contains(&nodes(Health::Critical)), "{c:?}");
    let entity = (
        "farm".to_string(),
        "System.Health.EntityState".to_string(),
        Health::Critical,
    );
    assert!(c.contains(&entity), "{c:?}");
    // The same report again changes nothing.
    assert!(report(&mut e, "node-2", Some(member(Health::Critical, false)), 25).is_empty());
    // node-2 in maintenance counts as healthy.
    let c = report(&mut e, "node-2", Some(member(Health::Critical, true)), 30);
    assert!(c.contains(&nodes(Health::Healthy)), "{c:?}");
    // The farm in maintenance: what its members report changes nothing until it ends.
    e.start_maintenance("farm", maintenance(40, None))
        .expect("maintenance");
    let c = report(&mut e, "node-1", Some(member(Health::Critical, false)), 50);
    assert!(
        !c.iter().any(|(i, m, _)| i == "farm" && m == "T.Farm.Nodes"),
        "{c:?}"
    );
    assert_eq!(e.state("farm", "T.Farm.Nodes"), Health::Healthy);
    let c = changes(&e.end_maintenance("farm", 60).expect("ends"));
    assert!(c.contains(&nodes(Health::Critical)), "{c:?}");
    // A member leaves: only node-2 (in maintenance, healthy) counts.
    let c = report(&mut e, "node-1", None, 70);
    assert!(c.contains(&nodes(Health::Healthy)), "{c:?}");
}

/// A rule copy built again (its instance changed) keeps what it counted: the fifth
/// segfault within ten minutes alerts although the computer changed after the third.
#[test]
fn a_rule_copy_rebuilt_keeps_its_window() {
    use healthstream_model::expr::Value;
    let mut e = engine("");
    host(&mut e);
    let segfault = [
        ("Channel", Value::text("journal")),
        ("EventId", Value::Number(0.0)),
        ("Source", Value::text("kernel")),
        ("Message", Value::text("app[77]: segfault at 0 ip 00007f")),
    ];
    for t in 1..=3 {
        e.event("web-01", &segfault, t * 1_000);
    }
    assert!(fired(&mut e).is_empty());
    e.upsert(
        computer(&[("PrincipalName", "web-01"), ("Kernel", "6.1")]),
        3_500,
    );
    e.event("web-01", &segfault, 4_000);
    assert!(fired(&mut e).is_empty(), "four so far");
    e.event("web-01", &segfault, 5_000);
    assert_eq!(fired(&mut e), ["Linux.Rule.SegfaultStorm"]);
}

/// A host's batches are matched place by place with its last one: a copy made or removed
/// between two batches of the same layout, samples in another order, names that differ
/// only in where one ends, and batches of other lengths, still reach exactly the copies
/// that read them.
#[test]
fn a_batch_like_the_last_one_reaches_the_copies_of_now() {
    const FREE: &str = "Linux.Monitor.FilesystemFreeSpace";
    let free_state = |out: &[StateChange], id: &str| -> Option<Health> {
        out.iter()
            .find(|c| c.instance_id == id && c.monitor_id == FREE)
            .map(|c| c.new)
    };
    let mut e = engine("");
    host(&mut e);
    let out = e.perf("web-01", &[free("/", 50.0, 1), free("/var", 50.0, 1)]);
    assert_eq!(free_state(&out, "root-fs"), Some(Health::Healthy));
    assert_eq!(free_state(&out, "var-fs"), None, "no /var filesystem yet");
    // /var is discovered: the same layout reaches its copy.
    e.upsert(var_fs(), 2);
    let out = e.perf("web-01", &[free("/", 50.0, 3), free("/var", 4.0, 3)]);
    assert_eq!(
        free_state(&out, "var-fs"),
        Some(Health::Critical),
        "{out:?}"
    );
    assert_eq!(free_state(&out, "root-fs"), None, "unchanged");
    // The same samples in the other order.
    let out = e.perf("web-01", &[free("/var", 50.0, 4), free("/", 4.0, 4)]);
    assert_eq!(free_state(&out, "var-fs"), Some(Health::Healthy), "{out:?}");
    assert_eq!(
        free_state(&out, "root-fs"),
        Some(Health::Critical),
        "{out:?}"
    );
    // /var goes: the same layout reaches nobody there any more.
    e.remove("var-fs", 5);
    let out = e.perf("web-01", &[free("/var", 4.0, 6), free("/", 50.0, 6)]);
    assert_eq!(free_state(&out, "var-fs"), None, "{out:?}");
    assert_eq!(
        free_state(&out, "root-fs"),
        Some(Health::Healthy),
        "{out:?}"
    );
    assert_eq!(e.state("var-fs", FREE), Health::Uninitialized);
    // The same letters with a name ending elsewhere are other names: they reach nobody
    // (the root's copy stays healthy); a shorter batch, then a longer one, still reach
    // the copies of each place.
    let shifted = Sample {
        object: "Filesystem%",
        counter: " Free Space",
        ..free("/", 4.0, 7)
    };
    let out = e.perf("web-01", &[shifted, free("/var", 4.0, 7)]);
    assert!(out.is_empty(), "{out:?}");
    let out = e.perf("web-01", &[free("/", 4.0, 8)]);
    assert_eq!(
        free_state(&out, "root-fs"),
        Some(Health::Critical),
        "{out:?}"
    );
    let out = e.perf("web-01", &[free("/", 4.0, 9), free("/", 50.0, 9)]);
    assert_eq!(
        free_state(&out, "root-fs"),
        Some(Health::Healthy),
        "{out:?}"
    );
}

/// An aggregate and a unit monitor raise the alert their pack defines for them, with
/// `$Target$` filled and overrides applied, filled again when a host's properties change;
/// an aggregate without alert settings, and an id no pack defines, raise none. (A
/// dependency monitor's alert: the health service's container tests.)
#[test]
fn alert_settings_of_every_kind_of_monitor() {
    let mut e = engine(
        r#"
[[aggregate]]
id = "Test.Disks"
name = "Disks"
target = "Linux.Computer"
algorithm = "worst_of"

[aggregate.alert]
name = 'Disks of $Target/Property[Name="PrincipalName"]$'
on = "warning"
priority = "high"

[[aggregate]]
id = "Test.Quiet"
name = "Quiet"
target = "Linux.Computer"
algorithm = "worst_of"

[[override]]
id = "Test.QuietDisks"
workflow = "Test.Disks"
parameter = "auto_resolve"
value = false
context = "Linux.Computer"
"#,
    );
    host(&mut e);
    let disks = e
        .monitor_alert("web", "Test.Disks")
        .expect("the aggregate's alert");
    assert_eq!(disks.name, "Disks of web-01");
    assert_eq!(disks.on, Health::Warning);
    assert_eq!(disks.priority, healthstream_model::pack::Priority::High);
    assert!(!disks.auto_resolve, "the override applies");
    assert!(e.monitor_alert("web", "Test.Quiet").is_none());
    assert!(e.monitor_alert("web", "Test.Nothing").is_none());
    let fs = e
        .monitor_alert("root-fs", "Linux.Monitor.FilesystemFreeSpace")
        .expect("the unit monitor's alert");
    assert_eq!(fs.name, "Filesystem / on web-01 is running out of space");
    // The host is renamed: what was resolved before is not kept, for it or what it hosts.
    e.upsert(computer(&[("PrincipalName", "web-02")]), 1);
    let disks = e.monitor_alert("web", "Test.Disks").expect("still raised");
    assert_eq!(disks.name, "Disks of web-02");
    let fs = e
        .monitor_alert("root-fs", "Linux.Monitor.FilesystemFreeSpace")
        .expect("still raised");
    assert_eq!(fs.name, "Filesystem / on web-02 is running out of space");
}

/// One batch whose samples turn a filesystem's free space warning and another's critical,
/// and both fill rates warning: every unit monitor's change is there, and each rollup above
/// them changes once, straight to where the batch leaves it (not through the states one
/// monitor alone would have given it first: the host's entity health does not stop at
/// warning on its way to critical).
#[test]
fn a_batch_changes_each_rollup_above_it_once() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(var_fs(), 0);
    // The fill rate compares a sample with the one six samples before.
    for t in 0..7 {
        e.perf("web-01", &[free("/", 50.0, t), free("/var", 50.0, t)]);
    }
    let entity = "System.Health.EntityState";
    assert_eq!(
        e.state("root-fs", "Linux.Monitor.FilesystemFillRate"),
        Health::Healthy
    );
    assert_eq!(e.state("web", entity), Health::Healthy);
    let out = e.perf("web-01", &[free("/", 8.0, 7), free("/var", 4.0, 7)]);
    let got = changes(&out);
    for (fs, worst) in [("root-fs", Health::Warning), ("var-fs", Health::Critical)] {
        for (monitor, state) in [
            (FREE_SPACE, worst),
            ("Linux.Monitor.FilesystemFillRate", Health::Warning),
            ("System.Health.AvailabilityState", worst),
            ("System.Health.PerformanceState", Health::Warning),
            (entity, worst),
        ] {
            assert!(
                got.contains(&(fs.to_string(), monitor.to_string(), state)),
                "{fs} {monitor} {state:?} in {got:?}"
            );
        }
    }
    for monitor in ["Linux.Computer.FilesystemAvailability", entity] {
        assert!(
            got.contains(&("web".into(), monitor.into(), Health::Critical)),
            "{monitor} in {got:?}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &out {
        assert!(
            seen.insert((c.instance_id.clone(), c.monitor_id.clone())),
            "{} {} changed twice in one batch: {got:?}",
            c.instance_id,
            c.monitor_id
        );
    }
    // Each rollup's one change starts where the batch found it.
    for (i, m) in [("web", entity), ("var-fs", entity)] {
        let change = out
            .iter()
            .find(|c| c.instance_id == i && c.monitor_id == m)
            .expect("changed");
        assert_eq!(change.old, Health::Healthy, "{i} {m}");
    }
    // The rollups come after the unit monitors that drove them, deeper instances first.
    let place = |i: &str, m: &str| {
        out.iter()
            .position(|c| c.instance_id == i && c.monitor_id == m)
            .expect("changed")
    };
    assert!(place("var-fs", FREE_SPACE) < place("root-fs", entity));
    assert!(place("root-fs", entity) < place("web", entity));
    assert_eq!(e.state("web", entity), Health::Critical);
}

#[test]
fn knowledge_is_the_summary_then_causes_and_resolutions() {
    let e = engine("");
    assert_eq!(
        e.knowledge("Linux.Monitor.CpuUtilization"),
        "Processor time stays above the threshold for several samples in a row.\n\
         Causes:\n- A runaway process.\n- The host is undersized for its workload.\n\
         Resolutions:\n- Run the top-processes task to see what uses the processor."
    );
    assert!(e
        .knowledge("Linux.Rule.OutOfMemoryKill")
        .starts_with("The kernel's out-of-memory killer ended a process.\nCauses:\n- "));
    assert_eq!(e.knowledge("No.Such.Monitor"), "");
}

#[test]
fn each_rollup_names_the_change_that_drove_it_when_several_reach_it_at_once() {
    let mut e = engine("");
    host(&mut e);
    e.upsert(
        inst(
            "sshd",
            "Linux.Service",
            Some("web"),
            &[("Name", "sshd.service")],
            &[],
        ),
        0,
    );
    let sample = |object, counter, instance, value, time| Sample {
        object,
        counter,
        instance,
        value,
        time,
    };
    let memory = |t| sample("Memory", "% Available Memory", "", 50.0, t);
    let running = |v, t| sample("Service", "Running", "sshd.service", v, t);
    // Each (instance, monitor) changed once, with that cause.
    fn assert_causes(out: &[StateChange], expected: &[(&str, &str, &str)]) {
        for (i, m, cause) in expected {
            let c: Vec<_> = out
                .iter()
                .filter(|c| c.instance_id == *i && c.monitor_id == *m)
                .map(|c| c.cause.as_str())
                .collect();
            assert_eq!(c, [*cause], "{i} {m}: {out:#?}");
        }
    }
    // The first batch: the filesystem comes up healthy, then the service comes up stopped.
    let out = e.perf(
        "web-01",
        &[free("/", 50.0, 1), running(0.0, 1), memory(1), memory(2)],
    );
    assert_eq!(
        e.state("web", "System.Health.AvailabilityState"),
        Health::Critical
    );
    let fs = "Linux.Monitor.FilesystemFreeSpace: Filesystem/% Free Space// = 50";
    let service = "Linux.Monitor.ServiceRunning: Service/Running/sshd.service = 0";
    assert_causes(
        &out,
        &[
            // A dependency monitor names a change of one of its members.
            ("web", "Linux.Computer.FilesystemAvailability", fs),
            ("web", "Linux.Computer.ServiceAvailability", service),
            // An aggregate names the rollup below it that moved to its new state:
            // critical by the service, not by the filesystems' monitor (reached first,
            // healthy).
            ("web", "System.Health.AvailabilityState", service),
            ("web", "System.Health.EntityState", service),
            // Below, each instance is reached by its own change only.
            ("root-fs", "System.Health.EntityState", fs),
            ("sshd", "System.Health.EntityState", service),
        ],
    );
    // The second: the filesystem crosses first, then the service runs again, then the
    // memory monitor has its third sample.
    let out = e.perf("web-01", &[free("/", 4.0, 3), running(1.0, 3), memory(3)]);
    assert_eq!(
        e.state("web", "Linux.Monitor.MemoryAvailable"),
        Health::Healthy
    );
    let fs = "Linux.Monitor.FilesystemFreeSpace: Filesystem/% Free Space// = 4";
    let service = "Linux.Monitor.ServiceRunning: Service/Running/sshd.service = 1";
    let memory = "Linux.Monitor.MemoryAvailable: Memory/% Available Memory/ = 50";
    assert_causes(
        &out,
        &[
            ("web", "Linux.Computer.FilesystemAvailability", fs),
            ("web", "Linux.Computer.ServiceAvailability", service),
            // An aggregate names the change of its own unit monitor.
            ("web", "System.Health.PerformanceState", memory),
        ],
    );
}

#[test]
fn a_pass_through_many_instances_changes_each_rollup_once() {
    // More filesystems than a pass looks through one by one before it indexes them, all
    // coming up in one batch: the first 40 healthy, the last 10 beyond the threshold.
    let mut e = engine("");
    host(&mut e);
    let mounts: Vec<String> = (0..50).map(|i| format!("/m{i}")).collect();
    for (i, m) in mounts.iter().enumerate() {
        let fs = inst(
            &format!("fs-{i}"),
            "Linux.Filesystem",
            Some("web"),
            &[("MountPoint", m), ("Type", "xfs")],
            &[],
        );
        e.upsert(fs, 0);
    }
    let value = |i: usize| if i < 40 { 50.0 } else { 4.0 };
    let batch: Vec<Sample<'_>> = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| free(m, value(i), 1))
        .collect();
    let out = e.perf("web-01", &batch);
    let causes = |i: &str, m: &str| -> Vec<String> {
        out.iter()
            .filter(|c| c.instance_id == i && c.monitor_id == m)
            .map(|c| c.cause.clone())
            .collect()
    };
    let cause_of = |i: usize| {
        format!(
            "Linux.Monitor.FilesystemFreeSpace: Filesystem/% Free Space/{} = {}",
            mounts[i],
            value(i)
        )
    };
    for i in 0..mounts.len() {
        let id = format!("fs-{i}");
        assert_eq!(
            causes(&id, "System.Health.EntityState"),
            [cause_of(i)],
            "{id}"
        );
    }
    // The computer's rollups move once, critical by the first filesystem beyond the
    // threshold (reached after the pass began to index its instances).
    assert_eq!(
        e.state("web", "System.Health.EntityState"),
        Health::Critical
    );
    for m in [
        "Linux.Computer.FilesystemAvailability",
        "System.Health.AvailabilityState",
        "System.Health.EntityState",
    ] {
        assert_eq!(causes("web", m), [cause_of(40)], "web {m}");
    }
}
