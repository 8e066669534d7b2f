//! The vocabulary the producer, the consumer and admin share: partitions, offsets to
//! commit, acks, isolation levels, a consumer's group membership.
//!
//! A leaf: it imports nothing of this crate, so every module can use it without tying
//! itself to another client. Types that stand for a protocol field give its code with a
//! crate-private `wire()`.

use std::fmt;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// An offset to commit: the offset of the next record to read, with optional metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to read (one past the last processed record).
    pub offset: i64,
    /// Free text stored with the offset.
    pub metadata: Option<String>,
    /// The leader epoch of the last processed record, when known.
    pub leader_epoch: Option<i32>,
}

impl OffsetAndMetadata {
    /// `offset` with no metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: None,
            leader_epoch: None,
        }
    }

    /// `offset` with `metadata`.
    pub fn with_metadata(offset: i64, metadata: impl Into<String>) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: Some(metadata.into()),
            leader_epoch: None,
        }
    }
}

/// How many brokers must have a produced batch before the leader answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// The broker does not answer (`acks=0`): no offset comes back and loss goes unseen.
    None,
    /// The leader has written it (`acks=1`).
    Leader,
    /// Every in-sync replica has it (`acks=all`), the Kafka 3.0+ default.
    #[default]
    All,
}

impl Acks {
    /// The `acks` field of a Produce request.
    pub(crate) fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Which records a fetch may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, including records of open and aborted
    /// transactions.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset; aborted transactions are listed so the reader
    /// can drop them.
    ReadCommitted,
}

impl IsolationLevel {
    /// The `isolation_level` field of Fetch and ListOffsets requests.
    pub(crate) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// A consumer's group membership, for committing offsets in a producer's transaction
/// (Java: `ConsumerGroupMetadata`). The consumer gives it
/// ([`Consumer::group_metadata`](crate::consumer::Consumer::group_metadata)); the
/// transactional producer takes it
/// ([`send_offsets_to_transaction`](crate::producer::Producer::send_offsets_to_transaction)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation the member joined, -1 when not a member.
    pub generation_id: i32,
    /// The member id the coordinator gave, empty when not a member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// The metadata of `group_id` for a committer that is not a member (generation -1,
    /// no member id, no instance id), which the coordinator accepts for a group with no
    /// members (Java: `new ConsumerGroupMetadata(groupId)`).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// A topic name as request messages carry it.
pub(crate) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_are_the_protocol_s() {
        assert_eq!(Acks::None.wire(), 0);
        assert_eq!(Acks::Leader.wire(), 1);
        assert_eq!(Acks::All.wire(), -1);
        assert_eq!(IsolationLevel::ReadUncommitted.wire(), 0);
        assert_eq!(IsolationLevel::ReadCommitted.wire(), 1);
    }

    #[test]
    fn a_topic_partition_displays_as_kafka_names_it() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
        assert!(TopicPartition::new("a", 9) < TopicPartition::new("b", 0));
    }
}
