//! What the record tasks tell the run loop.

use std::sync::Arc;

use super::output::OutputRejected;
use crate::PipelineError;

/// Messages from record tasks to the run loop.
pub(super) enum Event {
    /// A record failed retriably: fetch it again.
    Redeliver {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// A record failed fatally.
    Fatal {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        error: PipelineError,
    },
    /// Exactly-once: an output of the record was refused; the transaction aborts.
    Refused {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        error: OutputRejected,
    },
}
