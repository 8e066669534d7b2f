//! A caching client for the Confluent Schema Registry REST API.
//!
//! Served by Confluent's registry, Apicurio Registry (under `/apis/ccompat/v7`),
//! Karapace and Redpanda. What a record needs on the hot path (the id of a schema, the
//! schema of an id) is cached for the life of the client: ids and registered versions
//! are immutable, so after the first record of each schema no HTTP request is made.
//!
//! # Apicurio Registry's differences
//!
//! Sluice is tested against Apicurio Registry 3.0 (`cargo xtask registry up`). Where it
//! differs from Confluent's registry:
//!
//! - The default compatibility is `NONE` (Confluent's: `BACKWARD`): every change is
//!   accepted until [`Registry::set_compatibility`] sets a rule.
//! - `PUT /config/{subject}` answers `{"compatibilityLevel": ..}` where Confluent answers
//!   `{"compatibility": ..}`; both are read.
//! - `GET /config/{subject}` of a subject without its own rule answers the global rule
//!   (Confluent answers 40408 unless `defaultToGlobal=true`, which this client sends), and
//!   of a subject that does not exist 40401; [`Registry::compatibility`] answers the
//!   global rule then, as Confluent does with `defaultToGlobal`.
//! - The ids it hands out are content ids: the same schema text under two subjects has
//!   one id (as in Confluent's).

mod builder;
mod flight;
mod http;
mod unknown_ids;

pub use builder::RegistryBuilder;

use crate::sync;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::schema::{
    Compatibility, RegisteredSchema, Schema, SchemaReference, SchemaType, Version,
};
use flight::Flights;
use http::{Ctx, Transport};
use unknown_ids::UnknownIds;

/// A schema-registry client. Cheap to clone: clones share the connection pool, the
/// caches and the request bound.
///
/// All methods are cancel-safe: dropping a call's future abandons its HTTP request and
/// leaves the caches as they were.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    /// id -> schema: what deserializers ask for. No lock is held across an `.await`.
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    /// subject -> schema -> id: what serializers ask for (nested, so a lookup with a
    /// borrowed subject allocates nothing).
    by_schema: RwLock<HashMap<String, HashMap<Schema, u32>>>,
    /// (subject, version) -> registered schema: what reference resolution asks for.
    by_version: RwLock<HashMap<(String, i32), Arc<RegisteredSchema>>>,
    /// Ids the registry said it has no schema for, for a short TTL.
    unknown_ids: UnknownIds,
    /// One fetch per id at a time (concurrent misses wait for it, then hit the cache).
    id_flights: Flights<u32>,
    /// One register or lookup per (subject, schema) at a time.
    schema_flights: Flights<(String, Schema)>,
}

/// A schema as the REST API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSchema {
    schema: String,
    #[serde(default)]
    schema_type: Option<SchemaType>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
}

