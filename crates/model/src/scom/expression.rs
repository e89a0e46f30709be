//! SCOM expressions (System.ExpressionFilter, GroupPopulator membership rules) -> native
//! expressions.

use std::collections::BTreeMap;

use roxmltree::Node;

use crate::expr::{CmpOp, Expr, Operand, Path, Pattern, MAX_DEPTH};

use super::library::event_field;

/// What an expression conversion needs from the importer.
pub struct ExprContext<'c> {
    /// `$Config/X$` values of the monitor being converted.
    pub config: &'c BTreeMap<String, String>,
    /// Resolve an `Alias!Element` reference to a native id.
    pub element: &'c mut dyn FnMut(&str) -> String,
    /// Notes about approximations.
    pub notes: Vec<String>,
}

/// Child elements with this local name.
pub fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The first child element with this local name.
pub fn child<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(n, name).next()
}

/// Text of the first child element with this local name (trimmed).
pub fn child_text(n: Node<'_, '_>, name: &'static str) -> Option<String> {
    child(n, name).map(|c| c.text().unwrap_or("").trim().to_string())
}

/// Substitute `$Config/X$` from the configuration.
pub fn substitute_config(text: &str, config: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in config {
        out = out.replace(&format!("$Config/{k}$"), v);
    }
    out
}

/// Convert an `<Expression>` element (or one of its operator children).
pub fn convert(
    node: Node<'_, '_>,
    ctx: &mut ExprContext<'_>,
    depth: usize,
) -> Result<Expr, String> {
    if depth > MAX_DEPTH {
        return Err(format!("expression nested more than {MAX_DEPTH} deep"));
    }
    let name = node.tag_name().name();
    let first_child = || node.children().find(|c| c.is_element());
    match name {
        "Expression" | "FirstExpression" | "SecondExpression" | "Filter" => {
            let c = first_child().ok_or_else(|| format!("empty <{name}>"))?;
            convert(c, ctx, depth + 1)
        }
        "And" | "Or" => {
            let parts: Result<Vec<Expr>, String> = children(node, "Expression")
                .map(|e| convert(e, ctx, depth + 1))
                .collect();
            let parts = parts?;
            if parts.is_empty() {
                return Err(format!("<{name}> without expressions"));
            }
            Ok(if name == "And" {
                Expr::and(parts)
            } else {
                Expr::or(parts)
            })
        }
        "Not" => {
            let e = child(node, "Expression").ok_or("<Not> without an expression")?;
            Ok(Expr::Not(Box::new(convert(e, ctx, depth + 1)?)))
        }
        "Exists" => {
            let v = child(node, "ValueExpression").ok_or("<Exists> without a value")?;
            match operand(v, ctx)? {
                Operand::Path(p) => Ok(Expr::Exists(p)),
                _ => Err("<Exists> of a constant".into()),
            }
        }
        "SimpleExpression" => {
            let mut values = children(node, "ValueExpression");
            let left = values.next().ok_or("<SimpleExpression> without values")?;
            let right = values.next().ok_or("<SimpleExpression> with one value")?;
            let op = child_text(node, "Operator").ok_or("<SimpleExpression> without <Operator>")?;
            let op = match op.as_str() {
                "Equal" => CmpOp::Eq,
                "NotEqual" => CmpOp::Ne,
                "Greater" => CmpOp::Gt,
                "Less" => CmpOp::Lt,
                "GreaterEqual" => CmpOp::Ge,
                "LessEqual" => CmpOp::Le,
                "Like" => CmpOp::Like,
                "NotLike" => CmpOp::NotLike,
                other => return Err(format!("unknown operator {other:?}")),
            };
            let left = operand(left, ctx)?;
            let mut right = operand(right, ctx)?;
            if let (Operand::Path(p), Operand::Number(n)) = (&left, &right) {
                if p.simple_name() == Some("Level") {
                    // SCOM's numeric event levels -> the level names events carry.
                    let name = match *n as i64 {
                        1 => "ERROR",
                        2 => "WARNING",
                        4 | 0 => "INFORMATION",
                        _ => "VERBOSE",
                    };
                    ctx.notes
                        .push(format!("event level {n} compared as {name:?}"));
                    right = Operand::Text(name.to_string());
                }
            }
            if matches!(op, CmpOp::Like | CmpOp::NotLike) {
                let pattern = match &right {
                    Operand::Text(t) => Pattern::wildcard(&t.replace('%', "*").replace('_', "?"))?,
                    _ => return Err("Like needs a text pattern".into()),
                };
                return Ok(Expr::Compare {
                    left,
                    op,
                    right: Operand::Pattern(pattern),
                });
            }
            Ok(Expr::Compare { left, op, right })
        }
        "RegExExpression" => {
            let v = child(node, "ValueExpression").ok_or("<RegExExpression> without a value")?;
            let op = child_text(node, "Operator").ok_or("<RegExExpression> without <Operator>")?;
            let pattern =
                substitute_config(&child_text(node, "Pattern").unwrap_or_default(), ctx.config);
            let left = operand(v, ctx)?;
            let (op, right) = match op.as_str() {
                "MatchesRegularExpression" => {
                    (CmpOp::Matches, Operand::Pattern(Pattern::regex(&pattern)?))
                }
                "DoesNotMatchRegularExpression" => (
                    CmpOp::NotMatches,
                    Operand::Pattern(Pattern::regex(&pattern)?),
                ),
                "MatchesWildcard" | "DoesNotMatchWildcard" => {
                    if pattern.contains('#') {
                        ctx.notes.push(format!(
                            "wildcard {pattern:?}: '#' (any digit) is matched literally"
                        ));
                    }
                    let op = if op == "MatchesWildcard" {
                        CmpOp::Like
                    } else {
                        CmpOp::NotLike
                    };
                    (op, Operand::Pattern(Pattern::wildcard(&pattern)?))
                }
                "ContainsSubstring" => (CmpOp::Contains, Operand::Text(pattern)),
                "DoesNotContainSubstring" => (CmpOp::NotContains, Operand::Text(pattern)),
                "MatchesRegularExpressionCaseInsensitive" => (
                    CmpOp::Matches,
                    Operand::Pattern(Pattern::regex(&format!("(?i){pattern}"))?),
                ),
                other => return Err(format!("unknown regular-expression operator {other:?}")),
            };
            Ok(Expr::Compare { left, op, right })
        }
        "Contained" | "NotContained" => {
            let class = child_text(node, "MonitoringClass")
                .ok_or("<Contained> without <MonitoringClass>")?;
            let group = (ctx.element)(&mp_element(&class));
            let e = Expr::Contained(group);
            Ok(if name == "Contained" {
                e
            } else {
                Expr::Not(Box::new(e))
            })
        }
        other => Err(format!("<{other}> expressions are not supported")),
    }
}

