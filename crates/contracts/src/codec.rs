//! Encoding and decoding of framed topic values.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::schema::Schema;
use apache_avro::types::Value;

use crate::records::{DeadLetterClass, Record};
use crate::wire::{unframe, WireError};
use crate::Contract;

/// Largest allocation the Avro decoder may make for one value: a corrupt length prefix
/// must not take the process down.
const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// A value that cannot be decoded. Each variant says what was wrong and with what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad framing: {0}")]
    Framing(#[from] WireError),
    #[error("unknown schema id {id}: not a version of any healthstream contract")]
    UnknownSchemaId { id: u32 },
    #[error("schema id {id} is {found} v{version}, but this topic carries {expected}")]
    WrongContract {
        id: u32,
        version: u32,
        expected: Contract,
        found: Contract,
    },
    #[error("{contract} v{version}: Avro datum does not decode: {message}")]
    Datum {
        contract: Contract,
        version: u32,
        message: String,
    },
    #[error("{contract} v{version}: {extra} bytes left after the Avro datum")]
    TrailingBytes {
        contract: Contract,
        version: u32,
        extra: usize,
    },
    #[error("{contract}: decoded value does not fit the record type: {message}")]
    Shape { contract: Contract, message: String },
}

impl DecodeError {
    /// The dead-letter class of this error.
    pub fn class(&self) -> DeadLetterClass {
        match self {
            DecodeError::Framing(_)
            | DecodeError::UnknownSchemaId { .. }
            | DecodeError::WrongContract { .. } => DeadLetterClass::Framing,
            DecodeError::Datum { .. } | DecodeError::TrailingBytes { .. } => {
                DeadLetterClass::Decode
            }
            DecodeError::Shape { .. } => DeadLetterClass::Validation,
        }
    }
}

/// A record that cannot be encoded with its contract (a bug in the caller).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{contract}: cannot encode: {message}")]
pub struct EncodeError {
    pub contract: Contract,
    pub message: String,
}

struct Parsed {
    contract: Contract,
    version: u32,
    schema: Schema,
    names: writer::Names,
}

/// The parsed schemas of every contract version, by schema id.
pub struct Codec {
    by_id: HashMap<u32, Parsed>,
    latest: HashMap<Contract, u32>,
}

impl Codec {
    /// Parses every embedded schema.
    pub fn new() -> Result<Codec, String> {
        // Only the first call takes effect; later calls return the value already set.
        let _ = apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let mut by_id = HashMap::new();
        let mut latest = HashMap::new();
        for contract in Contract::ALL {
            for v in contract.versions() {
                let schema = Schema::parse_str(v.text)
                    .map_err(|e| format!("{} v{}: {e}", contract, v.version))?;
                by_id.insert(
                    v.schema_id,
                    Parsed {
                        contract,
                        version: v.version,
                        names: writer::Names::of(&schema),
                        schema,
                    },
                );
            }
            latest.insert(contract, contract.latest().schema_id);
        }
        Ok(Codec { by_id, latest })
    }

