//! `sluice groups`: list consumer groups, and describe one with its lag per partition,
//! like `kafka-consumer-groups.sh --describe`; reset, delete (`group_offsets.rs`).

use sluice_wire::admin::Admin;
use sluice_wire::cluster::Cluster;
use sluice_wire::types::IsolationLevel;

use super::group_offsets;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the consumer groups of the cluster.
    List,
    /// Show a group's partitions: current (committed) offset, log-end offset, lag and
    /// owning member, then `TOTAL LAG <n>`.
    Describe {
        /// The group id.
        group: String,
        /// Measure lag against the last stable offset (for read_committed consumers).
        #[arg(long)]
        read_committed: bool,
    },
    /// Move a group's committed offsets (the group must have no active member). Prints
    /// the plan; commits it only with --execute.
    ResetOffsets(group_offsets::ResetArgs),
    /// Delete groups (each must have no active member) with their committed offsets.
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete a group's committed offsets of some topics or partitions.
    DeleteOffsets(group_offsets::DeleteOffsetsArgs),
}

pub(crate) async fn run(cluster: &Cluster, cmd: Command) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    match cmd {
        Command::ResetOffsets(args) => return group_offsets::reset_offsets(cluster, args).await,
        Command::Delete { groups } => return group_offsets::delete(cluster, &groups).await,
        Command::DeleteOffsets(args) => return group_offsets::delete_offsets(cluster, args).await,
        Command::List => {
            println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
            for g in admin.list_groups().await? {
                println!("{:<40} {:<20} {}", g.group_id, g.state, g.protocol_type);
            }
        }
        Command::Describe {
            group,
            read_committed,
        } => {
            let isolation = if read_committed {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            };
            let lag = admin.lag(&group, isolation).await?;
            println!(
                "{:<30} {:<30} {:>9} {:>14} {:>14} {:>8}  MEMBER",
                "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
            );
            for p in &lag.partitions {
                let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                println!(
                    "{:<30} {:<30} {:>9} {:>14} {:>14} {:>8}  {}",
                    group,
                    p.partition.topic,
                    p.partition.partition,
                    dash(p.committed),
                    p.log_end,
                    dash(p.lag),
                    p.member.as_deref().unwrap_or("-")
                );
            }
            println!("TOTAL LAG {}", lag.total);
        }
    }
    Ok(())
}
