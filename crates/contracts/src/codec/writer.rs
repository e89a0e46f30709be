//! The Avro binary writer: an Avro value written straight against a parsed schema.
//!
//! The library's path (`Value::resolve` then `to_avro_datum`) builds a table of the
//! schema's names twice per value and copies the value while resolving it; at the rate the
//! processors write records that was a quarter of their CPU. This writer walks the value
//! and the schema together once, with the named types looked up in a table built when the
//! schema is parsed. It accepts what `apache_avro::to_value` makes of our records (unit
//! enum variants as strings, options as unions, integers of either width, byte vectors as
//! arrays of ints) and writes map entries in key order, so equal records give equal bytes.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, Schema, UnionSchema};
use apache_avro::types::Value;

/// The named types of a schema (records, enums, fixed), for its references.
pub(crate) struct Names(HashMap<Name, Schema>);

impl Names {
    pub(crate) fn of(schema: &Schema) -> Names {
        let mut names = HashMap::new();
        collect(schema, &mut names);
        Names(names)
    }

    fn get(&self, name: &Name) -> Option<&Schema> {
        self.0.get(name).or_else(|| {
            // A reference written without its namespace.
            self.0
                .iter()
                .find(|(n, _)| n.name == name.name)
                .map(|(_, s)| s)
        })
    }
}

fn collect(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.clone(), schema.clone());
            for f in &r.fields {
                collect(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => collect(&a.items, names),
        Schema::Map(m) => collect(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect(v, names);
            }
        }
        _ => {}
    }
}

/// Writes `value` as an Avro datum of `schema`. The error says where (a path of field
/// names, array indexes and map keys) and what did not fit.
pub(crate) fn write(
    schema: &Schema,
    names: &Names,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    write_at(schema, names, value, out).map_err(|fail| {
        if fail.at.is_empty() {
            fail.message
        } else {
            let path: Vec<String> = fail.at.into_iter().rev().collect();
            format!("{}: {}", path.join("."), fail.message)
        }
    })
}

/// What did not fit, and where: the path is gathered on the way out, innermost first, so
/// that a value that fits costs no path at all.
struct Fail {
    at: Vec<String>,
    message: String,
}

impl Fail {
    fn within(mut self, segment: impl Into<String>) -> Fail {
        self.at.push(segment.into());
        self
    }
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail {
            at: Vec::new(),
            message,
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) => "an int",
        Value::Long(_) => "a long",
        Value::Float(_) => "a float",
        Value::Double(_) => "a double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::Fixed(..) => "a fixed",
        Value::Enum(..) => "an enum symbol",
        Value::Union(..) => "a union",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Record(_) => "a record",
        _ => "a logical-type value",
    }
}

fn mismatch(expected: &str, value: &Value) -> Fail {
    format!("expected {expected}, found {}", kind(value)).into()
}

/// Values as `to_value` gives them: options come wrapped in a union of index 0 or 1.
fn unwrap(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        v => v,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match unwrap(value) {
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Some(i64::from(*i)),
        Value::Long(l)
        | Value::TimeMicros(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::TimestampNanos(l)
        | Value::LocalTimestampMillis(l)
        | Value::LocalTimestampMicros(l)
        | Value::LocalTimestampNanos(l) => Some(*l),
        _ => None,
    }
}

pub(crate) fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

/// A `["null", "string"]` union.
pub(crate) fn write_optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => write_long(out, 0),
        Some(s) => {
            write_long(out, 1);
            write_str(out, s);
        }
    }
}

/// An array's items or a map's entries as the generic writer writes them: one block with
/// its count (none when there are none), each by `write`, then the end.
pub(crate) fn write_block<I: ExactSizeIterator>(
    out: &mut Vec<u8>,
    items: I,
    mut write: impl FnMut(&mut Vec<u8>, I::Item),
) {
    if items.len() > 0 {
        write_long(out, items.len() as i64);
        for item in items {
            write(out, item);
        }
    }
    out.push(0);
}

