//! The same workload for each client. Producers send `records` values of `size` bytes
//! without keys (or with `--keys K`: record i has the key [`keys`]`[i % K]`, the same
//! sequence for every client, placed by the client's own murmur2 partitioner), as fast as the client accepts them (or paced at `--rate` records per
//! second), and the clock stops when the last delivery is acknowledged. Consumers read
//! `records` records from the beginning of every partition (manual assignment, no group
//! join) and stop when they have them all.
//! The clock starts before the client is created, so connecting, metadata and (for
//! idempotent producers) the producer-id request count for every client alike.
//!
//! At a fixed rate (`--rate`) the latencies are what is measured, so they should not
//! include start-up: the producer first sends one warm-up record and waits for its
//! acknowledgement (connection, metadata, producer id are then in place), and the
//! schedule starts after it. The warm-up record is not counted, and the clock restarts
//! after it, so records/s shows whether the client kept to the rate.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::mpsc;

use crate::{percentiles, ConsumeArgs, ProduceArgs, RunResult};

/// Printable payload, like ProducerPerformance's random uppercase letters.
fn payload(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'A' + (i.wrapping_mul(7919) % 26) as u8)
        .collect()
}

/// K distinct 10-byte keys (`k000000000`, ...), built before the clock starts; the
/// Go client builds the same ones.
fn keys(k: u64) -> Vec<bytes::Bytes> {
    (0..k)
        .map(|j| bytes::Bytes::from(format!("k{j:09}")))
        .collect()
}

/// The key of record `i` (None without `--keys`).
fn key_of(keys: &[bytes::Bytes], i: u64) -> Option<&bytes::Bytes> {
    if keys.is_empty() {
        None
    } else {
        keys.get((i % keys.len() as u64) as usize)
    }
}

fn result(records: u64, bytes: u64, secs: f64, lat: Vec<f32>) -> RunResult {
    let p = percentiles(lat);
    RunResult {
        client: String::new(),
        scenario: String::new(),
        records,
        bytes,
        secs,
        p50_ms: p.p50,
        p99_ms: p.p99,
        p999_ms: p.p999,
    }
}

/// Awaits delivery futures as they complete (like `sluice perf produce`), so each
/// latency is measured at completion: from just before `send` to the acknowledgement.
/// The channel to it holds at most [`PENDING`] futures: unbounded, a sender that ran
/// ahead of the collector let the queue of futures (not the client) dominate the peak RSS.
fn collector<F>(
    mut rx: mpsc::Receiver<(Instant, F)>,
) -> tokio::task::JoinHandle<(Vec<f32>, u64, Option<String>)>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut errors = 0u64;
        let mut first_error = None;
        let mut pending = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                next = rx.recv(), if open => match next {
                    Some((sent, d)) => pending.push(async move { (sent, d.await) }),
                    None => open = false,
                },
                Some((sent, r)) = pending.next(), if !pending.is_empty() => match r {
                    Ok(()) => lat.push((sent.elapsed().as_secs_f64() * 1000.0) as f32),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                },
                else => break,
            }
        }
        (lat, errors, first_error)
    })
}

/// When record `i` is due: `None` flat out, else `i / rate` seconds after the first send.
/// The clock starts at the first call (once the client exists), so connecting does not
/// eat into the schedule. Sends that fall behind are not skipped: the loop catches up.
struct Pacer {
    rate: Option<u64>,
    start: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Pacer { rate, start: None }
    }

    fn due(&mut self, i: u64) -> Option<tokio::time::Instant> {
        let rate = self.rate?;
        let start = *self.start.get_or_insert_with(tokio::time::Instant::now);
        Some(start + Duration::from_secs_f64(i as f64 / rate as f64))
    }

    /// Sleep until record `i` is due (at once when flat out or late).
    async fn wait(&mut self, i: u64) {
        if let Some(due) = self.due(i) {
            tokio::time::sleep_until(due).await;
        }
    }
}

