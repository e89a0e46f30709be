//! Perf batches read in place: the health processor's hot path.
//!
//! The generic decoder goes through apache-avro's `Value` tree (about a microsecond per
//! sample). A perf batch written with the newest perf schema is read here directly from its
//! Avro binary encoding, borrowing its strings from the record's bytes; a batch written
//! with an older version goes through the generic decoder (schema resolution) and is
//! returned owned. Both give the same [`PerfView`]; malformed bytes give the same kinds of
//! [`DecodeError`] as the generic decoder, never a panic.

use std::borrow::Cow;

use crate::codec::{
    identify_in_place, with_id_room, write_block, write_bytes, write_long, Codec, DecodeError,
    Reader,
};
use crate::records::PerfBatch;
use crate::Contract;

/// A perf batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfView<'a> {
    pub id: Cow<'a, str>,
    pub collector: Cow<'a, str>,
    pub root_host: Cow<'a, str>,
    pub samples: Vec<SampleView<'a>>,
}

impl PerfView<'_> {
    /// Bytes in the batch's names: its collector's, its root host's and its samples'.
    pub(crate) fn names_len(&self) -> usize {
        self.collector.len()
            + self.root_host.len()
            + self
                .samples
                .iter()
                .map(|s| s.object.len() + s.counter.len() + s.instance.len())
                .sum::<usize>()
    }
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView<'a> {
    pub time: i64,
    pub object: Cow<'a, str>,
    pub counter: Cow<'a, str>,
    pub instance: Cow<'a, str>,
    pub value: f64,
}

impl<'a> From<&'a PerfBatch> for PerfView<'a> {
    fn from(b: &'a PerfBatch) -> Self {
        PerfView {
            id: Cow::Borrowed(&b.id),
            collector: Cow::Borrowed(&b.collector),
            root_host: Cow::Borrowed(&b.root_host),
            samples: b
                .samples
                .iter()
                .map(|s| SampleView {
                    time: s.time,
                    object: Cow::Borrowed(&s.object),
                    counter: Cow::Borrowed(&s.counter),
                    instance: Cow::Borrowed(&s.instance),
                    value: s.value,
                })
                .collect(),
        }
    }
}

/// A perf batch with its strings side by side in one buffer, each named by where it is:
/// two allocations for a batch (names, samples) however many samples it has. What the
/// health processor keeps of a batch between reading and applying it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatPerf {
    strings: String,
    id: Span,
    collector: Span,
    root_host: Span,
    samples: Vec<FlatSample>,
}

/// Where a string is in a [`FlatPerf`]'s buffer: start and end byte.
type Span = (u32, u32);

#[derive(Debug, Clone, PartialEq)]
struct FlatSample {
    time: i64,
    value: f64,
    object: Span,
    counter: Span,
    instance: Span,
}

impl FlatPerf {
    fn text(&self, (start, end): Span) -> &str {
        self.strings
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        self.text(self.id)
    }

    pub fn collector(&self) -> &str {
        self.text(self.collector)
    }

    pub fn root_host(&self) -> &str {
        self.text(self.root_host)
    }

    /// The samples' names side by side (object, counter, instance of each in turn), to be
    /// looked through at once.
    pub fn sample_names(&self) -> &str {
        self.strings
            .get(self.root_host.1 as usize..)
            .unwrap_or_default()
    }

    /// The samples, borrowing their names.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = FlatSampleRef<'_>> + Clone {
        self.samples.iter().map(|s| FlatSampleRef {
            time: s.time,
            object: self.text(s.object),
            counter: self.text(s.counter),
            instance: self.text(s.instance),
            value: s.value,
        })
    }

    /// The batch, borrowing its strings.
    pub fn view(&self) -> PerfView<'_> {
        PerfView {
            id: Cow::Borrowed(self.id()),
            collector: Cow::Borrowed(self.collector()),
            root_host: Cow::Borrowed(self.root_host()),
            samples: self
                .samples()
                .map(|s| SampleView {
                    time: s.time,
                    object: Cow::Borrowed(s.object),
                    counter: Cow::Borrowed(s.counter),
                    instance: Cow::Borrowed(s.instance),
                    value: s.value,
                })
                .collect(),
        }
    }
}

