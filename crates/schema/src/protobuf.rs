//! Protobuf in the Confluent wire format: header, message-index list, message bytes.
//!
//! Schemas are `.proto` source, compiled at run time in pure Rust (`protox`) into
//! `prost-reflect` descriptors, so any message (nested ones too) can be written and read
//! as a [`DynamicMessage`], from JSON, or from a `prost`-generated type.
//!
//! The message-index list names the message inside its file: `[1, 0]` is the first
//! message nested in the second top-level one; `[0]`, the first top-level message, is
//! written as the single byte 0 (see [`framing`]).
//!
//! `import`s resolve through registry references: a reference's `name` is the import
//! path, its subject and version name the registered file. Google's well-known types
//! (`google/protobuf/*.proto`) resolve without references.

use crate::sync;
use std::collections::HashMap;
use std::sync::RwLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::error::{Error, Result};
use crate::framing;
use crate::registry::Registry;
use crate::schema::{Schema, SchemaReference, SchemaType};
use crate::subject::{SubjectIds, SubjectNameStrategy};

/// The name the schema being compiled gets (imports never name it).
const MAIN: &str = "__sluice_main__.proto";

/// Serves the schema and its imports from memory.
struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compile `proto` with its imports (import path -> source) into a descriptor pool.
fn compile(proto: &str, imports: &[(String, String)]) -> Result<DescriptorPool> {
    let mut sources: HashMap<String, String> = imports.iter().cloned().collect();
    sources.insert(MAIN.to_string(), proto.to_string());
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources(sources));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_file(MAIN).map_err(|e| Error::InvalidSchema {
        message: format!("protobuf: {e}"),
    })?;
    Ok(compiler.descriptor_pool())
}

/// The message-index path of `message` inside its file.
fn indexes_of(message: &MessageDescriptor) -> Vec<i32> {
    let mut path = Vec::new();
    let mut cur = message.clone();
    loop {
        match cur.parent_message() {
            Some(parent) => {
                let i = parent
                    .child_messages()
                    .position(|m| m.full_name() == cur.full_name())
                    .unwrap_or(0);
                path.push(i as i32);
                cur = parent;
            }
            None => {
                let i = cur
                    .parent_file()
                    .messages()
                    .position(|m| m.full_name() == cur.full_name())
                    .unwrap_or(0);
                path.push(i as i32);
                break;
            }
        }
    }
    path.reverse();
    path
}

/// The message an index path names in the main file of `pool`.
fn message_at(pool: &DescriptorPool, indexes: &[i32]) -> Option<MessageDescriptor> {
    let file = pool.get_file_by_name(MAIN)?;
    let (&first, rest) = indexes.split_first()?;
    let mut cur = file.messages().nth(usize::try_from(first).ok()?)?;
    for &i in rest {
        let next = cur.child_messages().nth(usize::try_from(i).ok()?)?;
        cur = next;
    }
    Some(cur)
}

fn decode_error(e: prost::DecodeError) -> Error {
    Error::Protobuf(e.to_string())
}

/// Encodes Protobuf messages of one `.proto` schema into Confluent-framed bytes.
pub struct ProtobufSerializer {
    registry: Registry,
    schema: Schema,
    message: MessageDescriptor,
    indexes: Vec<i32>,
    /// Subject naming, auto-registration and the id cache per topic.
    ids: SubjectIds,
}

impl std::fmt::Debug for ProtobufSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufSerializer")
            .field("message", &self.message.full_name())
            .field("indexes", &self.indexes)
            .field("strategy", &self.ids.strategy)
            .field("is_key", &self.ids.is_key)
            .field("auto_register", &self.ids.auto_register)
            .finish_non_exhaustive()
    }
}

impl ProtobufSerializer {
    /// A serializer of `message` (its full name, e.g. `shop.Order.Line`) from the
    /// `.proto` source `proto`, whose imports are `imports`: each a registry reference
    /// (its `name` is the import path) with the imported file's source. Topic strategy,
    /// auto-registration on.
    ///
    /// Errors: [`Error::InvalidSchema`] if the source does not compile or has no such
    /// message.
    pub fn new(
        registry: Registry,
        proto: &str,
        message: &str,
        imports: &[(SchemaReference, &str)],
    ) -> Result<Self> {
        let sources: Vec<(String, String)> = imports
            .iter()
            .map(|(r, src)| (r.name.clone(), src.to_string()))
            .collect();
        let pool = compile(proto, &sources)?;
        let descriptor = pool
            .get_message_by_name(message)
            .filter(|m| m.parent_file().name() == MAIN)
            .ok_or_else(|| Error::InvalidSchema {
                message: format!("protobuf: no message {message:?} in the schema"),
            })?;
        Ok(ProtobufSerializer {
            registry,
            schema: Schema::new(SchemaType::Protobuf, proto)
                .with_references(imports.iter().map(|(r, _)| r.clone()).collect()),
            indexes: indexes_of(&descriptor),
            message: descriptor,
            ids: SubjectIds::new(),
        })
    }

    /// Derive subjects with `strategy` (the record name is the message's full name).
    #[must_use]
    pub fn strategy(mut self, strategy: SubjectNameStrategy) -> Self {
        self.ids.strategy = strategy;
        self
    }

    /// Serialize record keys.
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

