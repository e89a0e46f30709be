//! Workflow parameter values (what overrides set).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parameter value: the TOML scalar types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl ParamValue {
    /// Read a value written as text (SCOM overrides carry every value as text): `true`/`false`,
    /// integers and decimals become typed values, anything else stays text.
    pub fn from_text(text: &str) -> ParamValue {
        let t = text.trim();
        if t.eq_ignore_ascii_case("true") {
            return ParamValue::Bool(true);
        }
        if t.eq_ignore_ascii_case("false") {
            return ParamValue::Bool(false);
        }
        if let Ok(i) = t.parse::<i64>() {
            return ParamValue::Int(i);
        }
        match t.parse::<f64>() {
            Ok(f)
                if f.is_finite()
                    && t.chars().all(|c| c.is_ascii_digit() || ".-+eE".contains(c)) =>
            {
                ParamValue::Float(f)
            }
            _ => ParamValue::Text(text.to_string()),
        }
    }

    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "a boolean",
            ParamValue::Int(_) => "an integer",
            ParamValue::Float(_) => "a number",
            ParamValue::Text(_) => "text",
        }
    }

    /// True when `self` may replace a value like `default` (same kind; integers may replace
    /// numbers and numbers integers; durations and names are text).
    pub fn same_kind(&self, default: &ParamValue) -> bool {
        matches!(
            (self, default),
            (ParamValue::Bool(_), ParamValue::Bool(_))
                | (
                    ParamValue::Int(_) | ParamValue::Float(_),
                    ParamValue::Int(_) | ParamValue::Float(_)
                )
                | (ParamValue::Text(_), ParamValue::Text(_))
        )
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<toml::Value> for ParamValue {
    fn from(v: toml::Value) -> Self {
        match v {
            toml::Value::Boolean(b) => ParamValue::Bool(b),
            toml::Value::Integer(i) => ParamValue::Int(i),
            toml::Value::Float(f) => ParamValue::Float(f),
            toml::Value::String(s) => ParamValue::Text(s),
            other => ParamValue::Text(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_become_typed() {
        assert_eq!(ParamValue::from_text("true"), ParamValue::Bool(true));
        assert_eq!(ParamValue::from_text("False"), ParamValue::Bool(false));
        assert_eq!(ParamValue::from_text("30000"), ParamValue::Int(30000));
        assert_eq!(ParamValue::from_text("2.5"), ParamValue::Float(2.5));
        assert_eq!(
            ParamValue::from_text("Information"),
            ParamValue::Text("Information".into())
        );
        assert_eq!(ParamValue::from_text("inf"), ParamValue::Text("inf".into()));
    }
}
