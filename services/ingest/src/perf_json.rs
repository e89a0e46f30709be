//! Perf batches in JSON, read straight into the perf encoder.
//!
//! Most requests are perf batches, and most perf batches are plainly valid: this reads
//! such a request in one pass over its bytes into [`PerfView`]s borrowing its strings,
//! which the codec writes directly (no JSON tree, no Avro value tree between). It gives
//! up, and the request goes through the generic validation, on anything that is not
//! plainly valid (an unknown or assigned field, a duplicate field, a time as an RFC 3339
//! string, a blank name, a key written with escapes, JSON it cannot read, ...), so a
//! refusal and its list of problems come from one place, and a request that is accepted
//! gives the same records and ids on either path.
//!
//! What it accepts it reads as a JSON parser does: strings are checked as UTF-8 and their
//! escapes decoded, numbers follow JSON's grammar, a value is the nearest double to its
//! decimal text (as the generic path reads it), a time is an integer in the range of i64.

use std::borrow::Cow;

use healthstream_contracts::{PerfView, SampleView};

fn blank(s: &str) -> bool {
    // Most names start with a visible ASCII character: not blank, without decoding any.
    match s.as_bytes().first() {
        Some(b'!'..=b'~') => false,
        _ => s.trim().is_empty(),
    }
}

/// The batches of a JSON perf request when every one is plainly valid; `None` when the
/// request needs the generic validation (to be refused, or for a form only it reads).
pub fn read(body: &[u8]) -> Option<Vec<PerfView<'_>>> {
    // Checked as UTF-8 once, whole (JSON text is): each string is then a slice of it
    // between two ASCII quotes, on character boundaries.
    let text = std::str::from_utf8(body).ok()?;
    let mut s = Scanner {
        text,
        b: body,
        i: 0,
    };
    let mut batches = Vec::new();
    s.array(|s| {
        batches.push(s.batch()?);
        Some(())
    })?;
    s.ws();
    if s.i != body.len() {
        return None;
    }
    plain(&batches).then_some(batches)
}

/// Names are not blank and values are finite: what the validation would accept.
pub(crate) fn plain(batches: &[PerfView<'_>]) -> bool {
    batches.iter().all(|b| {
        !blank(&b.collector)
            && !blank(&b.root_host)
            && b.samples
                .iter()
                .all(|s| !blank(&s.object) && !blank(&s.counter) && s.value.is_finite())
    })
}

/// A cursor over a request's bytes. Every step returns `None` on what it does not take.
struct Scanner<'a> {
    /// The request, checked as UTF-8.
    text: &'a str,
    /// The same, as bytes.
    b: &'a [u8],
    i: usize,
}

/// The i64 of a JSON integer's text (checked against the grammar already): at most 18
/// digits add up without overflow; longer ones, rare, go through the standard parser.
fn integer_of(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return text.parse().ok();
    }
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    Some(if negative { -v } else { v })
}

/// Sets a field read once: `None` (give up) on its second appearance.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `open item, item, ... close`.
    fn list(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[item, ...]`.
    fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.list(b'[', b']', item)
    }

    /// `{"name": value, ...}`: `field` reads the value of each name (written without
    /// escapes: a name with one is not a field this reader knows).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.list(b'{', b'}', |s| {
            s.eat(b'"')?;
            let (name, escaped) = s.plain_part()?;
            if escaped {
                return None;
            }
            s.eat(b':')?;
            field(s, name)
        })
    }

    fn batch(&mut self) -> Option<PerfView<'a>> {
        let (mut collector, mut root_host, mut samples) = (None, None, None);
        self.object(|s, name| match name {
            b"collector" => once(&mut collector, s.string()?),
            b"root_host" => once(&mut root_host, s.string()?),
            b"samples" => {
                // A collector's batch has a few dozen samples at most, mostly.
                let mut list = Vec::with_capacity(16);
                s.array(|s| {
                    list.push(s.sample()?);
                    Some(())
                })?;
                once(&mut samples, list)
            }
            _ => None,
        })?;
        Some(PerfView {
            id: Cow::Borrowed(""),
            collector: collector?,
            root_host: root_host?,
            samples: samples?,
        })
    }

    fn sample(&mut self) -> Option<SampleView<'a>> {
        let (mut time, mut object, mut counter, mut instance, mut value) =
            (None, None, None, None, None);
        self.object(|s, name| match name {
            b"time" => {
                let (text, integer) = s.number()?;
                // "-0" reads as a double in JSON parsers (negative zero), not an integer.
                let t = integer_of(text).filter(|_| integer && text != "-0")?;
                once(&mut time, t)
            }
            b"object" => once(&mut object, s.string()?),
            b"counter" => once(&mut counter, s.string()?),
            b"instance" => once(&mut instance, s.string()?),
            b"value" => {
                let (text, _) = s.number()?;
                once(&mut value, text.parse::<f64>().ok()?)
            }
            _ => None,
        })?;
        Some(SampleView {
            time: time?,
            object: object?,
            counter: counter?,
            instance: instance.unwrap_or(Cow::Borrowed("")),
            value: value?,
        })
    }

    /// A JSON number's text, checked against JSON's grammar, and whether it is an
    /// integer (no fraction, no exponent).
    fn number(&mut self) -> Option<(&'a str, bool)> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        let mut integer = true;
        if self.b.get(self.i) == Some(&b'.') {
            integer = false;
            self.i += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.digits()?;
        }
        // The grammar's characters are ASCII.
        Some((self.text.get(start..self.i)?, integer))
    }

    /// One or more decimal digits.
    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// A JSON string: borrowed from the request when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        match self.plain_part()? {
            // Between the quotes (ASCII): a slice of the checked text.
            (_, false) => self.text.get(start..self.i - 1).map(Cow::Borrowed),
            (_, true) => self.escaped(start),
        }
    }

    /// The bytes of a string from after its opening quote to its closing quote (taken) or
    /// to its first backslash (`self.i` on it), and whether a backslash stopped it.
    fn plain_part(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some((&self.b[start..self.i - 1], false));
                }
                b'\\' => return Some((&self.b[start..self.i], true)),
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    /// The rest of a string with escapes, from its first backslash at `self.i`.
    fn escaped(&mut self, start: usize) -> Option<Cow<'a, str>> {
        let mut out = self.b[start..self.i].to_vec();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok().map(Cow::Owned),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    let plain = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            // A NUL is refused with a reason by the generic path.
                            let ch = self.unicode().filter(|c| *c != '\0')?;
                            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(plain);
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    /// The character of a `\uXXXX` escape (its `\u` taken), a surrogate pair as one.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            c => c,
        };
        char::from_u32(code)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for d in digits {
            v = v * 16 + char::from(*d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_the_standard_parser_reads_them() {
        for text in [
            "0",
            "-0",
            "7",
            "-1",
            "1700000000000",
            "123456789012345678",
            "-999999999999999999",
            "1234567890123456789",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
        ] {
            assert_eq!(integer_of(text), text.parse::<i64>().ok(), "{text}");
        }
    }

    #[test]
    fn a_name_is_blank_when_only_white_space() {
        for (name, is_blank) in [
            ("", true),
            (" ", true),
            ("\t\n\u{0b}\u{a0}\u{2003}", true),
            ("C:", false),
            (" x", false),
            ("\u{a0}x", false),
            ("é", false),
        ] {
            assert_eq!(blank(name), is_blank, "{name:?}");
        }
    }
}
