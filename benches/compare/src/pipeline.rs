//! The end-to-end scenario: consume every record of an input topic, pass it through a
//! trivial service (the value forwarded unchanged, the key kept), produce it to an output
//! topic and commit the input offsets, at-least-once (commit after the outputs are
//! acknowledged) or exactly-once (outputs and offsets in one transaction).
//!
//! - **sluice**: `sluice-pipeline`'s runner with the full stack a production pipeline
//!   uses: instrumentation (a span and metrics per record, through the `metrics` facade,
//!   no recorder installed), ordered concurrency (per partition, 1,000 in flight),
//!   dead-letter topic, circuit breaker and retries, around `service_fn`;
//!   `stop_at_end(true)` ends it once the input is copied and committed.
//! - **rdkafka**: the loop a user writes by hand on `StreamConsumer` + `FutureProducer`.
//!   At-least-once: every 100 ms it awaits the deliveries of the records sent since the
//!   last commit and then commits the offsets after them (async, the last one sync).
//!   Exactly-once: a transactional producer; every 100 ms `send_offsets_to_transaction`
//!   and `commit_transaction`, as Java's consume-transform-produce loop (and Kafka
//!   Streams' `commit.interval.ms` of 100 ms under exactly-once).
//!
//! Both producers: linger 5 ms, 64 KiB batches, lz4, acks=all with idempotence (the
//! defaults since Kafka 3.0 for the last two). The clock starts before the clients are
//! created and stops when the last offsets are committed. Afterwards the group's committed
//! offsets are read back: they must add up to the input's record count (the input is one
//! non-transactional topic written from offset 0), and the output must hold at least as
//! many records, else the run fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::RunResult;

/// `compare pipeline` arguments.
#[derive(clap::Args, Clone)]
pub struct PipelineArgs {
    /// `sluice` or `rdkafka`.
    #[arg(long)]
    pub client: String,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub input: String,
    #[arg(long)]
    pub output: String,
    /// Records in the input topic: the run ends when all are copied and committed.
    #[arg(long)]
    pub records: u64,
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// The consumer group (fresh per run).
    #[arg(long)]
    pub group: String,
    #[arg(long, action = clap::ArgAction::Set, default_value_t = false)]
    pub exactly_once: bool,
    #[arg(long)]
    pub scenario: Option<String>,
}

/// Sluice's records in flight (admitted and not yet committed), in the runner and in the
/// concurrency layer. At the runner's default, 1,000, a round of 1,000 records waits for
/// its outputs' acknowledgements (acks=all, linger 5 ms) and their commit before the next
/// is admitted: ~23,000 records/s here. The rdkafka loop holds up to librdkafka's
/// `queue.buffering.max.messages` (100,000) unacknowledged, and commits what was
/// delivered every 100 ms. 10,000 is what 100 B records at full speed need; it is also
/// the most records a crash can make the next run process again.
const IN_FLIGHT: usize = 10_000;
/// How often offsets are committed (at-least-once) or transactions committed
/// (exactly-once), for both clients: Sluice's runner default.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(a: &PipelineArgs) -> Result<RunResult> {
    let started = Instant::now();
    let bytes = match a.client.as_str() {
        "sluice" => sluice(a).await?,
        "rdkafka" if a.exactly_once => rdkafka_eos(a).await?,
        "rdkafka" => rdkafka_alo(a).await?,
        other => bail!("the pipeline scenario has no {other} client (sluice or rdkafka)"),
    };
    let secs = started.elapsed().as_secs_f64();
    verify(a).await?;
    Ok(RunResult {
        client: a.client.clone(),
        scenario: a.scenario.clone().unwrap_or_else(|| "pipeline".into()),
        records: a.records,
        bytes,
        secs,
        p50_ms: None,
        p99_ms: None,
        p999_ms: None,
    })
}

