//! Is a consumer group keeping up? Burrow's rules over a sliding window of samples.
//!
//! A lag number alone does not say whether a group is healthy: 10,000 records behind
//! and draining fast is fine, 50 behind and not moving is not. Burrow (LinkedIn) judges
//! a partition by how its committed offset and its lag moved over the last few commits.
//! [`LagEvaluator`] does the same in-process, fed one [`LagSample`] per partition each
//! time the caller looks (`sluice lag --watch`, an exporter's scrape), and keeps the
//! last `window` of them. No I/O: the caller brings the numbers.
//!
//! The rules, checked in this order over a partition's window:
//!
//! 1. Lag 0 in any sample (or now): [`LagStatus::Ok`], whatever the offsets did. A
//!    caught-up consumer that commits nothing new is idle, not stuck.
//! 2. The committed offset went backwards between two samples: [`LagStatus::Rewind`]
//!    (someone reset the group, or a consumer committed an old position).
//! 3. A window not yet full: [`LagStatus::Ok`], with [`PartitionStatus::complete`]
//!    false. Two quick samples without a commit are not evidence of a stop.
//! 4. The committed offset is the same in every sample while lag is above 0:
//!    [`LagStatus::Stop`], an error (Burrow's STOP and STALL: from outside, a consumer
//!    that stopped committing and one that commits the same offset look the same).
//! 5. The offset moved, but the lag did not shrink in any interval:
//!    [`LagStatus::Stall`], an error (the consumer is alive and never catches up).
//! 6. The offset moved, the lag shrank somewhere but grew over the window:
//!    [`LagStatus::Warning`] (falling behind).
//! 7. Otherwise [`LagStatus::Ok`].
//!
//! A group's status is its worst partition's.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::types::TopicPartition;

/// One look at a partition: when, where the group is, where the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    /// When the sample was taken, in ms since the Unix epoch (evidence only: the rules
    /// compare samples by order).
    pub at_ms: i64,
    /// The group's position: its committed offset, or the reset point where nothing is
    /// committed.
    pub offset: i64,
    /// The log end offset.
    pub end: i64,
}

impl LagSample {
    /// `end - offset`, never negative.
    pub fn lag(&self) -> i64 {
        (self.end - self.offset).max(0)
    }
}

/// A partition's (or a group's) health, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LagStatus {
    /// Keeping up, caught up, or not enough evidence yet.
    Ok,
    /// The lag grew over the window although the consumer commits.
    Warning,
    /// The consumer commits, but the lag never shrinks.
    Stall,
    /// The committed offset does not move while there is lag.
    Stop,
    /// The committed offset went backwards.
    Rewind,
}

impl LagStatus {
    /// True for the statuses Burrow counts as a group error (STALL, STOP, REWIND).
    pub fn is_error(self) -> bool {
        self >= LagStatus::Stall
    }

    /// The name as printed and exported: `OK`, `WARNING`, `STALL`, `STOP`, `REWIND`.
    pub fn as_str(self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Warning => "WARNING",
            LagStatus::Stall => "STALL",
            LagStatus::Stop => "STOP",
            LagStatus::Rewind => "REWIND",
        }
    }

    /// A number for metrics, rising with severity: 0 OK, 1 WARNING, 2 STALL, 3 STOP,
    /// 4 REWIND.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for LagStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The status of `window` (oldest first) for a window that holds `capacity` samples.
pub fn evaluate(window: &[LagSample], capacity: usize) -> LagStatus {
    let Some(last) = window.last() else {
        return LagStatus::Ok;
    };
    if last.lag() == 0 || window.iter().any(|s| s.lag() == 0) {
        return LagStatus::Ok;
    }
    let intervals = || window.windows(2).map(|w| (w[0], w[1]));
    if intervals().any(|(a, b)| b.offset < a.offset) {
        return LagStatus::Rewind;
    }
    if window.len() < capacity.max(2) {
        return LagStatus::Ok;
    }
    if intervals().all(|(a, b)| b.offset == a.offset) {
        return LagStatus::Stop;
    }
    if intervals().all(|(a, b)| b.lag() >= a.lag()) {
        return LagStatus::Stall;
    }
    if last.lag() > window[0].lag() {
        return LagStatus::Warning;
    }
    LagStatus::Ok
}

/// One partition's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStatus {
    /// The partition.
    pub partition: TopicPartition,
    /// The verdict.
    pub status: LagStatus,
    /// True when the window was full (else only OK, REWIND can be concluded).
    pub complete: bool,
    /// The samples it was judged on, oldest first.
    pub window: Vec<LagSample>,
}

impl PartitionStatus {
    /// The lag of the newest sample.
    pub fn lag(&self) -> i64 {
        self.window.last().map_or(0, LagSample::lag)
    }

