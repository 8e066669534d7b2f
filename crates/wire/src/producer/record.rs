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
use crate::header::{last_header, Header};

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
    /// Headers, in order; keys may repeat and a value may be null.
    pub headers: Vec<Header>,
    /// The partition, bypassing the partitioner.
    pub partition: Option<i32>,
    /// The create timestamp in ms since the epoch; default: when `send` is called.
    pub timestamp: Option<i64>,
    /// A sub-key for the partitioner, never sent to Kafka; see [`ProducerRecord::sub_key`].
    pub sub_key: Option<Bytes>,
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
            sub_key: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the key or, with `None`, clears it: forwarding a consumed record's optional
    /// key needs no `if let`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use sluice_wire::producer::ProducerRecord;
    ///
    /// let consumed_key: Option<Bytes> = Some(Bytes::from_static(b"account-7"));
    /// let keyed = ProducerRecord::new("out", "v").key_opt(consumed_key);
    /// assert_eq!(keyed.key.as_deref(), Some(&b"account-7"[..]));
    ///
    /// let keyless = ProducerRecord::new("out", "v").key("k").key_opt(None);
    /// assert_eq!(keyless.key, None);
    /// ```
    pub fn key_opt(mut self, key: Option<Bytes>) -> Self {
        self.key = key;
        self
    }

    /// Sets a sub-key: a finer grouping within the key that the partitioner may use,
    /// never written to Kafka.
    ///
    /// Only partitioners that spread one key over several partitions read it: with a
    /// [`HotKeyPartitioner`](sluice_partition::HotKeyPartitioner) configured with
    /// [`SpreadStrategy::SubKey`](sluice_partition::SpreadStrategy::SubKey), the records
    /// of a *hot* key go to a partition chosen by their sub-key within the key's small
    /// sub-range of partitions. The others ignore it; so does a record without a key or
    /// with its own [`partition`](ProducerRecord::partition).
    ///
    /// **The ordering trade-off.** For a hot key, order then holds per (key, sub-key), not
    /// per key: records with equal sub-keys land on one partition in send order, records
    /// with different sub-keys may be consumed in any relative order. Cold keys keep one
    /// partition and full per-key order. Choose a sub-key whose order matters to your
    /// consumers (an order id within an account, a [`time_bucket`](sluice_partition::time_bucket)).
    ///
    /// ```
    /// use sluice_partition::{HotKeyConfig, HotKeyPartitioner, SpreadStrategy};
    /// use sluice_wire::producer::{ProducerConfig, ProducerRecord};
    ///
    /// // Hot accounts spread over 4 partitions, by order id within the account.
    /// let config = ProducerConfig::new("127.0.0.1:9092").partitioner(|| {
    ///     Box::new(HotKeyPartitioner::new(
    ///         HotKeyConfig::new().spread(4).strategy(SpreadStrategy::SubKey),
    ///     ))
    /// });
    /// # let _ = config;
    /// let record = ProducerRecord::new("payments", "{..}")
    ///     .key("account-1")
    ///     .sub_key("order-42");
    /// assert_eq!(record.sub_key.as_deref(), Some(&b"order-42"[..]));
    /// ```
    pub fn sub_key(mut self, sub_key: impl Into<Bytes>) -> Self {
        self.sub_key = Some(sub_key.into());
        self
    }

    /// Sets the value (`None`: a tombstone).
    pub fn value(mut self, value: Option<Bytes>) -> Self {
        self.value = value;
        self
    }

    /// Adds a header (`None`: a null value); a key may be added more than once. The
    /// lookups are [`last_header`](Self::last_header) and
    /// [`header_value`](Self::header_value), as on every record type.
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    /// The last header called `name` (Java: `headers().lastHeader(name)`).
    ///
    /// ```
    /// use sluice_wire::producer::ProducerRecord;
    ///
    /// let record = ProducerRecord::new("orders", "v")
    ///     .header("source", Some("web".into()))
    ///     .header("source", Some("app".into()))
    ///     .header("marker", None);
    /// assert_eq!(record.last_header("source").map(|h| h.value()), Some(Some(&b"app"[..])));
    /// assert_eq!(record.header_value("source"), Some(&b"app"[..]));
    /// // A null value: the header is there, its value is not.
    /// assert!(record.last_header("marker").is_some());
    /// assert_eq!(record.header_value("marker"), None);
    /// assert!(record.last_header("absent").is_none());
    /// ```
    pub fn last_header(&self, name: &str) -> Option<&Header> {
        last_header(&self.headers, name)
    }

    /// The value of the last header called `name`; `None` when there is none or its value
    /// is null.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.last_header(name).and_then(Header::value)
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
