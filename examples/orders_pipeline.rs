//! The demo that `cargo xtask demo` runs: an order-enrichment pipeline on the Kafka at
//! `SLUICE_BOOTSTRAP`.
//!
//! It creates `orders-<n>` (4 partitions), its dead-letter topic `orders-<n>-dlt` and
//! `orders-<n>-enriched`, writes 200,000 synthetic order events (about 1 % malformed),
//! then runs a [`Pipeline`]: parse → call a flaky "downstream" (fails 2 % of calls at
//! random, and has a 20-second outage once 60,000 orders are through) → produce the
//! enriched event. Malformed orders go to the DLQ; the outage opens the breaker, the
//! partitions pause, and the flow resumes afterwards. It shows progress, serves
//! Prometheus metrics on <http://127.0.0.1:9464/metrics>, and finally checks
//! input = output + dead-lettered (exit status 1 if not) and prints one DLQ record's
//! headers.
//!
//! With `ORDERS_WORKER=1` it is a plain worker instead (used by the crash test): no
//! setup, no outage, no random failures, no progress or metrics; it reads
//! `ORDERS_INPUT` in group `ORDERS_GROUP`, writes `ORDERS_OUTPUT`, admits at most
//! `ORDERS_MAX_IN_FLIGHT` (default 500) uncommitted records, and runs until SIGINT or
//! SIGTERM (or SIGKILL). With `ORDERS_TRANSACTIONAL_ID` set it runs exactly-once: its
//! producer gets that `transactional.id` and the input offsets commit inside its
//! transactions.

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
use sluice::pipeline::{ConsumedRecord, OutputRecord, PipelineError, Processed};
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{ConsumerConfig, OffsetReset};
use sluice::wire::partition_client::{FetchOptions, PartitionClient};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::records::RecordBatches;
use tower::{service_fn, ServiceBuilder};

type Error = Box<dyn std::error::Error + Send + Sync>;

const ORDERS: u64 = 200_000;
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

/// Parse, ask the downstream for the customer's tier, emit the enriched order.
async fn enrich(
    record: ConsumedRecord,
    output: Arc<str>,
    downstream: Downstream,
) -> Result<Processed, PipelineError> {
    let value = record.value.clone().unwrap_or_default();
    // Not UTF-8 parses as nothing, and is dead-lettered below.
    let text = std::str::from_utf8(&value).unwrap_or_default();
    let parsed = (|| {
        let id: u64 = field(text, "order_id")?.parse().ok()?;
        let customer = field(text, "customer")?;
        let amount: u64 = field(text, "amount_cents")?.parse().ok()?;
        let country = field(text, "country")?;
        text.ends_with('}')
            .then_some((id, customer, amount, country))
    })();
    let Some((id, customer, amount, country)) = parsed else {
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
    let tier = ["bronze", "silver", "gold"]
        [(customer.len() + customer.bytes().map(u64::from).sum::<u64>() as usize) % 3];
    let enriched = format!(
        r#"{{"order_id":{id},"customer":"{customer}","amount_cents":{amount},"country":"{country}","tier":"{tier}"}}"#
    );
    let mut out = OutputRecord::new(output.to_string()).with_value(Bytes::from(enriched));
    out.key = record.key.clone();
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

/// The stack: metrics → bounded, per-partition order → DLQ → breaker → retry → enrich.
fn build(
    producer: &Producer,
    group: &str,
    output: &str,
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
        .service(service_fn(move |r| {
            enrich(r, Arc::clone(&output), downstream.clone())
        }));
    (stack, handle)
}

fn consumer(bootstrap: &str, group: &str) -> ConsumerConfig {
    ConsumerConfig::new(bootstrap)
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
        .fetch_max_wait(Duration::from_millis(100))
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
    let (stack, _) = build(&producer, &group, &output, Downstream::default());
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
    let mut deliveries = Vec::with_capacity(ORDERS as usize);
    for i in 0..ORDERS {
        let record = ProducerRecord::new(input.clone(), order_event(i)).key(format!("order-{i}"));
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        d.await?;
    }
    let malformed = (0..ORDERS).filter(|i| i % 97 == 13).count();
    println!(
        "wrote {ORDERS} order events ({malformed} malformed) in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let downstream = Downstream {
        flaky_percent: 2,
        ..Downstream::default()
    };
    let (stack, breaker) = build(&producer, &group, &output, downstream.clone());
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
    println!("running the pipeline: parse → flaky customer service (20 s outage after {OUTAGE_AFTER} orders) → {output}");
    let run = tokio::spawn(pipeline.run());
    let started = Instant::now();
    let finished = progress(&stats, &breaker, &downstream, malformed as u64, &stop).await;
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
    summary(&cluster, &input, &output, &dlq, malformed).await?;
    producer.close(Duration::from_secs(10)).await?;
    Ok(())
}

/// Prints a progress line until every order is handled (then `true`) or the pipeline is
/// asked to stop (`false`); starts and ends the outage.
async fn progress(
    stats: &PipelineStats,
    breaker: &BreakerHandle,
    downstream: &Downstream,
    malformed: u64,
    stop: &Shutdown,
) -> bool {
    let good = ORDERS - malformed;
    let mut outage: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tick.tick() => {}
        }
        let done = stats.completed();
        match outage {
            None if done >= OUTAGE_AFTER => {
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
) -> Result<Vec<(i32, i64, Option<Bytes>, Vec<(String, Option<Bytes>)>)>, Error> {
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
                    let headers = record
                        .headers()
                        .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
                        .collect();
                    out.push((p, record.offset(), record.value().cloned(), headers));
                }
            }
        }
    }
    Ok(out)
}

