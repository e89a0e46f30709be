//! SCOM import of the six real management packs: exact element counts, a report entry for every
//! element, missing packs reported, and the result a valid native pack apart from what the
//! missing packs would provide.

use std::collections::BTreeMap;
use std::path::PathBuf;

use healthstream_model::load::parse_pack;
use healthstream_model::scom::{self, decode::decode, Outcome};
use healthstream_model::validate::validate;
use healthstream_model::{shipped, Catalog, Pack};

fn mps_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mps");
    assert!(
        dir.is_dir(),
        "the SCOM test packs are expected at {}",
        dir.display()
    );
    dir
}

fn present() -> BTreeMap<String, healthstream_model::pack::Version> {
    shipped()
        .expect("shipped")
        .into_iter()
        .map(|p| (p.pack.pack.id.clone(), p.pack.pack.version.clone()))
        .collect()
}

/// Counts taken from the XML text itself, independently of the importer.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    classes: usize,
    groups: usize,
    relationships: usize,
    unit_monitors: usize,
    aggregate_monitors: usize,
    dependency_monitors: usize,
    rules: usize,
    overrides: usize,
    diagnostics: usize,
    recoveries: usize,
}

fn xml_counts(text: &str) -> Counts {
    let count = |pattern: &str| {
        regex::Regex::new(pattern)
            .expect("regex")
            .find_iter(text)
            .count()
    };
    let class_tags: Vec<&str> = regex::Regex::new(r"<ClassType\s[^>]*>")
        .expect("regex")
        .find_iter(text)
        .map(|m| m.as_str())
        .collect();
    let groups = class_tags
        .iter()
        .filter(|t| t.contains("Singleton=\"true\""))
        .filter(|t| {
            ["InstanceGroup\"", "ComputerGroup\"", "System.Group\""]
                .iter()
                .any(|b| t.contains(b))
        })
        .count();
    Counts {
        classes: class_tags.len() - groups,
        groups,
        relationships: count(r"<RelationshipType\s"),
        unit_monitors: count(r"<UnitMonitor\s"),
        aggregate_monitors: count(r"<AggregateMonitor\s"),
        dependency_monitors: count(r"<DependencyMonitor\s"),
        rules: count(r"<Rule\s"),
        overrides: text
            .split("<Overrides>")
            .skip(1)
            .map(|section| {
                let section = section.split("</Overrides>").next().unwrap_or("");
                regex::Regex::new(r"<\w*Override\s")
                    .expect("regex")
                    .find_iter(section)
                    .count()
            })
            .sum(),
        diagnostics: count(r"<Diagnostic\s"),
        recoveries: count(r"<Recovery\s"),
    }
}

fn native_counts(p: &Pack) -> Counts {
    Counts {
        classes: p.classes.len(),
        groups: p.groups.len(),
        relationships: p.relationships.len(),
        unit_monitors: p.monitors.len(),
        aggregate_monitors: p.aggregates.len(),
        dependency_monitors: p.dependencies.len(),
        rules: p.rules.len(),
        overrides: p.overrides.len(),
        diagnostics: p.diagnostics.len(),
        recoveries: p.recoveries.len(),
    }
}

fn import(name: &str) -> (scom::ScomImport, Counts) {
    let path = mps_dir().join(name);
    let bytes = std::fs::read(&path).expect("read the pack");
    let text = decode(&bytes).expect("decodes");
    let imported = scom::import(&bytes, &path, &present()).unwrap_or_else(|e| panic!("{e}"));
    (imported, xml_counts(&text))
}

