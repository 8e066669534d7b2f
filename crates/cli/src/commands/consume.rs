//! `sluice consume`: print the records of a topic, from one or all partitions.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use sluice_wire::admin::{Admin, OffsetSpec};
use sluice_wire::cluster::Cluster;
use sluice_wire::partition_client::{FetchOptions, PartitionClient};
use sluice_wire::records::RecordBatches;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topic to read.
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Where to start: earliest, latest, or an offset.
    #[arg(long, default_value = "earliest", value_parser = parse_from)]
    from: From,
    /// Stop after this many records (default: run until interrupted).
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Print only a final line with the number of records read.
    #[arg(long, short = 'q')]
    quiet: bool,
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

pub(crate) async fn run(cluster: &Cluster, args: Args) -> anyhow::Result<()> {
    let md = cluster.refresh(&[&args.topic], false).await?;
    let topic = md
        .topic(&args.topic)
        .filter(|t| t.error.is_none())
        .with_context(|| format!("topic {} does not exist", args.topic))?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if topic.partitions.iter().any(|x| x.partition == p) => vec![p],
        Some(p) => anyhow::bail!("topic {} has no partition {p}", args.topic),
        None => topic.partitions.iter().map(|p| p.partition).collect(),
    };
    let mut positions = Vec::with_capacity(partitions.len());
    let admin = Admin::new(cluster.clone());
    let start = match args.from {
        From::Earliest => Some(OffsetSpec::Earliest),
        From::Latest => Some(OffsetSpec::Latest),
        From::Offset(_) => None,
    };
    let listed = match start {
        Some(spec) => Some(admin.list_offsets(&args.topic, &partitions, spec).await?),
        None => None,
    };
    for &p in &partitions {
        let offset = match (&listed, args.from) {
            (Some(l), _) => l.get(&p).map_or(0, |o| o.offset),
            (None, From::Offset(o)) => o,
            (None, _) => 0,
        };
        positions.push((
            PartitionClient::new(cluster.clone(), &args.topic, p),
            offset,
        ));
    }

    let mut read = 0u64;
    let out = std::io::stdout();
    let limit = args.count.unwrap_or(u64::MAX);
    'outer: while read < limit {
        for (client, offset) in positions.iter_mut() {
            let fetched = client.fetch(*offset, FetchOptions::default()).await?;
            for batch in RecordBatches::new(fetched.records) {
                let batch = batch?;
                if batch.is_control() {
                    *offset = batch.last_offset() + 1;
                    continue;
                }
                for record in batch.records()? {
                    let record = record?;
                    if record.offset() < *offset {
                        continue;
                    }
                    *offset = record.offset() + 1;
                    read += 1;
                    if !args.quiet {
                        let mut line = format!(
                            "partition:{} offset:{} key:{} headers:",
                            client.partition(),
                            record.offset(),
                            text(record.key())
                        );
                        let headers: Vec<String> = record
                            .headers()
                            .map(|h| format!("{}={}", text(Some(&h.key)), text(h.value.as_ref())))
                            .collect();
                        line.push_str(&headers.join(","));
                        line.push_str(" value:");
                        line.push_str(&text(record.value()));
                        let mut lock = out.lock();
                        writeln!(lock, "{line}")?;
                    }
                    if read >= limit {
                        break 'outer;
                    }
                }
            }
        }
    }
    out.lock().flush()?;
    if args.quiet {
        println!("{read} records");
    }
    Ok(())
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
