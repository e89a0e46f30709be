//! Override resolution: one test per precedence rule (DESIGN.md section 4).

use std::path::Path;

use healthstream_model::load::parse_pack;
use healthstream_model::overrides::{resolve, InstanceContext, Precedence};
use healthstream_model::params::ParamValue;
use healthstream_model::validate::validate;
use healthstream_model::{shipped, Catalog};

/// A computer class hosting disks (derived from an abstract disk base), a group, and a monitor
/// on disks whose threshold is overridable.
const MODEL: &str = r#"
[pack]
id = "M"
version = "1.0"
sealed = true

[[reference]]
pack = "System.Library"
version = "1.0"

[[class]]
id = "M.Box"
base = "System.Computer"

[[class]]
id = "M.DiskBase"
base = "System.LogicalEntity"
abstract = true
host = "M.Box"

[[class]]
id = "M.Disk"
base = "M.DiskBase"

[[class.property]]
name = "Name"
key = true

[[group]]
id = "M.Important"

[[group.rule]]
class = "M.Disk"
expression = 'Name == "sda"'

[[group]]
id = "M.Other"

[[group.rule]]
class = "M.Disk"

[[monitor]]
id = "M.Free"
target = "M.Disk"
parent = "System.Health.AvailabilityState"
overridable = ["threshold"]

[monitor.source]
type = "perf"
object = "Disk"
counter = "Free"
instance = '$Target/Property[Name="Name"]$'
interval = "1m"

[monitor.detect]
type = "simple_threshold"
direction = "below"
threshold = 10.0
"#;

fn pack(id: &str, sealed: bool, overrides: &[(&str, &str, Option<&str>, bool, f64)]) -> String {
    let mut s = format!(
        "[pack]\nid = \"{id}\"\nversion = \"1.0\"\nsealed = {sealed}\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n[[reference]]\npack = \"M\"\nversion = \"1.0\"\n"
    );
    for (oid, context, instance, enforced, value) in overrides {
        s.push_str(&format!(
            "[[override]]\nid = \"{oid}\"\nworkflow = \"M.Free\"\nparameter = \"threshold\"\nvalue = {value:?}\ncontext = \"{context}\"\nenforced = {enforced}\n"
        ));
        if let Some(i) = instance {
            s.push_str(&format!("instance = \"{i}\"\n"));
        }
    }
    s
}

fn catalog(extra: &[String]) -> Catalog {
    let mut packs = shipped().expect("shipped");
    packs.push(parse_pack(MODEL, Path::new("m.toml")).expect("model parses"));
    for (i, t) in extra.iter().enumerate() {
        packs.push(parse_pack(t, Path::new(&format!("o{i}.toml"))).expect("parses"));
    }
    let c = Catalog::new(packs);
    let problems = validate(&c);
    assert!(problems.is_empty(), "{problems:?}");
    c
}

/// Disk `sda` on box `box1`, member of M.Important (and M.Other).
fn disk() -> InstanceContext {
    InstanceContext {
        id: "disk-sda".into(),
        class: "M.Disk".into(),
        hosts: vec![("box1".into(), "M.Box".into())],
        groups: vec![("M.Important".into(), 0), ("M.Other".into(), 0)],
    }
}

fn winner(c: &Catalog) -> (String, f64, Option<Precedence>) {
    let r = resolve(c, "M.Free", "threshold", &disk()).expect("resolves");
    let v = r.value.as_f64().expect("number");
    let id = r
        .candidates
        .first()
        .map(|c| c.override_id.clone())
        .unwrap_or_default();
    (id, v, r.decided_by.first().copied())
}

#[test]
fn no_override_gives_the_defined_value() {
    let c = catalog(&[]);
    let r = resolve(&c, "M.Free", "threshold", &disk()).expect("resolves");
    assert_eq!(r.value, ParamValue::Float(10.0));
    assert!(r.candidates.is_empty());
    assert!(r.to_string().contains("no override applies"), "{r}");
}

#[test]
fn instance_beats_group_beats_class() {
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.Class", "M.Disk", None, false, 1.0),
            ("U.Group", "M.Important", None, false, 2.0),
            ("U.Instance", "M.Disk", Some("disk-sda"), false, 3.0),
        ],
    )]);
    let r = resolve(&c, "M.Free", "threshold", &disk()).expect("resolves");
    let order: Vec<&str> = r
        .candidates
        .iter()
        .map(|c| c.override_id.as_str())
        .collect();
    assert_eq!(order, ["U.Instance", "U.Group", "U.Class"]);
    assert_eq!(r.value, ParamValue::Float(3.0));
    assert_eq!(r.decided_by, [Precedence::Context, Precedence::Context]);
    let text = r.to_string();
    assert!(text.contains("winner U.Instance"), "{text}");
    assert!(
        text.contains("loses to U.Instance: instance beats group beats class"),
        "{text}"
    );
}

