use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::records::*;
use crate::wire::frame;

fn inst_ref(class: &str, name: &str, host: Option<InstanceRef>) -> InstanceRef {
    InstanceRef {
        class: class.to_string(),
        keys: BTreeMap::from([("name".to_string(), PropertyValue::String(name.to_string()))]),
        host: host.map(Box::new),
    }
}

fn round_trip<R: Record + PartialEq + std::fmt::Debug>(record: R) {
    let codec = Codec::shared();
    let bytes = codec.encode(&record).expect("encodes");
    let (id, _) = crate::unframe(&bytes).expect("framed");
    assert_eq!(id, R::CONTRACT.latest().schema_id);
    let back: R = codec.decode(&bytes).expect("decodes");
    assert_eq!(back, record);
    // The writer agrees with the library's own resolution and encoding (map entries may
    // come in another order there, so the decoded values are compared).
    let schema = codec.schema(R::CONTRACT);
    let value = apache_avro::to_value(&record).expect("to value");
    let library = apache_avro::to_avro_datum(schema, value.resolve(schema).expect("resolves"))
        .expect("library encodes");
    let (_, ours) = crate::unframe(&bytes).expect("framed");
    assert_eq!(ours.len(), library.len(), "{:?}", R::CONTRACT);
    let read = |mut b: &[u8]| apache_avro::from_avro_datum(schema, &mut b, None).expect("reads");
    assert_eq!(read(ours), read(&library), "{:?}", R::CONTRACT);
}

fn sample_alert() -> AlertRecord {
    AlertRecord {
        id: "a1-1".into(),
        alert: Alert {
            alert_id: "a1".into(),
            name: "Disk full".into(),
            description: "/var at 99%".into(),
            severity: AlertSeverity::Critical,
            priority: AlertPriority::High,
            root_host: "h1".into(),
            instance_id: "i1".into(),
            workflow_id: "Linux.FreeSpace".into(),
            workflow_kind: WorkflowKind::Monitor,
            raised_at: 1,
            modified_at: 2,
            resolution_state: 0,
            owner: Some("ops".into()),
            ticket_id: None,
            connector_id: None,
            custom_fields: BTreeMap::from([("cf1".into(), "x".into())]),
            repeat_count: 3,
            parameters: vec!["/var".into()],
            knowledge: "Free space".into(),
            version: 1,
        },
        change: AlertChange {
            sequence: 1,
            changed_by: "system".into(),
            changed_at: 2,
            comment: String::new(),
            fields: vec![FieldChange {
                field: "severity".into(),
                old: None,
                new: Some("CRITICAL".into()),
            }],
        },
    }
}

