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