#[test]
fn enforced_beats_not_enforced_at_the_same_level_only() {
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.A", "M.Disk", None, false, 1.0),
            ("U.B", "M.Disk", None, true, 2.0),
        ],
    )]);
    assert_eq!(winner(&c), ("U.B".into(), 2.0, Some(Precedence::Enforced)));
    // An enforced class override does not beat a group override: specificity comes first.
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.A", "M.Other", None, false, 1.0),
            ("U.B", "M.Disk", None, true, 2.0),
        ],
    )]);
    assert_eq!(winner(&c), ("U.A".into(), 1.0, Some(Precedence::Context)));
}

#[test]
fn unsealed_beats_sealed() {
    let c = catalog(&[
        pack("S", true, &[("S.A", "M.Disk", None, false, 1.0)]),
        pack("U", false, &[("U.A", "M.Disk", None, false, 2.0)]),
    ]);
    assert_eq!(winner(&c), ("U.A".into(), 2.0, Some(Precedence::Unsealed)));
}

#[test]
fn hosted_class_beats_host_class() {
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.A", "M.Box", None, false, 1.0),
            ("U.B", "M.Disk", None, false, 2.0),
        ],
    )]);
    assert_eq!(winner(&c), ("U.B".into(), 2.0, Some(Precedence::Hosting)));
    // An instance override on the host applies to what it hosts, after one on the disk.
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.A", "M.Box", Some("box1"), false, 1.0),
            ("U.B", "M.Disk", Some("disk-sda"), false, 2.0),
        ],
    )]);
    assert_eq!(winner(&c), ("U.B".into(), 2.0, Some(Precedence::Hosting)));
}

#[test]
fn derived_class_beats_base_class() {
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.A", "M.DiskBase", None, false, 1.0),
            ("U.B", "M.Disk", None, false, 2.0),
        ],
    )]);
    assert_eq!(
        winner(&c),
        ("U.B".into(), 2.0, Some(Precedence::DerivedClass))
    );
}

#[test]
fn full_ties_are_deterministic() {
    let overrides = [
        ("U.Z", "M.Important", None, false, 1.0),
        ("U.A", "M.Other", None, false, 2.0),
    ];
    let c = catalog(&[pack("U", false, &overrides)]);
    assert_eq!(winner(&c), ("U.A".into(), 2.0, Some(Precedence::Tie)));
    let mut reversed = overrides;
    reversed.reverse();
    let c = catalog(&[pack("U", false, &reversed)]);
    assert_eq!(winner(&c).0, "U.A", "file order does not matter");
    // Across packs: the smaller pack id first, whatever the load order.
    let a = pack("PA", false, &[("PA.X", "M.Disk", None, false, 1.0)]);
    let b = pack("PB", false, &[("PB.X", "M.Disk", None, false, 2.0)]);
    assert_eq!(winner(&catalog(&[a.clone(), b.clone()])).0, "PA.X");
    assert_eq!(winner(&catalog(&[b, a])).0, "PA.X");
}

#[test]
fn overrides_that_do_not_cover_the_instance_are_ignored() {
    let c = catalog(&[pack(
        "U",
        false,
        &[
            ("U.OtherDisk", "M.Disk", Some("disk-sdb"), false, 1.0),
            (
                "U.Connector",
                "System.Group.AllCollectors",
                None,
                false,
                2.0,
            ),
        ],
    )]);
    let r = resolve(&c, "M.Free", "threshold", &disk()).expect("resolves");
    assert!(r.candidates.is_empty(), "{r}");
    assert_eq!(r.value, ParamValue::Float(10.0));
}

#[test]
fn resolution_errors_are_clear() {
    let c = catalog(&[]);
    let e = resolve(&c, "M.Nope", "threshold", &disk()).expect_err("unknown workflow");
    assert!(e.to_string().contains("no discovery, rule, monitor"), "{e}");
    let e = resolve(&c, "M.Free", "colour", &disk()).expect_err("unknown parameter");
    assert!(
        e.to_string()
            .contains("has no parameter \"colour\"; it has: "),
        "{e}"
    );
    let mut wrong = disk();
    wrong.class = "M.Box".into();
    let e = resolve(&c, "M.Free", "threshold", &wrong).expect_err("not a target");
    assert!(e.to_string().contains("targets M.Disk"), "{e}");
}
