//! The error of both schema layers, and how the pipeline classifies it.

use std::fmt;
use std::sync::Arc;

use sluice_schema::Error;

use crate::{Classify, Disposition};

/// Which bytes failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The input record's key.
    Key,
    /// The input record's value.
    Value,
    /// An output record's value.
    Output,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Key => "key",
            Part::Value => "value",
            Part::Output => "output value",
        })
    }
}

/// A record that did not decode, or an output that did not encode, with where it was.
///
/// Its `Display` is what the DLQ writes as `kafka_dlt-exception-message`, e.g.
/// `value of orders-0@42 does not decode: wrong magic byte 0x7b: expected 0x00
/// (Confluent wire format)`. See the [module docs](super) for the classification.
#[derive(Debug)]
pub struct SchemaError {
    /// Which bytes failed.
    pub part: Part,
    /// The input record's topic, or the output's.
    pub topic: Arc<str>,
    /// The input record's partition (`None` for an output).
    pub partition: Option<i32>,
    /// The input record's offset (`None` for an output).
    pub offset: Option<i64>,
    /// What `sluice-schema` said.
    pub source: Error,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.part, self.topic)?;
        if let (Some(p), Some(o)) = (self.partition, self.offset) {
            write!(f, "-{p}@{o}")?;
        }
        let verb = match self.part {
            Part::Output => "encode",
            Part::Key | Part::Value => "decode",
        };
        write!(f, " does not {verb}: {}", self.source)
    }
}

impl std::error::Error for SchemaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Classify for SchemaError {
    fn disposition(&self) -> Disposition {
        disposition(&self.source)
    }
}

/// This record's failure, the world's, or a misconfiguration: see the module docs' table.
pub(crate) fn disposition(error: &Error) -> Disposition {
    if error.is_retriable() {
        return Disposition::Retriable;
    }
    match error {
        Error::WrongMagic { .. }
        | Error::ShortBuffer { .. }
        | Error::BadMessageIndexes(_)
        | Error::UnknownSchemaId(_)
        | Error::Json(_)
        | Error::Invalid(_)
        | Error::Protobuf(_)
        | Error::Avro(_) => Disposition::DeadLetter,
        _ => Disposition::Fatal,
    }
}
