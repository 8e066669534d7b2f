use std::time::Duration;

use bytes::Bytes;
use sluice_schema::{AvroDeserializer, Registry};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use super::decode::{DecodeLayer, Decoded};
use super::encode::{EncodeLayer, Produce};
use super::{AvroValueDecoder, Part, Raw, SchemaError};
use crate::{ConsumedRecord, Disposition, PipelineError};

/// A registry nobody listens on: connections are refused at once.
fn unreachable_registry() -> Registry {
    Registry::builder("http://127.0.0.1:1")
        .retries(0, Duration::from_millis(1), Duration::from_millis(1))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

fn echo() -> impl Service<
    Decoded<Bytes, sluice_schema::apache_avro::types::Value>,
    Response = Vec<Produce<Bytes>>,
    Error = PipelineError,
    Future = impl Send,
> + Clone {
    service_fn(
        |_: Decoded<Bytes, sluice_schema::apache_avro::types::Value>| async move {
            Ok::<_, PipelineError>(vec![Produce::new("out", Bytes::from_static(b"x"))])
        },
    )
}

#[tokio::test]
async fn bad_magic_is_a_dead_letter_naming_the_record_and_never_reaches_the_service() {
    let mut stack = ServiceBuilder::new()
        .layer(DecodeLayer::new(AvroValueDecoder::new(
            AvroDeserializer::new(unreachable_registry()),
        )))
        .layer(EncodeLayer::new(Raw))
        .service(service_fn(
            |_: Decoded<Bytes, sluice_schema::apache_avro::types::Value>| async move {
                Err::<Vec<Produce<Bytes>>, _>(PipelineError::fatal("the service was called"))
            },
        ));
    let record = ConsumedRecord::new("orders", 3, 42).with_value(&b"{\"id\": 1}"[..]);
    let err = stack.ready().await.unwrap().call(record).await.unwrap_err();
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    let schema = err.downcast_ref::<SchemaError>().unwrap();
    assert_eq!(schema.part, Part::Value);
    assert_eq!(
        err.to_string(),
        "value of orders-3@42 does not decode: wrong magic byte 0x7b: expected 0x00 \
         (Confluent wire format)"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_retriable_not_a_dead_letter() {
    let decode = DecodeLayer::new(AvroValueDecoder::new(AvroDeserializer::new(
        unreachable_registry(),
    )))
    .key(Raw);
    let mut stack = ServiceBuilder::new()
        .layer(decode)
        .layer(EncodeLayer::new(Raw))
        .service(echo());
    // A well-framed record of schema id 7: its schema must be fetched.
    let record = ConsumedRecord::new("orders", 0, 1).with_value(&[0u8, 0, 0, 0, 7, 2][..]);
    let err = stack.ready().await.unwrap().call(record).await.unwrap_err();
    assert_eq!(err.disposition(), Disposition::Retriable, "{err}");
}

#[tokio::test]
async fn tombstones_and_raw_keys_pass_and_outputs_come_back_in_order() {
    let mut stack = ServiceBuilder::new()
        .layer(DecodeLayer::new(Raw))
        .layer(EncodeLayer::new(Raw))
        .service(service_fn(|r: Decoded<Bytes, Bytes>| async move {
            assert!(r.value.is_none());
            let key = r.key.unwrap();
            Ok::<_, PipelineError>(vec![
                Produce::new("a", key.clone()).with_key(key.clone()),
                Produce::tombstone("b").with_partition(2),
            ])
        }));
    let record = ConsumedRecord::new("in", 0, 0).with_key("k");
    let out = stack.ready().await.unwrap().call(record).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (&*out[0].topic, out[0].value.as_deref()),
        ("a", Some(&b"k"[..]))
    );
    assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        (&*out[1].topic, out[1].value.as_ref(), out[1].partition),
        ("b", None, Some(2))
    );
}

#[test]
fn classification_separates_the_record_the_world_and_the_setup() {
    use super::error::disposition;
    use sluice_schema::Error;
    assert_eq!(
        disposition(&Error::UnknownSchemaId(9)),
        Disposition::DeadLetter
    );
    assert_eq!(
        disposition(&Error::WrongMagic { found: 1 }),
        Disposition::DeadLetter
    );
    let outage = Error::Registry {
        status: 503,
        code: 503,
        message: String::new(),
    };
    assert_eq!(disposition(&outage), Disposition::Retriable);
    let denied = Error::Registry {
        status: 401,
        code: 401,
        message: String::new(),
    };
    assert_eq!(disposition(&denied), Disposition::Fatal);
}
