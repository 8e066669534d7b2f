//! Avro in the Confluent wire format, with `apache-avro`.
//!
//! [`AvroSerializer`] encodes a value with one schema (its writer schema), registering it
//! on first use if asked to, and frames the datum with the schema's id.
//! [`AvroDeserializer`] reads the id, fetches that writer schema once, and decodes; with a
//! reader schema it resolves the writer's data into the reader's shape (Avro schema
//! evolution: added fields take their defaults, removed ones are skipped, promotions such
//! as int to long apply).
//!
//! After the first record of each schema neither makes an HTTP request: ids per topic and
//! parsed writer schemas per id are kept for the life of the (de)serializer.

use crate::sync;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::types::Value;
use apache_avro::Schema as AvroSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::framing;
use crate::registry::Registry;
use crate::schema::{Schema, SchemaReference};
use crate::subject::{SubjectIds, SubjectNameStrategy};

/// Encodes values with one Avro schema into Confluent-framed bytes.
#[derive(Debug)]
pub struct AvroSerializer {
    registry: Registry,
    schema: Schema,
    parsed: AvroSchema,
    /// The named types it references, parsed (empty for a schema without references).
    references: Vec<AvroSchema>,
    /// The schema's full name, for the record strategies.
    record: Option<String>,
    /// Subject naming, auto-registration and the id cache per topic.
    ids: SubjectIds,
}

impl AvroSerializer {
    /// A serializer of values (not keys) with the Avro schema `schema` (JSON), the topic
    /// strategy and auto-registration on (the Java serializer's defaults).
    ///
    /// Errors with [`Error::Avro`](crate::Error::Avro) if the schema does not parse.
    pub fn new(registry: Registry, schema: &str) -> Result<Self> {
        let parsed = AvroSchema::parse_str(schema)?;
        Ok(Self::parsed(
            registry,
            Schema::avro(schema),
            parsed,
            Vec::new(),
        ))
    }

    /// A serializer with a schema that uses named types registered under other subjects:
    /// `references` are the registry references (each `name` the type's full name, e.g.
    /// `shop.Money`) with each referenced schema's text. They are registered with the
    /// schema, so any deserializer resolves them. The referenced schemas must be
    /// registered already, under those subjects and versions; pass the texts of their own
    /// references too (every named type the schema needs).
    ///
    /// Errors with [`Error::Avro`](crate::Error::Avro) if the schema does not parse with
    /// those types.
    pub fn with_references(
        registry: Registry,
        schema: &str,
        references: &[(SchemaReference, &str)],
    ) -> Result<Self> {
        if references.is_empty() {
            return Self::new(registry, schema);
        }
        let texts: Vec<&str> = references.iter().map(|(_, text)| *text).collect();
        let (parsed, named) = AvroSchema::parse_str_with_list(schema, &texts)?;
        let registered = Schema::avro(schema)
            .with_references(references.iter().map(|(r, _)| r.clone()).collect());
        Ok(Self::parsed(registry, registered, parsed, named))
    }

    fn parsed(
        registry: Registry,
        schema: Schema,
        parsed: AvroSchema,
        references: Vec<AvroSchema>,
    ) -> Self {
        let record = parsed.name().map(|n| n.fullname(None));
        AvroSerializer {
            registry,
            schema,
            parsed,
            references,
            record,
            ids: SubjectIds::new(),
        }
    }

    /// Derive subjects with `strategy` (default [`SubjectNameStrategy::Topic`]).
    #[must_use]
    pub fn strategy(mut self, strategy: SubjectNameStrategy) -> Self {
        self.ids.strategy = strategy;
        self
    }

    /// Serialize record keys (subject `<topic>-key` under the topic strategy).
    #[must_use]
    pub fn for_keys(mut self) -> Self {
        self.ids.is_key = true;
        self
    }

    /// With `true` (the default) the schema is registered under the subject on first
    /// use; with `false` it must already be registered there, else serializing fails with
    /// [`Error::SchemaNotFound`](crate::Error::SchemaNotFound) or [`Error::SubjectNotFound`](crate::Error::SubjectNotFound) (production setups that
    /// register schemas from CI, not from applications).
    #[must_use]
    pub fn auto_register(mut self, on: bool) -> Self {
        self.ids.auto_register = on;
        self
    }

    /// The parsed writer schema.
    pub fn schema(&self) -> &AvroSchema {
        &self.parsed
    }

    /// The schema's id under `topic`'s subject: from the cache, else registered or
    /// looked up (one HTTP request per topic for the life of the serializer).
    pub async fn schema_id(&self, topic: &str) -> Result<u32> {
        self.ids
            .id(&self.registry, &self.schema, topic, self.record.as_deref())
            .await
    }

    /// Encode a serde value (a struct whose fields match the schema's) for `topic`,
    /// straight from serde to Avro bytes (no intermediate [`Value`]; with
    /// [references](Self::with_references), through one).
    pub async fn serialize<T: Serialize>(&self, topic: &str, value: &T) -> Result<Vec<u8>> {
        if !self.references.is_empty() {
            return self
                .serialize_value(topic, apache_avro::to_value(value)?)
                .await;
        }
        let id = self.schema_id(topic).await?;
        let mut out = Vec::with_capacity(64);
        framing::write_header(id, &mut out);
        apache_avro::write_avro_datum_ref(&self.parsed, value, &mut out)?;
        Ok(out)
    }

