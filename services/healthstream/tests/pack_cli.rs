//! `healthstream pack ...` through the real binary: validate (good and broken packs), explain,
//! import-scom on the real SCOM packs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn healthstream(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthstream"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run healthstream")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn shipped_packs_validate() {
    let o = healthstream(&["pack", "validate", "packs/"], &repo());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("2 packs valid: Healthstream.Linux 1.0.0, System.Library 1.0.0"),
        "{}",
        text(&o)
    );
}

#[test]
fn broken_packs_fail_with_a_complete_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("broken.toml"),
        r#"[pack]
id = "Broken"
version = "1.0"

[[reference]]
pack = "System.Library"
version = "1.0"

[[class]]
id = "Broken.A"
base = "Broken.Missing"

[[class]]
id = "Broken.Keyless"
base = "System.LogicalEntity"

[[override]]
id = "Broken.O"
workflow = "System.Collector.Heartbeat"
parameter = "colour"
value = 1
context = "System.Collector"
"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("syntax.toml"),
        "[pack]\nid = \"S\"\nversion = ",
    )
    .expect("write");
    let o = healthstream(&["pack", "validate", "."], dir.path());
    assert!(!o.status.success());
    let out = text(&o);
    for needle in [
        "broken.toml:10: Broken: Broken.A: base \"Broken.Missing\": no such element",
        "broken.toml:14: Broken: Broken.Keyless: missing key property",
        "broken.toml:18: Broken: Broken.O: System.Collector.Heartbeat has no parameter \"colour\"",
        "syntax.toml:3: ",
        "4 problem(s)",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
}

#[test]
fn explain_names_the_winner_and_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tuning.toml"),
        r#"[pack]
id = "Tuning"
version = "1.0"

[[reference]]
pack = "System.Library"
version = "1.0.0"

[[reference]]
pack = "Healthstream.Linux"
version = "1.0.0"

[[override]]
id = "Tuning.AllFilesystems"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 15.0
context = "Linux.Filesystem"

[[override]]
id = "Tuning.OneFilesystem"
workflow = "Linux.Monitor.FilesystemFreeSpace"
parameter = "warning"
value = 25.0
context = "Linux.Filesystem"
instance = "fs-var"
"#,
    )
    .expect("write");
    let o = healthstream(
        &[
            "pack",
            "explain",
            "Linux.Monitor.FilesystemFreeSpace",
            "--instance",
            "fs-var",
            "--host",
            "web-01=Linux.Computer",
            "--parameter",
            "warning",
            "--packs",
            "tuning.toml",
        ],
        dir.path(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Linux.Monitor.FilesystemFreeSpace warning = 25"),
        "{out}"
    );
    assert!(out.contains("winner Tuning.OneFilesystem"), "{out}");
    assert!(
        out.contains("loses to Tuning.OneFilesystem: instance beats group beats class"),
        "{out}"
    );
    let o = healthstream(
        &["pack", "explain", "No.Such.Monitor", "--instance", "x"],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("No.Such.Monitor"), "{}", text(&o));
}

#[test]
fn import_scom_writes_native_packs_and_reports() {
    let mps = repo().join("../shared/mps");
    let files: Vec<String> = std::fs::read_dir(&mps)
        .expect("the SCOM test packs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(files.len(), 6);
    let out = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["pack", "import-scom", "--out"];
    let out_dir = out.path().display().to_string();
    args.push(&out_dir);
    args.extend(files.iter().map(String::as_str));
    let o = healthstream(&args, &repo());
    let report = text(&o);
    assert!(o.status.success(), "{report}");
    let written: Vec<String> = std::fs::read_dir(out.path())
        .expect("out dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    assert_eq!(written.len(), 6, "{written:?}");
    assert!(written.contains(&"IBM.MQ.toml".to_string()), "{written:?}");
    assert!(report.contains("missing pack"), "{report}");
    assert!(report.contains("skipped  View"), "{report}");
    // The written packs read back; validation lists only what the missing packs would provide.
    let o = healthstream(&["pack", "validate", &out_dir], &repo());
    assert!(!o.status.success());
    assert!(text(&o).contains("which is not loaded"), "{}", text(&o));

    let o = healthstream(&["pack", "import-scom", "Cargo.toml"], &repo());
    assert!(!o.status.success());
    assert!(text(&o).contains("not well-formed XML"), "{}", text(&o));
}
