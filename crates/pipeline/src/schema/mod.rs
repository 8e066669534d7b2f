//! Schema-registry layers (feature `schema`): decode input records before your service,
//! encode its output records after it, in the Confluent wire format (`sluice-schema`).
//!
//! - [`DecodeLayer`](decode::DecodeLayer) turns each [`ConsumedRecord`](crate::ConsumedRecord)
//!   into a [`Decoded`](decode::Decoded) (the typed key and value, with the raw record
//!   beside them) before your service sees it.
//! - [`EncodeLayer`](encode::EncodeLayer) turns the [`Produce`](encode::Produce)s your
//!   service answers with (typed values) into [`OutputRecord`](crate::OutputRecord)s.
//! - The codecs ([`Decoder`], [`Encoder`]) adapt `sluice-schema`'s (de)serializers:
//!   [`AvroDecoder`] (serde types), [`AvroValueDecoder`] (Avro values), [`AvroEncoder`], [`JsonDecoder`], [`JsonEncoder`],
//!   [`ProtobufDecoder`], [`ProtobufEncoder`]; [`Raw`] passes bytes through (a plain key).
//!
//! # Where they go, and what a failure means
//!
//! Put both *inside* the retry and breaker layers, right around your service:
//!
//! ```text
//! Concurrency → DeadLetter → Breaker → Retry → Decode → Encode → your service
//! ```
//!
//! Every codec failure is a [`SchemaError`], classified by what it says about the record:
//!
//! | failure | [`Disposition`](crate::Disposition) |
//! | --- | --- |
//! | wrong magic byte, short buffer, bad message indexes, unknown schema id, a datum that does not decode, an output value that does not fit its schema | `DeadLetter`: the DLQ gets the record, the error in `kafka_dlt-exception-message` |
//! | the registry unreachable, timing out, 5xx, 429 ([`sluice_schema::Error::is_retriable`]) | `Retriable`: retried, then the breaker opens and the runner pauses; nothing is dead-lettered |
//! | anything else (401/403, TLS, an incompatible or invalid output schema, a bad reply) | `Fatal`: a misconfiguration would dead-letter every record, so the pipeline stops |
//!
//! The (de)serializers cache schemas by id and ids by topic, so after the first record of
//! each schema neither layer makes an HTTP request: a registry outage only matters to
//! records whose schema the pipeline has not seen yet.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use serde::{Deserialize, Serialize};
//! use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
//! use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
//! use sluice_pipeline::schema::decode::{DecodeLayer, Decoded};
//! use sluice_pipeline::schema::encode::{EncodeLayer, Produce};
//! use sluice_pipeline::schema::{AvroDecoder, AvroEncoder};
//! use sluice_pipeline::PipelineError;
//! use sluice_schema::{AvroDeserializer, AvroSerializer, Registry};
//! use tower::{service_fn, ServiceBuilder};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { id: i64, amount: f64 }
//! #[derive(Serialize, Deserialize)]
//! struct Invoice { order: i64, total: f64 }
//!
//! const INVOICE: &str = r#"{"type": "record", "name": "Invoice", "fields": [
//!     {"name": "order", "type": "long"}, {"name": "total", "type": "double"}]}"#;
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new("http://127.0.0.1:8081")?;
//! let stack = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(BreakerConfig::new().wait_in_open(Duration::from_secs(5))))
//!     .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
//!     .layer(DecodeLayer::new(AvroDecoder::<Order>::new(AvroDeserializer::new(registry.clone()))))
//!     .layer(EncodeLayer::new(AvroEncoder::<Invoice>::new(AvroSerializer::new(registry, INVOICE)?)))
//!     .service(service_fn(|r: Decoded<bytes::Bytes, Order>| async move {
//!         let order = r.value.ok_or_else(|| PipelineError::dead_letter("tombstone"))?;
//!         let invoice = Invoice { order: order.id, total: order.amount * 1.2 };
//!         Ok::<_, PipelineError>(vec![Produce::new("invoices", invoice)])
//!     }));
//! # let _ = stack;
//! # Ok(())
//! # }
//! ```

mod codec;
pub mod decode;
pub mod encode;
mod error;

pub use self::codec::{
    AvroDecoder, AvroEncoder, AvroValueDecoder, Decoder, Encoder, JsonDecoder, JsonEncoder,
    ProtobufDecoder, ProtobufEncoder, Raw,
};
pub use self::error::{Part, SchemaError};

#[cfg(test)]
mod tests;
