//! The producer against a real broker: 100,000 keyed records over 6 partitions for every
//! acks mode and codec, read back with `PartitionClient::fetch`: each record present
//! once, per-partition order kept, keys on their murmur2 partitions; order on a topic
//! fresh enough to answer NOT_LEADER at first; and `close()` delivering everything
//! buffered.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{cluster, create_topic, create_topic_cold, read_partition};
use sluice::partition::partition_for_key;
use sluice::wire::partition_client::Acks;
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::records::Compression;

const RECORDS: usize = 100_000;
const PARTITIONS: i32 = 6;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key-{}", i % 997))
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("{i:08}-{}", "v".repeat(40)))
}

fn seq_of(value: &Bytes) -> usize {
    std::str::from_utf8(&value[..8]).unwrap().parse().unwrap()
}

async fn produce_and_check(acks: Acks, codec: Compression) {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic(&format!("producer-{acks:?}-{codec}").to_lowercase());
    create_topic(&cluster, &topic, PARTITIONS).await;
    let config = ProducerConfig::new(&bootstrap)
        .acks(acks)
        .compression(codec)
        .linger(Duration::from_millis(5));
    let producer = Producer::new(config).await.unwrap();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(&topic, value(i)).key(key(i));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await.unwrap();
        let expected = partition_for_key(&key(i), PARTITIONS);
        assert_eq!(meta.partition, expected, "record {i}");
        if acks == Acks::None {
            assert_eq!(meta.offset, -1);
        } else {
            assert!(meta.offset >= 0);
        }
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let sent = started.elapsed();

    let mut seen = vec![false; RECORDS];
    for p in 0..PARTITIONS {
        let records = read_partition(&cluster, &topic, p).await;
        let mut last = None;
        for r in records {
            let k = r.key.as_ref().expect("keyed");
            assert_eq!(
                partition_for_key(k, PARTITIONS),
                p,
                "key on its murmur2 partition"
            );
            let s = seq_of(r.value.as_ref().expect("value"));
            assert_eq!(k, &key(s));
            assert!(!seen[s], "record {s} duplicated ({acks:?}, {codec})");
            seen[s] = true;
            assert!(
                last < Some(s),
                "order broken in partition {p}: {last:?} then {s}"
            );
            last = Some(s);
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} records lost ({acks:?}, {codec})");
    eprintln!(
        "{acks:?} {codec}: {RECORDS} records sent in {sent:?}, read back in {:?}",
        started.elapsed() - sent
    );
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_acks_all_every_codec() {
    for codec in CODECS {
        produce_and_check(Acks::All, codec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_acks_leader_every_codec() {
    for codec in CODECS {
        produce_and_check(Acks::Leader, codec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_acks_none_every_codec() {
    for codec in CODECS {
        produce_and_check(Acks::None, codec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delivers_everything_buffered() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-close");
    create_topic(&cluster, &topic, 3).await;
    // A long linger: nothing would leave on its own before close.
    let config = ProducerConfig::new(&bootstrap)
        .linger(Duration::from_secs(60))
        .delivery_timeout(Duration::from_secs(120));
    let producer = Producer::new(config).await.unwrap();
    for i in 0..1000 {
        // Deliveries dropped on purpose: the records must still be sent.
        drop(
            producer
                .send(ProducerRecord::new(&topic, value(i)))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    producer.close(Duration::from_secs(30)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "close ignored linger"
    );
    let mut total = 0;
    for p in 0..3 {
        total += read_partition(&cluster, &topic, p).await.len();
    }
    assert_eq!(total, 1000);
    let err = producer
        .send(ProducerRecord::new(&topic, "late"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), sluice::wire::ErrorKind::ProducerClosed);
}

/// Right after creation a leader may still answer NOT_LEADER_OR_FOLLOWER. A broker that
/// does not yet know the producer id on a partition accepts any sequence, so a second
/// batch in flight could land before a first one that bounced; the producer keeps one
/// batch in flight per partition until the first is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_order_holds_on_a_fresh_topic() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    // A producer with its id already, so it writes the moment a topic exists.
    let producer = Producer::new(ProducerConfig::new(&bootstrap))
        .await
        .unwrap();
    let warm = sluice_testkit::unique_topic("producer-fresh-warm");
    create_topic(&cluster, &warm, 1).await;
    producer
        .send(ProducerRecord::new(&warm, "w"))
        .await
        .unwrap()
        .await
        .unwrap();
    for round in 0..3 {
        let topic = sluice_testkit::unique_topic(&format!("producer-fresh-{round}"));
        create_topic_cold(&cluster, &topic, PARTITIONS).await;
        let mut deliveries = Vec::new();
        for i in 0..20_000 {
            let record = ProducerRecord::new(&topic, value(i)).key(key(i));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        let mut total = 0;
        for p in 0..PARTITIONS {
            let mut last = None;
            for r in read_partition(&cluster, &topic, p).await {
                let s = seq_of(r.value.as_ref().unwrap());
                assert!(
                    last < Some(s),
                    "order broken in partition {p}: {last:?} then {s}"
                );
                last = Some(s);
                total += 1;
            }
        }
        assert_eq!(total, 20_000);
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// Batches the producer stamped with its id, epoch and sequences (and compressed) are
/// read by Kafka's own console consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_console_consumer_reads_what_the_producer_wrote() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-interop");
    create_topic(&cluster, &topic, 1).await;
    let producer = Producer::new(ProducerConfig::new(&bootstrap).compression(Compression::Zstd))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new(&topic, format!("v{i}"))
            .key(format!("k{i}"))
            .header("n", Some(Bytes::from(i.to_string())));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let lines =
        sluice_testkit::console_consume(&bootstrap, &topic, 11, Duration::from_secs(10)).unwrap();
    let ours: Vec<&String> = lines.iter().filter(|l| !l.ends_with("warmup")).collect();
    assert_eq!(ours.len(), 10, "{lines:?}");
    for (i, line) in ours.iter().enumerate() {
        assert_eq!(**line, format!("n:{i}\tk{i}\tv{i}"));
    }
}

/// `send_with`: every buffered record's callback runs once, with the offset the record
/// has in the log, in offset order per partition, and before `flush` returns; a record
/// `send_with` refuses gets no callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_calls_back_once_per_record_before_flush_returns() {
    use std::sync::{Arc, Mutex};
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-callback");
    create_topic(&cluster, &topic, 3).await;
    let producer = Producer::new(ProducerConfig::new(&bootstrap))
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<(usize, i32, i64)>>> = Arc::default();
    const N: usize = 30_000;
    for i in 0..N {
        let seen = Arc::clone(&seen);
        let record = ProducerRecord::new(&topic, value(i)).key(key(i));
        producer
            .send_with(record, move |outcome| {
                let written = outcome.expect("delivered");
                seen.lock()
                    .unwrap()
                    .push((i, written.partition, written.offset));
            })
            .await
            .unwrap();
    }
    let refused = ProducerRecord::new(&topic, "nowhere").partition(99);
    let calls_before = Arc::clone(&seen);
    assert!(producer
        .send_with(refused, move |_| calls_before
            .lock()
            .unwrap()
            .push((N, -1, -1)))
        .await
        .is_err());
    producer.flush().await;
    // No wait: flush returned after the callbacks ran.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        seen.len(),
        N,
        "one callback per buffered record, none for the refused one"
    );
    let mut by_offset = std::collections::HashMap::new();
    let mut last: [Option<i64>; 3] = [None; 3];
    for &(i, p, offset) in &seen {
        let p_index = usize::try_from(p).unwrap();
        assert!(
            last[p_index] < Some(offset),
            "callbacks out of order in {p}"
        );
        last[p_index] = Some(offset);
        assert!(
            by_offset.insert((p, offset), i).is_none(),
            "offset reported twice"
        );
    }
    let mut read = 0;
    for p in 0..3 {
        for r in read_partition(&cluster, &topic, p).await {
            let i = seq_of(r.value.as_ref().unwrap());
            assert_eq!(
                by_offset.get(&(p, r.offset)),
                Some(&i),
                "callback offset of record {i}"
            );
            read += 1;
        }
    }
    assert_eq!(read, N);
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// Records still buffered when `close` gives up are not forgotten: every callback runs,
/// delivered (the sender may have sent a batch before the give-up) or PRODUCER_CLOSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_reports_records_abandoned_at_close() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-callback-close");
    create_topic(&cluster, &topic, 1).await;
    // A linger nothing outlives: the records are still buffered at close.
    let config = ProducerConfig::new(&bootstrap).linger(Duration::from_secs(60));
    let producer = Producer::new(config).await.unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    for i in 0..100 {
        let (delivered, closed) = (Arc::clone(&delivered), Arc::clone(&closed));
        producer
            .send_with(ProducerRecord::new(&topic, value(i)), move |outcome| {
                match outcome {
                    Ok(_) => delivered.fetch_add(1, Ordering::SeqCst),
                    Err(e) if e.kind() == sluice::wire::ErrorKind::ProducerClosed => {
                        closed.fetch_add(1, Ordering::SeqCst)
                    }
                    Err(e) => panic!("unexpected outcome {e}"),
                };
            })
            .await
            .unwrap();
    }
    // Usually fails, saying how many records it abandoned: whether the sender took the
    // batch before the give-up (it was woken by the close) decides how many.
    let closed_with = producer.close(Duration::ZERO).await;
    // What was in flight at the give-up still completes, a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::SeqCst) + closed.load(Ordering::SeqCst) < 100
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ok, lost) = (
        delivered.load(Ordering::SeqCst),
        closed.load(Ordering::SeqCst),
    );
    assert_eq!(ok + lost, 100, "{ok} delivered + {lost} closed");
    match closed_with {
        // Everything was delivered by the time close looked (a loaded machine).
        Ok(()) => assert_eq!(
            lost, 0,
            "close succeeded, yet {lost} records were abandoned"
        ),
        Err(err) => {
            assert_eq!(err.kind(), sluice::wire::ErrorKind::ProducerClosed);
            assert!(
                err.to_string()
                    .contains(&format!("{lost} records abandoned")),
                "close counts the records it abandoned ({lost}, {ok} delivered): {err}"
            );
        }
    }
}
