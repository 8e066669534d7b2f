//! Avro through the schema layers: evolution (v1 and v2 writers, a v1 reader), records
//! with bad bytes or unknown ids dead-lettered, a registry outage that pauses the
//! pipeline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice::pipeline::breaker::{BreakerHandle, BreakerState};
use sluice::pipeline::runner::Pipeline;
use sluice::wire::producer::Producer;
use sluice_pipeline::schema::decode::Decoded;
use sluice_pipeline::schema::encode::Produce;
use sluice_pipeline::schema::{AvroDecoder, AvroEncoder, Raw};
use sluice_pipeline::PipelineError;
use sluice_schema::{AvroDeserializer, AvroSerializer, Registry};
use sluice_testkit::FaultProxy;

use crate::pipeline_common::*;
use crate::{dlq_message, input_index, registry, run_until_completed, stack, write, Stack, P};

/// What the input topics carry (v1), and what the service reads every version as.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    id: i64,
    amount: f64,
}

/// v2 of the input: a field added with a default (a compatible evolution).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderV2 {
    id: i64,
    amount: f64,
    currency: String,
}

/// What the pipeline writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Invoice {
    order: i64,
    total: f64,
}

const ORDER_V1: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
  "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]}"#;
const ORDER_V2: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
  "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
             {"name": "currency", "type": "string", "default": "EUR"}]}"#;
const INVOICE: &str = r#"{"type": "record", "name": "Invoice", "namespace": "shop",
  "fields": [{"name": "order", "type": "long"}, {"name": "total", "type": "double"}]}"#;

/// The invoice for an order: what the test expects to read back.
fn invoice(order: &Order) -> Invoice {
    Invoice {
        order: order.id,
        total: order.amount * 2.0,
    }
}

/// Concurrency → DLQ → breaker → retry → decode (Avro, read as v1) → encode (Avro) →
/// a typed service that writes one invoice per order. `calls` counts the service's calls.
fn schema_stack(
    producer: &Producer,
    group: &str,
    output: &str,
    registry: Registry,
    calls: Arc<Mutex<u64>>,
) -> (Stack, BreakerHandle) {
    let output: Arc<str> = Arc::from(output);
    let decoder = AvroDecoder::<Order>::new(
        AvroDeserializer::new(registry.clone())
            .reader_schema(ORDER_V1)
            .unwrap(),
    );
    let encoder = AvroEncoder::<Invoice>::new(AvroSerializer::new(registry, INVOICE).unwrap());
    stack(
        producer,
        group,
        (Raw, decoder, encoder),
        calls,
        move |r: Decoded<Bytes, Order>| {
            let order = r
                .value
                .ok_or_else(|| PipelineError::dead_letter("tombstone"))?;
            let key = r.key.unwrap_or_default();
            Ok(vec![Produce::new(&*output, invoice(&order))
                .with_key(key)
                .with_partition(r.record.partition)])
        },
    )
}

/// The invoices of `output`, decoded with a fresh deserializer, by order id.
async fn invoices(
    cluster: &sluice::wire::cluster::Cluster,
    output: &str,
    registry: Registry,
) -> BTreeMap<i64, (Invoice, u32)> {
    let de = AvroDeserializer::new(registry);
    let mut out = BTreeMap::new();
    for r in read_all(cluster, output, P).await {
        let inv: Invoice = de
            .deserialize_into(r.value.as_deref().unwrap())
            .await
            .unwrap();
        out.entry(inv.order).or_insert((inv.clone(), 0)).1 += 1;
    }
    out
}

/// Avro in, a typed service, Avro out: every order comes back as exactly one invoice with
/// the right content; records with a wrong magic byte or an unknown schema id go to the
/// DLQ (exactly those, with the error in `kafka_dlt-exception-message`), and never reach
/// the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_in_avro_out_and_undecodable_records_are_dead_lettered() {
    const N: i64 = 2_000;
    let url = sluice_testkit::registry_url();
    let (cluster, input, output, group) = setup("schema-avro", P).await;
    let registry = registry(&url);
    let producer = producer().await;

    let serializer = AvroSerializer::new(registry.clone(), ORDER_V1).unwrap();
    let mut values = Vec::new();
    let mut orders = BTreeMap::new();
    // Bad ones at fixed places: 7 with a wrong magic byte (plain JSON), 5 with a schema
    // id no registry has handed out.
    let bad_magic: Vec<i64> = (0..7).map(|i| 100 + i * 271).collect();
    let unknown_id: Vec<i64> = (0..5).map(|i| 150 + i * 331).collect();
    for i in 0..N {
        let p = (i % i64::from(P)) as i32;
        let value = if bad_magic.contains(&i) {
            Bytes::from(format!("{{\"id\": {i}}}"))
        } else if unknown_id.contains(&i) {
            let mut v = vec![0u8];
            v.extend_from_slice(&2_000_000_000u32.to_be_bytes());
            v.extend_from_slice(&[2, 4]);
            Bytes::from(v)
        } else {
            let order = Order {
                id: i,
                amount: i as f64 / 4.0,
            };
            let bytes = serializer.serialize(&input, &order).await.unwrap();
            orders.insert(i, order);
            Bytes::from(bytes)
        };
        values.push((p, value));
    }
    let coords = write(&producer, &input, values).await;

    let calls = Arc::new(Mutex::new(0u64));
    let (stack, _) = schema_stack(&producer, &group, &output, registry.clone(), calls.clone());
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack);
    // Plus the warm-up record `setup` writes to each partition (not Avro: dead-lettered, and
    // skipped when the DLQ is read back).
    run_until_completed(pipeline, N as u64 + P as u64).await;

    let got = invoices(&cluster, &output, registry.clone()).await;
    assert_eq!(got.len(), orders.len(), "one invoice per good order");
    for (id, order) in &orders {
        let (inv, n) = got
            .get(id)
            .unwrap_or_else(|| panic!("order {id} has no invoice"));
        assert_eq!((inv, *n), (&invoice(order), 1), "order {id}");
    }
    assert_eq!(
        *calls.lock().unwrap(),
        orders.len() as u64,
        "bad records never reach the service"
    );

    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(
        dlq.len(),
        bad_magic.len() + unknown_id.len(),
        "exactly the bad records"
    );
    for r in &dlq {
        let i = input_index(&coords, r);
        let message = dlq_message(r);
        if bad_magic.contains(&i) {
            assert!(
                message.contains("wrong magic byte 0x7b"),
                "record {i}: {message}"
            );
        } else {
            assert!(
                unknown_id.contains(&i),
                "record {i} should not be dead-lettered: {message}"
            );
            assert!(
                message.contains("unknown schema id 2000000000"),
                "record {i}: {message}"
            );
        }
        assert!(
            message.starts_with(&format!("value of {input}-")),
            "{message}"
        );
    }
}

