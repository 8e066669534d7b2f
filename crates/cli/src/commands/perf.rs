//! `sluice perf produce`: a load generator printing what Kafka's own
//! `ProducerPerformance` prints (records/s, MB/s, average, percentile and max latency),
//! so the two can be compared on the same broker with the same settings; `perf consume`
//! (`perf_consume.rs`) does the same for ConsumerPerformance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_wire::cluster::Cluster;
use sluice_wire::producer::{Delivery, Producer, ProducerRecord};
use tokio::sync::mpsc;

use super::produce::ProducerArgs;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Produce generated records as fast as asked and report throughput and latency.
    Produce(ProduceArgs),
    /// Read a topic as fast as possible and report as ConsumerPerformance does.
    Consume(super::perf_consume::ConsumeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    /// The topic to produce to.
    #[arg(long)]
    topic: String,
    /// Records to send.
    #[arg(long)]
    num_records: u64,
    /// Bytes per record value (records have no key, like ProducerPerformance).
    #[arg(long)]
    record_size: usize,
    /// Records per second at most; -1: as fast as possible.
    #[arg(long, allow_hyphen_values = true)]
    throughput: f64,
    #[command(flatten)]
    producer: ProducerArgs,
}

pub(crate) async fn run(
    cluster: &Cluster,
    cmd: Command,
    timeout: Duration,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    match cmd {
        Command::Produce(args) => produce(cluster, args, timeout, settings).await,
        Command::Consume(args) => super::perf_consume::consume(cluster, args, settings).await,
    }
}

/// Per-record latencies (ms) and counters, reported every 5 s and at the end.
struct Stats {
    started: Instant,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_latency_sum: f64,
    window_latency_max: f64,
    latencies: Vec<f32>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Self {
        let now = Instant::now();
        Stats {
            started: now,
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_latency_sum: 0.0,
            window_latency_max: 0.0,
            latencies: Vec::new(),
            bytes: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn record(&mut self, latency: Duration, bytes: usize) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.latencies.push(ms as f32);
        self.bytes += bytes as u64;
        self.window_count += 1;
        self.window_bytes += bytes as u64;
        self.window_latency_sum += ms;
        self.window_latency_max = self.window_latency_max.max(ms);
        if self.window_start.elapsed() >= Duration::from_secs(5) {
            let secs = self.window_start.elapsed().as_secs_f64();
            println!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                self.window_count,
                self.window_count as f64 / secs,
                self.window_bytes as f64 / secs / (1024.0 * 1024.0),
                self.window_latency_sum / self.window_count as f64,
                self.window_latency_max
            );
            self.window_start = Instant::now();
            self.window_count = 0;
            self.window_bytes = 0;
            self.window_latency_sum = 0.0;
            self.window_latency_max = 0.0;
        }
    }

    fn report(mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let n = self.latencies.len();
        self.latencies.sort_by(f32::total_cmp);
        let pct = |p: f64| -> f32 {
            if n == 0 {
                return 0.0;
            }
            let i = ((p * n as f64) as usize).min(n - 1);
            self.latencies[i]
        };
        let avg = self.latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / n.max(1) as f64;
        println!(
            "{n} records sent, {:.1} records/sec ({:.2} MB/sec), {avg:.2} ms avg latency, {:.2} ms max latency, {:.0} ms 50th, {:.0} ms 95th, {:.0} ms 99th, {:.0} ms 99.9th.",
            n as f64 / secs,
            self.bytes as f64 / secs / (1024.0 * 1024.0),
            self.latencies.last().copied().unwrap_or(0.0),
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999),
        );
        if self.errors > 0 {
            println!(
                "{} records failed; first error: {}",
                self.errors,
                self.first_error.unwrap_or_default()
            );
        }
    }
}

async fn produce(
    cluster: &Cluster,
    args: ProduceArgs,
    timeout: Duration,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    let config = args.producer.config(timeout, settings)?;
    let producer = Producer::with_cluster(cluster.clone(), config)?;
    // Printable, like ProducerPerformance's random uppercase payload.
    let payload: Bytes = (0..args.record_size)
        .map(|i| b'A' + (i.wrapping_mul(7919) % 26) as u8)
        .collect::<Vec<u8>>()
        .into();
    let size = args.record_size;

    // A collector task awaits deliveries as they complete, so latencies are measured
    // at completion, not when the send loop gets around to looking.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Delivery)>();
    let collector = tokio::spawn(async move {
        let mut stats = Stats::new();
        let mut pending = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                next = rx.recv(), if open => match next {
                    Some((sent, delivery)) => pending.push(async move { (sent, delivery.await) }),
                    None => open = false,
                },
                Some((sent, result)) = pending.next(), if !pending.is_empty() => {
                    match result {
                        Ok(_) => stats.record(sent.elapsed(), size),
                        Err(e) => {
                            stats.errors += 1;
                            stats.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                else => break,
            }
        }
        stats
    });

    let started = Instant::now();
    let throttle = (args.throughput > 0.0).then_some(args.throughput);
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let mut progress = crate::progress::Progress::new("records sent", Some(args.num_records));
    for i in 0..args.num_records {
        progress.inc(1);
        if let Some(rate) = throttle {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let record = ProducerRecord::new(topic.to_string(), payload.clone());
        let sent = Instant::now();
        let delivery = producer.send(record).await?;
        if tx.send((sent, delivery)).is_err() {
            anyhow::bail!("the latency collector stopped");
        }
    }
    progress.finish();
    drop(tx);
    producer.flush().await;
    let stats = collector.await?;
    producer.close(timeout).await?;
    stats.report();
    Ok(())
}
