//! Schema-registry serdes for Kafka records, in pure Rust: the Confluent wire format, a
//! caching client for the Confluent Schema Registry REST API, Avro, JSON Schema and
//! Protobuf.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use sluice_schema::{AvroDeserializer, AvroSerializer, Registry};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     id: i64,
//!     amount: f64,
//! }
//!
//! const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
//!     "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}]}"#;
//!
//! # async fn demo() -> sluice_schema::Result<()> {
//! // Confluent: http://host:8081; Apicurio: http://host:8080/apis/ccompat/v7.
//! let registry = Registry::builder("https://registry.example.com")
//!     .basic_auth("api-key", "api-secret")
//!     .build()?;
//!
//! // Registers the schema under "orders-value" on first use, then frames every record
//! // as magic byte 0 + the 4-byte schema id + the Avro datum.
//! let serializer = AvroSerializer::new(registry.clone(), ORDER)?;
//! let bytes = serializer.serialize("orders", &Order { id: 7, amount: 9.5 }).await?;
//!
//! // Reads any record a Confluent-compatible serializer wrote (Java, Go, Python, Sluice),
//! // fetching each writer schema once.
//! let deserializer = AvroDeserializer::new(registry);
//! let order: Order = deserializer.deserialize_into(&bytes).await?;
//! assert_eq!(order, Order { id: 7, amount: 9.5 });
//! # Ok(())
//! # }
//! ```
//!
//! The crate knows no Kafka client: it turns values into record bytes and back, for any
//! client (sluice-wire's, or another) to send and receive.
//!
//! # Layout
//!
//! - [`framing`]: the wire format (magic byte, schema id, Protobuf message indexes); no
//!   I/O, every length checked against the bytes there are.
//! - [`Registry`]: the REST client. Caches by id and by schema, so serializing and
//!   deserializing make one HTTP request per distinct schema, not per record; a bound on
//!   requests in flight; retries with backoff on 5xx, 429 and timeouts; 4xx answers as
//!   typed [`Error`]s. Apicurio's differences from Confluent's registry are listed there.
//! - [`AvroSerializer`], [`AvroDeserializer`]: Avro with `apache-avro`, auto-registration
//!   on or off, the writer's schema resolved against a reader schema (evolution).
//! - `JsonSerializer`, `JsonDeserializer` (feature `json`, on by default): JSON Schema,
//!   values validated on both sides with `jsonschema`.
//! - `ProtobufSerializer`, `ProtobufDeserializer` (feature `protobuf`, on by default):
//!   `.proto` source compiled at run time (pure Rust), dynamic messages, the
//!   message-index list for nested messages, imports through registry references.
//! - [`SubjectNameStrategy`]: topic, record and topic-record subject names, as the Java
//!   serializers derive them.
//! - `codec` (feature `wire`, on by default): the serdes as `sluice-wire`'s codec traits,
//!   for its `TypedProducer` and consumed records: serializers [`resolve`d](AvroSerializer::resolve)
//!   per topic, deserializers as `AsyncDeserializer`s.
//!
//! # Errors
//!
//! One [`Error`] enum. A record's own failure (wrong magic byte, short buffer, unknown
//! schema id, a datum that does not decode) is not retriable: dead-letter the record. A
//! registry outage ([`Error::is_retriable`]: timeouts, refused connections, 5xx) is the
//! world's failure: pause and try again later.
//!
//! # TLS without a C compiler
//!
//! HTTPS uses rustls with the graviola crypto provider (x86_64 and aarch64), so building
//! this crate needs no C compiler; a provider installed as the process default
//! (`rustls::crypto::CryptoProvider::install_default`) is used instead when there is one.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod avro;
#[cfg(feature = "wire")]
pub mod codec;
mod error;
pub mod framing;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "protobuf")]
mod protobuf;
mod registry;
mod schema;
mod subject;
mod sync;
mod tls;

pub use avro::{AvroDeserializer, AvroSerializer};
#[cfg(feature = "wire")]
pub use codec::Resolved;
pub use error::{Error, Result};
#[cfg(feature = "json")]
pub use json::{JsonDeserializer, JsonSerializer};
/// Re-exported (feature `protobuf`): build and read [`prost_reflect::DynamicMessage`]s
/// with the version this crate uses.
#[cfg(feature = "protobuf")]
pub use prost_reflect;
#[cfg(feature = "protobuf")]
pub use protobuf::{ProtobufDeserializer, ProtobufSerializer};
pub use registry::{Registry, RegistryBuilder};
pub use schema::{Compatibility, RegisteredSchema, Schema, SchemaReference, SchemaType, Version};
pub use subject::SubjectNameStrategy;

/// Re-exported so that callers build and match Avro values and schemas with the same
/// `apache-avro` version this crate uses.
pub use apache_avro;
