//! Helpers for the pipeline tests: input topics with numbered records (some poison), a
//! service that parses them, a stack around it, and reading the outputs back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice::pipeline::breaker::{BreakerConfig, BreakerHandle, BreakerLayer, WindowKind};
use sluice::pipeline::concurrency::{ConcurrencyLayer, Ordering as Order};
use sluice::pipeline::dlq::{headers, DeadLetterLayer};
use sluice::pipeline::retry::{RetryLayer, RetryPolicy};
use sluice::pipeline::runner::ProducerSink;
use sluice::pipeline::{ConsumedRecord, Header, OutputRecord, PipelineError, Processed};
use sluice::wire::admin::{Admin, OffsetSpec};
use sluice::wire::cluster::Cluster;
use sluice::wire::consumer::{Consumer, ConsumerConfig, OffsetReset, TopicPartition};
use sluice::wire::partition_client::{Acks, FetchOptions, IsolationLevel, PartitionClient};
use sluice::wire::producer::{Producer, ProducerConfig};
use sluice::wire::records::{BatchOptions, RecordBatchBuilder, RecordBatches};
use tower::util::BoxService;
use tower::{service_fn, ServiceBuilder};

use crate::common::{self, T, WARMUP};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Is record `i` poison (1 %)?
pub fn is_poison(i: u64) -> bool {
    i % 100 == 42
}

/// A test's cluster and names: a fresh input topic named after `prefix`, its output
/// (`<input>-out`) and group (`<input>-g`), both topics created with `partitions`.
pub async fn setup(prefix: &str, partitions: i32) -> (Cluster, String, String, String) {
    let cluster = common::cluster(&sluice_testkit::bootstrap()).await;
    let input = sluice_testkit::unique_topic(prefix);
    let output = format!("{input}-out");
    let group = format!("{input}-g");
    topics(&cluster, &input, &output, partitions).await;
    (cluster, input, output, group)
}

/// Creates `topic` (with one warm-up record per partition), `<topic>-dlt` and `out`.
pub async fn topics(cluster: &Cluster, input: &str, output: &str, partitions: i32) {
    common::create_topic(cluster, input, partitions).await;
    common::create_topic(cluster, &format!("{input}-dlt"), partitions).await;
    common::create_topic(cluster, output, partitions).await;
}

/// Writes records `from..to` round-robin over the partitions: value `"<i>"`, or
/// `"poison-<i>"` for poison ones, key `"k<i>"`.
pub async fn write_input(cluster: &Cluster, topic: &str, partitions: i32, from: u64, to: u64) {
    write_round_robin(cluster, topic, partitions, from..to, |i| {
        let v = if is_poison(i) {
            format!("poison-{i}")
        } else {
            i.to_string()
        };
        (format!("k{i}"), v)
    })
    .await;
}

