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

/// A perf batch in the newest schema's layout, borrowing its strings.
fn read_perf<'a>(r: &mut Reader<'a>) -> Result<PerfView<'a>, String> {
    let id = r.string()?;
    let collector = r.string()?;
    let root_host = r.string()?;
    let mut samples = Vec::new();
    loop {
        let count = r.block(MIN_SAMPLE_BYTES)?;
        if count == 0 {
            break;
        }
        samples.reserve(count);
        for _ in 0..count {
            let time = r.long()?;
            let object = r.string()?;
            let counter = r.string()?;
            let instance = r.string()?;
            let value = r.double()?;
            samples.push(SampleView {
                time,
                object: Cow::Borrowed(object),
                counter: Cow::Borrowed(counter),
                instance: Cow::Borrowed(instance),
                value,
            });
        }
    }
    Ok(PerfView {
        id: Cow::Borrowed(id),
        collector: Cow::Borrowed(collector),
        root_host: Cow::Borrowed(root_host),
        samples,
    })
}

impl Codec {
    /// The framed value of a perf batch in the newest perf schema, with its content id
    /// assigned as [`Codec::encode_with_content_id`] assigns it (the batch's own `id` is not
    /// read). The same bytes and id as the generic encoder gives for the same record,
    /// written straight from the view: the ingest's path for perf batches.
    pub fn encode_perf_with_content_id(&self, batch: &PerfView<'_>) -> (String, Vec<u8>) {
        let strings = batch.collector.len()
            + batch.root_host.len()
            + batch
                .samples
                .iter()
                .map(|s| s.object.len() + s.counter.len() + s.instance.len())
                .sum::<usize>();
        let mut out = with_id_room(16 + strings + batch.samples.len() * 24);
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
    }
}