fn write_at(schema: &Schema, names: &Names, value: &Value, out: &mut Vec<u8>) -> Result<(), Fail> {
    if let Schema::Union(u) = schema {
        return write_union(u, names, value, out);
    }
    let value = unwrap(value);
    match schema {
        Schema::Null => match value {
            Value::Null => Ok(()),
            v => Err(mismatch("null", v)),
        },
        Schema::Boolean => match value {
            Value::Boolean(b) => {
                out.push(u8::from(*b));
                Ok(())
            }
            v => Err(mismatch("a boolean", v)),
        },
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            let n = integer(value).ok_or_else(|| mismatch("an int", value))?;
            let n = i32::try_from(n).map_err(|_| format!("{n} does not fit an int"))?;
            write_long(out, i64::from(n));
            Ok(())
        }
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => {
            let n = integer(value).ok_or_else(|| mismatch("a long", value))?;
            write_long(out, n);
            Ok(())
        }
        Schema::Float => {
            let f = match value {
                Value::Float(f) => *f,
                Value::Double(d) => *d as f32,
                v => integer(v).ok_or_else(|| mismatch("a float", v))? as f32,
            };
            out.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        Schema::Double => {
            let d = match value {
                Value::Double(d) => *d,
                Value::Float(f) => f64::from(*f),
                v => integer(v).ok_or_else(|| mismatch("a double", v))? as f64,
            };
            out.extend_from_slice(&d.to_le_bytes());
            Ok(())
        }
        Schema::Bytes => match value {
            Value::Bytes(b) | Value::Fixed(_, b) => {
                write_bytes(out, b);
                Ok(())
            }
            Value::String(s) => {
                write_bytes(out, s.as_bytes());
                Ok(())
            }
            Value::Array(items) => {
                // A `Vec<u8>` serialized as a sequence of small ints.
                write_long(out, items.len() as i64);
                for item in items {
                    let b = integer(item)
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| mismatch("a byte", item))?;
                    out.push(b);
                }
                Ok(())
            }
            v => Err(mismatch("bytes", v)),
        },
        Schema::String | Schema::Uuid => match value {
            Value::String(s) | Value::Enum(_, s) => {
                write_bytes(out, s.as_bytes());
                Ok(())
            }
            Value::Uuid(u) => {
                write_bytes(out, u.to_string().as_bytes());
                Ok(())
            }
            v => Err(mismatch("a string", v)),
        },
        Schema::Array(a) => match value {
            Value::Array(items) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for (i, item) in items.iter().enumerate() {
                        write_at(&a.items, names, item, out)
                            .map_err(|f| f.within(i.to_string()))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            v => Err(mismatch("an array", v)),
        },
        Schema::Map(m) => match value {
            Value::Map(entries) => {
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    let mut keys: Vec<&String> = entries.keys().collect();
                    keys.sort_unstable();
                    for k in keys {
                        write_bytes(out, k.as_bytes());
                        write_at(&m.types, names, &entries[k], out)
                            .map_err(|f| f.within(k.as_str()))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            v => Err(mismatch("a map", v)),
        },
        Schema::Record(r) => write_record(r, names, value, out),
        Schema::Enum(e) => {
            let symbol = match value {
                Value::Enum(_, s) | Value::String(s) => s,
                v => return Err(mismatch("an enum symbol", v)),
            };
            let at = e
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| format!("{symbol:?} is not a symbol of enum {}", e.name.name))?;
            write_long(out, at as i64);
            Ok(())
        }
        Schema::Fixed(f) => match value {
            Value::Fixed(_, b) | Value::Bytes(b) if b.len() == f.size => {
                out.extend_from_slice(b);
                Ok(())
            }
            v => Err(format!("expected {} fixed bytes, found {}", f.size, kind(v)).into()),
        },
        Schema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("the schema has no type named {}", name.fullname(None)))?;
            write_at(target, names, value, out)
        }
        other => Err(format!("schema type {other:?} is not supported by the writer").into()),
    }
}

fn write_record(
    r: &RecordSchema,
    names: &Names,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    let Value::Record(fields) = value else {
        return Err(mismatch("a record", value));
    };
    for (i, field) in r.fields.iter().enumerate() {
        // Fields come in schema order from our records; look the name up otherwise.
        let found = match fields.get(i) {
            Some((n, v)) if *n == field.name => Some(v),
            _ => fields
                .iter()
                .find(|(n, _)| *n == field.name)
                .map(|(_, v)| v),
        };
        write_field(field, found, names, out).map_err(|f| f.within(field.name.as_str()))?;
    }
    Ok(())
}

/// Whether a value can be written as this union branch (shallow: the branch is chosen by
/// the kind of the value, as the library's resolution does).
fn fits(schema: &Schema, names: &Names, value: &Value) -> bool {
    let value = unwrap(value);
    match schema {
        Schema::Null => matches!(value, Value::Null),
        Schema::Boolean => matches!(value, Value::Boolean(_)),
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            integer(value).is_some_and(|n| i32::try_from(n).is_ok())
        }
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => integer(value).is_some(),
        Schema::Float | Schema::Double => {
            matches!(value, Value::Float(_) | Value::Double(_)) || integer(value).is_some()
        }
        Schema::Bytes => matches!(value, Value::Bytes(_) | Value::Array(_)),
        Schema::String | Schema::Uuid => matches!(value, Value::String(_) | Value::Uuid(_)),
        Schema::Array(_) => matches!(value, Value::Array(_)),
        Schema::Map(_) => matches!(value, Value::Map(_)),
        Schema::Record(_) => matches!(value, Value::Record(_)),
        Schema::Enum(e) => match value {
            Value::Enum(_, s) | Value::String(s) => e.symbols.iter().any(|x| x == s),
            _ => false,
        },
        Schema::Fixed(f) => matches!(value, Value::Fixed(n, _) if *n == f.size),
        Schema::Ref { name } => names.get(name).is_some_and(|s| fits(s, names, value)),
        _ => false,
    }
}

/// One field of a record: its value, or its default when the value leaves it out.
fn write_field(
    field: &apache_avro::schema::RecordField,
    found: Option<&Value>,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    match (found, &field.default) {
        (Some(v), _) => write_at(&field.schema, names, v, out),
        (None, Some(default)) => {
            let v = Value::from(default.clone());
            match &field.schema {
                // A union's default is of its first branch.
                Schema::Union(u) => {
                    let first = u
                        .variants()
                        .first()
                        .ok_or_else(|| "an empty union has no default".to_string())?;
                    write_long(out, 0);
                    write_at(first, names, &v, out)
                }
                s => write_at(s, names, &v, out),
            }
        }
        (None, None) => Err("missing, and the field has no default".to_string().into()),
    }
}

fn write_union(
    u: &UnionSchema,
    names: &Names,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), Fail> {
    let branches = u.variants();
    let inner = unwrap(value);
    let at = branches
        .iter()
        .position(|b| fits(b, names, inner))
        .ok_or_else(|| format!("{} fits no branch of the union", kind(inner)))?;
    write_long(out, at as i64);
    write_at(&branches[at], names, inner, out)
}
