//! Clear, typed producer errors: a record too large, an unknown topic with
//! auto-creation off, bad configuration; and batches too large for the broker split.

mod common;

use std::time::{Duration, Instant};

use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::ErrorKind;

#[tokio::test]
async fn record_too_large_fails_at_once() {
    let bootstrap = sluice_testkit::bootstrap();
    let producer = Producer::new(ProducerConfig::new(&bootstrap).max_request_size(10_000))
        .await
        .unwrap();
    let topic = sluice_testkit::unique_topic("producer-large");
    let started = Instant::now();
    let err = producer
        .send(ProducerRecord::new(&topic, vec![0u8; 20_000]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RecordTooLarge, "{err}");
    assert!(err.to_string().contains("max.request.size"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn unknown_topic_without_auto_create_fails_after_max_block() {
    let bootstrap = sluice_testkit::bootstrap();
    let config = ProducerConfig::new(&bootstrap)
        .allow_auto_create_topics(false)
        .max_block(Duration::from_secs(1));
    let producer = Producer::new(config).await.unwrap();
    let topic = sluice_testkit::unique_topic("producer-missing");
    let started = Instant::now();
    let err = producer
        .send(ProducerRecord::new(&topic, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTopicOrPartition, "{err}");
    assert!(err.to_string().contains(&topic), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Nothing was created.
    let md = producer.cluster().refresh(&[&topic], false).await.unwrap();
    assert!(md.topic(&topic).is_none_or(|t| t.error.is_some()));
}

#[tokio::test]
async fn bad_config_is_a_config_error_naming_the_key() {
    let err = ProducerConfig::from_properties([("linger.ms", "soon")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("linger.ms"), "{err}");
    let err = ProducerConfig::from_properties([("no.such.key", "1")]).unwrap_err();
    assert!(err.to_string().contains("no.such.key"), "{err}");
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", sluice_testkit::bootstrap().as_str()),
        ("acks", "1"),
        ("enable.idempotence", "true"),
    ])
    .unwrap();
    let err = Producer::new(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let config =
        ProducerConfig::new(sluice_testkit::bootstrap()).delivery_timeout(Duration::from_secs(1));
    let err = Producer::new(config).await.unwrap_err();
    assert!(err.to_string().contains("delivery.timeout.ms"), "{err}");
}

/// A batch larger than the topic's `max.message.bytes` is split and resent, as the Java
/// client does, instead of failing its records: all delivered, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_too_large_for_the_broker_are_split() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = common::cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-split");
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&topic, 1).config("max.message.bytes", "20000")],
            common::T,
        )
        .await
        .unwrap();
    let config = ProducerConfig::new(&bootstrap)
        .batch_size(200_000)
        .linger(Duration::from_millis(100));
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..3000 {
        let value = format!("{i:06}-{}", "s".repeat(100));
        deliveries.push(
            producer
                .send(ProducerRecord::new(&topic, value))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets out of order"
    );
    let read = common::read_partition(&cluster, &topic, 0).await;
    assert_eq!(read.len(), 3000);
    for (i, r) in read.iter().enumerate() {
        assert_eq!(
            &r.value.as_ref().unwrap()[..6],
            format!("{i:06}").as_bytes()
        );
        assert_eq!(r.offset, offsets[i]);
    }
}