/// Writes record `i` of `ids` (key and value from `record(i)`) to partition
/// `i % partitions`, in batches of up to 2000, the partitions in parallel.
async fn write_round_robin(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    record: fn(u64) -> (String, String),
) {
    let now = now_ms();
    let mut handles = Vec::new();
    for p in 0..partitions {
        let client = PartitionClient::new(cluster.clone(), topic, p);
        let ids = ids.clone();
        handles.push(tokio::spawn(async move {
            let mine: Vec<u64> = ids
                .filter(|i| (i % partitions as u64) as i32 == p)
                .collect();
            for chunk in mine.chunks(2000) {
                let mut b = RecordBatchBuilder::new(BatchOptions::default());
                for &i in chunk {
                    let (k, v) = record(i);
                    b.append(now, Some(k.as_bytes()), Some(v.as_bytes()), &[])
                        .unwrap();
                }
                client
                    .produce(b.finish().unwrap(), Acks::All, T)
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Writes `values` in order to one partition, keys `"k<index>"`.
pub async fn write_values(cluster: &Cluster, topic: &str, partition: i32, values: &[String]) {
    let client = PartitionClient::new(cluster.clone(), topic, partition);
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    for (i, v) in values.iter().enumerate() {
        b.append(
            now_ms(),
            Some(format!("k{i}").as_bytes()),
            Some(v.as_bytes()),
            &[],
        )
        .unwrap();
    }
    client
        .produce(b.finish().unwrap(), Acks::All, T)
        .await
        .unwrap();
}

/// One record read back, with its headers.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
}

impl Read {
    pub fn header(&self, name: &str) -> Bytes {
        self.headers
            .iter()
            .find(|h| h.key() == name)
            .and_then(|h| h.value_bytes().cloned())
            .unwrap_or_else(|| panic!("header {name} missing"))
    }
}

/// Every non-warm-up record of every partition of `topic`, up to the high watermarks.
pub async fn read_all(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<Read> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let client = PartitionClient::new(cluster.clone(), topic, p);
        let options = FetchOptions {
            max_bytes: 8 * 1024 * 1024,
            max_wait: Duration::from_millis(10),
            ..FetchOptions::default()
        };
        let mut offset = 0;
        loop {
            let fetched = client.fetch(offset, options).await.unwrap();
            if offset >= fetched.high_watermark {
                break;
            }
            for batch in RecordBatches::new(fetched.records) {
                let Ok(batch) = batch else { break };
                for record in batch.records().unwrap() {
                    let record = record.unwrap();
                    if record.offset() < offset {
                        continue;
                    }
                    offset = record.offset() + 1;
                    if record.value().is_some_and(|v| &v[..] == WARMUP) {
                        continue;
                    }
                    out.push(Read {
                        partition: p,
                        offset: record.offset(),
                        key: record.key().cloned(),
                        value: record.value().cloned(),
                        headers: record.headers().collect(),
                        timestamp: record.timestamp(),
                    });
                }
            }
        }
    }
    out
}

/// The output values as numbers, with how many times each appeared.
pub fn counts(records: &[Read]) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for r in records {
        let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
        *m.entry(v.parse::<u64>().unwrap()).or_insert(0) += 1;
    }
    m
}

#[derive(Debug, thiserror::Error)]
#[error("malformed order: {0:?}")]
pub struct Malformed(pub String);

#[derive(Debug, thiserror::Error)]
#[error("downstream unavailable")]
pub struct Unavailable;

/// What the test service does and counts.
#[derive(Debug, Clone, Default)]
pub struct Downstream {
    /// While set, every call fails retriably (an outage).
    pub down: Arc<AtomicBool>,
    pub calls: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
    /// A delay per call (work in flight for the rebalance test).
    pub slow: Option<Duration>,
    /// Records (by value) that fail retriably on their next calls, with how many calls
    /// are left to fail; each failing call takes `failing_delay` first.
    pub failing: Arc<Mutex<BTreeMap<u64, u32>>>,
    pub failing_delay: Duration,
}

impl Downstream {
    /// Makes record `i` fail retriably on its next `calls` calls.
    pub fn fail(&self, i: u64, calls: u32) {
        self.failing.lock().unwrap().insert(i, calls);
    }
}

/// Parses the value as a number and emits it to `output` (warm-up records: nothing).
pub async fn process(
    record: ConsumedRecord,
    output: Arc<str>,
    downstream: Downstream,
) -> Result<Processed, PipelineError> {
    downstream.calls.fetch_add(1, Ordering::Relaxed);
    let value = record.value.clone().unwrap_or_default();
    if value[..] == *WARMUP {
        return Ok(vec![]);
    }
    let text = String::from_utf8_lossy(&value).into_owned();
    let n: u64 = text
        .parse()
        .map_err(|_| PipelineError::dead_letter(Malformed(text.clone())))?;
    if let Some(d) = downstream.slow {
        tokio::time::sleep(d).await;
    }
    let fails = downstream
        .failing
        .lock()
        .unwrap()
        .get_mut(&n)
        .filter(|left| **left > 0)
        .map(|left| *left -= 1)
        .is_some();
    if fails {
        tokio::time::sleep(downstream.failing_delay).await;
        downstream.failures.fetch_add(1, Ordering::Relaxed);
        return Err(PipelineError::retriable(Unavailable));
    }
    if downstream.down.load(Ordering::Relaxed) {
        downstream.failures.fetch_add(1, Ordering::Relaxed);
        return Err(PipelineError::retriable(Unavailable));
    }
    Ok(vec![record.forward(output, n.to_string())])
}

pub type Stack = BoxService<ConsumedRecord, Processed, PipelineError>;

/// DLQ → breaker → retry → the service, bounded and ordered per partition.
pub fn stack(
    producer: &Producer,
    group: &str,
    output: &str,
    downstream: Downstream,
    breaker: BreakerConfig,
) -> (Stack, BreakerHandle) {
    let breaker = BreakerLayer::new(breaker);
    let handle = breaker.handle();
    let output: Arc<str> = Arc::from(output);
    let svc = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(Order::PerPartition, 256))
        .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(group))
        .layer(breaker)
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(50)),
        ))
        .service(service_fn(move |r| {
            process(r, Arc::clone(&output), downstream.clone())
        }));
    (BoxService::new(svc), handle)
}

