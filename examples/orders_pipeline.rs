//! The demo that `cargo xtask demo` runs: an order-enrichment pipeline on the Kafka at
//! `SLUICE_BOOTSTRAP`.
//!
//! It creates `orders-<n>` (4 partitions), its dead-letter topic `orders-<n>-dlt` and
//! `orders-<n>-enriched`, writes 200,000 synthetic order events (`ORDERS_COUNT` to change
//! it; about 1 % malformed), then runs a [`Pipeline`]: parse → call a flaky "downstream"
//! (fails 2 % of calls at random, and has a 20-second outage once 60,000 orders are
//! through) → encode → produce the enriched event. Malformed orders go to the DLQ; the
//! outage opens the breaker, the partitions pause, and the flow resumes afterwards. It
//! shows progress, serves Prometheus metrics on <http://127.0.0.1:9464/metrics>, and
//! finally decodes the output and checks input = output + dead-lettered, each output
//! equal to its order enriched (exit status 1 if not), and prints one DLQ record's
//! headers.
//!
//! The output is Avro when `SLUICE_REGISTRY_URL` is set (`cargo xtask demo` starts a
//! registry): the pipeline's `EncodeLayer` registers the schema under
//! `orders-<n>-enriched-value` on the first record and frames every value with its id;
//! the summary prints the subject, the id and the registry client's HTTP requests (one
//! per distinct schema, however many records), and the check decodes the output through
//! the registry with a client of its own. Without a registry, or with
//! `ORDERS_OUTPUT_FORMAT=json`, the output is JSON text (see `orders_pipeline/output.rs`).
//!
//! With `ORDERS_WORKER=1` it is a plain worker instead (used by the crash test): no
//! setup, no outage, no random failures, no progress or metrics; it reads
//! `ORDERS_INPUT` in group `ORDERS_GROUP`, writes `ORDERS_OUTPUT`, admits at most
//! `ORDERS_MAX_IN_FLIGHT` (default 500) uncommitted records, and runs until SIGINT or
//! SIGTERM (or SIGKILL). With `ORDERS_INSTANCE_ID` set (the demo reads it too) its
//! consumer is a static member with that `group.instance.id`: restarted within the
//! session timeout, it gets its partitions back without a rebalance. With
//! `ORDERS_TRANSACTIONAL_ID` set it runs exactly-once: its
//! producer gets that `transactional.id` and the input offsets commit inside its
//! transactions. A worker writes JSON unless `ORDERS_OUTPUT_FORMAT=avro`.

#[path = "orders_pipeline/output.rs"]
mod output;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice::pipeline::breaker::{BreakerConfig, BreakerHandle, BreakerLayer, WindowKind};
use sluice::pipeline::concurrency::{ConcurrencyLayer, Ordering as Order};
use sluice::pipeline::dlq::{headers, DeadLetterLayer};
use sluice::pipeline::metrics::InstrumentLayer;
use sluice::pipeline::retry::{RetryLayer, RetryPolicy};
use sluice::pipeline::runner::{Pipeline, PipelineStats, ProducerSink, RunError, Shutdown};
use sluice::pipeline::{ConsumedRecord, Header, PipelineError, Processed};
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{ConsumerConfig, OffsetReset};
use sluice::wire::partition_client::{FetchOptions, PartitionClient};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::records::RecordBatches;
use sluice_pipeline::schema::encode::{EncodeLayer, Produce};
use tower::{service_fn, ServiceBuilder};

use output::{Enriched, Format, OrderEncoder};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Orders the demo writes unless `ORDERS_COUNT` says.
const DEFAULT_ORDERS: u64 = 200_000;
const PARTITIONS: i32 = 4;
const OUTAGE_AFTER: u64 = 60_000;
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let bootstrap = std::env::var("SLUICE_BOOTSTRAP")
        .map_err(|_| "set SLUICE_BOOTSTRAP=host:port, or run `cargo xtask demo`")?;
    if std::env::var("ORDERS_WORKER").is_ok_and(|v| v == "1") {
        return worker(&bootstrap).await;
    }
    demo(&bootstrap).await
}

