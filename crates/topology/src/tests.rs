use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> Vec<Topology> {
    ["embedded", "single-broker", "scaled"]
        .iter()
        .map(|n| {
            Topology::load(repo().join("topologies").join(format!("{n}.toml")))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn shipped_topologies_declare_every_topic_and_compact_the_state_topics() {
    for t in shipped() {
        for topic in Topic::ALL {
            let spec = t.topic(topic);
            assert!(spec.partitions >= 1);
        }
        for topic in [Topic::Instances, Topic::State, Topic::Alerts] {
            assert_eq!(
                t.topic(topic).cleanup_policy,
                CleanupPolicy::Compact,
                "{}",
                t.name
            );
        }
        assert_eq!(t.topic(Topic::Packs).partitions, 1);
        assert_eq!(t.inputs(Service::Health).first(), Some(&Topic::Perf));
        assert!(t.outputs(Service::Ingest).contains(&Topic::Perf));
        assert_eq!(t.group(Service::Health).ok(), Some("healthstream-health"));
        t.check_consumes(Service::Health, Topic::Perf)
            .expect("wired");
        let err = t
            .check_produces(Service::Health, Topic::Perf)
            .expect_err("health does not produce perf");
        assert!(err
            .to_string()
            .contains("does not produce topic healthstream.perf"));
    }
}

#[test]
fn scaled_topology_is_replicated() {
    let scaled = &shipped()[2];
    assert_eq!(scaled.topic(Topic::Alerts).replication_factor, 3);
    assert!(scaled.topic(Topic::Perf).partitions > shipped()[0].topic(Topic::Perf).partitions);
}

#[test]
fn reports_every_problem_at_once() {
    let text = r#"
name = "broken"
[defaults]
partitions = 0
[topics."healthstream.perf"]
contract = "alert"
key = "root_host"
partitions = 3
cleanup_policy = "delete"
retention = "forever"
producers = []
consumers = ["health"]
[topics."healthstream.alerts"]
contract = "alert"
key = "alert_id"
partitions = 5
cleanup_policy = "delete"
producers = ["health"]
[topics.'healthstream.bogus']
contract = "alert"
key = "root_host"
cleanup_policy = "delete"
producers = ["health"]
[services.health]
group = "g"
[services.connector]
group = "g"
"#;
    let err = Topology::parse(text, Path::new("broken.toml")).expect_err("invalid");
    let TopologyError::Invalid { problems, .. } = &err else {
        panic!("expected Invalid, got {err}");
    };
    let all = problems.join("\n");
    for needle in [
        "defaults.partitions must be at least 1",
        "topics.\"healthstream.perf\": contract is \"alert\"",
        "retention: \"forever\"",
        "topics.\"healthstream.perf\": no producer",
        "topics.\"healthstream.alerts\": must be compacted",
        "topics.\"healthstream.bogus\": not a healthstream topic",
        "topic \"healthstream.discovery\" is not declared",
        "same partition count",
        "share consumer group \"g\"",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn parse_errors_say_where() {
    let err = Topology::parse(
        "name = \"x\"\n[defaults]\npartitions = \"four\"\n",
        Path::new("t.toml"),
    )
    .expect_err("bad type");
    let msg = err.to_string();
    assert!(
        msg.contains("t.toml") && msg.contains("partitions"),
        "{msg}"
    );
    let err =
        Topology::parse("name = \"x\"\nunknown = 1\n", Path::new("t.toml")).expect_err("unknown");
    assert!(err.to_string().contains("unknown"), "{err}");
}

/// Code names topics only through `Topic`; any literal topic name in the sources must be
/// declared in every topology.
#[test]
fn code_uses_only_declared_topics() {
    let declared: BTreeSet<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
    let mut offenders = Vec::new();
    let mut stack = vec![
        repo().join("crates"),
        repo().join("services"),
        repo().join("tests"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(pos) = rest.find("\"healthstream.") {
                    let tail = &rest[pos + 1..];
                    let end = tail.find('"').unwrap_or(tail.len());
                    let name = &tail[..end];
                    let is_topic_like = name[13..]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-')
                        && !name.ends_with('.');
                    if is_topic_like && !declared.contains(name) {
                        offenders.push(format!("{}:{}: {name}", path.display(), i + 1));
                    }
                    rest = &tail[end.min(tail.len())..];
                    if rest.starts_with('"') {
                        rest = &rest[1..];
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "undeclared topics used in code:\n{}",
        offenders.join("\n")
    );
    for t in shipped() {
        for name in &declared {
            assert!(Topic::from_name(name).is_some_and(|topic| t.topic(topic).partitions > 0));
        }
    }
}
