//! The stalled-broker scenario: how much a producer holds when the broker stops
//! answering and the application keeps sending. Every client here bounds what it buffers
//! (32 MiB: `buffer.memory` for Sluice, kacrab and krafka at their defaults,
//! `queue.buffering.max.kbytes` for librdkafka, `MaxBufferedBytes` for franz-go in
//! `go/`); the harness reads the peak RSS, which should stay under that bound plus the
//! client's fixed overhead.
//!
//! ```text
//! compare stall --client sluice|rdkafka|kacrab|krafka --bootstrap B --topic T
//!               [--size 1024] [--seconds 4]
//! ```
//!
//! The handshake with `cargo xtask bench`, on stdin / stdout:
//! 1. the client connects and has one record acknowledged (connections, metadata and the
//!    producer id are in place), then prints `ready`;
//! 2. the harness stops the broker (SIGSTOP) and writes a line to stdin;
//! 3. the client sends acks=all idempotent uncompressed records (so the buffer holds the
//!    bytes as sent) as fast as it takes them for `--seconds`, a send that waits for
//!    buffer space cut off at the end;
//! 4. it prints the result line (`records`: sends it accepted) and exits at once, with
//!    everything still buffered: closing would wait for the stopped broker.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;

use crate::{Client, RunResult};

/// The bound every client is given (or has by default): Java's `buffer.memory` default.
pub const BUFFER_BYTES: usize = 32 * 1024 * 1024;

#[derive(clap::Args, Clone)]
pub struct StallArgs {
    #[arg(long, value_enum)]
    pub client: Client,
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// How long to keep sending once the broker is stopped.
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
    #[arg(long)]
    pub scenario: Option<String>,
}

/// Runs the scenario for `a.client`; prints the result line and exits the process.
pub async fn run(a: &StallArgs) -> Result<()> {
    let accepted = match a.client {
        Client::Sluice => sluice(a).await?,
        Client::Rdkafka => rdkafka(a).await?,
        Client::Kacrab => kacrab(a).await?,
        Client::Krafka => krafka(a).await?,
        other => bail!("{} has no stalled-broker run", other.name()),
    };
    let r = RunResult {
        client: a.client.name().into(),
        scenario: a
            .scenario
            .clone()
            .unwrap_or_else(|| "stalled broker".into()),
        records: accepted,
        bytes: accepted * a.size as u64,
        secs: a.seconds as f64,
        p50_ms: None,
        p99_ms: None,
        p999_ms: None,
    };
    println!("{}", serde_json::to_string(&r)?);
    std::io::stdout().flush()?;
    // Not a clean close: that waits for the stopped broker (up to delivery.timeout.ms).
    std::process::exit(0)
}

/// Prints `ready` and waits for the harness's line: the broker is stopped after it.
/// Returns when the stalled phase ends.
async fn ready() -> Result<Instant> {
    println!("ready");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| ())
    })
    .await?
    .context("waiting for the harness on stdin")?;
    Ok(Instant::now())
}

/// A value of its own for every record, as an application's records have: a client that
/// keeps the caller's buffer (a `Bytes` clone) would otherwise hold one shared value for
/// all of them, and its RSS would not show what it buffers.
fn value(a: &StallArgs) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'v'; a.size])
}

async fn sluice(a: &StallArgs) -> Result<u64> {
    use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", a.bootstrap.as_str()),
        ("acks", "all"),
        ("linger.ms", "5"),
        ("batch.size", "65536"),
    ])?
    .buffer_memory(BUFFER_BYTES);
    let producer = Producer::new(config).await?;
    let topic: Arc<str> = a.topic.as_str().into();
    producer
        .send(ProducerRecord::new(&topic, value(a)))
        .await?
        .await?;
    let end = ready().await? + Duration::from_secs(a.seconds);
    let mut accepted = 0;
    loop {
        let send = producer.send_with(ProducerRecord::new(&topic, value(a)), |_| {});
        match tokio::time::timeout_at(end, send).await {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(e)) => bail!("sluice send: {e}"),
            Err(_) => return Ok(accepted),
        }
    }
}

async fn rdkafka(a: &StallArgs) -> Result<u64> {
    use rdkafka::config::ClientConfig;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "65536")
        // librdkafka's bound in KiB (default 1 GiB), and its count bound (default
        // 100,000) raised so the bytes bind, as they do for the others.
        .set(
            "queue.buffering.max.kbytes",
            (BUFFER_BYTES / 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "10000000")
        .create()
        .context("creating the rdkafka producer")?;
    // librdkafka copies the payload into its queue: one value serves every record.
    let value = value(a);
    let first = FutureRecord::<(), [u8]>::to(&a.topic).payload(&value[..]);
    if let Err((e, _)) = producer.send(first, Duration::from_secs(30)).await {
        bail!("rdkafka first record: {e}");
    }
    let end = ready().await? + Duration::from_secs(a.seconds);
    let mut accepted = 0;
    while Instant::now() < end {
        let record = FutureRecord::<(), [u8]>::to(&a.topic).payload(&value[..]);
        match producer.send_result(record) {
            // The delivery future is dropped: the record stays queued.
            Ok(_) => accepted += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err((e, _)) => bail!("rdkafka send: {e}"),
        }
    }
    Ok(accepted)
}

async fn kacrab(a: &StallArgs) -> Result<u64> {
    use kacrab::producer::{Producer, ProducerError, ProducerRecord};
    use kacrab::wire::WireError;
    let producer = Producer::builder()
        .set("bootstrap.servers", a.bootstrap.as_str())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "65536")
        .set("buffer.memory", BUFFER_BYTES.to_string())
        .build()
        .await
        .context("creating the kacrab producer")?;
    let topic: Arc<str> = a.topic.as_str().into();
    let record = || ProducerRecord::topic_value(Arc::clone(&topic), value(a));
    producer.send(record())?.await?;
    let end = ready().await? + Duration::from_secs(a.seconds);
    let mut accepted = 0;
    while Instant::now() < end {
        match producer.send(record()) {
            Ok(_delivery) => accepted += 1,
            // Its buffer (or a connection's queue) is full: it does not block.
            Err(ProducerError::Backpressure | ProducerError::Wire(WireError::Backpressure)) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(e) => bail!("kacrab send: {e}"),
        }
    }
    Ok(accepted)
}

async fn krafka(a: &StallArgs) -> Result<u64> {
    use krafka::producer::Acks;
    use krafka::{Kafka, Record};
    let kafka = Kafka::builder(a.bootstrap.as_str())
        .connect()
        .await
        .context("connecting krafka")?;
    let producer = kafka
        .producer()
        .acks(Acks::All)
        .idempotent(true)
        .batch_size(64 * 1024)
        .linger(Duration::from_millis(5))
        .buffer_memory(BUFFER_BYTES)
        .build()
        .await
        .context("creating the krafka producer")?;
    let record = || Record::new(a.topic.clone(), value(a));
    let _first = producer.send(record()).await?;
    let end = ready().await? + Duration::from_secs(a.seconds);
    let mut accepted = 0;
    loop {
        match tokio::time::timeout_at(end, producer.enqueue(record())).await {
            // The acknowledgement future is dropped: the record stays buffered.
            Ok(Ok(_ack)) => accepted += 1,
            Ok(Err(e)) => bail!("krafka send: {e}"),
            Err(_) => return Ok(accepted),
        }
    }
}
