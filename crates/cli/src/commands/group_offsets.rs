//! `sluice groups reset-offsets | delete | delete-offsets`: change what a consumer group
//! has committed, as `kafka-consumer-groups.sh --reset-offsets | --delete |
//! --delete-offsets` does, with the same plan and status tables.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use sluice_wire::admin::{Admin, OffsetSpec};
use sluice_wire::cluster::Cluster;
use sluice_wire::types::{OffsetAndMetadata, TopicPartition};

use super::topic_args;
use crate::time_spec;

/// `groups reset-offsets`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResetArgs {
    /// The group id.
    group: String,
    /// A topic (every partition) or `topic:0,2` (those partitions); repeat for more.
    #[arg(long, required = true, value_name = "TOPIC[:P,...]")]
    topic: Vec<String>,
    #[command(flatten)]
    to: ResetTo,
    /// Print the plan only (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the planned offsets.
    #[arg(long)]
    execute: bool,
}

/// Where `reset-offsets` moves each partition: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct ResetTo {
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (moved into the log's range when outside it).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this time (`2026-12-02T07:30:00.000`, UTC unless
    /// it ends in `Z` or `+01:00`); the log end where no record is that late.
    #[arg(long, value_name = "ISO8601", value_parser = time_spec::parse_datetime)]
    to_datetime: Option<i64>,
    /// To the first record at or after now minus this ISO 8601 duration (`PT10M`).
    #[arg(long, value_name = "DURATION", value_parser = time_spec::parse_duration)]
    by_duration: Option<std::time::Duration>,
    /// The committed offset plus N (N may be negative), moved into the log's range.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

/// `groups delete-offsets`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteOffsetsArgs {
    /// The group id.
    group: String,
    /// A topic (every partition) or `topic:0,2`; repeat for more.
    #[arg(long, required = true, value_name = "TOPIC[:P,...]")]
    topic: Vec<String>,
}

/// Plans the new offsets of the group, prints the plan, and commits it with `--execute`.
/// Refuses while the group has members: they would overwrite the reset with their next
/// commit (the coordinator also refuses a member-less commit then).
pub(crate) async fn reset_offsets(cluster: &Cluster, args: ResetArgs) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    let state = admin.describe_group(&args.group).await?.state;
    if !matches!(state.as_str(), "Empty" | "Dead") {
        bail!(
            "assignments can only be reset if the group '{}' is inactive, but the current state is {state}",
            args.group
        );
    }
    let partitions = topic_args::partitions_of(cluster, &args.topic).await?;
    let plan = plan(&admin, &args.group, &partitions, &args.to).await?;
    print_plan(&args.group, &plan);
    if args.execute {
        let offsets = plan
            .iter()
            .map(|(tp, &o)| (tp.clone(), OffsetAndMetadata::new(o)))
            .collect();
        admin
            .alter_group_offsets(&args.group, &offsets)
            .await
            .with_context(|| format!("committing the new offsets of group {}", args.group))?;
    } else if !args.dry_run {
        eprintln!("dry run: nothing was committed; pass --execute to commit these offsets");
    }
    Ok(())
}

