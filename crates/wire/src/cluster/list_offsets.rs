//! ListOffsets through the partition leaders: a cluster service, used by admin
//! ([`Admin::list_offsets`](crate::admin::Admin::list_offsets)) and by the consumer
//! (position resolution, `auto.offset.reset`), which never import each other.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};

use super::Cluster;
use crate::error::{Error, ErrorKind, Result};
use crate::types::{topic_name, IsolationLevel};

/// How many times a retriable ListOffsets failure (and every admin call) is retried.
pub(crate) const RETRIES: u32 = 8;

/// The admin calls' backoff: 50 ms, doubling per attempt, capped at 1 s.
pub(crate) fn admin_backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(1))
}

/// Which offset [`Admin::list_offsets`](crate::admin::Admin::list_offsets) looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark: the offset the next record gets).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    pub(crate) fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// One partition's answer to [`Admin::list_offsets`](crate::admin::Admin::list_offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedOffset {
    /// The offset, or `-1` when no record has a timestamp at or after the one asked for.
    pub offset: i64,
    /// The timestamp of that record, `-1` for earliest and latest.
    pub timestamp: i64,
    /// The leader epoch of that record, `-1` when unknown.
    pub leader_epoch: i32,
}

/// Looks up an offset of each partition in `partitions` of `topic`, asking each
/// partition's leader; under [`IsolationLevel::ReadCommitted`], [`OffsetSpec::Latest`]
/// is the last stable offset.
///
/// Retriable errors (a leader that moved or has not taken over yet, a dropped
/// connection) refresh the metadata and try again, up to [`RETRIES`] times with a
/// growing backoff, as the Java admin client does.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    isolation: IsolationLevel,
) -> Result<BTreeMap<i32, ListedOffset>> {
    let mut attempt = 0;
    loop {
        match once(cluster, topic, partitions, spec, isolation).await {
            // A partition still missing after the refresh inside `list_offsets_once`
            // does not exist; retrying would only wait.
            Err(e)
                if e.is_retriable()
                    && e.kind() != ErrorKind::UnknownTopicOrPartition
                    && attempt < RETRIES =>
            {
                attempt += 1;
                tracing::debug!(topic, error = %e, attempt, "list offsets retried");
                tokio::time::sleep(admin_backoff(attempt)).await;
                cluster.refresh(&[topic], false).await?;
            }
            result => return result,
        }
    }
}

async fn once(
    cluster: &Cluster,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    isolation: IsolationLevel,
) -> Result<BTreeMap<i32, ListedOffset>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut md = cluster.metadata();
    if partitions.iter().any(|p| md.partition(topic, *p).is_none()) {
        md = cluster.refresh(&[topic], false).await?;
    }
    for &p in partitions {
        let info = md.partition(topic, p).ok_or_else(|| {
            Error::unknown_topic(format!("partition {topic}-{p} is not in the metadata"))
        })?;
        let leader = info
            .leader
            .ok_or_else(|| Error::no_broker(format!("partition {topic}-{p} has no leader")))?;
        by_leader.entry(leader).or_default().push(p);
    }
    let mut out = BTreeMap::new();
    for (leader, parts) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation.wire())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(spec.wire())
                        })
                        .collect(),
                )]);
        let response = cluster.broker(leader).await?.send(&request).await?;
        for t in response.topics {
            for p in t.partitions {
                Error::check_code(p.error_code, || {
                    format!("listing offsets of {topic}-{}", p.partition_index)
                })?;
                out.insert(
                    p.partition_index,
                    ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                        leader_epoch: p.leader_epoch,
                    },
                );
            }
        }
    }
    for p in partitions {
        if !out.contains_key(p) {
            return Err(Error::protocol(format!(
                "ListOffsets response has no entry for {topic}-{p}"
            )));
        }
    }
    Ok(out)
}
