//! Reading pack files, with the line of every element for the validation report.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pack::{ElementKind, Pack};

/// Largest pack file accepted.
pub const MAX_PACK_BYTES: usize = 16 * 1024 * 1024;

/// A problem found while reading or validating packs: where, which element, what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub pack: Option<String>,
    pub element: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        match (&self.pack, &self.element) {
            (Some(p), Some(e)) => write!(f, "{p}: {e}: ")?,
            (Some(p), None) => write!(f, "{p}: ")?,
            (None, Some(e)) => write!(f, "{e}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// A pack and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedPack {
    pub pack: Pack,
    /// The file it was read from (`<builtin>/...` for shipped packs compiled in).
    pub file: PathBuf,
    /// The pack text as read.
    pub text: String,
    lines: HashMap<(ElementKind, String), Vec<usize>>,
}

impl LoadedPack {
    /// The line of the `n`-th element of this kind with this id (0 for the first).
    pub fn line_of(&self, kind: ElementKind, id: &str, n: usize) -> Option<usize> {
        self.lines.get(&(kind, id.to_string()))?.get(n).copied()
    }

    /// A pack built in memory (no file lines).
    pub fn from_pack(pack: Pack, file: PathBuf) -> LoadedPack {
        LoadedPack {
            pack,
            file,
            text: String::new(),
            lines: HashMap::new(),
        }
    }
}

/// Parse pack text. `file` is only used in messages.
pub fn parse_pack(text: &str, file: &Path) -> Result<LoadedPack, Problem> {
    let problem = |line: Option<usize>, message: String| Problem {
        file: Some(file.to_path_buf()),
        line,
        pack: None,
        element: None,
        message,
    };
    if text.len() > MAX_PACK_BYTES {
        return Err(problem(
            None,
            format!(
                "the file is {} bytes; packs are limited to {MAX_PACK_BYTES}",
                text.len()
            ),
        ));
    }
    let pack: Pack = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let column = e.span().map(|s| {
            let start = s.start.min(text.len());
            start - text[..start].rfind('\n').map_or(0, |i| i + 1) + 1
        });
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let message = match (message.is_empty(), column) {
            (false, _) => message,
            (true, Some(c)) => {
                format!("invalid TOML at column {c} (a value is missing or the file ends early)")
            }
            (true, None) => "invalid TOML".to_string(),
        };
        problem(line, message)
    })?;
    let lines = locate(text);
    Ok(LoadedPack {
        pack,
        file: file.to_path_buf(),
        text: text.to_string(),
        lines,
    })
}

