//! One test per validation error: a small pack on top of the standard library, and the problem
//! it must produce (message, element and line).

use std::path::Path;

use healthstream_model::load::parse_pack;
use healthstream_model::validate::validate;
use healthstream_model::{shipped, Catalog, Problem};

const HEAD: &str = "[pack]\nid = \"T\"\nversion = \"1.0\"\n\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n";

/// Validate `body` (appended to a pack header referencing the standard library), plus extra
/// packs, and return the problems of pack T.
fn problems_with(body: &str, extra: &[&str]) -> Vec<Problem> {
    let mut packs = shipped().expect("shipped packs parse");
    let text = format!("{HEAD}{body}");
    packs.push(parse_pack(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}")));
    for (i, x) in extra.iter().enumerate() {
        packs.push(
            parse_pack(x, Path::new(&format!("x{i}.toml"))).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    validate(&Catalog::new(packs))
        .into_iter()
        .filter(|p| p.pack.as_deref() != Some("System.Library"))
        .collect()
}

fn problems(body: &str) -> Vec<Problem> {
    problems_with(body, &[])
}

/// Exactly one problem of T, mentioning `needle`, on `element`, at `line` of the body (1 =
/// first body line).
fn expect_one(body: &str, element: &str, line: Option<usize>, needle: &str) {
    let ps = problems(body);
    let shown: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        ps.len(),
        1,
        "expected one problem, got:\n{}",
        shown.join("\n")
    );
    let p = &ps[0];
    assert!(p.message.contains(needle), "{p}");
    assert_eq!(p.element.as_deref(), Some(element), "{p}");
    let head_lines = HEAD.lines().count();
    assert_eq!(p.line, line.map(|l| l + head_lines), "{p}");
    assert_eq!(p.file.as_deref(), Some(Path::new("t.toml")));
}

const COMPUTER: &str = "[[class]]\nid = \"T.Box\"\nbase = \"System.Computer\"\n";

#[test]
fn well_formed_pack_has_no_problems() {
    let ps = problems(COMPUTER);
    assert!(ps.is_empty(), "{ps:?}");
}

#[test]
fn unknown_reference() {
    expect_one(
        "[[class]]\nid = \"T.A\"\nbase = \"T.Nope\"\n",
        "T.A",
        Some(2),
        "base \"T.Nope\": no such element",
    );
}

#[test]
fn element_of_a_pack_not_referenced() {
    let other = "[pack]\nid = \"O\"\nversion = \"1\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1\"\n[[class]]\nid = \"O.Base\"\nbase = \"System.LogicalEntity\"\nabstract = true\n";
    let ps = problems_with(
        "[[class]]\nid = \"T.A\"\nbase = \"O.Base\"\nabstract = true\n",
        &[other],
    );
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0]
            .message
            .contains("is in pack O, which this pack does not reference"),
        "{}",
        ps[0]
    );
}

#[test]
fn ambiguous_reference() {
    let a = "[pack]\nid = \"A\"\nversion = \"1\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1\"\n[[class]]\nid = \"Dup.Base\"\nbase = \"System.LogicalEntity\"\nabstract = true\n";
    let b = a.replace("id = \"A\"", "id = \"B\"");
    let body = "[[reference]]\npack = \"A\"\nversion = \"1\"\n[[reference]]\npack = \"B\"\nversion = \"1\"\n[[class]]\nid = \"T.A\"\nbase = \"Dup.Base\"\nabstract = true\n";
    let ps = problems_with(body, &[a, &b]);
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("\"Dup.Base\" is ambiguous: defined in A and B")),
        "{ps:?}"
    );
}

#[test]
fn wrong_kind_of_element() {
    let body = format!(
        "{COMPUTER}[[monitor]]\nid = \"T.M\"\ntarget = \"T.Box\"\nparent = \"System.Computer\"\n[monitor.source]\ntype = \"perf\"\nobject = \"o\"\ncounter = \"c\"\ninterval = \"1m\"\n[monitor.detect]\ntype = \"simple_threshold\"\ndirection = \"above\"\nthreshold = 1.0\n"
    );
    expect_one(
        &body,
        "T.M",
        Some(5),
        "parent \"System.Computer\" is a class, not an aggregate monitor",
    );
}

#[test]
fn duplicate_ids() {
    let body = format!("{COMPUTER}{COMPUTER}");
    expect_one(
        &body,
        "T.Box",
        Some(5),
        "duplicate id: already defined as a class in pack T",
    );
    let ps = problems(
        "[[class]]\nid = \"System.Computer\"\nbase = \"System.Entity\"\nabstract = true\n",
    );
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("duplicate id: already defined as a class in pack System.Library")),
        "{ps:?}"
    );
}

