//! Operator actions through the API of the real binary (embedded): an alert's close refused
//! while its monitor is critical, maintenance mode of a computer covering its filesystems
//! (shown on the health API, refusing a monitor reset meanwhile), its end, a reset, and
//! malformed requests refused with what is wrong.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::reqwest::{self, Method};
use common::{start, Process};
use serde_json::{json, Value};

const FREE: &str = "Linux.Monitor.FilesystemFreeSpace";

fn call(p: &Process, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text) = reqwest::send(
        method,
        &p.url(path),
        body.map(|b| ("application/json", b.to_string())),
    );
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn eventually(p: &Process, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = call(p, Method::GET, path, None);
        if status == 200 && f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} says {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// web-01 with its root filesystem, discovered: (filesystem id, computer id).
fn discover_web01(p: &Process) -> (String, String) {
    let host = json!({"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}});
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/discovery"),
        &json!([{
            "root_host": "web-01",
            "source": {"kind": "discovery", "id": "Linux.Discovery.Filesystems/web-01"},
            "mode": "snapshot",
            "time": "2026-11-22T10:00:00Z",
            "instances": [
                {"class": "Linux.Computer", "keys": {"PrincipalName": "web-01"}},
                {"class": "Linux.Filesystem", "keys": {"MountPoint": "/"}, "properties": {"Type": "ext4"}, "host": host}
            ]
        }]),
    );
    assert_eq!(status, 200, "{resp}");
    let list = eventually(
        p,
        "/v1/instances?class=Linux.Filesystem",
        "a filesystem",
        |v| v["instances"].as_array().is_some_and(|a| a.len() == 1),
    );
    let fs = list["instances"][0]["id"].as_str().expect("id").to_string();
    let web = list["instances"][0]["host_id"]
        .as_str()
        .expect("host")
        .to_string();
    (fs, web)
}

/// A nearly full root filesystem on web-01 at `time`.
fn send_low_free_space(p: &Process, time: i64) {
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/perf"),
        &json!([{"collector": "web-01", "root_host": "web-01", "samples": [
            {"time": time, "object": "Filesystem", "counter": "% Free Space", "instance": "/", "value": 4.0}
        ]}]),
    );
    assert_eq!(status, 200, "{resp}");
}

#[test]
fn maintenance_reset_and_close_through_the_api() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    let (fs, web) = discover_web01(&p);
    // The root filesystem is almost full: critical, with an alert. Sent once, right after
    // the discovery: the health processor applies the instance change first (it was taken
    // in first), though it reads the two from different topics.
    let t = now_ms();
    send_low_free_space(&p, t);
    let health = eventually(
        &p,
        &format!("/v1/health/{fs}"),
        "critical with an alert",
        |v| {
            v["monitors"][FREE] == "critical"
                && v["open_alerts"].as_array().is_some_and(|a| !a.is_empty())
        },
    );
    assert_eq!(health["maintenance"], Value::Null);
    assert_eq!(health["unavailable"], false);
    let alert = health["open_alerts"][0]["alert_id"]
        .as_str()
        .expect("alert")
        .to_string();

    // Closing it by hand is refused while the monitor is critical.
    let (status, v) = call(
        &p,
        Method::POST,
        &format!("/v1/alerts/{alert}/close"),
        Some(json!({"comment": "looked at it"})),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["status"], "refused");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be closed while its monitor is critical"),
        "{v}"
    );
    let refused_op = v["operation"].as_str().expect("operation id").to_string();
    let (status, v) = call(
        &p,
        Method::GET,
        &format!("/v1/operations/{refused_op}"),
        None,
    );
    assert_eq!(
        (status, v["status"].as_str()),
        (409, Some("refused")),
        "{v}"
    );

    // Maintenance of the computer covers its filesystem.
    let (status, v) = call(
        &p,
        Method::POST,
        &format!("/v1/maintenance/{web}"),
        Some(
            json!({"minutes": 30, "reason": "PlannedOperatingSystemReconfiguration", "comment": "patching", "requested_by": "alice"}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "applied");
    let (status, m) = call(&p, Method::GET, &format!("/v1/maintenance/{fs}"), None);
    assert_eq!(status, 200);
    assert_eq!(m["in_maintenance"], true);
    assert_eq!(m["set_on"], web.as_str());
    assert_eq!(m["by"], "alice");
    assert_eq!(m["reason"], "PlannedOperatingSystemReconfiguration");
    assert!(m["until"].as_i64().expect("until") > t + 29 * 60_000);
    let (_, h) = call(&p, Method::GET, &format!("/v1/health/{fs}"), None);
    assert_eq!(h["maintenance"]["set_on"], web.as_str(), "{h}");
    let (status, v) = call(
        &p,
        Method::POST,
        &format!("/v1/health/{fs}/monitors/{FREE}/reset"),
        None,
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or("")
            .contains("is in maintenance"),
        "{v}"
    );

    // Malformed or impossible requests: refused with what is wrong, nothing written.
    for (path, body, status, says) in [
        (
            format!("/v1/maintenance/{web}"),
            json!({"reason": "Lunch"}),
            400,
            "is not one of",
        ),
        (
            format!("/v1/maintenance/{web}"),
            json!({"minutes": 0}),
            400,
            "minutes must be between",
        ),
        (
            format!("/v1/maintenance/{web}"),
            json!({"minutes": 5, "until": t + 1}),
            400,
            "either until or minutes",
        ),
        (
            format!("/v1/maintenance/{web}"),
            json!({"until": 1000}),
            400,
            "is not in the future",
        ),
        (
            format!("/v1/maintenance/{web}"),
            json!({"minutes": "ten"}),
            400,
            "not a valid request",
        ),
        (
            format!("/v1/maintenance/{web}"),
            json!({"mintues": 5}),
            400,
            "unknown field",
        ),
        (
            "/v1/maintenance/nobody".to_string(),
            json!({"minutes": 5}),
            404,
            "unknown instance nobody",
        ),
        (
            "/v1/alerts/nothing/close".to_string(),
            json!({}),
            404,
            "no alert nothing",
        ),
    ] {
        let (got, v) = call(&p, Method::POST, &path, Some(body.clone()));
        assert_eq!(got, status, "{path} {body}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(says),
            "{path} {body}: {v}"
        );
    }

    // The end: nothing is in maintenance any more; the reset is applied and resolves the
    // alert; closing it now says it is closed already.
    let (status, v) = call(&p, Method::DELETE, &format!("/v1/maintenance/{web}"), None);
    assert_eq!(status, 200, "{v}");
    let (_, m) = call(&p, Method::GET, &format!("/v1/maintenance/{fs}"), None);
    assert_eq!(m["in_maintenance"], false);
    let (status, v) = call(&p, Method::DELETE, &format!("/v1/maintenance/{web}"), None);
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["detail"], format!("instance {web} is not in maintenance"));
    let (status, v) = call(
        &p,
        Method::POST,
        &format!("/v1/health/{fs}/monitors/{FREE}/reset"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["state_changes"].as_u64().map(|n| n > 0),
        Some(true),
        "{v}"
    );
    let h = eventually(&p, &format!("/v1/health/{fs}"), "healthy", |v| {
        v["monitors"][FREE] == "healthy"
    });
    assert_eq!(h["open_alerts"], json!([]));
    let (status, v) = call(&p, Method::POST, &format!("/v1/alerts/{alert}/close"), None);
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["detail"], format!("alert {alert} is already closed"));
    let history = eventually(
        &p,
        &format!("/v1/health/{fs}/history?monitor={FREE}"),
        "history",
        |v| v["changes"].as_array().is_some_and(|c| c.len() >= 2),
    );
    let last = history["changes"]
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .expect("last");
    assert_eq!(last["cause"], "reset by an operator");
    let metrics = reqwest::get_text(&p.url("/metrics"));
    assert!(
        metrics.contains("healthstream_health_operations_total{outcome=\"applied\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("healthstream_health_operations_total{outcome=\"refused\"} 4"),
        "{metrics}"
    );
    p.stop();
}

#[test]
fn commands_reach_the_collector_and_results_come_back() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    let (fs, web) = discover_web01(&p);
    // Sent once, right after the discovery (see above). The disk's diagnostic waits for
    // the collector of web-01.
    send_low_free_space(&p, now_ms());
    let listed = eventually(
        &p,
        "/v1/collectors/web-01/commands",
        "the diagnostic",
        |v| v["commands"].as_array().is_some_and(|a| !a.is_empty()),
    );
    let diag = listed["commands"][0].clone();
    assert_eq!(diag["workflow_id"], "Linux.Diagnostic.LargestDirectories");
    assert_eq!(diag["kind"], "DIAGNOSTIC");
    assert_eq!(diag["instance_id"], fs.as_str());
    assert_eq!(
        diag["parameters"]["argv"],
        r#"["du","-x","-h","--max-depth=2","/"]"#
    );
    let diag_id = diag["id"].as_str().expect("id").to_string();
    let alert_id = diag["alert_id"]
        .as_str()
        .expect("attached to the alert")
        .to_string();
    // An operator asks for a task on the computer.
    let (status, v) = call(
        &p,
        Method::POST,
        "/v1/tasks/Linux.Task.TopProcesses/run",
        Some(json!({"instance_id": web})),
    );
    assert_eq!(status, 200, "{v}");
    let task_id = v["detail"]
        .as_str()
        .and_then(|d| d.split_whitespace().nth(1))
        .expect("command id")
        .to_string();
    let (status, v) = call(
        &p,
        Method::POST,
        "/v1/tasks/Linux.Task.TopProcesses/run",
        Some(json!({"instance_id": fs})),
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or("")
            .contains("targets Linux.Computer"),
        "{v}"
    );
    let (status, v) = call(
        &p,
        Method::POST,
        "/v1/tasks/Linux.Task.TopProcesses/run",
        Some(json!({})),
    );
    assert_eq!(status, 400, "{v}");
    eventually(&p, "/v1/collectors/web-01/commands", "both commands", |v| {
        v["commands"].as_array().is_some_and(|a| a.len() == 2)
    });
    // The collector reports: the diagnostic's output reaches its alert; a malformed
    // result is refused with the field named.
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/task-results"),
        &json!([{"command_id": diag_id, "root_host": "web-01", "collector": "web-01", "status": "BAD",
                 "started_at": 1, "finished_at": 2}]),
    );
    assert_eq!(status, 422, "{resp}");
    assert!(resp.to_string().contains("status"), "{resp}");
    let t = now_ms();
    let (status, resp) = reqwest::post_json(
        &p.url("/v1/ingest/task-results"),
        &json!([
            {"command_id": diag_id, "root_host": "web-01", "collector": "web-01", "status": "SUCCEEDED",
             "exit_code": 0, "output": "12G\t/var", "started_at": t - 50, "finished_at": t},
            {"command_id": task_id, "root_host": "web-01", "collector": "web-01", "status": "REFUSED",
             "output": "not on this collector's allow-list", "started_at": t, "finished_at": t}
        ]),
    );
    assert_eq!(status, 200, "{resp}");
    let done = eventually(&p, &format!("/v1/commands/{diag_id}"), "the result", |v| {
        v["result"].is_object()
    });
    assert_eq!(done["result"]["status"], "succeeded");
    assert_eq!(done["result"]["output"], "12G\t/var");
    assert_eq!(done["alert_id"], alert_id.as_str());
    let h = eventually(
        &p,
        &format!("/v1/health/{fs}"),
        "the note on the alert",
        |v| {
            v["open_alerts"][0]["history"].as_array().is_some_and(|h| {
                h.iter().any(|c| {
                    c.as_str()
                        .unwrap_or("")
                        .starts_with("diagnostic Largest directories succeeded (exit 0)")
                })
            })
        },
    );
    assert_eq!(h["open_alerts"][0]["alert_id"], alert_id.as_str());
    let refused = eventually(&p, &format!("/v1/commands/{task_id}"), "the refusal", |v| {
        v["result"].is_object()
    });
    assert_eq!(refused["result"]["status"], "refused");
    // Nothing is pending any more.
    eventually(
        &p,
        "/v1/collectors/web-01/commands",
        "no command left",
        |v| v["commands"].as_array().is_some_and(|a| a.is_empty()),
    );
    p.stop();
}
