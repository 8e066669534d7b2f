//! JSON Schema and Protobuf through the schema layers, and typed keys: records in, typed
//! keys and values in the service, encoded outputs read back and decoded; records with
//! bad keys or values dead-lettered with the error in the DLQ headers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice::pipeline::runner::Pipeline;
use sluice_pipeline::schema::encode::Produce;
use sluice_pipeline::schema::{JsonDecoder, JsonEncoder, ProtobufDecoder, ProtobufEncoder};
use sluice_pipeline::PipelineError;
use sluice_schema::prost_reflect::{DynamicMessage, ReflectMessage, Value as PValue};
use sluice_schema::{
    framing, JsonDeserializer, JsonSerializer, ProtobufDeserializer, ProtobufSerializer,
};

use crate::pipeline_common::*;
use crate::{
    dlq_message, input_index, registry, run_until_completed, stack, write, write_keyed, P,
};

const KEY: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
    "title":"shop.CustomerKey","type":"object",
    "properties":{"customer":{"type":"string","pattern":"^c-[0-9]+$"}},
    "required":["customer"],"additionalProperties":false}"#;
const PAYMENT: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
    "title":"shop.Payment","type":"object",
    "properties":{"id":{"type":"integer"},"amount":{"type":"number","minimum":0}},
    "required":["id","amount"],"additionalProperties":false}"#;
const RECEIPT: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
    "title":"shop.Receipt","type":"object",
    "properties":{"payment":{"type":"integer"},"customer":{"type":"string"},
        "amount":{"type":"number"}},
    "required":["payment","customer","amount"],"additionalProperties":false}"#;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct CustomerKey {
    customer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Payment {
    id: i64,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Receipt {
    payment: i64,
    customer: String,
    amount: f64,
}

/// What kind of bad record input `i` of the JSON test is, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bad {
    /// A plain-JSON value (no framing).
    Magic,
    /// A framed value that breaks the payment schema.
    Invalid,
    /// A good value under a key that is not framed.
    Key,
}

fn bad_json_record(i: i64) -> Option<Bad> {
    match i {
        _ if i % 97 == 13 => Some(Bad::Magic),
        _ if i % 89 == 21 => Some(Bad::Invalid),
        _ if i % 83 == 30 => Some(Bad::Key),
        _ => None,
    }
}

