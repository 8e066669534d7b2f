//! `sluice configs describe`: a topic's or a broker's configs, as
//! `kafka-configs.sh --describe` prints them.

use sluice_wire::admin::{Admin, ConfigResource, ConfigSource};
use sluice_wire::cluster::Cluster;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Print the configs set on a topic or broker (with --all, every config and where
    /// its value comes from).
    Describe {
        /// The topic.
        #[arg(long, conflicts_with = "broker", required_unless_present = "broker")]
        topic: Option<String>,
        /// The broker's node id.
        #[arg(long)]
        broker: Option<i32>,
        /// Every config, defaults included, not only those set on the resource.
        #[arg(long)]
        all: bool,
    },
}

pub(crate) async fn run(cluster: &Cluster, cmd: Command) -> anyhow::Result<()> {
    let admin = Admin::new(cluster.clone());
    let Command::Describe { topic, broker, all } = cmd;
    let resource = match (topic, broker) {
        (Some(t), _) => ConfigResource::Topic(t),
        (None, Some(b)) => ConfigResource::Broker(b),
        (None, None) => anyhow::bail!("pass --topic or --broker"),
    };
    let entries = admin.describe_configs(&resource).await?;
    println!(
        "{} configs for {resource} are:",
        if all { "All" } else { "Dynamic" }
    );
    for c in entries {
        let set_here = matches!(
            c.source,
            ConfigSource::DynamicTopic
                | ConfigSource::DynamicBroker
                | ConfigSource::DynamicDefaultBroker
                | ConfigSource::DynamicBrokerLogger
        );
        if all || set_here {
            println!(
                "  {}={} sensitive={} source={}",
                c.name,
                c.value.as_deref().unwrap_or("null"),
                c.sensitive,
                c.source
            );
        }
    }
    Ok(())
}
