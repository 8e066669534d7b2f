//! OffsetFetch: a group's committed offsets, asked of its coordinator. One request
//! builder and one response reader for the consumer (`committed`, positions from the
//! committed offsets) and admin (`group_offsets`, lag).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;

use crate::error::{Error, Result};
use crate::types::{topic_name, OffsetAndMetadata, TopicPartition};

/// The OffsetFetch request of `group` for `partitions` (`None`: every partition the
/// group has an offset for). `require_stable` (KIP-447) makes the coordinator answer
/// UNSTABLE_OFFSET_COMMIT while a transaction holds an offset of the partition.
pub(crate) fn request(
    group: &str,
    partitions: Option<&[TopicPartition]>,
    require_stable: bool,
) -> OffsetFetchRequest {
    let topics = partitions.map(|partitions| {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            topics
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        topics
            .into_iter()
            .map(|(t, parts)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(parts)
            })
            .collect()
    });
    OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_require_stable(require_stable)
        .with_topics(topics)
}

/// The committed offsets in `response`, per partition (`None` where the group has
/// committed nothing). The first error code, of the group or of a partition, is the
/// answer instead.
pub(crate) fn read(
    group: &str,
    response: OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
    Error::check_code(response.error_code, || {
        format!("fetching committed offsets of group {group}")
    })?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            Error::check_code(p.error_code, || {
                format!("committed offset of {tp} in group {group}")
            })?;
            let om = (p.committed_offset >= 0).then(|| OffsetAndMetadata {
                offset: p.committed_offset,
                metadata: p
                    .metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .filter(|m| !m.is_empty()),
                leader_epoch: (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch),
            });
            out.insert(tp, om);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponsePartition, OffsetFetchResponseTopic,
    };

    use super::*;
    use crate::error::KafkaCode;

    fn partition(index: i32, offset: i64, epoch: i32, meta: &str) -> OffsetFetchResponsePartition {
        OffsetFetchResponsePartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(epoch)
            .with_metadata(Some(StrBytes::from_string(meta.to_string())))
    }

    fn response(partitions: Vec<OffsetFetchResponsePartition>) -> OffsetFetchResponse {
        OffsetFetchResponse::default().with_topics(vec![OffsetFetchResponseTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(partitions)])
    }

    #[test]
    fn request_groups_partitions_by_topic_or_asks_for_all() {
        let parts = [
            TopicPartition::new("b", 1),
            TopicPartition::new("a", 0),
            TopicPartition::new("b", 0),
        ];
        let r = request("g", Some(&parts), true);
        assert_eq!(r.group_id.0.as_str(), "g");
        assert!(r.require_stable);
        let topics = r.topics.unwrap_or_default();
        let got: Vec<(&str, &[i32])> = topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
            .collect();
        assert_eq!(got, [("a", &[0][..]), ("b", &[1, 0][..])]);
        assert!(request("g", None, false).topics.is_none());
    }

    #[test]
    fn read_gives_offsets_metadata_epochs_and_none_for_uncommitted() {
        let got = read(
            "g",
            response(vec![partition(0, 42, 3, "m"), partition(1, -1, -1, "")]),
        );
        let got = got.ok().unwrap_or_default();
        assert_eq!(
            got.get(&TopicPartition::new("t", 0)),
            Some(&Some(OffsetAndMetadata {
                offset: 42,
                metadata: Some("m".into()),
                leader_epoch: Some(3),
            }))
        );
        assert_eq!(got.get(&TopicPartition::new("t", 1)), Some(&None));
        let plain = read("g", response(vec![partition(0, 7, -1, "")]));
        assert_eq!(
            plain.ok().and_then(|m| m.into_values().next().flatten()),
            Some(OffsetAndMetadata::new(7))
        );
    }

    #[test]
    fn read_fails_on_a_group_or_partition_error() {
        let group = response(vec![]).with_error_code(KafkaCode::GroupAuthorizationFailed.code());
        let e = read("g", group).err();
        assert_eq!(
            e.and_then(|e| e.kafka_code()),
            Some(KafkaCode::GroupAuthorizationFailed)
        );
        let part = response(vec![
            partition(0, 1, -1, "").with_error_code(KafkaCode::UnstableOffsetCommit.code())
        ]);
        let e = read("g", part).err();
        assert_eq!(
            e.and_then(|e| e.kafka_code()),
            Some(KafkaCode::UnstableOffsetCommit)
        );
    }
}
