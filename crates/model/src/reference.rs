//! `$Target/...$` and `$Data/...$` references in module configuration, alert names and
//! descriptions (seed 004).
//!
//! - `$Target/Property[Name="DeviceID"]$`: a property of the workflow's target instance;
//!   `$Target/Property[Type="Some.Class"]/DeviceID$` is SCOM's spelling of the same thing.
//! - `$Target/Host/Property[Name="..."]$`: of its host; `Host/Host/...` climbs further.
//! - `$Target/Id$`, `$Target/Name$`: the instance id and display name.
//! - `$Data/Params/Param[1]$`, `$Data/Property[@Name="x"]$`, `$Data/Value$`: a field of the
//!   data item being processed (resolved per item, not per instance).
//!
//! A `$` not followed by `Target/` or `Data/` is ordinary text.

use std::fmt;

use crate::expr::{ExprError, Path};

/// Text with references.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Target(TargetRef),
    Data(Path),
}

/// A reference to the target instance or one of its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// 0: the target; 1: its host; 2: the host's host...
    pub hops: usize,
    /// What is read.
    pub field: TargetField,
}

/// What a target reference reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetField {
    Property {
        /// The class that declares it, when written in SCOM's `Property[Type="..."]/Name` form.
        class: Option<String>,
        name: String,
    },
    Id,
    DisplayName,
}

/// What a target reference resolves against.
pub trait TargetContext {
    /// Property `name` of the instance `hops` levels up the hosting chain.
    fn property(&self, hops: usize, name: &str) -> Option<String>;
    /// Id of the instance `hops` levels up.
    fn id(&self, hops: usize) -> Option<String>;
    /// Display name of the instance `hops` levels up.
    fn display_name(&self, hops: usize) -> Option<String>;
}