    /// The process-wide codec.
    pub fn shared() -> &'static Codec {
        static CODEC: OnceLock<Codec> = OnceLock::new();
        CODEC.get_or_init(|| {
            Codec::new().expect("embedded schemas parse (checked by the contract tests)")
        })
    }

    fn latest(&self, contract: Contract) -> (u32, &Schema) {
        let id = self.latest[&contract];
        (id, &self.by_id[&id].schema)
    }

    /// The schema written for `contract`.
    pub fn schema(&self, contract: Contract) -> &Schema {
        self.latest(contract).1
    }

    /// The schema of a schema id, if it is a version of some contract.
    pub fn schema_by_id(&self, id: u32) -> Option<(Contract, u32, &Schema)> {
        self.by_id
            .get(&id)
            .map(|p| (p.contract, p.version, &p.schema))
    }

    /// Encodes a typed record as a framed value.
    pub fn encode<R: Record>(&self, record: &R) -> Result<Vec<u8>, EncodeError> {
        let value = apache_avro::to_value(record).map_err(|e| EncodeError {
            contract: R::CONTRACT,
            message: e.to_string(),
        })?;
        self.encode_value(R::CONTRACT, value)
    }

    /// Encodes typed records as an Avro object container file (what collectors post to
    /// ingest with `Content-Type: application/avro`).
    pub fn container<R: Record>(&self, records: &[R]) -> Result<Vec<u8>, EncodeError> {
        let (_, schema) = self.latest(R::CONTRACT);
        let err = |e: apache_avro::Error| EncodeError {
            contract: R::CONTRACT,
            message: e.to_string(),
        };
        let mut writer = apache_avro::Writer::new(schema, Vec::new());
        for r in records {
            let value = apache_avro::to_value(r)
                .map_err(err)?
                .resolve(schema)
                .map_err(err)?;
            writer.append(value).map_err(err)?;
        }
        writer.into_inner().map_err(err)
    }

    /// Encodes an Avro value of the contract's latest schema as a framed value.
    pub fn encode_value(&self, contract: Contract, value: Value) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.frame_into(contract, &value, &mut out)?;
        Ok(out)
    }

    /// Writes `value` framed in the contract's latest schema at the end of `out`.
    fn frame_into(
        &self,
        contract: Contract,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let id = self.latest[&contract];
        let parsed = &self.by_id[&id];
        out.push(crate::wire::MAGIC_BYTE);
        out.extend_from_slice(&id.to_be_bytes());
        writer::write(&parsed.schema, &parsed.names, value, out)
            .map_err(|message| EncodeError { contract, message })
    }

    /// Encodes a record whose first field, `id`, is still empty, and fills in its content
    /// id: the hash of the framed value without an id. The value is encoded once, after
    /// room for the id (see [`identify_in_place`]), so the id costs a hash, not a second
    /// encoding nor a copy.
    pub fn encode_with_content_id(
        &self,
        contract: Contract,
        value: Value,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let err = |message: &str| EncodeError {
            contract,
            message: message.to_string(),
        };
        let first_is_id = matches!(self.schema(contract), Schema::Record(r)
            if r.fields.first().is_some_and(|f| f.name == "id" && matches!(f.schema, Schema::String)));
        if !first_is_id {
            return Err(err("the first field is not a string `id`"));
        }
        let mut out = with_id_room(128);
        self.frame_into(contract, &value, &mut out)?;
        // Header (5 bytes), then the empty id: a zero length.
        if out.get(ID_HEADER_AT + 5) != Some(&0) {
            return Err(err("the `id` field is not empty"));
        }
        Ok(identify_in_place(out))
    }

    /// Reads a framed value of `contract` with `read` when it was written with the newest
    /// schema (`None` otherwise: for the generic decoder to resolve): `read`'s error is the
    /// datum's, and bytes it leaves are refused as the generic decoder refuses them.
    pub(crate) fn read_latest<'a, T>(
        contract: Contract,
        framed: &'a [u8],
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, String>,
    ) -> Option<Result<T, DecodeError>> {
        let latest = contract.latest();
        let (id, datum) = match unframe(framed) {
            Ok(unframed) => unframed,
            Err(e) => return Some(Err(e.into())),
        };
        if id != latest.schema_id {
            return None;
        }
        let mut r = Reader::new(datum);
        let value = read(&mut r).map_err(|message| DecodeError::Datum {
            contract,
            version: latest.version,
            message,
        });
        Some(match (value, r.left()) {
            (Ok(v), 0) => Ok(v),
            (Ok(_), extra) => Err(DecodeError::TrailingBytes {
                contract,
                version: latest.version,
                extra,
            }),
            (Err(e), _) => Err(e),
        })
    }

    /// Decodes a framed value of `contract` into an Avro value of the latest schema,
    /// resolving older writer versions.
    pub fn decode_value(&self, contract: Contract, framed: &[u8]) -> Result<Value, DecodeError> {
        let (id, mut datum) = unframe(framed)?;
        let parsed = self
            .by_id
            .get(&id)
            .ok_or(DecodeError::UnknownSchemaId { id })?;
        if parsed.contract != contract {
            return Err(DecodeError::WrongContract {
                id,
                version: parsed.version,
                expected: contract,
                found: parsed.contract,
            });
        }
        let (latest_id, latest_schema) = self.latest(contract);
        let reader = if latest_id == id {
            None
        } else {
            Some(latest_schema)
        };
        // apache-avro reads an optional value cut short at the end of its bytes as absent,
        // without an error. Followed by zero bytes, a datum cut short reads into them
        // instead, and is refused for it.
        let mut padded = Vec::with_capacity(datum.len() + PADDING);
        padded.extend_from_slice(datum);
        padded.resize(datum.len() + PADDING, 0);
        datum = &padded;
        let datum_error = |message: String| DecodeError::Datum {
            contract,
            version: parsed.version,
            message,
        };
        let value = apache_avro::from_avro_datum(&parsed.schema, &mut datum, reader)
            .map_err(|e| datum_error(e.to_string()))?;
        match datum.len() {
            PADDING => Ok(value),
            left if left > PADDING => Err(DecodeError::TrailingBytes {
                contract,
                version: parsed.version,
                extra: left - PADDING,
            }),
            left => Err(datum_error(format!(
                "the datum ends inside its value ({} bytes short at least)",
                PADDING - left
            ))),
        }
    }

    /// Decodes a framed value into its typed record.
    pub fn decode<R: Record>(&self, framed: &[u8]) -> Result<R, DecodeError> {
        let value = self.decode_value(R::CONTRACT, framed)?;
        apache_avro::from_value::<R>(&value).map_err(|e| DecodeError::Shape {
            contract: R::CONTRACT,
            message: e.to_string(),
        })
    }
}

