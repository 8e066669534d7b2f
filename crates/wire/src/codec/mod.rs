//! Typed keys and values: [`Serializer`] turns a value into the bytes of a record's key or
//! value, [`Deserializer`] turns them back (Java: `org.apache.kafka.common.serialization`).
//!
//! The producer and the consumer move bytes; these traits sit at their edges and cost
//! nothing to a caller who does not use them. The producer side is
//! [`TypedProducer`](crate::producer::TypedProducer) (from
//! [`Producer::typed`](crate::producer::Producer::typed)); the consumer side is
//! [`ConsumerRecord::key_as`](crate::consumer::ConsumerRecord::key_as) and
//! [`value_as`](crate::consumer::ConsumerRecord::value_as), one `Result` per record.
//!
//! # Example
//! ```no_run
//! use sluice_wire::codec::Utf8;
//! use sluice_wire::consumer::{Consumer, ConsumerConfig};
//! use sluice_wire::producer::{Producer, ProducerConfig};
//! use sluice_wire::ErrorKind;
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
//! // Keys and values are strings here; with the `json` feature, `Json` takes any serde type.
//! let orders = producer.typed::<str, str>(Utf8, Utf8);
//! orders.send("orders", "user-1", "order 1").await?.await?;
//! orders.send("orders", None, "order without a key").await?.await?;
//!
//! let consumer = Consumer::new(ConsumerConfig::new("127.0.0.1:19092").group_id("billing")).await?;
//! consumer.subscribe(["orders"])?;
//! loop {
//!     let record = consumer.recv().await?;
//!     // One Result per record: a record that does not decode is an error to handle,
//!     // and the consumer goes on with the next one.
//!     match record.value_as::<String>(&Utf8) {
//!         Ok(value) => println!("{:?} at offset {}", value, record.offset()),
//!         Err(e) if e.kind() == ErrorKind::Serialization => {
//!             eprintln!("skipping offset {}: {e}", record.offset());
//!         }
//!         Err(e) => return Err(e),
//!     }
//! }
//! # }
//! ```
//!
//! # Nulls
//! Kafka keys and values may be null (a keyless record, a tombstone). Nulls are `None` at
//! the record, never bytes a (de)serializer has to recognise:
//! [`TypedProducer::send`](crate::producer::TypedProducer::send) takes `Option`s and
//! `value_as` answers `Ok(None)` for a null value. A serializer may still decide that a
//! value has no bytes ([`Void`] does, for records that never have a key).
//!
//! # The implementations
//! - [`Utf8`]: `str` and `String` as UTF-8 (Java: `StringSerializer`); deserializing
//!   bytes that are not UTF-8 is an error (Java would substitute U+FFFD).
//! - [`RawBytes`]: `[u8]`, `Vec<u8>` and [`Bytes`] as they are; a consumed [`Bytes`] is a
//!   view of the fetch response (no copy).
//! - [`BigEndian`]: `i16`, `i32`, `i64`, `f32`, `f64` in Java's byte order and widths
//!   (`ShortSerializer`, `IntegerSerializer`, `LongSerializer`, `FloatSerializer`,
//!   `DoubleSerializer`); any other length is an error.
//! - [`Void`]: `()` as a null key or value (Java: `VoidSerializer`); non-null bytes are
//!   an error.
//! - `Json` (feature `json`): any serde type as JSON with `serde_json`.
//!
//! # Registry-backed serdes
//! A schema-registry serde may have to fetch a schema over HTTP, which a synchronous
//! trait cannot wait for. [`AsyncDeserializer`] is the asynchronous sibling of
//! [`Deserializer`] for them (`value_as_async`), and
//! `sluice-schema` implements it for its Avro, JSON Schema and Protobuf deserializers.
//! Its serializers are resolved once per topic (the schema id is then known) and
//! implement [`Serializer`] itself, so they plug into a `TypedProducer`.

mod primitive;

#[cfg(feature = "json")]
mod json;

use std::fmt;
use std::future::Future;

use bytes::Bytes;

use crate::header::Header;

#[cfg(feature = "json")]
pub use json::Json;
pub use primitive::{BigEndian, RawBytes, Utf8, Void};

/// Turns a `T` into the bytes of a record's key or value (Java: `Serializer<T>`).
///
/// `topic` is the record's topic (a schema-registry serializer names its subject after
/// it); `headers` are the record's headers, to which a serializer may add its own. `Ok(None)`
/// writes a null. Implement it for `str` or `[u8]` rather than `String` or `Vec<u8>` when
/// a borrowed form exists, so callers need not own what they send.
pub trait Serializer<T: ?Sized> {
    /// The bytes of `value`, or `None` for a null.
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        value: &T,
    ) -> Result<Option<Bytes>, CodecError>;
}

/// Turns the bytes of a record's key or value back into a `T` (Java: `Deserializer<T>`).
///
/// Called only for non-null data: a null key or value is `None` at the record.
pub trait Deserializer<T> {
    /// The value `data` encodes. `data` is a view of the fetch response's buffer:
    /// cloning it is a reference count.
    fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<T, CodecError>;
}

/// A [`Deserializer`] that may have to wait, for a schema registry's answer say. Used
/// through [`ConsumerRecord::value_as_async`](crate::consumer::ConsumerRecord::value_as_async).
pub trait AsyncDeserializer<T> {
    /// The value `data` encodes, as [`Deserializer::deserialize`].
    fn deserialize(
        &self,
        topic: &str,
        headers: &[Header],
        data: &Bytes,
    ) -> impl Future<Output = Result<T, CodecError>> + Send;
}

/// Why a key or value could not be serialized or deserialized (Java:
/// `SerializationException`). The producer and the consumer hand it on inside an
/// [`Error`](crate::Error) of kind [`Serialization`](crate::ErrorKind::Serialization);
/// [`Error::codec_error`](crate::Error::codec_error) gives it back.
#[derive(Debug)]
pub struct CodecError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CodecError {
    /// An error that says `message`.
    pub fn new(message: impl Into<String>) -> Self {
        CodecError {
            message: message.into(),
            source: None,
        }
    }

    /// An error that says `message`, caused by `source` (a `serde_json::Error`, a
    /// registry's error), which [`std::error::Error::source`] returns for a downcast.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CodecError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong (as `Display`; the cause is [`source`](std::error::Error::source)).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cause is `source()`, not repeated here: chain printers show it once.
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
