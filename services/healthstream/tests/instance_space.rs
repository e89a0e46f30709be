//! The instance space through the real binary (embedded): discovery posted to ingest becomes
//! instances readable by class (derived classes included), property and host; a snapshot that
//! drops an instance deletes it; bad parts go to dead letters while the rest is applied; the
//! state survives a restart.

mod common;

use std::time::{Duration, Instant};

use common::reqwest::{self, Method};
use common::{start, Process};
use serde_json::{json, Value};

fn get(p: &Process, path: &str) -> Value {
    let (status, body) = reqwest::send(Method::GET, &p.url(path), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn post_discovery(p: &Process, body: Value) {
    let (status, resp) = reqwest::post_json(&p.url("/v1/ingest/discovery"), &body);
    assert_eq!(status, 200, "{resp}");
}

fn snapshot(filesystems: &[&str]) -> Value {
    let host = json!({"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}});
    let mut instances = vec![
        json!({"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}, "properties": {"CpuCount": 4}}),
    ];
    for fs in filesystems {
        instances.push(json!({"class": "Linux.Filesystem", "keys": {"MountPoint": fs}, "properties": {"Type": "ext4"}, "host": host}));
    }
    json!([{
        "root_host": "web-01",
        "source": {"kind": "discovery", "id": "Linux.Discovery.Filesystems/web-01"},
        "mode": "snapshot",
        "time": "2026-11-22T10:00:00Z",
        "instances": instances
    }])
}

/// Instances of a class once there are `n` of them.
fn wait_for(p: &Process, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(p, &format!("/v1/instances?{query}"));
        let items = v["instances"].as_array().cloned().unwrap_or_default();
        if items.len() == n {
            return items;
        }
        assert!(Instant::now() < deadline, "{query}: wanted {n}, have {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn discovery_to_instances_and_reads() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    post_discovery(&p, snapshot(&["/", "/var", "/home"]));

    // By class, derived classes included: Linux.Computer is a System.Computer.
    let computers = wait_for(&p, "class=System.Computer", 1);
    assert_eq!(computers[0]["class"], "Linux.Computer");
    assert_eq!(computers[0]["properties"]["CpuCount"], 4);
    assert_eq!(computers[0]["managed"], true);
    let host_id = computers[0]["id"].as_str().expect("id").to_string();
    let fs = wait_for(&p, "class=Linux.Filesystem", 3);
    assert!(fs.iter().all(|f| f["host_id"] == host_id.as_str()));
    // By property, by host, and paged.
    let var = wait_for(&p, "class=Linux.Filesystem&property=MountPoint=/var", 1);
    assert_eq!(var[0]["keys"]["MountPoint"], "/var");
    let page = get(&p, "/v1/instances?class=Linux.Filesystem&limit=2");
    assert_eq!(page["instances"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().expect("a next page").to_string();
    let rest = get(
        &p,
        &format!("/v1/instances?class=Linux.Filesystem&limit=2&after={next}"),
    );
    assert_eq!(rest["instances"].as_array().map(Vec::len), Some(1));
    let hosted = get(&p, &format!("/v1/instances?host={host_id}"));
    assert_eq!(hosted["instances"].as_array().map(Vec::len), Some(3));

    // The host's collection plan reaches ingest, for its collector to fetch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let plan = loop {
        let (status, body) = reqwest::send(Method::GET, &p.url("/v1/plans/web-01"), None);
        if status == 200 {
            let v: Value = serde_json::from_str(&body).expect("json");
            if v["data_sources"]
                .as_array()
                .is_some_and(|d| d.iter().any(|s| s["config"]["instance"] == "/home"))
            {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no plan with /home: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(plan["root_host"], "web-01");
    let digest = plan["digest"].as_str().expect("digest").to_string();
    let (status, _) = reqwest::send_with(
        Method::GET,
        &p.url("/v1/plans/web-01"),
        &[("if-none-match", &format!("\"{digest}\""))],
    );
    assert_eq!(status, 304, "unchanged plan");
    let (status, _) = reqwest::send(Method::GET, &p.url("/v1/plans/nobody"), None);
    assert_eq!(status, 404);

    // The health engine: a filesystem filling up turns its free-space monitor critical and
    // rolls up to the computer.
    let home = wait_for(&p, "class=Linux.Filesystem&property=MountPoint=/home", 1);
    let home_id = home[0]["id"].as_str().expect("id").to_string();
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/perf"),
        &json!([{"collector": "web-01", "root_host": "web-01", "samples": [
            {"time": 1_000, "object": "Filesystem", "counter": "% Free Space", "instance": "/home", "value": 3.5}
        ]}]),
    );
    assert_eq!(status, 200, "{resp}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) =
            reqwest::send(Method::GET, &p.url(&format!("/v1/health/{home_id}")), None);
        if status == 200 {
            let v: Value = serde_json::from_str(&body).expect("json");
            if v["monitors"]["Linux.Monitor.FilesystemFreeSpace"] == "critical" {
                assert_eq!(
                    v["monitors"]["System.Health.EntityState"], "critical",
                    "{v}"
                );
                let history = get(
                    &p,
                    &format!(
                        "/v1/health/{home_id}/history?monitor=Linux.Monitor.FilesystemFreeSpace"
                    ),
                );
                let changes = history["changes"].as_array().expect("changes");
                assert_eq!(changes.len(), 1, "{history}");
                assert_eq!(changes[0]["old"], "uninitialized");
                assert_eq!(changes[0]["new"], "critical");
                assert_eq!(
                    changes[0]["cause"], "Filesystem/% Free Space//home = 3.5",
                    "the sample that set it"
                );
                // Its alert, with the mount point and host filled in; critical as the state.
                let alerts = v["open_alerts"].as_array().expect("alerts");
                assert_eq!(alerts.len(), 1, "{v}");
                assert_eq!(
                    alerts[0]["name"],
                    "Filesystem /home on web-01 is running out of space"
                );
                assert_eq!(alerts[0]["severity"], "critical");
                let computer = get(&p, &format!("/v1/health/{host_id}"));
                assert_eq!(
                    computer["monitors"]["Linux.Computer.FilesystemAvailability"], "critical",
                    "{computer}"
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the free-space monitor never turned critical: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The health explorer: the tree from the entity health down to the monitor and its cause.
    let explained = std::process::Command::new(env!("CARGO_BIN_EXE_healthstream"))
        .args([
            "health",
            "explain",
            &home_id,
            "--server",
            &format!("http://{}", p.addr),
        ])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&explained.stdout).to_string();
    assert!(
        explained.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    assert!(
        text.contains("  System.Health.EntityState [aggregate] critical"),
        "{text}"
    );
    assert!(
        text.contains("    System.Health.AvailabilityState [aggregate] critical"),
        "{text}"
    );
    assert!(text.contains("      Linux.Monitor.FilesystemFreeSpace [unit] critical since 1000 (Filesystem/% Free Space//home = 3.5)"), "{text}");

    // Free space comes back: the monitor is healthy and its alert resolved.
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/perf"),
        &json!([{"collector": "web-01", "root_host": "web-01", "samples": [
            {"time": 2_000, "object": "Filesystem", "counter": "% Free Space", "instance": "/home", "value": 60.0}
        ]}]),
    );
    assert_eq!(status, 200, "{resp}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(&p, &format!("/v1/health/{home_id}"));
        if v["monitors"]["Linux.Monitor.FilesystemFreeSpace"] == "healthy" {
            assert_eq!(v["open_alerts"], json!([]), "auto-resolved: {v}");
            break;
        }
        assert!(Instant::now() < deadline, "never healthy again: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // One instance in full.
    let one = get(&p, &format!("/v1/instances/{host_id}"));
    assert_eq!(one["hosted"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        one["instance"]["claimed_by"],
        json!(["discovery:Linux.Discovery.Filesystems/web-01"])
    );
    // Group membership: every computer is in the standard library's all-computers group.
    assert_eq!(
        one["groups"],
        json!([{"group": "System.Group.AllComputers", "group_instance_id": one["groups"][0]["group_instance_id"]}])
    );
    let tmp = wait_for(&p, "class=Linux.Filesystem&property=MountPoint=/", 1);
    let root_fs = get(
        &p,
        &format!("/v1/instances/{}", tmp[0]["id"].as_str().expect("id")),
    );
    assert_eq!(
        root_fs["groups"],
        json!([]),
        "an ext4 root filesystem is not volatile"
    );

    // The next snapshot drops /home; a filesystem with an unknown property is not applied.
    let mut next = snapshot(&["/", "/var"]);
    next[0]["instances"].as_array_mut().expect("array").push(
        json!({"class": "Linux.Filesystem", "keys": {"MountPoint": "/srv"}, "properties": {"Colour": "red"},
               "host": {"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}}}),
    );
    post_discovery(&p, next);
    let fs = wait_for(&p, "class=Linux.Filesystem", 2);
    let mounts: Vec<&str> = fs
        .iter()
        .filter_map(|f| f["keys"]["MountPoint"].as_str())
        .collect();
    assert!(
        mounts.contains(&"/") && mounts.contains(&"/var"),
        "{mounts:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get_text(&p.url("/metrics"));
        if metrics.contains("healthstream_discovery_rejected_parts_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rejected filesystem was never counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A tmpfs joins the volatile-filesystems group, whose override disables free-space
    // monitoring: `pack explain` finds the instance, its host and groups in the deployment.
    let mut with_run = snapshot(&["/", "/var"]);
    with_run[0]["instances"].as_array_mut().expect("array").push(
        json!({"class": "Linux.Filesystem", "keys": {"MountPoint": "/run"}, "properties": {"Type": "tmpfs"},
               "host": {"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}}}),
    );
    post_discovery(&p, with_run);
    let run = wait_for(&p, "class=Linux.Filesystem&property=MountPoint=/run", 1);
    let run_id = run[0]["id"].as_str().expect("id").to_string();
    let server = format!("http://{}", p.addr);
    let cli = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_healthstream"))
            .args(args)
            .output()
            .expect("cli");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(&[
            "pack",
            "explain",
            "Linux.Monitor.FilesystemFreeSpace",
            "--instance",
            &run_id,
            "--parameter",
            "enabled",
            "--server",
            &server,
        ]);
        if out.contains("enabled = false") {
            assert!(
                out.contains("winner Linux.Override.NoFreeSpaceOnVolatile"),
                "{out}"
            );
            assert!(
                out.contains("group context: the instance is a member"),
                "{out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group membership never showed: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = cli(&[
        "instances",
        "list",
        "--class",
        "Linux.Filesystem",
        "--server",
        &server,
    ]);
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and three filesystems:\n{listed}"
    );
    let shown = cli(&["instances", "show", &run_id, "--server", &server]);
    assert!(shown.contains("Linux.Group.VolatileFilesystems"), "{shown}");

    // A restart keeps the instance space.
    p.stop();
    let p = start(data.path());
    wait_for(&p, "class=Linux.Filesystem", 3);
    let (status, _) = reqwest::send(Method::GET, &p.url("/v1/instances/no-such-id"), None);
    assert_eq!(status, 404);
    let (status, _) = reqwest::send(Method::GET, &p.url("/v1/instances?after=zz"), None);
    assert_eq!(status, 400);
    p.stop();
}

/// The instance-space processor alone, before any pack exists: it waits for the packs and
/// says so in `/readyz` instead of dead-lettering every record as an unknown class.
#[test]
fn discovery_without_packs_waits_not_ready() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_healthstream"))
        .args(["discovery", "--listen", &addr, "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Some(body) = reqwest::try_get_text(&format!("http://{addr}/readyz")) {
            break body;
        }
        assert!(Instant::now() < deadline, "never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        body.contains("waiting for the connector to import the packs"),
        "{body}"
    );
}
