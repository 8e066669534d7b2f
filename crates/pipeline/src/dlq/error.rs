use crate::{BoxError, PipelineError};

/// [`DeadLetter`](super::DeadLetter) could not publish a record to the dead-letter topic. Retriable: the
/// record was not handled.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter publication failed (record failed with: {original})")]
pub struct DeadLetterFailed {
    /// The error that sent the record to the dead-letter topic.
    pub original: PipelineError,
    /// Why the publication failed.
    #[source]
    pub cause: BoxError,
}
