//! JSON Schema in the Confluent wire format: the payload is the JSON text, validated with
//! the `jsonschema` crate.
//!
//! [`JsonSerializer`] validates every value against its schema before it frames it, so
//! nothing that breaks the schema reaches the topic. [`JsonDeserializer`] reads the id,
//! fetches and compiles that schema once, and (unless turned off) validates what it
//! parsed, so a consumer sees either a conforming value or a typed error.
//!
//! Schemas that `$ref` other registered schemas (registry references) or remote URLs are
//! not resolved: compiling one fails with [`Error::InvalidSchema`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::framing;
use crate::registry::Registry;
use crate::schema::{Schema, SchemaType};
use crate::subject::{SubjectIds, SubjectNameStrategy};

fn compile(schema: &Value) -> Result<jsonschema::Validator> {
    jsonschema::validator_for(schema).map_err(|e| Error::InvalidSchema {
        message: e.to_string(),
    })
}

/// The first few violations, for the error message.
fn violations(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    let found: Vec<String> = validator
        .iter_errors(value)
        .take(3)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!found.is_empty()).then(|| found.join("; "))
}

/// Encodes values as JSON checked against one JSON Schema, in Confluent framing.
pub struct JsonSerializer {
    registry: Registry,
    schema: Schema,
    validator: jsonschema::Validator,
    /// The schema's `title`: the record name of the record strategies (as in Java's).
    record: Option<String>,
    /// Subject naming, auto-registration and the id cache per topic.
    ids: SubjectIds,
}

impl std::fmt::Debug for JsonSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSerializer")
            .field("record", &self.record)
            .field("strategy", &self.ids.strategy)
            .field("is_key", &self.ids.is_key)
            .field("auto_register", &self.ids.auto_register)
            .finish_non_exhaustive()
    }
}

impl JsonSerializer {
    /// A serializer of values with the JSON Schema `schema`, the topic strategy and
    /// auto-registration on.
    ///
    /// Errors: [`Error::Json`] if `schema` is not JSON, [`Error::InvalidSchema`] if it is
    /// not a schema this validator compiles.
    pub fn new(registry: Registry, schema: &str) -> Result<Self> {
        let parsed: Value = serde_json::from_str(schema).map_err(Error::Json)?;
        let validator = compile(&parsed)?;
        let record = parsed
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(JsonSerializer {
            registry,
            schema: Schema::new(SchemaType::Json, schema),
            validator,
            record,
            ids: SubjectIds::new(),
        })
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

    /// Register the schema on first use (`true`, the default) or require it registered.
    #[must_use]
    pub fn auto_register(mut self, on: bool) -> Self {
        self.ids.auto_register = on;
        self
    }

    /// The schema's id under `topic`'s subject (one HTTP request per topic, then cached).
    pub async fn schema_id(&self, topic: &str) -> Result<u32> {
        self.ids
            .id(&self.registry, &self.schema, topic, self.record.as_deref())
            .await
    }

    /// Validate `value` and encode it for `topic`.
    ///
    /// Errors: [`Error::Invalid`] if the value breaks the schema (nothing is registered or
    /// encoded then), [`Error::Json`] if it has no JSON form.
    pub async fn serialize<T: Serialize>(&self, topic: &str, value: &T) -> Result<Vec<u8>> {
        let value = serde_json::to_value(value).map_err(Error::Json)?;
        if let Some(why) = violations(&self.validator, &value) {
            return Err(Error::Invalid(why));
        }
        let id = self.schema_id(topic).await?;
        let mut out = Vec::with_capacity(64);
        framing::write_header(id, &mut out);
        serde_json::to_writer(&mut out, &value).map_err(Error::Json)?;
        Ok(out)
    }
}

/// Decodes Confluent-framed JSON records, validating them against their writer's schema.
pub struct JsonDeserializer {
    registry: Registry,
    validate: bool,
    validators: RwLock<HashMap<u32, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for JsonDeserializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDeserializer")
            .field("validate", &self.validate)
            .finish_non_exhaustive()
    }
}

impl JsonDeserializer {
    /// A deserializer that validates every record against the schema its id names.
    pub fn new(registry: Registry) -> Self {
        JsonDeserializer {
            registry,
            validate: true,
            validators: RwLock::default(),
        }
    }

    /// With `false`, records are parsed but not validated, and no schema is fetched (the
    /// Java deserializer's `json.fail.invalid.schema=false`, its default).
    #[must_use]
    pub fn validate(mut self, on: bool) -> Self {
        self.validate = on;
        self
    }

    async fn validator(&self, id: u32) -> Result<Arc<jsonschema::Validator>> {
        if let Some(v) = self
            .validators
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(Arc::clone(v));
        }
        let schema = self.registry.schema_by_id(id).await?;
        let parsed: Value =
            serde_json::from_str(&schema.schema).map_err(|e| Error::InvalidSchema {
                message: format!("schema {id} is not JSON: {e}"),
            })?;
        let validator = Arc::new(compile(&parsed)?);
        let mut map = self.validators.write().unwrap_or_else(|p| p.into_inner());
        Ok(Arc::clone(map.entry(id).or_insert(validator)))
    }

    /// Decode a framed record into a JSON value.
    ///
    /// Errors: [`Error::WrongMagic`], [`Error::ShortBuffer`], [`Error::UnknownSchemaId`],
    /// [`Error::Json`] (the payload is not JSON), [`Error::Invalid`] (it breaks its schema).
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<Value> {
        let (id, payload) = framing::read_header(bytes)?;
        if !self.validate {
            return serde_json::from_slice(payload).map_err(Error::Json);
        }
        // The schema first: an unknown id is the answer even when the payload is bad.
        let validator = self.validator(id).await?;
        let value: Value = serde_json::from_slice(payload).map_err(Error::Json)?;
        if let Some(why) = violations(&validator, &value) {
            return Err(Error::Invalid(why));
        }
        Ok(value)
    }

    /// Decode a framed record into a serde type.
    pub async fn deserialize_into<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let value = self.deserialize(bytes).await?;
        serde_json::from_value(value).map_err(Error::Json)
    }
}
