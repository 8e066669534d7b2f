//! `sluice perf consume`: read a topic as fast as possible and print what Kafka's
//! `ConsumerPerformance` (`kafka-consumer-perf-test.sh`) prints, so the two can be
//! compared on the same broker.

use std::time::{Duration, Instant};

use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{Consumer, OffsetReset};

use crate::time_spec;

#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// The topic to read (from the beginning).
    #[arg(long)]
    topic: String,
    /// Records to read.
    #[arg(long)]
    messages: u64,
    /// Read as a member of this group (default: no group, every partition assigned).
    #[arg(long)]
    group: Option<String>,
    /// Give up when no record arrives for this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Leave out the header line.
    #[arg(long)]
    hide_header: bool,
}

/// Reads `--messages` records and prints ConsumerPerformance's line: start and end
/// time, MB and records read, their rates, the time spent joining the group and
/// fetching, and the fetch rates. Bytes are keys plus values, as Java counts them.
pub(crate) async fn consume(
    cluster: &Cluster,
    args: ConsumeArgs,
    settings: &[(String, String)],
) -> anyhow::Result<()> {
    let partitions =
        super::topic_args::partitions_of(cluster, std::slice::from_ref(&args.topic)).await?;
    let mut config = super::consume::consumer_config(cluster, settings)?;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.group_id = args.group.clone();
    let consumer = Consumer::with_cluster(cluster.clone(), config)?;
    let start_ms = time_spec::now_ms();
    let started = Instant::now();
    match &args.group {
        Some(_) => consumer.subscribe([args.topic.clone()])?,
        None => {
            consumer.assign(partitions.clone())?;
            consumer.seek_to_beginning(&partitions)?;
        }
    }
    let idle = Duration::from_millis(args.timeout);
    let (mut records, mut bytes) = (0u64, 0u64);
    // With a group, the time to the first batch counts as joining it.
    let mut joined: Option<Duration> = args.group.is_none().then_some(Duration::ZERO);
    let mut last = Instant::now();
    let mut progress = crate::progress::Progress::new("records read", Some(args.messages));
    while records < args.messages {
        let batch = match tokio::time::timeout(idle, consumer.recv_batch()).await {
            Ok(batch) => batch?,
            Err(_) => {
                eprintln!(
                    "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded.",
                    args.timeout
                );
                break;
            }
        };
        joined.get_or_insert_with(|| started.elapsed());
        for r in batch
            .records
            .iter()
            .take((args.messages - records) as usize)
        {
            records += 1;
            bytes += (r.key().map_or(0, |k| k.len()) + r.value().map_or(0, |v| v.len())) as u64;
        }
        last = Instant::now();
    }
    progress.finish();
    let end_ms = start_ms + i64::try_from(last.duration_since(started).as_millis())?;
    consumer.close().await?;
    let elapsed_ms = (end_ms - start_ms).max(1) as f64;
    let rebalance_ms = joined.unwrap_or_default().as_millis() as f64;
    let fetch_ms = (elapsed_ms - rebalance_ms).max(1.0);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if !args.hide_header {
        println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
    }
    println!(
        "{}, {}, {mb:.4}, {:.4}, {records}, {:.4}, {rebalance_ms:.0}, {fetch_ms:.0}, {:.4}, {:.4}",
        time_spec::format_ms(start_ms),
        time_spec::format_ms(end_ms),
        mb / (elapsed_ms / 1000.0),
        records as f64 / (elapsed_ms / 1000.0),
        mb / (fetch_ms / 1000.0),
        records as f64 / (fetch_ms / 1000.0),
    );
    Ok(())
}
