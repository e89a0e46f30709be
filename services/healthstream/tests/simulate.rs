//! `healthstream simulate` against the real binary (embedded): a seeded fleet's discovery
//! becomes the expected instance space, its perf samples reach the health processor, and a
//! scripted disk-filling fault shows in the data.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::reqwest::{self, Method};
use common::start;
use serde_json::Value;

#[test]
fn a_simulated_fleet_fills_the_instance_space() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());
    let out = Command::new(env!("CARGO_BIN_EXE_healthstream"))
        .args([
            "simulate",
            "--server",
            &format!("http://{}", p.addr),
            "--hosts",
            "3",
            "--instances-per-host",
            "20",
            "--duration",
            "3m",
            "--fault",
            "disk-filling:1:/:60s:60s",
            "--seed",
            "7",
        ])
        .output()
        .expect("simulate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sent "), "{text}");

    // 3 hosts x 20 instances.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = reqwest::send(Method::GET, &p.url("/v1/instances?limit=1000"), None);
        let v: Value = serde_json::from_str(&body).expect("json");
        let n = v["instances"].as_array().map_or(0, Vec::len);
        if n == 60 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} instances, expected 60");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The filling disk of host 1 is empty at the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = reqwest::send(Method::GET, &p.url("/v1/perf/host-00001"), None);
        let samples: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        let root = samples
            .iter()
            .find(|s| s["counter"] == "% Free Space" && s["instance"] == "/");
        if let Some(v) = root.and_then(|s| s["value"].as_f64()) {
            if v < 1e-6 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "free space of / on host-00001 never reached 0: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p.stop();
}
