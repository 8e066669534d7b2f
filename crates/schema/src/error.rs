//! The one error type of the crate: callers branch on variants, never on strings.

/// What went wrong: in the bytes (framing), at the registry, or in a codec.
///
/// Registry answers are mapped by their Confluent `error_code` (the HTTP status where the
/// body has none), the same codes Confluent's, Apicurio's and Karapace's registries send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The first byte is not the Confluent magic byte 0: the record was not written by a
    /// schema-registry serializer (or is corrupt).
    #[error("wrong magic byte {found:#04x}: expected 0x00 (Confluent wire format)")]
    WrongMagic {
        /// The byte found.
        found: u8,
    },
    /// The buffer ends before the framing does.
    #[error("short buffer: {needed} bytes needed, {available} available")]
    ShortBuffer {
        /// Bytes the framing needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The Protobuf message-index list is malformed (bad varint, negative or absurd
    /// length or index).
    #[error("malformed Protobuf message-index list: {0}")]
    BadMessageIndexes(&'static str),
    /// The registry has no schema with this id (`GET /schemas/ids/{id}` answered 40403).
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// The subject does not exist (40401).
    #[error("subject {subject:?} not found")]
    SubjectNotFound {
        /// The subject asked for.
        subject: String,
    },
    /// The subject has no such version (40402).
    #[error("subject {subject:?} has no version {version}")]
    VersionNotFound {
        /// The subject asked for.
        subject: String,
        /// The version asked for (`latest` or a number).
        version: String,
    },
    /// The schema is not registered under the subject (40403 on a lookup).
    #[error("schema not registered under subject {subject:?}")]
    SchemaNotFound {
        /// The subject looked in.
        subject: String,
    },
    /// The schema breaks the subject's compatibility rule (HTTP 409).
    #[error("schema incompatible with subject {subject:?}: {message}")]
    Incompatible {
        /// The subject registered under.
        subject: String,
        /// The registry's explanation.
        message: String,
    },
    /// The registry could not parse the schema (42201).
    #[error("invalid schema: {message}")]
    InvalidSchema {
        /// The registry's explanation.
        message: String,
    },
    /// Any other answer that is not a success: a 4xx not listed above (401, 403, 42202
    /// invalid version, ...), or a 5xx that outlasted the retries.
    #[error("registry answered HTTP {status} (error code {code}): {message}")]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The Confluent error code (the status if the body had none).
        code: u32,
        /// The registry's message (or the start of the body).
        message: String,
    },
    /// The request did not get an answer (connect, TLS, timeout) after the retries. The
    /// source is the HTTP client's error (boxed: which HTTP client is not API).
    #[error("registry request failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The TLS handshake failed for a reason retrying cannot fix (the certificate is not
    /// trusted, names another host, has expired; no protocol in common). Not retried.
    #[error("TLS handshake with the registry failed: {0}")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The registry's answer was not the JSON the API describes.
    #[error("unexpected registry reply: {0}")]
    BadReply(String),
    /// The client configuration is unusable (bad URL, TLS files, ...).
    #[error("configuration: {0}")]
    Config(String),
    /// The subject cannot be derived (e.g. the record strategy for a schema with no name).
    #[error("subject name: {0}")]
    Subject(String),
    /// A JSON payload or schema that does not parse, or a value with no JSON form.
    #[error("json: {0}")]
    Json(#[source] serde_json::Error),
    /// A value that breaks its JSON Schema (the first few violations).
    #[error("value breaks its schema: {0}")]
    Invalid(String),
    /// A Protobuf message that does not decode, does not fit the schema, or is not at the
    /// record's message index.
    #[error("protobuf: {0}")]
    Protobuf(String),
    /// Avro parse, encode, decode or schema-resolution failure.
    #[error("avro: {0}")]
    Avro(#[source] Box<apache_avro::Error>),
}

impl Error {
    /// True for failures of the registry rather than of this record (a timeout, a 5xx, a
    /// refused connection, a 429): retrying later may succeed. A pipeline pauses on these
    /// instead of dead-lettering the record.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl From<apache_avro::Error> for Error {
    fn from(e: apache_avro::Error) -> Self {
        Error::Avro(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
