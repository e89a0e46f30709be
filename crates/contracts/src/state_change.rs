//! State changes written straight to Avro: the health processors' most frequent output
//! (every change of every monitor, rollups included). The generic encoder builds an Avro
//! value tree with a name per field first; this writes the newest `state_change` schema's
//! layout from the record itself, the same bytes (checked against the generic encoder).

use crate::codec::{write_block, write_bytes, write_long, write_str};
use crate::records::{HealthState, StateChange};
use crate::{Codec, Contract};

/// The enum's position among the schema's symbols.
fn state_index(s: HealthState) -> i64 {
    match s {
        HealthState::Uninitialized => 0,
        HealthState::Healthy => 1,
        HealthState::Warning => 2,
        HealthState::Critical => 3,
    }
}

impl Codec {
    /// The framed value of a state change in the newest `state_change` schema.
    pub fn encode_state_change(&self, r: &StateChange) -> Vec<u8> {
        let strings = r.id.len()
            + r.root_host.len()
            + r.instance_id.len()
            + r.monitor_id.len()
            + r.cause.kind.len()
            + r.cause.summary.len()
            + r.cause
                .data
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(48 + strings + 4 * r.cause.data.len());
        out.push(crate::wire::MAGIC_BYTE);
        out.extend_from_slice(&Contract::StateChange.latest().schema_id.to_be_bytes());
        for s in [&r.id, &r.root_host, &r.instance_id, &r.monitor_id] {
            write_bytes(&mut out, s.as_bytes());
        }
        write_long(&mut out, state_index(r.old_state));
        write_long(&mut out, state_index(r.new_state));
        write_long(&mut out, r.time);
        out.push(u8::from(r.in_maintenance));
        out.push(u8::from(r.unavailable));
        write_bytes(&mut out, r.cause.kind.as_bytes());
        write_bytes(&mut out, r.cause.summary.as_bytes());
        // Entries in key order (a BTreeMap's).
        write_block(&mut out, r.cause.data.iter(), |out, (k, v)| {
            write_str(out, k);
            write_str(out, v);
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::StateCause;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = HealthState> {
        prop::sample::select(vec![
            HealthState::Uninitialized,
            HealthState::Healthy,
            HealthState::Warning,
            HealthState::Critical,
        ])
    }

    proptest! {
        /// The same bytes as the generic encoder, and read back as written.
        #[test]
        fn the_same_bytes_as_the_generic_encoder(
            strings in prop::collection::vec(".{0,30}", 6),
            old in state(),
            new in state(),
            time in any::<i64>(),
            flags in any::<(bool, bool)>(),
            data in prop::collection::btree_map(".{0,8}", ".{0,12}", 0..4),
        ) {
            let r = StateChange {
                id: strings[0].clone(),
                root_host: strings[1].clone(),
                instance_id: strings[2].clone(),
                monitor_id: strings[3].clone(),
                old_state: old,
                new_state: new,
                time,
                in_maintenance: flags.0,
                unavailable: flags.1,
                cause: StateCause {
                    kind: strings[4].clone(),
                    summary: strings[5].clone(),
                    data,
                },
            };
            let codec = Codec::shared();
            let direct = codec.encode_state_change(&r);
            prop_assert_eq!(&direct, &codec.encode(&r).expect("generic"));
            prop_assert_eq!(codec.decode::<StateChange>(&direct).expect("decodes"), r);
        }
    }
}
