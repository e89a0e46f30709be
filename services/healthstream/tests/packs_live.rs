//! Packs in a running deployment, through the real binary (embedded): the shipped packs are
//! imported at the first start; an import, an upgrade and a removal published on the pack
//! topic reach the health processor while it runs; refused changes say why; everything
//! survives a restart without being imported twice; the CLI drives the same API.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::reqwest::{self, Method};
use common::{start, Process};
use serde_json::Value;

const TUNING: &str = r#"[pack]
id = "Tuning"
version = "1.0"

[[reference]]
pack = "System.Library"
version = "1.0.0"

[[reference]]
pack = "Healthstream.Linux"
version = "1.0.0"

[[override]]
id = "Tuning.CpuThreshold"
workflow = "Linux.Monitor.CpuUtilization"
parameter = "threshold"
value = 90.0
context = "Linux.Computer"
"#;

fn json(p: &Process, path: &str) -> Value {
    let (status, body) = reqwest::send(Method::GET, &p.url(path), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn pack_ids(v: &Value) -> Vec<String> {
    v["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["id"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The health processor's packs, once they equal `want`.
fn wait_for_model(p: &Process, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let model = json(p, "/v1/model");
        if pack_ids(&model) == want {
            return model;
        }
        assert!(
            Instant::now() < deadline,
            "health never held {want:?}: {model}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post(p: &Process, body: &str) -> (u16, Value) {
    let (status, text) = reqwest::send(
        Method::POST,
        &p.url("/v1/packs"),
        Some(("application/toml", body.to_string())),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn packs_change_while_running_and_survive_restarts() {
    let data = tempfile::tempdir().expect("tempdir");
    let p = start(data.path());

    // First start: the shipped packs are in force, in the API and in the health processor.
    let listed = json(&p, "/v1/packs");
    assert_eq!(
        pack_ids(&listed),
        ["Healthstream.Linux 1.0.0", "System.Library 1.0.0"]
    );
    let offset_after_seed = listed["pack_topic_offset"].as_i64().expect("offset");
    assert_eq!(offset_after_seed, 2);
    wait_for_model(&p, &["Healthstream.Linux 1.0.0", "System.Library 1.0.0"]);

    // Import: published, then applied by the running health processor.
    let (status, resp) = post(&p, TUNING);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["change"], "import");
    let model = wait_for_model(
        &p,
        &[
            "Healthstream.Linux 1.0.0",
            "System.Library 1.0.0",
            "Tuning 1.0",
        ],
    );
    assert_eq!(model["pack_topic_offset"], 3);

    // The same again changes nothing; other content under the same version is refused.
    let (status, resp) = post(&p, TUNING);
    assert_eq!((status, resp["change"].as_str()), (200, Some("unchanged")));
    let (status, resp) = post(&p, &TUNING.replace("90.0", "80.0"));
    assert_eq!(status, 409, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .unwrap_or("")
            .contains("higher version"),
        "{resp}"
    );

    // An invalid pack is refused with every problem, with lines.
    let broken = TUNING
        .replace(
            "version = \"1.0\"\n\n[[reference]]",
            "version = \"2.0\"\n\n[[reference]]",
        )
        .replace("Linux.Computer\"", "Linux.Nope\"")
        + "[[class]]\nid = \"Tuning.Keyless\"\nbase = \"System.LogicalEntity\"\n";
    let (status, resp) = post(&p, &broken);
    assert_eq!(status, 422, "{resp}");
    let problems: Vec<&str> = resp["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains(
            "request body:14: Tuning: Tuning.CpuThreshold: context \"Linux.Nope\": no such element"
        )),
        "{problems:?}"
    );

    // Upgrade.
    let (status, resp) = post(
        &p,
        &TUNING
            .replace(
                "version = \"1.0\"\n\n[[reference]]",
                "version = \"1.1\"\n\n[[reference]]",
            )
            .replace("90.0", "85.0"),
    );
    assert_eq!(
        (status, resp["change"].as_str()),
        (200, Some("upgrade")),
        "{resp}"
    );
    wait_for_model(
        &p,
        &[
            "Healthstream.Linux 1.0.0",
            "System.Library 1.0.0",
            "Tuning 1.1",
        ],
    );
    let (status, body) = reqwest::send(Method::GET, &p.url("/v1/packs/Tuning"), None);
    assert_eq!(status, 200);
    assert!(body.contains("value = 85.0"), "{body}");

    // Removal: refused while referenced, done otherwise.
    let (status, body) =
        reqwest::send(Method::DELETE, &p.url("/v1/packs/Healthstream.Linux"), None);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("referenced by Tuning"), "{body}");
    let (status, body) = reqwest::send(Method::DELETE, &p.url("/v1/packs/Tuning"), None);
    assert_eq!(status, 200, "{body}");
    wait_for_model(&p, &["Healthstream.Linux 1.0.0", "System.Library 1.0.0"]);
    let (status, _) = reqwest::send(Method::DELETE, &p.url("/v1/packs/Tuning"), None);
    assert_eq!(status, 404);

    // The CLI drives the same API.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tuning.toml");
    std::fs::write(
        &file,
        TUNING.replace(
            "version = \"1.0\"\n\n[[reference]]",
            "version = \"2.0\"\n\n[[reference]]",
        ),
    )
    .expect("write");
    let server = format!("http://{}", p.addr);
    let cli = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_healthstream"))
            .args(args)
            .args(["--server", &server])
            .output()
            .expect("cli");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let file_arg = file.display().to_string();
    let (ok, out) = cli(&["pack", "import", &file_arg]);
    assert!(ok && out.contains("\"change\":\"import\""), "{out}");
    let (ok, out) = cli(&["pack", "list"]);
    assert!(ok && out.contains("\"id\":\"Tuning\""), "{out}");
    let (ok, out) = cli(&["pack", "remove", "System.Library"]);
    assert!(!ok && out.contains("409"), "{out}");
    wait_for_model(
        &p,
        &[
            "Healthstream.Linux 1.0.0",
            "System.Library 1.0.0",
            "Tuning 2.0",
        ],
    );

    // A restart folds the topic again; the shipped packs are not imported twice.
    let offset_before = json(&p, "/v1/packs")["pack_topic_offset"]
        .as_i64()
        .expect("offset");
    p.stop();
    let p = start(data.path());
    let listed = json(&p, "/v1/packs");
    assert_eq!(
        pack_ids(&listed),
        [
            "Healthstream.Linux 1.0.0",
            "System.Library 1.0.0",
            "Tuning 2.0"
        ]
    );
    assert_eq!(listed["pack_topic_offset"].as_i64(), Some(offset_before));
    wait_for_model(
        &p,
        &[
            "Healthstream.Linux 1.0.0",
            "System.Library 1.0.0",
            "Tuning 2.0",
        ],
    );
    p.stop();
}
