//! The producer behind fault proxies (`sluice_testkit::fault_cluster`): connections cut
//! every few hundred KB and at random lose nothing and duplicate nothing with
//! idempotence; a blackholed broker makes `send` block on a full buffer and fail after
//! `max.block.ms`, and buffered records fail after `delivery.timeout.ms`. Behind the
//! Kafka-aware proxy (`sluice_testkit::kafka_fault_cluster`): an epoch bump caused by
//! one partition does not write another partition's retried batch twice.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{cluster, create_topic, read_partition};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::ErrorKind;

const PARTITIONS: i32 = 6;

fn value(i: usize) -> Bytes {
    Bytes::from(format!("{i:08}-{}", "f".repeat(120)))
}

/// Sends `records` keyed records, then reads everything back over a direct (unproxied)
/// connection: each once, in order per partition.
async fn produce_through_faults(
    faults: &sluice_testkit::FaultCluster,
    topic: &str,
    records: usize,
) {
    let config = ProducerConfig::new(faults.bootstrap())
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(120))
        .retry_backoff(Duration::from_millis(20))
        .retry_backoff_max(Duration::from_millis(200));
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(topic, value(i)).key(format!("k{}", i % 101));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        d.await.unwrap_or_else(|e| panic!("record {i} failed: {e}"));
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let mut seen = vec![false; records];
    for p in 0..PARTITIONS {
        let mut last = None;
        for r in read_partition(&direct, topic, p).await {
            let v = r.value.unwrap();
            let s: usize = std::str::from_utf8(&v[..8]).unwrap().parse().unwrap();
            assert!(!seen[s], "record {s} duplicated");
            seen[s] = true;
            assert!(
                last < Some(s),
                "order broken in partition {p}: {last:?} then {s}"
            );
            last = Some(s);
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    assert_eq!(lost, 0, "{lost} records lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_survives_cuts_every_few_hundred_kb() {
    let faults = sluice_testkit::fault_cluster();
    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let topic = sluice_testkit::unique_topic("producer-cuts");
    create_topic(&direct, &topic, PARTITIONS).await;
    faults.cut_after(Some(300 * 1024));
    let started = Instant::now();
    // ~13 MB through connections cut every 300 KB: dozens of cuts mid-request.
    produce_through_faults(&faults, &topic, 100_000).await;
    let connections = faults.connections();
    eprintln!(
        "cut every 300 KB: 100000 records in {:?}, {connections} connections",
        started.elapsed()
    );
    assert!(
        connections >= 20,
        "only {connections} connections: the cuts did not happen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_survives_random_cuts() {
    let faults = sluice_testkit::fault_cluster();
    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let topic = sluice_testkit::unique_topic("producer-random-cuts");
    create_topic(&direct, &topic, PARTITIONS).await;
    faults.cut_randomly(0.05);
    let started = Instant::now();
    produce_through_faults(&faults, &topic, 50_000).await;
    let connections = faults.connections();
    eprintln!(
        "random cuts: 50000 records in {:?}, {connections} connections",
        started.elapsed()
    );
    assert!(
        connections >= 5,
        "only {connections} connections: the cuts did not happen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_broker_blocks_send_then_fails_deliveries() {
    let faults = sluice_testkit::fault_cluster();
    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let topic = sluice_testkit::unique_topic("producer-blackhole");
    create_topic(&direct, &topic, 3).await;
    let buffer_memory = 256 * 1024;
    let config = ProducerConfig::new(faults.bootstrap())
        .buffer_memory(buffer_memory)
        .max_block(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(1))
        .delivery_timeout(Duration::from_secs(3))
        .linger(Duration::from_millis(5));
    let producer = Producer::new(config).await.unwrap();
    // Metadata and producer id while the network works.
    producer
        .send(ProducerRecord::new(&topic, "warm"))
        .await
        .unwrap()
        .await
        .unwrap();

    let (id, epoch) = producer.producer_id().expect("idempotent by default");
    faults.blackhole(true);
    let record = Bytes::from(vec![b'x'; 1000]);
    let mut deliveries = Vec::new();
    let blocked_at;
    loop {
        let started = Instant::now();
        match producer
            .send(ProducerRecord::new(&topic, record.clone()))
            .await
        {
            Ok(d) => {
                deliveries.push(d);
                assert!(deliveries.len() < 10_000, "send never blocked");
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BufferExhausted, "{e}");
                blocked_at = started.elapsed();
                break;
            }
        }
        assert!(producer.buffer_available() <= buffer_memory);
    }
    assert!(
        blocked_at >= Duration::from_millis(900) && blocked_at < Duration::from_secs(5),
        "send failed after {blocked_at:?}, max.block.ms is 1 s"
    );
    let buffered = deliveries.len() * 1000;
    assert!(
        buffered <= buffer_memory,
        "{buffered} bytes buffered, buffer.memory {buffer_memory}"
    );
    assert!(
        buffered >= buffer_memory / 2,
        "only {buffered} bytes buffered before blocking"
    );

    // Every buffered record fails once delivery.timeout.ms (3 s) is spent.
    let started = Instant::now();
    for d in deliveries {
        let e = d.await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        producer.buffer_available(),
        buffer_memory,
        "memory given back"
    );

    // The network heals: the same producer carries on.
    faults.blackhole(false);
    faults.reset_all();
    let meta = producer
        .send(ProducerRecord::new(&topic, "after"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(meta.offset >= 0);
    // Batches that had sequences failed, leaving gaps: the producer bumped its epoch
    // (KIP-360) rather than stalling on OUT_OF_ORDER_SEQUENCE_NUMBER.
    let (id_after, epoch_after) = producer.producer_id().unwrap();
    assert!(
        id_after != id || epoch_after > epoch,
        "({id}, {epoch}) -> ({id_after}, {epoch_after})"
    );
    producer.close(Duration::from_secs(10)).await.unwrap();
}

/// A `send` cancelled while it waits for buffer memory must not leave the producer
/// believing memory is short: afterwards batches linger again. (The count of blocked
/// senders used to leak on cancellation, and every later batch went out at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cancelled_while_blocked_on_memory_does_not_disable_linger() {
    let faults = sluice_testkit::fault_cluster();
    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let topic = sluice_testkit::unique_topic("producer-cancel-blocked");
    create_topic(&direct, &topic, 1).await;
    let linger = Duration::from_millis(800);
    let config = ProducerConfig::new(faults.bootstrap())
        .buffer_memory(64 * 1024)
        .batch_size(16 * 1024)
        .max_block(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(60))
        .linger(linger);
    let producer = Producer::new(config).await.unwrap();
    producer
        .send(ProducerRecord::new(&topic, "warm"))
        .await
        .unwrap()
        .await
        .unwrap();

    // Fill the buffer while nothing can be delivered, then cancel a blocked send.
    faults.blackhole(true);
    let record = Bytes::from(vec![b'x'; 1000]);
    let mut deliveries = Vec::new();
    // Ends when a send is cancelled while blocked on memory.
    while let Ok(sent) = tokio::time::timeout(
        Duration::from_millis(300),
        producer.send(ProducerRecord::new(&topic, record.clone())),
    )
    .await
    {
        deliveries.push(sent.unwrap());
        assert!(deliveries.len() < 1_000, "send never blocked");
    }
    faults.blackhole(false);
    faults.reset_all();
    for d in deliveries {
        d.await
            .expect("buffered records are delivered once the broker is back");
    }

    // With linger honoured, a lone record waits about `linger` before it is sent.
    let started = Instant::now();
    producer
        .send(ProducerRecord::new(&topic, "after"))
        .await
        .unwrap()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= linger.mul_f64(0.75),
        "a lone record was delivered after {took:?}: linger ({linger:?}) is off"
    );
    producer.close(Duration::from_secs(10)).await.unwrap();
}

/// Sets a topic config through IncrementalAlterConfigs (the testkit admin has none).
fn set_topic_config(topic: &str, key: &str, value: &str) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use kafka_protocol::protocol::StrBytes;
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2) // topic
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_config_operation(0) // SET
                .with_value(Some(StrBytes::from_string(value.to_string())))]),
    ]);
    let admin = sluice_testkit::admin();
    let response = admin.connect().unwrap().request(&request).unwrap();
    for r in &response.responses {
        assert_eq!(r.error_code, 0, "IncrementalAlterConfigs {topic}: {r:?}");
    }
}