/// The imported pack: counts equal, every element reported, TOML round trip, and validation
/// finds nothing but what the missing packs would provide.
fn check(name: &str, expect: impl Fn(&Counts)) -> scom::ScomImport {
    let (imp, xml) = import(name);
    assert_eq!(
        native_counts(&imp.pack),
        xml,
        "{name}: imported counts differ from the XML"
    );
    expect(&xml);
    let elements_in_file = xml.classes
        + xml.groups
        + xml.relationships
        + xml.unit_monitors
        + xml.aggregate_monitors
        + xml.dependency_monitors
        + xml.rules
        + xml.overrides
        + xml.diagnostics
        + xml.recoveries;
    let reported_health_model = imp
        .report
        .entries
        .iter()
        .filter(|e| e.outcome != Outcome::Skipped)
        .count();
    assert!(
        reported_health_model >= elements_in_file,
        "{name}: {reported_health_model} entries for {elements_in_file} elements"
    );
    for e in &imp.report.entries {
        assert!(
            !e.id.is_empty() || e.outcome == Outcome::Skipped,
            "{name}: entry without id {e:?}"
        );
        if e.outcome != Outcome::Imported {
            assert!(
                !e.notes.is_empty(),
                "{name}: {} {} has no reason",
                e.scom_type,
                e.id
            );
        }
    }
    let toml = imp.pack.to_toml().expect("serializes");
    let back = parse_pack(&toml, &PathBuf::from(format!("{name}.toml")))
        .unwrap_or_else(|e| panic!("{name}: {e}\n{toml}"));
    assert_eq!(back.pack, imp.pack, "{name}: TOML round trip");
    let mut packs = shipped().expect("shipped");
    packs.push(back);
    let problems = validate(&Catalog::new(packs));
    let missing: Vec<&str> = imp
        .report
        .missing_packs
        .iter()
        .map(|m| m.pack.as_str())
        .collect();
    let unexplained: Vec<String> = problems
        .iter()
        .filter(|p| !missing.iter().any(|m| p.message.contains(m)))
        .map(|p| p.to_string())
        .collect();
    assert!(
        unexplained.is_empty(),
        "{name}: problems not explained by missing packs:\n{}",
        unexplained.join("\n")
    );
    imp
}

#[test]
fn f5_big_ip() {
    let imp = check("04_Juanito99_F5_BIGIP_OpsMgr_ABC.F5.BIGIP.xml", |c| {
        assert_eq!(
            (
                c.classes,
                c.relationships,
                c.aggregate_monitors,
                c.dependency_monitors
            ),
            (14, 11, 1, 9)
        );
    });
    let keys: usize = imp
        .pack
        .classes
        .iter()
        .flat_map(|c| &c.properties)
        .filter(|p| p.key)
        .count();
    assert_eq!(keys, 13);
    assert!(imp.pack.relationships.iter().all(|r| r.kind
        == healthstream_model::pack::RelationshipKind::Containment
        || r.kind == healthstream_model::pack::RelationshipKind::Hosting));
    let agg = &imp.pack.aggregates[0];
    assert_eq!(agg.algorithm, healthstream_model::pack::Algorithm::WorstOf);
}

#[test]
fn exchange_queues() {
    let imp = check(
        "05_thekevinholman_Exchange.Queues_Exchange.Queues.xml",
        |c| {
            assert_eq!(
                (
                    c.classes,
                    c.relationships,
                    c.rules,
                    c.unit_monitors,
                    c.dependency_monitors
                ),
                (1, 1, 10, 8, 1)
            );
        },
    );
    use healthstream_model::pack::{DataSource, Detection, Direction};
    let m = imp
        .pack
        .monitors
        .iter()
        .find(|m| m.id == "Exchange.Queues.ExternalAggregateDeliveryQueueLength.Monitor")
        .expect("monitor");
    assert!(m.enabled);
    match &m.detect {
        Detection::ConsecutiveSamples {
            direction,
            threshold,
            samples,
            unhealthy,
        } => {
            assert_eq!(
                (*direction, *threshold, *samples, *unhealthy),
                (
                    Direction::Above,
                    5000.0,
                    2,
                    healthstream_model::pack::Health::Warning
                )
            );
        }
        other => panic!("{other:?}"),
    }
    match &m.source {
        DataSource::Perf {
            object,
            counter,
            instance,
            interval,
        } => {
            assert_eq!(object, "MSExchangeTransport Queues");
            assert!(counter.starts_with("External Aggregate Delivery Queue Length"));
            assert_eq!(instance.as_deref(), Some("_Total"));
            assert_eq!(interval.0.as_secs(), 60);
        }
        other => panic!("{other:?}"),
    }
    assert!(m.alert.as_ref().expect("alert").auto_resolve);
    // The server class is hosted by an Exchange class from a pack that is not present.
    let class = &imp.pack.classes[0];
    assert_eq!(class.host.as_deref(), Some("Microsoft.Exchange.15.Server"));
    assert!(
        imp.report
            .missing_packs
            .iter()
            .any(|m| m.pack.contains("Exchange")),
        "{:?}",
        imp.report.missing_packs
    );
}

