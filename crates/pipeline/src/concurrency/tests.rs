use tokio_test::{assert_pending, assert_ready_ok};
use tower::Layer;
use tower_test::mock::Spawn;

use super::*;
use crate::test_support::{pair, record, Handle, Mock};

fn spawn(ordering: Ordering, max: usize) -> (Spawn<Concurrency<Mock>>, Handle) {
    let (svc, handle) = pair();
    (
        Spawn::new(ConcurrencyLayer::new(ordering, max).layer(svc)),
        handle,
    )
}

fn at(partition: i32, offset: i64, key: &'static str) -> ConsumedRecord {
    let mut r = record(offset).with_key(key);
    r.partition = partition;
    r
}

#[tokio::test]
async fn per_partition_runs_one_record_at_a_time_per_partition() {
    let (mut svc, mut handle) = spawn(Ordering::PerPartition, 10);
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let mut first = tokio_test::task::spawn(svc.call(at(0, 1, "a")));
    assert_ready_ok!(svc.poll_ready());
    let mut second = tokio_test::task::spawn(svc.call(at(0, 2, "b")));
    assert_ready_ok!(svc.poll_ready());
    let mut other = tokio_test::task::spawn(svc.call(at(1, 1, "a")));

    assert_pending!(first.poll());
    assert_pending!(second.poll());
    assert_pending!(other.poll());
    let (r, a) = handle.next_request().await.expect("first");
    assert_eq!(r.offset, 1);
    let (r, b) = handle.next_request().await.expect("other partition");
    assert_eq!((r.partition, r.offset), (1, 1));
    assert!(
        handle.poll_request().is_pending(),
        "offset 2 waits for offset 1"
    );

    a.send_response(vec![]);
    assert_ready_ok!(first.poll());
    assert!(
        !second.is_woken(),
        "a finished answer still held keeps its successor waiting (the runner rewinds first)"
    );
    drop(first);
    assert!(second.is_woken());
    assert_pending!(second.poll());
    let (r, c) = handle.next_request().await.expect("second");
    assert_eq!(r.offset, 2);
    c.send_response(vec![]);
    b.send_response(vec![]);
    assert_ready_ok!(second.poll());
    assert_ready_ok!(other.poll());
    drop((second, other));
    assert_eq!(
        svc.get_ref().chains.len(),
        0,
        "finished chains are forgotten"
    );
}

#[tokio::test]
async fn per_key_overlaps_different_keys_of_one_partition() {
    let (mut svc, mut handle) = spawn(Ordering::PerKey, 10);
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let mut a1 = tokio_test::task::spawn(svc.call(at(0, 1, "a")));
    assert_ready_ok!(svc.poll_ready());
    let mut b = tokio_test::task::spawn(svc.call(at(0, 2, "b")));
    assert_ready_ok!(svc.poll_ready());
    let mut a2 = tokio_test::task::spawn(svc.call(at(0, 3, "a")));
    assert_pending!(a1.poll());
    assert_pending!(b.poll());
    assert_pending!(a2.poll());
    let (r1, s1) = handle.next_request().await.expect("a1");
    let (r2, s2) = handle.next_request().await.expect("b");
    assert_eq!((r1.offset, r2.offset), (1, 2));
    assert!(handle.poll_request().is_pending(), "a@3 waits for a@1");
    s2.send_response(vec![]);
    assert_ready_ok!(b.poll());
    assert_pending!(a2.poll());
    s1.send_response(vec![]);
    assert_ready_ok!(a1.poll());
    assert_pending!(a2.poll());
    drop(a1);
    assert!(a2.is_woken());
    assert_pending!(a2.poll());
    handle
        .next_request()
        .await
        .expect("a2")
        .1
        .send_response(vec![]);
    assert_ready_ok!(a2.poll());
}