/// What the "downstream" service does and counts.
#[derive(Debug, Clone, Default)]
struct Downstream {
    /// While set, every call fails (the outage).
    down: Arc<AtomicBool>,
    /// Share of calls that fail at random, in percent.
    flaky_percent: u64,
    failures: Arc<AtomicU64>,
    dead_lettered: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed order: {0}")]
struct Malformed(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("customer service unavailable")]
struct Unavailable;

/// One order event as the generator writes it; the `i`-th is malformed when `i % 97 == 13`
/// (about 1 %).
fn order_event(i: u64) -> String {
    let customer = i * 7919 % 5000;
    let amount = 500 + i * 104_729 % 20_000;
    let country = ["DE", "FR", "NL", "PL", "SE"][(i % 5) as usize];
    if i % 97 == 13 {
        // Cut short, as a crashed writer would leave it.
        return format!(r#"{{"order_id":{i},"customer":"c-{customer:04}","amou"#);
    }
    format!(
        r#"{{"order_id":{i},"customer":"c-{customer:04}","amount_cents":{amount},"country":"{country}"}}"#
    )
}

/// The raw text of field `name` in the flat JSON object `s` (numbers and plain strings).
fn field<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let start = s.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &s[start..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim_matches('"'))
}

/// The order event `text` parsed, with its customer's tier: what the pipeline produces
/// for it (the check recomputes it from [`order_event`]). Also reads the JSON output.
fn enriched(text: &str) -> Option<Enriched> {
    let order_id: i64 = field(text, "order_id")?.parse().ok()?;
    let customer = field(text, "customer")?;
    let amount_cents: i64 = field(text, "amount_cents")?.parse().ok()?;
    let country = field(text, "country")?;
    if !text.ends_with('}') {
        return None;
    }
    // The "customer service" answer, stood in for by a hash of the customer.
    let tier = ["bronze", "silver", "gold"]
        [(customer.len() + customer.bytes().map(u64::from).sum::<u64>() as usize) % 3];
    Some(Enriched {
        order_id,
        customer: customer.to_string(),
        amount_cents,
        country: country.to_string(),
        tier: tier.to_string(),
    })
}

/// Parse, ask the downstream for the customer's tier, emit the enriched order (encoded
/// by the `EncodeLayer` around this service).
async fn enrich(
    record: ConsumedRecord,
    output: Arc<str>,
    downstream: Downstream,
) -> Result<Vec<Produce<Enriched>>, PipelineError> {
    let value = record.value.clone().unwrap_or_default();
    // Not UTF-8 parses as nothing, and is dead-lettered below.
    let text = std::str::from_utf8(&value).unwrap_or_default();
    let Some(order) = enriched(text) else {
        downstream.dead_lettered.fetch_add(1, Ordering::Relaxed);
        return Err(PipelineError::dead_letter(Malformed(
            "missing or bad fields",
        )));
    };
    // The flaky downstream: a customer-tier lookup.
    tokio::task::yield_now().await;
    let flaky = downstream.flaky_percent > 0 && rand_percent() < downstream.flaky_percent;
    if downstream.down.load(Ordering::Relaxed) || flaky {
        downstream.failures.fetch_add(1, Ordering::Relaxed);
        return Err(PipelineError::retriable(Unavailable));
    }
    let mut out = Produce::new(&output, order);
    out.record.key = record.key.clone();
    Ok(vec![out])
}

fn rand_percent() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = Cell::new(
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1));
    STATE.with(|s| {
        // xorshift64: enough randomness for a flaky demo service.
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % 100
    })
}

/// The stack: metrics → bounded, per-partition order → DLQ → breaker → retry → encode →
/// enrich.
fn build(
    producer: &Producer,
    group: &str,
    output: &str,
    encoder: OrderEncoder,
    downstream: Downstream,
) -> (
    impl tower::Service<
            ConsumedRecord,
            Response = Processed,
            Error = PipelineError,
            Future = impl Send + 'static,
        > + Send
        + 'static,
    BreakerHandle,
) {
    let breaker = BreakerLayer::new(
        BreakerConfig::new()
            .name("customer-service")
            .window(WindowKind::Count(50))
            .minimum_calls(20)
            .failure_rate_threshold(0.5)
            .wait_in_open(Duration::from_secs(2))
            .permitted_calls_in_half_open(5),
    );
    let handle = breaker.handle();
    let output: Arc<str> = Arc::from(output);
    let stack = ServiceBuilder::new()
        .layer(InstrumentLayer::new().consumer_group(group))
        .layer(ConcurrencyLayer::new(Order::PerPartition, 256))
        .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(group))
        .layer(breaker)
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(3)
                .initial_delay(Duration::from_millis(10))
                .max_delay(Duration::from_millis(100)),
        ))
        // Inside retry and breaker: a registry outage is retriable, a value that does not
        // fit the schema a dead letter (`sluice_pipeline::schema`).
        .layer(EncodeLayer::new(encoder))
        .service(service_fn(move |r| {
            enrich(r, Arc::clone(&output), downstream.clone())
        }));
    (stack, handle)
}

