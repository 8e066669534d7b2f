use std::fmt;

/// A call reached an open breaker: the caller did not wait for `poll_ready`, or an
/// operator forced the breaker open in between. Classified as retriable.
#[derive(Debug, Default)]
pub struct BreakerOpen {
    _priv: (),
}

impl BreakerOpen {
    pub(crate) fn new() -> Self {
        BreakerOpen { _priv: () }
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for BreakerOpen {}
