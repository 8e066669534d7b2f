use std::time::Duration;

use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::Layer;
use tower_test::mock::Spawn;

use super::*;
use crate::test_support::{pair, record, Handle, Mock};
use crate::Disposition;

fn config() -> BreakerConfig {
    BreakerConfig::new()
        .window(WindowKind::Count(4))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_secs(10))
        .permitted_calls_in_half_open(2)
}

fn breaker(config: BreakerConfig) -> (Spawn<Breaker<Mock>>, Handle) {
    let (svc, handle) = pair();
    (Spawn::new(BreakerLayer::new(config).layer(svc)), handle)
}

/// Runs one call through the breaker, answered by `outcome`.
async fn run(
    svc: &mut Spawn<Breaker<Mock>>,
    handle: &mut Handle,
    outcome: Result<(), PipelineError>,
) {
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(record(0)));
    let (_, send) = handle.next_request().await.expect("request");
    match outcome {
        Ok(()) => send.send_response(vec![]),
        Err(e) => send.send_error(e),
    }
    let _ = fut.poll();
}

fn fail() -> Result<(), PipelineError> {
    Err(PipelineError::retriable("down"))
}

#[tokio::test(start_paused = true)]
async fn opens_at_the_failure_rate_and_is_not_ready_while_open() {
    let (mut svc, mut handle) = breaker(config());
    let state = svc.get_ref().handle();
    handle.allow(100);
    run(&mut svc, &mut handle, Ok(())).await;
    run(&mut svc, &mut handle, fail()).await;
    run(&mut svc, &mut handle, Ok(())).await;
    assert_eq!(state.state(), BreakerState::Closed, "below minimum calls");
    run(&mut svc, &mut handle, fail()).await;
    assert_eq!(state.state(), BreakerState::Open);

    assert_pending!(svc.poll_ready());
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(!svc.is_woken());
    assert_pending!(svc.poll_ready());
    tokio::time::advance(Duration::from_secs(1)).await;
    // The breaker's own timer wakes the task: the runner does not have to poll in a loop.
    assert!(svc.is_woken());
    assert_ready_ok!(svc.poll_ready());
    assert_eq!(state.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_permitted_probes_then_closes_on_success() {
    let (mut svc, mut handle) = breaker(config().minimum_calls(1).window(WindowKind::Count(1)));
    let state = svc.get_ref().handle();
    handle.allow(100);
    run(&mut svc, &mut handle, fail()).await;
    assert_eq!(state.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;

    // Two probes are admitted (through two clones of the service); a third waits.
    let mut a = svc.clone();
    let mut b = svc.clone();
    let mut c = svc.clone();
    assert_ready_ok!(a.poll_ready());
    assert_ready_ok!(b.poll_ready());
    assert_pending!(c.poll_ready());
    let mut fa = tokio_test::task::spawn(a.call(record(1)));
    let mut fb = tokio_test::task::spawn(b.call(record(2)));
    handle
        .next_request()
        .await
        .expect("a")
        .1
        .send_response(vec![]);
    handle
        .next_request()
        .await
        .expect("b")
        .1
        .send_response(vec![]);
    assert_ready_ok!(fa.poll());
    assert_eq!(state.state(), BreakerState::HalfOpen);
    assert_ready_ok!(fb.poll());
    assert_eq!(state.state(), BreakerState::Closed);
    assert!(c.is_woken(), "parked callers are woken on the transition");
    assert_ready_ok!(c.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens() {
    let (mut svc, mut handle) = breaker(config().minimum_calls(1).window(WindowKind::Count(1)));
    let state = svc.get_ref().handle();
    handle.allow(100);
    run(&mut svc, &mut handle, fail()).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    run(&mut svc, &mut handle, fail()).await;
    run(&mut svc, &mut handle, Ok(())).await;
    assert_eq!(
        state.state(),
        BreakerState::Open,
        "1 of 2 probes failed: 50% >= 50%"
    );
    assert_pending!(svc.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_slot() {
    let cfg = config()
        .minimum_calls(1)
        .window(WindowKind::Count(1))
        .permitted_calls_in_half_open(1);
    let (mut svc, mut handle) = breaker(cfg);
    handle.allow(100);
    run(&mut svc, &mut handle, fail()).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut other = svc.clone();
    assert_ready_ok!(svc.poll_ready());
    assert_pending!(other.poll_ready());
    drop(svc.call(record(1)));
    assert!(other.is_woken());
    assert_ready_ok!(other.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn dead_letter_errors_are_not_failures() {
    let (mut svc, mut handle) = breaker(config());
    let state = svc.get_ref().handle();
    handle.allow(100);
    for _ in 0..8 {
        run(
            &mut svc,
            &mut handle,
            Err(PipelineError::dead_letter("bad json")),
        )
        .await;
    }
    assert_eq!(state.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_slow_call_rate() {
    let cfg = config()
        .failure_rate_threshold(1.0)
        .slow_call_rate_threshold(0.5)
        .slow_call_duration(Duration::from_millis(500));
    let (mut svc, mut handle) = breaker(cfg);
    let state = svc.get_ref().handle();
    handle.allow(100);
    for _ in 0..4 {
        assert_ready_ok!(svc.poll_ready());
        let mut fut = tokio_test::task::spawn(svc.call(record(0)));
        let (_, send) = handle.next_request().await.expect("request");
        tokio::time::advance(Duration::from_millis(600)).await;
        send.send_response(vec![]);
        assert_ready_ok!(fut.poll());
    }
    assert_eq!(state.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn operators_can_force_open_disable_and_reset() {
    let (mut svc, mut handle) = breaker(config());
    let ops = svc.get_ref().handle();
    handle.allow(100);
    ops.force_open();
    assert_pending!(svc.poll_ready());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(svc.poll_ready(), "forced open does not time out");
    ops.reset();
    assert!(svc.is_woken());
    assert_ready_ok!(svc.poll_ready());

    ops.disable();
    for _ in 0..10 {
        run(&mut svc, &mut handle, fail()).await;
    }
    assert_eq!(ops.state(), BreakerState::Disabled);
}

#[tokio::test(start_paused = true)]
async fn a_call_without_readiness_is_rejected_as_retriable() {
    let (mut svc, _handle) = breaker(config());
    let mut fut = tokio_test::task::spawn(svc.call(record(0)));
    let err = assert_ready_err!(fut.poll());
    assert_eq!(err.disposition(), Disposition::Retriable);
    assert!(err.downcast_ref::<BreakerOpen>().is_some());
}

#[tokio::test(start_paused = true)]
async fn inner_backpressure_passes_through() {
    let (mut svc, mut handle) = breaker(config());
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

mod state_machine {
    use std::task::Waker;

    use proptest::prelude::*;
    use tokio::time::Instant;

    use super::super::state::{Admission, Permit, Shared};
    use super::super::{BreakerConfig, BreakerState, WindowKind};

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Complete { i: usize, failed: bool, slow: bool },
        Cancel { i: usize },
        Force(BreakerState),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Admit),
            4 => (any::<usize>(), any::<bool>(), any::<bool>())
                .prop_map(|(i, failed, slow)| Op::Complete { i, failed, slow }),
            1 => any::<usize>().prop_map(|i| Op::Cancel { i }),
            1 => prop_oneof![
                Just(BreakerState::Closed),
                Just(BreakerState::ForcedOpen),
                Just(BreakerState::Disabled),
                Just(BreakerState::HalfOpen),
            ]
            .prop_map(Op::Force),
        ]
    }

    proptest! {
        /// Under any interleaving of admissions, outcomes, cancellations and operator
        /// actions: half-open never has more probes out than permitted, forced open admits
        /// nothing, disabled admits everything. (`wait_in_open` is zero so open moves to
        /// half-open on the next admission without a clock.)
        #[test]
        fn admission_respects_the_state(ops in proptest::collection::vec(op(), 1..300)) {
            let permitted = 2;
            let shared = Shared::new(
                BreakerConfig::new()
                    .window(WindowKind::Count(3))
                    .minimum_calls(3)
                    .wait_in_open(std::time::Duration::ZERO)
                    .permitted_calls_in_half_open(permitted),
            );
            // Permits with the state they were admitted in.
            let mut out: Vec<(Permit, BreakerState)> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        let before = shared.state();
                        match shared.admit(Waker::noop()) {
                            Admission::Admitted(p) => {
                                let now = shared.state();
                                prop_assert_ne!(before, BreakerState::ForcedOpen);
                                out.push((p, now));
                                if now == BreakerState::HalfOpen {
                                    let probes = out.iter().filter(|(_, s)| *s == BreakerState::HalfOpen).count();
                                    prop_assert!(probes <= permitted as usize, "{} probes", probes);
                                }
                            }
                            Admission::OpenUntil(_) => prop_assert!(false, "wait is zero"),
                            Admission::Parked => {
                                let s = shared.state();
                                prop_assert!(matches!(s, BreakerState::ForcedOpen | BreakerState::HalfOpen), "{:?}", s);
                            }
                        }
                    }
                    Op::Complete { i, failed, slow } if !out.is_empty() => {
                        let (p, _) = out.swap_remove(i % out.len());
                        p.complete(failed, slow, Instant::now());
                    }
                    Op::Cancel { i } if !out.is_empty() => {
                        drop(out.swap_remove(i % out.len()));
                    }
                    Op::Force(state) => {
                        shared.set(state);
                        // Permits from before the transition no longer count as probes.
                        for (_, s) in out.iter_mut() {
                            *s = BreakerState::Closed;
                        }
                    }
                    _ => {}
                }
                if shared.state() != BreakerState::HalfOpen {
                    for (_, s) in out.iter_mut() {
                        *s = BreakerState::Closed;
                    }
                }
            }
        }
    }
}
