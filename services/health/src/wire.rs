//! Hand-written value formats of the values rewritten with nearly every perf batch (a
//! host's latest samples, its unit monitors' kept states): no field or variant names,
//! strings with a 4-byte length, numbers big-endian. A value that does not read says what
//! and at which byte.

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
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
        format!("{} at byte {}: {message}", self.what, self.at)
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
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(min_size.max(1)) > left {
            return Err(self.error(format!("{n} items cannot fit in the {left} bytes left")));
        }
        Ok(n)
    }

    pub(crate) fn string(&mut self) -> Result<String, String> {
        let at = self.at;
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| format!("{}: the text at byte {at} is not UTF-8", self.what))
    }
}
