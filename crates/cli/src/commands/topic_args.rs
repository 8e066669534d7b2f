//! `--topic topic[:0,2,...]` arguments: the partitions they name, checked against the
//! cluster's metadata.

use anyhow::{bail, Context};
use sluice_wire::cluster::Cluster;
use sluice_wire::types::TopicPartition;

/// The partitions `topic` or `topic:0,2` arguments name, checked against the metadata.
pub(crate) async fn partitions_of(
    cluster: &Cluster,
    args: &[String],
) -> anyhow::Result<Vec<TopicPartition>> {
    let mut wanted: Vec<(&str, Option<Vec<i32>>)> = Vec::new();
    for arg in args {
        match arg.split_once(':') {
            None => wanted.push((arg, None)),
            Some((topic, list)) => {
                let parts = list
                    .split(',')
                    .map(|p| {
                        p.trim().parse::<i32>().with_context(|| {
                            format!("--topic {arg:?}: {p:?} is not a partition number")
                        })
                    })
                    .collect::<anyhow::Result<Vec<i32>>>()?;
                wanted.push((topic, Some(parts)));
            }
        }
    }
    let names: Vec<&str> = wanted.iter().map(|(t, _)| *t).collect();
    let md = cluster.refresh(&names, false).await?;
    let mut out = Vec::new();
    for (topic, parts) in wanted {
        let info = md
            .topic(topic)
            .filter(|t| t.error.is_none())
            .with_context(|| format!("topic {topic} does not exist"))?;
        let known: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        for p in parts.unwrap_or_else(|| known.clone()) {
            if !known.contains(&p) {
                bail!("topic {topic} has no partition {p}");
            }
            let tp = TopicPartition::new(topic, p);
            if !out.contains(&tp) {
                out.push(tp);
            }
        }
    }
    out.sort();
    Ok(out)
}
