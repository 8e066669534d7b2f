use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::Layer;
use tower_test::mock;

use super::*;
use crate::test_support::{pair, record};

#[test]
fn out_of_order_completions_commit_only_the_finished_prefix() {
    let mut t = OffsetTracker::new();
    assert_eq!(t.committable(), None);
    for o in 10..15 {
        t.mark_started(o);
    }
    assert_eq!(t.committable(), Some(10));
    t.mark_done(12);
    t.mark_done(11);
    assert_eq!(t.committable(), Some(10), "10 is still running");
    t.mark_done(10);
    assert_eq!(t.committable(), Some(13));
    t.mark_done(14);
    t.mark_done(13);
    assert_eq!(t.committable(), Some(15));
    assert!(!t.mark_done(99), "never started");
}

#[test]
fn revoke_returns_the_final_offset_and_ignores_stragglers() {
    let topic: Arc<str> = "orders".into();
    let mut c = CommitTracker::new();
    let a = c.mark_started(&topic, 0, 5);
    let b = c.mark_started(&topic, 0, 6);
    assert!(c.mark_done(&a));
    assert_eq!(c.committable(), vec![(topic.clone(), 0, 6)]);
    c.committed(&topic, 0, 6);
    assert!(
        c.committable().is_empty(),
        "nothing new since the last commit"
    );
    assert_eq!(c.revoke(&topic, 0), None, "6 is still in flight");
    c.assign(&topic, 0);
    let b2 = c.mark_started(&topic, 0, 6);
    assert!(
        !c.mark_done(&b),
        "the old assignment's straggler is ignored"
    );
    assert_eq!(c.committable(), vec![(topic.clone(), 0, 6)]);
    assert!(c.mark_done(&b2));
    assert_eq!(c.revoke(&topic, 0), Some(7));
}

#[tokio::test]
async fn the_layer_marks_done_only_on_success() {
    let handle = CommitHandle::new();
    let (svc, mut mock) = pair();
    let mut svc = mock::Spawn::new(CommitLayer::new(handle.clone()).layer(svc));
    let topic: Arc<str> = "orders".into();

    assert_ready_ok!(svc.poll_ready());
    let mut ok = tokio_test::task::spawn(svc.call(record(0)));
    assert_ready_ok!(svc.poll_ready());
    let mut failed = tokio_test::task::spawn(svc.call(record(1)));
    assert_ready_ok!(svc.poll_ready());
    let mut later = tokio_test::task::spawn(svc.call(record(2)));
    assert_eq!(handle.committable(), vec![(topic.clone(), 0, 0)]);

    let (_, r0) = mock.next_request().await.expect("0");
    let (_, r1) = mock.next_request().await.expect("1");
    let (_, r2) = mock.next_request().await.expect("2");
    r2.send_response(vec![]);
    assert_ready_ok!(later.poll());
    assert_pending!(ok.poll());
    assert_eq!(
        handle.committable(),
        vec![(topic.clone(), 0, 0)],
        "2 finished first"
    );
    r0.send_response(vec![]);
    assert_ready_ok!(ok.poll());
    r1.send_error(crate::PipelineError::retriable("down"));
    assert_ready_err!(failed.poll());
    assert_eq!(
        handle.committable(),
        vec![(topic, 0, 1)],
        "the failed record holds it back"
    );
}

#[tokio::test]
async fn readiness_is_the_inner_service_s() {
    let (svc, mut mock) = pair();
    let mut svc = mock::Spawn::new(CommitLayer::new(CommitHandle::new()).layer(svc));
    mock.allow(0);
    assert_pending!(svc.poll_ready());
    mock.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

#[derive(Debug, Clone)]
enum Op {
    /// Start the next offset of partition `p` (offsets increase with gaps).
    Start {
        p: i32,
        gap: i64,
    },
    /// Finish the `i`-th (mod len) record in flight, from any assignment.
    Done {
        i: usize,
    },
    /// Fail the `i`-th record in flight: it stays unfinished until a redelivery finishes.
    Fail {
        i: usize,
    },
    /// Redeliver a failed record of partition `p` (seek back).
    Redeliver {
        i: usize,
    },
    Revoke {
        p: i32,
    },
    Assign {
        p: i32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3i32, 1..3i64).prop_map(|(p, gap)| Op::Start { p, gap }),
        4 => any::<usize>().prop_map(|i| Op::Done { i }),
        1 => any::<usize>().prop_map(|i| Op::Fail { i }),
        1 => any::<usize>().prop_map(|i| Op::Redeliver { i }),
        1 => (0..3i32).prop_map(|p| Op::Revoke { p }),
        1 => (0..3i32).prop_map(|p| Op::Assign { p }),
    ]
}

