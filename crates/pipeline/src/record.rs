//! The request and response types that flow through the stack.

use std::sync::Arc;

use bytes::Bytes;

/// One record header: a name and an optional value (Kafka allows null header values).
pub type Header = (String, Option<Bytes>);

/// One consumed record with its coordinates: the request every layer sees.
///
/// Cloning is cheap (`Arc<str>` topic, reference-counted `Bytes`), which matters because
/// the retry layer keeps a copy for the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic the record was read from.
    pub topic: Arc<str>,
    /// The partition the record was read from.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record key, if any.
    pub key: Option<Bytes>,
    /// The record value, if any (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// The record headers, in wire order.
    pub headers: Vec<Header>,
    /// The record timestamp in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Which delivery attempt this is, starting at 1. The retry layer increments it.
    pub attempt: u32,
}

impl ConsumedRecord {
    /// A record at `topic`/`partition`/`offset` with no key, value or headers, timestamp 0
    /// and attempt 1. Mostly for tests and examples; the runner fills every field.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32, offset: i64) -> Self {
        ConsumedRecord {
            topic: topic.into(),
            partition,
            offset,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            attempt: 1,
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// One record to produce: what the user's service returns, and what the DLQ layer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The destination topic.
    pub topic: String,
    /// The destination partition; `None` lets the producer's partitioner choose.
    pub partition: Option<i32>,
    /// The record key, if any.
    pub key: Option<Bytes>,
    /// The record value, if any.
    pub value: Option<Bytes>,
    /// The record headers.
    pub headers: Vec<Header>,
    /// The timestamp in milliseconds since the Unix epoch; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
}

impl OutputRecord {
    /// A record for `topic` with no partition, key, value, headers or timestamp.
    pub fn new(topic: impl Into<String>) -> Self {
        OutputRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Returns the value of the last header called `name`, if any.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_ref())
    }
}

/// What the user's service returns for one record: zero or more records to produce.
pub type Processed = Vec<OutputRecord>;

/// Where a produced record landed, as acknowledged by the broker (or the in-memory sink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic written to.
    pub topic: String,
    /// The partition written to.
    pub partition: i32,
    /// The offset the record was given.
    pub offset: i64,
}
