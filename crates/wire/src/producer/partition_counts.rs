//! The partition counts `send` needs to place a record, read from the cluster's metadata
//! snapshot, or waited for (a metadata refresh, perhaps creating the topic) for up to
//! `max.block.ms` when the snapshot does not have the topic yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::append::WaitDeadline;

use super::ProducerConfig;
use crate::cluster::{Cluster, Metadata};
use crate::error::{Error, Result};

/// Partition counts already read from the current metadata snapshot: a `BTreeMap`
/// lookup by topic name in the snapshot costs more than the rest of a small send.
#[derive(Debug, Default)]
pub(super) struct PartitionCounts {
    cache: Mutex<Cache>,
}

/// Partition counts read from one metadata snapshot, dropped when the snapshot changes.
#[derive(Debug, Default)]
struct Cache {
    /// The snapshot they were read from (kept alive, so pointer equality is sound).
    snapshot: Option<Arc<Metadata>>,
    counts: HashMap<String, i32, foldhash::fast::RandomState>,
}

impl PartitionCounts {
    /// The partition count of `topic`, from the current snapshot when it has the topic,
    /// else refreshing metadata (creating the topic when `allow.auto.create.topics`)
    /// until `deadline`, the end of `max.block.ms`.
    pub(super) async fn get(
        &self,
        cluster: &Cluster,
        config: &ProducerConfig,
        topic: &str,
        deadline: &mut WaitDeadline,
    ) -> Result<i32> {
        match self.known(cluster, topic) {
            Some(n) => Ok(n),
            // Boxed: the wait's future (a refresh under a timeout) is most of a send's
            // future, which callers hold for every record, and it is rarely needed.
            None => Box::pin(Self::wait(cluster, config, topic, deadline)).await,
        }
    }

    /// The partition count of `topic` when the current snapshot has the topic.
    fn known(&self, cluster: &Cluster, topic: &str) -> Option<i32> {
        let metadata = cluster.metadata();
        let mut cache = crate::sync::lock(&self.cache);
        if cache
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &metadata))
        {
            if let Some(&n) = cache.counts.get(topic) {
                return Some(n);
            }
        } else {
            cache.snapshot = Some(Arc::clone(&metadata));
            cache.counts.clear();
        }
        let t = metadata.topic(topic)?;
        if t.error.is_some() || t.partitions.is_empty() {
            return None;
        }
        let n = i32::try_from(t.partitions.len()).ok()?;
        cache.counts.insert(topic.to_string(), n);
        Some(n)
    }

    /// Refreshes metadata until the topic is known or `deadline` passes.
    async fn wait(
        cluster: &Cluster,
        config: &ProducerConfig,
        topic: &str,
        deadline: &mut WaitDeadline,
    ) -> Result<i32> {
        let mut last_error: Option<Error> = None;
        loop {
            if let Some(t) = cluster.metadata().topic(topic) {
                match t.error {
                    None if !t.partitions.is_empty() => {
                        return i32::try_from(t.partitions.len())
                            .map_err(|_| Error::protocol("too many partitions"));
                    }
                    Some(code) if !code.is_retriable() => {
                        return Err(Error::kafka(code, format!("metadata for topic {topic}")));
                    }
                    Some(code) => {
                        last_error = Some(Error::kafka(code, format!("metadata for topic {topic}")))
                    }
                    None => {}
                }
            }
            let auto_create = config.allow_auto_create_topics;
            let wait = async {
                if let Err(e) = cluster.refresh(&[topic], auto_create).await {
                    last_error = Some(e);
                }
                if !cluster
                    .metadata()
                    .topic(topic)
                    .is_some_and(|t| t.error.is_none() && !t.partitions.is_empty())
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            if tokio::time::timeout_at(deadline.at(), wait).await.is_err() {
                let why = last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(Error::unknown_topic(format!(
                    "topic {topic} not present in metadata after max.block.ms ({} ms){why}",
                    config.max_block.as_millis()
                )));
            }
        }
    }
}
