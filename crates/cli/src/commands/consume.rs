//! `sluice consume`: print the records of a topic, from one or all partitions; with
//! `--group`, as a member of a consumer group that commits after printing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, IsTerminal, Write};

use anyhow::Context;
use sluice_wire::admin::{Admin, OffsetSpec};
use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{
    Consumer, ConsumerConfig, ConsumerEvent, ConsumerRecord, OffsetAndMetadata, OffsetReset,
    TopicPartition,
};

use super::record_format::Printer;
use super::schema::{Decoded, Decoder, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topic to read.
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Where to start, as kcat's -o: `beginning` (or `earliest`), `end` (`latest`),
    /// `stored` (the group's committed offsets, with --group), an offset `N`, `-N` (N
    /// before the end of each partition), `s@<ms>` (the first record at or after that
    /// timestamp); and, in a second -o, `e@<ms>` to stop each partition at the first
    /// record at or after that timestamp (not printed). With --group only `beginning`,
    /// `end` and `stored` apply, to partitions without a committed offset.
    #[arg(
        long = "from",
        short = 'o',
        visible_alias = "offset",
        default_value = "beginning",
        value_parser = parse_position,
        allow_hyphen_values = true
    )]
    from: Vec<Position>,
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
    /// Print each record with this kcat format: `%t` topic, `%p` partition, `%o`
    /// offset, `%k` key, `%K` key length, `%s` value, `%S` value length, `%R` value
    /// length as a 4-byte big-endian integer, `%h` headers, `%T` timestamp (ms), `%%`;
    /// `\n`, `\t`, `\r` escapes. No newline is added.
    #[arg(short = 'f', long = "format", conflicts_with = "json")]
    format: Option<String>,
    /// Print each record as kcat's JSON envelope: topic, partition, offset, tstype
    /// (`create` or `logappend`), ts, broker (the partition's leader), headers
    /// (`[key, value, ...]`), key and payload; decoded keys and values (a schema's
    /// JSON, a number) are embedded as JSON.
    #[arg(short = 'J', long)]
    json: bool,
    /// With -f: print null keys, values and header values as `NULL` (kcat's -Z), not
    /// as nothing.
    #[arg(short = 'Z', long)]
    print_null: bool,
    /// The format of record keys (as --value-format); avro, json-schema and protobuf
    /// need --registry.
    #[arg(long, value_enum, default_value = "raw")]
    key_format: Format,
    /// The format of header values: raw, int32, int64 or hex.
    #[arg(long, value_enum, default_value = "raw")]
    header_format: Format,
    #[command(flatten)]
    schema: super::schema::SchemaArgs,
}

/// One `-o` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Beginning,
    End,
    Stored,
    Offset(i64),
    BeforeEnd(i64),
    Timestamp(i64),
    StopAt(i64),
}

fn parse_position(s: &str) -> Result<Position, String> {
    let ms = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("-o {s:?}: {v:?} is not a timestamp in ms"))
    };
    match s {
        "beginning" | "earliest" => Ok(Position::Beginning),
        "end" | "latest" => Ok(Position::End),
        "stored" => Ok(Position::Stored),
        _ => {
            if let Some(ts) = s.strip_prefix("s@") {
                return ms(ts).map(Position::Timestamp);
            }
            if let Some(ts) = s.strip_prefix("e@") {
                return ms(ts).map(Position::StopAt);
            }
            match s.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(Position::Offset(n)),
                Ok(n) => Ok(Position::BeforeEnd(n.saturating_neg())),
                Err(_) => Err(format!(
                    "-o {s:?}: use beginning, end, stored, N, -N, s@<ms> or e@<ms>"
                )),
            }
        }
    }
}

/// The start and the optional stop timestamp of the `-o` values.
fn start_and_stop(positions: &[Position]) -> anyhow::Result<(Position, Option<i64>)> {
    let mut start = None;
    let mut stop = None;
    for &p in positions {
        match p {
            Position::StopAt(ts) if stop.is_none() => stop = Some(ts),
            Position::StopAt(_) => anyhow::bail!("-o e@<ms> given twice"),
            p if start.is_none() => start = Some(p),
            _ => anyhow::bail!("more than one start position in -o"),
        }
    }
    Ok((start.unwrap_or(Position::Beginning), stop))
}

