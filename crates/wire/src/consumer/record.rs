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
    /// The headers, in order (names may repeat).
    pub fn headers(&self) -> HeaderIter {
        self.record.headers()
    }
    /// The value of the last header called `name`; `None` when there is none or its value
    /// is null (Java: `headers().lastHeader(name).value()`).
    ///
    /// The value is a [`Bytes`] view of the fetch response's buffer (a reference count,
    /// no copy): the record stores its headers encoded and decodes them on demand, so
    /// there is no decoded slice to borrow. A lookup walks the headers once.
    ///
    /// ```
    /// # use sluice_wire::consumer::ConsumerRecord;
    /// fn trace_id(record: &ConsumerRecord) -> Option<String> {
    ///     let value = record.header("trace-id")?;
    ///     Some(String::from_utf8_lossy(&value).into_owned())
    /// }
    /// ```
    pub fn header(&self, name: &str) -> Option<Bytes> {
        self.record
            .headers()
            .filter(|h| h.key.as_ref() == name.as_bytes())
            .last()
            .and_then(|h| h.value)
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
    use crate::records::{BatchOptions, Header, RecordBatchBuilder, RecordBatches};

    fn record_with(headers: &[Header<'_>]) -> ConsumerRecord {
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
            Header::new("trace", Some(&b"a"[..])),
            Header::new("null", None),
            Header::new("trace", Some(&b"b"[..])),
        ]);
        assert_eq!(r.header("trace").as_deref(), Some(&b"b"[..]));
        assert_eq!(r.header("null"), None);
        assert_eq!(r.header("absent"), None);
        let names: Vec<Bytes> = r.headers().map(|h| h.key).collect();
        assert_eq!(
            names,
            [&b"trace"[..], b"null", b"trace"].map(Bytes::from_static)
        );
    }
}