proptest! {
    /// Under any order of starts, completions, failures, redeliveries, revokes and
    /// reassignments, no committed or committable offset passes an offset of the current
    /// assignment that was started and has not finished.
    #[test]
    fn never_commits_past_an_unfinished_offset(ops in proptest::collection::vec(op(), 1..200)) {
        let topic: Arc<str> = "t".into();
        let mut tracker = CommitTracker::new();
        let mut next = BTreeMap::<i32, i64>::new();
        // (ticket, assignment generation in the model)
        let mut in_flight: Vec<(Ticket, u64)> = Vec::new();
        let mut failed: Vec<(i32, i64)> = Vec::new();
        let mut generation = BTreeMap::<i32, u64>::new();
        // Started, unfinished offsets of the current assignment, per partition.
        let mut unfinished = BTreeMap::<i32, Vec<i64>>::new();

        for op in ops {
            match op {
                Op::Start { p, gap } => {
                    let o = next.entry(p).or_insert(0);
                    *o += gap;
                    let t = tracker.mark_started(&topic, p, *o);
                    in_flight.push((t, *generation.entry(p).or_insert(0)));
                    unfinished.entry(p).or_default().push(*o);
                }
                Op::Done { i } | Op::Fail { i } if !in_flight.is_empty() => {
                    let (t, g) = in_flight.swap_remove(i % in_flight.len());
                    let current = generation.get(&t.partition()).copied() == Some(g);
                    if matches!(op, Op::Done { .. }) {
                        let marked = tracker.mark_done(&t);
                        prop_assert_eq!(marked, current, "stale tickets are ignored");
                        if current {
                            let u = unfinished.entry(t.partition()).or_default();
                            u.retain(|&o| o != t.offset());
                        }
                    } else if current {
                        failed.push((t.partition(), t.offset()));
                    }
                }
                Op::Redeliver { i } if !failed.is_empty() => {
                    let (p, o) = failed.swap_remove(i % failed.len());
                    let t = tracker.mark_started(&topic, p, o);
                    in_flight.push((t, *generation.entry(p).or_insert(0)));
                    unfinished.entry(p).or_default().push(o);
                }
                Op::Revoke { p } => {
                    let last = tracker.revoke(&topic, p);
                    if let (Some(c), Some(u)) = (last, unfinished.get(&p)) {
                        prop_assert!(u.iter().all(|&o| c <= o), "revoke commit {} passes {:?}", c, u);
                    }
                    *generation.entry(p).or_insert(0) += 1;
                    unfinished.remove(&p);
                    failed.retain(|&(fp, _)| fp != p);
                }
                Op::Assign { p } => {
                    tracker.assign(&topic, p);
                    *generation.entry(p).or_insert(0) += 1;
                    unfinished.remove(&p);
                    failed.retain(|&(fp, _)| fp != p);
                }
                _ => {}
            }
            for (_, p, c) in tracker.committable() {
                let u = unfinished.get(&p).cloned().unwrap_or_default();
                prop_assert!(u.iter().all(|&o| c <= o), "commit {} passes unfinished {:?}", c, u);
                prop_assert!(c <= next.get(&p).copied().unwrap_or(0) + 1, "commit past anything started");
                tracker.committed(&topic, p, c);
            }
        }
    }
}

#[test]
fn a_failed_record_holds_the_commit_until_its_redelivery_finishes() {
    let mut t = OffsetTracker::new();
    t.mark_started(1);
    t.mark_started(2);
    t.mark_done(2);
    // 1 failed: not marked done.
    assert_eq!(t.committable(), Some(1));
    t.mark_started(1); // redelivered
    assert_eq!(t.committable(), Some(1));
    t.mark_done(1);
    assert_eq!(t.committable(), Some(3));
}