impl From<WireSchema> for Schema {
    fn from(w: WireSchema) -> Self {
        Schema {
            schema: w.schema,
            schema_type: w.schema_type.unwrap_or_default(),
            references: w.references.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct WireVersion {
    subject: String,
    version: i32,
    id: u32,
    #[serde(flatten)]
    schema: WireSchema,
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::BadReply(e.to_string()))
}

/// The body of a register or lookup request; `schemaType` is left out for Avro, the
/// default, which registries that predate the field require.
fn schema_body(schema: &Schema) -> Value {
    let mut body = json!({ "schema": schema.schema });
    if schema.schema_type != SchemaType::Avro {
        body["schemaType"] = json!(schema.schema_type);
    }
    if !schema.references.is_empty() {
        body["references"] = json!(schema.references);
    }
    body
}

/// `{"compatibilityLevel": ..}` (GET, and Apicurio's PUT) or `{"compatibility": ..}`
/// (Confluent's PUT).
fn compatibility_of(v: Value) -> Result<Compatibility> {
    let level = v
        .get("compatibilityLevel")
        .or_else(|| v.get("compatibility"))
        .cloned()
        .ok_or_else(|| Error::BadReply(format!("no compatibility level in {v}")))?;
    parse(level)
}

impl Registry {
    /// A client for the registry at `url` (for Apicurio: `http://host:8080/apis/ccompat/v7`)
    /// with the defaults; see [`Registry::builder`] for the rest.
    pub fn new(url: impl Into<String>) -> Result<Registry> {
        Registry::builder(url).build()
    }

    /// A builder for a client of the registry at `url`.
    pub fn builder(url: impl Into<String>) -> RegistryBuilder {
        RegistryBuilder::new(url.into())
    }

    /// HTTP requests this client (and its clones) has sent, every attempt counted: the
    /// figure that shows the hot path stays off the network.
    pub fn http_requests(&self) -> u64 {
        self.inner.transport.requests()
    }

    fn cached_schema(&self, id: u32) -> Option<Arc<Schema>> {
        let map = sync::read(&self.inner.by_id);
        map.get(&id).map(Arc::clone)
    }

    fn cached_id(&self, subject: &str, schema: &Schema) -> Option<u32> {
        let map = sync::read(&self.inner.by_schema);
        map.get(subject)?.get(schema).copied()
    }

    fn remember(&self, subject: &str, schema: &Schema, id: u32) {
        sync::write(&self.inner.by_schema)
            .entry(subject.to_string())
            .or_default()
            .insert(schema.clone(), id);
        sync::write(&self.inner.by_id)
            .entry(id)
            .or_insert_with(|| Arc::new(schema.clone()));
    }

    /// Register `schema` under `subject` (`POST /subjects/{subject}/versions`) and return
    /// its id; registering a schema the subject already has returns its id and adds no
    /// version. Cached: the second call for the same subject and schema sends nothing.
    ///
    /// Errors: [`Error::Incompatible`] if the subject's rule rejects it,
    /// [`Error::InvalidSchema`] if the registry cannot parse it.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<u32> {
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        let _flight = self
            .inner
            .schema_flights
            .enter((subject.to_string(), schema.clone()))
            .await;
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let reply = self
            .inner
            .transport
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                None,
                Some(&schema_body(schema)),
                Ctx {
                    subject: Some(subject),
                    ..Ctx::default()
                },
            )
            .await?;
        let id = parse::<Id>(reply)?.id;
        self.remember(subject, schema, id);
        Ok(id)
    }

    /// The id of `schema` if it is registered under `subject` (`POST /subjects/{subject}`),
    /// without registering it. Cached like [`register`](Self::register).
    ///
    /// Errors: [`Error::SchemaNotFound`], [`Error::SubjectNotFound`].
    pub async fn id_of(&self, subject: &str, schema: &Schema) -> Result<u32> {
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        let _flight = self
            .inner
            .schema_flights
            .enter((subject.to_string(), schema.clone()))
            .await;
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        let reply = self
            .inner
            .transport
            .call(
                Method::POST,
                &["subjects", subject],
                None,
                Some(&schema_body(schema)),
                Ctx {
                    subject: Some(subject),
                    ..Ctx::default()
                },
            )
            .await?;
        let v: WireVersion = parse(reply)?;
        self.remember(subject, schema, v.id);
        Ok(v.id)
    }