/// `$MPElement[Name="Alias!X"]$` -> `Alias!X`; anything else as written.
pub fn mp_element(text: &str) -> String {
    let t = text.trim();
    let inner = t
        .strip_prefix("$MPElement[Name=")
        .and_then(|r| r.strip_suffix("]$"))
        .map(|r| r.trim_matches(|c| c == '"' || c == '\''));
    inner.unwrap_or(t).to_string()
}

fn operand(v: Node<'_, '_>, ctx: &mut ExprContext<'_>) -> Result<Operand, String> {
    let inner = v
        .children()
        .find(|c| c.is_element())
        .ok_or("empty <ValueExpression>")?;
    let text = substitute_config(inner.text().unwrap_or("").trim(), ctx.config);
    match inner.tag_name().name() {
        "XPathQuery" => {
            let field = event_field(&text);
            Path::parse(&field)
                .map(Operand::Path)
                .map_err(|e| format!("XPath {text:?}: {}", e.message))
        }
        "Property" => {
            // $MPElement[Name="Alias!Class"]/PropertyName$ -> PropertyName
            let name = text
                .trim_matches('$')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .trim_end_matches('$')
                .to_string();
            if name.is_empty() {
                return Err(format!("property reference {text:?} has no property name"));
            }
            Ok(Operand::Path(Path::name(&name)))
        }
        "Value" => {
            let ty = inner.attribute("Type").unwrap_or("String");
            Ok(match ty {
                "Integer" | "UnsignedInteger" | "Double" | "Decimal" => match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Operand::Number(n),
                    _ => Operand::Text(text),
                },
                "Boolean" => match text.to_ascii_lowercase().as_str() {
                    "true" => Operand::Bool(true),
                    "false" => Operand::Bool(false),
                    _ => Operand::Text(text),
                },
                _ => Operand::Text(text),
            })
        }
        other => Err(format!("<{other}> values are not supported")),
    }
}