proptest! {
    /// The runner's counting tracker, under the same operations with a rewind before each
    /// redelivery (as the runner seeks back): it still never commits past an unfinished
    /// offset, and it counts as uncommitted exactly the offsets started since the last
    /// commit, less those at or after a rewind, until they are started again.
    #[test]
    fn the_counting_tracker_counts_what_a_crash_would_redeliver(
        ops in proptest::collection::vec(op(), 1..200)
    ) {
        let topic: Arc<str> = "t".into();
        let mut tracker = CommitTracker::counting();
        let mut next = BTreeMap::<i32, i64>::new();
        let mut in_flight: Vec<(Ticket, u64)> = Vec::new();
        let mut failed: Vec<(i32, i64)> = Vec::new();
        let mut generation = BTreeMap::<i32, u64>::new();
        let mut unfinished = BTreeMap::<i32, Vec<i64>>::new();
        // The model of the count: started since the last commit, per partition.
        let mut window = BTreeMap::<i32, Vec<i64>>::new();

        for op in ops {
            match op {
                Op::Start { p, gap } => {
                    let o = next.entry(p).or_insert(0);
                    *o += gap;
                    let t = tracker.mark_started(&topic, p, *o);
                    in_flight.push((t, *generation.entry(p).or_insert(0)));
                    unfinished.entry(p).or_default().push(*o);
                    window.entry(p).or_default().push(*o);
                }
                Op::Done { i } | Op::Fail { i } if !in_flight.is_empty() => {
                    let (t, g) = in_flight.swap_remove(i % in_flight.len());
                    let current = generation.get(&t.partition()).copied() == Some(g);
                    if matches!(op, Op::Done { .. }) {
                        prop_assert_eq!(tracker.mark_done(&t), current);
                        if current {
                            let u = unfinished.entry(t.partition()).or_default();
                            u.retain(|&o| o != t.offset());
                        }
                    } else if current {
                        failed.push((t.partition(), t.offset()));
                    }
                }
                Op::Redeliver { i } if !failed.is_empty() => {
                    let (p, o) = failed.swap_remove(i % failed.len());
                    tracker.rewind(&topic, p, o);
                    window.entry(p).or_default().retain(|&w| w < o);
                    let t = tracker.mark_started(&topic, p, o);
                    in_flight.push((t, *generation.entry(p).or_insert(0)));
                    unfinished.entry(p).or_default().push(o);
                    window.entry(p).or_default().push(o);
                }
                Op::Revoke { p } => {
                    tracker.revoke(&topic, p);
                    *generation.entry(p).or_insert(0) += 1;
                    unfinished.remove(&p);
                    window.remove(&p);
                    failed.retain(|&(fp, _)| fp != p);
                }
                Op::Assign { p } => {
                    tracker.assign(&topic, p);
                    *generation.entry(p).or_insert(0) += 1;
                    unfinished.remove(&p);
                    window.remove(&p);
                    failed.retain(|&(fp, _)| fp != p);
                }
                _ => {}
            }
            for (_, p, c) in tracker.committable() {
                let u = unfinished.get(&p).cloned().unwrap_or_default();
                prop_assert!(u.iter().all(|&o| c <= o), "commit {} passes unfinished {:?}", c, u);
                tracker.committed(&topic, p, c);
                window.entry(p).or_default().retain(|&w| w >= c);
                prop_assert_eq!(tracker.committed_offset("t", p), Some(c));
            }
            let expected: usize = window.values().map(Vec::len).sum();
            prop_assert_eq!(tracker.uncommitted(), expected);
        }
    }
}

#[test]
fn the_commit_layer_s_tracker_keeps_no_window() {
    let topic: Arc<str> = "t".into();
    let mut tracker = CommitTracker::new();
    for o in 0..1000 {
        let t = tracker.mark_started(&topic, 0, o);
        tracker.mark_done(&t);
    }
    assert_eq!(
        tracker.uncommitted(),
        0,
        "never reported committed: nothing kept"
    );
    assert_eq!(tracker.committable(), vec![(topic, 0, 1000)]);
}

proptest! {
    /// The tracker agrees with the plainest model of it, a set of unfinished offsets and
    /// the highest started, under starts (in order, and again after finishing: a
    /// redelivery) and finishes in any order.
    #[test]
    fn the_tracker_agrees_with_a_set_of_unfinished_offsets(
        ops in proptest::collection::vec((any::<bool>(), 0i64..40), 1..300)
    ) {
        let mut t = OffsetTracker::new();
        let mut unfinished = std::collections::BTreeSet::new();
        let mut highest: Option<i64> = None;
        for (start, offset) in ops {
            if start {
                t.mark_started(offset);
                unfinished.insert(offset);
                highest = Some(highest.map_or(offset, |h| h.max(offset)));
            } else {
                prop_assert_eq!(t.mark_done(offset), unfinished.remove(&offset));
            }
            let expected = unfinished.first().copied().or(highest.map(|h| h + 1));
            prop_assert_eq!(t.committable(), expected);
            prop_assert_eq!(t.unfinished(), unfinished.len());
        }
        // Equal to a tracker built from the model alone: what was finished and flagged is
        // no part of the state.
        let mut fresh = OffsetTracker::new();
        if let Some(h) = highest.filter(|h| !unfinished.contains(h)) {
            fresh.mark_started(h);
            fresh.mark_done(h);
        }
        for &o in &unfinished {
            fresh.mark_started(o);
        }
        prop_assert_eq!(&t, &fresh);
    }
}