    /// The descriptor of the message this serializer writes.
    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.message
    }

    /// The schema's id under `topic`'s subject (one HTTP request per topic, then cached).
    pub async fn schema_id(&self, topic: &str) -> Result<u32> {
        self.ids
            .id(
                &self.registry,
                &self.schema,
                topic,
                Some(self.message.full_name()),
            )
            .await
    }

    fn frame(&self, id: u32, message: &impl Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(framing::HEADER_LEN + 2 + message.encoded_len());
        framing::write_header(id, &mut out);
        framing::write_message_indexes(&self.indexes, &mut out);
        message.encode_raw(&mut out);
        out
    }

    /// Encode a dynamic message for `topic`.
    ///
    /// Errors with [`Error::Protobuf`] if it is a message of another type.
    pub async fn serialize(&self, topic: &str, message: &DynamicMessage) -> Result<Vec<u8>> {
        if message.descriptor().full_name() != self.message.full_name() {
            return Err(Error::Protobuf(format!(
                "a {} given to the serializer of {}",
                message.descriptor().full_name(),
                self.message.full_name()
            )));
        }
        let id = self.schema_id(topic).await?;
        Ok(self.frame(id, message))
    }

    /// Encode a message given as JSON (Protobuf's JSON mapping: field names in
    /// lowerCamelCase or as declared, 64-bit integers as numbers or strings).
    pub async fn serialize_json(&self, topic: &str, json: &serde_json::Value) -> Result<Vec<u8>> {
        let message = DynamicMessage::deserialize(self.message.clone(), json).map_err(|e| {
            Error::Protobuf(format!(
                "JSON does not fit {}: {e}",
                self.message.full_name()
            ))
        })?;
        let id = self.schema_id(topic).await?;
        Ok(self.frame(id, &message))
    }

    /// Encode a `prost`-generated message for `topic`; it must be the type this
    /// serializer's schema describes (prost types carry no descriptor to check).
    pub async fn serialize_prost<M: Message>(&self, topic: &str, message: &M) -> Result<Vec<u8>> {
        let id = self.schema_id(topic).await?;
        Ok(self.frame(id, message))
    }
}

/// Decodes Confluent-framed Protobuf records of any registered schema into dynamic
/// messages.
pub struct ProtobufDeserializer {
    registry: Registry,
    pools: RwLock<HashMap<u32, DescriptorPool>>,
}

impl std::fmt::Debug for ProtobufDeserializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufDeserializer")
            .finish_non_exhaustive()
    }
}

impl ProtobufDeserializer {
    /// A deserializer that fetches each writer schema (and its imports) once.
    pub fn new(registry: Registry) -> Self {
        ProtobufDeserializer {
            registry,
            pools: RwLock::default(),
        }
    }

    /// The compiled schema of id `id` with its imports, fetched once.
    async fn pool(&self, id: u32) -> Result<DescriptorPool> {
        if let Some(pool) = sync::read(&self.pools).get(&id) {
            return Ok(pool.clone());
        }
        let schema = self.registry.schema_by_id(id).await?;
        if schema.schema_type != SchemaType::Protobuf {
            return Err(Error::Protobuf(format!(
                "schema {id} is {:?}, not Protobuf",
                schema.schema_type
            )));
        }
        let imports = self.registry.reference_sources(&schema).await?;
        let pool = compile(&schema.schema, &imports)?;
        let mut map = sync::write(&self.pools);
        Ok(map.entry(id).or_insert(pool).clone())
    }

    /// Decode a framed record into a dynamic message of the type its index list names.
    ///
    /// Errors: [`Error::WrongMagic`], [`Error::ShortBuffer`],
    /// [`Error::BadMessageIndexes`], [`Error::UnknownSchemaId`], [`Error::Protobuf`] (no
    /// message at that index, or bytes that do not decode).
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<DynamicMessage> {
        let (id, rest) = framing::read_header(bytes)?;
        let (indexes, payload) = framing::read_message_indexes(rest)?;
        let pool = self.pool(id).await?;
        let desc = message_at(&pool, &indexes).ok_or_else(|| {
            Error::Protobuf(format!("schema {id} has no message at index {indexes:?}"))
        })?;
        DynamicMessage::decode(desc, payload).map_err(decode_error)
    }

    /// Decode a framed record into a `prost`-generated type (which must be the message
    /// the record's schema and index list name; prost types carry no descriptor to check).
    /// Fetches nothing: the header and index list are checked and skipped.
    pub fn deserialize_prost<M: Message + Default>(bytes: &[u8]) -> Result<M> {
        let (_, rest) = framing::read_header(bytes)?;
        let (_, payload) = framing::read_message_indexes(rest)?;
        M::decode(payload).map_err(decode_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
        syntax = "proto3";
        package shop;
        message Header { string trace = 1; }
        message Order {
            int64 id = 1;
            message Line { string sku = 1; int32 qty = 2; message Tag { string v = 1; } }
            repeated Line lines = 2;
        }
    "#;

    #[test]
    fn index_paths_name_nested_messages_both_ways() {
        let pool = compile(PROTO, &[]).unwrap();
        for (name, path) in [
            ("shop.Header", vec![0]),
            ("shop.Order", vec![1]),
            ("shop.Order.Line", vec![1, 0]),
            ("shop.Order.Line.Tag", vec![1, 0, 0]),
        ] {
            let m = pool.get_message_by_name(name).unwrap();
            assert_eq!(indexes_of(&m), path, "{name}");
            assert_eq!(message_at(&pool, &path).unwrap().full_name(), name);
        }
        assert!(message_at(&pool, &[2]).is_none());
        assert!(message_at(&pool, &[1, 5]).is_none());
    }

    #[test]
    fn a_bad_schema_is_an_invalid_schema_error() {
        assert!(matches!(
            compile("syntax = \"proto3\"; message {", &[]),
            Err(Error::InvalidSchema { .. })
        ));
        assert!(matches!(
            compile("syntax = \"proto3\"; import \"missing.proto\";", &[]),
            Err(Error::InvalidSchema { .. })
        ));
    }
}