pub(crate) async fn run(
    cluster: &Cluster,
    args: Args,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    let spec = match args.partition {
        Some(p) => format!("{}:{p}", args.topic),
        None => args.topic.clone(),
    };
    let partitions = super::topic_args::partitions_of(cluster, &[spec]).await?;
    let mut config = consumer_config(cluster, settings)?;
    config.enable_partition_eof = args.exit;
    let (start, stop_at) = start_and_stop(&args.from)?;
    config.auto_offset_reset = match start {
        Position::End => OffsetReset::Latest,
        _ => OffsetReset::Earliest,
    };
    if let Some(g) = &args.group {
        if !matches!(
            start,
            Position::Beginning | Position::End | Position::Stored
        ) {
            anyhow::bail!("-o {start:?} cannot be combined with --group: the group's committed offsets decide");
        }
        config.group_id = Some(g.clone());
    } else if start == Position::Stored {
        anyhow::bail!("-o stored needs --group: it reads the group's committed offsets");
    }
    let keys = Decoder::new(args.key_format, "--key-format", &args.schema)?;
    let values = Decoder::new(args.schema.value_format, "--value-format", &args.schema)?;
    let printer = Printer::new(args.format.as_deref(), args.json, args.print_null)?
        .with_header_format(args.header_format)?;
    let consumer = Consumer::with_cluster(cluster.clone(), config)?;
    match (&args.group, args.partition) {
        (Some(_), None) => consumer.subscribe([args.topic.clone()])?,
        (Some(_), Some(_)) => consumer.assign(partitions.clone())?,
        (None, _) => {
            consumer.assign(partitions.clone())?;
            seek(cluster, &consumer, &partitions, start).await?;
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
    // With -o e@<ms>: the partitions that reached a record that late (paused).
    let mut stopped: BTreeSet<TopicPartition> = BTreeSet::new();
    let all_done = |at_end: &BTreeSet<TopicPartition>, stopped: &BTreeSet<TopicPartition>| {
        let assigned = consumer.assignment();
        !assigned.is_empty()
            && assigned
                .iter()
                .all(|tp| at_end.contains(tp) || stopped.contains(tp))
    };
    // Only while records do not go to the same terminal.
    let mut progress = crate::progress::Progress::shown_if(
        args.quiet || !std::io::stdout().is_terminal(),
        "records read",
        args.count,
    );
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
                    if all_done(&at_end, &stopped) {
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
        // For -J's `broker`: the leaders as the client last saw them.
        let metadata = cluster.metadata();
        for record in &records {
            if read >= limit || stopped.contains(&partition) {
                break;
            }
            if stop_at.is_some_and(|ts| record.timestamp() >= ts) {
                consumer.pause(std::slice::from_ref(&partition));
                stopped.insert(partition.clone());
                break;
            }
            read += 1;
            progress.inc(1);
            last = Some(record);
            if !args.quiet {
                let key = decoded(&keys, "key", record, record.key()).await;
                let value = decoded(&values, "value", record, record.value()).await;
                printer.print(&mut out, record, key.as_ref(), value.as_ref(), &metadata)?;
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
        if !stopped.is_empty() && all_done(&at_end, &stopped) {
            break;
        }
    }
    progress.finish();
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

/// A consumer config with the command's `-F` / `-X` consumer keys, on `cluster`'s
/// connection settings; the group and offsets are the caller's to set.
pub(crate) fn consumer_config(
    cluster: &Cluster,
    settings: &[(String, String)],
) -> anyhow::Result<ConsumerConfig> {
    let mut config = ConsumerConfig::new("unused");
    for (key, value) in settings {
        config.set(key, value)?;
    }
    config.cluster = cluster.config().clone();
    Ok(config)
}

/// Seeks every partition to where `start` says (without a group).
async fn seek(
    cluster: &Cluster,
    consumer: &Consumer,
    partitions: &[TopicPartition],
    start: Position,
) -> anyhow::Result<()> {
    match start {
        Position::Beginning | Position::Stored | Position::StopAt(_) => {
            consumer.seek_to_beginning(partitions)?
        }
        Position::End => consumer.seek_to_end(partitions)?,
        Position::Timestamp(ts) => consumer.seek_to_timestamp(partitions, ts)?,
        Position::Offset(o) => {
            for tp in partitions {
                consumer.seek(tp, o)?;
            }
        }
        Position::BeforeEnd(n) => {
            let admin = Admin::new(cluster.clone());
            let Some(topic) = partitions.first().map(|tp| tp.topic.as_str()) else {
                return Ok(());
            };
            let ids: Vec<i32> = partitions.iter().map(|tp| tp.partition).collect();
            let starts = admin
                .list_offsets(topic, &ids, OffsetSpec::Earliest)
                .await?;
            let ends = admin.list_offsets(topic, &ids, OffsetSpec::Latest).await?;
            for tp in partitions {
                let first = starts.get(&tp.partition).map_or(0, |o| o.offset);
                let end = ends.get(&tp.partition).map_or(0, |o| o.offset);
                consumer.seek(tp, end.saturating_sub(n).max(first))?;
            }
        }
    }
    Ok(())
}

/// The key or value (`what`, `bytes`) decoded (`None` when raw, null, or, with a
/// warning, when it should have decoded and did not: then it prints raw).
async fn decoded(
    decoder: &Decoder,
    what: &str,
    record: &ConsumerRecord,
    bytes: Option<&bytes::Bytes>,
) -> Option<Decoded> {
    match decoder.decode(bytes?).await? {
        Ok(decoded) => Some(decoded),
        Err(e) => {
            eprintln!(
                "warning: partition {} offset {}: {what} does not decode: {e:#}",
                record.partition(),
                record.offset()
            );
            None
        }
    }
}
