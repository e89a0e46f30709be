//! Alert changes written straight to Avro, as state changes are (see `state_change`): the
//! health processors write one for every change of every alert, each carrying the whole
//! alert. This writes the newest `alert` schema's layout from the record itself, the same
//! bytes as the generic encoder (checked against it).

use crate::codec::{write_block, write_long, write_optional, write_str};
use crate::records::{AlertPriority, AlertRecord, AlertSeverity, WorkflowKind};
use crate::{Codec, Contract};

impl Codec {
    /// The framed value of an alert change in the newest `alert` schema.
    pub fn encode_alert(&self, r: &AlertRecord) -> Vec<u8> {
        let a = &r.alert;
        let mut out = Vec::with_capacity(
            160 + r.id.len()
                + a.alert_id.len()
                + a.name.len()
                + a.description.len()
                + a.root_host.len()
                + a.instance_id.len()
                + a.workflow_id.len()
                + a.knowledge.len()
                + r.change.comment.len(),
        );
        out.push(crate::wire::MAGIC_BYTE);
        out.extend_from_slice(&Contract::Alert.latest().schema_id.to_be_bytes());
        write_str(&mut out, &r.id);
        for s in [&a.alert_id, &a.name, &a.description] {
            write_str(&mut out, s);
        }
        write_long(
            &mut out,
            match a.severity {
                AlertSeverity::Information => 0,
                AlertSeverity::Warning => 1,
                AlertSeverity::Critical => 2,
            },
        );
        write_long(
            &mut out,
            match a.priority {
                AlertPriority::Low => 0,
                AlertPriority::Medium => 1,
                AlertPriority::High => 2,
            },
        );
        for s in [&a.root_host, &a.instance_id, &a.workflow_id] {
            write_str(&mut out, s);
        }
        write_long(
            &mut out,
            match a.workflow_kind {
                WorkflowKind::Monitor => 0,
                WorkflowKind::Rule => 1,
            },
        );
        write_long(&mut out, a.raised_at);
        write_long(&mut out, a.modified_at);
        write_long(&mut out, i64::from(a.resolution_state));
        for s in [&a.owner, &a.ticket_id, &a.connector_id] {
            write_optional(&mut out, s.as_deref());
        }
        // A map in key order (a BTreeMap's).
        write_block(&mut out, a.custom_fields.iter(), |out, (k, v)| {
            write_str(out, k);
            write_str(out, v);
        });
        write_long(&mut out, a.repeat_count);
        write_block(&mut out, a.parameters.iter(), |out, p| write_str(out, p));
        write_str(&mut out, &a.knowledge);
        write_long(&mut out, a.version);
        let c = &r.change;
        write_long(&mut out, c.sequence);
        write_str(&mut out, &c.changed_by);
        write_long(&mut out, c.changed_at);
        write_str(&mut out, &c.comment);
        write_block(&mut out, c.fields.iter(), |out, f| {
            write_str(out, &f.field);
            write_optional(out, f.old.as_deref());
            write_optional(out, f.new.as_deref());
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Alert, AlertChange, FieldChange};
    use proptest::prelude::*;

    fn severity() -> impl Strategy<Value = AlertSeverity> {
        prop::sample::select(vec![
            AlertSeverity::Information,
            AlertSeverity::Warning,
            AlertSeverity::Critical,
        ])
    }

    fn priority() -> impl Strategy<Value = AlertPriority> {
        prop::sample::select(vec![
            AlertPriority::Low,
            AlertPriority::Medium,
            AlertPriority::High,
        ])
    }

    fn kind() -> impl Strategy<Value = WorkflowKind> {
        prop::sample::select(vec![WorkflowKind::Monitor, WorkflowKind::Rule])
    }

    fn field_change() -> impl Strategy<Value = FieldChange> {
        (
            ".{0,10}",
            prop::option::of(".{0,10}"),
            prop::option::of(".{0,10}"),
        )
            .prop_map(|(field, old, new)| FieldChange { field, old, new })
    }

    proptest! {
        /// The same bytes as the generic encoder, and read back as written.
        #[test]
        fn the_same_bytes_as_the_generic_encoder(
            strings in prop::collection::vec(".{0,30}", 10),
            optional in prop::collection::vec(prop::option::of(".{0,12}"), 3),
            enums in (severity(), priority(), kind()),
            numbers in prop::collection::vec(any::<i64>(), 6),
            resolution_state in any::<i32>(),
            custom_fields in prop::collection::btree_map(".{0,8}", ".{0,12}", 0..4),
            parameters in prop::collection::vec(".{0,12}", 0..4),
            fields in prop::collection::vec(field_change(), 0..4),
        ) {
            let r = AlertRecord {
                id: strings[0].clone(),
                alert: Alert {
                    alert_id: strings[1].clone(),
                    name: strings[2].clone(),
                    description: strings[3].clone(),
                    severity: enums.0,
                    priority: enums.1,
                    root_host: strings[4].clone(),
                    instance_id: strings[5].clone(),
                    workflow_id: strings[6].clone(),
                    workflow_kind: enums.2,
                    raised_at: numbers[0],
                    modified_at: numbers[1],
                    resolution_state,
                    owner: optional[0].clone(),
                    ticket_id: optional[1].clone(),
                    connector_id: optional[2].clone(),
                    custom_fields,
                    repeat_count: numbers[2],
                    parameters,
                    knowledge: strings[7].clone(),
                    version: numbers[3],
                },
                change: AlertChange {
                    sequence: numbers[4],
                    changed_by: strings[8].clone(),
                    changed_at: numbers[5],
                    comment: strings[9].clone(),
                    fields,
                },
            };
            let codec = Codec::shared();
            let direct = codec.encode_alert(&r);
            prop_assert_eq!(&direct, &codec.encode(&r).expect("generic"));
            prop_assert_eq!(codec.decode::<AlertRecord>(&direct).expect("decodes"), r);
        }
    }
}
