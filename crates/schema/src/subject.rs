//! Subject name strategies: which registry subject a topic's keys or values live under.
//!
//! The same three as the Java serializers' `key.subject.name.strategy` /
//! `value.subject.name.strategy`, producing the same names, so Sluice and Java
//! applications share subjects.

use crate::error::{Error, Result};
use crate::sync;

/// How a subject name is derived from the topic, the side (key or value) and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`: one schema (and its evolution) per topic and side.
    /// Java's `TopicNameStrategy`, the default.
    #[default]
    Topic,
    /// `<record full name>`: the record type's subject, shared by every topic that carries
    /// it. Java's `RecordNameStrategy`.
    Record,
    /// `<topic>-<record full name>`: several record types in one topic, each evolving on
    /// its own. Java's `TopicRecordNameStrategy`.
    TopicRecord,
}

impl SubjectNameStrategy {
    /// The subject for a key (`is_key`) or value of `topic` whose schema's full name is
    /// `record` (an Avro record's `namespace.name`, a Protobuf message's full name).
    ///
    /// Errors with [`Error::Subject`] when the strategy needs a record name and there is
    /// none (e.g. an Avro schema that is a primitive type).
    pub fn subject(&self, topic: &str, is_key: bool, record: Option<&str>) -> Result<String> {
        let record = || {
            record.filter(|r| !r.is_empty()).ok_or_else(|| {
                Error::Subject(format!(
                    "the {self:?} strategy needs a named schema (a record), topic {topic:?}"
                ))
            })
        };
        Ok(match self {
            SubjectNameStrategy::Topic => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::Record => record()?.to_string(),
            SubjectNameStrategy::TopicRecord => format!("{topic}-{}", record()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_java_strategies() {
        let s = SubjectNameStrategy::Topic;
        assert_eq!(
            s.subject("orders", false, Some("a.B")).unwrap(),
            "orders-value"
        );
        assert_eq!(s.subject("orders", true, None).unwrap(), "orders-key");
        let s = SubjectNameStrategy::Record;
        assert_eq!(
            s.subject("orders", false, Some("shop.Order")).unwrap(),
            "shop.Order"
        );
        let s = SubjectNameStrategy::TopicRecord;
        assert_eq!(
            s.subject("orders", true, Some("shop.Order")).unwrap(),
            "orders-shop.Order"
        );
        assert!(matches!(
            SubjectNameStrategy::Record.subject("orders", false, None),
            Err(Error::Subject(_))
        ));
        assert!(matches!(
            SubjectNameStrategy::TopicRecord.subject("orders", false, Some("")),
            Err(Error::Subject(_))
        ));
    }
}

/// How a serializer finds its schema's id for a topic, shared by the Avro, JSON Schema
/// and Protobuf serializers: the subject name strategy, key or value, auto-registration,
/// and a cache topic -> id, so the hot path hashes a topic, not the schema text.
#[derive(Debug)]
pub(crate) struct SubjectIds {
    pub(crate) strategy: SubjectNameStrategy,
    pub(crate) is_key: bool,
    pub(crate) auto_register: bool,
    ids: std::sync::RwLock<std::collections::HashMap<String, u32>>,
}

impl SubjectIds {
    /// Values, the topic strategy, auto-registration on (the Java serializers' defaults).
    pub(crate) fn new() -> Self {
        SubjectIds {
            strategy: SubjectNameStrategy::default(),
            is_key: false,
            auto_register: true,
            ids: std::sync::RwLock::default(),
        }
    }

    /// The id of `schema` under `topic`'s subject (`record`: the record name the record
    /// strategies use): from the cache, else registered or looked up, one HTTP request
    /// per topic for the life of the serializer.
    pub(crate) async fn id(
        &self,
        registry: &crate::registry::Registry,
        schema: &crate::schema::Schema,
        topic: &str,
        record: Option<&str>,
    ) -> Result<u32> {
        if let Some(&id) = sync::read(&self.ids).get(topic) {
            return Ok(id);
        }
        let subject = self.strategy.subject(topic, self.is_key, record)?;
        let id = if self.auto_register {
            registry.register(&subject, schema).await?
        } else {
            registry.id_of(&subject, schema).await?
        };
        sync::write(&self.ids).insert(topic.to_string(), id);
        Ok(id)
    }
}