    /// The schema with id `id` (`GET /schemas/ids/{id}`). Cached: ids are immutable.
    /// An id the registry does not have is remembered too, for
    /// [`RegistryBuilder::unknown_id_ttl`] (default 5 s): records that all carry one bad
    /// id make one request per TTL, not one each.
    ///
    /// Errors: [`Error::UnknownSchemaId`].
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>> {
        if let Some(s) = self.cached_schema(id) {
            return Ok(s);
        }
        if self.inner.unknown_ids.contains(id) {
            return Err(Error::UnknownSchemaId(id));
        }
        let _flight = self.inner.id_flights.enter(id).await;
        if let Some(s) = self.cached_schema(id) {
            return Ok(s);
        }
        // Waiters behind a fetch that got 40403 take its answer, not a request each.
        if self.inner.unknown_ids.contains(id) {
            return Err(Error::UnknownSchemaId(id));
        }
        let id_text = id.to_string();
        let reply = self
            .inner
            .transport
            .call(
                Method::GET,
                &["schemas", "ids", &id_text],
                None,
                None,
                Ctx {
                    id: Some(id),
                    ..Ctx::default()
                },
            )
            .await;
        let reply = match reply {
            Err(Error::UnknownSchemaId(_)) => {
                self.inner.unknown_ids.insert(id);
                return Err(Error::UnknownSchemaId(id));
            }
            other => other?,
        };
        self.inner.unknown_ids.remove(id);
        let schema = Arc::new(Schema::from(parse::<WireSchema>(reply)?));
        let mut map = sync::write(&self.inner.by_id);
        Ok(Arc::clone(map.entry(id).or_insert(schema)))
    }

    /// Version `version` of `subject` (`GET /subjects/{subject}/versions/{version}`).
    /// Numbered versions are cached; [`Version::Latest`] always asks.
    ///
    /// Errors: [`Error::SubjectNotFound`], [`Error::VersionNotFound`].
    pub async fn version(&self, subject: &str, version: Version) -> Result<Arc<RegisteredSchema>> {
        if let Version::Number(n) = version {
            let key = (subject.to_string(), n);
            if let Some(r) = sync::read(&self.inner.by_version).get(&key) {
                return Ok(Arc::clone(r));
            }
        }
        let v = version.to_string();
        let reply = self
            .inner
            .transport
            .call(
                Method::GET,
                &["subjects", subject, "versions", &v],
                None,
                None,
                Ctx {
                    subject: Some(subject),
                    version: Some(&v),
                    id: None,
                },
            )
            .await?;
        let w: WireVersion = parse(reply)?;
        let registered = Arc::new(RegisteredSchema {
            subject: w.subject,
            version: w.version,
            id: w.id,
            schema: w.schema.into(),
        });
        self.remember(subject, &registered.schema, registered.id);
        sync::write(&self.inner.by_version).insert(
            (subject.to_string(), registered.version),
            Arc::clone(&registered),
        );
        Ok(registered)
    }

    /// Every schema `schema` references, transitively, each reference once, in the order
    /// found: what a deserializer needs beside a writer schema to compile it. Each is a
    /// (cached) [`version`](Self::version) lookup.
    pub(crate) async fn references_of(
        &self,
        schema: &Schema,
    ) -> Result<Vec<(SchemaReference, Arc<RegisteredSchema>)>> {
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut pending: Vec<SchemaReference> = schema.references.iter().rev().cloned().collect();
        while let Some(r) = pending.pop() {
            if !seen.insert(r.clone()) {
                continue;
            }
            let registered = self.version(&r.subject, Version::Number(r.version)).await?;
            pending.extend(registered.schema.references.iter().rev().cloned());
            found.push((r, registered));
        }
        Ok(found)
    }

    /// [`references_of`](Self::references_of) as (reference name, schema text): the
    /// sources a `$ref` or an `import` names.
    pub(crate) async fn reference_sources(&self, schema: &Schema) -> Result<Vec<(String, String)>> {
        Ok(self
            .references_of(schema)
            .await?
            .into_iter()
            .map(|(r, registered)| (r.name, registered.schema.schema.clone()))
            .collect())
    }