fn consumer(bootstrap: &str, group: &str) -> ConsumerConfig {
    let config = ConsumerConfig::new(bootstrap)
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
        .fetch_max_wait(Duration::from_millis(100));
    // Static membership (KIP-345, `group.instance.id`): a crashed instance restarted
    // with the same id within the session timeout gets its partitions back at once, with
    // no rebalance. Without one, its partitions wait out the session timeout (6 s here,
    // 45 s by default) before a rebalance gives them to anyone. Use one id per instance,
    // stable across its restarts (a pod name); see the runner's docs.
    match std::env::var("ORDERS_INSTANCE_ID") {
        Ok(id) if !id.trim().is_empty() => config.group_instance_id(id),
        _ => config,
    }
}

async fn worker(bootstrap: &str) -> Result<(), Error> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("worker mode needs {k}"));
    let (input, output, group) = (
        var("ORDERS_INPUT")?,
        var("ORDERS_OUTPUT")?,
        var("ORDERS_GROUP")?,
    );
    let bound = std::env::var("ORDERS_MAX_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let transactional_id = std::env::var("ORDERS_TRANSACTIONAL_ID").ok();
    let mut config = ProducerConfig::new(bootstrap);
    if let Some(id) = &transactional_id {
        config = config.transactional_id(id.clone());
    }
    let producer = Producer::new(config).await?;
    let encoder = Format::from_env(true)?.encoder()?;
    let (stack, _) = build(&producer, &group, &output, encoder, Downstream::default());
    let outcome = Pipeline::new(
        consumer(bootstrap, &group),
        producer.clone(),
        [input],
        stack,
    )
    .max_in_flight(bound)
    .exactly_once(transactional_id.is_some())
    .shutdown(Shutdown::on_signals())
    .run()
    .await;
    // A second SIGINT/SIGTERM: the library stopped without draining; exiting is ours.
    if let Err(RunError::Interrupted) = outcome {
        std::process::exit(130);
    }
    outcome?;
    producer.close(Duration::from_secs(10)).await?;
    Ok(())
}

async fn demo(bootstrap: &str) -> Result<(), Error> {
    let orders: u64 = match std::env::var("ORDERS_COUNT") {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| format!("ORDERS_COUNT={v:?}: {e}"))?,
        Err(_) => DEFAULT_ORDERS,
    };
    let format = Format::from_env(false)?;
    let encoder = format.encoder()?;
    let cluster = Cluster::connect(ClusterConfig::new(bootstrap).client_id("sluice-demo")).await?;
    let n = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let input = format!("orders-{n}");
    let (dlq, output, group) = (
        format!("{input}-dlt"),
        format!("{input}-enriched"),
        format!("{input}-enricher"),
    );
    let admin = Admin::new(cluster.clone());
    let topics: Vec<NewTopic> = [&input, &dlq, &output]
        .iter()
        .map(|t| NewTopic::new(t.as_str(), PARTITIONS))
        .collect();
    admin
        .create_topics(&topics, Duration::from_secs(30))
        .await?;
    println!("created {input}, {dlq} and {output} ({PARTITIONS} partitions each)");
    println!("output format: {}", format.describe());

    match metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(([127, 0, 0, 1], 9464))
        .install()
    {
        Ok(()) => {
            sluice::pipeline::metrics::describe();
            println!("Prometheus metrics on http://127.0.0.1:9464/metrics");
        }
        Err(e) => println!("no Prometheus endpoint ({e})"),
    }

    let producer =
        Producer::new(ProducerConfig::new(bootstrap).linger(Duration::from_millis(10))).await?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(orders as usize);
    for i in 0..orders {
        let record = ProducerRecord::new(input.clone(), order_event(i)).key(format!("order-{i}"));
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        d.await?;
    }
    let malformed = (0..orders).filter(|i| i % 97 == 13).count();
    println!(
        "wrote {orders} order events ({malformed} malformed) in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let downstream = Downstream {
        flaky_percent: 2,
        ..Downstream::default()
    };
    let (stack, breaker) = build(&producer, &group, &output, encoder, downstream.clone());
    let pipeline = Pipeline::new(
        consumer(bootstrap, &group),
        producer.clone(),
        [input.clone()],
        stack,
    )
    .max_in_flight(1000)
    .shutdown(Shutdown::on_signals());
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    // A short run still sees the outage.
    let outage_after = OUTAGE_AFTER.min(orders / 3);
    println!("running the pipeline: parse → flaky customer service (20 s outage after {outage_after} orders) → encode → {output}");
    let run = tokio::spawn(pipeline.run());
    let started = Instant::now();
    let finished = progress(
        &stats,
        &breaker,
        &downstream,
        (orders, malformed as u64, outage_after),
        &stop,
    )
    .await;
    stop.cancel();
    let outcome = run.await?;
    if let Err(RunError::Interrupted) = outcome {
        // A second Ctrl-C: the pipeline stopped without draining; exiting is ours.
        std::process::exit(130);
    }
    outcome?;
    println!();
    println!(
        "pipeline stopped after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !finished {
        return Err("interrupted before every order was handled".into());
    }
    summary(
        &cluster,
        &format,
        (&input, &output, &dlq),
        orders,
        malformed,
    )
    .await?;
    producer.close(Duration::from_secs(10)).await?;
    Ok(())
}

