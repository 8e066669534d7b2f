//! `sluice produce`: one record per line of standard input.
//!
//! A first cut that builds record batches itself and sends them with
//! [`PartitionClient`]; the batching producer of `sluice-wire` replaces it once it lands.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sluice_partition::{Murmur2Partitioner, Partitioner};
use sluice_wire::cluster::Cluster;
use sluice_wire::partition_client::{Acks, PartitionClient};
use sluice_wire::records::{BatchOptions, Compression, Header, RecordBatchBuilder};

/// A batch is sent once its records pass this many bytes (the Java default `batch.size`
/// is 16 KiB; the CLI reads fast from a pipe, so it batches more).
const BATCH_BYTES: usize = 256 * 1024;

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
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, short = 'z', default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Produce every record to this partition (default: murmur2 of the key as the Java
    /// client does, and sticky partitions for records without a key).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!(
            "unknown compression {other:?}: use none, gzip, snappy, lz4 or zstd"
        )),
    }
}

pub(crate) async fn run(cluster: &Cluster, args: Args, timeout: Duration) -> anyhow::Result<()> {
    let headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--header {h:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let md = cluster.refresh(&[&args.topic], true).await?;
    let partitions = md
        .topic(&args.topic)
        .filter(|t| t.error.is_none() && !t.partitions.is_empty())
        .map(|t| t.partitions.len())
        .with_context(|| format!("topic {} does not exist", args.topic))?;
    let partitions = u32::try_from(partitions)?;

    let mut partitioner = Murmur2Partitioner::new();
    let mut open: BTreeMap<i32, RecordBatchBuilder> = BTreeMap::new();
    let options = BatchOptions {
        compression: args.compression,
        ..BatchOptions::default()
    };
    let mut sent = 0u64;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading standard input")?;
        let (key, value) = match args.key_separator {
            Some(sep) => match line.split_once(sep) {
                Some((k, v)) => (Some(k), v),
                None => (None, line.as_str()),
            },
            None => (None, line.as_str()),
        };
        let partition = match args.partition {
            Some(p) => p,
            None => {
                let p = partitioner.partition(
                    &args.topic,
                    key.map(str::as_bytes),
                    value.len(),
                    partitions,
                );
                i32::try_from(p)?
            }
        };
        let hdrs: Vec<Header<'_>> = headers
            .iter()
            .map(|(k, v)| Header::new(k, Some(v.as_bytes())))
            .collect();
        let builder = open
            .entry(partition)
            .or_insert_with(|| RecordBatchBuilder::new(options));
        builder.append(
            now_ms(),
            key.map(str::as_bytes),
            Some(value.as_bytes()),
            &hdrs,
        )?;
        if builder.estimated_size() >= BATCH_BYTES {
            if let Some(full) = open.remove(&partition) {
                sent += send(cluster, &args.topic, partition, full, timeout).await?;
                partitioner.on_batch_complete(&args.topic, u32::try_from(partition)?);
            }
        }
    }
    for (partition, builder) in std::mem::take(&mut open) {
        sent += send(cluster, &args.topic, partition, builder, timeout).await?;
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

async fn send(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    builder: RecordBatchBuilder,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let count = builder.len() as u64;
    if count == 0 {
        return Ok(0);
    }
    let batch = builder.finish()?;
    PartitionClient::new(cluster.clone(), topic, partition)
        .produce(batch, Acks::All, timeout)
        .await
        .with_context(|| format!("producing to {topic}-{partition}"))?;
    Ok(count)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
