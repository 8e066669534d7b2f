//! sluice-schema's serdes (Avro, JSON Schema, Protobuf) against a real registry (see
//! `common`): evolution, references, typed errors of bad records, and the registry
//! requests they cost.

mod common;

use common::{registry, unique, OrderV1, OrderV2, V1, V2};
use sluice_schema::apache_avro::types::Value;
use sluice_schema::apache_avro::{self};
use sluice_schema::{
    framing, AvroDeserializer, AvroSerializer, Compatibility, Error, Schema, SchemaReference,
    SubjectNameStrategy,
};

#[tokio::test]
async fn old_data_is_read_with_a_new_reader_schema_and_new_data_with_the_old() {
    let topic = unique("orders");
    let r = registry();
    r.set_compatibility(Some(&format!("{topic}-value")), Compatibility::Backward)
        .await
        .unwrap();
    let v1 = AvroSerializer::new(r.clone(), V1).unwrap();
    let old = v1
        .serialize(&topic, &OrderV1 { id: 1, amount: 2.5 })
        .await
        .unwrap();
    let v2 = AvroSerializer::new(r.clone(), V2).unwrap();
    let new = v2
        .serialize(
            &topic,
            &OrderV2 {
                id: 2,
                amount: 4.0,
                currency: "USD".into(),
            },
        )
        .await
        .unwrap();
    let (id_old, _) = framing::read_header(&old).unwrap();
    let (id_new, _) = framing::read_header(&new).unwrap();
    assert_ne!(id_old, id_new);

    // A V2 application reads V1 data: the added field takes its default.
    let reader_v2 = AvroDeserializer::new(registry()).reader_schema(V2).unwrap();
    let got: OrderV2 = reader_v2.deserialize_into(&old).await.unwrap();
    assert_eq!(
        got,
        OrderV2 {
            id: 1,
            amount: 2.5,
            currency: "EUR".into()
        }
    );
    let got: OrderV2 = reader_v2.deserialize_into(&new).await.unwrap();
    assert_eq!(got.currency, "USD");
    // A V1 application reads V2 data: the field it does not know is skipped.
    let reader_v1 = AvroDeserializer::new(registry()).reader_schema(V1).unwrap();
    let got: OrderV1 = reader_v1.deserialize_into(&new).await.unwrap();
    assert_eq!(got, OrderV1 { id: 2, amount: 4.0 });
    // Without a reader schema: the writer's shape.
    let plain = AvroDeserializer::new(registry());
    let Value::Record(fields) = plain.deserialize(&new).await.unwrap() else {
        panic!("not a record");
    };
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[2], ("currency".into(), Value::String("USD".into())));
}

#[tokio::test]
async fn bad_bytes_and_unknown_ids_are_typed_errors_of_the_record() {
    let de = AvroDeserializer::new(registry());
    let mut unknown = Vec::new();
    framing::write_header(2_000_000_000, &mut unknown);
    unknown.extend_from_slice(&[2, 0]);
    let err = de.deserialize(&unknown).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownSchemaId(2_000_000_000)),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    assert!(matches!(
        de.deserialize(b"{\"id\":1}").await,
        Err(Error::WrongMagic { found: b'{' })
    ));
    assert!(matches!(
        de.deserialize(&[0, 0, 1]).await,
        Err(Error::ShortBuffer { .. })
    ));
    // A known id with a datum cut short: the codec's error, not a panic.
    let topic = unique("cut");
    let ser = AvroSerializer::new(registry(), V1).unwrap();
    let bytes = ser
        .serialize(&topic, &OrderV1 { id: 1, amount: 1.0 })
        .await
        .unwrap();
    assert!(matches!(
        de.deserialize(&bytes[..bytes.len() - 3]).await,
        Err(Error::Avro(_))
    ));
}

#[tokio::test]
async fn auto_register_off_needs_the_schema_registered_first() {
    let topic = unique("strict");
    let r = registry();
    let ser = AvroSerializer::new(r.clone(), V1)
        .unwrap()
        .auto_register(false);
    let record = OrderV1 { id: 1, amount: 1.0 };
    let err = ser.serialize(&topic, &record).await.unwrap_err();
    assert!(matches!(err, Error::SubjectNotFound { .. }), "{err:?}");
    let id = registry()
        .register(&format!("{topic}-value"), &Schema::avro(V1))
        .await
        .unwrap();
    let bytes = ser.serialize(&topic, &record).await.unwrap();
    assert_eq!(framing::read_header(&bytes).unwrap().0, id);
    // Registered under the topic's subject, not under another schema's.
    let other = AvroSerializer::new(r, V2).unwrap().auto_register(false);
    assert!(matches!(
        other.serialize(&topic, &record).await,
        Err(Error::SchemaNotFound { .. })
    ));
}