async fn summary(
    cluster: &Cluster,
    input: &str,
    output: &str,
    dlq: &str,
    malformed: usize,
) -> Result<(), Error> {
    let outputs = read_topic(cluster, output).await?;
    let ids: BTreeSet<u64> = outputs
        .iter()
        .filter_map(|(_, _, v, _)| {
            let v = std::str::from_utf8(v.as_deref()?).ok()?;
            field(v, "order_id")?.parse().ok()
        })
        .collect();
    let dead = read_topic(cluster, dlq).await?;
    // A record may be dead-lettered twice when a retriable failure before it rewound its
    // partition: count the originals (partition, offset) once.
    let originals: BTreeSet<(Bytes, Bytes)> = dead
        .iter()
        .filter_map(|(_, _, _, h)| {
            let get = |name: &str| {
                h.iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.clone())
            };
            Some((
                get(headers::ORIGINAL_PARTITION)?,
                get(headers::ORIGINAL_OFFSET)?,
            ))
        })
        .collect();
    let duplicates = outputs.len() - ids.len();
    println!(
        "input {ORDERS}: output {} distinct orders ({} records, {duplicates} duplicates), \
         dead-lettered {} distinct ({} records; {malformed} malformed were written)",
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
        for (k, v) in headers {
            let v = v.clone().unwrap_or_default();
            let shown = match k.as_str() {
                headers::ORIGINAL_PARTITION if v.len() == 4 => {
                    i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
                }
                headers::ORIGINAL_OFFSET | headers::ORIGINAL_TIMESTAMP if v.len() == 8 => {
                    i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]).to_string()
                }
                headers::ATTEMPT if v.len() == 4 => {
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
                }
                _ => String::from_utf8_lossy(&v).into_owned(),
            };
            println!("  {k}: {shown}");
        }
    }
    if ids.len() + originals.len() == ORDERS as usize {
        println!(
            "check passed: input {input} ({ORDERS}) = output ({}) + dead-lettered ({})",
            ids.len(),
            originals.len()
        );
        Ok(())
    } else {
        Err(format!(
            "check FAILED: input {input} ({ORDERS}) != output ({}) + dead-lettered ({})",
            ids.len(),
            originals.len()
        )
        .into())
    }
}
