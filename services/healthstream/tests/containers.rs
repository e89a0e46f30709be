//! A distributed application through the real binary (embedded): its pack posted to the
//! packs API, its computers discovered on their own hosts, the application discovered in its
//! own tree with containment relationships naming their targets' root hosts; a disk filling
//! on one computer turns the application's dependency monitor and entity health critical,
//! shown by the containers API with what each member reported.

mod common;

use std::time::{Duration, Instant};

use common::reqwest::{self, Method};
use common::{start, Process};
use serde_json::{json, Value};

const SHOP_PACK: &str = r#"
[pack]
id = "Contoso.Shop"
version = "1"

[[reference]]
pack = "System.Library"
version = "1.0"

[[reference]]
pack = "Healthstream.Linux"
version = "1.0"

[[class]]
id = "Contoso.Shop"
base = "System.LogicalEntity"

[[class.property]]
name = "Name"
key = true

[[relationship]]
id = "Contoso.ShopContainsComputer"
kind = "containment"
source = "Contoso.Shop"
target = "Linux.Computer"

[[dependency]]
id = "Contoso.Shop.Computers"
name = "Shop computers"
target = "Contoso.Shop"
parent = "System.Health.AvailabilityState"
relationship = "Contoso.ShopContainsComputer"
member_monitor = "System.Health.EntityState"
algorithm = "worst_of"
"#;

fn get(p: &Process, path: &str) -> (u16, Value) {
    let (status, body) = reqwest::send(Method::GET, &p.url(path), None);
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn post_ok(p: &Process, path: &str, body: Value) {
    let (status, resp) = reqwest::post_json(&p.url(path), &body);
    assert_eq!(status, 200, "{path}: {resp}");
}

fn computer(name: &str) -> Value {
    let host = json!({"class": "Linux.Computer", "keys": {"PrincipalName": name}});
    json!({
        "root_host": name,
        "source": {"kind": "discovery", "id": format!("Linux.Discovery.Filesystems/{name}")},
        "mode": "snapshot",
        "time": "2026-11-22T10:00:00Z",
        "instances": [
            {"class": "Linux.Computer", "keys": {"PrincipalName": name}},
            {"class": "Linux.Filesystem", "keys": {"MountPoint": "/"}, "properties": {"Type": "ext4"}, "host": host}
        ]
    })
}

fn shop() -> Value {
    let shop = json!({"class": "Contoso.Shop", "keys": {"Name": "web-shop"}});
    let contains = |name: &str| {
        json!({
            "type": "Contoso.ShopContainsComputer",
            "source": shop,
            "target": {"class": "Linux.Computer", "keys": {"PrincipalName": name}},
            "target_root_host": name
        })
    };
    json!([{
        "root_host": "web-shop",
        "source": {"kind": "connector", "id": "service-model"},
        "mode": "snapshot",
        "time": "2026-11-22T10:00:00Z",
        "instances": [shop],
        "relationships": [contains("web-01"), contains("db-01")]
    }])
}

fn free(name: &str, time: i64, value: f64) -> Value {
    json!([{"collector": name, "root_host": name, "samples": [
        {"time": time, "object": "Filesystem", "counter": "% Free Space", "instance": "/", "value": value}
    ]}])
}

/// Poll `f` until it gives a value or 60 s pass.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "{what}: {last}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_distributed_application_rolls_up_computers_of_two_hosts() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    let (status, resp) = reqwest::send(
        Method::POST,
        &p.url("/v1/packs"),
        Some(("application/toml", SHOP_PACK.to_string())),
    );
    assert!(status == 200 || status == 201, "{status}: {resp}");
    post_ok(
        &p,
        "/v1/ingest/discovery",
        json!([computer("web-01"), computer("db-01")]),
    );
    // The instance space takes the application once it holds the new pack.
    let shop_id = eventually("the shop discovered", || {
        post_ok(&p, "/v1/ingest/discovery", shop());
        let (_, v) = get(&p, "/v1/instances?class=Contoso.Shop");
        v["instances"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| v.to_string())
    });
    post_ok(&p, "/v1/ingest/perf", free("web-01", 60_000, 50.0));
    post_ok(&p, "/v1/ingest/perf", free("db-01", 60_000, 3.0));
    let v = eventually("the shop critical", || {
        let (status, v) = get(&p, &format!("/v1/containers/{shop_id}"));
        if status == 200
            && v["monitors"]["Contoso.Shop.Computers"] == "critical"
            && v["members"].as_array().is_some_and(|m| m.len() == 2)
        {
            Ok(v)
        } else {
            Err(format!("{status} {v}"))
        }
    });
    assert_eq!(
        v["monitors"]["System.Health.EntityState"], "critical",
        "{v}"
    );
    let members = v["members"].as_array().expect("members");
    let db = members
        .iter()
        .find(|m| m["states"]["System.Health.EntityState"] == "critical")
        .expect("a critical member");
    assert_eq!(db["relationship"], "Contoso.ShopContainsComputer", "{v}");
    assert_eq!(db["class"], "Linux.Computer", "{v}");
    // The health explorer shows which members the dependency monitor read.
    let (status, tree) = get(&p, &format!("/v1/health/{shop_id}/tree"));
    assert_eq!(status, 200, "{tree}");
    let text = tree.to_string();
    let entity = &tree["tree"][0];
    assert_eq!(entity["monitor_id"], "System.Health.EntityState", "{text}");
    let availability = entity["children"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|n| n["monitor_id"] == "System.Health.AvailabilityState")
        })
        .expect("availability");
    let computers = availability["children"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|n| n["monitor_id"] == "Contoso.Shop.Computers")
        })
        .expect("the dependency monitor");
    assert_eq!(computers["kind"], "dependency", "{text}");
    assert_eq!(computers["state"], "critical", "{text}");
    // Since when, and why: its latest change in the state history.
    assert!(computers["since"].as_i64().is_some_and(|t| t > 0), "{text}");
    let member = db["member_id"].as_str().expect("member id");
    assert_eq!(
        computers["cause"].as_str(),
        Some(format!("member {member}: System.Health.EntityState critical").as_str()),
        "{text}"
    );
    let read: Vec<&str> = computers["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(read.len(), 2, "{text}");
    assert!(
        read.contains(&"critical") && read.contains(&"healthy"),
        "{text}"
    );
    // The disk is freed: the shop is healthy again.
    post_ok(&p, "/v1/ingest/perf", free("db-01", 120_000, 40.0));
    eventually("the shop healthy", || {
        let (_, v) = get(&p, &format!("/v1/containers/{shop_id}"));
        if v["monitors"]["System.Health.EntityState"] == "healthy" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    p.stop();
}
