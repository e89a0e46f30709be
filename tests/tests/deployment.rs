//! No container engine runs here, so the deployment files are checked by reading them:
//! docker-compose.yml runs Kafka in KRaft mode, creates exactly the topics of
//! topologies/single-broker.toml (partitions and cleanup policy), runs each healthstream
//! service on its topology port, and Prometheus scrapes every one of them.

use std::collections::BTreeMap;

use healthstream_contracts::Topic;
use healthstream_tests::{repo, topology};
use healthstream_topology::{CleanupPolicy, Service};
use serde_yaml::Value;

fn compose() -> Value {
    let text =
        std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    serde_yaml::from_str(&text).expect("docker-compose.yml is YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kafka_runs_in_kraft_mode_from_the_official_image() {
    let c = compose();
    let kafka = service(&c, "kafka");
    assert!(kafka["image"]
        .as_str()
        .expect("image")
        .starts_with("apache/kafka:"));
    let env = &kafka["environment"];
    assert!(env["KAFKA_PROCESS_ROLES"]
        .as_str()
        .expect("roles")
        .contains("controller"));
    assert!(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].as_str().is_some());
    assert_eq!(
        env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].as_str(),
        Some("false")
    );
    let names: Vec<&str> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("zookeeper")),
        "KRaft needs no ZooKeeper"
    );
}

#[test]
fn topics_match_the_single_broker_topology() {
    let c = compose();
    let script = strings(&service(&c, "kafka-init")["command"]).join("\n");
    let mut declared = BTreeMap::new();
    for line in script.lines().filter(|l| l.contains("kafka-topics.sh")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| -> &str {
            let i = words
                .iter()
                .position(|w| *w == flag)
                .unwrap_or_else(|| panic!("{flag} missing in: {line}"));
            words[i + 1]
        };
        let cleanup = words
            .iter()
            .find_map(|w| w.strip_prefix("cleanup.policy="))
            .unwrap_or_else(|| panic!("cleanup.policy missing in: {line}"));
        declared.insert(
            after("--topic").to_string(),
            (
                after("--partitions").parse::<u32>().expect("partitions"),
                cleanup.to_string(),
            ),
        );
    }
    let t = topology("single-broker");
    let expected: BTreeMap<String, (u32, String)> = t
        .topics()
        .map(|s| {
            let policy = match s.cleanup_policy {
                CleanupPolicy::Compact => "compact",
                CleanupPolicy::Delete => "delete",
            };
            (
                s.topic.name().to_string(),
                (s.partitions, policy.to_string()),
            )
        })
        .collect();
    assert_eq!(declared, expected);
    assert_eq!(declared.len(), Topic::ALL.len());
}

#[test]
fn services_listen_on_their_topology_ports_and_are_scraped() {
    let c = compose();
    let t = topology("single-broker");
    let prom_text = std::fs::read_to_string(repo().join("ops/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let prom: Value = serde_yaml::from_str(&prom_text).expect("prometheus.yml is YAML");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| {
            job["static_configs"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|sc| strings(&sc["targets"]))
        .collect();
    let mut checked = 0;
    for svc in Service::ALL {
        let Some(s) = c["services"].get(svc.name()) else {
            continue;
        };
        let command = strings(&s["command"]);
        assert_eq!(
            command.first().map(String::as_str),
            Some(svc.name()),
            "{svc}: runs its own subcommand"
        );
        let port = t
            .service(svc)
            .and_then(|s| s.port)
            .unwrap_or_else(|| panic!("{svc} has no port in the topology"));
        let listen = command
            .iter()
            .position(|w| w == "--listen")
            .map(|i| command[i + 1].clone())
            .unwrap_or_else(|| panic!("{svc}: no --listen"));
        assert_eq!(listen, format!("0.0.0.0:{port}"), "{svc}");
        assert!(
            strings(&s["ports"]).contains(&format!("{port}:{port}")),
            "{svc}: port {port} published"
        );
        let topo = command
            .iter()
            .position(|w| w == "--topology")
            .map(|i| command[i + 1].clone());
        assert_eq!(
            topo.as_deref(),
            Some("/etc/healthstream/single-broker.toml"),
            "{svc}"
        );
        assert!(
            targets.contains(&format!("{}:{port}", svc.name())),
            "{svc}: Prometheus scrapes it"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the services of docker-compose.yml were found"
    );
    assert!(service(&c, "prometheus")["image"]
        .as_str()
        .expect("image")
        .starts_with("prom/prometheus"));
}

/// Every metric the dashboard and the alert rules use is one the code registers.
#[test]
fn dashboards_and_alerts_use_real_metrics() {
    let mut sources = String::new();
    let mut stack = vec![repo().join("crates"), repo().join("services")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut checked = 0;
    for file in ["ops/dashboards/pipeline.json", "ops/prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(repo().join(file)).expect(file);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("healthstream_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                sources.contains(&format!("\"{base}\"")),
                "{file} uses {name}, which no code registers"
            );
            checked += 1;
            rest = &tail[end..];
        }
    }
    assert!(checked >= 10, "found the metric references ({checked})");
}

/// The Kubernetes manifests run each service on its topology port with the scaled topology.
#[test]
fn kubernetes_manifests_match_the_scaled_topology() {
    let t = topology("scaled");
    for (file, svc) in [
        ("ingest.yaml", Service::Ingest),
        ("discovery.yaml", Service::Discovery),
        ("health.yaml", Service::Health),
        ("connector.yaml", Service::Connector),
    ] {
        let text = std::fs::read_to_string(repo().join("ops/k8s").join(file)).expect(file);
        let port = t.service(svc).and_then(|s| s.port).expect("port");
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).expect("YAML document"))
            .collect();
        let workload = docs
            .iter()
            .find(|d| matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")))
            .expect("workload");
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        let args = strings(&container["args"]);
        assert_eq!(args.first().map(String::as_str), Some(svc.name()), "{file}");
        assert!(
            args.contains(&format!("0.0.0.0:{port}")),
            "{file}: listens on {port}"
        );
        assert!(
            args.contains(&"/etc/healthstream/scaled.toml".to_string()),
            "{file}"
        );
        assert_eq!(
            container["ports"][0]["containerPort"].as_u64(),
            Some(u64::from(port)),
            "{file}"
        );
        assert_eq!(
            workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].as_str(),
            Some(port.to_string().as_str()),
            "{file}"
        );
    }
    for file in ["health.yaml", "discovery.yaml"] {
        let text = std::fs::read_to_string(repo().join("ops/k8s").join(file)).expect(file);
        assert!(
            text.contains("kind: StatefulSet") && text.contains("volumeClaimTemplates"),
            "{file}: state needs volumes"
        );
    }
}

use serde::Deserialize;
