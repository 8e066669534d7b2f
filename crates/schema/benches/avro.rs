//! Per-record cost of Avro in the Confluent wire format with the registry caches warm:
//! encode (serde struct -> framed bytes) and decode (framed bytes -> serde struct, with
//! and without a reader schema) of a record of ~200 bytes; the same order as JSON Schema
//! (validated on both sides) and as Protobuf (a `DynamicMessage`) beside it.
//!
//! Needs a registry for the first call of each (de)serializer (then no HTTP request is
//! made; the bench checks that): `cargo xtask registry up`, export the
//! SLUICE_REGISTRY_URL it prints, then
//! `cargo bench -p sluice-schema --bench avro -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use sluice_schema::prost_reflect::DynamicMessage;
use sluice_schema::{
    AvroDeserializer, AvroSerializer, JsonDeserializer, JsonSerializer, ProtobufDeserializer,
    ProtobufSerializer, Registry,
};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"bench","fields":[
    {"name":"id","type":"long"},
    {"name":"customer","type":"string"},
    {"name":"sku","type":"string"},
    {"name":"quantity","type":"int"},
    {"name":"price","type":"double"},
    {"name":"currency","type":"string"},
    {"name":"express","type":"boolean"},
    {"name":"note","type":["null","string"],"default":null}]}"#;

/// ORDER with a field added (default): the reader of the evolution case.
const ORDER_READER: &str = r#"{"type":"record","name":"Order","namespace":"bench","fields":[
    {"name":"id","type":"long"},
    {"name":"customer","type":"string"},
    {"name":"sku","type":"string"},
    {"name":"quantity","type":"int"},
    {"name":"price","type":"double"},
    {"name":"currency","type":"string"},
    {"name":"express","type":"boolean"},
    {"name":"note","type":["null","string"],"default":null},
    {"name":"channel","type":"string","default":"web"}]}"#;

/// ORDER as a JSON Schema.
const ORDER_JSON: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
    "title":"bench.Order","type":"object",
    "properties":{"id":{"type":"integer"},"customer":{"type":"string"},
        "sku":{"type":"string"},"quantity":{"type":"integer","minimum":0},
        "price":{"type":"number"},"currency":{"type":"string","maxLength":3},
        "express":{"type":"boolean"},"note":{"type":["null","string"]}},
    "required":["id","customer","sku","quantity","price","currency","express"],
    "additionalProperties":false}"#;

/// ORDER as a Protobuf message.
const ORDER_PROTO: &str = r#"syntax = "proto3";
package bench;
message Order {
  int64 id = 1; string customer = 2; string sku = 3; int32 quantity = 4;
  double price = 5; string currency = 6; bool express = 7; optional string note = 8;
}
"#;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    id: i64,
    customer: String,
    sku: String,
    quantity: i32,
    price: f64,
    currency: String,
    express: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only
struct OrderRead {
    id: i64,
    customer: String,
    sku: String,
    quantity: i32,
    price: f64,
    currency: String,
    express: bool,
    note: Option<String>,
    channel: String,
}

fn order() -> Order {
    Order {
        id: 1_234_567_890,
        customer: "customer-0042@example.com / Jane Q. Example".into(),
        sku: "SKU-0000-RED-XL-2026-WINTER".into(),
        quantity: 3,
        price: 129.95,
        currency: "EUR".into(),
        express: true,
        note: Some(
            "leave at the door; ring twice; fragile contents, this side up, thank you!!! \
             (floor 3, flat 12, door B)"
                .into(),
        ),
    }
}