#[test]
fn ibm_mq() {
    let imp = check("06_thekevinholman_IBMMQMP_IBM.MQ.xml", |c| {
        assert_eq!((c.classes, c.dependency_monitors, c.rules), (5, 4, 5));
    });
    use healthstream_model::pack::Detection;
    // The service monitor is native; the script monitors keep their states as expressions.
    assert!(imp
        .pack
        .monitors
        .iter()
        .any(|m| matches!(m.detect, Detection::BasicService { .. }) && m.enabled));
    let depth = imp
        .pack
        .monitors
        .iter()
        .find(|m| m.id == "IBM.MQ.QueueDepth.Monitor")
        .expect("queue depth");
    match &depth.detect {
        Detection::Expression { states } => assert_eq!(states.len(), 3),
        other => panic!("{other:?}"),
    }
    assert!(!depth.enabled, "a script source cannot run here");
    let entry = imp
        .report
        .entries
        .iter()
        .find(|e| e.id == "IBM.MQ.QueueDepth.Monitor")
        .expect("reported");
    assert_eq!(entry.outcome, Outcome::ImportedWithChanges);
    assert!(
        entry.notes.iter().any(|n| n.contains("Windows script")),
        "{entry:?}"
    );
    // Perf rules use the data mapper.
    let rule = imp
        .pack
        .rules
        .iter()
        .find(|r| r.id == "IBM.MQ.QueueDepth.PerformanceCollection.Rule")
        .expect("rule");
    assert!(matches!(
        rule.conditions[0],
        healthstream_model::pack::Condition::MapPerf { .. }
    ));
}

#[test]
fn multihome_groups() {
    let imp = check(
        "09_thekevinholman_MultiHomeSCOMAgents_SCOM.MultiHome.xml",
        |c| {
            assert_eq!((c.classes, c.groups), (0, 11));
        },
    );
    let g = imp
        .pack
        .groups
        .iter()
        .find(|g| g.id == "SCOM.MultiHome.NotGWAssigned.Group")
        .expect("group");
    assert_eq!(g.rules.len(), 1);
    assert_eq!(g.rules[0].class, "System.Collector");
    let e = g.rules[0].expression.as_ref().expect("expression");
    let groups = e.groups();
    assert_eq!(groups.len(), 10, "And over 10 NotContained");
    assert!(
        e.to_string()
            .starts_with("not contained(\"SCOM.MultiHome.GW1.Group\") and not contained("),
        "{e}"
    );
}

#[test]
fn override_only_pack() {
    let imp = check(
        "10_blakedrumm_SCOM-Scripts-and-SQL_Overrides.SCOMAgentThresholds2016.xml",
        |c| {
            assert_eq!(c.overrides, 16);
        },
    );
    let missing: Vec<&str> = imp
        .report
        .missing_packs
        .iter()
        .map(|m| m.pack.as_str())
        .collect();
    assert!(!missing.is_empty());
    assert!(imp
        .pack
        .overrides
        .iter()
        .all(|o| o.context == "System.Collector"));
    let thresholds = imp
        .pack
        .overrides
        .iter()
        .filter(|o| o.parameter == "threshold")
        .count();
    assert_eq!(thresholds, 4);
    assert!(imp.pack.overrides.iter().any(|o| o.parameter == "severity"
        && o.value == healthstream_model::params::ParamValue::Text("information".into())));
}

#[test]
fn diagnostics_and_recoveries() {
    let imp = check(
        "13_f1point2_SCOMMPTraining_DiagnosticsAndRecoveries.xml",
        |c| {
            assert_eq!((c.unit_monitors, c.diagnostics, c.recoveries), (3, 3, 1));
        },
    );
    use healthstream_model::pack::Detection;
    assert!(imp
        .pack
        .monitors
        .iter()
        .all(|m| matches!(m.detect, Detection::EventReset { .. })));
}

#[test]
fn report_lists_every_element_with_a_reason() {
    let (imp, _) = import("04_Juanito99_F5_BIGIP_OpsMgr_ABC.F5.BIGIP.xml");
    let text = imp.report.to_string();
    assert!(text.contains("imported with changes"), "{text}");
    assert!(imp
        .report
        .entries
        .iter()
        .any(|e| e.scom_type == "View" && e.outcome == Outcome::Skipped));
    assert!(imp
        .report
        .entries
        .iter()
        .any(|e| e.scom_type == "UnitMonitorType" && e.outcome == Outcome::Skipped));
    let lines: Vec<u32> = imp.report.entries.iter().map(|e| e.line).collect();
    assert!(lines.iter().all(|l| *l > 1));
}