#[test]
fn every_contract_round_trips() {
    let host = inst_ref("Linux.Computer", "h1", None);
    round_trip(DiscoveryData {
        id: "d".into(),
        root_host: "h1".into(),
        source: DiscoverySource {
            kind: DiscoverySourceKind::Connector,
            id: "cmdb".into(),
            managing: false,
        },
        mode: DiscoveryMode::Incremental,
        time: 10,
        instances: vec![DiscoveredInstance {
            class: "Linux.FileSystem".into(),
            keys: BTreeMap::from([("mount".into(), PropertyValue::String("/".into()))]),
            properties: BTreeMap::from([
                ("size".into(), PropertyValue::Long(10)),
                ("ratio".into(), PropertyValue::Double(0.25)),
                ("ro".into(), PropertyValue::Boolean(false)),
                ("label".into(), PropertyValue::Null),
            ]),
            host: Some(host.clone()),
        }],
        relationships: vec![DiscoveredRelationship {
            kind: "Contains".into(),
            source: host.clone(),
            target: inst_ref("Linux.Disk", "sda", Some(host.clone())),
            properties: BTreeMap::new(),
            target_root_host: Some("other".into()),
        }],
        removed_instances: vec![inst_ref("Linux.Disk", "sdb", Some(host.clone()))],
        removed_relationships: vec![RelationshipRef {
            kind: "Contains".into(),
            source: host.clone(),
            target: inst_ref("Linux.Disk", "sdb", Some(host)),
        }],
    });
    round_trip(PerfBatch {
        id: "p".into(),
        collector: "c".into(),
        root_host: "h".into(),
        samples: vec![PerfSample {
            time: 5,
            object: "Processor".into(),
            counter: "% Processor Time".into(),
            instance: "_Total".into(),
            value: 42.5,
        }],
    });
    round_trip(EventBatch {
        id: "e".into(),
        collector: "c".into(),
        root_host: "h".into(),
        events: vec![Event {
            time: 1,
            channel: "journal".into(),
            source: "sshd.service".into(),
            event_id: 7,
            level: EventLevel::Error,
            message: "failed".into(),
            params: vec!["a".into()],
            properties: BTreeMap::from([("PRIORITY".into(), "3".into())]),
        }],
    });
    round_trip(Heartbeat {
        id: "hb".into(),
        collector: "c".into(),
        root_host: "h".into(),
        time: 1,
        interval_seconds: 60,
        sequence: 9,
        version: "0.1.0".into(),
    });
    round_trip(InstanceChange {
        id: "ic".into(),
        root_host: "h".into(),
        entity_id: "i".into(),
        kind: EntityKind::Relationship,
        change: ChangeKind::Delete,
        time: 1,
        class: "Contains".into(),
        keys: BTreeMap::new(),
        properties: BTreeMap::new(),
        host_id: None,
        source_id: Some("s".into()),
        target_id: Some("t".into()),
        managed: true,
        claimed_by: vec!["src".into()],
        source_root_host: Some("shop".into()),
        source_class: Some("Test.Shop".into()),
    });
    round_trip(StateChange {
        id: "s".into(),
        root_host: "h".into(),
        instance_id: "i".into(),
        monitor_id: "m".into(),
        old_state: HealthState::Uninitialized,
        new_state: HealthState::Warning,
        time: 3,
        in_maintenance: false,
        unavailable: true,
        cause: StateCause {
            kind: "sample".into(),
            summary: "above 80".into(),
            data: BTreeMap::from([("value".into(), "91".into())]),
        },
    });
    round_trip(sample_alert());
    round_trip(Command {
        id: "cmd".into(),
        root_host: "h".into(),
        collector: "c".into(),
        kind: CommandKind::Recovery,
        workflow_id: "w".into(),
        instance_id: "i".into(),
        module: "systemctl.restart".into(),
        parameters: BTreeMap::from([("unit".into(), "nginx".into())]),
        timeout_seconds: 30,
        requested_by: "ops".into(),
        requested_at: 5,
        alert_id: Some("a".into()),
    });
    round_trip(PackRecord {
        id: "pk".into(),
        pack_id: "Contoso.Linux".into(),
        version: "1.0.0".into(),
        sealed: true,
        change: PackChange::Upgrade,
        content: "[pack]".into(),
        digest: "d".into(),
        changed_by: "ops".into(),
        time: 1,
    });
    round_trip(CollectionPlan {
        id: "cp".into(),
        root_host: "h".into(),
        collector: "c".into(),
        digest: "x".into(),
        generated_at: 1,
        data_sources: vec![PlannedDataSource {
            id: "ds".into(),
            module: "perf".into(),
            interval_seconds: 60,
            config: BTreeMap::from([("counter".into(), "x".into())]),
            workflows: vec!["w1".into()],
        }],
    });
    round_trip(TaskResult {
        id: "tr".into(),
        command_id: "cmd".into(),
        root_host: "h".into(),
        collector: "c".into(),
        status: TaskStatus::TimedOut,
        exit_code: None,
        output: "partial".into(),
        truncated: true,
        started_at: 1,
        finished_at: 2,
    });
    round_trip(Operation {
        id: "op".into(),
        root_host: "h".into(),
        instance_id: "i".into(),
        kind: OperationKind::MaintenanceStart,
        monitor_id: None,
        alert_id: Some("a".into()),
        task_id: Some("t".into()),
        reason: "PlannedOther".into(),
        comment: "patching".into(),
        until: Some(3_600_000),
        requested_by: "ops".into(),
        requested_at: 1,
    });
    round_trip(MemberState {
        id: "ms".into(),
        container_id: "g".into(),
        container_class: "System.Group.AllComputers".into(),
        relationship: "System.GroupContainsEntities".into(),
        member_id: "m".into(),
        member_class: "Linux.Computer".into(),
        present: true,
        states: BTreeMap::from([("System.Health.EntityState".into(), HealthState::Warning)]),
        in_maintenance: false,
        unavailable: true,
        time: 5,
        container_root_host: "shop".into(),
    });
    round_trip(DeadLetter {
        id: "dl".into(),
        stage: "health".into(),
        source_topic: "healthstream.perf".into(),
        source_partition: 2,
        source_offset: 77,
        key: Some(b"h1".to_vec()),
        value: Some(vec![0, 1, 2, 255]),
        error_class: DeadLetterClass::Decode,
        reason: "bad".into(),
        time: 1,
    });
}

