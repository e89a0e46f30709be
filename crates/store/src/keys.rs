//! Sortable key encoding.
//!
//! Keys are built from a one-byte prefix and typed parts whose byte order equals their
//! natural order: unsigned integers big-endian, signed integers big-endian with the sign bit
//! flipped, strings and byte strings escaped (`0x00` becomes `0x00 0xff`) and terminated by
//! `0x00 0x01`, so that a shorter string sorts before any longer one it prefixes and
//! tuples sort part by part. Decoders check every length and escape and never panic.

/// A key that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key truncated at byte {at}: {wanted} needs {need} more bytes")]
    Truncated {
        at: usize,
        wanted: &'static str,
        need: usize,
    },
    #[error("key has bad escape byte {found:#04x} at byte {at}")]
    BadEscape { at: usize, found: u8 },
    #[error("key string at byte {at} is not UTF-8")]
    NotUtf8 { at: usize },
    #[error("key has {extra} unexpected bytes after byte {at}")]
    Trailing { at: usize, extra: usize },
    #[error("key prefix is {found:#04x}, expected {expected:#04x}")]
    WrongPrefix { expected: u8, found: u8 },
}

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x01;

/// Builds a key part by part.
#[derive(Debug, Default, Clone)]
pub struct KeyWriter {
    buf: Vec<u8>,
}

impl KeyWriter {
    /// A key that starts with `prefix`.
    pub fn new(prefix: u8) -> Self {
        // Most keys are an id or two and a time: one allocation holds them.
        let mut buf = Vec::with_capacity(96);
        buf.push(prefix);
        KeyWriter { buf }
    }

    pub fn u8(mut self, v: u8) -> Self {
        self.buf.push(v);
        self
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i32(self, v: i32) -> Self {
        self.u32((v as u32) ^ 0x8000_0000)
    }

    pub fn i64(self, v: i64) -> Self {
        self.u64((v as u64) ^ 0x8000_0000_0000_0000)
    }

    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.buf.reserve(v.len() + 2);
        // Runs without a zero byte are copied whole (names and ids have none).
        let mut rest = v;
        while let Some(at) = rest.iter().position(|&b| b == ESCAPE) {
            self.buf.extend_from_slice(&rest[..at]);
            self.buf.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
            rest = &rest[at + 1..];
        }
        self.buf.extend_from_slice(rest);
        self.buf.extend_from_slice(&[ESCAPE, TERMINATOR]);
        self
    }

    pub fn str(self, v: &str) -> Self {
        self.bytes(v.as_bytes())
    }

    /// The key so far: also a prefix for scanning every key that continues it.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a key part by part, checking each.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> KeyReader<'a> {
    /// Reads a key, checking that it starts with `prefix`.
    pub fn new(key: &'a [u8], prefix: u8) -> Result<Self, KeyError> {
        let mut r = KeyReader { buf: key, pos: 0 };
        let found = r.u8()?;
        if found != prefix {
            return Err(KeyError::WrongPrefix {
                expected: prefix,
                found,
            });
        }
        Ok(r)
    }