mod reader;
#[cfg(test)]
mod tests;
mod writer;

pub(crate) use reader::Reader;
pub(crate) use writer::{write_block, write_bytes, write_long, write_optional, write_str};

/// Zero bytes after a datum while it is decoded (see [`Codec::decode_value`]).
const PADDING: usize = 16;

/// Room before [`CONTENT_TAG`](crate::ids::CONTENT_TAG) and a framed value with an empty
/// id for [`identify_in_place`]: where the header and the id go, so that the rest of the
/// value stays where it is.
const ID_ROOM: usize = 24;

/// Where the framed value starts in a buffer made by [`with_id_room`].
const ID_HEADER_AT: usize = ID_ROOM + crate::ids::CONTENT_TAG.len();

/// A buffer to write a framed value with an empty id into, for [`identify_in_place`]: the
/// room for its header and id, then the content tag; `capacity` more bytes reserved.
pub(crate) fn with_id_room(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(ID_HEADER_AT + capacity);
    buf.resize(ID_ROOM, 0);
    buf.extend_from_slice(crate::ids::CONTENT_TAG);
    buf
}

/// `buf` is made by [`with_id_room`], then a framed value whose first field, a string
/// `id`, is empty (the byte after the 5-byte header is its zero length). Returns the
/// content id of the framed value and the value with that id, made in `buf` itself (the
/// id is 32 characters: its length, the header and itself take the room, the tag and the
/// empty id).
pub(crate) fn identify_in_place(mut buf: Vec<u8>) -> (String, Vec<u8>) {
    let header = ID_HEADER_AT;
    debug_assert_eq!(buf.get(header + 5), Some(&0), "an empty id");
    let id = crate::ids::content_id_tagged(&buf[ID_ROOM..]);
    debug_assert_eq!(id.len(), 32);
    buf.copy_within(header..header + 5, 0);
    // The id's length as Avro writes a long: zigzag, one byte below 64.
    buf[5] = (id.len() as u8) << 1;
    buf[6..6 + id.len()].copy_from_slice(id.as_bytes());
    debug_assert_eq!(
        6 + id.len(),
        header + 6,
        "the rest of the value stays in place"
    );
    (id, buf)
}
