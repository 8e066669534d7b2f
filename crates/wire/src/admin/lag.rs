//! A consumer group's lag per partition, counted for every partition of the topics it
//! consumes, including those it has never committed an offset for.
//!
//! Java's `kafka-consumer-groups --describe` shows such a partition's lag as `-`, and a
//! total that leaves it out reads as "almost caught up" while nothing was processed. To
//! an operator every record a group has not processed is lag, so here a partition with
//! no committed offset counts from where the group's consumers would start: its
//! [`UncommittedFrom`] point. An admin cannot know the consumers' `auto.offset.reset`,
//! so the caller says; the default is the log start offset ("everything not processed").
//!
//! The status of a group over time (Burrow's rules) is in [`status`]; the replica count
//! KEDA's Kafka scaler would choose is in [`scaling`].

use std::collections::{BTreeMap, BTreeSet};

use super::{Admin, GroupDescription, OffsetSpec};
use crate::error::{Error, KafkaCode, Result};
use crate::types::{IsolationLevel, TopicPartition};

pub mod scaling;
pub mod status;

use status::LagSample;

/// Where a partition with no committed offset counts its lag from: where the group's
/// consumers would start reading it (their `auto.offset.reset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UncommittedFrom {
    /// The log start offset: every record still in the log is lag (`earliest`).
    #[default]
    Earliest,
    /// The log end offset: a consumer would skip what is there, so the lag is 0
    /// (`latest`).
    Latest,
}

/// The lag of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset; `None` when nothing is committed.
    pub committed: Option<i64>,
    /// Where the lag counts from: the committed offset, else the reset point (log start
    /// or log end, per [`UncommittedFrom`]).
    pub position: i64,
    /// The log start offset.
    pub log_start: i64,
    /// The log end offset (the last stable offset under read_committed).
    pub log_end: i64,
    /// `log_end - position`, never negative.
    pub lag: i64,
    /// The member id of the partition's owner, if any.
    pub member: Option<String>,
}

impl PartitionLag {
    /// True when the group has committed an offset for this partition.
    pub fn is_committed(&self) -> bool {
        self.committed.is_some()
    }
}

/// What [`Admin::lag`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupLag {
    /// The group as DescribeGroups shows it (state, assignor, members).
    pub group: GroupDescription,
    /// Per partition, sorted by topic and partition.
    pub partitions: Vec<PartitionLag>,
    /// The sum of every partition's lag, committed or not.
    pub total: i64,
}

impl GroupLag {
    /// The summed lag per topic.
    pub fn per_topic(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for p in &self.partitions {
            *out.entry(p.partition.topic.clone()).or_insert(0) += p.lag;
        }
        out
    }

    /// One [`LagSample`] per partition, stamped `at_ms`, for a [`LagEvaluator`]
    /// (`evaluator.record(tp, sample)`).
    ///
    /// [`LagEvaluator`]: status::LagEvaluator
    pub fn samples(&self, at_ms: i64) -> impl Iterator<Item = (TopicPartition, LagSample)> + '_ {
        self.partitions.iter().map(move |p| {
            let sample = LagSample {
                at_ms,
                offset: p.position,
                end: p.log_end,
            };
            (p.partition.clone(), sample)
        })
    }

    /// The summed lag of the partitions without a committed offset.
    pub fn uncommitted_total(&self) -> i64 {
        self.partitions
            .iter()
            .filter(|p| !p.is_committed())
            .map(|p| p.lag)
            .sum()
    }
}

impl Admin {
    /// The lag of `group` on every partition of every topic it has committed offsets
    /// for or is assigned: log end offset (last stable offset under `read_committed`)
    /// minus the committed offset, or minus the log start offset where nothing is
    /// committed (see [`lag_from`](Self::lag_from) to count those from the log end).
    ///
    /// A group the coordinator does not know (no members, no committed offsets) fails
    /// with `GROUP_ID_NOT_FOUND`.
    pub async fn lag(&self, group: &str, isolation: IsolationLevel) -> Result<GroupLag> {
        self.lag_from(group, isolation, UncommittedFrom::Earliest)
            .await
    }

    /// Like [`lag`](Self::lag), counting partitions without a committed offset from
    /// `uncommitted`.
    pub async fn lag_from(
        &self,
        group: &str,
        isolation: IsolationLevel,
        uncommitted: UncommittedFrom,
    ) -> Result<GroupLag> {
        let committed = self.group_offsets(group).await?;
        let description = self.describe_group(group).await?;
        if committed.is_empty() && description.members.is_empty() && description.state == "Dead" {
            return Err(Error::kafka(
                KafkaCode::GroupIdNotFound,
                format!("group {group} does not exist"),
            ));
        }
        let mut topics: BTreeSet<String> = committed.keys().map(|tp| tp.topic.clone()).collect();
        for m in &description.members {
            topics.extend(m.assignment.iter().map(|tp| tp.topic.clone()));
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let md = self.cluster.refresh(&names, false).await?;
        let mut out = Vec::new();
        for topic in &topics {
            // Offsets committed for a topic since deleted have no log to lag behind.
            let Some(info) = md.topic(topic).filter(|t| t.error.is_none()) else {
                tracing::debug!(topic = %topic, group, "lag: topic not in the metadata, skipped");
                continue;
            };
            let parts: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
            let ends = self
                .list_offsets_with_isolation(topic, &parts, OffsetSpec::Latest, isolation)
                .await?;
            let starts = self
                .list_offsets(topic, &parts, OffsetSpec::Earliest)
                .await?;
            for p in parts {
                let tp = TopicPartition::new(topic.clone(), p);
                let log_end = ends.get(&p).map_or(0, |l| l.offset);
                let log_start = starts.get(&p).map_or(0, |l| l.offset);
                let committed = committed.get(&tp).map(|o| o.offset);
                let position = committed.unwrap_or(match uncommitted {
                    UncommittedFrom::Earliest => log_start,
                    UncommittedFrom::Latest => log_end,
                });
                out.push(PartitionLag {
                    member: description.owner(&tp).map(|m| m.member_id.clone()),
                    lag: (log_end - position).max(0),
                    committed,
                    position,
                    log_start,
                    log_end,
                    partition: tp,
                });
            }
        }
        let total = out.iter().map(|p| p.lag).sum();
        Ok(GroupLag {
            group: description,
            partitions: out,
            total,
        })
    }
}
