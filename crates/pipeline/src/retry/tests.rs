use std::sync::Arc;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::Layer;
use tower_test::{assert_request_eq, mock};

use super::*;
use crate::test_support::{pair, record};
use crate::{Disposition, PipelineError};

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(100))
        .jitter(0.0)
}

#[tokio::test(start_paused = true)]
async fn retries_retriable_errors_with_backoff_and_bumps_attempt() {
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(RetryLayer::new(policy(3)).layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(7)));

    assert_request_eq!(handle, record(7)).send_error(PipelineError::retriable("timeout"));
    assert_pending!(fut.poll());
    // Nothing is sent before the backoff has passed.
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(fut.poll());
    assert!(handle.poll_request().is_pending());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_pending!(fut.poll());

    let mut second = record(7);
    second.attempt = 2;
    assert_request_eq!(handle, second).send_response(vec![]);
    assert_eq!(assert_ready_ok!(fut.poll()), vec![]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error_still_retriable() {
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(Retry::new(svc, policy(2)));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(1)));
    assert_request_eq!(handle, record(1)).send_error(PipelineError::retriable("one"));
    assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_pending!(fut.poll());
    let (_, send) = handle.next_request().await.expect("second attempt");
    send.send_error(PipelineError::retriable("two"));
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.disposition(), Disposition::Retriable);
    assert_eq!(err.to_string(), "two");
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_dead_letter_or_fatal() {
    for e in [
        PipelineError::dead_letter("bad json"),
        PipelineError::fatal("corrupt"),
    ] {
        let want = e.disposition();
        let (svc, mut handle) = pair();
        let mut svc = mock::Spawn::new(Retry::new(svc, policy(5)));
        assert_ready_ok!(svc.poll_ready());
        let mut fut = tokio_test::task::spawn(svc.call(record(1)));
        assert_request_eq!(handle, record(1)).send_error(e);
        assert_eq!(assert_ready_err!(fut.poll()).disposition(), want);
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_stops_retries() {
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.0));
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(RetryLayer::new(policy(5)).with_budget(budget).layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(1)));
    assert_request_eq!(handle, record(1)).send_error(PipelineError::retriable("down"));
    assert_ready_err!(fut.poll());
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_inner_service() {
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(Retry::new(svc, policy(3)));
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

/// A service with the user's own error type: fails with `error()` until `succeed_at`.
fn user_service<E, F>(
    calls: Arc<std::sync::atomic::AtomicU32>,
    succeed_at: u32,
    error: F,
) -> impl Service<ConsumedRecord, Response = Processed, Error = E, Future: Send> + Clone
where
    E: Send + 'static,
    F: Fn() -> E + Clone + Send + 'static,
{
    tower::service_fn(move |_r: ConsumedRecord| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let error = error.clone();
        async move {
            match n >= succeed_at {
                true => Ok(vec![]),
                false => Err(error()),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn retries_by_the_user_errors_own_classification() {
    use crate::test_support::UserError;
    use tower::ServiceExt;

    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc =
        RetryLayer::new(policy(3)).layer(user_service(calls.clone(), 3, || UserError::Timeout));
    assert_eq!(
        svc.oneshot(record(1))
            .await
            .expect("third attempt succeeds"),
        vec![]
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);

    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc = RetryLayer::new(policy(3)).layer(user_service(calls.clone(), 3, || {
        UserError::Rejected("no stock")
    }));
    let err = svc
        .oneshot(record(2))
        .await
        .expect_err("a dead letter is not retried");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    assert!(matches!(
        err.downcast_ref(),
        Some(UserError::Rejected("no stock"))
    ));
}

#[tokio::test(start_paused = true)]
async fn retries_boxed_errors_by_the_default_classifier() {
    use crate::BoxError;
    use tower::ServiceExt;

    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let timeout = || -> BoxError { std::io::Error::from(std::io::ErrorKind::TimedOut).into() };
    let svc = RetryLayer::new(policy(3)).layer(user_service(calls.clone(), 2, timeout));
    assert_eq!(
        svc.oneshot(record(1))
            .await
            .expect("second attempt succeeds"),
        vec![]
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let bad_json = || -> BoxError {
        serde_json::from_slice::<u32>(b"{")
            .expect_err("not json")
            .into()
    };
    let svc = RetryLayer::new(policy(3)).layer(user_service(calls.clone(), 3, bad_json));
    let err = svc
        .oneshot(record(2))
        .await
        .expect_err("unknown errors are dead letters");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    assert!(err.downcast_ref::<serde_json::Error>().is_some());
}
