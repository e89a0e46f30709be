//! An alert as the health stage keeps it, rewritten at each of its changes and read back at
//! the next (a monitor's alert is raised, then resolved a little later): a hand-written
//! format, as the kept states have, instead of MessagePack through serde.
//!
//! Format: a tag byte that no MessagePack value starts with (`0xc1`, which MessagePack
//! never uses: values kept by earlier versions are still read, as MessagePack), the version
//! byte, then the fields in their order: strings with variable-length lengths; severity,
//! priority and source as a byte each; the times as 8 bytes, big-endian; the resolution
//! state, repeat count and sequences as zigzag variable-length integers; the suppression
//! values, parameters and history as a count then each; a field change as its name, then
//! its old and new values, each a flag byte (0 absent, 1 there) and the string.

use healthstream_engine::alerts::{Alert, Change, Source};
use healthstream_model::pack::{Priority, Severity};

use crate::wire::{at_byte, byte_of, put_var, put_vstr, Cursor};

/// The first byte of an alert in this format: never the first of a MessagePack value.
pub(crate) const TAG: u8 = 0xc1;
const VERSION: u8 = 1;

const SEVERITIES: [Severity; 3] = [Severity::Information, Severity::Warning, Severity::Critical];
const PRIORITIES: [Priority; 3] = [Priority::Low, Priority::Normal, Priority::High];
const SOURCES: [Source; 2] = [Source::Monitor, Source::Rule];

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_var(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn signed(c: &mut Cursor<'_>) -> Result<i64, String> {
    let z = c.var()?;
    Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
}

fn put_strings(out: &mut Vec<u8>, list: &[String]) {
    put_var(out, list.len() as u64);
    for s in list {
        put_vstr(out, s);
    }
}

fn strings(c: &mut Cursor<'_>) -> Result<Vec<String>, String> {
    let n = c.var_count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.vstring()?);
    }
    Ok(out)
}

fn put_optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_vstr(out, s);
        }
    }
}

fn optional(c: &mut Cursor<'_>) -> Result<Option<String>, String> {
    Ok(match at_byte(c, &[false, true], "a flag")? {
        false => None,
        true => Some(c.vstring()?),
    })
}

/// The stored value of an alert.
pub(crate) fn encode_alert(a: &Alert) -> Vec<u8> {
    let strings_len = a.id.len()
        + a.name.len()
        + a.description.len()
        + a.instance_id.len()
        + a.workflow_id.len()
        + a.history
            .iter()
            .map(|h| h.by.len() + h.comment.len() + h.fields.len() * 24)
            .sum::<usize>();
    let mut out = Vec::with_capacity(48 + strings_len + a.history.len() * 24);
    out.extend([TAG, VERSION]);
    for s in [&a.id, &a.name, &a.description] {
        put_vstr(&mut out, s);
    }
    out.push(byte_of(&SEVERITIES, &a.severity));
    out.push(byte_of(&PRIORITIES, &a.priority));
    for s in [&a.instance_id, &a.workflow_id] {
        put_vstr(&mut out, s);
    }
    out.push(byte_of(&SOURCES, &a.source));
    out.extend_from_slice(&a.raised_at.to_be_bytes());
    out.extend_from_slice(&a.modified_at.to_be_bytes());
    put_signed(&mut out, i64::from(a.resolution_state));
    put_signed(&mut out, a.repeat_count);
    put_strings(&mut out, &a.suppression);
    put_strings(&mut out, &a.parameters);
    put_var(&mut out, a.history.len() as u64);
    for h in &a.history {
        put_signed(&mut out, h.sequence);
        put_vstr(&mut out, &h.by);
        out.extend_from_slice(&h.at.to_be_bytes());
        put_vstr(&mut out, &h.comment);
        put_var(&mut out, h.fields.len() as u64);
        for (field, old, new) in &h.fields {
            put_vstr(&mut out, field);
            put_optional(&mut out, old.as_deref());
            put_optional(&mut out, new.as_deref());
        }
    }
    out
}

