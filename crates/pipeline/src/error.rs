//! The one error classification every layer shares.
//!
//! A user error says what should happen to the record through [`Classify`]; the stack
//! carries it as a [`PipelineError`], which keeps the original error (downcastable), its
//! [`Disposition`], and the type name and message the dead-letter headers need.
//!
//! Every layer accepts an inner service whose error is `Into<PipelineError>`, so your
//! service keeps its own error type and `?` works on it:
//!
//! - **Your own error type** (the usual choice): any `E: Classify + Error + Send + Sync`
//!   converts with its own disposition and type name. Give it `#[from]` variants for the
//!   foreign errors you meet (`serde_json::Error`, …) and `?` works on those too.
//! - **[`BoxError`]**, tower's convention: anything that converts to it works with `?`, and
//!   the error is classified by [`classify_boxed`]: a boxed `PipelineError` keeps its
//!   disposition, a timeout or connection failure is retriable, anything else is a dead
//!   letter.
//! - **`PipelineError` itself**, built with [`PipelineError::retriable`] and friends.

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
///
/// Converts from your own error (`From<E>` for every `E: Classify + Error + Send + Sync +
/// 'static`) and from a [`BoxError`] (classified by [`classify_boxed`]), so a service can
/// return either and `?` just works. It is not itself [`Classify`] (that would make the
/// conversion from `Classify` errors overlap with `From<PipelineError>`); read its
/// [`disposition`](PipelineError::disposition) instead.
///
/// ```
/// use sluice_pipeline::{Classify, ConsumedRecord, Disposition, OutputRecord, PipelineError};
/// use tower::{service_fn, Service, ServiceExt};
///
/// #[derive(serde::Deserialize)]
/// struct Payment { account: String, cents: u64 }
///
/// #[derive(Debug, thiserror::Error)]
/// enum PaymentError {
///     #[error("not a payment: {0}")]
///     Json(#[from] serde_json::Error),
///     #[error("negative balance on {0}")]
///     Overdrawn(String),
///     #[error("fraud service timed out")]
///     FraudTimeout,
/// }
///
/// impl Classify for PaymentError {
///     fn disposition(&self) -> Disposition {
///         match self {
///             PaymentError::Json(_) | PaymentError::Overdrawn(_) => Disposition::DeadLetter,
///             PaymentError::FraudTimeout => Disposition::Retriable,
///         }
///     }
/// }
///
/// fn check(p: &Payment) -> Result<(), PaymentError> {
///     if p.cents > 10_000 { Err(PaymentError::Overdrawn(p.account.clone())) } else { Ok(()) }
/// }
///
/// // The service's error is the user's own type: `?` on serde_json and on `check`.
/// async fn score(r: ConsumedRecord) -> Result<Vec<OutputRecord>, PaymentError> {
///     let payment: Payment = serde_json::from_slice(r.value().unwrap_or_default())?;
///     check(&payment)?;
///     Ok(vec![r.forward("scored", payment.cents.to_string())])
/// }
///
/// // A tower-style service returning `BoxError`: `?` on anything.
/// async fn parse(r: ConsumedRecord) -> Result<Vec<OutputRecord>, sluice_pipeline::BoxError> {
///     let payment: Payment = serde_json::from_slice(r.value().unwrap_or_default())?;
///     check(&payment)?;
///     Ok(vec![r.forward("parsed", payment.account)])
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bad = ConsumedRecord::new("payments", 0, 0).with_value("{not json");
/// let err: PipelineError = service_fn(score).oneshot(bad.clone()).await.unwrap_err().into();
/// assert_eq!(err.disposition(), Disposition::DeadLetter);
/// assert!(err.type_name().ends_with("PaymentError"));
///
/// let err: PipelineError = service_fn(parse).oneshot(bad).await.unwrap_err().into();
/// assert_eq!(err.disposition(), Disposition::DeadLetter);
/// assert!(err.downcast_ref::<serde_json::Error>().is_some());
///
/// let big = ConsumedRecord::new("payments", 0, 1)
///     .with_value(r#"{"account":"a-1","cents":50000}"#);
/// let err: PipelineError = service_fn(score).oneshot(big).await.unwrap_err().into();
/// assert!(matches!(err.downcast_ref(), Some(PaymentError::Overdrawn(a)) if a == "a-1"));
/// # }
/// ```
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