#[test]
fn refuses_values_of_another_contract() {
    let codec = Codec::shared();
    let bytes = codec.encode(&sample_alert()).expect("encodes");
    let err = codec
        .decode::<PerfBatch>(&bytes)
        .expect_err("wrong contract");
    assert!(matches!(
        err,
        DecodeError::WrongContract {
            expected: Contract::PerfBatch,
            found: Contract::Alert,
            ..
        }
    ));
    assert_eq!(err.class(), DeadLetterClass::Framing);
}

#[test]
fn classifies_corrupt_values() {
    let codec = Codec::shared();
    assert!(matches!(
        codec.decode::<PerfBatch>(b"{\"json\":1}"),
        Err(DecodeError::Framing(WireError::BadMagic { .. }))
    ));
    assert!(matches!(
        codec.decode::<PerfBatch>(&frame(424_242, b"x")),
        Err(DecodeError::UnknownSchemaId { id: 424_242 })
    ));
    let good = codec
        .encode(&PerfBatch {
            id: "p".into(),
            collector: "c".into(),
            root_host: "h".into(),
            samples: vec![],
        })
        .expect("encodes");
    let truncated = &good[..good.len() - 2];
    let err = codec.decode::<PerfBatch>(truncated).expect_err("truncated");
    assert_eq!(err.class(), DeadLetterClass::Decode, "{err}");
    let mut extended = good.clone();
    extended.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        codec.decode::<PerfBatch>(&extended),
        Err(DecodeError::TrailingBytes { extra: 3, .. })
    ));
    // A huge array length must be refused, not allocated.
    let mut huge = frame(
        Contract::PerfBatch.latest().schema_id,
        &[2, b'p', 2, b'c', 2, b'h'],
    );
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    assert!(codec.decode::<PerfBatch>(&huge).is_err());
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let codec = Codec::shared();
        for contract in Contract::ALL {
            let framed = frame(contract.latest().schema_id, &body);
            let _ = codec.decode_value(contract, &framed);
        }
    }

    #[test]
    fn perf_batches_round_trip(
        samples in proptest::collection::vec((any::<i64>(), "[a-z% ]{0,12}", "[A-Za-z ]{1,12}", "[a-z/_]{0,8}", -1e12f64..1e12), 0..20),
        host in "[a-z0-9.-]{1,20}",
    ) {
        let batch = PerfBatch {
            id: crate::content_id(host.as_bytes()),
            collector: "c".into(),
            root_host: host,
            samples: samples.into_iter().map(|(time, object, counter, instance, value)| PerfSample { time, object, counter, instance, value }).collect(),
        };
        let codec = Codec::shared();
        let back: PerfBatch = codec.decode(&codec.encode(&batch).expect("encodes")).expect("decodes");
        prop_assert_eq!(back, batch);
    }

    #[test]
    fn the_writer_agrees_with_the_library_on_state_changes(
        texts in proptest::collection::vec(".{0,40}", 5),
        data in proptest::collection::btree_map(".{0,10}", ".{0,20}", 0..8),
        time in any::<i64>(),
        states in (0usize..4, 0usize..4),
        flags in (any::<bool>(), any::<bool>()),
    ) {
        let state = |i: usize| [HealthState::Uninitialized, HealthState::Healthy, HealthState::Warning, HealthState::Critical][i];
        round_trip(StateChange {
            id: texts[0].clone(),
            root_host: texts[1].clone(),
            instance_id: texts[2].clone(),
            monitor_id: texts[3].clone(),
            old_state: state(states.0),
            new_state: state(states.1),
            time,
            in_maintenance: flags.0,
            unavailable: flags.1,
            cause: StateCause { kind: "sample".into(), summary: texts[4].clone(), data },
        });
    }
}

