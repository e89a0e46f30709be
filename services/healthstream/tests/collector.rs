//! The reference collector through the real binaries: it registers this machine, follows the
//! collection plan the pipeline computes for it (inventory, counters), and buffers within a
//! bound, counting what it drops, while the pipeline is unreachable.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::reqwest::{self, Method};
use common::{free_port, start};
use serde_json::Value;

struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn collector(server: &str, host: &str, listen: &str, buffer: usize) -> Collector {
    Collector(
        Command::new(env!("CARGO_BIN_EXE_healthstream"))
            .args([
                "collect",
                "--server",
                server,
                "--host",
                host,
                "--listen",
                listen,
                "--buffer-records",
                &buffer.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector"),
    )
}

fn json(url: &str) -> Value {
    let (_, body) = reqwest::send(Method::GET, url, None);
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_collector_follows_its_plan() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let _c = collector(
        &format!("http://{}", p.addr),
        "collector-test",
        &listen,
        100_000,
    );
    // Registration: the computer and the collector.
    eventually("the computer was never registered", || {
        json(&p.url("/v1/instances?class=Linux.Computer&property=PrincipalName=collector-test"))
            ["instances"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    // The plan asks for the inventories: the filesystems of this machine appear.
    eventually("no filesystem was discovered from the plan", || {
        json(&p.url("/v1/instances?class=Linux.Filesystem&limit=1000"))["instances"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["keys"]["MountPoint"] == "/"))
    });
    // And the counters: available memory is sampled at once.
    eventually("no memory sample arrived", || {
        json(&p.url("/v1/perf/collector-test"))
            .as_array()
            .is_some_and(|s| {
                s.iter().any(|x| {
                    x["counter"] == "% Available Memory"
                        && x["value"]
                            .as_f64()
                            .is_some_and(|v| (0.0..=100.0).contains(&v))
                })
            })
    });
    let plan = json(&p.url("/v1/plans/collector-test"));
    assert!(
        plan["data_sources"]
            .as_array()
            .is_some_and(|d| d.iter().any(|s| s["module"] == "inventory")),
        "{plan}"
    );
    eventually("the collector never counted what it sent", || {
        reqwest::try_get_text(&format!("http://{listen}/metrics"))
            .unwrap_or_default()
            .contains("healthstream_collector_sent_records_total{kind=\"perf\"}")
    });
    p.stop();
}

#[test]
fn an_unreachable_pipeline_is_buffered_within_the_bound() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    // A bound of one record: the registration (two instances) cannot be held.
    let _c = collector(&dead, "lonely", &listen, 1);
    eventually("nothing was dropped or buffered", || {
        let m = reqwest::try_get_text(&format!("http://{listen}/metrics")).unwrap_or_default();
        m.contains("healthstream_collector_dropped_records_total{kind=\"discovery\"} 2")
            && m.contains("healthstream_collector_buffered_records 1")
            && m.contains("healthstream_collector_send_failures_total")
    });
}
