//! Validation of collector JSON against a contract, reporting every problem at once.
//!
//! The JSON is the natural one (`{"value": 1.5}`), not Avro's JSON encoding: a union takes
//! the plain value of one of its branches, an enum takes its symbol in any case, and a
//! `timestamp-millis` takes milliseconds since the epoch or an RFC 3339 string. Fields the
//! ingest assigns (`id`) must be absent; fields with a default may be left out; unknown
//! fields are errors.

use std::collections::HashMap;

use apache_avro::schema::{Name, Schema};
use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::{Codec, Contract};

/// One problem with one field of one record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path of the field in the record: `samples[3].value`; empty for the record itself.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Converts collector JSON into Avro values of a contract.
pub struct JsonValidator<'c> {
    codec: &'c Codec,
    /// The named types of each contract's schema, for its references.
    names: HashMap<Contract, HashMap<Name, &'c Schema>>,
}

/// Fields that the ingest fills in itself.
const ASSIGNED_FIELDS: &[&str] = &["id"];

impl JsonValidator<'static> {
    /// The validator of [`Codec::shared`], built once (its table of named types is the same
    /// for every request).
    pub fn shared() -> &'static JsonValidator<'static> {
        static VALIDATOR: std::sync::OnceLock<JsonValidator<'static>> = std::sync::OnceLock::new();
        VALIDATOR.get_or_init(|| JsonValidator::new(Codec::shared()))
    }
}

impl<'c> JsonValidator<'c> {
    pub fn new(codec: &'c Codec) -> Self {
        let names = Contract::ALL
            .iter()
            .map(|c| {
                let mut names = HashMap::new();
                collect_names(codec.schema(*c), &mut names);
                (*c, names)
            })
            .collect();
        JsonValidator { codec, names }
    }

    /// Validates one record. On success the value has every field, with `id` empty.
    pub fn validate(&self, contract: Contract, json: &Json) -> Result<Value, Vec<FieldError>> {
        let schema = self.codec.schema(contract);
        let none = HashMap::new();
        let mut walker = Walker {
            names: self.names.get(&contract).unwrap_or(&none),
            errors: Vec::new(),
        };
        let value = walker.record_root(schema, json);
        semantic_checks(contract, json, &mut walker.errors);
        if walker.errors.is_empty() {
            Ok(value)
        } else {
            Err(walker.errors)
        }
    }
}

fn collect_names<'s>(schema: &'s Schema, names: &mut HashMap<Name, &'s Schema>) {
    match schema {
        Schema::Record(r) if names.insert(r.name.clone(), schema).is_none() => {
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        _ => {}
    }
}

struct Walker<'s, 'n> {
    names: &'n HashMap<Name, &'s Schema>,
    errors: Vec<FieldError>,
}

fn describe(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a fractional number",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Where in the record a value is: written out only when there is a problem to report, so
/// that a valid record costs no path strings.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
    Key(&'a At<'a>, &'a str),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Field(At::Root, name) => f.write_str(name),
            At::Field(parent, name) => write!(f, "{parent}.{name}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
            At::Key(parent, k) => write!(f, "{parent}[{k:?}]"),
        }
    }
}