    fn take(&mut self, n: usize, wanted: &'static str) -> Result<&'a [u8], KeyError> {
        let rest = self.buf.len() - self.pos;
        if rest < n {
            return Err(KeyError::Truncated {
                at: self.pos,
                wanted,
                need: n - rest,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, KeyError> {
        Ok(self.take(1, "u8")?[0])
    }

    pub fn u32(&mut self) -> Result<u32, KeyError> {
        let b = self.take(4, "u32")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, KeyError> {
        let b = self.take(8, "u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn i32(&mut self) -> Result<i32, KeyError> {
        Ok((self.u32()? ^ 0x8000_0000) as i32)
    }

    pub fn i64(&mut self) -> Result<i64, KeyError> {
        Ok((self.u64()? ^ 0x8000_0000_0000_0000) as i64)
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>, KeyError> {
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            let b = self.take(1, "byte string")?[0];
            if b != ESCAPE {
                out.push(b);
                continue;
            }
            let at_escape = self.pos;
            match self.take(1, "byte string escape")?[0] {
                ESCAPED_ZERO => out.push(0),
                TERMINATOR => return Ok(out),
                found => {
                    let _ = at;
                    return Err(KeyError::BadEscape {
                        at: at_escape,
                        found,
                    });
                }
            }
        }
    }

    pub fn str(&mut self) -> Result<String, KeyError> {
        let at = self.pos;
        String::from_utf8(self.bytes()?).map_err(|_| KeyError::NotUtf8 { at })
    }

    /// Checks that the whole key was read.
    pub fn finish(self) -> Result<(), KeyError> {
        let extra = self.buf.len() - self.pos;
        if extra == 0 {
            Ok(())
        } else {
            Err(KeyError::Trailing {
                at: self.pos,
                extra,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tuple_key(p: u8, a: &str, b: i64, c: u32, d: &[u8]) -> Vec<u8> {
        KeyWriter::new(p).str(a).i64(b).u32(c).bytes(d).finish()
    }

    proptest! {
        #[test]
        fn tuples_round_trip(p in any::<u8>(), a in ".*", b in any::<i64>(), c in any::<u32>(), d in proptest::collection::vec(any::<u8>(), 0..16), e in any::<i32>(), f in any::<u64>()) {
            let key = KeyWriter::new(p).str(&a).i64(b).u32(c).bytes(&d).i32(e).u64(f).u8(7).finish();
            let mut r = KeyReader::new(&key, p).expect("prefix");
            prop_assert_eq!(r.str().expect("str"), a);
            prop_assert_eq!(r.i64().expect("i64"), b);
            prop_assert_eq!(r.u32().expect("u32"), c);
            prop_assert_eq!(r.bytes().expect("bytes"), d);
            prop_assert_eq!(r.i32().expect("i32"), e);
            prop_assert_eq!(r.u64().expect("u64"), f);
            prop_assert_eq!(r.u8().expect("u8"), 7);
            r.finish().expect("nothing left");
        }

        #[test]
        fn byte_order_is_tuple_order(
            a1 in "[a\u{0}b]{0,4}", b1 in any::<i64>(), c1 in any::<u32>(), d1 in proptest::collection::vec(0u8..3, 0..4),
            a2 in "[a\u{0}b]{0,4}", b2 in any::<i64>(), c2 in any::<u32>(), d2 in proptest::collection::vec(0u8..3, 0..4),
        ) {
            let k1 = tuple_key(1, &a1, b1, c1, &d1);
            let k2 = tuple_key(1, &a2, b2, c2, &d2);
            let t1 = (a1.as_bytes(), b1, c1, &d1);
            let t2 = (a2.as_bytes(), b2, c2, &d2);
            prop_assert_eq!(k1.cmp(&k2), t1.cmp(&t2));
        }

        #[test]
        fn signed_integers_sort(a in any::<i64>(), b in any::<i64>(), x in any::<i32>(), y in any::<i32>()) {
            let (ka, kb) = (KeyWriter::new(0).i64(a).finish(), KeyWriter::new(0).i64(b).finish());
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let (kx, ky) = (KeyWriter::new(0).i32(x).finish(), KeyWriter::new(0).i32(y).finish());
            prop_assert_eq!(kx.cmp(&ky), x.cmp(&y));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(mut r) = KeyReader::new(&bytes, bytes.first().copied().unwrap_or(0)) {
                let _ = r.clone().str();
                let _ = r.clone().bytes();
                let _ = r.clone().u64();
                let _ = r.i32();
            }
        }

        #[test]
        fn string_prefix_scans_only_match_whole_strings(a in "[a-z]{1,6}", b in "[a-z]{1,6}") {
            let prefix = KeyWriter::new(3).str(&a).finish();
            let key = KeyWriter::new(3).str(&b).u32(1).finish();
            prop_assert_eq!(key.starts_with(&prefix), a == b);
        }
    }

    #[test]
    fn zero_bytes_are_escaped_wherever_they_are() {
        let key = |v: &[u8]| KeyWriter::new(7).bytes(v).finish();
        assert_eq!(key(b""), [7, 0, 1]);
        assert_eq!(key(b"ab"), [7, b'a', b'b', 0, 1]);
        assert_eq!(key(&[0]), [7, 0, 0xff, 0, 1]);
        assert_eq!(
            key(&[0, b'a', 0, 0, b'b', 0]),
            [7, 0, 0xff, b'a', 0, 0xff, 0, 0xff, b'b', 0, 0xff, 0, 1]
        );
        let long = [b'x'; 200];
        let long_key = key(&long);
        let mut r = KeyReader::new(&long_key, 7).expect("prefix");
        assert_eq!(r.bytes().expect("bytes"), long.to_vec());
    }

    #[test]
    fn reports_what_is_wrong() {
        assert_eq!(
            KeyReader::new(&[], 1).err(),
            Some(KeyError::Truncated {
                at: 0,
                wanted: "u8",
                need: 1
            })
        );
        assert_eq!(
            KeyReader::new(&[2], 1).err(),
            Some(KeyError::WrongPrefix {
                expected: 1,
                found: 2
            })
        );
        let mut r = KeyReader::new(&[1, 0, 0, 1], 1).expect("prefix");
        assert_eq!(
            r.u32(),
            Err(KeyError::Truncated {
                at: 1,
                wanted: "u32",
                need: 1
            })
        );
        let mut r = KeyReader::new(&[1, b'a', 0, 9], 1).expect("prefix");
        assert_eq!(r.bytes(), Err(KeyError::BadEscape { at: 3, found: 9 }));
        let mut r = KeyReader::new(&[1, b'a'], 1).expect("prefix");
        assert!(matches!(r.str(), Err(KeyError::Truncated { .. })));
        let mut r = KeyReader::new(&[1, 0xc3, 0x28, 0, 1], 1).expect("prefix");
        assert_eq!(r.str(), Err(KeyError::NotUtf8 { at: 1 }));
        let r = KeyReader::new(&[1, 5, 6], 1).expect("prefix");
        assert_eq!(r.finish(), Err(KeyError::Trailing { at: 1, extra: 2 }));
    }
}
