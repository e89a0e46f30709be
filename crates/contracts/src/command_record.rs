//! Commands written straight to Avro, as state changes and alert changes are (see
//! `state_change`): a health processor writes one for every diagnostic and recovery a state
//! change runs. This writes the newest `command` schema's layout from the record itself,
//! the same bytes as the generic encoder (checked against it), and reads it back the same
//! way: the ingest follows every command to serve it to its collector.

use std::collections::BTreeMap;

use crate::codec::{write_block, write_long, write_optional, write_str, Reader};
use crate::records::{Command, CommandKind};
use crate::{Codec, Contract, DecodeError};

impl Codec {
    /// The framed value of a command in the newest `command` schema.
    pub fn encode_command(&self, r: &Command) -> Vec<u8> {
        let strings = [
            &r.id,
            &r.root_host,
            &r.collector,
            &r.workflow_id,
            &r.instance_id,
            &r.module,
            &r.requested_by,
        ];
        let size = strings.iter().map(|s| s.len()).sum::<usize>()
            + r.parameters
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + r.alert_id.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(48 + size + 4 * r.parameters.len());
        out.push(crate::wire::MAGIC_BYTE);
        out.extend_from_slice(&Contract::Command.latest().schema_id.to_be_bytes());
        for s in [&r.id, &r.root_host, &r.collector] {
            write_str(&mut out, s);
        }
        write_long(
            &mut out,
            match r.kind {
                CommandKind::Task => 0,
                CommandKind::Diagnostic => 1,
                CommandKind::Recovery => 2,
            },
        );
        for s in [&r.workflow_id, &r.instance_id, &r.module] {
            write_str(&mut out, s);
        }
        // Entries in key order (a BTreeMap's).
        write_block(&mut out, r.parameters.iter(), |out, (k, v)| {
            write_str(out, k);
            write_str(out, v);
        });
        write_long(&mut out, i64::from(r.timeout_seconds));
        write_str(&mut out, &r.requested_by);
        write_long(&mut out, r.requested_at);
        write_optional(&mut out, r.alert_id.as_deref());
        out
    }

    /// Reads a framed command: straight from its bytes when it was written with the newest
    /// `command` schema, through the generic decoder (schema resolution) otherwise. The
    /// same record, or the same kind of error, as the generic decoder.
    pub fn decode_command(&self, framed: &[u8]) -> Result<Command, DecodeError> {
        Codec::read_latest(Contract::Command, framed, read_command)
            .unwrap_or_else(|| self.decode(framed))
    }
}

