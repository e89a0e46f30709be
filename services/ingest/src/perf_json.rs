//! Perf batches in JSON, read straight into the perf encoder.
//!
//! Most requests are perf batches, and most perf batches are plainly valid: this reads
//! such a request with borrowed strings into [`PerfView`]s, which the codec writes directly
//! (no JSON tree, no Avro value tree between). It gives up, and the request goes through
//! the generic validation, on anything that is not plainly valid (an unknown or assigned
//! field, a duplicate field, a time as an RFC 3339 string, a blank name, ...), so a
//! refusal and its list of problems come from one place, and a request that is accepted
//! gives the same records and ids on either path.

use std::borrow::Cow;

use healthstream_contracts::{PerfView, SampleView};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    #[serde(borrow)]
    collector: Cow<'a, str>,
    #[serde(borrow)]
    root_host: Cow<'a, str>,
    #[serde(borrow)]
    samples: Vec<Sample<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample<'a> {
    time: i64,
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    counter: Cow<'a, str>,
    #[serde(borrow, default)]
    instance: Cow<'a, str>,
    value: f64,
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// The batches of a JSON perf request when every one is plainly valid; `None` when the
/// request needs the generic validation (to be refused, or for a form only it reads).
pub fn read(body: &[u8]) -> Option<Vec<PerfView<'_>>> {
    let batches: Vec<Batch<'_>> = serde_json::from_slice(body).ok()?;
    let plain = batches.iter().all(|b| {
        !blank(&b.collector)
            && !blank(&b.root_host)
            && b.samples
                .iter()
                .all(|s| !blank(&s.object) && !blank(&s.counter) && s.value.is_finite())
    });
    if !plain {
        return None;
    }
    Some(
        batches
            .into_iter()
            .map(|b| PerfView {
                id: Cow::Borrowed(""),
                collector: b.collector,
                root_host: b.root_host,
                samples: b
                    .samples
                    .into_iter()
                    .map(|s| SampleView {
                        time: s.time,
                        object: s.object,
                        counter: s.counter,
                        instance: s.instance,
                        value: s.value,
                    })
                    .collect(),
            })
            .collect(),
    )
}
