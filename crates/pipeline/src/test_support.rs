//! Shared helpers for the layer tests: a `tower-test` mock speaking `PipelineError`.

use tower::util::MapErr;
use tower::ServiceExt;
use tower_test::mock;

use crate::{BoxError, ConsumedRecord, PipelineError, Processed};

pub(crate) type Mock = MapErr<mock::Mock<ConsumedRecord, Processed>, fn(BoxError) -> PipelineError>;
pub(crate) type Handle = mock::Handle<ConsumedRecord, Processed>;

/// The mock's errors are boxed; a boxed `PipelineError` comes back out as itself, anything
/// else is taken as retriable.
fn unbox(e: BoxError) -> PipelineError {
    match e.downcast::<PipelineError>() {
        Ok(p) => *p,
        Err(other) => PipelineError::retriable(other),
    }
}

pub(crate) fn pair() -> (Mock, Handle) {
    let (service, handle) = mock::pair::<ConsumedRecord, Processed>();
    (
        service.map_err(unbox as fn(BoxError) -> PipelineError),
        handle,
    )
}

pub(crate) fn record(offset: i64) -> ConsumedRecord {
    ConsumedRecord::new("orders", 0, offset)
        .with_key("k")
        .with_value("v")
        .with_timestamp(1_700_000_000_000)
}

/// A user's own error enum, as a service would return it (no `PipelineError` in sight).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    #[error("downstream timed out")]
    Timeout,
    #[error("order rejected: {0}")]
    Rejected(&'static str),
    #[error("not json: {0}")]
    Json(#[from] serde_json::Error),
}

impl crate::Classify for UserError {
    fn disposition(&self) -> crate::Disposition {
        match self {
            UserError::Timeout => crate::Disposition::Retriable,
            UserError::Rejected(_) | UserError::Json(_) => crate::Disposition::DeadLetter,
        }
    }
}
