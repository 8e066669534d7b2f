//! The request and response types that flow through the stack.

use std::sync::Arc;

use bytes::Bytes;
use sluice_wire::producer::IntoTopic;
use sluice_wire::Header;

/// The last header called `name` (Java: `Headers.lastHeader(name)`). One lookup for both
/// record types.
fn last_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().rev().find(|h| h.key() == name)
}

/// One consumed record with its coordinates: the request every layer sees.
///
/// Cloning is cheap (`Arc<str>` topic, reference-counted `Bytes`), which matters because
/// the retry layer keeps a copy for the next attempt.
///
/// ```
/// use sluice_pipeline::ConsumedRecord;
///
/// let record = ConsumedRecord::new("orders", 0, 7)
///     .with_key("o-1")
///     .with_header("source", "web")
///     .with_header("source", "app");
/// // The last header of a name wins, as Java's `lastHeader`.
/// assert_eq!(record.header_value("source"), Some(&b"app"[..]));
/// assert_eq!(record.last_header("source").map(|h| h.key()), Some("source"));
/// assert!(record.last_header("trace").is_none());
/// assert_eq!(
///     record.headers.iter().map(|h| (h.key(), h.value())).collect::<Vec<_>>(),
///     [("source", Some(&b"web"[..])), ("source", Some(&b"app"[..]))]
/// );
/// ```
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
    /// The record headers, in wire order: [`Header`]s as the consumer decoded them (key and
    /// value share the fetch response's buffer).
    pub headers: Vec<Header>,
    /// The record timestamp in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Which delivery attempt this is, starting at 1. The retry layer increments it.
    pub attempt: u32,
}

impl ConsumedRecord {
    /// A record at `topic`/`partition`/`offset` with no key, value or headers, timestamp 0
    /// and attempt 1. Mostly for tests and examples; the runner fills every field. The
    /// topic is taken as [`OutputRecord::new`] takes it ([`IntoTopic`]: `&str`, `String`,
    /// `&String`, `Arc<str>`, `&Arc<str>`).
    pub fn new(topic: impl IntoTopic, partition: i32, offset: i64) -> Self {
        ConsumedRecord {
            topic: topic.into_topic(),
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

    /// Appends a header with a (non-null) value.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(name, Some(value.into())));
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The key's bytes; `None` when the record has no key. Named as
    /// [`ConsumerRecord::key`](sluice_wire::consumer::ConsumerRecord::key); the `key`
    /// field holds the shared [`Bytes`] (clone it to keep them).
    ///
    /// ```
    /// use sluice_pipeline::ConsumedRecord;
    ///
    /// let record = ConsumedRecord::new("orders", 0, 7).with_key("o-1").with_value("3");
    /// assert_eq!(record.key(), Some(&b"o-1"[..]));
    /// // A `&[u8]` straight away, for parsers that take a slice.
    /// let quantity: u32 = std::str::from_utf8(record.value().unwrap_or_default())
    ///     .unwrap()
    ///     .parse()
    ///     .unwrap();
    /// assert_eq!(quantity, 3);
    /// assert_eq!(ConsumedRecord::new("orders", 0, 8).value(), None, "a tombstone");
    /// ```
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value's bytes; `None` for a tombstone. Named as
    /// [`ConsumerRecord::value`](sluice_wire::consumer::ConsumerRecord::value); the
    /// `value` field holds the shared [`Bytes`].
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The last header called `name` (Java: `headers().lastHeader(name)`); the same
    /// lookup as on [`OutputRecord`], [`ProducerRecord`](sluice_wire::producer::ProducerRecord)
    /// and [`ConsumerRecord`](sluice_wire::consumer::ConsumerRecord).
    pub fn last_header(&self, name: &str) -> Option<&Header> {
        last_header(&self.headers, name)
    }

    /// The value of the last header called `name`; `None` when there is none or its value
    /// is null (Java: `headers().lastHeader(name).value()`).
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.last_header(name).and_then(Header::value)
    }

    /// An output to `topic` with this record's key and `value`: the common "same key, new
    /// value" answer, which keeps a key's outputs together under the producer's
    /// partitioner. Headers, partition and timestamp are not carried over (add them with
    /// the [`OutputRecord`] builder; `.timestamp(record.timestamp)` keeps the input's time).
    ///
    /// ```
    /// use sluice_pipeline::ConsumedRecord;
    ///
    /// let input = ConsumedRecord::new("orders", 3, 41).with_key("o-1").with_value("3");
    /// let out = input.forward("reservations", "reserved 3");
    /// assert_eq!(out.key.as_deref(), Some(&b"o-1"[..]));
    /// assert_eq!(out.value.as_deref(), Some(&b"reserved 3"[..]));
    /// assert_eq!(out.partition, None);
    /// // A keyless input answers keyless.
    /// let keyless = ConsumedRecord::new("orders", 0, 42).forward("reservations", "x");
    /// assert_eq!(keyless.key, None);
    /// ```
    pub fn forward(&self, topic: impl IntoTopic, value: impl Into<Bytes>) -> OutputRecord {
        OutputRecord::new(topic, value).key_opt(self.key.clone())
    }
}

/// One record to produce: what the user's service returns, and what the DLQ layer sends.
///
/// Built like [`ProducerRecord`](sluice_wire::producer::ProducerRecord), with the same
/// methods and argument types: [`new`](Self::new) (topic and value), then
/// [`key`](Self::key), [`key_opt`](Self::key_opt), [`value`](Self::value) (`None`: a
/// tombstone), [`header`](Self::header), [`partition`](Self::partition),
/// [`timestamp`](Self::timestamp). Headers are looked up as on every record type:
/// [`last_header`](Self::last_header) and [`header_value`](Self::header_value).
///
/// ```
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use sluice_pipeline::OutputRecord;
///
/// // A pipeline holds its output topic once; each record clones the `Arc` (a reference
/// // count, not a `String` per output).
/// let topic: Arc<str> = Arc::from("invoices");
/// let out = OutputRecord::new(&topic, "total=30")
///     .key("customer-7")
///     .header("source", Some(Bytes::from_static(b"billing")))
///     .header("trace", None)
///     .partition(2)
///     .timestamp(1_700_000_000_000);
/// assert!(Arc::ptr_eq(&out.topic, &topic));
/// assert_eq!(out.key.as_deref(), Some(&b"customer-7"[..]));
/// assert_eq!(out.header_value("source"), Some(&b"billing"[..]));
/// assert_eq!(out.header_value("trace"), None);
/// assert!(out.last_header("trace").is_some()); // there, with a null value
/// assert_eq!(
///     out.headers.iter().map(|h| (h.key(), h.value())).collect::<Vec<_>>(),
///     [("source", Some(&b"billing"[..])), ("trace", None)]
/// );
/// assert_eq!((out.partition, out.timestamp), (Some(2), Some(1_700_000_000_000)));
///
/// let tombstone = OutputRecord::new("accounts", "").key("a-1").value(None);
/// assert_eq!(tombstone.value, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The destination topic. An `Arc<str>`, as the producer's: a pipeline that holds its
    /// topic as an `Arc<str>` clones it (a reference count) instead of allocating a
    /// `String` per output.
    pub topic: Arc<str>,
    /// The destination partition; `None` lets the producer's partitioner choose.
    pub partition: Option<i32>,
    /// The record key, if any.
    pub key: Option<Bytes>,
    /// The record value, if any (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// The record headers, in order.
    pub headers: Vec<Header>,
    /// The timestamp in milliseconds since the Unix epoch; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
}