impl Template {
    /// Parse text with references.
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0usize;
        while let Some(i) = rest.find('$') {
            let after = &rest[i + 1..];
            let is_ref = after.starts_with("Target/") || after.starts_with("Data/");
            if !is_ref {
                literal.push_str(&rest[..=i]);
                offset += i + 1;
                rest = after;
                continue;
            }
            literal.push_str(&rest[..i]);
            let at = text[..offset + i].chars().count() + 1;
            let Some(end) = after.find('$') else {
                return Err(ExprError {
                    at,
                    message: "reference is not closed with \"$\"".into(),
                });
            };
            let body = &after[..end];
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(parse_ref(body).map_err(|message| ExprError { at, message })?);
            offset += i + 1 + end + 1;
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The target references.
    pub fn target_refs(&self) -> impl Iterator<Item = &TargetRef> {
        self.parts.iter().filter_map(|p| match p {
            Part::Target(t) => Some(t),
            _ => None,
        })
    }

    /// Does the text use `$Data/...$` (so it must be resolved per data item)?
    pub fn uses_data(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Data(_)))
    }

    /// Substitute data references from a data item (a field it does not have reads as
    /// empty, as in SCOM); target references are left as written. Returns the text and the
    /// values substituted, in order (an alert's parameters).
    pub fn resolve_data(&self, item: &dyn crate::expr::Subject) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut values = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Data(path) => {
                    let v = item
                        .lookup(path)
                        .map(|v| v.as_text().to_string())
                        .unwrap_or_default();
                    out.push_str(&v);
                    values.push(v);
                }
                Part::Target(r) => out.push_str(&Part::Target(r.clone()).to_string()),
            }
        }
        (out, values)
    }

    /// Substitute target references; data references are left as written. Fails with the
    /// first reference that does not resolve.
    pub fn resolve_target(&self, ctx: &dyn TargetContext) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Data(path) => {
                    out.push_str("$Data/");
                    out.push_str(&path.to_string());
                    out.push('$');
                }
                Part::Target(r) => {
                    let v = match &r.field {
                        TargetField::Property { name, .. } => ctx.property(r.hops, name),
                        TargetField::Id => ctx.id(r.hops),
                        TargetField::DisplayName => ctx.display_name(r.hops),
                    };
                    match v {
                        Some(v) => out.push_str(&v),
                        None => {
                            return Err(format!("{} does not resolve", Part::Target(r.clone())))
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn parse_ref(body: &str) -> Result<Part, String> {
    if let Some(path) = body.strip_prefix("Data/") {
        return Path::parse(path)
            .map(Part::Data)
            .map_err(|e| format!("$Data/{path}$: {}", e.message));
    }
    let mut rest = body.strip_prefix("Target/").unwrap_or(body);
    let mut hops = 0;
    while let Some(r) = rest.strip_prefix("Host/") {
        hops += 1;
        rest = r;
    }
    let field = if rest == "Id" {
        TargetField::Id
    } else if rest == "Name" || rest == "DisplayName" {
        TargetField::DisplayName
    } else if let Some(inner) = rest.strip_prefix("Property[") {
        let (attr, tail) = inner
            .split_once(']')
            .ok_or_else(|| format!("${body}$: \"]\" missing"))?;
        let (key, value) = attr
            .split_once('=')
            .ok_or_else(|| format!("${body}$: expected Property[Name=\"...\"]"))?;
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        match (key.trim().trim_start_matches('@'), tail) {
            ("Name", "") => TargetField::Property {
                class: None,
                name: value,
            },
            ("Type", t) if t.starts_with('/') && t.len() > 1 => TargetField::Property {
                class: Some(value),
                name: t[1..].to_string(),
            },
            _ => {
                return Err(format!(
                    "${body}$: expected Property[Name=\"x\"] or Property[Type=\"Class\"]/x"
                ))
            }
        }
    } else {
        return Err(format!(
            "${body}$: a target reference reads Property[...], Id or Name"
        ));
    };
    if let TargetField::Property { name, .. } = &field {
        if name.is_empty() {
            return Err(format!("${body}$: the property name is empty"));
        }
    }
    Ok(Part::Target(TargetRef { hops, field }))
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Text(t) => f.write_str(t),
            Part::Data(p) => write!(f, "$Data/{p}$"),
            Part::Target(r) => {
                f.write_str("$Target/")?;
                for _ in 0..r.hops {
                    f.write_str("Host/")?;
                }
                match &r.field {
                    TargetField::Id => f.write_str("Id")?,
                    TargetField::DisplayName => f.write_str("Name")?,
                    TargetField::Property { class: None, name } => {
                        write!(f, "Property[Name=\"{name}\"]")?
                    }
                    TargetField::Property {
                        class: Some(c),
                        name,
                    } => write!(f, "Property[Type=\"{c}\"]/{name}")?,
                }
                f.write_str("$")
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts.iter().try_for_each(|p| write!(f, "{p}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx;
    impl TargetContext for Ctx {
        fn property(&self, hops: usize, name: &str) -> Option<String> {
            match (hops, name) {
                (0, "DeviceID") => Some("sda1".into()),
                (1, "NetworkName") => Some("web-01".into()),
                _ => None,
            }
        }
        fn id(&self, hops: usize) -> Option<String> {
            (hops == 0).then(|| "abc".into())
        }
        fn display_name(&self, _: usize) -> Option<String> {
            None
        }
    }

    #[test]
    fn target_and_data_references_resolve() {
        let t = Template::parse(
            "disk $Target/Property[Name=\"DeviceID\"]$ on $Target/Host/Property[Type=\"System.Computer\"]/NetworkName$: $Data/Value$ (cost $5)",
        )
        .expect("parses");
        assert!(t.uses_data());
        assert_eq!(
            t.resolve_target(&Ctx).expect("resolves"),
            "disk sda1 on web-01: $Data/Value$ (cost $5)"
        );
        assert_eq!(Template::parse(&t.to_string()).expect("round trip"), t);
        let missing = Template::parse("$Target/Host/Host/Property[Name=\"X\"]$").expect("parses");
        assert!(missing.resolve_target(&Ctx).is_err());
    }

    #[test]
    fn malformed_references_are_errors() {
        for (src, needle) in [
            ("x $Target/Property[Name=\"a\"]", "not closed"),
            ("$Target/Property[Name=\"a\"$", "\"]\" missing"),
            ("$Target/Foo$", "reads Property"),
            ("$Target/Property[Name=\"\"]$", "empty"),
            ("$Data/a[$", "$Data/"),
        ] {
            let e = Template::parse(src).expect_err(src);
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }
}