#[tokio::test]
async fn registry_requests_per_records_equal_the_distinct_schemas() {
    const RECORDS: usize = 3_000;
    let topics = [unique("calls-a"), unique("calls-b"), unique("calls-c")];
    let producer_side = registry();
    // Three schemas (one per topic): V1 on two topics, V2 on the third, and the record
    // strategy for one of them, so subjects differ in kind too.
    let sers = [
        AvroSerializer::new(producer_side.clone(), V1).unwrap(),
        AvroSerializer::new(producer_side.clone(), V2).unwrap(),
        AvroSerializer::new(producer_side.clone(), V1)
            .unwrap()
            .strategy(SubjectNameStrategy::TopicRecord),
    ];
    let mut framed = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let k = i % 3;
        let bytes = if k == 1 {
            let v = OrderV2 {
                id: i as i64,
                amount: i as f64,
                currency: "EUR".into(),
            };
            sers[k].serialize(&topics[k], &v).await.unwrap()
        } else {
            let v = OrderV1 {
                id: i as i64,
                amount: i as f64,
            };
            sers[k].serialize(&topics[k], &v).await.unwrap()
        };
        framed.push(bytes);
    }
    // V1 under "<a>-value" and "<c>-shop.Order" is one schema text with one id
    // (content ids), but two subjects: two registrations.
    assert_eq!(producer_side.http_requests(), 3);

    let consumer_side = registry();
    let de = AvroDeserializer::new(consumer_side.clone())
        .reader_schema(V2)
        .unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for (i, bytes) in framed.iter().enumerate() {
        ids.insert(framing::read_header(bytes).unwrap().0);
        let got: OrderV2 = de.deserialize_into(bytes).await.unwrap();
        assert_eq!((got.id, got.amount), (i as i64, i as f64));
    }
    // One request per distinct schema id, for 3,000 records.
    assert_eq!(ids.len(), 2);
    assert_eq!(consumer_side.http_requests(), ids.len() as u64);
}

#[tokio::test]
async fn a_schema_with_references_is_decoded_with_them() {
    let money_subject = unique("money");
    let r = registry();
    let money = r#"{"type":"record","name":"Money","namespace":"shop",
        "fields":[{"name":"units","type":"long"},{"name":"currency","type":"string"}]}"#;
    r.register(&money_subject, &Schema::avro(money))
        .await
        .unwrap();
    let invoice = r#"{"type":"record","name":"Invoice","namespace":"shop",
        "fields":[{"name":"number","type":"int"},{"name":"total","type":"shop.Money"}]}"#;
    let schema = Schema::avro(invoice).with_references(vec![SchemaReference {
        name: "shop.Money".into(),
        subject: money_subject.clone(),
        version: 1,
    }]);
    let id = r
        .register(&unique("invoices-value"), &schema)
        .await
        .unwrap();
    // Write a record as a producer holding both schemas would.
    let (parsed, refs) = apache_avro::Schema::parse_str_with_list(invoice, [money]).unwrap();
    let value = Value::Record(vec![
        ("number".into(), Value::Int(42)),
        (
            "total".into(),
            Value::Record(vec![
                ("units".into(), Value::Long(1999)),
                ("currency".into(), Value::String("EUR".into())),
            ]),
        ),
    ]);
    let datum =
        apache_avro::to_avro_datum_schemata(&parsed, refs.iter().collect(), value.clone()).unwrap();
    let mut bytes = Vec::new();
    framing::write_header(id, &mut bytes);
    bytes.extend_from_slice(&datum);

    let consumer_side = registry();
    let de = AvroDeserializer::new(consumer_side.clone());
    assert_eq!(de.deserialize(&bytes).await.unwrap(), value);
    // The schema by id, then the reference by subject and version.
    assert_eq!(consumer_side.http_requests(), 2);
    assert_eq!(
        consumer_side.schema_by_id(id).await.unwrap().references[0].subject,
        money_subject
    );
}

#[cfg(feature = "json")]
mod json {
    use super::*;
    use serde::{Deserialize, Serialize};
    use sluice_schema::Version;