/// Prints a progress line until every order is handled (then `true`) or the pipeline is
/// asked to stop (`false`); starts the outage after `outage_after` orders and ends it.
async fn progress(
    stats: &PipelineStats,
    breaker: &BreakerHandle,
    downstream: &Downstream,
    (orders, malformed, outage_after): (u64, u64, u64),
    stop: &Shutdown,
) -> bool {
    let good = orders - malformed;
    let mut outage: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tick.tick() => {}
        }
        let done = stats.completed();
        match outage {
            None if done >= outage_after => {
                downstream.down.store(true, Ordering::SeqCst);
                outage = Some(Instant::now());
                println!("\n>>> customer service outage begins (20 s)");
            }
            Some(t) if t.elapsed() >= OUTAGE && downstream.down.load(Ordering::SeqCst) => {
                downstream.down.store(false, Ordering::SeqCst);
                println!("\n>>> customer service back");
            }
            _ => {}
        }
        print!(
            "\rprocessed {:>7}  retried {:>6}  dead-lettered {:>5}  lag {:>7}  breaker {:<9} {}   ",
            done,
            downstream.failures.load(Ordering::Relaxed),
            downstream.dead_lettered.load(Ordering::Relaxed),
            stats.lag(),
            format!("{:?}", breaker.state()),
            if stats.is_paused() { "(paused)" } else { "" },
        );
        let _ = std::io::stdout().flush();
        // Every order is handled once `completed` covers them all and nothing is
        // behind: the lag is measured against commits.
        if done >= good + malformed
            && stats.lag() == 0
            && outage.is_some()
            && !downstream.down.load(Ordering::SeqCst)
        {
            return true;
        }
    }
}

/// Every record of `topic` (all partitions) as (partition, offset, value, headers).
async fn read_topic(
    cluster: &Cluster,
    topic: &str,
) -> Result<Vec<(i32, i64, Option<Bytes>, Vec<Header>)>, Error> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let client = PartitionClient::new(cluster.clone(), topic, p);
        let options = FetchOptions {
            max_bytes: 8 * 1024 * 1024,
            max_wait: Duration::from_millis(10),
            ..FetchOptions::default()
        };
        let mut offset = 0;
        loop {
            let fetched = client.fetch(offset, options).await?;
            if offset >= fetched.high_watermark {
                break;
            }
            for batch in RecordBatches::new(fetched.records) {
                let Ok(batch) = batch else { break };
                for record in batch.records()? {
                    let record = record?;
                    if record.offset() < offset {
                        continue;
                    }
                    offset = record.offset() + 1;
                    let headers = record.headers().collect();
                    out.push((p, record.offset(), record.value().cloned(), headers));
                }
            }
        }
    }
    Ok(out)
}

