//! Bytes of a management pack file -> text: UTF-8 (with or without byte-order mark) or UTF-16
//! with a byte-order mark.

/// Largest management pack file accepted.
pub const MAX_MP_BYTES: usize = 64 * 1024 * 1024;

/// Decode the file's bytes.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() > MAX_MP_BYTES {
        return Err(format!(
            "the file is {} bytes; management packs are limited to {MAX_MP_BYTES}",
            bytes.len()
        ));
    }
    let utf16 = |body: &[u8], little: bool| -> Result<String, String> {
        if body.len() % 2 != 0 {
            return Err(format!(
                "UTF-16 text with an odd number of bytes ({}): the file is truncated",
                body.len() + 2
            ));
        }
        let units = body.chunks_exact(2).map(|c| {
            if little {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        let mut out = String::with_capacity(body.len() / 2);
        for (i, ch) in char::decode_utf16(units).enumerate() {
            match ch {
                Ok(c) => out.push(c),
                Err(_) => {
                    return Err(format!(
                        "invalid UTF-16 (an unpaired surrogate) at byte {}",
                        2 + 2 * i
                    ))
                }
            }
        }
        Ok(out)
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest, 3),
        // UTF-16 without a byte-order mark: "<" followed by a zero byte, or the reverse.
        [b'<', 0, ..] => utf16(bytes, true),
        [0, b'<', ..] => utf16(bytes, false),
        _ => utf8(bytes, 0),
    }
}

fn utf8(bytes: &[u8], offset: usize) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!(
            "not UTF-8 text: invalid byte at offset {} (management packs are UTF-8, or UTF-16 with a byte-order mark)",
            offset + e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let text = "<ManagementPack>é</ManagementPack>";
        assert_eq!(decode(text.as_bytes()).expect("utf8"), text);
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom8).expect("utf8 bom"), text);
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(decode(&le).expect("utf16le"), text);
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(decode(&be).expect("utf16be"), text);
    }

    #[test]
    fn bad_encodings_are_errors() {
        assert!(decode(&[b'<', b'a', 0xC3, 0x28])
            .expect_err("bad utf8")
            .contains("offset 2"));
        assert!(decode(&[0xFF, 0xFE, b'<', 0, b'a'])
            .expect_err("odd")
            .contains("odd number"));
        assert!(decode(&[0xFF, 0xFE, 0x00, 0xD8, b'a', 0])
            .expect_err("surrogate")
            .contains("surrogate"));
    }
}
