//! The serdes of this crate behind `sluice-wire`'s codec traits (feature `wire`, on by
//! default), so they plug into a `TypedProducer` and a consumed record's `value_as_async`
//! like any other serializer.
//!
//! A registry serde may have to ask the registry over HTTP, which the synchronous
//! `Serializer` trait cannot wait for. The two sides solve it differently:
//! - **Serializers** know their schema; only its id per topic comes from the registry,
//!   once. `AvroSerializer::resolve` (and the JSON Schema and Protobuf ones) looks the
//!   ids up (or registers the schema) for the topics it will write, and returns a
//!   [`Resolved`] serializer: a `sluice_wire::codec::Serializer` that never waits. A topic
//!   it was not resolved for is an error, not a blocking lookup.
//! - **Deserializers** meet a writer schema id per record, new ones at any time, so they
//!   implement the asynchronous sibling, `sluice_wire::codec::AsyncDeserializer`: the
//!   first record of each schema waits for its fetch, the others find it cached.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use sluice_schema::{AvroDeserializer, AvroSerializer, Registry};
//! use sluice_wire::codec::Utf8;
//! use sluice_wire::consumer::{Consumer, ConsumerConfig};
//! use sluice_wire::producer::{Producer, ProducerConfig};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { id: i64, amount: f64 }
//! const ORDER: &str = r#"{"type": "record", "name": "Order",
//!     "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]}"#;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new("http://127.0.0.1:8081")?;
//! let writer = AvroSerializer::new(registry.clone(), ORDER)?.resolve(["orders"]).await?;
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
//! let orders = producer.typed::<str, Order>(Utf8, writer);
//! orders.send("orders", "user-1", &Order { id: 1, amount: 9.5 }).await?.await?;
//!
//! let reader = AvroDeserializer::new(registry);
//! let consumer = Consumer::new(ConsumerConfig::new("127.0.0.1:19092").group_id("billing")).await?;
//! consumer.subscribe(["orders"])?;
//! let record = consumer.recv().await?;
//! match record.value_as_async::<Order>(&reader).await {
//!     Ok(order) => { /* ... */ }
//!     // The registry is down: not this record's fault, try again later.
//!     Err(e) if sluice_schema::Error::from_wire(&e).is_some_and(|e| e.is_retriable()) => {}
//!     // This record's own failure (bad bytes, unknown schema): skip or dead-letter it.
//!     Err(e) => eprintln!("offset {}: {e}", record.offset()),
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_wire::codec::{AsyncDeserializer, CodecError, Serializer};
use sluice_wire::Header;

use crate::avro::{AvroDeserializer, AvroSerializer};
use crate::error::{Error, Result};
#[cfg(feature = "json")]
use crate::json::{JsonDeserializer, JsonSerializer};
#[cfg(feature = "protobuf")]
use crate::protobuf::{ProtobufDeserializer, ProtobufSerializer};

/// A registry serializer whose schema ids are known for a set of topics: a
/// `sluice_wire::codec::Serializer` that makes no registry request (see the
/// [module](self)). Made by `resolve` on [`AvroSerializer`], `JsonSerializer` or
/// `ProtobufSerializer`.
#[derive(Debug)]
pub struct Resolved<S> {
    serializer: S,
    topics: HashSet<String>,
}

impl<S> Resolved<S> {
    /// The serializer, for its async methods (`serialize` to a topic not resolved here).
    pub fn get_ref(&self) -> &S {
        &self.serializer
    }

    /// The serializer, without the resolved topics.
    pub fn into_inner(self) -> S {
        self.serializer
    }

    /// Whether records for `topic` can be serialized.
    pub fn is_resolved(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    /// The answer of the serializer's `encode` for `topic`, which completes without
    /// waiting once the topic's id is cached (the id cache is a plain map: a hit awaits
    /// nothing). It is polled once: should it ever wait, that is an error, never a block.
    fn now(
        &self,
        topic: &str,
        encode: impl Future<Output = Result<Vec<u8>>>,
    ) -> std::result::Result<Option<Bytes>, CodecError> {
        if !self.is_resolved(topic) {
            return Err(CodecError::new(format!(
                "the schema id for topic {topic} was not resolved: name it in resolve()"
            )));
        }
        match pin!(encode).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(bytes)) => Ok(Some(Bytes::from(bytes))),
            Poll::Ready(Err(e)) => Err(codec_error(e)),
            Poll::Pending => Err(CodecError::new(format!(
                "the schema id for topic {topic} is no longer cached"
            ))),
        }
    }
}

/// A registry serializer: it has a schema id per topic.
trait SchemaIds {
    fn id(&self, topic: &str) -> impl Future<Output = Result<u32>>;
}

