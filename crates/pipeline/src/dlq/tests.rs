use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::Layer;
use tower_test::{assert_request_eq, mock};

use super::headers::*;
use super::*;
use crate::test_support::{pair, record};
use crate::Disposition;

#[derive(Debug, thiserror::Error)]
#[error("field `qty` missing")]
struct Missing(#[source] std::num::ParseIntError);

fn parse_error() -> PipelineError {
    let source = "x".parse::<i32>().expect_err("not a number");
    PipelineError::dead_letter(Missing(source))
}

#[tokio::test]
async fn publishes_the_original_with_spring_headers_then_succeeds() {
    let sink = MemorySink::new();
    let (svc, mut handle) = pair();
    let layer = DeadLetterLayer::new(sink.clone()).consumer_group("orders-app");
    let mut svc = mock::Spawn::new(layer.layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut original = record(42).with_header("trace", "abc");
    original.partition = 3;
    original.attempt = 2;
    let mut fut = tokio_test::task::spawn(svc.call(original.clone()));
    assert_request_eq!(handle, original.clone()).send_error(parse_error());
    assert_eq!(
        assert_ready_ok!(fut.poll()),
        Vec::new(),
        "handled, nothing to produce"
    );

    let dlq = sink.records();
    assert_eq!(dlq.len(), 1);
    let out = &dlq[0];
    assert_eq!(&*out.topic, "orders-dlt");
    assert_eq!(out.partition, Some(3));
    assert_eq!(out.key, original.key);
    assert_eq!(out.value, original.value);
    assert_eq!(
        out.headers[0],
        crate::Header::new("trace", Some("abc".into())),
        "original headers first"
    );
    let h = |n| bytes::Bytes::copy_from_slice(out.header_value(n).expect(n));
    assert_eq!(h(ORIGINAL_TOPIC), "orders");
    assert_eq!(h(ORIGINAL_PARTITION)[..], 3i32.to_be_bytes());
    assert_eq!(h(ORIGINAL_OFFSET)[..], 42i64.to_be_bytes());
    assert_eq!(
        h(ORIGINAL_TIMESTAMP)[..],
        1_700_000_000_000i64.to_be_bytes()
    );
    assert_eq!(h(ORIGINAL_CONSUMER_GROUP), "orders-app");
    assert!(std::str::from_utf8(&h(EXCEPTION_FQCN))
        .expect("utf8")
        .ends_with("Missing"));
    assert_eq!(h(EXCEPTION_MESSAGE), "field `qty` missing");
    assert_eq!(
        h(EXCEPTION_STACKTRACE),
        "Caused by: invalid digit found in string\n"
    );
    assert_eq!(h(ATTEMPT)[..], 2u32.to_be_bytes());
}

#[tokio::test]
async fn retriable_and_fatal_errors_pass_through_and_publish_nothing() {
    for e in [
        PipelineError::retriable("down"),
        PipelineError::fatal("corrupt"),
    ] {
        let want = e.disposition();
        let sink = MemorySink::new();
        let (svc, mut handle) = pair();
        let mut svc = mock::Spawn::new(DeadLetterLayer::new(sink.clone()).layer(svc));
        assert_ready_ok!(svc.poll_ready());
        let mut fut = tokio_test::task::spawn(svc.call(record(1)));
        assert_request_eq!(handle, record(1)).send_error(e);
        assert_eq!(assert_ready_err!(fut.poll()).disposition(), want);
        assert!(sink.records().is_empty(), "an outage never fills the DLQ");
    }
}

#[tokio::test]
async fn exhausted_retries_can_be_dead_lettered_on_request() {
    let sink = MemorySink::new();
    let (svc, mut handle) = pair();
    let layer = DeadLetterLayer::new(sink.clone())
        .dead_letter_exhausted_retries(true)
        .destination(|_| ("all-failures".to_owned(), None));
    let mut svc = mock::Spawn::new(layer.layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(1)));
    assert_request_eq!(handle, record(1)).send_error(PipelineError::retriable("down"));
    assert_ready_ok!(fut.poll());
    assert_eq!(&*sink.records()[0].topic, "all-failures");
    assert_eq!(sink.records()[0].partition, None);
}

#[tokio::test]
async fn the_record_is_handled_only_once_the_dlq_write_is_acknowledged() {
    let (dlq, mut dlq_handle) = mock::pair::<OutputRecord, Delivered>();
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(DeadLetterLayer::new(dlq).layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(5)));
    assert_request_eq!(handle, record(5)).send_error(parse_error());
    assert_pending!(fut.poll());
    let (out, ack) = dlq_handle.next_request().await.expect("dlq write");
    assert_eq!(&*out.topic, "orders-dlt");
    assert_pending!(fut.poll(), "not handled before the acknowledgement");
    ack.send_response(Delivered {
        topic: out.topic,
        partition: 0,
        offset: 9,
    });
    assert_ready_ok!(fut.poll());
}

#[tokio::test]
async fn a_failed_dlq_write_is_a_retriable_error() {
    let sink = MemorySink::new();
    sink.set_failing(true);
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(DeadLetterLayer::new(sink).layer(svc));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(5)));
    assert_request_eq!(handle, record(5)).send_error(parse_error());
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.disposition(), Disposition::Retriable);
    let failed = err
        .downcast_ref::<DeadLetterFailed>()
        .expect("DeadLetterFailed");
    assert_eq!(failed.original.disposition(), Disposition::DeadLetter);
}

#[tokio::test]
async fn readiness_is_the_inner_service_s() {
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(DeadLetterLayer::new(MemorySink::new()).layer(svc));
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

#[tokio::test]
async fn a_user_error_returned_with_question_mark_names_its_type_in_the_headers() {
    use crate::test_support::UserError;
    use tower::ServiceExt;

    async fn parse(r: ConsumedRecord) -> Result<Processed, UserError> {
        let qty: u32 = serde_json::from_slice(r.value.as_deref().unwrap_or_default())?;
        Err(UserError::Rejected(if qty > 9 {
            "too many"
        } else {
            "too few"
        }))
    }
    let sink = MemorySink::new();
    let svc = DeadLetterLayer::new(sink.clone()).layer(tower::service_fn(parse));
    let out = svc.clone().oneshot(record(1).with_value("{")).await;
    assert_eq!(out.expect("dead-lettered"), Vec::new());
    let out = svc.oneshot(record(2).with_value("12")).await;
    assert_eq!(out.expect("dead-lettered"), Vec::new());

    let dlq = sink.records();
    assert_eq!(dlq.len(), 2);
    for out in &dlq {
        let fqcn = std::str::from_utf8(out.header_value(EXCEPTION_FQCN).expect("fqcn"))
            .expect("utf8")
            .to_owned();
        assert!(fqcn.ends_with("test_support::UserError"), "{fqcn}");
    }
    let message = |i: usize| dlq[i].header_value(EXCEPTION_MESSAGE).expect("message");
    assert!(message(0).starts_with(b"not json: "));
    assert_eq!(message(1), b"order rejected: too many");
}