/// Read one pack file.
pub fn load_file(path: &Path) -> Result<LoadedPack, Problem> {
    let problem = |message: String| Problem {
        file: Some(path.to_path_buf()),
        line: None,
        pack: None,
        element: None,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    if meta.len() > MAX_PACK_BYTES as u64 {
        return Err(problem(format!(
            "the file is {} bytes; packs are limited to {MAX_PACK_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        problem(format!(
            "not UTF-8 text (invalid byte at offset {}); pack files are UTF-8 TOML",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse_pack(&text, path)
}

/// Read every `*.toml` pack under the given files and directories (recursively, in name
/// order). Returns what could be read and a problem for each file that could not.
pub fn load_paths(paths: &[PathBuf]) -> (Vec<LoadedPack>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut problems);
    }
    let mut packs = Vec::new();
    for f in files {
        match load_file(&f) {
            Ok(p) => packs.push(p),
            Err(e) => problems.push(e),
        }
    }
    (packs, problems)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                problems.push(Problem {
                    file: Some(path.to_path_buf()),
                    line: None,
                    pack: None,
                    element: None,
                    message: format!("cannot list the directory: {e}"),
                });
                return;
            }
        };
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "toml") {
                collect(&e, files, problems);
            }
        }
    } else if path.exists() {
        files.push(path.to_path_buf());
    } else {
        problems.push(Problem {
            file: Some(path.to_path_buf()),
            line: None,
            pack: None,
            element: None,
            message: "no such file or directory".into(),
        });
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
struct Loc {
    id: toml::Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Locs {
    class: Vec<Loc>,
    relationship: Vec<Loc>,
    group: Vec<Loc>,
    discovery: Vec<Loc>,
    rule: Vec<Loc>,
    monitor: Vec<Loc>,
    aggregate: Vec<Loc>,
    dependency: Vec<Loc>,
    #[serde(rename = "override")]
    overrides: Vec<Loc>,
    task: Vec<Loc>,
    diagnostic: Vec<Loc>,
    recovery: Vec<Loc>,
}

/// The line of each element's `id`, in file order.
fn locate(text: &str) -> HashMap<(ElementKind, String), Vec<usize>> {
    let mut out: HashMap<(ElementKind, String), Vec<usize>> = HashMap::new();
    let Ok(locs) = toml::from_str::<Locs>(text) else {
        return out;
    };
    let groups = [
        (ElementKind::Class, locs.class),
        (ElementKind::Relationship, locs.relationship),
        (ElementKind::Group, locs.group),
        (ElementKind::Discovery, locs.discovery),
        (ElementKind::Rule, locs.rule),
        (ElementKind::UnitMonitor, locs.monitor),
        (ElementKind::AggregateMonitor, locs.aggregate),
        (ElementKind::DependencyMonitor, locs.dependency),
        (ElementKind::Override, locs.overrides),
        (ElementKind::Task, locs.task),
        (ElementKind::Diagnostic, locs.diagnostic),
        (ElementKind::Recovery, locs.recovery),
    ];
    // Where each line starts, to find an element's line by binary search (counting the
    // newlines before every element made a pack of 10,000 rules take minutes).
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    for (kind, list) in groups {
        for l in list {
            let offset = l.id.span().start;
            let line = starts.partition_point(|s| *s <= offset);
            out.entry((kind, l.id.into_inner())).or_default().push(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_lines_are_found() {
        let text = "[pack]\nid = \"A\"\nversion = \"1.0\"\n\n[[class]]\nid = \"A.X\"\nbase = \"System.Entity\"\n\n[[class]]\nid = \"A.Y\"\n";
        let p = parse_pack(text, Path::new("a.toml")).expect("parses");
        assert_eq!(p.line_of(ElementKind::Class, "A.X", 0), Some(6));
        assert_eq!(p.line_of(ElementKind::Class, "A.Y", 0), Some(10));
    }

    #[test]
    fn syntax_and_schema_errors_carry_the_line() {
        let cases = [
            ("[pack]\nid = \"A\"\nversion = \"1.0\"\n[[class]\n", 4, ""),
            ("[pack]\nid = \"A\"\nversion = \"1.0\"\n[[class]]\nid = \"X\"\ncolour = 1\n", 6, "unknown field `colour`"),
            ("[pack]\nid = \"A\"\nversion = \"one\"\n", 3, "version"),
            ("[pack]\nid = \"A\"\nversion = \"1\"\n[[rule]]\nid=\"R\"\ntarget=\"X\"\naction=[{type=\"collect_perf\"}]\n[rule.source]\ntype=\"perf\"\nobject=\"o\"\ncounter=\"c\"\ninterval=\"soon\"\n", 8, "duration"),
            ("[pack]\nid = \"A\"\nversion = \"1\"\n[[group]]\nid=\"G\"\n[[group.rule]]\nclass=\"X\"\nexpression=\"a ==\"\n", 8, "expression"),
        ];
        for (text, line, needle) in cases {
            let e = parse_pack(text, Path::new("bad.toml")).expect_err(text);
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.message.contains(needle), "{e}");
            assert!(
                e.to_string().starts_with(&format!("bad.toml:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn deep_and_huge_values_are_errors_not_crashes() {
        let deep = format!(
            "[pack]\nid = \"A\"\nversion = \"1\"\nx = {}1{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = parse_pack(&deep, Path::new("deep.toml")).expect_err("too deep");
        assert_eq!(e.line, Some(4), "{e}");
        let huge = format!(
            "[pack]\nid = \"{}\"\nversion = \"99999999999999999999999\"\n",
            "A".repeat(1_000_000)
        );
        let e = parse_pack(&huge, Path::new("huge.toml")).expect_err("version out of range");
        assert!(e.message.contains("version"), "{e}");
        let big = " ".repeat(MAX_PACK_BYTES + 1);
        assert!(parse_pack(&big, Path::new("big.toml"))
            .expect_err("too big")
            .message
            .contains("limited"));
    }

    #[test]
    fn unreadable_files_are_problems_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin.toml");
        std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x41]).expect("write");
        let truncated = dir.path().join("t.toml");
        std::fs::write(&truncated, "[pack]\nid = \"A\"\nversion = \"1.").expect("write");
        let (packs, problems) = load_paths(&[dir.path().to_path_buf(), dir.path().join("nope")]);
        assert!(packs.is_empty());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.message.contains("not UTF-8")));
        assert!(problems.iter().any(|p| p.message.contains("no such file")));
    }
}
