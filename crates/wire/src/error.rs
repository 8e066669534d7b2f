//! The one error type of the client.
//!
//! Callers branch on [`Error::kind`], [`Error::kafka_code`] and [`Error::is_retriable`],
//! never on message strings. The error is cheap to clone: when a connection dies, every
//! request waiting on it is failed with the same cause.
//!
//! `Display` shows this error's own message, one line; the cause (an `io::Error`, a
//! [`LogTruncation`], a codec's complaint) is [`source`](std::error::Error::source),
//! not repeated in the message, so printing the chain (`anyhow`'s `{:#}`, `tracing`'s
//! error fields) says each thing once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod code;

pub use code::KafkaCode;

use crate::codec::CodecError;
use crate::records::RecordsError;

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the terms a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The broker answered with a Kafka error code ([`Error::kafka_code`] says which).
    Kafka,
    /// A socket operation failed (connect refused, reset, broken pipe).
    Io,
    /// The peer sent bytes that are not a valid Kafka response: wrong framing, a
    /// correlation id out of order, a message that does not decode. Usually the peer is
    /// not a Kafka broker, or the connection is corrupt.
    Protocol,
    /// A record batch could not be encoded or decoded (CRC, format, compression).
    Records,
    /// A deadline passed (connect, request or metadata timeout).
    Timeout,
    /// The connection was closed, by the peer or because an earlier error killed it.
    ConnectionClosed,
    /// The broker supports no version of an API in the range this client implements.
    UnsupportedVersion,
    /// A configuration value is missing or invalid.
    Config,
    /// The cluster has no broker we could reach, or no leader for a partition.
    NoBroker,
    /// A topic or partition the caller named is not in the cluster metadata.
    UnknownTopicOrPartition,
    /// The producer's `buffer.memory` stayed full for `max.block.ms` (Java:
    /// `BufferExhaustedException`).
    BufferExhausted,
    /// A record is larger than `max.request.size` or `buffer.memory` (Java:
    /// `RecordTooLargeException`).
    RecordTooLarge,
    /// The producer was closed before the record could be delivered or buffered.
    ProducerClosed,
    /// The call does not fit the state the object is in (Java: `IllegalStateException`),
    /// say `commit` of a transactional producer with no transaction begun, or `send`
    /// outside a transaction.
    IllegalState,
    /// The broker refused our credentials (SASL_AUTHENTICATION_FAILED, with the broker's
    /// message), does not offer the SASL mechanism configured, or the listener does not
    /// speak SASL at all. Fatal: retrying with the same credentials cannot succeed.
    Authentication,
    /// The TLS handshake failed: the broker's certificate is not trusted (unknown
    /// issuer), has expired, or does not name the host we connected to, the broker
    /// refused our client certificate, or the listener does not speak TLS. The message
    /// names the cause and the broker address. Fatal.
    Tls,
    /// The consumer found that the log of a partition was truncated below its position
    /// (an unclean leader election, KIP-320) and `auto.offset.reset` is `none`, so it
    /// does not move on by itself. [`Error::truncation`] names the partition, the
    /// position and the first offset known to diverge; seek to go on (Java:
    /// `LogTruncationException`).
    LogTruncation,
    /// A key or value could not be serialized or deserialized by a
    /// [`Serializer`](crate::codec::Serializer) or
    /// [`Deserializer`](crate::codec::Deserializer) (Java: `SerializationException`).
    /// [`Error::codec_error`] says why. For a consumed record it is that record's failure:
    /// skip it or dead-letter it, the consumer goes on.
    Serialization,
}

/// Where a partition's log was truncated below the consumer's position (see
/// [`ErrorKind::LogTruncation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogTruncation {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The consumer's position (the next offset it would have read).
    pub position: i64,
    /// The leader epoch of the last record consumed before the position.
    pub position_epoch: i32,
    /// The first offset known to diverge: the end offset of `position_epoch` on the new
    /// leader; `None` when the leader knows nothing of that epoch.
    pub divergent_offset: Option<i64>,
}

impl fmt::Display for LogTruncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the log of {}-{} was truncated below position {} (leader epoch {})",
            self.topic, self.partition, self.position, self.position_epoch
        )?;
        match self.divergent_offset {
            Some(o) => write!(f, ": it diverges from offset {o}"),
            None => write!(f, ": the new leader has no record of that epoch"),
        }
    }
}

