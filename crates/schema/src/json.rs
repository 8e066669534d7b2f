//! JSON Schema in the Confluent wire format: the payload is the JSON text, validated with
//! the `jsonschema` crate.
//!
//! [`JsonSerializer`] validates every value against its schema before it frames it, so
//! nothing that breaks the schema reaches the topic. [`JsonDeserializer`] reads the id,
//! fetches and compiles that schema once, and (unless turned off) validates what it
//! parsed, so a consumer sees either a conforming value or a typed error.
//!
//! A schema may `$ref` other registered schemas through registry references: each
//! reference's `name` is the `$ref` URL (`"$ref": "money.json"` or an absolute URL), its
//! subject and version the registered schema it stands for. The serializer is given the
//! referenced texts; the deserializer fetches them (once per writer schema). Remote URLs
//! that no reference names are never fetched: compiling fails with
//! [`Error::InvalidSchema`].

use crate::sync;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::framing;
use crate::registry::Registry;
use crate::schema::{Schema, SchemaReference, SchemaType};
use crate::subject::{SubjectIds, SubjectNameStrategy};

/// The referenced schemas a `$ref` may name, by reference name.
struct References(HashMap<String, Value>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        // A relative `$ref` arrives resolved against the schema's base URI
        // (`json-schema:///money.json` for `money.json`).
        let uri = uri.as_str();
        self.0
            .iter()
            .find(|(name, _)| {
                uri == name.as_str()
                    || uri
                        .strip_suffix(name.as_str())
                        .is_some_and(|base| base.ends_with('/'))
            })
            .map(|(_, schema)| schema.clone())
            .ok_or_else(|| format!("no registry reference named {uri:?}").into())
    }
}

/// Compile `schema`, its `$ref`s served from `references` (name -> schema text).
fn compile(schema: &Value, references: &[(String, String)]) -> Result<jsonschema::Validator> {
    let invalid = |message: String| Error::InvalidSchema { message };
    let built = if references.is_empty() {
        jsonschema::validator_for(schema)
    } else {
        let mut parsed = HashMap::new();
        for (name, text) in references {
            let value = serde_json::from_str(text)
                .map_err(|e| invalid(format!("referenced schema {name:?} is not JSON: {e}")))?;
            parsed.insert(name.clone(), value);
        }
        jsonschema::options()
            .with_retriever(References(parsed))
            .build(schema)
    };
    built.map_err(|e| invalid(e.to_string()))
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
        Self::with_references(registry, schema, &[])
    }

    /// A serializer with a schema whose `$ref`s name other registered schemas:
    /// `references` are the registry references (each `name` the `$ref` URL) with each
    /// referenced schema's text. They are registered with the schema, so deserializers
    /// resolve them. The referenced schemas must be registered already.
    ///
    /// Errors: as [`new`](Self::new); a `$ref` that no reference serves is
    /// [`Error::InvalidSchema`].
    pub fn with_references(
        registry: Registry,
        schema: &str,
        references: &[(SchemaReference, &str)],
    ) -> Result<Self> {
        let parsed: Value = serde_json::from_str(schema).map_err(Error::Json)?;
        let texts: Vec<(String, String)> = references
            .iter()
            .map(|(r, text)| (r.name.clone(), text.to_string()))
            .collect();
        let validator = compile(&parsed, &texts)?;
        let record = parsed
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(JsonSerializer {
            registry,
            schema: Schema::new(SchemaType::Json, schema)
                .with_references(references.iter().map(|(r, _)| r.clone()).collect()),
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
        if let Some(v) = sync::read(&self.validators).get(&id) {
            return Ok(Arc::clone(v));
        }
        let schema = self.registry.schema_by_id(id).await?;
        let parsed: Value =
            serde_json::from_str(&schema.schema).map_err(|e| Error::InvalidSchema {
                message: format!("schema {id} is not JSON: {e}"),
            })?;
        let references = self.registry.reference_sources(&schema).await?;
        let validator = Arc::new(compile(&parsed, &references)?);
        let mut map = sync::write(&self.validators);
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
