//! Confluent wire framing: `0x00`, a 4-byte big-endian schema id, then the Avro datum.

/// First byte of every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// A framed value that cannot be taken apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than the five header bytes.
    #[error("value of {len} bytes is shorter than the 5-byte Confluent header")]
    TooShort { len: usize },
    /// The first byte is not the magic byte.
    #[error("value starts with byte {found:#04x}, expected the Confluent magic byte 0x00")]
    BadMagic { found: u8 },
}

/// Prefixes an Avro datum with the magic byte and schema id.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed value into its schema id and Avro datum.
pub fn unframe(value: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if value.len() < 5 {
        return Err(WireError::TooShort { len: value.len() });
    }
    if value[0] != MAGIC_BYTE {
        return Err(WireError::BadMagic { found: value[0] });
    }
    let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    Ok((id, &value[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frame_round_trips(id in any::<u32>(), datum in proptest::collection::vec(any::<u8>(), 0..64)) {
            let framed = frame(id, &datum);
            let (got_id, got) = unframe(&framed).expect("framed value");
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(got, &datum[..]);
        }

        #[test]
        fn unframe_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = unframe(&bytes);
        }
    }

    #[test]
    fn rejects_short_and_unframed_values() {
        assert_eq!(unframe(&[0, 0, 0]), Err(WireError::TooShort { len: 3 }));
        assert_eq!(
            unframe(&[7, 0, 0, 0, 1, 2]),
            Err(WireError::BadMagic { found: 7 })
        );
    }
}