/// JSON Schema keys and values in, JSON Schema out: the service gets the typed key and
/// value (it copies the key's customer into the receipt); every good record comes out as
/// one receipt that decodes; a value without the framing, one that breaks its schema, and
/// a key without the framing are dead letters saying so, and never reach the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_keys_and_values_in_json_schema_out_and_bad_ones_dead_lettered() {
    const N: i64 = 600;
    let url = sluice_testkit::registry_url();
    let (cluster, input, output, group) = setup("schema-json", P).await;
    let registry = registry(&url);
    let producer = producer().await;

    let keys = JsonSerializer::new(registry.clone(), KEY)
        .unwrap()
        .for_keys();
    let values = JsonSerializer::new(registry.clone(), PAYMENT).unwrap();
    let payment_id = values.schema_id(&input).await.unwrap();
    let mut records = Vec::new();
    let mut expected = BTreeMap::new();
    for i in 0..N {
        let p = (i % i64::from(P)) as i32;
        let customer = CustomerKey {
            customer: format!("c-{}", i % 7),
        };
        let payment = Payment {
            id: i,
            amount: i as f64 / 8.0,
        };
        let key = match bad_json_record(i) {
            Some(Bad::Key) => Bytes::from(serde_json::to_vec(&customer).unwrap()),
            _ => Bytes::from(keys.serialize(&input, &customer).await.unwrap()),
        };
        let value = match bad_json_record(i) {
            Some(Bad::Magic) => Bytes::from(serde_json::to_vec(&payment).unwrap()),
            Some(Bad::Invalid) => {
                // Framed with the payment schema's id by a writer that did not validate.
                let mut v = Vec::new();
                framing::write_header(payment_id, &mut v);
                v.extend_from_slice(br#"{"id": -1, "amount": -3.5}"#);
                Bytes::from(v)
            }
            _ => Bytes::from(values.serialize(&input, &payment).await.unwrap()),
        };
        if bad_json_record(i).is_none() {
            let receipt = Receipt {
                payment: i,
                customer: customer.customer.clone(),
                amount: payment.amount,
            };
            expected.insert(i, receipt);
        }
        records.push((p, key, value));
    }
    let coords = write_keyed(&producer, &input, records).await;

    let codecs = (
        JsonDecoder::<CustomerKey>::new(JsonDeserializer::new(registry.clone())),
        JsonDecoder::<Payment>::new(JsonDeserializer::new(registry.clone())),
        JsonEncoder::<Receipt>::new(JsonSerializer::new(registry.clone(), RECEIPT).unwrap()),
    );
    let calls = Arc::new(Mutex::new(0u64));
    let out = output.clone();
    let (svc, _) = stack(&producer, &group, codecs, calls.clone(), move |r| {
        let key: CustomerKey = r.key.ok_or_else(|| PipelineError::dead_letter("no key"))?;
        let payment: Payment = r
            .value
            .ok_or_else(|| PipelineError::dead_letter("tombstone"))?;
        let receipt = Receipt {
            payment: payment.id,
            customer: key.customer,
            amount: payment.amount,
        };
        Ok(vec![
            Produce::new(&out, receipt).with_partition(r.record.partition)
        ])
    });
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], svc);
    // Plus the warm-up record per partition (not framed: dead-lettered, skipped below).
    run_until_completed(pipeline, N as u64 + P as u64).await;

    let de = JsonDeserializer::new(registry.clone());
    let mut got = BTreeMap::new();
    for r in read_all(&cluster, &output, P).await {
        let receipt: Receipt = de
            .deserialize_into(r.value.as_deref().unwrap())
            .await
            .unwrap();
        assert!(
            got.insert(receipt.payment, receipt.clone()).is_none(),
            "payment {} twice",
            receipt.payment
        );
    }
    assert_eq!(
        got, expected,
        "one receipt per good record, with its key's customer"
    );
    assert_eq!(*calls.lock().unwrap(), expected.len() as u64);

    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    let bad = (0..N).filter(|&i| bad_json_record(i).is_some()).count();
    assert_eq!(dlq.len(), bad, "exactly the bad records");
    let mut kinds = BTreeMap::new();
    for r in &dlq {
        let i = input_index(&coords, r);
        let message = dlq_message(r);
        let kind = bad_json_record(i)
            .unwrap_or_else(|| panic!("record {i} should not be dead-lettered: {message}"));
        let (part, why) = match kind {
            Bad::Magic => ("value", "wrong magic byte 0x7b"),
            Bad::Invalid => ("value", "value breaks its schema"),
            Bad::Key => ("key", "wrong magic byte 0x7b"),
        };
        assert!(
            message.starts_with(&format!("{part} of {input}-")) && message.contains(why),
            "record {i} ({kind:?}): {message}"
        );
        *kinds.entry(format!("{kind:?}")).or_insert(0) += 1;
    }
    assert_eq!(
        kinds.len(),
        3,
        "every kind of bad record was written: {kinds:?}"
    );
}

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
message Order {
  int64 id = 1;
  message Line { string sku = 1; int32 qty = 2; double price = 3; }
  repeated Line lines = 2;
}
message Invoice { int64 order = 1; int32 items = 2; double total = 3; }
"#;

/// What kind of bad record input `i` of the Protobuf test is, if any.
fn bad_protobuf_record(i: i64) -> Option<&'static str> {
    match i {
        _ if i % 71 == 5 => Some("protobuf:"),
        _ if i % 67 == 9 => Some("unknown schema id 2000000001"),
        _ => None,
    }
}

