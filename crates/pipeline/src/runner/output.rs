//! Outputs the broker does not acknowledge: the producer's error classified as any other
//! failure is (one [`Disposition`](crate::Disposition) for the whole pipeline), and the
//! dead letter the runner writes for a record whose output the broker refuses for good.
//!
//! | producer error | what the runner does |
//! |---|---|
//! | retriable (a timeout, a leader move, not enough replicas) | the record is fetched again, after a backoff that doubles per consecutive failure of its partition |
//! | this output is refused for good: too large (`max.request.size`, MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE), invalid (INVALID_RECORD: a null key on a compacted topic, INVALID_TIMESTAMP, CORRUPT batch), not authorized for the topic, an invalid topic name, a policy violation | [`RejectedOutput`]: dead-letter the input record (default) or stop the pipeline |
//! | the producer cannot go on (fenced, closed, not authorized for the cluster or the transactional id) | the pipeline stops |
//! | anything else not retriable | the pipeline stops |

use sluice_wire::{Error, ErrorKind, KafkaCode};

use super::producer_record;
use crate::dlq::headers::dead_letter_headers;
use crate::{ConsumedRecord, OutputRecord, PipelineError};

/// What the runner does with a record one of whose outputs the broker refuses for good
/// (see [`Pipeline::on_rejected_output`](super::Pipeline::on_rejected_output)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectedOutput {
    /// The default: the input record is dead-lettered, as the
    /// [`DeadLetterLayer`](crate::dlq::DeadLetterLayer) does with a record the stack
    /// rejects (to `<topic>-dlt`, same partition, with Spring Kafka's `kafka_dlt-*`
    /// headers; the producer's error in `kafka_dlt-exception-message`, the pipeline's
    /// group in `kafka_dlt-original-consumer-group`), through the pipeline's producer, and
    /// the pipeline goes on. At-least-once, the record's outputs acknowledged before the
    /// refused one stay written. Exactly-once, the refused output made the transaction
    /// abortable: it is aborted, the records that saw the error are run again each in a
    /// transaction of its own, and the one whose output is refused there is dead-lettered
    /// (inside the next transaction, without calling the stack again).
    #[default]
    DeadLetter,
    /// The pipeline stops with [`RunError::OutputRejected`](super::RunError::OutputRejected);
    /// nothing at or after the record is committed in its partition.
    Fatal,
}

/// The broker refused an output of a record for good: too large, invalid, or not
/// authorized (see the [module docs](self)). The dead letter's
/// `kafka_dlt-exception-message` is this error's text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("output to topic {topic} refused: {source}")]
pub struct OutputRejected {
    /// The output's topic.
    pub topic: String,
    /// The producer's error.
    #[source]
    pub source: Error,
}

/// A producer error on an output, classified; ordered from the least to the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// This output will never be accepted.
    Rejected,
    /// Try again later.
    Retriable,
    /// Stop the pipeline.
    Fatal,
}

/// Classifies a producer error on an output (see the [module docs](self)).
pub(crate) fn classify(e: &Error) -> Failure {
    if e.is_fatal_producer_error() {
        return Failure::Fatal;
    }
    if matches!(e.kind(), ErrorKind::RecordTooLarge | ErrorKind::Records) {
        return Failure::Rejected;
    }
    if matches!(
        e.kafka_code(),
        Some(
            KafkaCode::MessageTooLarge
                | KafkaCode::RecordListTooLarge
                | KafkaCode::InvalidRecord
                | KafkaCode::InvalidTimestamp
                | KafkaCode::CorruptMessage
                | KafkaCode::TopicAuthorizationFailed
                | KafkaCode::InvalidTopicException
                | KafkaCode::PolicyViolation
        )
    ) {
        return Failure::Rejected;
    }
    if e.is_retriable() {
        Failure::Retriable
    } else {
        Failure::Fatal
    }
}

/// The dead letter of `record`, whose output was refused with `error`.
pub(crate) fn dead_letter(
    record: &ConsumedRecord,
    error: &OutputRejected,
    group: &str,
) -> sluice_wire::producer::ProducerRecord {
    let error = PipelineError::dead_letter(error.clone());
    producer_record(OutputRecord {
        topic: format!("{}-dlt", record.topic).into(),
        partition: Some(record.partition),
        key: record.key.clone(),
        value: record.value.clone(),
        headers: dead_letter_headers(record, &error, Some(group)),
        timestamp: None,
    })
}