/// A sample of a [`FlatPerf`], borrowing its names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatSampleRef<'a> {
    pub time: i64,
    pub object: &'a str,
    pub counter: &'a str,
    pub instance: &'a str,
    pub value: f64,
}

/// Puts strings into one buffer, refusing more than a span can say.
struct Flattener {
    strings: Vec<u8>,
}

impl Flattener {
    fn put(&mut self, s: &[u8]) -> Result<Span, String> {
        let start = self.strings.len();
        self.strings.extend_from_slice(s);
        match (u32::try_from(start), u32::try_from(self.strings.len())) {
            (Ok(start), Ok(end)) => Ok((start, end)),
            _ => Err(format!(
                "a perf batch of more than {} bytes of names",
                u32::MAX
            )),
        }
    }
}

impl<'a> TryFrom<&PerfView<'a>> for FlatPerf {
    type Error = String;

    /// Fails only when the batch's strings are more than 4 GiB together.
    fn try_from(view: &PerfView<'a>) -> Result<FlatPerf, String> {
        let mut f = Flattener {
            strings: Vec::with_capacity(view.id.len() + view.names_len()),
        };
        let (id, collector, root_host) = (
            f.put(view.id.as_bytes())?,
            f.put(view.collector.as_bytes())?,
            f.put(view.root_host.as_bytes())?,
        );
        let samples = view
            .samples
            .iter()
            .map(|s| {
                Ok(FlatSample {
                    time: s.time,
                    value: s.value,
                    object: f.put(s.object.as_bytes())?,
                    counter: f.put(s.counter.as_bytes())?,
                    instance: f.put(s.instance.as_bytes())?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(FlatPerf {
            // Strings put together are a string.
            strings: String::from_utf8(f.strings).map_err(|e| e.to_string())?,
            id,
            collector,
            root_host,
            samples,
        })
    }
}

/// The smallest encoding of a sample: four one-byte lengths or longs and an 8-byte double.
const MIN_SAMPLE_BYTES: usize = 12;

impl Codec {
    /// Reads a framed perf batch, borrowing from `framed` when it was written with the
    /// newest perf schema.
    pub fn decode_perf_view<'a>(&self, framed: &'a [u8]) -> Result<PerfView<'a>, DecodeError> {
        if let Some(read) = Codec::read_latest(Contract::PerfBatch, framed, read_perf) {
            return read;
        }
        let b: PerfBatch = self.decode(framed)?;
        Ok(PerfView {
            id: Cow::Owned(b.id),
            collector: Cow::Owned(b.collector),
            root_host: Cow::Owned(b.root_host),
            samples: b
                .samples
                .into_iter()
                .map(|s| SampleView {
                    time: s.time,
                    object: Cow::Owned(s.object),
                    counter: Cow::Owned(s.counter),
                    instance: Cow::Owned(s.instance),
                    value: s.value,
                })
                .collect(),
        })
    }
}

impl Codec {
    /// Reads a framed perf batch into one buffer of strings: the same batch as
    /// [`Codec::decode_perf_view`] reads, and the same errors.
    pub fn decode_perf_flat(&self, framed: &[u8]) -> Result<FlatPerf, DecodeError> {
        if let Some(read) = Codec::read_latest(Contract::PerfBatch, framed, read_flat) {
            return read;
        }
        let view = self.decode_perf_view(framed)?;
        FlatPerf::try_from(&view).map_err(|message| DecodeError::Datum {
            contract: Contract::PerfBatch,
            version: Contract::PerfBatch.latest().version,
            message,
        })
    }
}

/// A perf batch in the newest schema's layout, its strings copied into one buffer as they
/// come and checked as UTF-8 at once. A batch it cannot read is read again by
/// [`read_perf`], for the error to be the one it gives.
fn read_flat(r: &mut Reader<'_>) -> Result<FlatPerf, String> {
    let start = r.clone();
    let mut f = Flattener {
        strings: Vec::with_capacity(r.left()),
    };
    let mut samples = Vec::new();
    let read = read_batch(
        r,
        |r| f.put(r.bytes()?),
        |time, [object, counter, instance], value| FlatSample {
            time,
            value,
            object,
            counter,
            instance,
        },
        &mut samples,
    );
    let flat = read.ok().and_then(|[id, collector, root_host]| {
        let strings = String::from_utf8(f.strings).ok()?;
        // Each string is UTF-8 when all of them are and each starts at a character's start.
        let mut starts = samples
            .iter()
            .flat_map(|s| [s.object.0, s.counter.0, s.instance.0])
            .chain([id.0, collector.0, root_host.0]);
        starts
            .all(|start| strings.is_char_boundary(start as usize))
            .then_some(FlatPerf {
                strings,
                id,
                collector,
                root_host,
                samples,
            })
    });
    match flat {
        Some(flat) => Ok(flat),
        None => {
            *r = start;
            read_perf(r)?;
            // The view read what could not be flattened: only names too many for a span.
            Err("a perf batch's names cannot be read into one buffer (more than 4 GiB)".to_string())
        }
    }
}

/// A perf batch in the newest schema's layout: its id, collector and root host (returned),
/// then its samples (each made by `sample` and put in `samples`), every string read by
/// `string`.
fn read_batch<'a, S, T>(
    r: &mut Reader<'a>,
    mut string: impl FnMut(&mut Reader<'a>) -> Result<S, String>,
    sample: impl Fn(i64, [S; 3], f64) -> T,
    samples: &mut Vec<T>,
) -> Result<[S; 3], String> {
    let head = [string(r)?, string(r)?, string(r)?];
    loop {
        let count = r.block(MIN_SAMPLE_BYTES)?;
        if count == 0 {
            return Ok(head);
        }
        samples.reserve(count);
        for _ in 0..count {
            let time = r.long()?;
            let names = [string(r)?, string(r)?, string(r)?];
            samples.push(sample(time, names, r.double()?));
        }
    }
}

/// A perf batch in the newest schema's layout, borrowing its strings.
fn read_perf<'a>(r: &mut Reader<'a>) -> Result<PerfView<'a>, String> {
    let mut samples = Vec::new();
    let [id, collector, root_host] = read_batch(
        r,
        |r| r.string().map(Cow::Borrowed),
        |time, [object, counter, instance], value| SampleView {
            time,
            object,
            counter,
            instance,
            value,
        },
        &mut samples,
    )?;
    Ok(PerfView {
        id,
        collector,
        root_host,
        samples,
    })
}