    /// Encode an Avro [`Value`] for `topic`. The value is resolved against the schema
    /// first (so `Value::Int` fits a `long`, a plain value fits a `["null", T]` union).
    pub async fn serialize_value(&self, topic: &str, value: Value) -> Result<Vec<u8>> {
        let id = self.schema_id(topic).await?;
        self.encode(id, value)
    }

    /// The framing and encoding, without the registry.
    fn encode(&self, id: u32, value: Value) -> Result<Vec<u8>> {
        let datum = if self.references.is_empty() {
            let value = value.resolve(&self.parsed)?;
            apache_avro::to_avro_datum(&self.parsed, value)?
        } else {
            // The referenced named types, then the schema's own (resolved in this order,
            // so each schema's references are defined before it).
            let schemata = || {
                self.references
                    .iter()
                    .chain(std::iter::once(&self.parsed))
                    .collect()
            };
            let value = value.resolve_schemata(&self.parsed, schemata())?;
            apache_avro::to_avro_datum_schemata(&self.parsed, schemata(), value)?
        };
        let mut out = Vec::with_capacity(framing::HEADER_LEN + datum.len());
        framing::write_header(id, &mut out);
        out.extend_from_slice(&datum);
        Ok(out)
    }
}

/// A writer schema ready to decode with: the schema and the schemas it references.
#[derive(Debug)]
struct WriterSchema {
    schema: AvroSchema,
    references: Vec<AvroSchema>,
}

/// Decodes Confluent-framed Avro records written with any registered schema.
#[derive(Debug)]
pub struct AvroDeserializer {
    registry: Registry,
    reader: Option<AvroSchema>,
    /// schema id -> parsed writer schema.
    writers: RwLock<HashMap<u32, Arc<WriterSchema>>>,
}

impl AvroDeserializer {
    /// A deserializer that returns values in their writer's schema.
    pub fn new(registry: Registry) -> Self {
        AvroDeserializer {
            registry,
            reader: None,
            writers: RwLock::default(),
        }
    }

    /// Resolve every record into `reader` (Avro JSON): the shape this application
    /// expects, whatever compatible version wrote the record.
    ///
    /// Errors with [`Error::Avro`](crate::Error::Avro) if the schema does not parse.
    pub fn reader_schema(mut self, reader: &str) -> Result<Self> {
        self.reader = Some(AvroSchema::parse_str(reader)?);
        Ok(self)
    }

    /// The writer schema of id `id`, parsed with its references (fetched once).
    async fn writer(&self, id: u32) -> Result<Arc<WriterSchema>> {
        if let Some(w) = sync::read(&self.writers).get(&id) {
            return Ok(Arc::clone(w));
        }
        let schema = self.registry.schema_by_id(id).await?;
        let references = self.reference_texts(&schema).await?;
        let (schema, references) = if references.is_empty() {
            (AvroSchema::parse_str(&schema.schema)?, Vec::new())
        } else {
            AvroSchema::parse_str_with_list(&schema.schema, &references)?
        };
        let writer = Arc::new(WriterSchema { schema, references });
        let mut map = sync::write(&self.writers);
        Ok(Arc::clone(map.entry(id).or_insert(writer)))
    }

    /// The texts of every schema `schema` references, transitively, each schema once.
    async fn reference_texts(&self, schema: &Schema) -> Result<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .registry
            .references_of(schema)
            .await?
            .into_iter()
            .filter(|(r, _)| seen.insert((r.subject.clone(), r.version)))
            .map(|(_, registered)| registered.schema.schema.clone())
            .collect())
    }

    /// Decode a framed record into an Avro [`Value`] (in the reader schema's shape if one
    /// was given).
    ///
    /// Errors: [`Error::WrongMagic`](crate::Error::WrongMagic), [`Error::ShortBuffer`](crate::Error::ShortBuffer), [`Error::UnknownSchemaId`](crate::Error::UnknownSchemaId)
    /// (this record's failure: dead-letter it), [`Error::Avro`](crate::Error::Avro) (bad datum, or a writer
    /// schema the reader schema cannot resolve); registry outages are
    /// [`Error::is_retriable`](crate::Error::is_retriable).
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<Value> {
        let (id, mut payload) = framing::read_header(bytes)?;
        let writer = self.writer(id).await?;
        let value = apache_avro::from_avro_datum_reader_schemata(
            &writer.schema,
            writer.references.iter().collect(),
            &mut payload,
            self.reader.as_ref(),
            Vec::new(),
        )?;
        Ok(value)
    }

    /// Decode a framed record into a serde type.
    pub async fn deserialize_into<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let value = self.deserialize(bytes).await?;
        Ok(apache_avro::from_value(&value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop",
        "fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;

    #[test]
    fn encode_frames_the_datum_with_the_id() {
        let registry = Registry::new("http://127.0.0.1:1").unwrap();
        let ser = AvroSerializer::new(registry, ORDER).unwrap();
        assert_eq!(ser.record.as_deref(), Some("shop.Order"));
        let value = Value::Record(vec![
            ("id".into(), Value::Int(3)),
            ("note".into(), Value::String("hi".into())),
        ]);
        let bytes = ser.encode(258, value).unwrap();
        // magic, id 258 big-endian, long 3 (zig-zag 6), union branch 1 (zig-zag 2),
        // string length 2 (zig-zag 4), "hi".
        assert_eq!(bytes, [0, 0, 0, 1, 2, 6, 2, 4, b'h', b'i']);
        let bad = Value::Record(vec![("id".into(), Value::String("x".into()))]);
        assert!(matches!(ser.encode(1, bad), Err(Error::Avro(_))));
    }
}
