//! The codecs the layers call: `sluice-schema`'s (de)serializers behind two small traits.
//!
//! The traits return `'static` boxed futures because a layer's response future must own
//! everything it uses; each codec keeps its (de)serializer in an `Arc`, so cloning one per
//! record costs a reference count, and the caches inside are shared by every clone.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_schema::apache_avro::types::Value as AvroValue;
use sluice_schema::prost_reflect::DynamicMessage;
use sluice_schema::{
    AvroDeserializer, AvroSerializer, Error, JsonDeserializer, JsonSerializer,
    ProtobufDeserializer, ProtobufSerializer,
};

/// Turns a record's key or value bytes into a typed value.
pub trait Decoder: Send + Sync + 'static {
    /// What the bytes decode to.
    type Value: Send + 'static;

    /// Decode `bytes` (one record's key or value, framed).
    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<Self::Value, Error>>;
}

/// Turns a typed value into a record's value bytes for `topic`.
pub trait Encoder: Send + Sync + 'static {
    /// What is encoded.
    type Value: Send + 'static;

    /// Encode `value` for `topic` (the topic chooses the subject, hence the schema id).
    fn encode(&self, topic: &str, value: Self::Value) -> BoxFuture<'static, Result<Bytes, Error>>;
}

/// Bytes in, the same bytes out: for a key (or value) that carries no schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Decoder for Raw {
    type Value = Bytes;

    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<Bytes, Error>> {
        futures::future::ready(Ok(bytes)).boxed()
    }
}

impl Encoder for Raw {
    type Value = Bytes;

    fn encode(&self, _topic: &str, value: Bytes) -> BoxFuture<'static, Result<Bytes, Error>> {
        futures::future::ready(Ok(value)).boxed()
    }
}

/// Avro records decoded into Avro [`Value`](AvroValue)s (in the reader schema's shape if
/// the deserializer has one). [`AvroDecoder`] decodes into serde types instead.
#[derive(Debug, Clone)]
pub struct AvroValueDecoder {
    inner: Arc<AvroDeserializer>,
}

impl AvroValueDecoder {
    /// Decodes with `deserializer`.
    pub fn new(deserializer: AvroDeserializer) -> Self {
        AvroValueDecoder {
            inner: Arc::new(deserializer),
        }
    }
}

impl Decoder for AvroValueDecoder {
    type Value = AvroValue;

    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<AvroValue, Error>> {
        let inner = Arc::clone(&self.inner);
        async move { inner.deserialize(&bytes).await }.boxed()
    }
}

/// Declares a codec struct holding one (de)serializer in an `Arc`, generic over the
/// serde type it reads or writes, with `Clone` and `Debug` that ask nothing of `T`.
macro_rules! codec {
    ($(#[$doc:meta])* $name:ident($inner:ty), $ctor_doc:literal) => {
        $(#[$doc])*
        pub struct $name<T> {
            inner: Arc<$inner>,
            _value: PhantomData<fn(T) -> T>,
        }

        impl<T> $name<T> {
            #[doc = $ctor_doc]
            pub fn new(inner: $inner) -> Self {
                $name {
                    inner: Arc::new(inner),
                    _value: PhantomData,
                }
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    inner: Arc::clone(&self.inner),
                    _value: PhantomData,
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("value", &std::any::type_name::<T>())
                    .finish_non_exhaustive()
            }
        }
    };
}

codec!(
    /// Avro records decoded into the serde type `T` (resolved through the reader schema
    /// first if the deserializer has one: Avro schema evolution).
    AvroDecoder(AvroDeserializer),
    "Decodes with `deserializer`."
);

impl<T: DeserializeOwned + Send + 'static> Decoder for AvroDecoder<T> {
    type Value = T;

    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<T, Error>> {
        let inner = Arc::clone(&self.inner);
        async move { inner.deserialize_into::<T>(&bytes).await }.boxed()
    }
}

codec!(
    /// Serde values `T` encoded with the serializer's Avro schema.
    AvroEncoder(AvroSerializer),
    "Encodes with `serializer` (its schema, subject strategy and auto-registration)."
);

impl<T: Serialize + Send + Sync + 'static> Encoder for AvroEncoder<T> {
    type Value = T;

    fn encode(&self, topic: &str, value: T) -> BoxFuture<'static, Result<Bytes, Error>> {
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_string();
        async move { inner.serialize(&topic, &value).await.map(Bytes::from) }.boxed()
    }
}

codec!(
    /// JSON Schema records decoded into `T` (`serde_json::Value` or any serde type),
    /// validated against the writer's schema unless the deserializer says otherwise.
    JsonDecoder(JsonDeserializer),
    "Decodes with `deserializer`."
);

impl<T: DeserializeOwned + Send + 'static> Decoder for JsonDecoder<T> {
    type Value = T;

    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<T, Error>> {
        let inner = Arc::clone(&self.inner);
        async move { inner.deserialize_into::<T>(&bytes).await }.boxed()
    }
}

codec!(
    /// Serde values `T` validated against the serializer's JSON Schema and encoded.
    JsonEncoder(JsonSerializer),
    "Encodes with `serializer`."
);

impl<T: Serialize + Send + Sync + 'static> Encoder for JsonEncoder<T> {
    type Value = T;

    fn encode(&self, topic: &str, value: T) -> BoxFuture<'static, Result<Bytes, Error>> {
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_string();
        async move { inner.serialize(&topic, &value).await.map(Bytes::from) }.boxed()
    }
}

/// Protobuf records decoded into [`DynamicMessage`]s of the type their message indexes
/// name.
#[derive(Debug, Clone)]
pub struct ProtobufDecoder {
    inner: Arc<ProtobufDeserializer>,
}

impl ProtobufDecoder {
    /// Decodes with `deserializer`.
    pub fn new(deserializer: ProtobufDeserializer) -> Self {
        ProtobufDecoder {
            inner: Arc::new(deserializer),
        }
    }
}

impl Decoder for ProtobufDecoder {
    type Value = DynamicMessage;

    fn decode(&self, bytes: Bytes) -> BoxFuture<'static, Result<DynamicMessage, Error>> {
        let inner = Arc::clone(&self.inner);
        async move { inner.deserialize(&bytes).await }.boxed()
    }
}

/// [`DynamicMessage`]s encoded with the serializer's message type.
#[derive(Debug, Clone)]
pub struct ProtobufEncoder {
    inner: Arc<ProtobufSerializer>,
}

impl ProtobufEncoder {
    /// Encodes with `serializer`.
    pub fn new(serializer: ProtobufSerializer) -> Self {
        ProtobufEncoder {
            inner: Arc::new(serializer),
        }
    }
}

impl Encoder for ProtobufEncoder {
    type Value = DynamicMessage;

    fn encode(
        &self,
        topic: &str,
        value: DynamicMessage,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_string();
        async move { inner.serialize(&topic, &value).await.map(Bytes::from) }.boxed()
    }
}
