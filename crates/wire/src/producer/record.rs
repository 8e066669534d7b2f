//! What a caller sends ([`ProducerRecord`]) and what comes back ([`RecordMetadata`],
//! through a [`Delivery`] future).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// A topic name as [`ProducerRecord::new`] takes it: `&str`, `String`, `&String`,
/// `Arc<str>` or `&Arc<str>`. The `Arc` forms are a reference count; the others allocate.
pub trait IntoTopic {
    /// The name as the record stores it.
    fn into_topic(self) -> Arc<str>;
}

impl IntoTopic for &str {
    fn into_topic(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl IntoTopic for String {
    fn into_topic(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl IntoTopic for &String {
    fn into_topic(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl IntoTopic for Arc<str> {
    fn into_topic(self) -> Arc<str> {
        self
    }
}

impl IntoTopic for &Arc<str> {
    fn into_topic(self) -> Arc<str> {
        Arc::clone(self)
    }
}

/// One record to produce (Java: `ProducerRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic. An `Arc<str>`: a sender of many records clones one (a reference count)
    /// instead of allocating a `String` per record; `&str` and `String` convert with
    /// [`ProducerRecord::new`].
    pub topic: Arc<str>,
    /// The key; keyed records are placed by murmur2 of the key (by default).
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order; a header value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The partition, bypassing the partitioner.
    pub partition: Option<i32>,
    /// The create timestamp in ms since the epoch; default: when `send` is called.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record with `value` for `topic` (a `&str`, a `String`, or an `Arc<str>`
    /// cloned per record, which spares an allocation).
    pub fn new(topic: impl IntoTopic, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into_topic(),
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value (`None`: a tombstone).
    pub fn value(mut self, value: Option<Bytes>) -> Self {
        self.value = value;
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// Sends to this partition instead of asking the partitioner.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Where a record was written (Java: `RecordMetadata`). Non-exhaustive: it may gain
/// fields (Java's has the serialized sizes) without a breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordMetadata {
    /// The topic, shared by every record of the batch (cloning it is a reference count,
    /// not an allocation per record).
    pub topic: std::sync::Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset; `-1` with `acks=0`, or when the broker reported the batch as
    /// an old duplicate (DUPLICATE_SEQUENCE_NUMBER) without its offset.
    pub offset: i64,
    /// The create time, or the broker's append time when the topic uses
    /// `LogAppendTime`.
    pub timestamp: i64,
}

/// The outcome of one record, resolved once the broker acknowledged it (or it failed for
/// good: fatal error, `delivery.timeout.ms` spent, or the producer closed).
///
/// Cancel-safe: dropping a `Delivery` never drops the record; it is still sent, only
/// its outcome goes unobserved.
#[must_use = "a Delivery does nothing unless awaited; dropping it still sends the record"]
pub struct Delivery {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Delivery {
    pub(crate) fn new(rx: oneshot::Receiver<Result<RecordMetadata>>) -> Self {
        Delivery { rx }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::producer_closed(
                "the producer stopped before the record's outcome was known",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}