    /// How far behind in time, estimated as the newest lag over the partition's
    /// produce rate across the window (records appended per second between the oldest
    /// and the newest sample). `Some(0.0)` at no lag; `None` while the window cannot
    /// tell: one sample, or no record appended across it with lag left.
    pub fn lag_seconds(&self) -> Option<f64> {
        let (first, last) = (self.window.first()?, self.window.last()?);
        if last.lag() == 0 {
            return Some(0.0);
        }
        let appended = last.end - first.end;
        let elapsed_ms = last.at_ms - first.at_ms;
        if appended <= 0 || elapsed_ms <= 0 {
            return None;
        }
        let rate = appended as f64 * 1000.0 / elapsed_ms as f64;
        Some(last.lag() as f64 / rate)
    }
}

/// A group's verdict: its worst partition's, with every partition's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The worst partition status ([`LagStatus::Ok`] for a group with no partitions).
    pub status: LagStatus,
    /// Per partition, sorted by topic and partition.
    pub partitions: Vec<PartitionStatus>,
}

impl GroupStatus {
    /// The partitions whose status is `status`'s (the ones that make the verdict).
    pub fn worst(&self) -> impl Iterator<Item = &PartitionStatus> {
        self.partitions.iter().filter(|p| p.status == self.status)
    }
}

/// Sliding windows of samples per partition and Burrow's rules over them (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct LagEvaluator {
    capacity: usize,
    windows: BTreeMap<TopicPartition, VecDeque<LagSample>>,
}

impl LagEvaluator {
    /// Keeps the last `window` samples per partition (at least 2: one interval).
    /// Burrow's default is 10.
    pub fn new(window: usize) -> Self {
        LagEvaluator {
            capacity: window.max(2),
            windows: BTreeMap::new(),
        }
    }

    /// How many samples a full window holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a sample of `partition`, dropping its oldest beyond the window.
    pub fn record(&mut self, partition: TopicPartition, sample: LagSample) {
        let window = self.windows.entry(partition).or_default();
        if window.len() == self.capacity {
            window.pop_front();
        }
        window.push_back(sample);
    }

    /// Forgets a partition (revoked from the group's topics, topic deleted).
    pub fn forget(&mut self, partition: &TopicPartition) {
        self.windows.remove(partition);
    }

    /// The verdict on one partition, if it was ever sampled.
    pub fn partition_status(&self, partition: &TopicPartition) -> Option<PartitionStatus> {
        let window = self.windows.get(partition)?;
        Some(self.judge(partition, window))
    }

    /// The verdict on every partition sampled, and the group's (the worst).
    pub fn status(&self) -> GroupStatus {
        let partitions: Vec<PartitionStatus> = self
            .windows
            .iter()
            .map(|(tp, window)| self.judge(tp, window))
            .collect();
        GroupStatus {
            status: partitions
                .iter()
                .map(|p| p.status)
                .max()
                .unwrap_or(LagStatus::Ok),
            partitions,
        }
    }

