//! [`TypedProducer`]: a [`Producer`] that serializes typed keys and values.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::{Delivery, IntoTopic, Producer, ProducerRecord};
use crate::codec::Serializer;
use crate::error::{Error, Result};
use crate::header::Header;

/// The serializer a [`TypedProducer`] holds for its keys or values.
type SharedSerializer<T> = Arc<dyn Serializer<T> + Send + Sync>;

/// A [`Producer`] that turns keys of type `K` and values of type `V` into bytes with a
/// [`Serializer`] each, then sends them as [`Producer::send`] does. Made by
/// [`Producer::typed`]; cloning it is two reference counts, and the clones share the
/// producer.
///
/// ```no_run
/// use sluice_wire::codec::{BigEndian, Utf8};
/// use sluice_wire::producer::{Producer, ProducerConfig};
///
/// # async fn run() -> Result<(), sluice_wire::Error> {
/// let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
/// // Java: new KafkaProducer<Long, String>(props, new LongSerializer(), new StringSerializer())
/// let typed = producer.typed::<i64, str>(BigEndian, Utf8);
/// typed.send("events", &42, "signed up").await?.await?;
/// typed.send("events", None, "no key").await?.await?;
/// typed.send("events", &42, None).await?.await?; // a tombstone
///
/// // A partition, a timestamp or headers of your own: serialize, then send the record.
/// let record = typed.serialize("events", &7, "hello")?.partition(0).timestamp(1_700_000_000_000);
/// typed.producer().send(record).await?.await?;
/// # Ok(())
/// # }
/// ```
pub struct TypedProducer<K: ?Sized, V: ?Sized> {
    producer: Producer,
    key: SharedSerializer<K>,
    value: SharedSerializer<V>,
}

impl<K: ?Sized, V: ?Sized> Clone for TypedProducer<K, V> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
        }
    }
}

impl<K: ?Sized, V: ?Sized> fmt::Debug for TypedProducer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// This producer with a serializer for keys and one for values (Java: the key and
    /// value serializers a `KafkaProducer<K, V>` is built with). Shares the producer:
    /// untyped sends on it go on working.
    pub fn typed<K: ?Sized, V: ?Sized>(
        &self,
        key: impl Serializer<K> + Send + Sync + 'static,
        value: impl Serializer<V> + Send + Sync + 'static,
    ) -> TypedProducer<K, V> {
        TypedProducer {
            producer: self.clone(),
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

impl<K: ?Sized, V: ?Sized> TypedProducer<K, V> {
    /// Serializes `key` and `value` for `topic` and buffers the record, as
    /// [`Producer::send`]. `None` is a null: a record without a key, or a tombstone.
    /// `&key` and `&value` convert, so a present key or value needs no `Some`.
    ///
    /// Errors: a serializer's failure is an [`ErrorKind::Serialization`] error and nothing
    /// is sent; the others are [`Producer::send`]'s.
    ///
    /// [`ErrorKind::Serialization`]: crate::ErrorKind::Serialization
    pub async fn send<'a>(
        &self,
        topic: impl IntoTopic,
        key: impl Into<Option<&'a K>>,
        value: impl Into<Option<&'a V>>,
    ) -> Result<Delivery>
    where
        K: 'a,
        V: 'a,
    {
        let record = self.serialize(topic, key, value)?;
        self.producer.send(record).await
    }

    /// The record [`send`](Self::send) would buffer, with the key and value serialized
    /// (and any headers the serializers added), for setting a partition, a timestamp or
    /// more headers before [`Producer::send`].
    pub fn serialize<'a>(
        &self,
        topic: impl IntoTopic,
        key: impl Into<Option<&'a K>>,
        value: impl Into<Option<&'a V>>,
    ) -> Result<ProducerRecord>
    where
        K: 'a,
        V: 'a,
    {
        serialize(
            &*self.key,
            &*self.value,
            topic.into_topic(),
            key.into(),
            value.into(),
        )
    }

    /// The producer underneath, for flush, close, transactions and untyped sends.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The producer underneath, without the serializers.
    pub fn into_inner(self) -> Producer {
        self.producer
    }
}

/// The record of `key` and `value` for `topic`: the key's serializer first, then the
/// value's, each may add headers.
fn serialize<K: ?Sized, V: ?Sized>(
    key_serializer: &(dyn Serializer<K> + Send + Sync),
    value_serializer: &(dyn Serializer<V> + Send + Sync),
    topic: Arc<str>,
    key: Option<&K>,
    value: Option<&V>,
) -> Result<ProducerRecord> {
    let mut headers = Vec::new();
    let key = encode(key_serializer, &topic, &mut headers, key, "key")?;
    let value = encode(value_serializer, &topic, &mut headers, value, "value")?;
    Ok(ProducerRecord {
        topic,
        key,
        value,
        headers,
        partition: None,
        timestamp: None,
        sub_key: None,
    })
}

/// One side of the record: `None` stays a null without asking the serializer.
fn encode<T: ?Sized>(
    serializer: &(dyn Serializer<T> + Send + Sync),
    topic: &str,
    headers: &mut Vec<Header>,
    data: Option<&T>,
    side: &str,
) -> Result<Option<Bytes>> {
    match data {
        Some(data) => serializer
            .serialize(topic, headers, data)
            .map_err(|e| Error::serialization(format!("the {side} of a record for {topic}"), e)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{BigEndian, CodecError, Utf8, Void};
    use crate::ErrorKind;

    /// Refuses every value, adding a header first.
    struct Refuses;
    impl Serializer<str> for Refuses {
        fn serialize(
            &self,
            _: &str,
            headers: &mut Vec<Header>,
            _: &str,
        ) -> std::result::Result<Option<Bytes>, CodecError> {
            headers.push(Header::from_static("seen", None));
            Err(CodecError::new("no"))
        }
    }

    #[test]
    fn keys_and_values_are_serialized_and_none_is_a_null() {
        let r = serialize::<i32, str>(&BigEndian, &Utf8, "t".into(), Some(&1), Some("v")).unwrap();
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(&*r.topic, "t");
        let r = serialize::<i32, str>(&BigEndian, &Utf8, "t".into(), None, None).unwrap();
        assert_eq!((r.key, r.value), (None, None));
        // Void: a key that is always null.
        let r = serialize::<(), str>(&Void, &Utf8, "t".into(), Some(&()), Some("v")).unwrap();
        assert_eq!(r.key, None);
    }

    #[test]
    fn a_serializer_failure_is_a_serialization_error_naming_the_side() {
        let e = serialize::<str, str>(&Utf8, &Refuses, "orders".into(), Some("k"), Some("v"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(!e.is_retriable());
        assert!(
            e.to_string().contains("the value of a record for orders"),
            "{e}"
        );
        assert_eq!(e.codec_error().map(CodecError::message), Some("no"));
        let e =
            serialize::<str, str>(&Refuses, &Utf8, "orders".into(), Some("k"), None).unwrap_err();
        assert!(e.to_string().contains("the key of"), "{e}");
    }
}
