//! The first metadata request, tried again while the cluster cannot be reached, within
//! `sluice.bootstrap.timeout.ms` (off by default: one try). For a service started
//! before its brokers (a container starting beside them); Java and librdkafka do not
//! fail at construction at all but retry in the background forever, which hides a
//! wrong address; a bound keeps the clear error of a wrong address, only later.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::backoff::exponential;
use crate::error::Result;

/// How bootstrap is retried: within `timeout` of the first try (`None`: not at all),
/// `backoff` after the first failure, doubling up to `backoff_max` (the reconnect
/// backoff settings).
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    pub(super) timeout: Option<Duration>,
    pub(super) backoff: Duration,
    pub(super) backoff_max: Duration,
}

/// Runs `attempt` until it succeeds, fails with an error that is not retriable, or the
/// next try would start after the deadline; then fails with the last error as it is
/// (so a wrong address still says which address and why).
pub(super) async fn with_retry<T, F, Fut>(retry: Retry, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Some(timeout) = retry.timeout else {
        return attempt().await;
    };
    let deadline = Instant::now() + timeout;
    let mut failures = 0u32;
    loop {
        let error = match attempt().await {
            Ok(v) => {
                if failures > 0 {
                    info!(failures, "bootstrap succeeded after retrying");
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        failures += 1;
        let wait = exponential(retry.backoff, retry.backoff_max, failures);
        if !error.is_retriable() || Instant::now() + wait >= deadline {
            return Err(error);
        }
        warn!(error = %error, retry_in = ?wait, "bootstrap failed, retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::{Error, ErrorKind};

    /// Runs `with_retry` within `timeout` (1 ms backoff) on tries that end as `outcome`
    /// says for the n-th try (from 1); returns the result and the number of tries.
    async fn run(
        timeout: Option<Duration>,
        outcome: impl Fn(u32) -> Result<u32>,
    ) -> (Result<u32>, u32) {
        let retry = Retry {
            timeout,
            backoff: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
        };
        let tries = Cell::new(0);
        let result = with_retry(retry, || {
            tries.set(tries.get() + 1);
            let r = outcome(tries.get());
            async move { r }
        })
        .await;
        (result, tries.get())
    }

    const LONG: Option<Duration> = Some(Duration::from_secs(10));

    #[tokio::test]
    async fn without_a_timeout_one_try() {
        let (r, tries) = run(None, |_| Err(Error::closed("refused"))).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionClosed);
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn retries_retriable_errors_until_success() {
        let (r, tries) = run(LONG, |n| {
            if n < 4 {
                Err(Error::closed("refused"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(tries, 4);
    }

    #[tokio::test]
    async fn a_fatal_error_is_not_retried() {
        let (r, tries) = run(LONG, |_| Err(Error::config("bad"))).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Config);
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn gives_up_with_the_last_error_at_the_deadline() {
        let timeout = Some(Duration::from_millis(50));
        let (r, tries) = run(timeout, |n| Err(Error::closed(format!("refused {n}")))).await;
        let e = r.unwrap_err();
        assert!(tries > 1, "{tries}");
        assert!(e.to_string().contains(&format!("refused {tries}")), "{e}");
    }
}