impl<E> From<E> for PipelineError
where
    E: Classify + StdError + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        PipelineError::new(error)
    }
}

impl From<BoxError> for PipelineError {
    /// Unboxes a `PipelineError`; classifies anything else with [`classify_boxed`].
    fn from(error: BoxError) -> Self {
        match error.downcast::<PipelineError>() {
            Ok(inner) => *inner,
            Err(error) => PipelineError {
                disposition: classify_boxed(&*error),
                type_name: std::any::type_name::<BoxError>(),
                source: error,
            },
        }
    }
}

/// The disposition of an error that did not say (a [`BoxError`] from a tower-style service).
///
/// Walks the error and its [`source`](StdError::source) chain: a [`PipelineError`] keeps
/// its disposition; a timeout (`tokio::time::error::Elapsed`, tower's
/// [`Elapsed`](tower::timeout::error::Elapsed) from a `Timeout` layer, an
/// [`std::io::Error`] of kind `TimedOut`) or a failed connection (`ConnectionRefused`, `ConnectionReset`,
/// `ConnectionAborted`, `NotConnected`, `BrokenPipe`) is [`Disposition::Retriable`], a
/// failure of the world. Anything else is [`Disposition::DeadLetter`]: an error nobody
/// classified is most likely this message's (it does not parse, a rule rejects it), and
/// retrying a poison message forever would stall its partition.
pub fn classify_boxed(error: &(dyn StdError + 'static)) -> Disposition {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(p) = e.downcast_ref::<PipelineError>() {
            return p.disposition;
        }
        if e.is::<tokio::time::error::Elapsed>() || e.is::<tower::timeout::error::Elapsed>() {
            return Disposition::Retriable;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                TimedOut
                    | ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
            ) {
                return Disposition::Retriable;
            }
        }
        current = e.source();
    }
    Disposition::DeadLetter
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

    #[test]
    fn converts_a_classify_error_with_question_mark() {
        fn parse() -> Result<(), PipelineError> {
            Err(BadJson)?
        }
        let e = parse().unwrap_err();
        assert_eq!(e.disposition(), Disposition::DeadLetter);
        assert!(e.type_name().ends_with("BadJson"));
    }

    #[test]
    fn boxed_errors_are_classified_by_what_they_are() {
        let boxed: BoxError = PipelineError::fatal("stop").into();
        let e = PipelineError::from(boxed);
        assert_eq!(e.disposition(), Disposition::Fatal);
        assert_eq!(e.to_string(), "stop");

        let timeout: BoxError = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow").into();
        assert_eq!(
            PipelineError::from(timeout).disposition(),
            Disposition::Retriable
        );

        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let boxed: BoxError = Box::new(refused);
        assert_eq!(
            PipelineError::from(boxed).disposition(),
            Disposition::Retriable
        );

        let other: BoxError = "no such field".into();
        let e = PipelineError::from(other);
        assert_eq!(e.disposition(), Disposition::DeadLetter);
        assert_eq!(e.to_string(), "no such field");
    }

    #[tokio::test]
    async fn a_tokio_timeout_is_retriable() {
        let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        let boxed: BoxError = elapsed.into();
        assert_eq!(
            PipelineError::from(boxed).disposition(),
            Disposition::Retriable
        );
    }

    #[tokio::test]
    async fn a_tower_timeout_is_retriable() {
        use tower::{service_fn, ServiceBuilder, ServiceExt};

        let slow = ServiceBuilder::new()
            .timeout(std::time::Duration::ZERO)
            .service(service_fn(|()| {
                std::future::pending::<Result<(), BoxError>>()
            }));
        let boxed = slow.oneshot(()).await.unwrap_err();
        assert!(boxed.is::<tower::timeout::error::Elapsed>());
        assert_eq!(
            PipelineError::from(boxed).disposition(),
            Disposition::Retriable
        );
    }
}
