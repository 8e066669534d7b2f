//! What the registry stores: schemas, their references, versions, compatibility levels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a schema, as the registry's `schemaType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (the registry's default: `schemaType` is omitted on the wire).
    #[default]
    Avro,
    /// Protocol Buffers (`.proto` text).
    Protobuf,
    /// JSON Schema.
    Json,
}

/// A reference from one schema to another registered one (an Avro named type, a
/// Protobuf `import`, a JSON Schema `$ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referring schema uses (Avro: the type's full name; Protobuf: the
    /// import path; JSON Schema: the `$ref` URL).
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// Its version under that subject.
    pub version: i32,
}

/// A schema as registered: its text, kind and references. The cache key of
/// [`Registry::id_of`](crate::Registry::id_of) and [`Registry::register`](crate::Registry::register),
/// so two equal texts are one schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    /// The schema text (Avro or JSON Schema JSON, or `.proto` source).
    pub schema: String,
    /// Its kind.
    pub schema_type: SchemaType,
    /// The registered schemas it refers to.
    pub references: Vec<SchemaReference>,
}

impl Schema {
    /// An Avro schema without references.
    pub fn avro(schema: impl Into<String>) -> Self {
        Schema {
            schema: schema.into(),
            schema_type: SchemaType::Avro,
            references: Vec::new(),
        }
    }

    /// A schema of any kind without references.
    pub fn new(schema_type: SchemaType, schema: impl Into<String>) -> Self {
        Schema {
            schema: schema.into(),
            schema_type,
            references: Vec::new(),
        }
    }

    /// The same schema with `references` added.
    pub fn with_references(mut self, references: Vec<SchemaReference>) -> Self {
        self.references = references;
        self
    }
}

/// A schema under a subject: what `GET /subjects/{s}/versions/{v}` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version under the subject (1, 2, ...).
    pub version: i32,
    /// The schema id (what records carry in their header).
    pub id: u32,
    /// The schema.
    pub schema: Schema,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The newest version (`latest`). Never cached: it changes when a schema is registered.
    Latest,
    /// Version number `n` (1-based). Immutable once registered, so cached.
    Number(i32),
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Number(n) => write!(f, "{n}"),
        }
    }
}

/// A subject's (or the registry's global) compatibility rule: which changes a new
/// version may make relative to the older ones.
///
/// Apicurio Registry's default is [`Compatibility::None`] (Confluent's is `Backward`):
/// set it explicitly on subjects that must evolve safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// Any change is accepted.
    None,
    /// New readers read data of the previous version.
    Backward,
    /// New readers read data of every earlier version.
    BackwardTransitive,
    /// Previous readers read data of the new version.
    Forward,
    /// Every earlier reader reads data of the new version.
    ForwardTransitive,
    /// Backward and forward with the previous version.
    Full,
    /// Backward and forward with every earlier version.
    FullTransitive,
}
