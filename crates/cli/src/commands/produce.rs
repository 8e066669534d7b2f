//! `sluice produce`: one record per line of standard input, through the batching
//! [`Producer`] of `sluice-wire`.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_wire::admin::{Admin, ConfigResource};
use sluice_wire::cluster::Cluster;
use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice_wire::records::Compression;
use sluice_wire::types::Acks;
use sluice_wire::{Header, KafkaCode};

/// Producer settings shared by `produce` and `perf produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProducerArgs {
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, short = 'z', default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// acks: 0, 1 or all (-1).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// linger.ms: how long a batch waits for more records.
    #[arg(long)]
    linger_ms: Option<u64>,
    /// batch.size in bytes.
    #[arg(long)]
    batch_size: Option<usize>,
}

impl ProducerArgs {
    /// The producer config these flags describe, with the `-F` / `-X` producer keys
    /// applied after them.
    pub(crate) fn config(
        &self,
        timeout: Duration,
        settings: &[(String, String)],
    ) -> anyhow::Result<ProducerConfig> {
        let mut config = ProducerConfig::default()
            .client_id("sluice-cli")
            .acks(self.acks)
            .compression(self.compression)
            .request_timeout(timeout)
            .delivery_timeout(timeout.max(Duration::from_secs(120)));
        if let Some(ms) = self.linger_ms {
            config = config.linger(Duration::from_millis(ms));
        }
        if let Some(size) = self.batch_size {
            config = config.batch_size(size);
        }
        for (k, v) in settings {
            config.set(k, v)?;
        }
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topic to produce to.
    topic: String,
    /// Split each line at the first occurrence of this character into key and value;
    /// a line without it has no key.
    #[arg(long, short = 'K')]
    key_separator: Option<char>,
    /// A header added to every record, `key=value`; repeat for more.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Produce every record to this partition (default: murmur2 of the key as the Java
    /// client does, and sticky partitions for records without a key).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    #[command(flatten)]
    producer: ProducerArgs,
    /// Each line is a JSON value to encode (with --value-format avro, json-schema or
    /// protobuf).
    #[command(flatten)]
    schema: super::schema::ProduceSchemaArgs,
}

pub(crate) fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::from_name(s)
        .ok_or_else(|| format!("unknown compression {s:?}: use none, gzip, snappy, lz4 or zstd"))
}

pub(crate) fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => Err(format!("unknown acks {other:?}: use 0, 1 or all")),
    }
}

/// Deliveries awaited at most at once; more lines wait (bounded memory on long input).
const MAX_PENDING: usize = 10_000;

pub(crate) async fn run(
    cluster: &Cluster,
    args: Args,
    timeout: Duration,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    let headers: Vec<Header> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| Header::new(k, Some(Bytes::from(v.to_string()))))
                .with_context(|| format!("--header {h:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let encoder = super::schema::ValueEncoder::new(&args.schema, &args.topic).await?;
    let config = args.producer.config(timeout, settings)?;
    let producer = Producer::with_cluster(cluster.clone(), config)?;
    let admin = Admin::new(cluster.clone());

    // Standard input is blocking: read it on its own thread.
    let (tx, mut lines) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });

    let mut pending = FuturesUnordered::new();
    let mut sent = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line.context("reading standard input")?;
        let (key, value) = match args.key_separator {
            Some(sep) => match line.split_once(sep) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let value = match &encoder {
            Some(e) => Bytes::from(e.encode(&args.topic, &value).await?),
            None => Bytes::from(value),
        };
        let mut record = ProducerRecord::new(&args.topic, value);
        record.key = key.map(Bytes::from);
        record.headers = headers.clone();
        record.partition = args.partition;
        let size = record_size(&record);
        let delivery = producer.send(record).await?;
        pending.push(async move { (size, delivery.await) });
        while pending.len() >= MAX_PENDING {
            if let Some((size, result)) = pending.next().await {
                delivered(&admin, &args.topic, size, result).await?;
                sent += 1;
            }
        }
    }
    while let Some((size, result)) = pending.next().await {
        delivered(&admin, &args.topic, size, result).await?;
        sent += 1;
    }
    producer.close(timeout).await?;
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

/// The bytes of a record's key, value and headers (the broker's limit also counts about
/// 70 bytes of batch and record framing).
fn record_size(record: &ProducerRecord) -> usize {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    len(&record.key)
        + len(&record.value)
        + record
            .headers
            .iter()
            .map(|h| h.key().len() + h.value_bytes().map_or(0, Bytes::len))
            .sum::<usize>()
}

/// The outcome of one delivery. A broker's MESSAGE_TOO_LARGE names no sizes: say the
/// record's and the topic's `max.message.bytes`.
async fn delivered<T>(
    admin: &Admin,
    topic: &str,
    size: usize,
    result: sluice_wire::Result<T>,
) -> anyhow::Result<()> {
    let e = match result {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if !matches!(
        e.kafka_code(),
        Some(KafkaCode::MessageTooLarge | KafkaCode::RecordListTooLarge)
    ) {
        return Err(e.into());
    }
    let limit = admin
        .describe_configs(&ConfigResource::Topic(topic.to_string()))
        .await
        .ok()
        .and_then(|configs| configs.into_iter().find(|c| c.name == "max.message.bytes"))
        .and_then(|c| c.value);
    match limit {
        Some(limit) => anyhow::bail!(
            "a record of {size} bytes (key, value and headers, plus framing) is larger than \
             the max.message.bytes ({limit}) of topic {topic}; the broker said: {e}"
        ),
        None => Err(e.into()),
    }
}
