//! Commands written straight to Avro, as state changes and alert changes are (see
//! `state_change`): a health processor writes one for every diagnostic and recovery a state
//! change runs. This writes the newest `command` schema's layout from the record itself,
//! the same bytes as the generic encoder (checked against it).

use crate::codec::{write_block, write_long, write_optional, write_str};
use crate::records::{Command, CommandKind};
use crate::{Codec, Contract};

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
            prop_assert_eq!(codec.decode::<Command>(&direct).expect("decodes"), r);
        }
    }
}