#[tokio::test]
async fn unordered_overlaps_everything() {
    let (mut svc, mut handle) = spawn(Ordering::Unordered, 10);
    handle.allow(10);
    let mut futs = Vec::new();
    for o in 0..3 {
        assert_ready_ok!(svc.poll_ready());
        let mut f = tokio_test::task::spawn(svc.call(at(0, o, "a")));
        assert_pending!(f.poll());
        futs.push(f);
    }
    for _ in 0..3 {
        handle
            .next_request()
            .await
            .expect("all three at once")
            .1
            .send_response(vec![]);
    }
    for f in &mut futs {
        assert_ready_ok!(f.poll());
    }
}

#[tokio::test]
async fn the_in_flight_bound_is_backpressure() {
    let (mut svc, mut handle) = spawn(Ordering::Unordered, 2);
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let mut a = tokio_test::task::spawn(svc.call(at(0, 1, "a")));
    assert_ready_ok!(svc.poll_ready());
    let _b = tokio_test::task::spawn(svc.call(at(0, 2, "b")));
    assert_pending!(svc.poll_ready(), "two in flight: not ready");
    assert_pending!(a.poll());
    handle
        .next_request()
        .await
        .expect("a")
        .1
        .send_response(vec![]);
    assert_ready_ok!(a.poll());
    assert!(svc.is_woken(), "a finished record wakes the admitting task");
    assert_ready_ok!(svc.poll_ready());
}

#[tokio::test]
async fn inner_readiness_is_waited_for() {
    let (mut svc, mut handle) = spawn(Ordering::PerPartition, 10);
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

#[tokio::test]
async fn a_dropped_record_releases_its_successor_and_its_slot() {
    let (mut svc, mut handle) = spawn(Ordering::PerPartition, 2);
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let first = svc.call(at(0, 1, "a"));
    assert_ready_ok!(svc.poll_ready());
    let mut second = tokio_test::task::spawn(svc.call(at(0, 2, "a")));
    assert_pending!(second.poll());
    let (r, _abandoned) = handle.next_request().await.expect("first was sent at call");
    assert_eq!(r.offset, 1);
    drop(first);
    assert!(second.is_woken());
    assert_pending!(second.poll());
    let (r, _) = handle.next_request().await.expect("second runs");
    assert_eq!(r.offset, 2);
    assert_eq!(svc.get_ref().available(), 1);
}

/// A service whose `poll_ready` reserves something (as a breaker reserves a half-open
/// probe slot) that only a call or a drop gives back.
#[derive(Debug)]
struct Reserving {
    reserved: Arc<std::sync::atomic::AtomicUsize>,
    mine: bool,
}

impl Clone for Reserving {
    fn clone(&self) -> Self {
        Reserving {
            reserved: self.reserved.clone(),
            mine: false,
        }
    }
}

impl Drop for Reserving {
    fn drop(&mut self) {
        if self.mine {
            self.reserved
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Service<ConsumedRecord> for Reserving {
    type Response = Processed;
    type Error = PipelineError;
    type Future = std::future::Ready<Result<Processed, PipelineError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), PipelineError>> {
        if !self.mine {
            self.mine = true;
            self.reserved
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: ConsumedRecord) -> Self::Future {
        if std::mem::take(&mut self.mine) {
            self.reserved
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        std::future::ready(Ok(vec![]))
    }
}

#[tokio::test]
async fn a_queued_record_gives_back_what_readiness_reserved() {
    let reserved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = Reserving {
        reserved: reserved.clone(),
        mine: false,
    };
    let mut svc = Spawn::new(Concurrency::new(inner, Ordering::PerPartition, 10));
    assert_ready_ok!(svc.poll_ready());
    let _first = svc.call(at(0, 1, "a"));
    assert_eq!(reserved.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_ready_ok!(svc.poll_ready());
    assert_eq!(reserved.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Queued behind the first: the reservation must not sit idle meanwhile (with a
    // breaker it is a half-open probe slot the records ahead may be waiting for).
    let _second = svc.call(at(0, 2, "b"));
    assert_eq!(reserved.load(std::sync::atomic::Ordering::SeqCst), 0);
}