/// A breaker that opens quickly and probes after `wait`.
pub fn quick_breaker(wait: Duration) -> BreakerConfig {
    BreakerConfig::new()
        .window(WindowKind::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .wait_in_open(wait)
        .permitted_calls_in_half_open(3)
}

pub async fn producer() -> Producer {
    Producer::new(ProducerConfig::new(sluice_testkit::bootstrap()).linger(Duration::from_millis(5)))
        .await
        .unwrap()
}

pub fn consumer(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(sluice_testkit::bootstrap())
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
        .fetch_max_wait(Duration::from_millis(100))
}

/// Waits until `f` is true, polling every 50 ms, panicking after `within`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, within: Duration, mut f: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `n` order events as `examples/orders_pipeline.rs` generates them (the `i`-th is
/// malformed when `i % 97 == 13`), round-robin over the partitions.
pub async fn write_orders(cluster: &Cluster, topic: &str, partitions: i32, n: u64) {
    write_round_robin(cluster, topic, partitions, 0..n, |i| {
        let v = if i % 97 == 13 {
            format!(r#"{{"order_id":{i},"customer":"c-0001","amou"#)
        } else {
            format!(r#"{{"order_id":{i},"customer":"c-0001","amount_cents":100,"country":"DE"}}"#)
        };
        (format!("order-{i}"), v)
    })
    .await;
}

/// The `order_id`s of enriched orders, with how many times each appeared.
pub fn order_ids(records: &[Read]) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for r in records {
        let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
        let id = v
            .split("\"order_id\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|id| id.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no order_id in {v}"));
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

/// The path of the example binary `name`: `cargo test` builds the examples into
/// `target/<profile>/examples`, beside the test binaries' `deps` directory. Panics when
/// it is missing (`cargo test --test X` alone builds no examples: `cargo build --example
/// name` first).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --example {name}`",
        path.display()
    );
    path
}

/// The `orders_pipeline` example as a worker process reading `input` into `output` in
/// `group` (`cargo test` builds the examples next to the test binaries' directory);
/// exactly-once when `transactional_id` is given.
pub fn orders_worker(
    input: &str,
    output: &str,
    group: &str,
    max_in_flight: usize,
    transactional_id: Option<&str>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(example("orders_pipeline"));
    cmd.env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .env("ORDERS_WORKER", "1")
        .env("ORDERS_INPUT", input)
        .env("ORDERS_OUTPUT", output)
        .env("ORDERS_GROUP", group)
        .env("ORDERS_MAX_IN_FLIGHT", max_in_flight.to_string());
    if let Some(id) = transactional_id {
        cmd.env("ORDERS_TRANSACTIONAL_ID", id);
    }
    cmd
}

/// Starts `worker`, waits (at most 60 s) until `output` holds `at_least` records, read
/// uncommitted, then kills it with SIGKILL.
pub async fn kill_after_outputs(
    worker: &mut std::process::Command,
    cluster: &Cluster,
    output: &str,
    partitions: i32,
    at_least: usize,
) {
    let mut child = worker.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let written = read_all(cluster, output, partitions).await.len();
        if written >= at_least {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {written} outputs before the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Outputs the broker refuses: every 50th input (from 7) makes an output the output topic
/// will never accept.
pub fn is_rejected(i: u64) -> bool {
    i % 50 == 7
}

/// How an output topic refuses the outputs of [`is_rejected`] inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max.message.bytes` 20,000, and those outputs are 30,000 bytes: MESSAGE_TOO_LARGE.
    /// (Above the producer's 16 KB `batch.size`, as the topic limit usually is: a batch
    /// the producer cannot split, between the two sizes, would fail all its records.)
    TooLarge,
    /// `cleanup.policy=compact`, and those outputs have no key: INVALID_RECORD.
    NullKeyOnCompacted,
}

/// Creates the output topic `name` refusing outputs as `refusal` says (no warm-up
/// record: a compacted topic refuses its null key).
pub async fn create_refusing_topic(
    cluster: &Cluster,
    name: &str,
    partitions: i32,
    refusal: Refusal,
) {
    let topic = sluice::wire::admin::NewTopic::new(name, partitions);
    let topic = match refusal {
        Refusal::TooLarge => topic.config("max.message.bytes", "20000"),
        Refusal::NullKeyOnCompacted => topic.config("cleanup.policy", "compact"),
    };
    sluice::wire::admin::Admin::new(cluster.clone())
        .create_topics(&[topic], common::T)
        .await
        .unwrap();
    for _ in 0..100 {
        let md = cluster.refresh(&[name], false).await.unwrap();
        if md.topic(name).is_some_and(|t| {
            t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader.is_some())
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {name} has no leaders");
}

/// The number in an input value (`"<i>"` or `"poison-<i>"`); `None` for warm-ups.
pub fn input_number(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    text.rsplit('-').next()?.parse().ok()
}

/// Calls of the service per input number.
pub type Calls = Arc<Mutex<BTreeMap<u64, u32>>>;

/// Per-partition order around a service that counts its calls per input and answers one
/// output per input to `output`: value `"<i>"`, key `"k<i>"`, except that the outputs of
/// [`is_rejected`] inputs are what `refusal` makes the topic refuse.
pub fn refused_output_stack(output: &str, refusal: Refusal, calls: Calls) -> Stack {
    let output: Arc<str> = Arc::from(output);
    let svc = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(Order::PerPartition, 256))
        .service(service_fn(move |r: ConsumedRecord| {
            let (output, calls) = (Arc::clone(&output), Arc::clone(&calls));
            async move {
                let Some(n) = r.value.as_deref().and_then(input_number) else {
                    return Ok::<Processed, PipelineError>(vec![]);
                };
                *calls.lock().unwrap().entry(n).or_insert(0) += 1;
                let mut out = OutputRecord::new(output, n.to_string()).key(format!("k{n}"));
                if is_rejected(n) {
                    match refusal {
                        Refusal::TooLarge => {
                            out.value = Some(Bytes::from(format!("{n}:{}", "x".repeat(30_000))))
                        }
                        Refusal::NullKeyOnCompacted => out.key = None,
                    }
                }
                Ok(vec![out])
            }
        }));
    BoxService::new(svc)
}

/// Every record of `topic` a `read_committed` consumer sees, up to the last stable
/// offsets, as [`Read`]s (warm-up records left out), in offset order per partition.
pub async fn read_committed(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<Read> {
    let all: Vec<i32> = (0..partitions).collect();
    let ends = Admin::new(cluster.clone())
        .list_offsets_with_isolation(
            topic,
            &all,
            OffsetSpec::Latest,
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
    let consumer = Consumer::new(
        ConsumerConfig::new(sluice_testkit::bootstrap())
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .fetch_max_wait(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let tps: Vec<TopicPartition> = all.iter().map(|&p| TopicPartition::new(topic, p)).collect();
    consumer.assign(tps.clone()).unwrap();
    let mut out = Vec::new();
    loop {
        let done = tps.iter().all(|tp| {
            let end = ends.get(&tp.partition).map_or(0, |o| o.offset);
            consumer.position(tp).is_some_and(|p| p >= end)
        });
        if done {
            break;
        }
        // A trailing commit marker may leave a position one short of the end: the idle
        // timeout ends the read then.
        let Ok(record) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await else {
            break;
        };
        let r = record.unwrap();
        let end = ends.get(&r.partition()).map_or(0, |o| o.offset);
        if r.offset() >= end || r.value().is_some_and(|v| &v[..] == common::WARMUP) {
            continue;
        }
        out.push(Read {
            partition: r.partition(),
            offset: r.offset(),
            key: r.key().cloned(),
            value: r.value().cloned(),
            headers: r.headers().collect(),
            timestamp: r.timestamp(),
        });
    }
    consumer.close().await.unwrap();
    out
}

/// The group's committed offsets of `topic`'s partitions, read with `require_stable`.
pub async fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = Consumer::new(
        ConsumerConfig::new(sluice_testkit::bootstrap())
            .group_id(group)
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let committed = consumer.committed(&tps).await.unwrap();
    committed
        .into_iter()
        .map(|(tp, om)| (tp.partition, om.map_or(-1, |o| o.offset)))
        .collect()
}

pub async fn end_offsets(cluster: &Cluster, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let all: Vec<i32> = (0..partitions).collect();
    Admin::new(cluster.clone())
        .list_offsets(topic, &all, OffsetSpec::Latest)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, o)| (p, o.offset))
        .collect()
}

/// The DLQ records' original (partition, offset)s, with how many times each appeared.
pub fn dead_letter_counts(dlq: &[Read]) -> BTreeMap<(i32, i64), u32> {
    let mut m = BTreeMap::new();
    for r in dlq {
        let p = i32::from_be_bytes(
            r.header(headers::ORIGINAL_PARTITION)[..]
                .try_into()
                .unwrap(),
        );
        let o = i64::from_be_bytes(r.header(headers::ORIGINAL_OFFSET)[..].try_into().unwrap());
        *m.entry((p, o)).or_insert(0) += 1;
    }
    m
}