/// The group committed every input record, and the output holds at least that many.
async fn verify(a: &PipelineArgs) -> Result<()> {
    use sluice_wire::admin::{Admin, OffsetSpec};
    use sluice_wire::cluster::{Cluster, ClusterConfig};
    use sluice_wire::consumer::{Consumer, ConsumerConfig, TopicPartition};
    let consumer = Consumer::new(ConsumerConfig::new(&a.bootstrap).group_id(&a.group)).await?;
    let parts: Vec<TopicPartition> = (0..a.partitions)
        .map(|p| TopicPartition::new(a.input.clone(), p))
        .collect();
    let committed: i64 = consumer
        .committed(&parts)
        .await?
        .values()
        .map(|o| o.as_ref().map_or(0, |o| o.offset))
        .sum();
    consumer.close().await?;
    if committed != a.records as i64 {
        bail!(
            "the group committed offsets adding up to {committed}, not the input's {}",
            a.records
        );
    }
    let cluster = Cluster::connect(ClusterConfig::new(&a.bootstrap)).await?;
    let ends = Admin::new(cluster)
        .list_offsets(
            &a.output,
            &(0..a.partitions).collect::<Vec<_>>(),
            OffsetSpec::Latest,
        )
        .await?;
    let written: i64 = ends.values().map(|o| o.offset).sum();
    if written < a.records as i64 {
        bail!(
            "the output holds {written} records, fewer than the input's {}",
            a.records
        );
    }
    Ok(())
}

/// Producer settings shared by both clients (Java property names).
const PRODUCER: [(&str, &str); 5] = [
    ("linger.ms", "5"),
    ("batch.size", "65536"),
    ("compression.type", "lz4"),
    ("acks", "all"),
    ("enable.idempotence", "true"),
];

// ---------------------------------------------------------------- Sluice

async fn sluice(a: &PipelineArgs) -> Result<u64> {
    use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
    use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
    use sluice_pipeline::dlq::DeadLetterLayer;
    use sluice_pipeline::metrics::InstrumentLayer;
    use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
    use sluice_pipeline::runner::{Pipeline, ProducerSink};
    use sluice_pipeline::{ConsumedRecord, PipelineError};
    use sluice_wire::consumer::{ConsumerConfig, OffsetReset};
    use sluice_wire::producer::{Producer, ProducerConfig};
    use tower::{service_fn, ServiceBuilder};

    let mut config = ProducerConfig::from_properties(
        [("bootstrap.servers", a.bootstrap.as_str())]
            .into_iter()
            .chain(PRODUCER),
    )?;
    if a.exactly_once {
        config = config.transactional_id(format!("{}-txn", a.group));
    }
    let producer = Producer::new(config).await?;
    let output: Arc<str> = a.output.as_str().into();
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&bytes);
    let forward = service_fn(move |r: ConsumedRecord| {
        let value = r.value.clone().unwrap_or_default();
        counted.fetch_add(value.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let out = r.forward(&output, value);
        async move { Ok::<_, PipelineError>(vec![out]) }
    });
    let stack = ServiceBuilder::new()
        .layer(InstrumentLayer::new().consumer_group(&a.group))
        .layer(ConcurrencyLayer::new(Ordering::PerPartition, IN_FLIGHT))
        .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(&a.group))
        .layer(BreakerLayer::new(BreakerConfig::new()))
        .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
        .service(forward);
    let consumer = ConsumerConfig::new(&a.bootstrap)
        .group_id(&a.group)
        .auto_offset_reset(OffsetReset::Earliest);
    let pipeline = Pipeline::new(consumer, producer.clone(), [a.input.as_str()], stack)
        .stop_at_end(true)
        .max_in_flight(IN_FLIGHT)
        .commit_interval(COMMIT_INTERVAL)
        .exactly_once(a.exactly_once);
    let stats = pipeline.stats();
    pipeline.run().await.context("the Sluice pipeline")?;
    producer.close(Duration::from_secs(30)).await?;
    if stats.completed() != a.records {
        bail!(
            "the pipeline completed {} records, not {}",
            stats.completed(),
            a.records
        );
    }
    Ok(bytes.load(std::sync::atomic::Ordering::Relaxed))
}

// ---------------------------------------------------------------- rdkafka

fn rdkafka_producer(a: &PipelineArgs) -> Result<rdkafka::producer::FutureProducer> {
    let mut config = rdkafka::config::ClientConfig::new();
    config.set("bootstrap.servers", &a.bootstrap);
    for (k, v) in PRODUCER {
        config.set(k, v);
    }
    if a.exactly_once {
        config.set("transactional.id", format!("{}-txn", a.group));
    }
    config.create().context("creating the rdkafka producer")
}

fn rdkafka_consumer(a: &PipelineArgs) -> Result<rdkafka::consumer::StreamConsumer> {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::StreamConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", &a.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the rdkafka consumer")?;
    consumer.subscribe(&[&a.input])?;
    Ok(consumer)
}