#[test]
fn content_ids_are_spliced_into_a_single_encoding() {
    let codec = Codec::shared();
    let batch = PerfBatch {
        id: String::new(),
        collector: "c".into(),
        root_host: "web-01".into(),
        samples: vec![PerfSample {
            time: 1,
            object: "Processor".into(),
            counter: "% Processor Time".into(),
            instance: "_Total".into(),
            value: 3.5,
        }],
    };
    let without_id = codec.encode(&batch).expect("encodes");
    let value = apache_avro::to_value(&batch).expect("value");
    let (id, bytes) = codec
        .encode_with_content_id(Contract::PerfBatch, value)
        .expect("encodes");
    assert_eq!(
        id,
        crate::content_id(&without_id),
        "the id hashes the id-less encoding"
    );
    let back: PerfBatch = codec.decode(&bytes).expect("decodes");
    assert_eq!(back.id, id);
    assert_eq!(
        PerfBatch {
            id: String::new(),
            ..back
        },
        batch
    );
    let with_id = PerfBatch {
        id: "x".into(),
        ..batch
    };
    let value = apache_avro::to_value(&with_id).expect("value");
    assert!(codec
        .encode_with_content_id(Contract::PerfBatch, value)
        .is_err());
}

#[test]
fn maps_are_written_in_key_order_so_equal_records_give_equal_bytes() {
    let mut alert = sample_alert();
    alert.alert.custom_fields = (0..50)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let codec = Codec::shared();
    let first = codec.encode(&alert).expect("encodes");
    for _ in 0..5 {
        assert_eq!(codec.encode(&alert).expect("encodes"), first);
    }
}

#[test]
fn values_that_do_not_fit_the_schema_say_where_and_what() {
    use apache_avro::types::Value;
    let codec = Codec::shared();
    let good = apache_avro::to_value(StateChange {
        id: "s".into(),
        root_host: "h".into(),
        instance_id: "i".into(),
        monitor_id: "m".into(),
        old_state: HealthState::Healthy,
        new_state: HealthState::Critical,
        time: 5,
        in_maintenance: false,
        unavailable: false,
        cause: StateCause {
            kind: "sample".into(),
            summary: String::new(),
            data: BTreeMap::new(),
        },
    })
    .expect("to value");
    let Value::Record(fields) = good.clone() else {
        panic!("a record")
    };
    let with = |name: &str, v: Value| {
        Value::Record(
            fields
                .iter()
                .map(|(n, x)| (n.clone(), if n == name { v.clone() } else { x.clone() }))
                .collect(),
        )
    };
    let err = |v: Value| {
        codec
            .encode_value(Contract::StateChange, v)
            .expect_err("does not fit")
            .to_string()
    };
    let e = err(with("new_state", Value::String("PURPLE".into())));
    assert!(
        e.contains("new_state") && e.contains("\"PURPLE\" is not a symbol"),
        "{e}"
    );
    let e = err(with("time", Value::String("noon".into())));
    assert!(e.contains("time: expected a long, found a string"), "{e}");
    let e = err(with(
        "cause",
        Value::Record(vec![("kind".into(), Value::Long(1))]),
    ));
    assert!(
        e.contains("cause.kind: expected a string, found a long"),
        "{e}"
    );
    let missing = Value::Record(
        fields
            .iter()
            .filter(|(n, _)| n != "monitor_id")
            .cloned()
            .collect(),
    );
    let e = err(missing);
    assert!(e.contains("monitor_id: missing"), "{e}");
    let e = err(Value::Array(vec![]));
    assert!(e.contains("expected a record, found an array"), "{e}");
    // A field left out that has a default is written with it.
    let defaulted = Value::Record(
        fields
            .iter()
            .filter(|(n, _)| n != "unavailable")
            .cloned()
            .collect(),
    );
    let bytes = codec
        .encode_value(Contract::StateChange, defaulted)
        .expect("default used");
    let back: StateChange = codec.decode(&bytes).expect("decodes");
    assert!(!back.unavailable);
    assert_eq!(
        bytes,
        codec
            .encode_value(Contract::StateChange, good)
            .expect("encodes")
    );
}