impl OutputRecord {
    /// A keyless record with `value` for `topic` (a `&str`, a `String`, or an `Arc<str>`
    /// or `&Arc<str>`, cloned per record, which spares an allocation), no headers, the
    /// partition left to the partitioner and the timestamp to the producer.
    pub fn new(topic: impl IntoTopic, value: impl Into<Bytes>) -> Self {
        OutputRecord {
            topic: topic.into_topic(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the key or clears it (`None`: keyless): for passing on a key that may be
    /// absent, such as an input record's.
    pub fn key_opt(mut self, key: Option<Bytes>) -> Self {
        self.key = key;
        self
    }

    /// Sets the value (`None`: a tombstone).
    pub fn value(mut self, value: Option<Bytes>) -> Self {
        self.value = value;
        self
    }

    /// Adds a header (a header value may be null).
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
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

    /// The last header called `name` (Java: `headers().lastHeader(name)`); `header` is
    /// the builder's, as on [`ProducerRecord`](sluice_wire::producer::ProducerRecord).
    pub fn last_header(&self, name: &str) -> Option<&Header> {
        last_header(&self.headers, name)
    }

    /// The value of the last header called `name`; `None` when there is none or its value
    /// is null.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.last_header(name).and_then(Header::value)
    }
}

/// What the user's service returns for one record: zero or more records to produce.
pub type Processed = Vec<OutputRecord>;

/// Where a produced record landed, as acknowledged by the broker (or the in-memory sink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic written to (the producer's `Arc<str>`, shared, not copied per record).
    pub topic: Arc<str>,
    /// The partition written to.
    pub partition: i32,
    /// The offset the record was given.
    pub offset: i64,
}
