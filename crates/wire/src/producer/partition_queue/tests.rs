//! Unit tests of the partition queue's events: each drives a queue as the sender and
//! the response handling do and checks what it decided.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::*;
use crate::records::{BatchOptions, Compression};

const PRODUCER: ProducerIdEpoch = ProducerIdEpoch { id: 5, epoch: 0 };

/// A queue of `n` batches of `records` records of 300 bytes each, ids from 0.
fn queue(n: u64, records: usize) -> PartitionQueue {
    let memory = Arc::new(Semaphore::new(1 << 20));
    let value = [b'x'; 300];
    let record = RecordParts {
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(&value),
        headers: &[],
    };
    let mut q = PartitionQueue::default();
    for id in 0..n {
        let permit = Arc::clone(&memory)
            .try_acquire_many_owned(64 * 1024)
            .unwrap();
        let options = BatchOptions {
            compression: Compression::None,
            ..BatchOptions::default()
        };
        let (batch, _) = Batch::open(
            id,
            "t",
            0,
            options,
            &record,
            Ack::channel().0,
            permit,
            64 * 1024,
        )
        .unwrap();
        q.push_new(batch);
        for _ in 1..records {
            assert!(q.try_append(&record, Ack::channel().0).unwrap().is_ok());
        }
    }
    q
}

fn rules(now: Instant) -> DrainRules {
    DrainRules {
        now,
        linger: Duration::ZERO,
        urgent: false,
        flush_upto: 0,
        producer: Some(PRODUCER),
        one_in_flight: false,
    }
}

fn error(code: KafkaCode) -> Error {
    Error::kafka(code, "test")
}

#[test]
fn a_retriable_error_queues_the_batch_again_at_its_place_after_its_backoff() {
    let config = ProducerConfig::new("b:9092").retry_backoff(Duration::from_millis(100));
    let mut q = queue(2, 1);
    let now = Instant::now();
    let first = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    assert_eq!(q.in_flight, 1);
    let retry = q.on_error(first, error(KafkaCode::NotLeaderOrFollower), &config, now);
    assert!(matches!(retry, OnError::Retry { bump: false }), "{retry:?}");
    assert_eq!(q.in_flight, 0);
    assert!(!q.rewrite_requested());
    let ids: Vec<u64> = q.batches().map(|b| b.id).collect();
    assert_eq!(ids, vec![0, 1], "back before the batch behind it");
    match q.head(&rules(now)) {
        Head::Until(at) => {
            let wait = at - now;
            assert!(wait >= Duration::from_millis(80) && wait <= Duration::from_millis(120));
        }
        other => panic!("the retry waits out its backoff, got {other:?}"),
    }
    let later = now + Duration::from_millis(200);
    assert!(matches!(q.head(&rules(later)), Head::Ready { .. }));
    let again = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(
        again.stamp.map(|s| s.sequence),
        Some(0),
        "a resend keeps its sequence"
    );
    assert_eq!(
        q.head(&rules(later)),
        Head::Blocked,
        "one at a time while retrying"
    );
}

#[test]
fn a_sequence_error_at_the_head_asks_for_a_bump_and_one_behind_it_does_not() {
    let config = ProducerConfig::new("b:9092");
    let now = Instant::now();
    let mut q = queue(2, 1);
    let first = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    q.on_ack(&first);
    let second = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    // The second batch is the first unacknowledged one: resending cannot fix it.
    let retry = q.on_error(
        second,
        error(KafkaCode::OutOfOrderSequenceNumber),
        &config,
        now,
    );
    assert!(matches!(retry, OnError::Retry { bump: true }), "{retry:?}");
    assert!(q.rewrite_requested());
    q.rewrite_sequences();
    assert!(!q.rewrite_requested());
    let resent = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    assert_eq!(
        resent.stamp.map(|s| s.sequence),
        Some(0),
        "rewritten from 0"
    );

    // Behind an unacknowledged batch the error may be that batch's fault: resend.
    let mut q = queue(2, 1);
    let _first = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    let second = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    let retry = q.on_error(
        second,
        error(KafkaCode::OutOfOrderSequenceNumber),
        &config,
        now,
    );
    assert!(matches!(retry, OnError::Retry { bump: false }), "{retry:?}");
    assert!(!q.rewrite_requested());
}