/// The next offset of every partition read so far: what a commit stores.
fn offsets_list(topic: &str, next: &BTreeMap<i32, i64>) -> Result<rdkafka::TopicPartitionList> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (&p, &o) in next {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(o))?;
    }
    Ok(tpl)
}

/// The next input record; an error when none comes for 120 s (after `n` records).
async fn rdkafka_recv(
    consumer: &rdkafka::consumer::StreamConsumer,
    n: u64,
) -> Result<rdkafka::message::BorrowedMessage<'_>> {
    tokio::time::timeout(Duration::from_secs(120), consumer.recv())
        .await
        .with_context(|| format!("rdkafka pipeline: no record for 120 s after {n}"))?
        .context("rdkafka pipeline: receiving")
}

/// Sends one output record, waiting while librdkafka's queue is full.
async fn rdkafka_send(
    producer: &rdkafka::producer::FutureProducer,
    output: &str,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<rdkafka::producer::DeliveryFuture> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::Message;
    use rdkafka::producer::FutureRecord;
    loop {
        let mut record = FutureRecord::<[u8], [u8]>::to(output).payload(m.payload().unwrap_or(&[]));
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        match producer.send_result(record) {
            Ok(d) => return Ok(d),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err((e, _)) => bail!("rdkafka send: {e}"),
        }
    }
}

/// At-least-once by hand: consume, send, and every [`COMMIT_INTERVAL`] await the
/// deliveries sent since the last commit, then commit the offsets read before them.
async fn rdkafka_alo(a: &PipelineArgs) -> Result<u64> {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::message::Message;
    let producer = rdkafka_producer(a)?;
    let consumer = rdkafka_consumer(a)?;
    let mut pending = Vec::new();
    let mut next = BTreeMap::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last_commit = Instant::now();
    while n < a.records {
        let m = rdkafka_recv(&consumer, n).await?;
        bytes += m.payload().map_or(0, |v| v.len()) as u64;
        pending.push(rdkafka_send(&producer, &a.output, &m).await?);
        next.insert(m.partition(), m.offset() + 1);
        n += 1;
        let last = n == a.records;
        if last || last_commit.elapsed() >= COMMIT_INTERVAL {
            for d in pending.drain(..) {
                match d.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => bail!("rdkafka delivery: {e}"),
                    Err(_) => bail!("rdkafka delivery canceled"),
                }
            }
            let mode = if last {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            consumer.commit(&offsets_list(&a.input, &next)?, mode)?;
            last_commit = Instant::now();
        }
    }
    Ok(bytes)
}

/// Exactly-once by hand: a transactional producer; every [`COMMIT_INTERVAL`] the
/// consumed offsets join the transaction and it commits (which flushes the outputs).
async fn rdkafka_eos(a: &PipelineArgs) -> Result<u64> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    use rdkafka::producer::Producer;
    let timeout = Duration::from_secs(30);
    let producer = rdkafka_producer(a)?;
    let consumer = rdkafka_consumer(a)?;
    // librdkafka's transactional calls block: keep them off the runtime's other tasks.
    let blocking = |f: &mut dyn FnMut() -> rdkafka::error::KafkaResult<()>| {
        tokio::task::block_in_place(f).context("rdkafka transaction")
    };
    blocking(&mut || producer.init_transactions(timeout))?;
    blocking(&mut || producer.begin_transaction())?;
    let mut next = BTreeMap::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last_commit = Instant::now();
    while n < a.records {
        let m = rdkafka_recv(&consumer, n).await?;
        bytes += m.payload().map_or(0, |v| v.len()) as u64;
        // The delivery future is not awaited: commit_transaction fails if any output did.
        drop(rdkafka_send(&producer, &a.output, &m).await?);
        next.insert(m.partition(), m.offset() + 1);
        n += 1;
        let last = n == a.records;
        if last || last_commit.elapsed() >= COMMIT_INTERVAL {
            let offsets = offsets_list(&a.input, &next)?;
            let group = consumer
                .group_metadata()
                .context("the rdkafka consumer has no group metadata")?;
            blocking(&mut || producer.send_offsets_to_transaction(&offsets, &group, timeout))?;
            blocking(&mut || producer.commit_transaction(timeout))?;
            if !last {
                blocking(&mut || producer.begin_transaction())?;
            }
            last_commit = Instant::now();
        }
    }
    Ok(bytes)
}
