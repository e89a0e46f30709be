//! Collection plans (DESIGN.md section 5): equal data sources cook down to one entry, an
//! interval override on one instance splits it, `$Target` references resolve per instance,
//! overrides disable copies, unmanaged instances run nothing, and a change that does not
//! touch the plan republishes nothing.

mod common;

use common::*;
use healthstream_contracts::records::{
    DiscoveredInstance, DiscoveryMode, DiscoverySourceKind, InstanceRef, PlannedDataSource,
    PropertyValue,
};
use healthstream_discovery::plans::Plan;

fn computer(name: &str) -> InstanceRef {
    InstanceRef {
        class: "Linux.Computer".into(),
        keys: props(&[("PrincipalName", s(name))]),
        host: None,
    }
}

fn filesystem(mount: &str, kind: &str) -> DiscoveredInstance {
    DiscoveredInstance {
        class: "Linux.Filesystem".into(),
        keys: props(&[("MountPoint", s(mount))]),
        properties: props(&[("Type", s(kind))]),
        host: Some(computer("web-01")),
    }
}

fn host_snapshot(
    filesystems: &[(&str, &str)],
    cpus: i64,
) -> healthstream_contracts::records::DiscoveryData {
    let mut instances = vec![DiscoveredInstance {
        class: "Linux.Computer".into(),
        keys: props(&[("PrincipalName", s("web-01"))]),
        properties: props(&[("CpuCount", PropertyValue::Long(cpus))]),
        host: None,
    }];
    instances.extend(filesystems.iter().map(|(m, k)| filesystem(m, k)));
    let mut d = snapshot("Linux.Discovery.Filesystems/web-01", instances);
    d.root_host = "web-01".into();
    d
}

/// The plan entries whose config has this counter (and instance, when given).
fn entries<'a>(
    plan: &'a Plan,
    counter: &str,
    instance: Option<&str>,
) -> Vec<&'a PlannedDataSource> {
    plan.data_sources
        .iter()
        .filter(|d| d.config.get("counter").map(String::as_str) == Some(counter))
        .filter(|d| {
            instance.is_none_or(|i| d.config.get("instance").map(String::as_str) == Some(i))
        })
        .collect()
}

#[test]
fn equal_data_sources_cook_down_to_one_entry() {
    let mut h = Harness::new();
    let out = h.submit(&host_snapshot(&[("/", "ext4")], 4));
    let plan = out.plan.expect("a first plan");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    // The CPU collection rule and the CPU monitor read the same counter at the same interval.
    let cpu = entries(&plan, "% Processor Time", Some("_Total"));
    assert_eq!(cpu.len(), 1, "{cpu:?}");
    assert_eq!(cpu[0].module, "perf");
    assert_eq!(cpu[0].interval_seconds, 60);
    assert_eq!(cpu[0].workflows.len(), 2);
    assert!(cpu[0]
        .workflows
        .iter()
        .any(|w| w.starts_with("Linux.Rule.CollectCpu@")));
    assert!(cpu[0]
        .workflows
        .iter()
        .any(|w| w.starts_with("Linux.Monitor.CpuUtilization@")));
    // Free space: the rule and the threshold monitor share it, per filesystem, with the mount
    // point resolved from $Target.
    let free = entries(&plan, "% Free Space", Some("/"));
    assert_eq!(free.len(), 1, "{free:?}");
    assert_eq!(
        free[0].workflows.len(),
        3,
        "rule, threshold monitor and fill-rate monitor"
    );
    // The collector's heartbeat and inventory sources are in the plan of its host too.
    assert!(plan.data_sources.iter().any(|d| d.module == "inventory"
        && d.config.get("provider").map(String::as_str) == Some("filesystems")));
}