impl<'s> Walker<'s, '_> {
    fn err(&mut self, path: &At<'_>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: path.to_string(),
            message: message.into(),
        });
    }

    fn record_root(&mut self, schema: &'s Schema, json: &Json) -> Value {
        self.record(schema, json, &At::Root, true)
    }

    fn record(&mut self, schema: &'s Schema, json: &Json, path: &At<'_>, root: bool) -> Value {
        let Schema::Record(rec) = schema else {
            return self.convert(schema, json, path);
        };
        let Json::Object(obj) = json else {
            self.err(
                path,
                format!("expected an object, found {}", describe(json)),
            );
            return Value::Null;
        };
        for key in obj.keys() {
            if root && ASSIGNED_FIELDS.contains(&key.as_str()) {
                self.err(
                    &At::Field(path, key),
                    "is assigned by the ingest; leave it out",
                );
            } else if !rec.lookup.contains_key(key) {
                self.err(&At::Field(path, key), "unknown field");
            }
        }
        let mut fields = Vec::with_capacity(rec.fields.len());
        for field in &rec.fields {
            let fpath = At::Field(path, &field.name);
            let value = if root && ASSIGNED_FIELDS.contains(&field.name.as_str()) {
                Value::String(String::new())
            } else {
                match obj.get(&field.name) {
                    Some(v) => self.convert(&field.schema, v, &fpath),
                    None => match &field.default {
                        Some(default) => self.convert(&field.schema, default, &fpath),
                        None => {
                            self.err(&fpath, "missing required field");
                            Value::Null
                        }
                    },
                }
            };
            fields.push((field.name.clone(), value));
        }
        Value::Record(fields)
    }

    fn convert(&mut self, schema: &'s Schema, json: &Json, path: &At<'_>) -> Value {
        match schema {
            Schema::Null => match json {
                Json::Null => Value::Null,
                other => self.mismatch(path, "null", other),
            },
            Schema::Boolean => match json {
                Json::Bool(b) => Value::Boolean(*b),
                other => self.mismatch(path, "a boolean", other),
            },
            Schema::Int => match json.as_i64() {
                Some(n) => match i32::try_from(n) {
                    Ok(n) => Value::Int(n),
                    Err(_) => {
                        self.err(path, format!("{n} does not fit a 32-bit integer"));
                        Value::Null
                    }
                },
                None => self.mismatch(path, "an integer", json),
            },
            Schema::Long => match json.as_i64() {
                Some(n) => Value::Long(n),
                None => self.mismatch(path, "an integer", json),
            },
            Schema::Float | Schema::Double => match json.as_f64() {
                Some(x) if x.is_finite() => Value::Double(x),
                _ => self.mismatch(path, "a number", json),
            },
            Schema::String => match json {
                Json::String(s) => Value::String(s.clone()),
                other => self.mismatch(path, "a string", other),
            },
            Schema::TimestampMillis => match json {
                Json::Number(n) => match n.as_i64() {
                    Some(ms) => Value::TimestampMillis(ms),
                    None => self.mismatch(path, "milliseconds since the epoch", json),
                },
                Json::String(s) => match humantime::parse_rfc3339_weak(s) {
                    Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
                        Ok(d) => Value::TimestampMillis(d.as_millis() as i64),
                        Err(_) => {
                            self.err(path, format!("time {s:?} is before 1970"));
                            Value::Null
                        }
                    },
                    Err(e) => {
                        self.err(path, format!("time {s:?} is not RFC 3339: {e}"));
                        Value::Null
                    }
                },
                other => self.mismatch(path, "a time (milliseconds or RFC 3339)", other),
            },
            Schema::Enum(e) => match json {
                Json::String(s) => {
                    match e.symbols.iter().position(|sym| sym.eq_ignore_ascii_case(s)) {
                        Some(i) => Value::Enum(i as u32, e.symbols[i].clone()),
                        None => {
                            self.err(
                                path,
                                format!("{s:?} is not one of {}", e.symbols.join(", ")),
                            );
                            Value::Null
                        }
                    }
                }
                other => self.mismatch(path, "a string", other),
            },
            Schema::Array(a) => match json {
                Json::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.convert(&a.items, item, &At::Index(path, i)))
                        .collect(),
                ),
                other => self.mismatch(path, "an array", other),
            },
            Schema::Map(m) => match json {
                Json::Object(obj) => Value::Map(
                    obj.iter()
                        .map(|(k, v)| {
                            let value = self.convert(&m.types, v, &At::Key(path, k));
                            (k.clone(), value)
                        })
                        .collect(),
                ),
                other => self.mismatch(path, "an object", other),
            },
            Schema::Union(u) => self.union(u.variants(), json, path),
            Schema::Record(_) => self.record(schema, json, path, false),
            Schema::Ref { name } => match self.names.get(name).copied() {
                Some(target) => self.convert(target, json, path),
                None => {
                    self.err(path, format!("schema refers to unknown type {}", name.name));
                    Value::Null
                }
            },
            other => {
                self.err(path, format!("type {other:?} is not accepted in JSON"));
                Value::Null
            }
        }
    }

    fn union(&mut self, variants: &'s [Schema], json: &Json, path: &At<'_>) -> Value {
        if json.is_null() {
            if let Some(i) = variants.iter().position(|v| matches!(v, Schema::Null)) {
                return Value::Union(i as u32, Box::new(Value::Null));
            }
        }
        let candidates: Vec<(usize, &'s Schema)> = variants
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Schema::Null))
            .collect();
        if let [(i, only)] = candidates[..] {
            let value = self.convert(only, json, path);
            return Value::Union(i as u32, Box::new(value));
        }
        for (i, variant) in &candidates {
            let mut probe = Walker {
                names: self.names,
                errors: Vec::new(),
            };
            let value = probe.convert(variant, json, path);
            if probe.errors.is_empty() {
                return Value::Union(*i as u32, Box::new(value));
            }
        }
        let kinds: Vec<String> = variants
            .iter()
            .map(|v| format!("{:?}", apache_avro::schema::SchemaKind::from(v)).to_lowercase())
            .collect();
        self.err(
            path,
            format!(
                "{} does not match any of {}",
                describe(json),
                kinds.join(", ")
            ),
        );
        Value::Null
    }

    fn mismatch(&mut self, path: &At<'_>, expected: &str, found: &Json) -> Value {
        self.err(
            path,
            format!("expected {expected}, found {}", describe(found)),
        );
        Value::Null
    }
}