/// The registry goes away mid-run (the pipeline's only way to it, a proxy, is stopped:
/// connections are refused) while records with a schema the pipeline has not seen wait.
/// The pipeline stops admitting (breaker open, partitions paused), dead-letters nothing,
/// and once the registry is back every record comes out exactly once.
///
/// A proxy stands in for stopping Apicurio itself because the test registry keeps its
/// schemas in memory: a restarted one would have forgotten every id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_pauses_the_pipeline_and_loses_and_dead_letters_nothing() {
    const N1: i64 = 200;
    const N2: i64 = 300;
    let url = sluice_testkit::registry_url();
    let upstream = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let path = url
        .trim_start_matches("http://")
        .split_once('/')
        .unwrap()
        .1
        .to_string();
    let proxy = FaultProxy::start(&upstream).unwrap();
    let addr: SocketAddr = proxy.addr();
    let via_proxy = registry(&format!("http://{addr}/{path}"));
    let direct = registry(&url);

    let (cluster, input, output, group) = setup("schema-outage", P).await;
    let producer = producer().await;
    let v1 = AvroSerializer::new(direct.clone(), ORDER_V1).unwrap();
    let mut orders = BTreeMap::new();
    let mut values = Vec::new();
    for i in 0..N1 {
        let order = Order {
            id: i,
            amount: i as f64,
        };
        values.push((
            (i % 2) as i32,
            Bytes::from(v1.serialize(&input, &order).await.unwrap()),
        ));
        orders.insert(i, order);
    }
    write(&producer, &input, values).await;

    let calls = Arc::new(Mutex::new(0u64));
    let (stack, breaker) = schema_stack(&producer, &group, &output, via_proxy, calls.clone());
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack)
        .redelivery_backoff(Duration::from_millis(100), Duration::from_millis(500));
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until("the v1 records", Duration::from_secs(60), || {
        stats.completed() >= (N1 + P as i64) as u64
    })
    .await;

    // v2 records: their writer schema is new to the pipeline, so it must ask the registry.
    drop(proxy);
    let v2 = AvroSerializer::new(direct.clone(), ORDER_V2).unwrap();
    let mut values = Vec::new();
    for i in N1..N1 + N2 {
        let order = OrderV2 {
            id: i,
            amount: i as f64,
            currency: "USD".into(),
        };
        values.push((
            (i % 2) as i32,
            Bytes::from(v2.serialize(&input, &order).await.unwrap()),
        ));
        orders.insert(
            i,
            Order {
                id: i,
                amount: i as f64,
            },
        );
    }
    write(&producer, &input, values).await;

    // The outage: nothing completes, the breaker opens, nothing goes to the DLQ.
    let mut opened = false;
    for _ in 0..60 {
        opened |= breaker.state() == BreakerState::Open;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = stats.completed();
    let redelivered = stats.redelivered();
    assert_eq!(
        during,
        (N1 + P as i64) as u64,
        "no v2 record completes while the registry is away"
    );
    assert!(opened, "the breaker opened during the outage");
    assert!(
        redelivered > 0,
        "failed records were redelivered, not skipped"
    );
    assert!(
        read_all(&cluster, &format!("{input}-dlt"), P)
            .await
            .is_empty(),
        "outage dead-lettered records"
    );

    // The registry comes back on the same address.
    let proxy = FaultProxy::start_on(&addr.to_string(), &upstream).unwrap();
    wait_until(
        "every record after the outage",
        Duration::from_secs(60),
        || stats.completed() >= (N1 + N2 + P as i64) as u64,
    )
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert!(
        proxy.connections() > 0,
        "the pipeline went back to the registry"
    );

    let got = invoices(&cluster, &output, direct).await;
    assert_eq!(got.len(), orders.len(), "nothing lost");
    for (id, order) in &orders {
        let (inv, n) = got.get(id).unwrap_or_else(|| panic!("order {id} lost"));
        assert_eq!((inv, *n), (&invoice(order), 1), "order {id}");
    }
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(dlq.len(), 0, "the outage dead-lettered records");
    eprintln!(
        "outage: {} redeliveries, {} pauses, service calls {} for {} records",
        stats.redelivered(),
        stats.pauses(),
        calls.lock().unwrap(),
        N1 + N2
    );
}
