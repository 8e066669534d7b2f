//! `sluice groups`: list consumer groups, and describe one with its lag per partition,
//! like `kafka-consumer-groups.sh --describe`; reset, delete (`group_offsets.rs`).

use sluice_wire::admin::{Admin, GroupDescription, GroupLag};
use sluice_wire::cluster::{BrokerInfo, Cluster};

use super::lag::{offset_or_dash, print_uncommitted_note, LagSource};

use super::group_offsets;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the consumer groups of the cluster.
    List,
    /// Show a group's partitions: current (committed) offset, log-end offset, lag and
    /// owning member, then `TOTAL LAG <n>`. A partition without a committed offset shows
    /// `-` and its lag from the reset point (`--reset`); the total includes it. An
    /// unknown group is an error.
    Describe {
        /// The group id.
        group: String,
        #[command(flatten)]
        source: LagSource,
        /// Show the members instead: member id, host, client id and assignment.
        #[arg(long, conflicts_with = "state")]
        members: bool,
        /// Show the group's state instead: coordinator, assignor, state, member count.
        #[arg(long)]
        state: bool,
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
            source,
            members,
            state,
        } => {
            let lag = source.lag(&admin, &group).await?;
            if members {
                print_members(&lag.group);
            } else if state {
                let coordinator = admin.group_coordinator(&group).await?;
                print_state(&lag.group, &coordinator);
            } else {
                print_offsets(&group, &lag, &source);
            }
        }
    }
    Ok(())
}

fn print_offsets(group: &str, lag: &GroupLag, source: &LagSource) {
    println!(
        "{:<30} {:<30} {:>9} {:>14} {:>14} {:>8}  MEMBER",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
    );
    for p in &lag.partitions {
        println!(
            "{:<30} {:<30} {:>9} {:>14} {:>14} {:>8}  {}",
            group,
            p.partition.topic,
            p.partition.partition,
            offset_or_dash(p.committed),
            p.log_end,
            p.lag,
            p.member.as_deref().unwrap_or("-")
        );
    }
    print_uncommitted_note(lag, source);
    println!("TOTAL LAG {}", lag.total);
}

/// Like `kafka-consumer-groups --describe --members --verbose`.
fn print_members(group: &GroupDescription) {
    println!(
        "{:<30} {:<60} {:<20} {:<20} {:>11}  ASSIGNMENT",
        "GROUP", "MEMBER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
    );
    for m in &group.members {
        let assignment: Vec<String> = m
            .assignment
            .iter()
            .map(|tp| format!("{}-{}", tp.topic, tp.partition))
            .collect();
        println!(
            "{:<30} {:<60} {:<20} {:<20} {:>11}  {}",
            group.group_id,
            m.member_id,
            m.host,
            m.client_id,
            m.assignment.len(),
            if assignment.is_empty() {
                "-".to_string()
            } else {
                assignment.join(",")
            }
        );
    }
    if group.members.is_empty() {
        println!("group {} has no active members", group.group_id);
    }
}

/// Like `kafka-consumer-groups --describe --state`.
fn print_state(group: &GroupDescription, coordinator: &BrokerInfo) {
    println!(
        "{:<30} {:<30} {:<20} {:<20} {:>8}",
        "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"
    );
    let protocol = if group.protocol.is_empty() {
        "-"
    } else {
        group.protocol.as_str()
    };
    println!(
        "{:<30} {:<30} {:<20} {:<20} {:>8}",
        group.group_id,
        format!(
            "{}:{} ({})",
            coordinator.host, coordinator.port, coordinator.node_id
        ),
        protocol,
        group.state,
        group.members.len()
    );
}
