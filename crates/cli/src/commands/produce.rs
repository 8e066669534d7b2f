//! `sluice produce`: one record per line of standard input (or of files, or one per
//! file), through the batching [`Producer`] of `sluice-wire`.

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
    /// A header added to every record, `key=value` (`key` alone: a null value);
    /// repeat for more.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send empty values as null (tombstones) and empty keys as null keys (kcat's -Z).
    #[arg(short = 'Z', long)]
    null_empty: bool,
    /// The timestamp (ms since the epoch) of every record (default: the time of send).
    #[arg(long, value_name = "MS")]
    timestamp: Option<i64>,
    /// Read these files instead of standard input: each file is one record (its whole
    /// content), or with -l one record per line.
    #[arg(value_name = "FILE")]
    files: Vec<std::path::PathBuf>,
    /// With files: one record per line, as from standard input (kcat's -l).
    #[arg(short = 'l', long, requires = "files")]
    lines: bool,
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
        .map(|h| match h.split_once('=') {
            Some((k, v)) => Header::new(k, Some(Bytes::from(v.to_string()))),
            None => Header::new(h.as_str(), None),
        })
        .collect();
    let encoder = super::schema::ValueEncoder::new(&args.schema, &args.topic).await?;
    let config = args.producer.config(timeout, settings)?;
    let producer = Producer::with_cluster(cluster.clone(), config)?;
    let admin = Admin::new(cluster.clone());

    // Files and standard input are blocking: read them on their own thread.
    let (tx, mut inputs) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<u8>>>(1024);
    let (files, by_line) = (args.files.clone(), args.files.is_empty() || args.lines);
    std::thread::spawn(move || read_inputs(&files, by_line, &tx));

    let mut pending = FuturesUnordered::new();
    let mut sent = 0u64;
    let separator = args.key_separator.map(|c| c.to_string().into_bytes());
    while let Some(input) = inputs.recv().await {
        let input = input?;
        let (key, value) = match &separator {
            Some(sep) if by_line => match find(&input, sep) {
                Some(at) => (Some(input[..at].to_vec()), input[at + sep.len()..].to_vec()),
                None => (None, input),
            },
            _ => (None, input),
        };
        let value = match &encoder {
            Some(e) => {
                let text = std::str::from_utf8(&value).context("a value to encode is not UTF-8")?;
                e.encode(&args.topic, text).await?
            }
            None => value,
        };
        let nullable = |b: Vec<u8>| (!(args.null_empty && b.is_empty())).then(|| Bytes::from(b));
        let mut record = ProducerRecord::new(&args.topic, Bytes::new());
        record.value = nullable(value);
        record.key = key.and_then(nullable);
        record.headers = headers.clone();
        record.partition = args.partition;
        record.timestamp = args.timestamp;
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

/// Sends each record's bytes: the lines of standard input or of `files` (`by_line`), or
/// each file whole. Stops at the first error, which it sends too.
fn read_inputs(
    files: &[std::path::PathBuf],
    by_line: bool,
    tx: &tokio::sync::mpsc::Sender<anyhow::Result<Vec<u8>>>,
) {
    let send_lines = |reader: &mut dyn BufRead, name: &str| -> bool {
        for line in reader.split(b'\n') {
            let item = line
                .map(|mut l| {
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    l
                })
                .with_context(|| format!("reading {name}"));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return false;
            }
        }
        true
    };
    if files.is_empty() {
        send_lines(&mut std::io::stdin().lock(), "standard input");
        return;
    }
    for path in files {
        let name = path.display().to_string();
        if by_line {
            let file = std::fs::File::open(path).with_context(|| format!("opening {name}"));
            match file {
                Ok(f) => {
                    if !send_lines(&mut std::io::BufReader::new(f), &name) {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        } else {
            let item = std::fs::read(path).with_context(|| format!("reading {name}"));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