/// A command in the newest schema's layout.
fn read_command(r: &mut Reader<'_>) -> Result<Command, String> {
    let string = |r: &mut Reader<'_>| r.string().map(str::to_string);
    let (id, root_host, collector) = (string(r)?, string(r)?, string(r)?);
    let kind = match r.long()? {
        0 => CommandKind::Task,
        1 => CommandKind::Diagnostic,
        2 => CommandKind::Recovery,
        other => return Err(r.fail(&format!("command kind {other} is not one of the 3"))),
    };
    let (workflow_id, instance_id, module) = (string(r)?, string(r)?, string(r)?);
    let mut parameters = BTreeMap::new();
    // An entry is at least two one-byte lengths.
    loop {
        let count = r.block(2)?;
        if count == 0 {
            break;
        }
        for _ in 0..count {
            let key = string(r)?;
            parameters.insert(key, string(r)?);
        }
    }
    let timeout_seconds = r.int()?;
    let requested_by = string(r)?;
    let requested_at = r.long()?;
    let alert_id = match r.long()? {
        0 => None,
        1 => Some(string(r)?),
        other => return Err(r.fail(&format!("union branch {other} of an optional string"))),
    };
    Ok(Command {
        id,
        root_host,
        collector,
        kind,
        workflow_id,
        instance_id,
        module,
        parameters,
        timeout_seconds,
        requested_by,
        requested_at,
        alert_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same bytes as the generic encoder, and read back as written.
        #[test]
        fn the_same_bytes_as_the_generic_encoder(
            strings in prop::collection::vec(".{0,30}", 7),
            kind in prop::sample::select(vec![
                CommandKind::Task,
                CommandKind::Diagnostic,
                CommandKind::Recovery,
            ]),
            parameters in prop::collection::btree_map(".{0,8}", ".{0,12}", 0..4),
            timeout_seconds in any::<i32>(),
            requested_at in any::<i64>(),
            alert_id in prop::option::of(".{0,12}"),
        ) {
            let r = Command {
                id: strings[0].clone(),
                root_host: strings[1].clone(),
                collector: strings[2].clone(),
                kind,
                workflow_id: strings[3].clone(),
                instance_id: strings[4].clone(),
                module: strings[5].clone(),
                parameters,
                timeout_seconds,
                requested_by: strings[6].clone(),
                requested_at,
                alert_id,
            };
            let codec = Codec::shared();
            let direct = codec.encode_command(&r);
            prop_assert_eq!(&direct, &codec.encode(&r).expect("generic"));
            prop_assert_eq!(codec.decode::<Command>(&direct).expect("decodes"), r.clone());
            prop_assert_eq!(codec.decode_command(&direct).expect("decodes"), r);
        }

        /// Any bytes after a command's header: read the same by this and by the generic
        /// decoder, or refused by both.
        #[test]
        fn any_bytes_read_as_the_generic_decoder_reads_them(
            cut in 0usize..120,
            flips in prop::collection::vec((0usize..120, any::<u8>()), 0..3),
        ) {
            let codec = Codec::shared();
            let mut bytes = codec.encode_command(&sample());
            bytes.truncate(cut.max(5));
            for (at, v) in flips {
                if at >= 5 && at < bytes.len() {
                    bytes[at] = v;
                }
            }
            let generic = codec.decode::<Command>(&bytes);
            let direct = codec.decode_command(&bytes);
            match (&generic, &direct) {
                (Ok(g), Ok(d)) => prop_assert_eq!(g, d),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "generic {generic:?}, direct {direct:?}"),
            }
        }
    }

    fn sample() -> Command {
        Command {
            id: "c-1".into(),
            root_host: "web-01".into(),
            collector: "web-01".into(),
            kind: CommandKind::Diagnostic,
            workflow_id: "Linux.Diagnostic.TopProcesses".into(),
            instance_id: "web".into(),
            module: "exec".into(),
            parameters: BTreeMap::from([("argv".into(), "[\"ps\"]".into())]),
            timeout_seconds: 30,
            requested_by: "health".into(),
            requested_at: 1_700_000_000_000,
            alert_id: Some("a-1".into()),
        }
    }

    #[test]
    fn a_command_that_does_not_read_says_what_and_where() {
        let codec = Codec::shared();
        let good = codec.encode_command(&sample());
        for end in 5..good.len() {
            let e = codec.decode_command(&good[..end]).expect_err("cut");
            assert!(e.to_string().contains("at byte"), "cut at {end}: {e}");
        }
        // The kind: after the header and three strings.
        let kind_at = 5 + 4 + 7 + 7;
        assert_eq!(good[kind_at], 2, "a diagnostic");
        let mut bad = good.clone();
        bad[kind_at] = 6;
        let e = codec.decode_command(&bad).expect_err("kind 3").to_string();
        assert!(
            e.contains("command kind 3 is not one of the 3")
                && e.contains(&format!("at byte {}", kind_at - 5 + 1)),
            "{e}"
        );
        // The alert id cut short: refused, by the generic decoder too (apache-avro alone
        // reads an optional string cut short at the end of the bytes as absent).
        let e = codec
            .decode_command(&good[..good.len() - 1])
            .expect_err("cut id");
        assert!(e.to_string().contains("string runs past the end"), "{e}");
        let mut long = sample();
        long.alert_id = Some("a".repeat(100));
        let long = codec.encode_command(&long);
        for cut in [
            &good[..good.len() - 1],
            &long[..long.len() - 1],
            &long[..long.len() - 90],
        ] {
            let e = codec.decode::<Command>(cut).expect_err("generic: cut id");
            assert!(e.to_string().contains("ends inside its value"), "{e}");
        }
        let mut longer = good.clone();
        longer.push(0);
        let e = codec.decode_command(&longer).expect_err("longer");
        assert!(
            matches!(e, DecodeError::TrailingBytes { extra: 1, .. }),
            "{e}"
        );
        let e = codec.decode_command(&[0, 0, 0, 0]).expect_err("no header");
        assert!(matches!(e, DecodeError::Framing(_)), "{e}");
    }
}