/// The new offset of every partition.
async fn plan(
    admin: &Admin,
    group: &str,
    partitions: &[TopicPartition],
    to: &ResetTo,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let earliest = offsets(admin, partitions, OffsetSpec::Earliest).await?;
    let latest = offsets(admin, partitions, OffsetSpec::Latest).await?;
    let timestamp = match (to.to_datetime, to.by_duration) {
        (Some(ts), _) => Some(ts),
        (None, Some(d)) => Some(time_spec::now_ms() - i64::try_from(d.as_millis())?),
        (None, None) => None,
    };
    let by_time = match timestamp {
        Some(ts) => offsets(admin, partitions, OffsetSpec::Timestamp(ts)).await?,
        None => BTreeMap::new(),
    };
    let committed = match to.shift_by {
        Some(_) => admin.group_offsets(group).await?,
        None => BTreeMap::new(),
    };
    let mut plan = BTreeMap::new();
    for tp in partitions {
        let (Some(&start), Some(&end)) = (earliest.get(tp), latest.get(tp)) else {
            bail!("no offsets of {tp} in the ListOffsets answers");
        };
        let clamp = |wanted: i64| {
            let to = wanted.clamp(start, end);
            if to != wanted {
                let side = if wanted > end { "latest" } else { "earliest" };
                eprintln!(
                    "warning: new offset ({wanted}) is outside the log of {tp}: set to the {side} offset {to}"
                );
            }
            to
        };
        let offset = if to.to_earliest {
            start
        } else if to.to_latest {
            end
        } else if let Some(n) = to.to_offset {
            clamp(n)
        } else if let Some(n) = to.shift_by {
            let current = committed.get(tp).with_context(|| {
                format!("cannot shift the offset of {tp}: the group has no committed offset for it")
            })?;
            clamp(current.offset.saturating_add(n))
        } else {
            match by_time.get(tp) {
                Some(&o) if o >= 0 => o,
                _ => {
                    eprintln!("warning: {tp} has no record that late: set to its latest offset");
                    end
                }
            }
        };
        plan.insert(tp.clone(), offset);
    }
    Ok(plan)
}

/// One ListOffsets answer per partition, asked per topic.
async fn offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let mut out = BTreeMap::new();
    let mut progress =
        crate::progress::Progress::new("partitions looked up", Some(partitions.len() as u64));
    for (topic, parts) in by_topic {
        progress.inc(parts.len() as u64);
        for (p, listed) in admin.list_offsets(topic, &parts, spec).await? {
            out.insert(TopicPartition::new(topic, p), listed.offset);
        }
    }
    Ok(out)
}

/// The plan as Java's tool prints it: `GROUP TOPIC PARTITION NEW-OFFSET`.
fn print_plan(group: &str, plan: &BTreeMap<TopicPartition, i64>) {
    let group_width = group.len().max(15);
    let topic_width = plan
        .keys()
        .map(|tp| tp.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    println!(
        "{:<group_width$} {:<topic_width$} {:<10} NEW-OFFSET",
        "GROUP", "TOPIC", "PARTITION"
    );
    for (tp, offset) in plan {
        println!(
            "{group:<group_width$} {:<topic_width$} {:<10} {offset}",
            tp.topic, tp.partition
        );
    }
}

/// Deletes each group, then says which were deleted, as Java's tool does; fails when
/// any could not be.
pub(crate) async fn delete(cluster: &Cluster, groups: &[String]) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group in groups {
        match admin.delete_group(group).await {
            Ok(()) => deleted.push(format!("'{group}'")),
            Err(e) => failed.push(format!("group '{group}' could not be deleted: {e}")),
        }
    }
    if failed.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            deleted.join(", ")
        );
        return Ok(());
    }
    if !deleted.is_empty() {
        println!(
            "These consumer groups were deleted successfully: {}",
            deleted.join(", ")
        );
    }
    bail!("{}", failed.join("; "))
}

/// Deletes the group's committed offsets of the partitions named, and prints each
/// partition's status (`TOPIC PARTITION STATUS`); fails when any was refused.
pub(crate) async fn delete_offsets(
    cluster: &Cluster,
    args: DeleteOffsetsArgs,
) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    let partitions = topic_args::partitions_of(cluster, &args.topic).await?;
    let results = admin.delete_group_offsets(&args.group, &partitions).await?;
    let width = partitions
        .iter()
        .map(|tp| tp.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    println!("{:<width$} {:<10} STATUS", "TOPIC", "PARTITION");
    let mut refused = 0;
    for tp in &partitions {
        let status = match results.get(tp) {
            Some(Ok(())) => "Successful".to_string(),
            Some(Err(e)) => {
                refused += 1;
                format!("Error: {e}")
            }
            None => {
                refused += 1;
                "Error: the coordinator did not answer for this partition".to_string()
            }
        };
        println!("{:<width$} {:<10} {status}", tp.topic, tp.partition);
    }
    if refused > 0 {
        bail!(
            "{refused} of {} partitions were refused for group {}",
            partitions.len(),
            args.group
        );
    }
    Ok(())
}