fn bench_avro(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let registry = Registry::new(url()).expect("registry client");
    let topic = format!("bench-avro-{}", std::process::id());
    let ser = AvroSerializer::new(registry.clone(), ORDER).expect("schema");
    let value = order();
    let framed = rt
        .block_on(ser.serialize(&topic, &value))
        .expect("first serialize (registers the schema)");
    let de = AvroDeserializer::new(registry.clone());
    let evolve = AvroDeserializer::new(registry.clone())
        .reader_schema(ORDER_READER)
        .expect("reader schema");
    let back: Order = rt.block_on(de.deserialize_into(&framed)).expect("decode");
    assert_eq!(back, value);
    let _: OrderRead = rt
        .block_on(evolve.deserialize_into(&framed))
        .expect("decode");
    let warm = registry.http_requests();
    // 5 header bytes + a 196-byte datum.
    assert_eq!(framed.len(), 201, "the record is no longer ~200 B");

    let mut group = c.benchmark_group("avro_200B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| rt.block_on(ser.serialize(&topic, black_box(&value))))
    });
    group.bench_function("decode", |b| {
        b.iter(|| rt.block_on(de.deserialize_into::<Order>(black_box(&framed))))
    });
    group.bench_function("decode_with_reader_schema", |b| {
        b.iter(|| rt.block_on(evolve.deserialize_into::<OrderRead>(black_box(&framed))))
    });
    group.finish();
    assert_eq!(
        registry.http_requests(),
        warm,
        "the warm hot path made HTTP requests"
    );
}

fn bench_json_schema(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let registry = Registry::new(url()).expect("registry client");
    let topic = format!("bench-json-{}", std::process::id());
    let ser = JsonSerializer::new(registry.clone(), ORDER_JSON).expect("schema");
    let value = order();
    let framed = rt
        .block_on(ser.serialize(&topic, &value))
        .expect("first serialize (registers the schema)");
    let de = JsonDeserializer::new(registry.clone());
    let back: Order = rt.block_on(de.deserialize_into(&framed)).expect("decode");
    assert_eq!(back, value);
    let warm = registry.http_requests();
    eprintln!("json-schema record: {} bytes framed", framed.len());

    let mut group = c.benchmark_group("json_schema_order");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| rt.block_on(ser.serialize(&topic, black_box(&value))))
    });
    group.bench_function("decode", |b| {
        b.iter(|| rt.block_on(de.deserialize_into::<Order>(black_box(&framed))))
    });
    group.finish();
    assert_eq!(
        registry.http_requests(),
        warm,
        "the warm hot path made HTTP requests"
    );
}

fn bench_protobuf(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let registry = Registry::new(url()).expect("registry client");
    let topic = format!("bench-pb-{}", std::process::id());
    let ser =
        ProtobufSerializer::new(registry.clone(), ORDER_PROTO, "bench.Order", &[]).expect("schema");
    let json = serde_json::to_value(order()).expect("json");
    let message = DynamicMessage::deserialize(ser.descriptor().clone(), &json).expect("message");
    let framed = rt
        .block_on(ser.serialize(&topic, &message))
        .expect("first serialize (registers the schema)");
    let de = ProtobufDeserializer::new(registry.clone());
    // Descriptors of two compilations differ: compare the messages as JSON.
    let back = rt.block_on(de.deserialize(&framed)).expect("decode");
    assert_eq!(
        serde_json::to_value(&back).expect("json"),
        json_of(&message)
    );
    let warm = registry.http_requests();
    eprintln!("protobuf record: {} bytes framed", framed.len());

    let mut group = c.benchmark_group("protobuf_order");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| rt.block_on(ser.serialize(&topic, black_box(&message))))
    });
    group.bench_function("decode", |b| {
        b.iter(|| rt.block_on(de.deserialize(black_box(&framed))))
    });
    group.finish();
    assert_eq!(
        registry.http_requests(),
        warm,
        "the warm hot path made HTTP requests"
    );
}

fn json_of(message: &DynamicMessage) -> serde_json::Value {
    serde_json::to_value(message).expect("json")
}

fn url() -> String {
    std::env::var("SLUICE_REGISTRY_URL").unwrap_or_else(|_| {
        panic!("SLUICE_REGISTRY_URL is not set: `cargo xtask registry up` prints it")
    })
}

criterion_group!(benches, bench_avro, bench_json_schema, bench_protobuf);
criterion_main!(benches);