#[test]
fn inheritance_cycle() {
    let body = "[[class]]\nid = \"T.A\"\nbase = \"T.B\"\nabstract = true\n[[class]]\nid = \"T.B\"\nbase = \"T.A\"\nabstract = true\n";
    let ps = problems(body);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0]
            .message
            .contains("inheritance cycle: T.A -> T.B -> T.A"),
        "{}",
        ps[0]
    );
    assert_eq!(ps[0].line, Some(HEAD.lines().count() + 2));
}

#[test]
fn hosting_cycle() {
    let body = "[[class]]\nid = \"T.A\"\nbase = \"System.LogicalEntity\"\nhost = \"T.B\"\n[[class]]\nid = \"T.B\"\nbase = \"System.LogicalEntity\"\nhost = \"T.A\"\n";
    let ps = problems(body);
    assert!(
        ps.iter()
            .any(|p| p.message.contains("hosting cycle: T.A -> T.B -> T.A")),
        "{ps:?}"
    );
}

#[test]
fn monitor_tree_cycle() {
    let body = format!(
        "{COMPUTER}[[aggregate]]\nid = \"T.X\"\ntarget = \"T.Box\"\nparent = \"T.Y\"\nalgorithm = \"worst_of\"\n[[aggregate]]\nid = \"T.Y\"\ntarget = \"T.Box\"\nparent = \"T.X\"\nalgorithm = \"worst_of\"\n"
    );
    let ps = problems(&body);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0]
            .message
            .contains("monitor tree cycle: T.X -> T.Y -> T.X"),
        "{}",
        ps[0]
    );
}

#[test]
fn containment_rollup_cycle() {
    let class = |id: &str| {
        format!("[[class]]\nid = \"{id}\"\nbase = \"System.LogicalEntity\"\n[[class.property]]\nname = \"K\"\nkey = true\n")
    };
    let rel = |id: &str, s: &str, t: &str| {
        format!("[[relationship]]\nid = \"{id}\"\nkind = \"containment\"\nsource = \"{s}\"\ntarget = \"{t}\"\n")
    };
    let dep = |id: &str, t: &str, r: &str| {
        format!("[[dependency]]\nid = \"{id}\"\ntarget = \"{t}\"\nparent = \"System.Health.AvailabilityState\"\nrelationship = \"{r}\"\nmember_monitor = \"System.Health.AvailabilityState\"\nalgorithm = \"worst_of\"\n")
    };
    let body = [
        class("T.A"),
        class("T.B"),
        rel("T.AContainsB", "T.A", "T.B"),
        rel("T.BContainsA", "T.B", "T.A"),
        dep("T.A.Rollup", "T.A", "T.AContainsB"),
        dep("T.B.Rollup", "T.B", "T.BContainsA"),
    ]
    .concat();
    let ps = problems(&body);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0]
            .message
            .contains("containment rollup cycle between classes"),
        "{}",
        ps[0]
    );
}

#[test]
fn module_type_mismatch() {
    let body = format!(
        "{COMPUTER}[[monitor]]\nid = \"T.M\"\ntarget = \"T.Box\"\nparent = \"System.Health.PerformanceState\"\n[monitor.source]\ntype = \"event\"\nlog = \"journal\"\n[monitor.detect]\ntype = \"consecutive_samples\"\ndirection = \"above\"\nthreshold = 1.0\nsamples = 2\n"
    );
    expect_one(
        &body,
        "T.M",
        Some(5),
        "takes perf data, but receives event data",
    );
    let rule = format!(
        "{COMPUTER}[[rule]]\nid = \"T.R\"\ntarget = \"T.Box\"\naction = [{{ type = \"collect_perf\" }}]\n[rule.source]\ntype = \"command\"\ncommand = [\"true\"]\ninterval = \"1m\"\n"
    );
    expect_one(
        &rule,
        "T.R",
        Some(5),
        "action collect_perf: cannot take property bag data",
    );
    let mapped = rule.replace(
        "interval = \"1m\"\n",
        "interval = \"1m\"\n[[rule.condition]]\ntype = \"map_perf\"\nobject = \"o\"\ncounter = \"c\"\nvalue = \"$Data/Property[@Name='v']$\"\n",
    );
    assert!(
        problems(&mapped).is_empty(),
        "a data mapper makes it perf data"
    );
}

#[test]
fn missing_key_property() {
    expect_one(
        "[[class]]\nid = \"T.Thing\"\nbase = \"System.LogicalEntity\"\n",
        "T.Thing",
        Some(2),
        "missing key property",
    );
}