/// Protobuf in (a message with nested ones), Protobuf out: the service reads the
/// `DynamicMessage` and writes another; every good order comes out as one invoice that
/// decodes; bytes that are not a message and an unknown schema id are dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_in_protobuf_out_and_bad_ones_dead_lettered() {
    const N: i64 = 600;
    let url = sluice_testkit::registry_url();
    let (cluster, input, output, group) = setup("schema-protobuf", P).await;
    let registry = registry(&url);
    let producer = producer().await;

    let orders = ProtobufSerializer::new(registry.clone(), ORDER_PROTO, "shop.Order", &[]).unwrap();
    let mut values = Vec::new();
    let mut expected = BTreeMap::new();
    for i in 0..N {
        let p = (i % i64::from(P)) as i32;
        let value = match bad_protobuf_record(i) {
            Some("protobuf:") => {
                // The order's header and index list, then a field with a truncated length.
                let good = orders
                    .serialize_json(&input, &serde_json::json!({ "id": i }))
                    .await
                    .unwrap();
                let mut v = good[..6].to_vec();
                v.extend_from_slice(&[0x12, 0x7f, 1]);
                v
            }
            Some(_) => {
                let mut v = Vec::new();
                framing::write_header(2_000_000_001, &mut v);
                framing::write_message_indexes(&[0], &mut v);
                v.extend_from_slice(&[8, 1]);
                v
            }
            None => {
                let lines: Vec<_> = (0..(i % 4))
                    .map(|n| serde_json::json!({ "sku": format!("s-{n}"), "qty": n + 1, "price": 2.5 }))
                    .collect();
                let total: f64 = (0..(i % 4)).map(|n| (n + 1) as f64 * 2.5).sum();
                expected.insert(i, (i32::try_from(i % 4).unwrap(), total));
                orders
                    .serialize_json(&input, &serde_json::json!({ "id": i, "lines": lines }))
                    .await
                    .unwrap()
            }
        };
        values.push((p, Bytes::from(value)));
    }
    let coords = write(&producer, &input, values).await;

    let invoices =
        ProtobufSerializer::new(registry.clone(), ORDER_PROTO, "shop.Invoice", &[]).unwrap();
    let invoice_type = invoices.descriptor().clone();
    let codecs = (
        sluice_pipeline::schema::Raw,
        ProtobufDecoder::new(ProtobufDeserializer::new(registry.clone())),
        ProtobufEncoder::new(invoices),
    );
    let calls = Arc::new(Mutex::new(0u64));
    let out = output.clone();
    let (svc, _) = stack(&producer, &group, codecs, calls.clone(), move |r| {
        let order = r
            .value
            .ok_or_else(|| PipelineError::dead_letter("tombstone"))?;
        let field = |m: &DynamicMessage, name: &str| {
            m.get_field_by_name(name)
                .ok_or_else(|| PipelineError::dead_letter(format!("no field {name}")))
                .map(|v| v.into_owned())
        };
        let lines = field(&order, "lines")?;
        let lines = lines.as_list().unwrap_or_default();
        let mut items = 0;
        let mut total = 0.0;
        for line in lines {
            let line = line.as_message().unwrap();
            let qty = field(line, "qty")?.as_i32().unwrap_or_default();
            items += 1;
            total += f64::from(qty) * field(line, "price")?.as_f64().unwrap_or_default();
        }
        let mut invoice = DynamicMessage::new(invoice_type.clone());
        invoice.set_field_by_name("order", field(&order, "id")?);
        invoice.set_field_by_name("items", PValue::I32(items));
        invoice.set_field_by_name("total", PValue::F64(total));
        Ok(vec![
            Produce::new(&out, invoice).with_partition(r.record.partition)
        ])
    });
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], svc);
    run_until_completed(pipeline, N as u64 + P as u64).await;

    let de = ProtobufDeserializer::new(registry.clone());
    let mut got = BTreeMap::new();
    for r in read_all(&cluster, &output, P).await {
        let bytes = r.value.as_deref().unwrap();
        let invoice = de.deserialize(bytes).await.unwrap();
        assert_eq!(invoice.descriptor().full_name(), "shop.Invoice");
        // [1]: the second message of the file, as the Java serializer writes it.
        assert_eq!(&bytes[5..7], &[2, 2]);
        let order = invoice
            .get_field_by_name("order")
            .unwrap()
            .as_i64()
            .unwrap();
        let items = invoice
            .get_field_by_name("items")
            .unwrap()
            .as_i32()
            .unwrap();
        let total = invoice
            .get_field_by_name("total")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(
            got.insert(order, (items, total)).is_none(),
            "order {order} twice"
        );
    }
    assert_eq!(got, expected, "one invoice per good order");
    assert_eq!(*calls.lock().unwrap(), expected.len() as u64);

    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    let bad = (0..N).filter(|&i| bad_protobuf_record(i).is_some()).count();
    assert_eq!(dlq.len(), bad, "exactly the bad records");
    for r in &dlq {
        let i = input_index(&coords, r);
        let message = dlq_message(r);
        let why = bad_protobuf_record(i)
            .unwrap_or_else(|| panic!("record {i} should not be dead-lettered: {message}"));
        assert!(
            message.starts_with(&format!("value of {input}-")) && message.contains(why),
            "record {i}: {message}"
        );
    }
}
