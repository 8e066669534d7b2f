//! OffsetCommit: committed offsets sent to a group's coordinator. One request builder
//! and one response reader for the consumer (a member's commits) and admin (offsets set
//! from outside the group, with no member and no generation).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use crate::error::{Error, Result};
use crate::types::{topic_name, OffsetAndMetadata, TopicPartition};

/// Who commits: a member of the group's current generation, or an administrator.
#[derive(Debug, Clone, Default)]
pub(crate) struct Committer {
    /// The member id; empty for an administrator.
    pub(crate) member_id: String,
    /// The generation; -1 for an administrator (or a consumer without a subscription).
    pub(crate) generation: i32,
    /// The static member's `group.instance.id`, sent only with a generation.
    pub(crate) group_instance_id: Option<String>,
}

impl Committer {
    /// An administrator: no member, no generation (Java's
    /// `Admin.alterConsumerGroupOffsets`).
    pub(crate) fn admin() -> Self {
        Committer {
            generation: -1,
            ..Committer::default()
        }
    }
}

/// The OffsetCommit request of `group` setting `offsets` on behalf of `committer`.
pub(crate) fn request(
    group: &str,
    committer: Committer,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, om) in offsets {
        topics.entry(tp.topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(om.offset)
                .with_committed_leader_epoch(om.leader_epoch.unwrap_or(-1))
                .with_committed_metadata(Some(StrBytes::from_string(
                    om.metadata.clone().unwrap_or_default(),
                ))),
        );
    }
    let group_instance_id = committer
        .group_instance_id
        .filter(|_| committer.generation >= 0)
        .map(StrBytes::from_string);
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(committer.generation)
        .with_member_id(StrBytes::from_string(committer.member_id))
        .with_group_instance_id(group_instance_id)
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(parts)
                })
                .collect(),
        )
}

/// The first partition the coordinator refused, as the error; `Ok` when it took all.
pub(crate) fn read(group: &str, response: &OffsetCommitResponse) -> Result<()> {
    for t in &response.topics {
        for p in &t.partitions {
            Error::check_code(p.error_code, || {
                format!(
                    "committing the offset of {}-{} for group {group}",
                    t.name.0.as_str(),
                    p.partition_index
                )
            })?;
        }
    }
    Ok(())
}
