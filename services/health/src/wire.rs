//! Hand-written value formats of the values rewritten with nearly every perf batch (a
//! host's latest samples, its unit monitors' kept states): no field or variant names,
//! counts and lengths as variable-length integers (7 bits a byte, least significant
//! first; the first formats had them in 4 bytes), fixed-size numbers big-endian. A value
//! that does not read says what and at which byte.

/// A string with a 4-byte length (the first formats; now only to write them in tests).
#[cfg(test)]
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Checks that `bytes` with the byte at `at` made `byte` are refused by `decode`, with an
/// error that says `says` and names that byte.
#[cfg(test)]
pub(crate) fn assert_refused_at<T: std::fmt::Debug>(
    decode: impl Fn(&[u8]) -> Result<T, String>,
    bytes: &[u8],
    at: usize,
    byte: u8,
    says: &str,
) {
    let mut bad = bytes.to_vec();
    bad[at] = byte;
    let e = decode(&bad).expect_err("refused");
    assert!(
        e.contains(says) && e.contains(&format!("at byte {at}")),
        "{e:?} should say {says:?} at byte {at}"
    );
}

/// A variable-length unsigned integer: 7 bits a byte, least significant first, the high
/// bit set on every byte but the last.
pub(crate) fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A string with a variable-length length.
pub(crate) fn put_vstr(out: &mut Vec<u8>, s: &str) {
    put_var(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The byte of `v` in `table` (a value's variants by their place in a table).
pub(crate) fn byte_of<T: PartialEq>(table: &[T], v: &T) -> u8 {
    table.iter().position(|x| x == v).unwrap_or_default() as u8
}

/// What a byte stands for in `table`; `what` names the table's items in the error.
pub(crate) fn at_byte<T: Copy>(c: &mut Cursor<'_>, table: &[T], what: &str) -> Result<T, String> {
    let at = c.position();
    let b = c.u8()?;
    table
        .get(usize::from(b))
        .copied()
        .ok_or_else(|| c.error_at(at, format!("{b} is not {what}")))
}

/// The index of `item` in `table`, added at the end if missing (the tables of ids a value
/// lists once and its entries name by index).
pub(crate) fn index_in<T: PartialEq>(table: &mut Vec<T>, item: T) -> usize {
    match table.iter().position(|x| *x == item) {
        Some(i) => i,
        None => {
            table.push(item);
            table.len() - 1
        }
    }
}

/// Reads a value from its start; `what` names it in errors.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor { bytes, at: 0, what }
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// An error at the current byte.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> String {
        self.error_at(self.at, message)
    }

    /// An error at an earlier byte (where what is wrong started).
    pub(crate) fn error_at(&self, at: usize, message: impl std::fmt::Display) -> String {
        format!("{} at byte {at}: {message}", self.what)
    }

    /// Where the next read starts.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{} end at byte {} of {}, {n} more expected",
                    self.what,
                    self.at,
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// A count of items of at least `min_size` bytes each: refused when the rest of the
    /// value cannot hold them (so that a bad count does not reserve memory).
    pub(crate) fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()?;
        self.fitting(u64::from(n), min_size)
    }

    /// `n` items of at least `min_size` bytes each, if the rest of the value can hold them.
    fn fitting(&self, n: u64, min_size: usize) -> Result<usize, String> {
        let left = self.bytes.len() - self.at;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size.max(1)) <= left => Ok(n),
            _ => Err(self.error(format!("{n} items cannot fit in the {left} bytes left"))),
        }
    }

    /// What [`put_var`] wrote; more than 64 bits is refused.
    pub(crate) fn var(&mut self) -> Result<u64, String> {
        let at = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error_at(at, "a number longer than 64 bits"))
    }

    /// A [`put_var`] count of items of at least `min_size` bytes each (see [`Cursor::count`]).
    pub(crate) fn var_count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.var()?;
        self.fitting(n, min_size)
    }

    /// An item of a table read earlier in the value, by its [`put_var`] index; `what` names
    /// the table's items in the error.
    pub(crate) fn index<'t, T>(&mut self, table: &'t [T], what: &str) -> Result<&'t T, String> {
        let at = self.at;
        let i = self.var()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| table.get(i))
            .ok_or_else(|| self.error_at(at, format!("{what} {i} of {} listed", table.len())))
    }

    /// What [`put_vstr`] wrote.
    pub(crate) fn vstring(&mut self) -> Result<String, String> {
        let at = self.at;
        let n = self.var_count(1)?;
        self.text(at, n)
    }

    /// A string with a 4-byte length (the first formats).
    pub(crate) fn string(&mut self) -> Result<String, String> {
        let at = self.at;
        let n = self.u32()? as usize;
        self.text(at, n)
    }

    /// The next `n` bytes as text; `at` is where the string's length started.
    fn text(&mut self, at: usize, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| format!("{}: the text at byte {at} is not UTF-8", self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn variable_length_numbers_read_back(v in any::<u64>(), s in ".{0,40}") {
            let mut out = Vec::new();
            put_var(&mut out, v);
            put_vstr(&mut out, &s);
            let mut c = Cursor::new(&out, "test value");
            prop_assert_eq!(c.var(), Ok(v));
            prop_assert_eq!(c.vstring(), Ok(s));
            prop_assert!(c.done());
        }
    }

    #[test]
    fn variable_length_numbers_take_the_bytes_they_need() {
        for (v, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            let mut out = Vec::new();
            put_var(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
        }
    }

    #[test]
    fn bad_variable_length_numbers_are_refused_with_their_place() {
        // Never ends.
        let err = Cursor::new(&[0x80, 0x80], "test value")
            .var()
            .expect_err("cut");
        assert!(err.contains("test value"), "{err}");
        // Eleven bytes: past 64 bits.
        let long = [0xff; 11];
        let err = Cursor::new(&long, "test value")
            .var()
            .expect_err("too long");
        assert!(err.contains("longer than 64 bits"), "{err}");
        // The tenth byte may only carry the 64th bit.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Cursor::new(&over, "test value").var().is_err());
        // A count larger than what is left.
        let mut out = Vec::new();
        put_var(&mut out, 1_000);
        out.push(1);
        let err = Cursor::new(&out, "test value")
            .var_count(1)
            .expect_err("cannot fit");
        assert!(err.contains("cannot fit"), "{err}");
        // A string that is not UTF-8.
        let err = Cursor::new(&[2, 0xff, 0xfe], "test value")
            .vstring()
            .expect_err("not UTF-8");
        assert!(err.contains("not UTF-8"), "{err}");
    }
}