#[test]
fn override_problems() {
    let monitor = format!(
        "{COMPUTER}[[monitor]]\nid = \"T.M\"\ntarget = \"T.Box\"\nparent = \"System.Health.PerformanceState\"\noverridable = [\"threshold\"]\n[monitor.source]\ntype = \"perf\"\nobject = \"o\"\ncounter = \"c\"\ninterval = \"1m\"\n[monitor.detect]\ntype = \"simple_threshold\"\ndirection = \"above\"\nthreshold = 1.0\n"
    );
    let ov = |param: &str, value: &str, context: &str| {
        format!("{monitor}[[override]]\nid = \"T.O\"\nworkflow = \"T.M\"\nparameter = \"{param}\"\nvalue = {value}\ncontext = \"{context}\"\n")
    };
    assert!(problems(&ov("threshold", "5.0", "T.Box")).is_empty());
    assert!(problems(&ov("enabled", "false", "System.Group.AllComputers")).is_empty());
    let line = Some(monitor.lines().count() + 2);
    expect_one(
        &ov("interval", "\"5m\"", "T.Box"),
        "T.O",
        line,
        "parameter \"interval\" of T.M is not overridable",
    );
    expect_one(
        &ov("colour", "1", "T.Box"),
        "T.O",
        line,
        "T.M has no parameter \"colour\"",
    );
    expect_one(
        &ov("threshold", "\"high\"", "T.Box"),
        "T.O",
        line,
        "value \"high\" is text, but threshold is a number",
    );
    let with_interval = monitor.replace(
        "overridable = [\"threshold\"]",
        "overridable = [\"threshold\", \"interval\", \"direction\"]",
    );
    let ov_param = |param: &str, v: &str| {
        format!("{with_interval}[[override]]\nid = \"T.O\"\nworkflow = \"T.M\"\nparameter = \"{param}\"\nvalue = {v}\ncontext = \"T.Box\"\n")
    };
    let ov_interval = |v: &str| ov_param("interval", v);
    expect_one(
        &ov_param("direction", "\"sideways\""),
        "T.O",
        line,
        "value \"sideways\" of direction is not one of above, below",
    );
    assert!(problems(&ov_interval("\"5m\"")).is_empty());
    expect_one(
        &ov_interval("\"soon\""),
        "T.O",
        line,
        "interval \"soon\" is not a duration",
    );
    expect_one(
        &ov("threshold", "5", "System.Connector"),
        "T.O",
        line,
        "context System.Connector can never apply",
    );
    let bad_decl = monitor.replace(
        "overridable = [\"threshold\"]",
        "overridable = [\"thresold\"]",
    );
    expect_one(
        &bad_decl,
        "T.M",
        Some(5),
        "overridable parameter \"thresold\" is not a configuration parameter",
    );
}

#[test]
fn missing_and_old_referenced_packs() {
    let ps = problems("[[reference]]\npack = \"Nowhere\"\nversion = \"2.0\"\n");
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("references pack Nowhere (>= 2.0), which is not loaded")),
        "{ps:?}"
    );
    let text = HEAD.replace(
        "version = \"1.0\"\n\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"",
        "version = \"1.0\"\n\n[[reference]]\npack = \"System.Library\"\nversion = \"9.0\"",
    );
    let mut packs = shipped().expect("shipped");
    packs.push(parse_pack(&text, Path::new("t.toml")).expect("parses"));
    let ps = validate(&Catalog::new(packs));
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("references pack System.Library >= 9.0, but version 1.0.0 is loaded")),
        "{ps:?}"
    );
}

#[test]
fn target_references_are_checked() {
    let body = format!(
        "{COMPUTER}[[task]]\nid = \"T.T\"\ntarget = \"T.Box\"\ncommand = [\"ping\", '$Target/Property[Name=\"Colour\"]$', '$Target/Host/Property[Name=\"X\"]$']\n"
    );
    let ps = problems(&body);
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert!(ps.iter().any(|p| p
        .message
        .contains("property \"Colour\" is not a property of T.Box")));
    assert!(ps
        .iter()
        .any(|p| p.message.contains("climbs 1 hosts, but T.Box has 0")));
}