/// What [`encode_alert`] wrote (the value starts with [`TAG`]).
pub(crate) fn decode_alert(v: &[u8]) -> Result<Alert, String> {
    let mut c = Cursor::new(v, "alert");
    match c.u8()? {
        TAG => {}
        other => return Err(c.error_at(0, format!("{other} is not the alert format's tag"))),
    }
    match c.u8()? {
        VERSION => {}
        other => return Err(c.error_at(1, format!("alert of version {other} (known: {VERSION})"))),
    }
    let (id, name, description) = (c.vstring()?, c.vstring()?, c.vstring()?);
    let severity = at_byte(&mut c, &SEVERITIES, "a severity")?;
    let priority = at_byte(&mut c, &PRIORITIES, "a priority")?;
    let (instance_id, workflow_id) = (c.vstring()?, c.vstring()?);
    let source = at_byte(&mut c, &SOURCES, "an alert source")?;
    let (raised_at, modified_at) = (c.i64()?, c.i64()?);
    let at = c.position();
    let resolution_state = i32::try_from(signed(&mut c)?)
        .map_err(|_| c.error_at(at, "a resolution state out of range"))?;
    let repeat_count = signed(&mut c)?;
    let suppression = strings(&mut c)?;
    let parameters = strings(&mut c)?;
    // A change is at least its sequence, by, time, comment and field count.
    let n = c.var_count(12)?;
    let mut history = Vec::with_capacity(n);
    for _ in 0..n {
        let sequence = signed(&mut c)?;
        let by = c.vstring()?;
        let at = c.i64()?;
        let comment = c.vstring()?;
        // A field is at least its name's length and two flags.
        let fields_n = c.var_count(3)?;
        let mut fields = Vec::with_capacity(fields_n);
        for _ in 0..fields_n {
            fields.push((c.vstring()?, optional(&mut c)?, optional(&mut c)?));
        }
        history.push(Change {
            sequence,
            by,
            at,
            comment,
            fields,
        });
    }
    if !c.done() {
        return Err(c.error("more than an alert"));
    }
    Ok(Alert {
        id,
        name,
        description,
        severity,
        priority,
        instance_id,
        workflow_id,
        source,
        raised_at,
        modified_at,
        resolution_state,
        repeat_count,
        suppression,
        parameters,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::assert_refused_at;
    use proptest::prelude::*;

    fn an_alert() -> Alert {
        Alert {
            id: "a-1".into(),
            name: "Free space low on /".into(),
            description: "3% free".into(),
            severity: Severity::Critical,
            priority: Priority::High,
            instance_id: "0123456789abcdef0123456789abcdef".into(),
            workflow_id: "Linux.Monitor.FilesystemFreeSpace".into(),
            source: Source::Monitor,
            raised_at: 1_700_000_000_000,
            modified_at: 1_700_000_060_000,
            resolution_state: 255,
            repeat_count: 0,
            suppression: vec![],
            parameters: vec!["/".into()],
            history: vec![Change {
                sequence: 1,
                by: "health".into(),
                at: 1_700_000_060_000,
                comment: "resolved: healthy".into(),
                fields: vec![(
                    "resolution_state".into(),
                    Some("0".into()),
                    Some("255".into()),
                )],
            }],
        }
    }

    #[test]
    fn an_alert_is_read_back_as_written_and_smaller_than_messagepack() {
        let a = an_alert();
        let bytes = encode_alert(&a);
        assert_eq!(decode_alert(&bytes), Ok(a.clone()));
        let messagepack = rmp_serde::to_vec(&a).expect("messagepack");
        assert!(
            bytes.len() < messagepack.len(),
            "{} against {}",
            bytes.len(),
            messagepack.len()
        );
        // No MessagePack value starts with the tag.
        assert!(rmp_serde::from_slice::<Alert>(&bytes).is_err());
    }

    #[test]
    fn an_alert_that_does_not_read_says_what_and_where() {
        let bytes = encode_alert(&an_alert());
        for end in 0..bytes.len() {
            let cut = decode_alert(&bytes[..end]);
            assert!(cut.is_err(), "cut at {end}: {cut:?}");
        }
        let err = |b: &[u8]| decode_alert(b).expect_err("refused");
        assert!(err(&[0x93]).contains("147 is not the alert format's tag"));
        assert!(err(&[TAG, 9]).contains("version 9"));
        // The severity: after the tag, the version and three strings.
        let severity_at = 2 + (1 + 3) + (1 + 19) + (1 + 7);
        assert_eq!(bytes[severity_at], 2, "critical");
        assert_refused_at(decode_alert, &bytes, severity_at, 3, "3 is not a severity");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(err(&longer).contains("more than an alert"));
    }

    fn text() -> impl Strategy<Value = String> {
        ".{0,12}"
    }

    prop_compose! {
        fn change()(
            sequence in any::<i64>(),
            by in text(),
            at in any::<i64>(),
            comment in text(),
            fields in prop::collection::vec(
                (text(), prop::option::of(text()), prop::option::of(text())),
                0..3,
            ),
        ) -> Change {
            Change { sequence, by, at, comment, fields }
        }
    }

    prop_compose! {
        fn alert()(
            strings in prop::collection::vec(text(), 5),
            severity in prop::sample::select(SEVERITIES.to_vec()),
            priority in prop::sample::select(PRIORITIES.to_vec()),
            source in prop::sample::select(SOURCES.to_vec()),
            times in (any::<i64>(), any::<i64>()),
            resolution_state in any::<i32>(),
            repeat_count in any::<i64>(),
            suppression in prop::collection::vec(text(), 0..3),
            parameters in prop::collection::vec(text(), 0..3),
            history in prop::collection::vec(change(), 0..4),
        ) -> Alert {
            Alert {
                id: strings[0].clone(),
                name: strings[1].clone(),
                description: strings[2].clone(),
                severity,
                priority,
                instance_id: strings[3].clone(),
                workflow_id: strings[4].clone(),
                source,
                raised_at: times.0,
                modified_at: times.1,
                resolution_state,
                repeat_count,
                suppression,
                parameters,
                history,
            }
        }
    }

    proptest! {
        #[test]
        fn any_alert_is_read_back_as_written(a in alert()) {
            prop_assert_eq!(decode_alert(&encode_alert(&a)), Ok(a));
        }

        /// Any bytes after the tag and version: read or refused, never a panic; what is
        /// read is written and read back the same.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            let mut v = vec![TAG, VERSION];
            v.extend(bytes);
            if let Ok(a) = decode_alert(&v) {
                prop_assert_eq!(decode_alert(&encode_alert(&a)), Ok(a));
            }
        }
    }
}
