//! `sluice topic create|delete|list|describe|alter-config|add-partitions`, with the
//! output of `kafka-topics.sh`.

use std::time::Duration;

use anyhow::Context;
use sluice_wire::admin::{Admin, AlterConfigOp, ConfigResource, ConfigSource, NewTopic};
use sluice_wire::cluster::Cluster;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a topic and wait until every partition has a leader.
    Create {
        /// The topic name.
        name: String,
        /// Number of partitions (default: the broker's `num.partitions`).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (default: the broker's `default.replication.factor`).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, `key=value`; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Delete a topic.
    Delete {
        /// The topic name.
        name: String,
    },
    /// Print the topic names, one a line, sorted.
    List {
        /// Leave out Kafka's internal topics (`__consumer_offsets`, ...).
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Describe topics as `kafka-topics.sh --describe` does: a line per topic with its
    /// partition count, replication factor and the configs set on it, then a line per
    /// partition with its leader, replicas and in-sync replicas.
    Describe {
        /// The topics (default: every topic but the internal ones).
        names: Vec<String>,
    },
    /// Set or remove configs of a topic (IncrementalAlterConfigs); others keep theirs.
    AlterConfig {
        /// The topic name.
        name: String,
        /// A config to set, `key=value`; repeat for more.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A config to remove (the default applies again); repeat for more.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Raise the partition count of a topic (Kafka never lowers it).
    AddPartitions {
        /// The topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        partitions: i32,
    },
}

pub(crate) async fn run(cluster: &Cluster, cmd: Command, timeout: Duration) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    match cmd {
        Command::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(&name, partitions).replication_factor(replication_factor);
            for c in &configs {
                let (k, v) = key_value("--config", c)?;
                topic = topic.config(k, v);
            }
            admin.create_topics(&[topic], timeout).await?;
            println!(
                "created topic {name} with {} partitions",
                partition_count(cluster, &name)
            );
        }
        Command::Delete { name } => {
            admin.delete_topics(&[&name], timeout).await?;
            println!("deleted topic {name}");
        }
        Command::List { exclude_internal } => {
            let md = cluster.refresh_all().await?;
            for t in md.topics.values() {
                if !(exclude_internal && t.is_internal) {
                    println!("{}", t.name);
                }
            }
        }
        Command::Describe { names } => describe(cluster, &admin, names).await?,
        Command::AlterConfig { name, set, delete } => {
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = key_value("--set", s)?;
                ops.push(AlterConfigOp::Set(k.to_string(), v.to_string()));
            }
            ops.extend(delete.into_iter().map(AlterConfigOp::Delete));
            anyhow::ensure!(!ops.is_empty(), "nothing to change: pass --set or --delete");
            admin
                .alter_configs(&ConfigResource::Topic(name.clone()), &ops)
                .await?;
            println!("Completed updating config for topic {name}.");
        }
        Command::AddPartitions { name, partitions } => {
            admin.create_partitions(&name, partitions, timeout).await?;
            println!(
                "topic {name} now has {} partitions",
                partition_count(cluster, &name)
            );
        }
    }
    Ok(())
}

/// `kafka-topics.sh --describe`.
async fn describe(cluster: &Cluster, admin: &Admin, names: Vec<String>) -> anyhow::Result<()> {
    let md = cluster.refresh_all().await?;
    let names = if names.is_empty() {
        md.topics
            .values()
            .filter(|t| !t.is_internal)
            .map(|t| t.name.clone())
            .collect()
    } else {
        names
    };
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for name in names {
        let t = md
            .topic(&name)
            .filter(|t| t.error.is_none())
            .with_context(|| format!("topic {name} does not exist"))?;
        let configs: Vec<String> = admin
            .describe_configs(&ConfigResource::Topic(name.clone()))
            .await?
            .into_iter()
            .filter(|c| c.source == ConfigSource::DynamicTopic)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        let replication = t.partitions.first().map_or(0, |p| p.replicas.len());
        println!(
            "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {replication}\tConfigs: {}",
            t.partitions.len(),
            configs.join(",")
        );
        for p in &t.partitions {
            let leader = p
                .leader
                .map_or_else(|| "none".to_string(), |l| l.to_string());
            println!(
                "\tTopic: {name}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                p.partition,
                ids(&p.replicas),
                ids(&p.isr)
            );
        }
    }
    Ok(())
}

fn key_value<'a>(flag: &str, arg: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    arg.split_once('=')
        .with_context(|| format!("{flag} {arg:?} is not KEY=VALUE"))
}

fn partition_count(cluster: &Cluster, name: &str) -> usize {
    cluster
        .metadata()
        .topic(name)
        .map_or(0, |t| t.partitions.len())
}