impl Codec {
    /// The framed value of a perf batch in the newest perf schema, with its content id
    /// assigned as [`Codec::encode_with_content_id`] assigns it (the batch's own `id` is not
    /// read). The same bytes and id as the generic encoder gives for the same record,
    /// written straight from the view: the ingest's path for perf batches.
    pub fn encode_perf_with_content_id(&self, batch: &PerfView<'_>) -> (String, Vec<u8>) {
        let mut out = with_id_room(16 + batch.names_len() + batch.samples.len() * 24);
        out.push(crate::wire::MAGIC_BYTE);
        out.extend_from_slice(&Contract::PerfBatch.latest().schema_id.to_be_bytes());
        // The id, empty until the content id is spliced in.
        out.push(0);
        write_bytes(&mut out, batch.collector.as_bytes());
        write_bytes(&mut out, batch.root_host.as_bytes());
        write_block(&mut out, batch.samples.iter(), |out, s| {
            write_long(out, s.time);
            write_bytes(out, s.object.as_bytes());
            write_bytes(out, s.counter.as_bytes());
            write_bytes(out, s.instance.as_bytes());
            out.extend_from_slice(&s.value.to_le_bytes());
        });
        identify_in_place(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PerfSample;
    use proptest::prelude::*;

    fn batch(n: usize) -> PerfBatch {
        PerfBatch {
            id: "id-1".into(),
            collector: "c".into(),
            root_host: "web-01".into(),
            samples: (0..n)
                .map(|i| PerfSample {
                    time: 1_700_000_000_000 + i as i64,
                    object: "Filesystem".into(),
                    counter: "% Free Space".into(),
                    instance: format!("/data/{i}"),
                    value: i as f64 * -1.5,
                })
                .collect(),
        }
    }

    fn owned(v: &PerfView<'_>) -> PerfBatch {
        PerfBatch {
            id: v.id.to_string(),
            collector: v.collector.to_string(),
            root_host: v.root_host.to_string(),
            samples: v
                .samples
                .iter()
                .map(|s| PerfSample {
                    time: s.time,
                    object: s.object.to_string(),
                    counter: s.counter.to_string(),
                    instance: s.instance.to_string(),
                    value: s.value,
                })
                .collect(),
        }
    }

    #[test]
    fn reads_what_the_generic_codec_reads() {
        let c = Codec::shared();
        for n in [0, 1, 100] {
            let b = batch(n);
            let framed = c.encode(&b).expect("encode");
            let v = c.decode_perf_view(&framed).expect("view");
            assert_eq!(owned(&v), b);
            assert!(matches!(v.root_host, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let c = Codec::shared();
        let framed = c.encode(&batch(3)).expect("encode");
        for cut in 0..framed.len() {
            assert!(c.decode_perf_view(&framed[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = framed.clone();
        trailing.push(0);
        assert!(matches!(
            c.decode_perf_view(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        // An array count far beyond the bytes left.
        let mut huge = framed[..5].to_vec();
        huge.extend_from_slice(&[0, 0, 0]); // three empty strings
        huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        let e = c.decode_perf_view(&huge).expect_err("huge count");
        assert!(e.to_string().contains("cannot fit"), "{e}");
        // Another contract's schema id.
        let hb = crate::records::Heartbeat {
            id: String::new(),
            collector: "c".into(),
            root_host: "h".into(),
            time: 0,
            interval_seconds: 60,
            sequence: 1,
            version: "1".into(),
        };
        assert!(matches!(
            c.decode_perf_view(&c.encode(&hb).expect("encode")),
            Err(DecodeError::WrongContract { .. })
        ));
    }

    #[test]
    fn a_flat_batch_refuses_what_the_batch_in_place_refuses() {
        let c = Codec::shared();
        let b = PerfBatch {
            samples: vec![PerfSample {
                object: "ab".into(),
                counter: "cd".into(),
                ..batch(1).samples[0].clone()
            }],
            ..batch(1)
        };
        let framed = c.encode(&b).expect("encode");
        let at = |s: &[u8]| {
            framed
                .windows(s.len())
                .position(|w| w == s)
                .expect("in the record")
        };
        // "é" split between two names: the names together are UTF-8, each is not.
        let mut split = framed.clone();
        let (object, counter) = (at(b"ab"), at(b"cd"));
        split[object + 1] = 0xc3;
        split[counter] = 0xa9;
        let e = c.decode_perf_flat(&split).expect_err("split character");
        assert_eq!(
            e.to_string(),
            c.decode_perf_view(&split).expect_err("view").to_string()
        );
        assert!(
            e.to_string()
                .contains(&format!("string is not UTF-8 at byte {}", object - 5)),
            "{e}"
        );
        // Cut anywhere, with bytes after the end, an impossible count: the same errors.
        for cut in 0..framed.len() {
            assert_eq!(
                c.decode_perf_flat(&framed[..cut])
                    .expect_err("cut")
                    .to_string(),
                c.decode_perf_view(&framed[..cut])
                    .expect_err("cut")
                    .to_string(),
                "cut at {cut}"
            );
        }
        let mut trailing = framed.clone();
        trailing.push(0);
        assert!(matches!(
            c.decode_perf_flat(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        let flat = c.decode_perf_flat(&framed).expect("flat");
        assert_eq!(flat.root_host(), "web-01");
        assert_eq!(flat.collector(), "c");
        assert_eq!(flat.id(), "id-1");
        assert_eq!(flat.sample_names(), "abcd/data/0");
    }

    fn generic_with_content_id(b: &PerfBatch) -> (String, Vec<u8>) {
        let c = Codec::shared();
        let unidentified = PerfBatch {
            id: String::new(),
            ..b.clone()
        };
        let value = apache_avro::to_value(&unidentified).expect("value");
        c.encode_with_content_id(Contract::PerfBatch, value)
            .expect("generic encoding")
    }

    #[test]
    fn writes_what_the_generic_encoder_writes() {
        let c = Codec::shared();
        for n in [0, 1, 100] {
            let b = batch(n);
            let (id, framed) = c.encode_perf_with_content_id(&PerfView::from(&b));
            assert_eq!((id.clone(), framed.clone()), generic_with_content_id(&b));
            // The batch's own id is not read; the content id is what the record carries.
            let read = c.decode_perf_view(&framed).expect("decodes");
            assert_eq!(read.id, id);
            assert_eq!(read.samples.len(), n);
        }
    }

    fn any_batch() -> impl Strategy<Value = PerfBatch> {
        let sample = (any::<i64>(), ".{0,12}", ".{0,12}", ".{0,200}", any::<f64>()).prop_map(
            |(time, object, counter, instance, value)| PerfSample {
                time,
                object,
                counter,
                instance,
                value,
            },
        );
        (
            ".{0,20}",
            ".{0,300}",
            proptest::collection::vec(sample, 0..70),
        )
            .prop_map(|(collector, root_host, samples)| PerfBatch {
                id: "ignored".into(),
                collector,
                root_host,
                samples,
            })
    }

    proptest! {
        #[test]
        fn any_batch_is_written_as_the_generic_encoder_writes_it(b in any_batch()) {
            let c = Codec::shared();
            let (id, framed) = c.encode_perf_with_content_id(&PerfView::from(&b));
            let (generic_id, generic) = generic_with_content_id(&b);
            prop_assert_eq!(id, generic_id);
            // Compared as bytes: NaN values are equal bit for bit.
            prop_assert_eq!(framed, generic);
        }

        #[test]
        fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = crate::frame(Contract::PerfBatch.latest().schema_id, &[]);
            framed.extend_from_slice(&tail);
            let _ = Codec::shared().decode_perf_view(&framed);
        }

        #[test]
        fn any_batch_reads_flat_as_it_reads_in_place(b in any_batch()) {
            let c = Codec::shared();
            let framed = c.encode(&b).expect("encode");
            let flat = c.decode_perf_flat(&framed).expect("flat");
            // Compared as text: NaN values are not equal to themselves.
            prop_assert_eq!(format!("{:?}", owned(&flat.view())), format!("{b:?}"));
            let made = FlatPerf::try_from(&PerfView::from(&b)).expect("flat");
            prop_assert_eq!(format!("{flat:?}"), format!("{made:?}"));
            let read: Vec<_> = flat.samples().map(|s| (s.object, s.counter, s.instance)).collect();
            let want: Vec<_> = b.samples.iter().map(|s| (&*s.object, &*s.counter, &*s.instance)).collect();
            prop_assert_eq!(read, want);
            let names: String = b.samples.iter().map(|s| [&*s.object, &*s.counter, &*s.instance].concat()).collect();
            prop_assert_eq!(flat.sample_names(), names);
        }

        #[test]
        fn any_bytes_read_flat_as_they_read_in_place(
            b in any_batch(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            // A record with one byte changed and cut short: both readers give the same
            // batch or the same error.
            let c = Codec::shared();
            let mut framed = c.encode(&b).expect("encode");
            let i = 5 + at.index(framed.len() - 5);
            framed[i] = byte;
            framed.truncate(5 + cut.index(framed.len() - 4));
            let flat = c.decode_perf_flat(&framed).map(|f| format!("{:?}", owned(&f.view())));
            let view = c.decode_perf_view(&framed).map(|v| format!("{:?}", owned(&v)));
            prop_assert_eq!(flat.map_err(|e| e.to_string()), view.map_err(|e| e.to_string()));
        }
    }
}
