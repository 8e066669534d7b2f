//! What `recv` hands out: a record with its topic and partition, and the records of one
//! partition from one fetch.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::TopicPartition;
use crate::records::{HeaderIter, Record};

/// One record with its topic and partition. Key, value and headers share the fetch
/// response's buffer (no copy).
#[derive(Clone)]
pub struct ConsumerRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) record: Record,
    /// The partition leader epoch of the record's batch; `None` when it has none.
    pub(crate) leader_epoch: Option<i32>,
}

impl ConsumerRecord {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }
    /// The topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.as_ref(), self.partition)
    }
    /// The offset.
    pub fn offset(&self) -> i64 {
        self.record.offset()
    }
    /// The timestamp in ms since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }
    /// The key; `None` when null.
    pub fn key(&self) -> Option<&Bytes> {
        self.record.key()
    }
    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.record.value()
    }
    /// The headers, in order.
    pub fn headers(&self) -> HeaderIter {
        self.record.headers()
    }
    /// The leader epoch of the batch this record came from (KIP-320), `None` when the
    /// batch carries none. Commit it with the offset
    /// ([`OffsetAndMetadata::leader_epoch`](super::OffsetAndMetadata::leader_epoch)),
    /// so a consumer that resumes from the commit can check the log was not truncated
    /// below it (Java: `ConsumerRecord.leaderEpoch()`).
    pub fn leader_epoch(&self) -> Option<i32> {
        self.leader_epoch
    }
    /// The decoded record.
    pub fn record(&self) -> &Record {
        &self.record
    }
}

impl fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("record", &self.record)
            .finish()
    }
}

/// The records of one partition from one fetch, for batch-at-a-time processing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PartitionRecords {
    /// The partition.
    pub partition: TopicPartition,
    /// The records, in offset order.
    pub records: Vec<ConsumerRecord>,
}