    /// Would `schema` be accepted as a new version of `subject`, judged against
    /// `version` under the subject's rule?
    /// (`POST /compatibility/subjects/{subject}/versions/{version}`; never cached.)
    pub async fn is_compatible(
        &self,
        subject: &str,
        version: Version,
        schema: &Schema,
    ) -> Result<bool> {
        let v = version.to_string();
        let reply = self
            .inner
            .transport
            .call(
                Method::POST,
                &["compatibility", "subjects", subject, "versions", &v],
                None,
                Some(&schema_body(schema)),
                Ctx {
                    subject: Some(subject),
                    version: Some(&v),
                    id: None,
                },
            )
            .await?;
        reply
            .get("is_compatible")
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::BadReply(format!("no is_compatible in {reply}")))
    }

    /// The compatibility rule of `subject` (falling back to the global one when the
    /// subject has none of its own), or the global rule for `None`
    /// (`GET /config[/{subject}]`; never cached).
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        let global = || {
            self.inner
                .transport
                .call(Method::GET, &["config"], None, None, Ctx::default())
        };
        let Some(subject) = subject else {
            return compatibility_of(global().await?);
        };
        let reply = self
            .inner
            .transport
            .call(
                Method::GET,
                &["config", subject],
                Some(("defaultToGlobal", "true")),
                None,
                Ctx {
                    subject: Some(subject),
                    ..Ctx::default()
                },
            )
            .await;
        match reply {
            Ok(v) => compatibility_of(v),
            // Apicurio: a subject that does not exist yet has the global rule.
            // Confluent without defaultToGlobal support: 40408, no rule of its own.
            Err(Error::SubjectNotFound { .. }) | Err(Error::Registry { code: 40408, .. }) => {
                compatibility_of(global().await?)
            }
            Err(e) => Err(e),
        }
    }

    /// Set the compatibility rule of `subject`, or the global rule for `None`
    /// (`PUT /config[/{subject}]`); returns the rule the registry now has.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<Compatibility> {
        let mut segments = vec!["config"];
        segments.extend(subject);
        let reply = self
            .inner
            .transport
            .call(
                Method::PUT,
                &segments,
                None,
                Some(&json!({ "compatibility": level })),
                Ctx {
                    subject,
                    ..Ctx::default()
                },
            )
            .await?;
        compatibility_of(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_follow_the_rest_api() {
        assert_eq!(
            schema_body(&Schema::avro(r#""int""#)),
            json!({ "schema": "\"int\"" })
        );
        let proto =
            Schema::new(SchemaType::Protobuf, "syntax = \"proto3\";").with_references(vec![
                SchemaReference {
                    name: "common.proto".into(),
                    subject: "common".into(),
                    version: 2,
                },
            ]);
        assert_eq!(
            schema_body(&proto),
            json!({
                "schema": "syntax = \"proto3\";",
                "schemaType": "PROTOBUF",
                "references": [{ "name": "common.proto", "subject": "common", "version": 2 }]
            })
        );
    }

    #[test]
    fn both_config_reply_shapes_are_read() {
        assert_eq!(
            compatibility_of(json!({ "compatibilityLevel": "BACKWARD" })).unwrap(),
            Compatibility::Backward
        );
        assert_eq!(
            compatibility_of(json!({ "compatibility": "FULL_TRANSITIVE" })).unwrap(),
            Compatibility::FullTransitive
        );
        assert!(matches!(
            compatibility_of(json!({ "other": 1 })),
            Err(Error::BadReply(_))
        ));
    }

    #[test]
    fn replies_without_schema_type_are_avro() {
        let w: WireVersion = serde_json::from_value(json!({
            "subject": "s", "version": 3, "id": 9, "schema": "\"int\""
        }))
        .unwrap();
        let s = Schema::from(w.schema);
        assert_eq!(s.schema_type, SchemaType::Avro);
        assert!(s.references.is_empty());
    }

    #[test]
    fn urls_are_checked_and_credentials_become_basic_auth() {
        assert!(matches!(Registry::new("ftp://x"), Err(Error::Config(_))));
        assert!(matches!(Registry::new("not a url"), Err(Error::Config(_))));
        let r = Registry::new("http://key:secret@127.0.0.1:1/apis/ccompat/v7").unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("Basic(\"key\", ***)"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}