    const PAYMENT: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
        "title":"shop.Payment","type":"object",
        "properties":{"id":{"type":"integer"},"amount":{"type":"number","minimum":0}},
        "required":["id","amount"],"additionalProperties":false}"#;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Payment {
        id: i64,
        amount: f64,
    }

    #[tokio::test]
    async fn json_schema_values_are_validated_on_both_sides() {
        use sluice_schema::{JsonDeserializer, JsonSerializer, SchemaType};
        let topic = unique("payments");
        let producer_side = registry();
        let ser = JsonSerializer::new(producer_side.clone(), PAYMENT)
            .unwrap()
            .strategy(SubjectNameStrategy::TopicRecord);
        // A value that breaks the schema is refused before anything is registered.
        let err = ser
            .serialize(
                &topic,
                &Payment {
                    id: 1,
                    amount: -5.0,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(why) if why.contains("minimum")),
            "{err:?}"
        );
        assert_eq!(producer_side.http_requests(), 0);

        let mut framed = Vec::new();
        for i in 0..100 {
            let p = Payment {
                id: i,
                amount: i as f64 / 2.0,
            };
            framed.push(ser.serialize(&topic, &p).await.unwrap());
        }
        assert_eq!(producer_side.http_requests(), 1);
        let (id, payload) = framing::read_header(&framed[3]).unwrap();
        let text: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(text, serde_json::json!({ "id": 3, "amount": 1.5 }));
        // Registered as JSON under <topic>-<title>.
        let registered = producer_side
            .version(&format!("{topic}-shop.Payment"), Version::Latest)
            .await
            .unwrap();
        assert_eq!(registered.id, id);
        assert_eq!(registered.schema.schema_type, SchemaType::Json);

        let consumer_side = registry();
        let de = JsonDeserializer::new(consumer_side.clone());
        for (i, bytes) in framed.iter().enumerate() {
            let p: Payment = de.deserialize_into(bytes).await.unwrap();
            assert_eq!(p.id, i as i64);
        }
        assert_eq!(consumer_side.http_requests(), 1);

        // Written by a producer that did not validate: the consumer refuses it...
        let mut rogue = Vec::new();
        framing::write_header(id, &mut rogue);
        rogue.extend_from_slice(br#"{"id":"seven","amount":1}"#);
        assert!(matches!(
            de.deserialize(&rogue).await,
            Err(Error::Invalid(_))
        ));
        // ...unless told not to validate.
        let lax = JsonDeserializer::new(registry()).validate(false);
        assert_eq!(lax.deserialize(&rogue).await.unwrap()["id"], "seven");
        let mut not_json = Vec::new();
        framing::write_header(id, &mut not_json);
        not_json.extend_from_slice(b"{oops");
        assert!(matches!(
            de.deserialize(&not_json).await,
            Err(Error::Json(_))
        ));
    }
}

#[cfg(feature = "protobuf")]
mod protobuf {
    use super::*;
    use sluice_schema::Version;

    #[tokio::test]
    async fn protobuf_nested_messages_and_imports_through_references() {
        use sluice_schema::prost_reflect::{DynamicMessage, ReflectMessage, Value as PValue};
        use sluice_schema::{ProtobufDeserializer, ProtobufSerializer, SchemaType};
        let r = registry();
        // The imported file, registered under a subject of its own.
        let common_subject = unique("shop-common");
        let common = r#"syntax = "proto3";
    package shop.common;
    message Money { int64 units = 1; string currency = 2; }
    "#;
        r.register(&common_subject, &Schema::new(SchemaType::Protobuf, common))
            .await
            .unwrap();
        let import = SchemaReference {
            name: "shop/common.proto".into(),
            subject: common_subject.clone(),
            version: 1,
        };
        let order = r#"syntax = "proto3";
    package shop;
    import "shop/common.proto";
    message Header { string trace = 1; }
    message Order {
      int64 id = 1;
      shop.common.Money total = 2;
      message Line { string sku = 1; int32 qty = 2; }
      repeated Line lines = 3;
    }
    "#;
        let topic = unique("pb-orders");
        let imports = [(import.clone(), common)];
        let orders = ProtobufSerializer::new(r.clone(), order, "shop.Order", &imports).unwrap();
        let lines = ProtobufSerializer::new(r.clone(), order, "shop.Order.Line", &imports)
            .unwrap()
            .strategy(SubjectNameStrategy::TopicRecord);
        let headers = ProtobufSerializer::new(r.clone(), order, "shop.Header", &imports)
            .unwrap()
            .strategy(SubjectNameStrategy::TopicRecord);

        let order_bytes = orders
            .serialize_json(
                &topic,
                &serde_json::json!({
                    "id": "42",
                    "total": { "units": 1999, "currency": "EUR" },
                    "lines": [{ "sku": "A-1", "qty": 2 }, { "sku": "B-2", "qty": 1 }]
                }),
            )
            .await
            .unwrap();
        let line_bytes = lines
            .serialize_json(&topic, &serde_json::json!({ "sku": "C-3", "qty": 7 }))
            .await
            .unwrap();
        let mut header = DynamicMessage::new(headers.descriptor().clone());
        header.set_field_by_name("trace", PValue::String("t-1".into()));
        let header_bytes = headers.serialize(&topic, &header).await.unwrap();
        // The index lists on the wire: [1] = count 1 (zig-zag 2) + index 1 (2); [1, 0] =
        // 4, 2, 0; [0] = the single byte 0.
        assert_eq!(&order_bytes[5..7], &[2, 2]);
        assert_eq!(&line_bytes[5..8], &[4, 2, 0]);
        assert_eq!(header_bytes[5], 0);
        // One schema text, registered under three subjects (topic, topic-record x2): same id.
        let ids: std::collections::BTreeSet<u32> = [&order_bytes, &line_bytes, &header_bytes]
            .iter()
            .map(|b| framing::read_header(b).unwrap().0)
            .collect();
        assert_eq!(ids.len(), 1);
        let registered = r
            .version(&format!("{topic}-shop.Order.Line"), Version::Latest)
            .await
            .unwrap();
        assert_eq!(registered.schema.schema_type, SchemaType::Protobuf);
        assert_eq!(registered.schema.references, vec![import]);

        let consumer_side = registry();
        let de = ProtobufDeserializer::new(consumer_side.clone());
        let got = de.deserialize(&order_bytes).await.unwrap();
        assert_eq!(got.descriptor().full_name(), "shop.Order");
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::json!({
                "id": "42",
                "total": { "units": "1999", "currency": "EUR" },
                "lines": [{ "sku": "A-1", "qty": 2 }, { "sku": "B-2", "qty": 1 }]
            })
        );
        let got = de.deserialize(&line_bytes).await.unwrap();
        assert_eq!(got.descriptor().full_name(), "shop.Order.Line");
        assert_eq!(got.get_field_by_name("qty").unwrap().as_i32(), Some(7));
        let got = de.deserialize(&header_bytes).await.unwrap();
        assert_eq!(got.descriptor().full_name(), "shop.Header");
        assert_eq!(
            got.get_field_by_name("trace").unwrap().as_str(),
            Some("t-1")
        );
        // The schema by id and its import by subject and version, once for all three.
        assert_eq!(consumer_side.http_requests(), 2);