/// Delivery futures queued for the collector, at most: librdkafka's default
/// `queue.buffering.max.messages`, so no client gets more records in flight from the
/// harness than librdkafka allows itself.
const PENDING: usize = 100_000;

fn check_errors(errors: u64, first: Option<String>) -> Result<()> {
    if errors > 0 {
        bail!(
            "{errors} records failed; first error: {}",
            first.unwrap_or_default()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- Sluice

pub async fn sluice_produce(a: &ProduceArgs) -> Result<RunResult> {
    use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
    let mut started = Instant::now();
    let mut config = ProducerConfig::from_properties([
        ("bootstrap.servers", a.bootstrap.as_str()),
        ("acks", a.acks.as_str()),
        (
            "enable.idempotence",
            if a.idempotence { "true" } else { "false" },
        ),
        ("compression.type", a.compression.as_str()),
        ("linger.ms", "5"),
        ("batch.size", "65536"),
    ])?;
    if let Some(ca) = a.tls.ca() {
        config.set("security.protocol", "SSL")?;
        config.set("ssl.ca.location", &ca)?;
    }
    let producer = Producer::new(config).await?;
    let value = bytes::Bytes::from(payload(a.size));
    let keys = keys(a.keys);
    // One shared name: each record clones a reference count (rdkafka borrows a `&str`).
    let topic: std::sync::Arc<str> = a.topic.as_str().into();
    if a.rate.is_some() {
        let record = ProducerRecord::new(&topic, value.clone());
        producer.send(record).await?.await?;
        started = Instant::now();
    }
    // `send_with`: a callback per record, as franz-go's promise, not a `Delivery`
    // future per record and a channel to a collector. Buffering is bounded by the
    // producer's own `buffer.memory` (32 MiB), which `send_with` waits on.
    let outcomes = Arc::new(std::sync::Mutex::new(Outcomes::with_capacity(a.records)));
    let mut pacer = Pacer::new(a.rate);
    for i in 0..a.records {
        pacer.wait(i).await;
        let record = ProducerRecord::new(&topic, value.clone()).key_opt(key_of(&keys, i).cloned());
        let sent = Instant::now();
        let outcomes = Arc::clone(&outcomes);
        producer
            .send_with(record, move |r| {
                let ms = (sent.elapsed().as_secs_f64() * 1000.0) as f32;
                if let Ok(mut o) = outcomes.lock() {
                    o.record(r.map(|_| ms).map_err(|e| e.to_string()));
                }
            })
            .await?;
    }
    // Returns once every callback has run.
    producer.flush().await;
    let secs = started.elapsed().as_secs_f64();
    producer.close(Duration::from_secs(30)).await?;
    let Outcomes {
        lat,
        errors,
        first_error,
    } = std::mem::take(&mut *outcomes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    check_errors(errors, first_error)?;
    Ok(result(
        lat.len() as u64,
        lat.len() as u64 * a.size as u64,
        secs,
        lat,
    ))
}

/// What delivery callbacks collect: latencies of the delivered records, and the failures.
#[derive(Default)]
struct Outcomes {
    lat: Vec<f32>,
    errors: u64,
    first_error: Option<String>,
}

impl Outcomes {
    fn with_capacity(records: u64) -> Self {
        Outcomes {
            lat: Vec::with_capacity(usize::try_from(records).unwrap_or(0)),
            ..Outcomes::default()
        }
    }

    fn record(&mut self, outcome: Result<f32, String>) {
        match outcome {
            Ok(ms) => self.lat.push(ms),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

pub async fn sluice_consume(a: &ConsumeArgs) -> Result<RunResult> {
    use sluice_wire::consumer::{Consumer, ConsumerConfig, TopicPartition};
    let started = Instant::now();
    let mut config = ConsumerConfig::new(&a.bootstrap);
    if let Some(ca) = a.tls.ca() {
        config.set("security.protocol", "SSL")?;
        config.set("ssl.ca.location", &ca)?;
    }
    let consumer = Consumer::new(config).await?;
    let parts: Vec<TopicPartition> = (0..a.partitions)
        .map(|p| TopicPartition::new(a.topic.clone(), p))
        .collect();
    consumer.assign(parts.clone())?;
    consumer.seek_to_beginning(&parts)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        let batch = consumer.recv_batch().await?;
        for r in &batch.records {
            bytes += r.value().map_or(0, |v| v.len()) as u64;
        }
        n += batch.records.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    consumer.close().await?;
    Ok(result(n, bytes, secs, Vec::new()))
}

// ---------------------------------------------------------------- rdkafka (librdkafka)

/// Extra librdkafka properties from `COMPARE_RDKAFKA` (`k=v,k=v`), for experiments
/// away from the defaults; `cargo xtask bench` never sets it.
fn rdkafka_extra() -> Vec<(String, String)> {
    std::env::var("COMPARE_RDKAFKA")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

trait SetAll {
    fn set_all(&mut self, kvs: Vec<(String, String)>) -> &mut Self;
}

impl SetAll for rdkafka::config::ClientConfig {
    fn set_all(&mut self, kvs: Vec<(String, String)>) -> &mut Self {
        for (k, v) in kvs {
            self.set(k, v);
        }
        self
    }
}

/// `rdkafka-tuned`: the consumer settings someone tuning librdkafka for throughput would
/// change. Descriptions quoted from librdkafka 2.12.1's CONFIGURATION.md.
///
/// - `fetch.queue.backoff.ms` 1000 -> 10: "How long to postpone the next fetch request
///   for a topic+partition in case the current fetch queue thresholds
///   (queued.min.messages or queued.max.messages.kbytes) have been exceded. This property
///   may need to be decreased if [...] the application is experiencing long (~1s) delays
///   between messages. Low values may increase CPU utilization." Reading a backlog,
///   a partition's queue reaches 100,000 messages within a few fetches and the
///   partition is then not fetched for a second (librdkafka >= 2.2), while the
///   application drains the queue in a fraction of that. 10 ms, not 0, for the CPU
///   warning.
/// - `queued.min.messages` 100000 -> 1000000: "Minimum number of messages per
///   topic+partition librdkafka tries to maintain in the local consumer queue." 100,000
///   records of 100 B are only 10 MB; raised so that `queued.max.messages.kbytes`
///   (65536 = 64 MiB, left at its default, "higher priority than queued.min.messages")
///   bounds the prefetch, the same 64 MiB as Sluice's `prefetch_max_bytes`.
///
/// Left alone: `fetch.wait.max.ms` (500, as Sluice and Java; the broker only waits when
/// it has no data), `fetch.message.max.bytes` (1 MiB per partition, as Sluice and Java),
/// `fetch.max.bytes` (50 MiB, as Sluice and Java), `fetch.min.bytes` (1), `check.crcs`
/// (already false).
///
/// There is no tuned producer: the scenario fixes `linger.ms`, `batch.size`, acks,
/// idempotence and compression, and what is left did not help. Raising
/// `queue.buffering.max.messages` (100000) to 1000000 with `queue.buffering.max.kbytes`
/// 131072, so that a flat-out send loop never meets QueueFull, gave the same throughput
/// in a check of 2 runs each (1 M x 100 B acks=all+idem lz4: 2.99 s and 2.59 s against
/// 4.10 s and 2.40 s at the defaults; 500 k x 1 KiB acks=1: 2.87 s and 2.41 s against
/// 3.06 s and 2.48 s) for 2.5-3x the peak RSS at 100 B (the whole run queued).
/// `batch.num.messages` (10000) never binds with 64 KiB batches (~550 records of
/// 100 B), keyless records already stick to one partition per batch
/// (`sticky.partitioning.linger.ms` 10) and `socket.nagle.disable` is already true.
pub const RDKAFKA_TUNED_CONSUMER: [(&str, &str); 2] = [
    ("fetch.queue.backoff.ms", "10"),
    ("queued.min.messages", "1000000"),
];

/// librdkafka's TLS settings for `tls` (none for PLAINTEXT).
fn rdkafka_tls(tls: &crate::TlsArgs) -> Vec<(String, String)> {
    match tls.ca() {
        Some(ca) => vec![
            ("security.protocol".into(), "ssl".into()),
            ("ssl.ca.location".into(), ca),
        ],
        None => Vec::new(),
    }
}

fn owned(kvs: &[(&str, &str)]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn rdkafka_produce(a: &ProduceArgs) -> Result<RunResult> {
    use rdkafka::config::ClientConfig;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let mut started = Instant::now();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", &a.acks)
        .set("enable.idempotence", a.idempotence.to_string())
        .set("compression.type", &a.compression)
        .set("linger.ms", "5")
        .set("batch.size", "65536")
        .set_all(rdkafka_tls(&a.tls))
        .set_all(rdkafka_extra())
        .create()
        .context("creating the rdkafka producer")?;
    let value = payload(a.size);
    let keys = keys(a.keys);
    if a.rate.is_some() {
        let record = FutureRecord::<(), [u8]>::to(&a.topic).payload(&value);
        if let Err((e, _)) = producer.send(record, Duration::from_secs(30)).await {
            bail!("rdkafka warm-up record: {e}");
        }
        started = Instant::now();
    }
    let (tx, rx) = mpsc::channel(PENDING);
    let collect = collector(rx);
    let mut pacer = Pacer::new(a.rate);
    for i in 0..a.records {
        pacer.wait(i).await;
        let sent = Instant::now();
        let d = loop {
            let record = FutureRecord::<[u8], [u8]>::to(&a.topic).payload(&value);
            let record = match key_of(&keys, i) {
                Some(k) => record.key(&k[..]),
                None => record,
            };
            match producer.send_result(record) {
                Ok(d) => break d,
                // librdkafka's queue is full: wait for deliveries (as Java's send blocks).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err((e, _)) => bail!("rdkafka send: {e}"),
            }
        };
        let d = d.map(|r| match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e.to_string()),
            Err(_) => Err("delivery canceled".to_string()),
        });
        if tx.send((sent, d)).await.is_err() {
            bail!("the latency collector stopped");
        }
    }
    drop(tx);
    producer.flush(Duration::from_secs(60))?;
    let (lat, errors, first) = collect.await?;
    let secs = started.elapsed().as_secs_f64();
    check_errors(errors, first)?;
    Ok(result(
        lat.len() as u64,
        lat.len() as u64 * a.size as u64,
        secs,
        lat,
    ))
}

/// `tuned`: the `rdkafka-tuned` client, with [`RDKAFKA_TUNED_CONSUMER`].
pub async fn rdkafka_consume(a: &ConsumeArgs, tuned: bool) -> Result<RunResult> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        // Required by librdkafka's consumer; nothing is committed and no group is joined
        // (assign, not subscribe).
        .set("group.id", "sluice-compare")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set_all(if tuned {
            owned(&RDKAFKA_TUNED_CONSUMER)
        } else {
            Vec::new()
        })
        .set_all(rdkafka_tls(&a.tls))
        .set_all(rdkafka_extra())
        .create()
        .context("creating the rdkafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..a.partitions {
        tpl.add_partition_offset(&a.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                bytes += m.payload().map_or(0, |v| v.len()) as u64;
                n += 1;
            }
            Some(Err(e)) => bail!("rdkafka consume: {e}"),
            None => {}
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("rdkafka consume: timed out after {n} records");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(result(n, bytes, secs, Vec::new()))
}

// ---------------------------------------------------------------- rskafka

/// rskafka has no partitioner and no per-client batching: one `BatchProducer` per
/// partition (linger 5 ms, `RecordAggregator` of 64 KiB), records round-robin over the
/// partitions. Its produce requests are always acks=all and never idempotent.
pub async fn rskafka_produce(a: &ProduceArgs) -> Result<RunResult> {
    if a.tls.ssl() {
        bail!("the rskafka client of this harness has no TLS (its `transport-tls` feature is off)");
    }
    if a.keys > 0 {
        bail!("rskafka has no partitioner: the harness does not run it with --keys");
    }
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::client::producer::aggregator::RecordAggregator;
    use rskafka::client::producer::BatchProducerBuilder;
    use rskafka::client::ClientBuilder;
    use rskafka::record::Record;

    let mut started = Instant::now();
    let client = ClientBuilder::new(vec![a.bootstrap.clone()])
        .build()
        .await?;
    let compression = if a.compression == "lz4" {
        Compression::Lz4
    } else {
        Compression::NoCompression
    };
    let partitions = rskafka_partitions(&client, &a.topic).await?;
    let mut producers = Vec::new();
    for p in 0..partitions {
        let pc = client
            .partition_client(a.topic.clone(), p, UnknownTopicHandling::Retry)
            .await?;
        producers.push(Arc::new(
            BatchProducerBuilder::new(Arc::new(pc))
                .with_linger(Duration::from_millis(5))
                .with_compression(compression)
                .build(RecordAggregator::new(64 * 1024)),
        ));
    }
    let value = payload(a.size);
    let record = || Record {
        key: None,
        value: Some(value.clone()),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    };
    if a.rate.is_some() {
        producers[0].produce(record()).await?;
        started = Instant::now();
    }
    // At most this many records in flight: rskafka's produce never blocks, so without a
    // bound everything would be queued at once.
    const IN_FLIGHT: usize = 50_000;
    let mut pending = FuturesUnordered::new();
    let mut lat = Vec::with_capacity(a.records as usize);
    let mut done = |r: (Instant, Result<_, rskafka::client::producer::Error>)| -> Result<()> {
        r.1?;
        lat.push((r.0.elapsed().as_secs_f64() * 1000.0) as f32);
        Ok(())
    };
    let mut pacer = Pacer::new(a.rate);
    for i in 0..a.records {
        // Completions must be polled while waiting: rskafka's linger flush runs inside
        // the pending `produce` futures.
        if let Some(due) = pacer.due(i) {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    Some(r) = pending.next(), if !pending.is_empty() => done(r)?,
                }
            }
        }
        let producer = Arc::clone(&producers[(i % producers.len() as u64) as usize]);
        let record = record();
        pending.push(async move {
            let sent = Instant::now();
            let r = producer.produce(record).await.map(|_| ());
            (sent, r)
        });
        // Poll the new future (it joins a batch on its first poll) and take completions.
        while let Some(Some(r)) = pending.next().now_or_never() {
            done(r)?;
        }
        if pending.len() >= IN_FLIGHT {
            if let Some(r) = pending.next().await {
                done(r)?;
            }
        }
    }
    while let Some(r) = pending.next().await {
        done(r)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = lat.len() as u64;
    Ok(result(n, n * a.size as u64, secs, lat))
}

async fn rskafka_partitions(client: &rskafka::client::Client, topic: &str) -> Result<i32> {
    let topics = client.list_topics().await?;
    let t = topics
        .iter()
        .find(|t| t.name == topic)
        .with_context(|| format!("topic {topic} not found"))?;
    Ok(t.partitions.len() as i32)
}

/// One `StreamConsumer` per partition from the earliest offset (fetches up to 1 MiB,
/// wait 500 ms), merged.
pub async fn rskafka_consume(a: &ConsumeArgs) -> Result<RunResult> {
    if a.tls.ssl() {
        bail!("the rskafka client of this harness has no TLS (its `transport-tls` feature is off)");
    }
    use rskafka::client::consumer::{StartOffset, StreamConsumerBuilder};
    use rskafka::client::partition::UnknownTopicHandling;
    use rskafka::client::ClientBuilder;

    let started = Instant::now();
    let client = ClientBuilder::new(vec![a.bootstrap.clone()])
        .build()
        .await?;
    let mut streams = Vec::new();
    for p in 0..a.partitions {
        let pc = client
            .partition_client(a.topic.clone(), p, UnknownTopicHandling::Retry)
            .await?;
        streams.push(
            StreamConsumerBuilder::new(Arc::new(pc), StartOffset::Earliest)
                .with_max_batch_size(1024 * 1024)
                .with_max_wait_ms(500)
                .build(),
        );
    }
    let mut all = futures::stream::select_all(streams);
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        let Some(r) = all.next().await else {
            bail!("rskafka streams ended after {n} records")
        };
        let (r, _high) = r?;
        bytes += r.record.value.as_ref().map_or(0, |v| v.len()) as u64;
        n += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(result(n, bytes, secs, Vec::new()))
}

// ---------------------------------------------------------------- kacrab

/// kacrab producer settings beside the scenario's: [`KACRAB_NON_IDEMPOTENT`] without
/// idempotence, then `COMPARE_KACRAB` (`k=v,k=v`, for experiments; `cargo xtask bench`
/// never sets it).
fn kacrab_settings(idempotence: bool) -> Vec<(String, String)> {
    let mut kvs = if idempotence {
        Vec::new()
    } else {
        owned(&KACRAB_NON_IDEMPOTENT)
    };
    kvs.extend(
        std::env::var("COMPARE_KACRAB")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string())),
    );
    kvs
}

/// Without idempotence kacrab 0.4.0 runs one produce request per connection at a time.
/// Its docs recommend the default depth of 5 ("Rule of thumb: keep 5", docs-book
/// field-guide/producer.md), and with idempotence the harness keeps it. Without
/// idempotence, at 5 (and at 4 and 2) most deliveries of a flat-out 200,000 x 100 B
/// acks=1 run fail with `WireError::Backpressure` ("wire backpressure") from the
/// delivery future, not from `send`, so the send loop cannot retry them: the broker I/O
/// task refuses a produce request that arrives while another is still queued for writing
/// (`admit` in kacrab's `wire/broker.rs`), and the non-idempotent dispatcher pipelines
/// up to this many. At 1 every record is delivered.
pub const KACRAB_NON_IDEMPOTENT: [(&str, &str); 1] =
    [("max.in.flight.requests.per.connection", "1")];

/// kacrab 0.4 with the scenario's settings as its Java-style keys; everything else at its
/// defaults, which its docs recommend keeping: `max.in.flight.requests.per.connection` 5
/// ("depth 5 (default) maximizes pipeline utilization", docs-book field-guide/producer.md;
/// at 1 its own bench measured 28% lower throughput) except without idempotence (see
/// [`KACRAB_NON_IDEMPOTENT`]), `buffer.memory` 32 MiB.
///
/// `send` is synchronous and returns `Backpressure` (the 32 MiB buffer is full) or
/// `Wire(Backpressure)` (a broker connection's in-flight queue is full) instead of
/// blocking. kacrab's own `producer_kafka_bench` treats both as closed-loop backpressure:
/// it sleeps 50 µs and retries the same record, the latency clock still running from the
/// first attempt. This does the same.
pub async fn kacrab_produce(a: &ProduceArgs) -> Result<RunResult> {
    use kacrab::producer::{Producer, ProducerError, ProducerRecord};
    use kacrab::wire::WireError;
    if a.tls.ssl() {
        bail!("the kacrab client of this harness has no TLS (no TLS provider feature)");
    }
    let mut started = Instant::now();
    let mut builder = Producer::builder()
        .set("bootstrap.servers", a.bootstrap.as_str())
        .set("acks", a.acks.as_str())
        .set(
            "enable.idempotence",
            if a.idempotence { "true" } else { "false" },
        )
        .set("compression.type", a.compression.as_str())
        .set("linger.ms", "5")
        .set("batch.size", "65536");
    for (k, v) in kacrab_settings(a.idempotence) {
        builder = builder.set(k, v);
    }
    let producer = builder
        .build()
        .await
        .context("creating the kacrab producer")?;
    let value = bytes::Bytes::from(payload(a.size));
    let topic: Arc<str> = a.topic.as_str().into();
    let keys = keys(a.keys);
    let record = |i| match key_of(&keys, i) {
        Some(k) => ProducerRecord::topic_key_value(Arc::clone(&topic), k.clone(), value.clone()),
        None => ProducerRecord::topic_value(Arc::clone(&topic), value.clone()),
    };
    if a.rate.is_some() {
        producer.send(record(0))?.await?;
        started = Instant::now();
    }
    let (tx, rx) = mpsc::channel(PENDING);
    let collect = collector(rx);
    let mut pacer = Pacer::new(a.rate);
    for i in 0..a.records {
        pacer.wait(i).await;
        let sent = Instant::now();
        let d = loop {
            match producer.send(record(i)) {
                Ok(d) => break d,
                Err(ProducerError::Backpressure | ProducerError::Wire(WireError::Backpressure)) => {
                    tokio::time::sleep(Duration::from_micros(50)).await
                }
                Err(e) => bail!("kacrab send: {e}"),
            }
        };
        let d = d.map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
        if tx.send((sent, d)).await.is_err() {
            bail!("the latency collector stopped");
        }
    }
    drop(tx);
    producer.flush().await.context("kacrab flush")?;
    let (lat, errors, first) = collect.await?;
    let secs = started.elapsed().as_secs_f64();
    producer.close().await.context("kacrab close")?;
    check_errors(errors, first)?;
    Ok(result(
        lat.len() as u64,
        lat.len() as u64 * a.size as u64,
        secs,
        lat,
    ))
}

/// kacrab's consumer at its defaults (manual assignment, no group): its docs say
/// "Defaults here are genuinely good: the 4x consumer throughput edge in the benchmarks
/// was measured at stock fetch settings" (docs-book field-guide/consumer.md); responses
/// are buffered across polls and the next fetch is prefetched in the background.
pub async fn kacrab_consume(a: &ConsumeArgs) -> Result<RunResult> {
    use kacrab::common::TopicPartition;
    use kacrab::consumer::Consumer;
    if a.tls.ssl() {
        bail!("the kacrab client of this harness has no TLS (no TLS provider feature)");
    }
    let started = Instant::now();
    let mut consumer = Consumer::from_map([
        ("bootstrap.servers", a.bootstrap.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ])
    .await
    .context("creating the kacrab consumer")?;
    let parts: Vec<TopicPartition> = (0..a.partitions)
        .map(|p| TopicPartition::new(a.topic.clone(), p))
        .collect();
    consumer.assign(parts.clone())?;
    consumer.seek_to_beginning(&parts).await?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        for r in &records {
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64;
        }
        n += records.count() as u64;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("kacrab consume: timed out after {n} records");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    consumer.close().await;
    Ok(result(n, bytes, secs, Vec::new()))
}

// ---------------------------------------------------------------- krafka

/// krafka 0.28: `enqueue` (returns once the record is buffered; the handle resolves to
/// the acknowledgement), which its docs give for pipelining, rather than `send` (which
/// awaits each acknowledgement). `batch_size` 64 KiB and `linger` 5 ms (its default) as
/// in its performance guide's batching example; `buffer_memory` 32 MiB and at most 5
/// requests in flight per broker at their defaults. It has no non-idempotent setting
/// besides `idempotent(false)`, which acks=1 requires. `enqueue` waits for buffer memory
/// itself (Java's `max.block.ms`), so there is no retry loop.
pub async fn krafka_produce(a: &ProduceArgs) -> Result<RunResult> {
    use krafka::producer::Acks;
    use krafka::{Compression, Kafka, Record};
    if a.tls.ssl() {
        bail!("the krafka client of this harness has no TLS");
    }
    let mut started = Instant::now();
    let kafka = Kafka::builder(a.bootstrap.as_str())
        .connect()
        .await
        .context("connecting krafka")?;
    let producer = kafka
        .producer()
        .acks(if a.acks == "all" {
            Acks::All
        } else {
            Acks::Leader
        })
        .idempotent(a.idempotence)
        .compression(if a.compression == "lz4" {
            Compression::Lz4
        } else {
            Compression::None
        })
        .batch_size(64 * 1024)
        .linger(Duration::from_millis(5))
        .build()
        .await
        .context("creating the krafka producer")?;
    let value = bytes::Bytes::from(payload(a.size));
    let keys = keys(a.keys);
    let record = |i| match key_of(&keys, i) {
        Some(k) => Record::new(a.topic.clone(), value.clone()).key(k.clone()),
        None => Record::new(a.topic.clone(), value.clone()),
    };
    if a.rate.is_some() {
        let _warm_up = producer.send(record(0)).await?;
        started = Instant::now();
    }
    let (tx, rx) = mpsc::channel(PENDING);
    let collect = collector(rx);
    let mut pacer = Pacer::new(a.rate);
    for i in 0..a.records {
        pacer.wait(i).await;
        let sent = Instant::now();
        let d = producer.enqueue(record(i)).await?;
        let d = d.map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
        if tx.send((sent, d)).await.is_err() {
            bail!("the latency collector stopped");
        }
    }
    drop(tx);
    producer.flush().await?;
    let (lat, errors, first) = collect.await?;
    let secs = started.elapsed().as_secs_f64();
    producer.close().await?;
    check_errors(errors, first)?;
    Ok(result(
        lat.len() as u64,
        lat.len() as u64 * a.size as u64,
        secs,
        lat,
    ))
}

/// krafka's read-ahead for a throughput run, as its docs recommend:
/// `max_buffered_records` (default 500) "Raise it to pipeline deeper on high-throughput
/// consumers" (site/content/docs/performance.md, Read-ahead); at 500 it consumed ~7x
/// slower than at 20,000 in a first side-by-side run. `max_poll_records` 10,000 is the
/// "High Throughput Consumer" profile of its configuration guide; the profile's larger
/// fetch sizes (100 MiB / 10 MiB per partition) are left at the defaults every other
/// client here uses (50 MiB / 1 MiB per partition).
pub const KRAFKA_MAX_BUFFERED_RECORDS: i32 = 20_000;
pub const KRAFKA_MAX_POLL_RECORDS: i32 = 10_000;

pub async fn krafka_consume(a: &ConsumeArgs) -> Result<RunResult> {
    use krafka::consumer::AutoOffsetReset;
    use krafka::Kafka;
    if a.tls.ssl() {
        bail!("the krafka client of this harness has no TLS");
    }
    let started = Instant::now();
    let kafka = Kafka::builder(a.bootstrap.as_str())
        .connect()
        .await
        .context("connecting krafka")?;
    let consumer = kafka
        .consumer_without_group()
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(KRAFKA_MAX_POLL_RECORDS)
        .max_buffered_records(KRAFKA_MAX_BUFFERED_RECORDS)
        .build()
        .await
        .context("creating the krafka consumer")?;
    consumer
        .assign(&a.topic, (0..a.partitions).collect())
        .await?;
    for p in 0..a.partitions {
        consumer.seek_to_beginning(&a.topic, p).await?;
    }
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        for r in &records {
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64;
        }
        n += records.len() as u64;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("krafka consume: timed out after {n} records");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    consumer.close().await?;
    Ok(result(n, bytes, secs, Vec::new()))
}