#[test]
fn a_batch_fails_for_good_when_not_retriable_or_out_of_retries_or_time() {
    let now = Instant::now();
    let idempotent = ProducerConfig::new("b:9092");
    let mut q = queue(1, 1);
    let b = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    match q.on_error(
        b,
        error(KafkaCode::TopicAuthorizationFailed),
        &idempotent,
        now,
    ) {
        OnError::Fail { error, bump, .. } => {
            assert_eq!(
                error.kafka_code(),
                Some(KafkaCode::TopicAuthorizationFailed)
            );
            assert!(bump, "a stamped batch's gap needs an epoch bump");
        }
        other => panic!("{other:?}"),
    }
    assert!(q.rewrite_requested());

    let plain = ProducerConfig::new("b:9092")
        .enable_idempotence(false)
        .retries(0);
    let mut q = queue(1, 1);
    let b = q.drain_ready(None).unwrap().unwrap();
    match q.on_error(b, error(KafkaCode::NotLeaderOrFollower), &plain, now) {
        OnError::Fail { error, bump, .. } => {
            assert_eq!(error.kafka_code(), Some(KafkaCode::NotLeaderOrFollower));
            assert!(!bump);
        }
        other => panic!("retries = 0: {other:?}"),
    }
    assert!(!q.rewrite_requested());
    assert_eq!(q.batches().count(), 0);

    let short = ProducerConfig::new("b:9092").delivery_timeout(Duration::from_millis(10));
    let mut q = queue(1, 1);
    let b = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    let late = now + Duration::from_secs(1);
    match q.on_error(b, error(KafkaCode::NotLeaderOrFollower), &short, late) {
        OnError::Fail { error, .. } => {
            assert_eq!(error.kind(), crate::ErrorKind::Timeout, "{error}");
            assert!(error.to_string().contains("last error"), "{error}");
        }
        other => panic!("past delivery.timeout.ms: {other:?}"),
    }
}

#[test]
fn a_batch_too_large_is_split_in_place_and_a_single_record_fails() {
    let config = ProducerConfig::new("b:9092").batch_size(1000);
    let now = Instant::now();
    let mut q = queue(2, 6);
    let big = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    match q.on_error(big, error(KafkaCode::MessageTooLarge), &config, now) {
        OnError::Split { id, more } => {
            assert_eq!(id, 0);
            assert!(more >= 1, "{more}");
            let queued: Vec<(u64, usize)> = q.batches().map(|b| (b.id, b.record_count())).collect();
            assert_eq!(queued.len(), more + 2, "{queued:?}");
            assert!(queued[..=more].iter().all(|&(id, _)| id == 0), "{queued:?}");
            let records: usize = queued[..=more].iter().map(|&(_, n)| n).sum();
            assert_eq!(records, 6, "every record in a part, once");
            assert_eq!(
                queued[more + 1].0,
                1,
                "the next batch stays behind the parts"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut q = queue(1, 1);
    let single = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    assert!(matches!(
        q.on_error(single, error(KafkaCode::MessageTooLarge), &config, now),
        OnError::Fail { .. }
    ));
}

#[test]
fn expired_batches_leave_the_queue_and_a_stamped_one_asks_for_a_rewrite() {
    let config = ProducerConfig::new("b:9092");
    let start = Instant::now();
    let mut q = queue(3, 1);
    let (expired, next) = q.expire(start, Duration::from_secs(60));
    assert!(expired.is_empty());
    assert!(next.is_some_and(|at| at > start + Duration::from_secs(59)));
    // The head goes out and comes back for a retry, stamped.
    let head = q.drain_ready(Some(PRODUCER)).unwrap().unwrap();
    let _ = q.on_error(head, error(KafkaCode::NotLeaderOrFollower), &config, start);
    let (expired, next) = q.expire(start + Duration::from_secs(61), Duration::from_secs(60));
    assert_eq!(expired.len(), 3);
    assert_eq!(next, None);
    assert!(q.rewrite_requested(), "the stamped batch left a gap");
    assert_eq!(q.head(&rules(start)), Head::Empty);
}

#[test]
fn head_waits_for_linger_and_without_idempotence_one_in_flight_when_asked() {
    let now = Instant::now();
    let mut q = queue(2, 1);
    let mut r = rules(now);
    r.linger = Duration::from_secs(5);
    r.producer = None;
    // A closed head (a batch behind it was opened) is ready at once.
    assert!(matches!(q.head(&r), Head::Ready { .. }));
    let _first = q.drain_ready(None).unwrap().unwrap();
    match q.head(&r) {
        Head::Until(at) => assert!(at > now + Duration::from_secs(4)),
        other => panic!("the open batch lingers: {other:?}"),
    }
    r.flush_upto = 2;
    assert!(matches!(q.head(&r), Head::Ready { .. }), "flushed");
    r.one_in_flight = true;
    assert_eq!(q.head(&r), Head::Blocked, "max.in.flight = 1");
}