impl std::error::Error for LogTruncation {}

/// An error from the Sluice Kafka client.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    code: Option<KafkaCode>,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                code: None,
                message: message.into(),
                source: None,
            }),
        }
    }

    fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                code: None,
                message: message.into(),
                source: Some(Arc::new(source)),
            }),
        }
    }

    /// A Kafka error code returned by the broker, with what it was about. A context
    /// that ends in an empty detail (`"producing to t-0: "`, the broker sent no error
    /// message) gets the code's description there instead.
    pub(crate) fn kafka(code: KafkaCode, context: impl Into<String>) -> Self {
        let mut message = context.into();
        let trimmed = message.trim_end();
        if let Some(head) = trimmed.strip_suffix(':') {
            message = format!("{head}: {}", code.description());
        } else if trimmed.is_empty() {
            message = code.description().to_string();
        }
        Error {
            inner: Arc::new(Inner {
                kind: ErrorKind::Kafka,
                code: Some(code),
                message,
                source: None,
            }),
        }
    }

    /// Returns `Err` for a non-zero Kafka error code.
    pub(crate) fn check_code(code: i16, context: impl FnOnce() -> String) -> Result<()> {
        match KafkaCode::try_from_code(code) {
            None => Ok(()),
            Some(code) => Err(Error::kafka(code, context())),
        }
    }

    /// A truncated log found by the consumer (see [`ErrorKind::LogTruncation`]).
    pub(crate) fn log_truncation(truncation: LogTruncation) -> Self {
        // The chain reads "<message>: <truncation>".
        let message = "log truncation detected and auto.offset.reset is none (seek to go on)";
        Error::with_source(ErrorKind::LogTruncation, message, truncation)
    }

    /// What was truncated, when [`kind`](Self::kind) is [`ErrorKind::LogTruncation`].
    pub fn truncation(&self) -> Option<&LogTruncation> {
        self.inner.source.as_ref()?.downcast_ref::<LogTruncation>()
    }

    /// A key or value that a serializer or deserializer refused (see
    /// [`ErrorKind::Serialization`]).
    pub(crate) fn serialization(what: impl Into<String>, err: CodecError) -> Self {
        Error::with_source(ErrorKind::Serialization, what, err)
    }

    /// Why a key or value could not be (de)serialized, when [`kind`](Self::kind) is
    /// [`ErrorKind::Serialization`].
    pub fn codec_error(&self) -> Option<&CodecError> {
        self.inner.source.as_ref()?.downcast_ref::<CodecError>()
    }

    pub(crate) fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        Error::with_source(ErrorKind::Io, context, err)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    /// A message that `kafka-protocol` could not encode or decode.
    pub(crate) fn codec(what: impl Into<String>, err: impl fmt::Display) -> Self {
        Error::with_source(ErrorKind::Protocol, what, Detail(format!("{err:#}")))
    }

    pub(crate) fn timeout(what: impl fmt::Display, after: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!("{what} timed out after {after:?}"),
        )
    }

    pub(crate) fn closed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ConnectionClosed, message)
    }

    pub(crate) fn unsupported_version(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UnsupportedVersion, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn no_broker(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NoBroker, message)
    }

    pub(crate) fn unknown_topic(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UnknownTopicOrPartition, message)
    }

    pub(crate) fn buffer_exhausted(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BufferExhausted, message)
    }

    pub(crate) fn record_too_large(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::RecordTooLarge, message)
    }

    pub(crate) fn producer_closed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ProducerClosed, message)
    }

    pub(crate) fn illegal_state(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::IllegalState, message)
    }

    pub(crate) fn authentication(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Authentication, message)
    }

    /// The error a [`TokenProvider`](crate::net::TokenProvider) returns when it cannot
    /// get a token: an [`ErrorKind::Authentication`] failure with `message`.
    pub fn token_provider(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Authentication, message)
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Tls, message)
    }

    /// The same error with `context` in front of its message (kind and code kept).
    pub(crate) fn context(&self, context: impl fmt::Display) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind: self.inner.kind,
                code: self.inner.code,
                message: format!("{context}: {}", self.inner.message),
                source: self.inner.source.clone(),
            }),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The Kafka error the broker returned, when [`kind`](Self::kind) is
    /// [`ErrorKind::Kafka`].
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        self.inner.code
    }

    /// Whether trying again (after a metadata refresh and a backoff) may succeed.
    ///
    /// Network failures, timeouts and closed connections are retriable, as are the
    /// Kafka codes the Java client marks as `RetriableException` (NOT_LEADER_OR_FOLLOWER,
    /// LEADER_NOT_AVAILABLE, NOT_ENOUGH_REPLICAS, ...). Protocol violations, bad
    /// configuration and authorization failures are not.
    pub fn is_retriable(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Kafka => self.inner.code.is_some_and(|c| c.is_retriable()),
            ErrorKind::Io | ErrorKind::Timeout | ErrorKind::ConnectionClosed => true,
            ErrorKind::NoBroker => true,
            ErrorKind::UnknownTopicOrPartition => true,
            ErrorKind::BufferExhausted => true,
            ErrorKind::Protocol
            | ErrorKind::Records
            | ErrorKind::UnsupportedVersion
            | ErrorKind::Config
            | ErrorKind::RecordTooLarge
            | ErrorKind::ProducerClosed
            | ErrorKind::IllegalState
            | ErrorKind::Authentication
            | ErrorKind::Tls
            | ErrorKind::LogTruncation
            | ErrorKind::Serialization => false,
        }
    }

    /// Whether no retry, of this call or any other, can succeed until the configuration
    /// or the cluster's ACLs change: authentication and TLS failures, authorization
    /// failures (TOPIC_, GROUP_, TRANSACTIONAL_ID_, CLUSTER_AUTHORIZATION_FAILED,
    /// SASL_AUTHENTICATION_FAILED), an invalid configuration, or a broker too old for
    /// an API we need. The producer, the consumer, admin and the pipeline runner report
    /// these at once instead of retrying (Java: `AuthenticationException`,
    /// `AuthorizationException`).
    pub fn is_fatal(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Authentication
            | ErrorKind::Tls
            | ErrorKind::Config
            | ErrorKind::UnsupportedVersion => true,
            ErrorKind::Kafka => self.is_authorization_failure(),
            _ => false,
        }
    }

    /// Whether the broker said the principal lacks a permission (an ACL is missing):
    /// TOPIC_, GROUP_, TRANSACTIONAL_ID_ or CLUSTER_AUTHORIZATION_FAILED, or
    /// SASL_AUTHENTICATION_FAILED sent in a response.
    pub fn is_authorization_failure(&self) -> bool {
        matches!(
            self.inner.code,
            Some(
                KafkaCode::TopicAuthorizationFailed
                    | KafkaCode::GroupAuthorizationFailed
                    | KafkaCode::TransactionalIdAuthorizationFailed
                    | KafkaCode::ClusterAuthorizationFailed
                    | KafkaCode::DelegationTokenAuthorizationFailed
                    | KafkaCode::SaslAuthenticationFailed
            )
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(code) = self.inner.code {
            d.field("code", &code);
        }
        d.field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.code {
            Some(code) => write!(
                f,
                "Kafka error {} ({code:?}): {}",
                code.code(),
                self.inner.message
            )?,
            None => f.write_str(&self.inner.message)?,
        }
        // The source is not repeated here: it is `source()`, and chain printers show it.
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// A codec's failure as this crate's error, of kind [`ErrorKind::Serialization`]: for
/// code that runs a [`Serializer`](crate::codec::Serializer) itself and answers with `?`.
impl From<CodecError> for Error {
    fn from(err: CodecError) -> Self {
        Error::serialization("serialization", err)
    }
}

impl From<RecordsError> for Error {
    fn from(err: RecordsError) -> Self {
        Error::with_source(ErrorKind::Records, "record batch", err)
    }
}

/// The text of a failure reported by a dependency as `anyhow::Error` (as
/// `kafka-protocol` does), kept as a source without making `anyhow` part of our API.
#[derive(Debug)]
struct Detail(String);

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detail {}

/// Transactions: what an error of a transactional producer means for the transaction
/// and for the producer (Java: `ProducerFencedException` and friends are fatal,
/// everything else from a transactional call is an abortable `KafkaException`).
impl Error {
    /// Whether the producer can do nothing more: it was fenced by a newer instance with
    /// the same `transactional.id` (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), is not
    /// authorized (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED),
    /// the coordinator refused the transition (INVALID_TXN_STATE), the broker cannot do
    /// transactions (UNSUPPORTED_FOR_MESSAGE_FORMAT, UnsupportedVersion), or it was
    /// closed. Drop the producer (a new one with the same id fences this one's leftovers).
    pub fn is_fatal_producer_error(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Kafka => matches!(
                self.inner.code,
                Some(
                    KafkaCode::ProducerFenced
                        | KafkaCode::InvalidProducerEpoch
                        | KafkaCode::TransactionalIdAuthorizationFailed
                        | KafkaCode::ClusterAuthorizationFailed
                        | KafkaCode::InvalidTxnState
                        | KafkaCode::UnsupportedForMessageFormat
                        | KafkaCode::InvalidProducerIdMapping
                )
            ),
            ErrorKind::UnsupportedVersion | ErrorKind::ProducerClosed => true,
            _ => false,
        }
    }

    /// Whether a failed transactional call leaves the producer usable: `abort()` the
    /// transaction, rewind the input, and run it again. False for
    /// [fatal](Self::is_fatal_producer_error) errors and for calls made in the wrong
    /// state ([`ErrorKind::IllegalState`], [`ErrorKind::Config`]).
    pub fn is_abortable(&self) -> bool {
        !self.is_fatal_producer_error()
            && !matches!(self.inner.kind, ErrorKind::IllegalState | ErrorKind::Config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_classify_as_the_java_client_does() {
        // NOT_LEADER_OR_FOLLOWER (6) is retriable, TOPIC_AUTHORIZATION_FAILED (29) is not.
        let e = Error::check_code(6, || "produce".into()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Kafka);
        assert_eq!(e.kafka_code().map(|c| c.code()), Some(6));
        assert!(e.is_retriable());
        let e = Error::check_code(29, || "produce".into()).unwrap_err();
        assert!(!e.is_retriable());
        assert!(Error::check_code(0, || unreachable!()).is_ok());
    }

    #[test]
    fn display_names_code_and_context() {
        let e = Error::check_code(3, || "metadata for topic t".into()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("Kafka error 3"), "{text}");
        assert!(text.contains("metadata for topic t"), "{text}");
    }

    /// The cause is the source, once: a chain printer (as `anyhow`'s `{:#}` does) shows
    /// each part one time.
    #[test]
    fn display_leaves_the_source_to_the_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::io("connecting to 127.0.0.1:1", refused);
        assert_eq!(e.to_string(), "connecting to 127.0.0.1:1");
        let source = std::error::Error::source(&e).expect("the io error is the source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        let mut chain = e.to_string();
        let mut next = std::error::Error::source(&e);
        while let Some(cause) = next {
            chain = format!("{chain}: {cause}");
            next = cause.source();
        }
        assert_eq!(chain.matches("refused").count(), 1, "{chain}");
    }

    #[test]
    fn an_empty_broker_message_is_the_codes_description() {
        let e = Error::check_code(10, || "producing to t-0: ".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Kafka error 10 (MessageTooLarge): producing to t-0: {}",
                KafkaCode::MessageTooLarge.description()
            )
        );
        let e = Error::check_code(10, || "producing to t-0: too big".into()).unwrap_err();
        assert!(e.to_string().ends_with("producing to t-0: too big"), "{e}");
    }

    #[test]
    fn transactional_errors_are_fatal_or_abortable() {
        for fatal in [90, 47, 53, 48] {
            let e = Error::check_code(fatal, || "end txn".into()).unwrap_err();
            assert!(e.is_fatal_producer_error(), "{fatal}");
            assert!(!e.is_abortable(), "{fatal}");
        }
        for abortable in [51, 14, 16, 7, 120] {
            let e = Error::check_code(abortable, || "end txn".into()).unwrap_err();
            assert!(!e.is_fatal_producer_error(), "{abortable}");
            assert!(e.is_abortable(), "{abortable}");
        }
        let e = Error::timeout("produce", Duration::from_secs(1));
        assert!(e.is_abortable());
        assert!(!Error::illegal_state("commit with no transaction").is_abortable());
    }
}
