//! `sluice metadata`: brokers, topics, partitions, leaders.

use sluice_wire::cluster::Cluster;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only these topics (default: all).
    topics: Vec<String>,
    /// Include Kafka's internal topics.
    #[arg(long)]
    internal: bool,
}

pub(crate) async fn run(cluster: &Cluster, args: Args) -> anyhow::Result<()> {
    let md = if args.topics.is_empty() {
        cluster.refresh_all().await?
    } else {
        let names: Vec<&str> = args.topics.iter().map(String::as_str).collect();
        cluster.refresh(&names, false).await?
    };
    println!(
        "Metadata for {} (cluster id {}):",
        if args.topics.is_empty() {
            "all topics"
        } else {
            "the named topics"
        },
        md.cluster_id.as_deref().unwrap_or("unknown")
    );
    println!(" {} brokers:", md.brokers.len());
    for b in md.brokers.values() {
        let controller = if md.controller_id == Some(b.node_id) {
            " (controller)"
        } else {
            ""
        };
        println!("  broker {} at {}{controller}", b.node_id, b.addr());
    }
    let topics: Vec<_> = md
        .topics
        .values()
        .filter(|t| args.internal || !t.is_internal)
        .filter(|t| args.topics.is_empty() || args.topics.contains(&t.name))
        .collect();
    println!(" {} topics:", topics.len());
    for t in topics {
        match t.error {
            Some(code) => println!("  topic \"{}\" error {code:?}", t.name),
            None => println!(
                "  topic \"{}\" with {} partitions:",
                t.name,
                t.partitions.len()
            ),
        }
        for p in &t.partitions {
            let leader = p
                .leader
                .map_or_else(|| "none".to_string(), |l| l.to_string());
            let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            print!(
                "    partition {}, leader {leader}, epoch {}, replicas: {}, isrs: {}",
                p.partition,
                p.leader_epoch,
                ids(&p.replicas),
                ids(&p.isr)
            );
            match p.error {
                Some(code) => println!(", error {code:?}"),
                None => println!(),
            }
        }
    }
    Ok(())
}
