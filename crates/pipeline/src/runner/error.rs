use super::output::OutputRejected;
use crate::PipelineError;

/// Why [`Pipeline::run`](super::Pipeline::run) stopped other than by a shutdown request.
/// In every case but [`Interrupted`](Self::Interrupted) the runner first drained what it
/// could, committed what finished (in exactly-once mode: aborted the open transaction
/// instead), left the group and flushed the producer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The consumer or the producer failed (connecting, subscribing, fetching).
    #[error("kafka: {0}")]
    Kafka(#[from] sluice_wire::Error),
    /// A record failed with [`Disposition::Fatal`](crate::Disposition::Fatal), or with a
    /// dead-letter error that no dead-letter layer handled. Nothing at or after it in its
    /// partition was committed.
    #[error("record {topic}-{partition}@{offset} failed fatally: {error}")]
    Fatal {
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The error.
        #[source]
        error: PipelineError,
    },
    /// The broker refused an output of a record for good (too large, invalid, not
    /// authorized) and the pipeline was built with
    /// [`RejectedOutput::Fatal`](super::RejectedOutput::Fatal). Nothing at or after the
    /// record was committed in its partition.
    #[error("record {topic}-{partition}@{offset}: {error}")]
    OutputRejected {
        /// The input record's topic.
        topic: String,
        /// The input record's partition.
        partition: i32,
        /// The input record's offset.
        offset: i64,
        /// The refused output's topic and the producer's error.
        #[source]
        error: OutputRejected,
    },
    /// The stack's `poll_ready` failed.
    #[error("the stack failed to become ready: {0}")]
    NotReady(#[source] PipelineError),
    /// Exactly-once mode: the transactional producer cannot go on. It was fenced by a
    /// newer instance with the same `transactional.id` (PRODUCER_FENCED,
    /// INVALID_PRODUCER_EPOCH), or failed otherwise for good
    /// ([`Error::is_fatal_producer_error`](sluice_wire::Error::is_fatal_producer_error)),
    /// or `init_transactions` failed. The open transaction did not commit: its records
    /// are processed again by whoever reads the partitions next.
    #[error("transactional producer: {0}")]
    Transaction(#[source] sluice_wire::Error),
    /// The [`Shutdown`](super::Shutdown) token was forced (by default a second SIGINT or
    /// SIGTERM): the runner stopped at once, without draining, committing or leaving the
    /// group. Records in flight are processed again by whoever reads their partitions
    /// next (exactly-once: the open transaction never commits; the coordinator aborts it
    /// when it times out or the next instance with its `transactional.id` starts). A
    /// program that wants to exit now calls `std::process::exit` itself.
    #[error("interrupted: stopped without draining")]
    Interrupted,
    /// The pipeline is misconfigured.
    #[error("configuration: {0}")]
    Config(&'static str),
}
