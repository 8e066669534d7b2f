//! `sluice topic create|delete`.

use std::time::Duration;

use anyhow::Context;
use sluice_wire::admin::{Admin, NewTopic};
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
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("--config {c:?} is not KEY=VALUE"))?;
                topic = topic.config(k, v);
            }
            admin.create_topics(&[topic], timeout).await?;
            let n = cluster
                .metadata()
                .topic(&name)
                .map_or(0, |t| t.partitions.len());
            println!("created topic {name} with {n} partitions");
        }
        Command::Delete { name } => {
            admin.delete_topics(&[&name], timeout).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