/// Decodes the output (through the registry if it is Avro), prints the figures and one
/// dead letter, and checks input = output + dead-lettered, every output equal to its
/// order enriched.
async fn summary(
    cluster: &Cluster,
    format: &Format,
    (input, output, dlq): (&str, &str, &str),
    orders: u64,
    malformed: usize,
) -> Result<(), Error> {
    let outputs = read_topic(cluster, output).await?;
    let values: Vec<Option<Bytes>> = outputs.iter().map(|(_, _, v, _)| v.clone()).collect();
    let decoded = output::decode(format, output, &values, enriched).await?;
    match &decoded.avro {
        Some(a) => {
            println!(
                "output {output}: Avro, subject {}, schema id {} (version {}); schema ids \
                 in its records: {:?}",
                a.subject, a.id, a.version, a.ids_in_records
            );
            println!(
                "registry HTTP requests: {} by the pipeline's client for {} records of 1 \
                 distinct schema; {} by the check's own client to decode them (by id)",
                a.pipeline_requests,
                outputs.len(),
                a.check_requests
            );
        }
        None => println!("output {output}: JSON text"),
    }
    let (undecodable, first_error) = &decoded.undecodable;
    if let Some(e) = first_error {
        println!("{undecodable} output records did not decode; the first: {e}");
    }
    // Each output is its input order enriched; a malformed order's id has no output.
    let wrong = decoded
        .orders
        .iter()
        .filter(|o| {
            let expected = u64::try_from(o.order_id)
                .ok()
                .filter(|&i| i < orders)
                .and_then(|i| enriched(&order_event(i)));
            expected.as_ref() != Some(*o)
        })
        .count();
    let ids: BTreeSet<i64> = decoded.orders.iter().map(|o| o.order_id).collect();
    let dead = read_topic(cluster, dlq).await?;
    // A record may be dead-lettered twice when a retriable failure before it rewound its
    // partition: count the originals (partition, offset) once.
    let originals: BTreeSet<(Bytes, Bytes)> = dead
        .iter()
        .filter_map(|(_, _, _, h)| {
            let get = |name: &str| {
                h.iter()
                    .find(|h| h.key() == name)
                    .and_then(|h| h.value_bytes().cloned())
            };
            Some((
                get(headers::ORIGINAL_PARTITION)?,
                get(headers::ORIGINAL_OFFSET)?,
            ))
        })
        .collect();
    let duplicates = outputs.len() - ids.len();
    println!(
        "input {orders}: output {} distinct orders ({} records, {duplicates} duplicates, \
         {wrong} not equal to their order enriched), dead-lettered {} distinct ({} records; \
         {malformed} malformed were written)",
        ids.len(),
        outputs.len(),
        originals.len(),
        dead.len()
    );
    if let Some((p, offset, value, headers)) = dead.first() {
        println!(
            "one dead letter ({dlq}-{p}@{offset}): {}",
            String::from_utf8_lossy(value.as_deref().unwrap_or_default())
        );
        for header in headers {
            let (k, v) = (header.key(), header.value().unwrap_or_default());
            let shown = match k {
                headers::ORIGINAL_PARTITION if v.len() == 4 => {
                    i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
                }
                headers::ORIGINAL_OFFSET | headers::ORIGINAL_TIMESTAMP if v.len() == 8 => {
                    i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]).to_string()
                }
                headers::ATTEMPT if v.len() == 4 => {
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
                }
                _ => String::from_utf8_lossy(v).into_owned(),
            };
            println!("  {k}: {shown}");
        }
    }
    let one_schema = decoded
        .avro
        .as_ref()
        .is_none_or(|a| a.ids_in_records.iter().eq([&a.id]));
    if ids.len() + originals.len() == orders as usize
        && wrong == 0
        && *undecodable == 0
        && one_schema
    {
        println!(
            "check passed: input {input} ({orders}) = output ({}, decoded, each its order \
             enriched) + dead-lettered ({})",
            ids.len(),
            originals.len()
        );
        Ok(())
    } else {
        Err(format!(
            "check FAILED: input {input} ({orders}) vs output ({}; {wrong} wrong, \
             {undecodable} undecodable, one schema id: {one_schema}) + dead-lettered ({})",
            ids.len(),
            originals.len()
        )
        .into())
    }
}
