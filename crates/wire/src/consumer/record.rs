//! What `recv` hands out: a record with its topic and partition, and the records of one
//! partition from one fetch.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::TopicPartition;
use crate::codec::{AsyncDeserializer, CodecError, Deserializer};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::records::{HeaderIter, Record, TimestampType};

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
    /// Who set the timestamp: the producer (`CreateTime`) or the broker
    /// (`LogAppendTime`), as Java's `ConsumerRecord.timestampType()`.
    pub fn timestamp_type(&self) -> TimestampType {
        self.record.timestamp_type()
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

    /// The key, deserialized with `deserializer`; `Ok(None)` when the key is null.
    ///
    /// Errors with [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) when the
    /// key does not decode: this record's failure, the consumer is fine (see
    /// [`codec`](crate::codec)).
    pub fn key_as<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>> {
        self.decode(self.key(), "key", |topic, headers, data| {
            deserializer.deserialize(topic, headers, data)
        })
    }

    /// The value, deserialized with `deserializer`; `Ok(None)` for a tombstone.
    ///
    /// Errors with [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) when the
    /// value does not decode, as [`key_as`](Self::key_as).
    ///
    /// ```
    /// # use sluice_wire::consumer::ConsumerRecord;
    /// use sluice_wire::codec::BigEndian;
    ///
    /// fn amount(record: &ConsumerRecord) -> Result<i64, sluice_wire::Error> {
    ///     Ok(record.value_as(&BigEndian)?.unwrap_or(0))
    /// }
    /// ```
    pub fn value_as<T>(&self, deserializer: &impl Deserializer<T>) -> Result<Option<T>> {
        self.decode(self.value(), "value", |topic, headers, data| {
            deserializer.deserialize(topic, headers, data)
        })
    }

    /// [`key_as`](Self::key_as) with a deserializer that may wait (a schema registry's).
    pub async fn key_as_async<T>(
        &self,
        deserializer: &impl AsyncDeserializer<T>,
    ) -> Result<Option<T>> {
        self.decode_async(self.key(), "key", deserializer).await
    }

    /// [`value_as`](Self::value_as) with a deserializer that may wait (a schema
    /// registry's).
    pub async fn value_as_async<T>(
        &self,
        deserializer: &impl AsyncDeserializer<T>,
    ) -> Result<Option<T>> {
        self.decode_async(self.value(), "value", deserializer).await
    }

    async fn decode_async<T>(
        &self,
        data: Option<&Bytes>,
        side: &str,
        deserializer: &impl AsyncDeserializer<T>,
    ) -> Result<Option<T>> {
        let Some(data) = data else {
            return Ok(None);
        };
        let headers: Vec<Header> = self.headers().collect();
        let decoded = deserializer.deserialize(&self.topic, &headers, data).await;
        self.decoded(decoded, side).map(Some)
    }

    /// `data` (the key or the value) through `deserialize`, with the headers collected
    /// (no allocation for a record without headers).
    fn decode<T>(
        &self,
        data: Option<&Bytes>,
        side: &str,
        deserialize: impl FnOnce(&str, &[Header], &Bytes) -> std::result::Result<T, CodecError>,
    ) -> Result<Option<T>> {
        let Some(data) = data else {
            return Ok(None);
        };
        let headers: Vec<Header> = self.headers().collect();
        self.decoded(deserialize(&self.topic, &headers, data), side)
            .map(Some)
    }

    /// A deserializer's answer, its error naming the record.
    fn decoded<T>(&self, decoded: std::result::Result<T, CodecError>, side: &str) -> Result<T> {
        decoded.map_err(|e| {
            Error::serialization(
                format!(
                    "the {side} of {}-{} at offset {}",
                    self.topic,
                    self.partition,
                    self.offset()
                ),
                e,
            )
        })
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
        record_of(Some(b"k"), Some(b"v"), headers)
    }

    fn record_of(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> ConsumerRecord {
        let mut b = RecordBatchBuilder::new(BatchOptions::default());
        b.append(0, key, value, headers).unwrap();
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

    #[test]
    fn key_and_value_deserialize_and_a_null_is_none() {
        use crate::codec::{BigEndian, Utf8};
        let r = record_of(Some(&[0, 0, 0, 9]), Some(b"hi"), &[]);
        assert_eq!(r.key_as::<i32>(&BigEndian).unwrap(), Some(9));
        assert_eq!(r.value_as::<String>(&Utf8).unwrap(), Some("hi".to_owned()));
        let tombstone = record_of(None, None, &[]);
        assert_eq!(tombstone.key_as::<i32>(&BigEndian).unwrap(), None);
        assert_eq!(tombstone.value_as::<String>(&Utf8).unwrap(), None);
    }

    #[test]
    fn a_value_that_does_not_decode_is_a_serialization_error_naming_the_record() {
        use crate::codec::Utf8;
        let r = record_of(None, Some(b"\xff"), &[]);
        let e = r.value_as::<String>(&Utf8).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Serialization);
        assert!(
            e.to_string().contains("the value of t-0 at offset 0"),
            "{e}"
        );
        assert!(e.codec_error().is_some());
    }

    /// Decodes the value only when the record has a `format: text` header, as a
    /// registry-backed deserializer that waits for its schema would.
    struct ByHeader;
    impl AsyncDeserializer<String> for ByHeader {
        async fn deserialize(
            &self,
            _: &str,
            headers: &[Header],
            data: &Bytes,
        ) -> std::result::Result<String, CodecError> {
            tokio::task::yield_now().await;
            match crate::header::last_header(headers, "format").and_then(Header::value) {
                Some(b"text") => Ok(String::from_utf8_lossy(data).into_owned()),
                _ => Err(CodecError::new("no format header")),
            }
        }
    }

    #[tokio::test]
    async fn an_async_deserializer_sees_the_headers() {
        let r = record_of(
            Some(b"k"),
            Some(b"v"),
            &[HeaderRef::new("format", Some(&b"text"[..]))],
        );
        assert_eq!(
            r.value_as_async(&ByHeader).await.unwrap(),
            Some("v".to_owned())
        );
        assert_eq!(
            r.key_as_async(&ByHeader).await.unwrap(),
            Some("k".to_owned())
        );
        let bare = record_of(None, Some(b"v"), &[]);
        assert_eq!(bare.key_as_async(&ByHeader).await.unwrap(), None);
        let e = bare.value_as_async(&ByHeader).await.unwrap_err();
        assert_eq!(
            e.codec_error().map(CodecError::message),
            Some("no format header")
        );
    }
}