#[test]
fn an_interval_override_on_one_instance_splits_the_entry() {
    let mut probe = Harness::new();
    let web01 = probe.id(&computer("web-01"));
    let tuning = format!(
        "\n[[override]]\nid = \"T.SlowCpu\"\nworkflow = \"Linux.Rule.CollectCpu\"\nparameter = \"interval\"\nvalue = \"5m\"\ncontext = \"Linux.Computer\"\ninstance = \"{web01}\"\n"
    );
    let mut h = Harness::with(&format!(
        "\n[[reference]]\npack = \"Healthstream.Linux\"\nversion = \"1.0\"\n{tuning}"
    ));
    let plan = h
        .submit(&host_snapshot(&[("/", "ext4")], 4))
        .plan
        .expect("plan");
    let cpu = entries(&plan, "% Processor Time", Some("_Total"));
    assert_eq!(cpu.len(), 2, "{cpu:?}");
    let slow = cpu
        .iter()
        .find(|d| d.interval_seconds == 300)
        .expect("the overridden copy");
    assert_eq!(slow.workflows.len(), 1);
    assert!(slow.workflows[0].starts_with("Linux.Rule.CollectCpu@"));
    let normal = cpu
        .iter()
        .find(|d| d.interval_seconds == 60)
        .expect("the monitor's copy");
    assert!(normal.workflows[0].starts_with("Linux.Monitor.CpuUtilization@"));
}

#[test]
fn an_unrelated_change_republishes_nothing() {
    let mut h = Harness::new();
    assert!(h.submit(&host_snapshot(&[("/", "ext4")], 4)).plan.is_some());
    // The CPU count is used by no data source.
    let out = h.submit(&host_snapshot(&[("/", "ext4")], 8));
    assert!(!out.changes.is_empty(), "the computer changed");
    assert!(out.plan.is_none(), "but not the plan");
    // A new filesystem changes the plan.
    let out = h.submit(&host_snapshot(&[("/", "ext4"), ("/var", "xfs")], 8));
    let plan = out.plan.expect("a new filesystem is new work");
    assert_eq!(entries(&plan, "% Free Space", Some("/var")).len(), 1);
}

#[test]
fn overrides_disable_copies_through_groups() {
    let mut h = Harness::new();
    let plan = h
        .submit(&host_snapshot(&[("/", "ext4"), ("/run", "tmpfs")], 4))
        .plan
        .expect("plan");
    // /run is in the volatile-filesystems group: its free-space monitors are disabled by
    // override; only the collection rule still samples it.
    let run = entries(&plan, "% Free Space", Some("/run"));
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].workflows.len(), 1, "{:?}", run[0].workflows);
    assert!(run[0].workflows[0].starts_with("Linux.Rule.CollectFreeSpace@"));
    assert_eq!(
        entries(&plan, "% Free Space", Some("/"))[0].workflows.len(),
        3
    );
}

#[test]
fn unmanaged_instances_run_nothing() {
    let mut h = Harness::new();
    let mut d = host_snapshot(&[("/", "ext4")], 4);
    d.source.kind = DiscoverySourceKind::Connector;
    d.source.managing = false;
    d.mode = DiscoveryMode::Snapshot;
    let out = h.submit(&d);
    assert!(!out.changes.is_empty());
    // Nothing managed: the plan is empty (and a first, empty plan is still published once).
    let plan = out.plan.expect("the first plan of the host");
    assert!(plan.data_sources.is_empty(), "{:?}", plan.data_sources);
}

#[test]
fn a_simulated_fleet_is_valid_discovery_data() {
    use healthstream_fleet::{discovery, host_shape};
    let mut h = Harness::new();
    for i in 0..3 {
        let shape = host_shape(i, 100);
        let mut created = 0;
        for d in discovery(&shape, 1_000) {
            let out = h.submit(&d);
            assert!(out.rejected.is_empty(), "{:?}", out.rejected);
            created += out
                .changes
                .iter()
                .filter(|c| {
                    c.kind == healthstream_contracts::records::EntityKind::Instance
                        && c.view.as_ref().is_some_and(|v| v.claimed_by.len() == 1)
                })
                .count();
        }
        assert_eq!(created, 100, "host {i}");
        // Sent again: nothing changes.
        for d in discovery(&shape, 2_000) {
            assert!(h.submit(&d).unchanged);
        }
    }
}
