//! What `recv` hands out: a record with its topic and partition, and the records of one
//! partition from one fetch.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::TopicPartition;
use crate::header::Header;
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
    /// The headers, in order (names may repeat), decoded on demand: each [`Header`]'s key
    /// and value are views of the fetch response's buffer (no copy).
    pub fn headers(&self) -> HeaderIter {
        self.record.headers()
    }
    /// The last header called `name` (Java: `headers().lastHeader(name)`).
    ///
    /// The record stores its headers encoded and decodes them on demand, so the header is
    /// returned owned rather than borrowed: two [`Bytes`] views of the fetch response's
    /// buffer (reference counts, no copy). A lookup walks the headers once.
    ///
    /// ```
    /// # use sluice_wire::consumer::ConsumerRecord;
    /// fn trace_id(record: &ConsumerRecord) -> Option<String> {
    ///     let header = record.last_header("trace-id")?;
    ///     Some(String::from_utf8_lossy(header.value()?).into_owned())
    /// }
    /// ```
    pub fn last_header(&self, name: &str) -> Option<Header> {
        self.record.headers().filter(|h| h.is(name)).last()
    }
    /// The value of the last header called `name`; `None` when there is none or its value
    /// is null. A [`Bytes`] view of the fetch response's buffer, as [`last_header`](Self::last_header).
    pub fn header_value(&self, name: &str) -> Option<Bytes> {
        self.last_header(name)
            .and_then(|h| h.value_bytes().cloned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, HeaderRef, RecordBatchBuilder, RecordBatches};

    fn record_with(headers: &[HeaderRef<'_>]) -> ConsumerRecord {
        let mut b = RecordBatchBuilder::new(BatchOptions::default());
        b.append(0, Some(b"k"), Some(b"v"), headers).unwrap();
        let batch = RecordBatches::new(b.finish().unwrap())
            .next()
            .unwrap()
            .unwrap();
        let record = batch.records().unwrap().next().unwrap().unwrap();
        ConsumerRecord {
            topic: Arc::from("t"),
            partition: 0,
            record,
            leader_epoch: None,
        }
    }

    #[test]
    fn header_finds_the_last_value_of_a_name() {
        let r = record_with(&[
            HeaderRef::new("trace", Some(&b"a"[..])),
            HeaderRef::new("null", None),
            HeaderRef::new("trace", Some(&b"b"[..])),
        ]);
        assert_eq!(r.header_value("trace").as_deref(), Some(&b"b"[..]));
        assert_eq!(r.header_value("null"), None);
        assert!(r.last_header("null").is_some());
        assert_eq!(r.header_value("absent"), None);
        assert!(r.last_header("absent").is_none());
        let names: Vec<String> = r.headers().map(|h| h.key().to_owned()).collect();
        assert_eq!(names, ["trace", "null", "trace"]);
    }
}