/// Rules of the contracts beyond their Avro types.
fn semantic_checks(contract: Contract, json: &Json, errors: &mut Vec<FieldError>) {
    let mut non_empty = |field: &str, value: Option<&Json>| {
        if let Some(Json::String(s)) = value {
            if s.trim().is_empty() {
                errors.push(FieldError {
                    field: field.to_string(),
                    message: "must not be empty".to_string(),
                });
            }
        }
    };
    non_empty("root_host", json.get("root_host"));
    non_empty("collector", json.get("collector"));
    match contract {
        Contract::PerfBatch => {
            if let Some(Json::Array(samples)) = json.get("samples") {
                // A host's latest samples are kept by these names joined with NUL.
                let mut nul = Vec::new();
                for (i, s) in samples.iter().enumerate() {
                    non_empty(&format!("samples[{i}].object"), s.get("object"));
                    non_empty(&format!("samples[{i}].counter"), s.get("counter"));
                    for name in ["object", "counter", "instance"] {
                        if s.get(name)
                            .and_then(Json::as_str)
                            .is_some_and(|v| v.contains('\0'))
                        {
                            nul.push(FieldError {
                                field: format!("samples[{i}].{name}"),
                                message: "must not hold a NUL character".to_string(),
                            });
                        }
                    }
                }
                errors.extend(nul);
            }
        }
        Contract::EventBatch => {
            if let Some(Json::Array(events)) = json.get("events") {
                for (i, e) in events.iter().enumerate() {
                    non_empty(&format!("events[{i}].channel"), e.get("channel"));
                }
            }
        }
        Contract::DiscoveryData => {
            non_empty("source.id", json.get("source").and_then(|s| s.get("id")));
            if let Some(Json::Array(instances)) = json.get("instances") {
                for (i, inst) in instances.iter().enumerate() {
                    non_empty(&format!("instances[{i}].class"), inst.get("class"));
                }
            }
            let snapshot = json
                .get("mode")
                .and_then(Json::as_str)
                .is_some_and(|m| m.eq_ignore_ascii_case("snapshot"));
            for field in ["removed_instances", "removed_relationships"] {
                let has_any = json
                    .get(field)
                    .and_then(Json::as_array)
                    .is_some_and(|a| !a.is_empty());
                if snapshot && has_any {
                    errors.push(FieldError {
                        field: field.to_string(),
                        message: "removals are only allowed in incremental mode; a snapshot removes what it leaves out".to_string(),
                    });
                }
            }
        }
        Contract::Heartbeat => {
            if let Some(n) = json.get("interval_seconds").and_then(Json::as_i64) {
                if n <= 0 {
                    errors.push(FieldError {
                        field: "interval_seconds".to_string(),
                        message: format!("must be positive, found {n}"),
                    });
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate(contract: Contract, json: Json) -> Result<Value, Vec<FieldError>> {
        JsonValidator::shared().validate(contract, &json)
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn accepts_a_perf_batch_with_defaults_and_rfc3339_times() {
        let v = validate(
            Contract::PerfBatch,
            json!({"collector": "c1", "root_host": "h1", "samples": [
                {"time": "2026-11-21T10:00:00Z", "object": "Processor", "counter": "% Processor Time", "value": 12.5},
                {"time": 1, "object": "Memory", "counter": "Available MBytes", "instance": "", "value": 3}
            ]}),
        )
        .expect("valid");
        let bytes = Codec::shared()
            .encode_value(Contract::PerfBatch, v)
            .expect("encodes");
        let batch: crate::records::PerfBatch = Codec::shared().decode(&bytes).expect("decodes");
        assert_eq!(batch.samples.len(), 2);
        assert_eq!(batch.samples[0].time, 1_795_255_200_000);
        assert_eq!(batch.samples[0].instance, "");
        assert_eq!(batch.samples[1].value, 3.0);
    }

    #[test]
    fn names_every_bad_field() {
        let errors = validate(
            Contract::PerfBatch,
            json!({"id": "x", "collector": 5, "root_host": "", "extra": true, "samples": [
                {"time": "yesterday", "object": "Processor", "counter": "c", "value": "high"},
                {"object": "Processor", "counter": "c", "value": 1.0},
                {"time": 1, "object": "Processor", "counter": "c", "instance": "a\u{0}b", "value": 1.0}
            ]}),
        )
        .expect_err("invalid");
        let got = fields(&errors);
        for expected in [
            "id",
            "extra",
            "collector",
            "root_host",
            "samples[0].time",
            "samples[0].value",
            "samples[1].time",
            "samples[2].instance",
        ] {
            assert!(got.contains(&expected), "{expected} not in {got:?}");
        }
        let value_err = errors
            .iter()
            .find(|e| e.field == "samples[0].value")
            .expect("value error");
        assert_eq!(value_err.message, "expected a number, found a string");
        let nul = errors
            .iter()
            .find(|e| e.field == "samples[2].instance")
            .expect("NUL error");
        assert_eq!(nul.message, "must not hold a NUL character");
    }

    #[test]
    fn unions_take_plain_values_and_enums_any_case() {
        let v = validate(
            Contract::DiscoveryData,
            json!({"root_host": "h1", "source": {"kind": "discovery", "id": "d1"}, "mode": "snapshot",
                   "time": 5, "instances": [
                {"class": "Linux.Computer", "keys": {"name": "h1"}, "properties": {"cores": 4, "load": 0.5, "virtual": true, "note": null}},
                {"class": "Linux.FileSystem", "keys": {"mount": "/"}, "host": {"class": "Linux.Computer", "keys": {"name": "h1"}}}
            ]}),
        )
        .expect("valid");
        let bytes = Codec::shared()
            .encode_value(Contract::DiscoveryData, v)
            .expect("encodes");
        let data: crate::records::DiscoveryData = Codec::shared().decode(&bytes).expect("decodes");
        use crate::records::PropertyValue as P;
        let props = &data.instances[0].properties;
        assert_eq!(props["cores"], P::Long(4));
        assert_eq!(props["load"], P::Double(0.5));
        assert_eq!(props["virtual"], P::Boolean(true));
        assert_eq!(props["note"], P::Null);
        assert_eq!(
            data.instances[1].host.as_ref().map(|h| h.class.as_str()),
            Some("Linux.Computer")
        );
    }

    #[test]
    fn rejects_removals_in_a_snapshot_and_bad_enum() {
        let errors = validate(
            Contract::DiscoveryData,
            json!({"root_host": "h1", "source": {"kind": "robot", "id": ""}, "mode": "snapshot", "time": 5,
                   "removed_instances": [{"class": "X", "keys": {}}]}),
        )
        .expect_err("invalid");
        let got = fields(&errors);
        assert!(got.contains(&"source.kind"), "{got:?}");
        assert!(got.contains(&"source.id"), "{got:?}");
        assert!(got.contains(&"removed_instances"), "{got:?}");
    }

    #[test]
    fn rejects_wrong_shapes_without_panicking() {
        for json in [
            json!(null),
            json!([1, 2]),
            json!("perf"),
            json!({"samples": {"a": 1}}),
            json!({"samples": [null, 1, "x"]}),
            json!({"collector": "c", "root_host": "h", "samples": [{"time": 1e300, "object": "o", "counter": "c", "value": 1}]}),
        ] {
            let errors = validate(Contract::PerfBatch, json.clone()).expect_err("invalid");
            assert!(!errors.is_empty(), "{json}");
        }
        let errors = validate(
            Contract::Heartbeat,
            json!({"collector": "c", "root_host": "h", "time": 1, "interval_seconds": 99999999999i64}),
        )
        .expect_err("invalid");
        assert_eq!(fields(&errors), vec!["interval_seconds"]);
    }
}
