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
