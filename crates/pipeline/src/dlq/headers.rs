//! The dead-letter headers, named and encoded as Spring Kafka's
//! `DeadLetterPublishingRecoverer` writes them, so existing DLT tooling reads ours.
//!
//! | header | encoding (as Spring) |
//! |---|---|
//! | `kafka_dlt-original-topic` | UTF-8 |
//! | `kafka_dlt-original-partition` | 4-byte big-endian `i32` |
//! | `kafka_dlt-original-offset` | 8-byte big-endian `i64` |
//! | `kafka_dlt-original-timestamp` | 8-byte big-endian `i64` (ms) |
//! | `kafka_dlt-original-consumer-group` | UTF-8, only when the group is configured |
//! | `kafka_dlt-exception-fqcn` | UTF-8: the Rust type name of the error |
//! | `kafka_dlt-exception-message` | UTF-8: the error's `Display` |
//! | `kafka_dlt-exception-stacktrace` | UTF-8: the `source()` chain, only when there is one |
//! | `sluice-dlt-attempt` | 4-byte big-endian `u32`: the delivery attempt that failed |
//!
//! Rust errors carry no stack trace; the closest we have is the cause chain, written one
//! `Caused by: ...` line per source as a Java trace would print them. The attempt count has
//! no Spring header (its `kafka_deliveryAttempt` means the *next* consumer's attempt), so it
//! gets our own name outside Spring's `kafka_` namespace. The original timestamp type is
//! not written: the consumed record does not carry it.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::{ConsumedRecord, Header, PipelineError};

/// `kafka_dlt-original-topic`: UTF-8.
pub const ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
/// `kafka_dlt-original-partition`: 4-byte big-endian.
pub const ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
/// `kafka_dlt-original-offset`: 8-byte big-endian.
pub const ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
/// `kafka_dlt-original-timestamp`: 8-byte big-endian milliseconds.
pub const ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
/// `kafka_dlt-original-consumer-group`: UTF-8.
pub const ORIGINAL_CONSUMER_GROUP: &str = "kafka_dlt-original-consumer-group";
/// `kafka_dlt-exception-fqcn`: UTF-8.
pub const EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
/// `kafka_dlt-exception-message`: UTF-8.
pub const EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
/// `kafka_dlt-exception-stacktrace`: UTF-8.
pub const EXCEPTION_STACKTRACE: &str = "kafka_dlt-exception-stacktrace";
/// `sluice-dlt-attempt`: 4-byte big-endian.
pub const ATTEMPT: &str = "sluice-dlt-attempt";

/// The original headers followed by the dead-letter headers.
pub(crate) fn dead_letter_headers(
    record: &ConsumedRecord,
    error: &PipelineError,
    group: Option<&str>,
) -> Vec<Header> {
    let mut h = Vec::with_capacity(record.headers.len() + 9);
    h.extend(record.headers.iter().cloned());
    let mut put = |name: &'static str, value: Bytes| h.push(Header::from_static(name, Some(value)));
    put(
        ORIGINAL_TOPIC,
        Bytes::copy_from_slice(record.topic.as_bytes()),
    );
    put(
        ORIGINAL_PARTITION,
        Bytes::copy_from_slice(&record.partition.to_be_bytes()),
    );
    put(
        ORIGINAL_OFFSET,
        Bytes::copy_from_slice(&record.offset.to_be_bytes()),
    );
    put(
        ORIGINAL_TIMESTAMP,
        Bytes::copy_from_slice(&record.timestamp.to_be_bytes()),
    );
    if let Some(group) = group {
        put(
            ORIGINAL_CONSUMER_GROUP,
            Bytes::copy_from_slice(group.as_bytes()),
        );
    }
    put(
        EXCEPTION_FQCN,
        Bytes::from_static(error.type_name().as_bytes()),
    );
    put(EXCEPTION_MESSAGE, Bytes::from(error.to_string()));
    let mut trace = String::new();
    let mut cause = std::error::Error::source(error.inner());
    while let Some(c) = cause {
        let _ = writeln!(trace, "Caused by: {c}");
        cause = c.source();
    }
    if !trace.is_empty() {
        put(EXCEPTION_STACKTRACE, Bytes::from(trace));
    }
    put(
        ATTEMPT,
        Bytes::copy_from_slice(&record.attempt.to_be_bytes()),
    );
    h
}
