//! SCOM management pack XML import (DESIGN.md section 9).
//!
//! Unsealed MP XML (UTF-8, or UTF-16 with a byte-order mark; schema 1.x and 2.0) becomes a
//! native pack. Elements of Microsoft's library packs with a native counterpart are mapped onto
//! the standard library; references to other sealed packs are kept, and reported when those
//! packs are not present. Every element of the file is listed in the report as imported,
//! imported with changes (and what changed), or skipped (and why).

mod convert;
pub mod decode;
mod expression;
pub mod library;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pack::{Pack, Version};

/// An imported pack and what happened to each element.
#[derive(Debug, Clone)]
pub struct ScomImport {
    pub pack: Pack,
    pub report: Report,
}

/// The import report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file imported.
    pub source: PathBuf,
    /// Pack id and version.
    pub pack: String,
    pub version: String,
    /// The file's `SchemaVersion`.
    pub schema_version: String,
    /// Referenced packs that are not present (and what depends on them).
    pub missing_packs: Vec<MissingPack>,
    /// Every element of the file.
    pub entries: Vec<Entry>,
}

/// A referenced pack that is not present.
#[derive(Debug, Clone, Serialize)]
pub struct MissingPack {
    pub alias: String,
    pub pack: String,
    pub version: String,
    /// Elements of the imported pack that use elements of it.
    pub used_by: Vec<String>,
}

/// One element of the file.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The SCOM element type (`ClassType`, `UnitMonitor`, `MonitorPropertyOverride`, ...).
    pub scom_type: String,
    pub id: String,
    /// Line in the file.
    pub line: u32,
    pub outcome: Outcome,
    /// What changed, or why it was skipped.
    pub notes: Vec<String>,
}

/// What became of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Imported,
    ImportedWithChanges,
    Skipped,
}

/// Why a file could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {message}")]
    Encoding { file: PathBuf, message: String },
    #[error("{file}:{line}:{column}: not well-formed XML: {message}")]
    Xml {
        file: PathBuf,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file}: {message}")]
    NotAManagementPack { file: PathBuf, message: String },
}

/// Import one management pack file. `present` lists the packs available (id -> version):
/// references to packs outside it (and outside the mapped Microsoft libraries) are reported.
pub fn import(
    bytes: &[u8],
    file: &Path,
    present: &BTreeMap<String, Version>,
) -> Result<ScomImport, ImportError> {
    let text = decode::decode(bytes).map_err(|message| ImportError::Encoding {
        file: file.to_path_buf(),
        message,
    })?;
    if let Some((line, depth)) = too_deep(&text) {
        return Err(ImportError::Xml {
            file: file.to_path_buf(),
            line,
            column: 1,
            message: format!("elements nested deeper than {MAX_XML_DEPTH} (at least {depth})"),
        });
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 4_000_000,
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).map_err(|e| {
        let pos = e.pos();
        ImportError::Xml {
            file: file.to_path_buf(),
            line: pos.row,
            column: pos.col,
            message: e.to_string(),
        }
    })?;
    convert::Importer::run(&doc, file, present)
}

/// Deepest element nesting accepted (real packs stay far below; the XML parser recurses).
pub const MAX_XML_DEPTH: usize = 256;

/// The line where element nesting first exceeds [`MAX_XML_DEPTH`], found without parsing.
fn too_deep(text: &str) -> Option<(u32, usize)> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let skip_to = |from: usize, end: &[u8]| -> usize {
        b[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(b.len(), |p| from + p + end.len())
    };
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_to(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(i + 2, b">");
        } else {
            let mut j = i + 1;
            let mut quote = 0u8;
            while j < b.len() {
                match b[j] {
                    q @ (b'"' | b'\'') if quote == 0 => quote = q,
                    q if q == quote => quote = 0,
                    b'>' if quote == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            if j == 0 || b.get(j - 1) != Some(&b'/') {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    let line = b[..i].iter().filter(|&&c| c == b'\n').count() + 1;
                    return Some((u32::try_from(line).unwrap_or(u32::MAX), depth));
                }
            }
            i = j + 1;
        }
    }
    None
}

/// Import a file from disk.
pub fn import_file(
    path: &Path,
    present: &BTreeMap<String, Version>,
) -> Result<ScomImport, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Encoding {
        file: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    import(&bytes, path, present)
}

impl Report {
    /// Entries by outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} (schema {}) from {}",
            self.pack,
            self.version,
            self.schema_version,
            self.source.display()
        )?;
        writeln!(
            f,
            "  {} imported, {} imported with changes, {} skipped",
            self.count(Outcome::Imported),
            self.count(Outcome::ImportedWithChanges),
            self.count(Outcome::Skipped)
        )?;
        for m in &self.missing_packs {
            writeln!(
                f,
                "  missing pack {} {} (alias {}), used by {} element(s): {}",
                m.pack,
                m.version,
                m.alias,
                m.used_by.len(),
                m.used_by.join(", ")
            )?;
        }
        for e in &self.entries {
            let what = match e.outcome {
                Outcome::Imported => "imported",
                Outcome::ImportedWithChanges => "changed",
                Outcome::Skipped => "skipped",
            };
            write!(
                f,
                "  line {:>5}  {what:<8} {} {}",
                e.line, e.scom_type, e.id
            )?;
            for (i, n) in e.notes.iter().enumerate() {
                write!(f, "{}{n}", if i == 0 { ": " } else { "; " })?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