        // An index list that names no message: a typed error of the record.
        let mut bad = order_bytes[..5].to_vec();
        framing::write_message_indexes(&[1, 7], &mut bad);
        assert!(matches!(
            de.deserialize(&bad).await,
            Err(Error::Protobuf(_))
        ));
        // A message of another type is refused by the serializer.
        assert!(matches!(
            orders.serialize(&topic, &header).await,
            Err(Error::Protobuf(_))
        ));
    }
}

/// The serdes through sluice-wire's codec traits: a resolved serializer that asks the
/// registry nothing per record, and deserializers as `AsyncDeserializer`s whose errors
/// keep this crate's error as their source.
#[cfg(feature = "wire")]
#[tokio::test]
async fn the_serdes_plug_into_the_wire_codec_traits() {
    use bytes::Bytes;
    use sluice_wire::codec::{AsyncDeserializer, Serializer};

    let topic = unique("codec");
    let producer_side = registry();
    let writer = AvroSerializer::new(producer_side.clone(), V1)
        .unwrap()
        .resolve([topic.as_str()])
        .await
        .unwrap();
    let resolved = producer_side.http_requests();
    assert_eq!(resolved, 1, "one registration for the one topic");
    let mut framed = Vec::new();
    for id in 0..20 {
        let order = OrderV1 { id, amount: 1.5 };
        let bytes = writer.serialize(&topic, &mut Vec::new(), &order).unwrap();
        framed.push(bytes.expect("a value"));
    }
    // A topic it was not resolved for: an error at once, no lookup.
    let other = writer
        .serialize(
            "elsewhere",
            &mut Vec::new(),
            &OrderV1 { id: 0, amount: 0.0 },
        )
        .unwrap_err();
    assert!(other.message().contains("not resolved"), "{other}");
    assert_eq!(producer_side.http_requests(), resolved);

    let consumer_side = registry();
    let reader = AvroDeserializer::new(consumer_side.clone());
    for (i, bytes) in framed.iter().enumerate() {
        let order: OrderV1 = AsyncDeserializer::deserialize(&reader, &topic, &[], bytes)
            .await
            .unwrap();
        assert_eq!(order.id, i as i64);
    }
    assert_eq!(
        consumer_side.http_requests(),
        1,
        "the writer schema fetched once"
    );

    // Bytes no registry serializer wrote: the codec error carries the schema error,
    // which says it is the record's fault (not retriable).
    let bad = Bytes::from_static(b"\x07not avro");
    let e = AsyncDeserializer::<OrderV1>::deserialize(&reader, &topic, &[], &bad)
        .await
        .unwrap_err();
    let wire_error = sluice_wire::Error::from(e);
    assert_eq!(wire_error.kind(), sluice_wire::ErrorKind::Serialization);
    let schema_error = Error::from_wire(&wire_error).expect("the schema error");
    assert!(
        matches!(schema_error, Error::WrongMagic { found: 7 }),
        "{schema_error:?}"
    );
    assert!(!schema_error.is_retriable());
}