#[test]
fn threshold_configuration() {
    let mon = |detect: &str| {
        format!(
        "{COMPUTER}[[monitor]]\nid = \"T.M\"\ntarget = \"T.Box\"\nparent = \"System.Health.PerformanceState\"\n[monitor.source]\ntype = \"perf\"\nobject = \"o\"\ncounter = \"c\"\ninterval = \"1m\"\n[monitor.detect]\n{detect}"
    )
    };
    expect_one(
        &mon(
            "type = \"simple_threshold\"\ndirection = \"below\"\nwarning = 5.0\ncritical = 10.0\n",
        ),
        "T.M",
        Some(5),
        "3-state thresholds out of order",
    );
    expect_one(
        &mon("type = \"simple_threshold\"\ndirection = \"below\"\n"),
        "T.M",
        Some(5),
        "give either threshold",
    );
    expect_one(
        &mon("type = \"average_threshold\"\ndirection = \"below\"\nthreshold = 1.0\nsamples = 0\n"),
        "T.M",
        Some(5),
        "samples must be at least 1",
    );
    expect_one(&mon("type = \"double_threshold\"\nlow = 5.0\nhigh = 1.0\nbelow = \"healthy\"\nbetween = \"warning\"\nabove = \"critical\"\n"), "T.M", Some(5), "low 5 is greater than high 1");
}

#[test]
fn dependency_configuration() {
    let body = "[[dependency]]\nid = \"T.D\"\ntarget = \"System.Computer\"\nparent = \"System.Health.AvailabilityState\"\nrelationship = \"System.ComputerHostsCollector\"\nmember_monitor = \"System.Health.AvailabilityState\"\nalgorithm = \"percentage\"\n";
    expect_one(
        body,
        "T.D",
        Some(2),
        "algorithm percentage needs percentage",
    );
    let wrong = body
        .replace(
            "target = \"System.Computer\"",
            "target = \"System.Connector\"",
        )
        .replace("percentage\"\n", "worst_of\"\n");
    expect_one(
        &wrong,
        "T.D",
        Some(2),
        "target System.Connector is not the source class System.Computer",
    );
}

#[test]
fn discovery_needs_discovery_data_and_groups_read_real_properties() {
    let body = format!(
        "{COMPUTER}[[discovery]]\nid = \"T.D\"\ntarget = \"T.Box\"\nclasses = [\"T.Box\"]\n[discovery.source]\ntype = \"perf\"\nobject = \"o\"\ncounter = \"c\"\ninterval = \"1m\"\n"
    );
    expect_one(
        &body,
        "T.D",
        Some(5),
        "a discovery needs a source that produces discovery data",
    );
    let group = format!("{COMPUTER}[[group]]\nid = \"T.G\"\n[[group.rule]]\nclass = \"T.Box\"\nexpression = 'Colour == \"red\" and contained(\"T.Nope\")'\n");
    let ps = problems(&group);
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert!(ps.iter().any(|p| p
        .message
        .contains("expression reads Colour, which is not a property of T.Box")));
    assert!(ps.iter().any(|p| p
        .message
        .contains("contained(...) \"T.Nope\": no such element")));
}

#[test]
fn every_problem_is_reported_at_once() {
    let body = "[[class]]\nid = \"T.A\"\nbase = \"T.Nope\"\n[[class]]\nid = \"T.Thing\"\nbase = \"System.LogicalEntity\"\n[[rule]]\nid = \"T.R\"\ntarget = \"T.Missing\"\naction = [{ type = \"collect_event\" }]\n[rule.source]\ntype = \"perf\"\nobject = \"o\"\ncounter = \"c\"\ninterval = \"1m\"\n";
    let ps = problems(body);
    let shown: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
    assert_eq!(ps.len(), 4, "{}", shown.join("\n"));
    for needle in [
        "no such element",
        "missing key property",
        "target \"T.Missing\"",
        "collect_event: cannot take perf data",
    ] {
        assert!(
            shown.iter().any(|s| s.contains(needle)),
            "{needle} missing from:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn subgroups_must_be_other_groups_without_cycles() {
    let group = |id: &str, subgroups: &str| {
        format!("[[group]]\nid = \"{id}\"\nsubgroups = [{subgroups}]\n")
    };
    expect_one(&group("T.A", "\"T.Nope\""), "T.A", Some(2), "T.Nope");
    expect_one(&group("T.A", "\"T.A\""), "T.A", Some(2), "its own subgroup");
    let body = format!("{}{}", group("T.A", "\"T.B\""), group("T.B", "\"T.A\""));
    let ps = problems(&body);
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("subgroups form a cycle: T.A -> T.B -> T.A")),
        "{ps:?}"
    );
    let fine = format!("{}{}", group("T.A", "\"T.B\""), group("T.B", ""));
    assert!(problems(&fine).is_empty(), "{:?}", problems(&fine));
}
