//! Model costs: expression evaluation (per data item, on the health processor's hot path),
//! validating the shipped packs, resolving a workflow's parameters for an instance, and
//! importing a real SCOM management pack.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use healthstream_model::expr::{Expr, Path, Subject, Value};
use healthstream_model::load::parse_pack;
use healthstream_model::overrides::{resolve_all, InstanceContext};
use healthstream_model::validate::validate;
use healthstream_model::{scom, shipped, Catalog};

/// A journal event as the engine will present it.
struct Event {
    fields: Vec<(&'static str, Value<'static>)>,
}

impl Subject for Event {
    fn lookup(&self, path: &Path) -> Option<Value<'_>> {
        let name = path.simple_name()?;
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| match v {
                Value::Text(t) => Value::text(t),
                other => other.clone(),
            })
    }
}

fn benches(c: &mut Criterion) {
    let event = Event {
        fields: vec![
            ("EventId", Value::Number(7036.0)),
            ("Source", Value::text("systemd")),
            ("Level", Value::text("ERROR")),
            (
                "Message",
                Value::text("nginx.service: Main process exited, code=killed, status=9/KILL"),
            ),
        ],
    };
    let filter = Expr::parse(r#"Source == "systemd" and (Level == "ERROR" or Level == "CRITICAL") and Message contains "exited""#)
        .expect("parses");
    let regex =
        Expr::parse(r#"Message matches "^[a-z]+\.service: Main process exited""#).expect("parses");
    c.bench_function("expr/eval three clauses", |b| {
        b.iter(|| black_box(filter.eval(black_box(&event))))
    });
    c.bench_function("expr/eval regex", |b| {
        b.iter(|| black_box(regex.eval(black_box(&event))))
    });
    c.bench_function("expr/parse three clauses", |b| {
        b.iter(|| Expr::parse(black_box(r#"Source == "systemd" and (Level == "ERROR" or Level == "CRITICAL") and Message contains "exited""#)))
    });

    c.bench_function("packs/parse and validate the shipped packs", |b| {
        b.iter(|| {
            let packs = shipped().expect("parse");
            black_box(validate(&Catalog::new(packs)))
        })
    });

    let tuning = r#"[pack]
id = "Tuning"
version = "1.0"
[[reference]]
pack = "System.Library"
version = "1.0"
[[reference]]
pack = "Healthstream.Linux"
version = "1.0"
[[override]]
id = "T.A"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 15.0
context = "Linux.Filesystem"
[[override]]
id = "T.B"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 20.0
context = "Linux.Computer"
[[override]]
id = "T.C"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "critical"
value = 3.0
context = "Linux.Filesystem"
instance = "fs-var"
"#;
    let mut packs = shipped().expect("parse");
    packs.push(parse_pack(tuning, &PathBuf::from("tuning.toml")).expect("tuning"));
    let catalog = Catalog::new(packs);
    let fs = InstanceContext {
        id: "fs-var".into(),
        class: "Linux.Filesystem".into(),
        hosts: vec![("web-01".into(), "Linux.Computer".into())],
        groups: vec![],
    };
    c.bench_function("overrides/resolve every parameter of a monitor", |b| {
        b.iter(|| {
            black_box(
                resolve_all(
                    &catalog,
                    "Linux.Monitor.FilesystemFreeSpace",
                    black_box(&fs),
                )
                .expect("resolves"),
            )
        })
    });

    let f5 = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/mps/04_Juanito99_F5_BIGIP_OpsMgr_ABC.F5.BIGIP.xml");
    if let Ok(bytes) = std::fs::read(&f5) {
        let present = BTreeMap::new();
        c.bench_function("scom/import F5 BIG-IP (340 KB)", |b| {
            b.iter(|| black_box(scom::import(black_box(&bytes), &f5, &present).expect("imports")))
        });
    }
}

criterion_group!(model, benches);
criterion_main!(model);
