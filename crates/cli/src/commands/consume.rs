//! `sluice consume`: print the records of a topic, from one or all partitions; with
//! `--group`, as a member of a consumer group that commits after printing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};

use anyhow::Context;
use bytes::Bytes;
use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{
    Consumer, ConsumerConfig, ConsumerEvent, ConsumerRecord, OffsetAndMetadata, OffsetReset,
    TopicPartition,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topic to read.
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Where to start: earliest, latest, or an offset. With --group this applies only
    /// to partitions without a committed offset (earliest or latest).
    #[arg(long, default_value = "earliest", value_parser = parse_from)]
    from: From,
    /// Stop after this many records (default: run until interrupted).
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Exit once every assigned partition has been read to its end (kcat's -e; the
    /// consumer's end-of-partition events, `enable.partition.eof`). Records written
    /// meanwhile are read as long as some partition has not reached its end.
    #[arg(long, short = 'e')]
    exit: bool,
    /// Print only a final line with the number of records read.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Consume as a member of this consumer group; offsets are committed after the
    /// records are printed.
    #[arg(long, short = 'g')]
    group: Option<String>,
    #[command(flatten)]
    schema: super::schema::SchemaArgs,
}

#[derive(Debug, Clone, Copy)]
enum From {
    Earliest,
    Latest,
    Offset(i64),
}

fn parse_from(s: &str) -> Result<From, String> {
    match s {
        "earliest" | "beginning" => Ok(From::Earliest),
        "latest" | "end" => Ok(From::Latest),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(From::Offset)
            .ok_or_else(|| format!("--from {n:?}: use earliest, latest or an offset >= 0")),
    }
}

pub(crate) async fn run(
    cluster: &Cluster,
    args: Args,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    let md = cluster.refresh(&[&args.topic], false).await?;
    let topic = md
        .topic(&args.topic)
        .filter(|t| t.error.is_none())
        .with_context(|| format!("topic {} does not exist", args.topic))?;
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) if topic.partitions.iter().any(|x| x.partition == p) => {
            vec![TopicPartition::new(&args.topic, p)]
        }
        Some(p) => anyhow::bail!("topic {} has no partition {p}", args.topic),
        None => topic
            .partitions
            .iter()
            .map(|p| TopicPartition::new(&args.topic, p.partition))
            .collect(),
    };
    let mut config = ConsumerConfig::new("unused");
    for (key, value) in settings {
        config.set(key, value)?;
    }
    config.cluster = cluster.config().clone();
    config.enable_partition_eof = args.exit;
    config.auto_offset_reset = match args.from {
        From::Latest => OffsetReset::Latest,
        _ => OffsetReset::Earliest,
    };
    if let Some(g) = &args.group {
        if let From::Offset(_) = args.from {
            anyhow::bail!("--from <offset> cannot be combined with --group: the group's committed offsets decide");
        }
        config.group_id = Some(g.clone());
    }
    let decoder = super::schema::ValueDecoder::new(&args.schema)?;
    let consumer = Consumer::with_cluster(cluster.clone(), config)?;
    match (&args.group, args.partition) {
        (Some(_), None) => consumer.subscribe([args.topic.clone()])?,
        (Some(_), Some(_)) => consumer.assign(partitions.clone())?,
        (None, _) => {
            consumer.assign(partitions.clone())?;
            match args.from {
                From::Earliest => consumer.seek_to_beginning(&partitions)?,
                From::Latest => consumer.seek_to_end(&partitions)?,
                From::Offset(o) => {
                    for tp in &partitions {
                        consumer.seek(tp, o)?;
                    }
                }
            }
        }
    }

    let mut read = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut out = BufWriter::new(std::io::stdout().lock());
    // Offsets printed but not yet committed: a failed commit is not the end of the run,
    // the next commit carries them (as Java's commitAsync callers do).
    let mut uncommitted: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    // With --exit: the partitions read to their end (and not written to since).
    let mut at_end: BTreeSet<TopicPartition> = BTreeSet::new();
    while read < limit {
        let (partition, records) = if args.exit {
            match consumer.recv_event().await? {
                ConsumerEvent::Record(r) => {
                    at_end.remove(&r.topic_partition());
                    (r.topic_partition(), vec![r])
                }
                ConsumerEvent::PartitionEof { partition, .. } => {
                    at_end.insert(partition);
                    // With --exit the group commits at each end, not after every record.
                    commit(&consumer, &mut out, &mut uncommitted).await?;
                    let assigned = consumer.assignment();
                    if !assigned.is_empty() && assigned.iter().all(|tp| at_end.contains(tp)) {
                        break;
                    }
                    continue;
                }
                _ => continue,
            }
        } else {
            let batch = consumer.recv_batch().await?;
            (batch.partition, batch.records)
        };
        let mut last: Option<&ConsumerRecord> = None;
        for record in &records {
            if read >= limit {
                break;
            }
            read += 1;
            last = Some(record);
            if !args.quiet {
                print_record(&mut out, record, &decoded(&decoder, record).await)?;
            }
        }
        if args.group.is_some() {
            if let Some(r) = last {
                uncommitted.insert(partition, OffsetAndMetadata::new(r.offset() + 1));
                if !args.exit {
                    commit(&consumer, &mut out, &mut uncommitted).await?;
                }
            }
        }
    }
    out.flush()?;
    drop(out);
    if !uncommitted.is_empty() {
        consumer
            .commit(&uncommitted)
            .await
            .context("committing the last offsets")?;
    }
    consumer.close().await?;
    if args.quiet {
        println!("{read} records");
    }
    Ok(())
}

/// Commits the offsets of the records printed (flushed first: then they count as
/// processed). A failed commit is not the end of the run: the next one carries them.
async fn commit(
    consumer: &Consumer,
    out: &mut impl Write,
    uncommitted: &mut BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> anyhow::Result<()> {
    if uncommitted.is_empty() {
        return Ok(());
    }
    out.flush()?;
    match consumer.commit(uncommitted).await {
        Ok(()) => uncommitted.clear(),
        Err(e) if !e.is_fatal() => {
            eprintln!("warning: commit failed, the next one carries it: {e}");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The value as text: decoded JSON with a schema, else UTF-8 or hex (with a warning
/// when it should have decoded and did not).
async fn decoded(decoder: &super::schema::ValueDecoder, record: &ConsumerRecord) -> String {
    let decoded = match record.value() {
        Some(v) => decoder.decode(v).await,
        None => None,
    };
    match decoded {
        Some(Ok(json)) => json,
        Some(Err(e)) => {
            eprintln!(
                "warning: partition {} offset {}: value does not decode: {e}",
                record.partition(),
                record.offset()
            );
            text(record.value())
        }
        None => text(record.value()),
    }
}

/// One line per record; `value` is the value as text, decoded JSON or hex.
fn print_record(out: &mut impl Write, record: &ConsumerRecord, value: &str) -> std::io::Result<()> {
    let headers: Vec<String> = record
        .headers()
        .map(|h| format!("{}={}", h.key(), text(h.value_bytes())))
        .collect();
    writeln!(
        out,
        "partition:{} offset:{} key:{} headers:{} value:{}",
        record.partition(),
        record.offset(),
        text(record.key()),
        headers.join(","),
        value
    )
}

/// Shows bytes as text when they are UTF-8, else as hex; `null` for a missing field.
fn text(b: Option<&Bytes>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
        },
    }
}