/// Looks up (or registers) the schema id of every topic in `topics`, then wraps.
async fn resolve<S: SchemaIds>(
    serializer: S,
    topics: impl IntoIterator<Item = impl Into<String>>,
) -> Result<Resolved<S>> {
    let topics: HashSet<String> = topics.into_iter().map(Into::into).collect();
    for topic in &topics {
        serializer.id(topic).await?;
    }
    Ok(Resolved { serializer, topics })
}

/// `resolve` on a registry serializer.
macro_rules! resolvable {
    ($serializer:ty) => {
        impl SchemaIds for $serializer {
            fn id(&self, topic: &str) -> impl Future<Output = Result<u32>> {
                self.schema_id(topic)
            }
        }

        impl $serializer {
            /// This serializer with the schema ids of `topics` resolved: registered or
            /// looked up now (one request per topic), so that the [`Resolved`] serializer
            /// makes none. Configure it first ([`for_keys`](Self::for_keys), the strategy).
            pub async fn resolve(
                self,
                topics: impl IntoIterator<Item = impl Into<String>>,
            ) -> Result<Resolved<Self>> {
                resolve(self, topics).await
            }
        }
    };
}

/// The codec traits for a serializer and a deserializer of serde types.
macro_rules! serde_codec {
    ($serializer:ty, $deserializer:ty) => {
        impl<T: Serialize + Sync> Serializer<T> for Resolved<$serializer> {
            fn serialize(
                &self,
                topic: &str,
                _: &mut Vec<Header>,
                value: &T,
            ) -> std::result::Result<Option<Bytes>, CodecError> {
                self.now(topic, self.serializer.serialize(topic, value))
            }
        }

        impl<T: DeserializeOwned + Send> AsyncDeserializer<T> for $deserializer {
            async fn deserialize(
                &self,
                _: &str,
                _: &[Header],
                data: &Bytes,
            ) -> std::result::Result<T, CodecError> {
                self.deserialize_into(data).await.map_err(codec_error)
            }
        }
    };
}

resolvable!(AvroSerializer);
serde_codec!(AvroSerializer, AvroDeserializer);
#[cfg(feature = "json")]
resolvable!(JsonSerializer);
#[cfg(feature = "json")]
serde_codec!(JsonSerializer, JsonDeserializer);
#[cfg(feature = "protobuf")]
resolvable!(ProtobufSerializer);

#[cfg(feature = "protobuf")]
impl Serializer<prost_reflect::DynamicMessage> for Resolved<ProtobufSerializer> {
    fn serialize(
        &self,
        topic: &str,
        _: &mut Vec<Header>,
        message: &prost_reflect::DynamicMessage,
    ) -> std::result::Result<Option<Bytes>, CodecError> {
        self.now(topic, self.serializer.serialize(topic, message))
    }
}

#[cfg(feature = "protobuf")]
impl AsyncDeserializer<prost_reflect::DynamicMessage> for ProtobufDeserializer {
    async fn deserialize(
        &self,
        _: &str,
        _: &[Header],
        data: &Bytes,
    ) -> std::result::Result<prost_reflect::DynamicMessage, CodecError> {
        ProtobufDeserializer::deserialize(self, data)
            .await
            .map_err(codec_error)
    }
}

/// This crate's error as the codec's, kept as its source.
fn codec_error(e: Error) -> CodecError {
    CodecError::with_source("schema registry serde", e)
}

impl Error {
    /// The schema error inside a `sluice_wire` error of kind `Serialization` that one of
    /// these serdes caused: whether a record's failure is the record's own or the
    /// registry's ([`is_retriable`](Self::is_retriable)).
    pub fn from_wire(error: &sluice_wire::Error) -> Option<&Error> {
        std::error::Error::source(error.codec_error()?)?.downcast_ref::<Error>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    const ORDER: &str =
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;

    #[derive(Serialize)]
    struct Order {
        id: i64,
    }

    /// Nothing listens on port 1: a lookup fails at once, and is not retried.
    fn unreachable() -> Registry {
        Registry::builder("http://127.0.0.1:1")
            .retries(0, std::time::Duration::ZERO, std::time::Duration::ZERO)
            .build()
            .unwrap()
    }

    #[test]
    fn a_topic_that_was_not_resolved_is_an_error_not_a_lookup() {
        let resolved = Resolved {
            serializer: AvroSerializer::new(unreachable(), ORDER).unwrap(),
            topics: HashSet::new(),
        };
        let e = resolved
            .serialize("orders", &mut Vec::new(), &Order { id: 1 })
            .unwrap_err();
        assert!(e.message().contains("not resolved"), "{e}");
        assert!(!resolved.is_resolved("orders"));
    }

    #[tokio::test]
    async fn resolving_fails_when_the_registry_cannot_be_asked() {
        let e = AvroSerializer::new(unreachable(), ORDER)
            .unwrap()
            .resolve(["orders"])
            .await
            .unwrap_err();
        assert!(e.is_retriable(), "{e:?}");
    }
}
