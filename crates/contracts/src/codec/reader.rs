//! Avro's binary encoding read straight from a datum's bytes, for the records read on hot
//! paths (perf batches, commands). Every read checks what it takes: malformed bytes give a
//! message saying what and at which byte, never a panic.

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn fail(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    /// Bytes not read yet.
    pub(crate) fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| self.fail("truncated long"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.fail("long overflows 64 bits"));
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(self.fail("long longer than 10 bytes"));
            }
        }
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// An Avro int: a long in the range of i32.
    pub(crate) fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.fail(&format!("int {v} out of range")))
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, String> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| {
            // Said at the string's first byte.
            self.pos -= bytes.len();
            self.fail("string is not UTF-8")
        })
    }

    /// Avro bytes (or a string's bytes, not checked as UTF-8).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| self.fail("negative string length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| self.fail("string runs past the end"))?;
        let b = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    pub(crate) fn double(&mut self) -> Result<f64, String> {
        let end = self.pos + 8;
        let b: [u8; 8] = self
            .bytes
            .get(self.pos..end)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.fail("truncated double"))?;
        self.pos = end;
        Ok(f64::from_le_bytes(b))
    }

    /// The item count of the next block of an array or map (0: the end), each item at
    /// least `min_item` bytes: a count that cannot fit in what is left is refused before
    /// anything is allocated for it.
    pub(crate) fn block(&mut self, min_item: usize) -> Result<usize, String> {
        let mut count = self.long()?;
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            count = count
                .checked_neg()
                .ok_or_else(|| self.fail("bad block count"))?;
            let _size = self.long()?;
        }
        let count = usize::try_from(count).map_err(|_| self.fail("bad block count"))?;
        let left = self.left();
        if count > left / min_item.max(1) {
            return Err(self.fail(&format!(
                "{count} items cannot fit in the {left} bytes left"
            )));
        }
        Ok(count)
    }
}
