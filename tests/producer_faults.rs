//! The producer behind fault proxies (`sluice_testkit::fault_cluster`): connections cut
//! every few hundred KB and at random lose nothing and duplicate nothing with
//! idempotence; a blackholed broker makes `send` block on a full buffer and fail after
//! `max.block.ms`, and buffered records fail after `delivery.timeout.ms`.

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