    fn judge(&self, partition: &TopicPartition, window: &VecDeque<LagSample>) -> PartitionStatus {
        let window: Vec<LagSample> = window.iter().copied().collect();
        PartitionStatus {
            partition: partition.clone(),
            status: evaluate(&window, self.capacity),
            complete: window.len() >= self.capacity,
            window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples one second apart from (offset, end) pairs.
    fn samples(points: &[(i64, i64)]) -> Vec<LagSample> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(offset, end))| LagSample {
                at_ms: 1_000 * i as i64,
                offset,
                end,
            })
            .collect()
    }

    fn status(points: &[(i64, i64)]) -> LagStatus {
        evaluate(&samples(points), points.len())
    }

    fn judged(points: &[(i64, i64)]) -> PartitionStatus {
        PartitionStatus {
            partition: TopicPartition::new("t", 0),
            status: status(points),
            complete: true,
            window: samples(points),
        }
    }

    #[test]
    fn lag_seconds_is_the_lag_over_the_produce_rate_across_the_window() {
        // 300 appended over 3 s: 100 records/s; 250 behind at the end: 2.5 s.
        let p = judged(&[(0, 100), (50, 200), (100, 300), (150, 400)]);
        assert_eq!(p.lag_seconds(), Some(2.5));
        // Caught up: 0 whatever the rate.
        assert_eq!(judged(&[(5, 5), (5, 5)]).lag_seconds(), Some(0.0));
        // Behind with nothing appended across the window, or one sample: no estimate.
        assert_eq!(judged(&[(4, 10), (4, 10), (5, 10)]).lag_seconds(), None);
        assert_eq!(judged(&[(4, 10)]).lag_seconds(), None);
    }

    #[test]
    fn draining_lag_is_ok() {
        assert_eq!(
            status(&[(0, 100), (20, 110), (50, 120), (90, 130)]),
            LagStatus::Ok
        );
    }

    #[test]
    fn lag_zero_anywhere_is_ok_whatever_the_offsets_do() {
        // Not moving, but caught up at the end.
        assert_eq!(status(&[(5, 5), (5, 5), (5, 5)]), LagStatus::Ok);
        // Caught up once in the window, then behind and stuck.
        assert_eq!(status(&[(5, 5), (5, 9), (5, 12)]), LagStatus::Ok);
        // Even an offset going back is fine while nothing is left to read.
        assert_eq!(status(&[(9, 9), (3, 9), (9, 9)]), LagStatus::Ok);
        // Committed beyond the end (log truncated under it): lag 0, not negative.
        assert_eq!(status(&[(12, 10), (12, 10)]), LagStatus::Ok);
    }

    #[test]
    fn an_offset_going_back_is_rewind() {
        assert_eq!(status(&[(10, 50), (20, 50), (5, 50)]), LagStatus::Rewind);
    }

    #[test]
    fn rewind_shows_before_the_window_is_full() {
        assert_eq!(
            evaluate(&samples(&[(10, 50), (4, 50)]), 10),
            LagStatus::Rewind
        );
    }

    #[test]
    fn an_offset_that_does_not_move_with_lag_is_stop() {
        assert_eq!(status(&[(3, 10), (3, 10), (3, 10)]), LagStatus::Stop);
        // Producers keep writing, the group stays put.
        assert_eq!(status(&[(3, 10), (3, 15), (3, 30)]), LagStatus::Stop);
        assert!(LagStatus::Stop.is_error());
    }

    #[test]
    fn moving_without_ever_shrinking_the_lag_is_stall() {
        // Commits advance exactly as fast as records arrive: lag flat.
        assert_eq!(status(&[(0, 10), (5, 15), (10, 20)]), LagStatus::Stall);
        // Commits advance, lag grows every interval.
        assert_eq!(status(&[(0, 10), (5, 20), (10, 40)]), LagStatus::Stall);
        assert!(LagStatus::Stall.is_error());
    }

    #[test]
    fn lag_growing_over_the_window_while_sometimes_shrinking_is_warning() {
        assert_eq!(
            status(&[(0, 10), (8, 14), (12, 30), (20, 35)]),
            LagStatus::Warning
        );
        assert!(!LagStatus::Warning.is_error());
    }

    #[test]
    fn a_window_not_yet_full_is_ok_and_incomplete() {
        let mut e = LagEvaluator::new(3);
        let tp = TopicPartition::new("t", 0);
        for s in samples(&[(3, 10), (3, 10)]) {
            e.record(tp.clone(), s);
        }
        let p = e.partition_status(&tp).unwrap();
        assert_eq!((p.status, p.complete), (LagStatus::Ok, false));
        e.record(
            tp.clone(),
            LagSample {
                at_ms: 3_000,
                offset: 3,
                end: 10,
            },
        );
        let p = e.partition_status(&tp).unwrap();
        assert_eq!((p.status, p.complete), (LagStatus::Stop, true));
        assert_eq!(p.window.len(), 3);
        assert_eq!(p.lag(), 7);
    }

    #[test]
    fn the_window_slides() {
        let mut e = LagEvaluator::new(2);
        let tp = TopicPartition::new("t", 0);
        // Stopped, then moving again: the old samples fall out of the window.
        for s in samples(&[(3, 10), (3, 10), (8, 10), (10, 10)]) {
            e.record(tp.clone(), s);
        }
        let p = e.partition_status(&tp).unwrap();
        assert_eq!(p.status, LagStatus::Ok);
        assert_eq!(
            p.window.iter().map(|s| s.offset).collect::<Vec<_>>(),
            [8, 10]
        );
    }

    #[test]
    fn the_group_takes_its_worst_partition() {
        let mut e = LagEvaluator::new(2);
        let (a, b, c) = (
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1),
            TopicPartition::new("u", 0),
        );
        for (tp, points) in [
            (&a, [(0, 10), (10, 10)]),
            (&b, [(3, 10), (3, 10)]),
            (&c, [(0, 10), (5, 15)]),
        ] {
            for s in samples(&points) {
                e.record(tp.clone(), s);
            }
        }
        let g = e.status();
        assert_eq!(g.status, LagStatus::Stop);
        assert_eq!(
            g.partitions.iter().map(|p| p.status).collect::<Vec<_>>(),
            [LagStatus::Ok, LagStatus::Stop, LagStatus::Stall]
        );
        assert_eq!(g.worst().map(|p| &p.partition).collect::<Vec<_>>(), [&b]);
        e.forget(&b);
        assert_eq!(e.status().status, LagStatus::Stall);
        assert_eq!(LagEvaluator::new(3).status().status, LagStatus::Ok);
    }
}