/// Polls a rule's hit count from async code.
async fn wait_for_hits(rule: &sluice_testkit::RuleHandle, n: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rule.hits() < n {
        assert!(Instant::now() < deadline, "{what}: the rule never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Hazard 2 of issue 13: an epoch bump caused by one partition must not re-sequence
/// another partition's batch that waits out a retry backoff while its first attempt is
/// already in the log (Java rewrites only the partitions that caused the bump).
///
/// Partition B (topic `b`): its first Produce response is dropped after the broker
/// wrote the batch, so the batch retries after a backoff of about 1.5 s. Meanwhile
/// partition A (topic `a` with `max.message.bytes=512`, so the broker refuses the
/// 1.4 KB batch without writing it: MESSAGE_TOO_LARGE) gets that response rewritten to
/// `code` (OUT_OF_ORDER_SEQUENCE_NUMBER on the first unacknowledged batch, or
/// UNKNOWN_PRODUCER_ID): the producer bumps its epoch. (A refusal is needed: a batch the
/// broker wrote and that is reported as a sequence error is rewritten and written again,
/// by Java too; `min.insync.replicas` above the replica count no longer refuses since
/// KIP-966.) Then A's limit is raised, more records go to both, and both partitions are
/// read back: every record exactly once, in send order.
async fn bump_leaves_other_partitions_alone(code: i16) {
    let direct = cluster(&sluice_testkit::bootstrap()).await;
    let topic_a = sluice_testkit::unique_topic("bump-a");
    let topic_b = sluice_testkit::unique_topic("bump-b");
    sluice::wire::admin::Admin::new(direct.clone())
        .create_topics(
            &[sluice::wire::admin::NewTopic::new(&topic_a, 1).config("max.message.bytes", "512")],
            common::T,
        )
        .await
        .unwrap();
    create_topic(&direct, &topic_b, 1).await;
    // A's leader is known: the refused first write is the one the rule rewrites.
    let deadline = Instant::now() + Duration::from_secs(30);
    while direct
        .refresh(&[&topic_a], false)
        .await
        .unwrap()
        .partition(&topic_a, 0)
        .is_none_or(|p| p.leader.is_none())
    {
        assert!(Instant::now() < deadline, "{topic_a} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let faults = sluice_testkit::kafka_fault_cluster();
    let drop_b = faults.add_rule(
        sluice_testkit::Rule::new(kafka_protocol::messages::ApiKey::Produce)
            .partition(&topic_b, 0)
            .nth(1)
            .drop_and_close(),
    );
    let fail_a = faults.add_rule(
        sluice_testkit::Rule::new(kafka_protocol::messages::ApiKey::Produce)
            .partition(&topic_a, 0)
            .nth(1)
            .set_error(code),
    );
    let config = ProducerConfig::new(faults.bootstrap())
        .linger(Duration::from_millis(5))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(60))
        .retry_backoff(Duration::from_millis(1500))
        .retry_backoff_max(Duration::from_millis(2000));
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::new();
    let send = |topic: &str, from: usize, to: usize| -> Vec<ProducerRecord> {
        (from..to)
            .map(|i| ProducerRecord::new(topic, value(i)).partition(0))
            .collect()
    };
    // B's first batch: written, its response lost.
    for r in send(&topic_b, 0, 10) {
        deliveries.push(producer.send(r).await.unwrap());
    }
    wait_for_hits(&drop_b, 1, "dropping B's response").await;
    // A's first batch, while B's waits out its backoff: refused, reported as `code`.
    for r in send(&topic_a, 0, 10) {
        deliveries.push(producer.send(r).await.unwrap());
    }
    wait_for_hits(&fail_a, 1, "failing A's batch").await;
    set_topic_config(&topic_a, "max.message.bytes", "1048588");
    // More for both, under whatever epoch each partition is on now.
    for r in send(&topic_b, 10, 20) {
        deliveries.push(producer.send(r).await.unwrap());
    }
    for r in send(&topic_a, 10, 20) {
        deliveries.push(producer.send(r).await.unwrap());
    }
    let mut offsets = Vec::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d
            .await
            .unwrap_or_else(|e| panic!("delivery {i} failed: {e}"));
        offsets.push(m.offset);
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    eprintln!(
        "offsets B 0..10, A 0..10, B 10..20, A 10..20: {offsets:?}; rules fired: drop B {}, fail A {}",
        drop_b.hits(),
        fail_a.hits()
    );

    for topic in [&topic_a, &topic_b] {
        let read: Vec<usize> = read_partition(&direct, topic, 0)
            .await
            .into_iter()
            .map(|r| {
                let v = r.value.unwrap();
                std::str::from_utf8(&v[..8]).unwrap().parse().unwrap()
            })
            .collect();
        let expected: Vec<usize> = (0..20).collect();
        assert_eq!(
            read,
            expected,
            "{topic}: every record once, in order ({} read for 20 sent)",
            read.len()
        );
    }
    drop(faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_sequence_on_one_partition_does_not_duplicate_another() {
    bump_leaves_other_partitions_alone(sluice_testkit::codes::OUT_OF_ORDER_SEQUENCE_NUMBER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_producer_id_on_one_partition_does_not_duplicate_another() {
    bump_leaves_other_partitions_alone(sluice_testkit::codes::UNKNOWN_PRODUCER_ID).await;
}
