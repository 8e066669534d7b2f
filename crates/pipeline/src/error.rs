//! The one error classification every layer shares.
//!
//! A user error says what should happen to the record through [`Classify`]; the stack
//! carries it as a [`PipelineError`], which keeps the original error (downcastable), its
//! [`Disposition`], and the type name and message the dead-letter headers need.

use std::error::Error as StdError;
use std::fmt;

/// A type-erased error, as tower uses.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What the pipeline does with a record whose processing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// A failure of the world (a timeout, a downstream outage): try again. The retry layer
    /// retries in place; the breaker counts it; it never goes to the dead-letter topic.
    Retriable,
    /// A failure of this message (it cannot be parsed, a business rule rejects it): after
    /// its retries, if any, publish it to the dead-letter topic and move on.
    DeadLetter,
    /// Stop the pipeline: nothing after this record can be processed safely.
    Fatal,
}

/// Maps a user error into the pipeline's classification.
///
/// ```
/// use sluice_pipeline::{Classify, Disposition};
///
/// #[derive(Debug, thiserror::Error)]
/// enum OrderError {
///     #[error("malformed order: {0}")]
///     Malformed(String),
///     #[error("inventory service timed out")]
///     Timeout,
/// }
///
/// impl Classify for OrderError {
///     fn disposition(&self) -> Disposition {
///         match self {
///             OrderError::Malformed(_) => Disposition::DeadLetter,
///             OrderError::Timeout => Disposition::Retriable,
///         }
///     }
/// }
/// ```
pub trait Classify {
    /// What to do with the record that failed with this error.
    fn disposition(&self) -> Disposition;
}

/// The error every layer of the stack returns: a user (or layer) error with its disposition.
pub struct PipelineError {
    disposition: Disposition,
    type_name: &'static str,
    source: BoxError,
}

impl PipelineError {
    /// Wraps an error that classifies itself.
    pub fn new<E>(error: E) -> Self
    where
        E: Classify + StdError + Send + Sync + 'static,
    {
        let disposition = error.disposition();
        Self::with_disposition(disposition, error)
    }

    /// Wraps any error with an explicit disposition.
    pub fn with_disposition<E>(disposition: Disposition, error: E) -> Self
    where
        E: Into<BoxError>,
    {
        PipelineError {
            disposition,
            type_name: std::any::type_name::<E>(),
            source: error.into(),
        }
    }

    /// Wraps an error as [`Disposition::Retriable`].
    pub fn retriable<E: Into<BoxError>>(error: E) -> Self {
        Self::with_disposition(Disposition::Retriable, error)
    }

    /// Wraps an error as [`Disposition::DeadLetter`].
    pub fn dead_letter<E: Into<BoxError>>(error: E) -> Self {
        Self::with_disposition(Disposition::DeadLetter, error)
    }

    /// Wraps an error as [`Disposition::Fatal`].
    pub fn fatal<E: Into<BoxError>>(error: E) -> Self {
        Self::with_disposition(Disposition::Fatal, error)
    }

    /// What the pipeline does with the record.
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// The Rust type name of the wrapped error (`std::any::type_name`), the closest thing
    /// to a Java fully-qualified class name; the DLQ writes it as `kafka_dlt-exception-fqcn`.
    /// For errors given as strings this is the string type.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// Returns the wrapped error if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.source.downcast_ref::<E>()
    }

    /// Unwraps the inner error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl Classify for PipelineError {
    fn disposition(&self) -> Disposition {
        self.disposition
    }
}

impl fmt::Debug for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineError")
            .field("disposition", &self.disposition)
            .field("type_name", &self.type_name)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for PipelineError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad json")]
    struct BadJson;

    impl Classify for BadJson {
        fn disposition(&self) -> Disposition {
            Disposition::DeadLetter
        }
    }

    #[test]
    fn keeps_disposition_type_name_and_message() {
        let e = PipelineError::new(BadJson);
        assert_eq!(e.disposition(), Disposition::DeadLetter);
        assert!(e.type_name().ends_with("BadJson"));
        assert_eq!(e.to_string(), "bad json");
        assert!(e.downcast_ref::<BadJson>().is_some());
    }
}
