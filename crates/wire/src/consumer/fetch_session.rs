//! Incremental fetch sessions (KIP-227), one per broker, as Java's
//! `FetchSessionHandler`: the first fetch is full and asks the broker for a session; later
//! fetches name only partitions that are new or whose fetch offset or current leader
//! epoch (KIP-320) changed, and list the
//! partitions to drop as forgotten. The broker answers with the session's partitions that
//! have news. Any session error starts over with a full fetch.

use std::collections::BTreeMap;

use super::TopicPartition;

/// Where to fetch a partition from: the offset, and the leader epoch the consumer knows
/// for the partition (sent as `current_leader_epoch`, -1 when unknown), so a broker
/// with a newer epoch answers FENCED_LEADER_EPOCH and one with an older epoch
/// UNKNOWN_LEADER_EPOCH instead of serving a stale view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchAt {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
}

/// What to put in the next Fetch request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FetchPlan {
    pub(crate) session_id: i32,
    pub(crate) epoch: i32,
    pub(crate) send: Vec<(TopicPartition, FetchAt)>,
    pub(crate) forget: Vec<TopicPartition>,
}

#[derive(Debug, Default)]
pub(crate) struct FetchSession {
    /// 0: no session.
    id: i32,
    /// The epoch of the next request; 0 asks for a new session.
    epoch: i32,
    /// The partitions, fetch offsets and leader epochs the broker's session holds.
    partitions: BTreeMap<TopicPartition, FetchAt>,
    /// What the request in flight, once answered, makes the session hold.
    pending: Option<BTreeMap<TopicPartition, FetchAt>>,
    /// False when the broker's Fetch version predates sessions (< 7).
    pub(crate) supported: bool,
}

impl FetchSession {
    pub(crate) fn new(supported: bool) -> Self {
        FetchSession {
            supported,
            ..FetchSession::default()
        }
    }

    pub(crate) fn plan(&mut self, wanted: &BTreeMap<TopicPartition, FetchAt>) -> FetchPlan {
        self.pending = Some(wanted.clone());
        if !self.supported {
            return FetchPlan {
                session_id: 0,
                epoch: -1,
                send: wanted.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
                forget: Vec::new(),
            };
        }
        if self.id == 0 {
            return FetchPlan {
                session_id: 0,
                epoch: 0,
                send: wanted.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
                forget: Vec::new(),
            };
        }
        FetchPlan {
            session_id: self.id,
            epoch: self.epoch,
            send: wanted
                .iter()
                .filter(|(tp, o)| self.partitions.get(*tp) != Some(*o))
                .map(|(tp, o)| (tp.clone(), *o))
                .collect(),
            forget: self
                .partitions
                .keys()
                .filter(|tp| !wanted.contains_key(*tp))
                .cloned()
                .collect(),
        }
    }

    /// The broker answered the planned request without a top-level error, with
    /// `session_id` (0 when it keeps no session).
    pub(crate) fn answered(&mut self, session_id: i32) {
        let wanted = self.pending.take().unwrap_or_default();
        if !self.supported {
            return;
        }
        if self.id == 0 {
            if session_id != 0 {
                self.id = session_id;
                self.epoch = 1;
                self.partitions = wanted;
            }
            return;
        }
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
        self.partitions = wanted;
    }

    /// The session is gone (an error, a lost connection): the next fetch is full.
    pub(crate) fn reset(&mut self) {
        self.id = 0;
        self.epoch = 0;
        self.partitions.clear();
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(items: &[(i32, i64)]) -> BTreeMap<TopicPartition, FetchAt> {
        items
            .iter()
            .map(|&(p, offset)| {
                let at = FetchAt {
                    offset,
                    leader_epoch: 3,
                };
                (TopicPartition::new("t", p), at)
            })
            .collect()
    }

    #[test]
    fn a_new_leader_epoch_resends_the_partition() {
        let mut s = FetchSession::new(true);
        s.plan(&wanted(&[(0, 10), (1, 20)]));
        s.answered(42);
        let mut next = wanted(&[(0, 10), (1, 20)]);
        if let Some(at) = next.get_mut(&TopicPartition::new("t", 1)) {
            at.leader_epoch = 4;
        }
        let p = s.plan(&next);
        assert_eq!(
            p.send,
            [(
                TopicPartition::new("t", 1),
                FetchAt {
                    offset: 20,
                    leader_epoch: 4
                }
            )]
        );
    }

    #[test]
    fn full_then_incremental_then_reset() {
        let mut s = FetchSession::new(true);
        let p = s.plan(&wanted(&[(0, 10), (1, 20)]));
        assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 2));
        s.answered(42);
        // Partition 0 moved, 1 did not, 2 is new.
        let p = s.plan(&wanted(&[(0, 15), (1, 20), (2, 0)]));
        assert_eq!((p.session_id, p.epoch), (42, 1));
        let sent: Vec<i32> = p.send.iter().map(|(tp, _)| tp.partition).collect();
        assert_eq!(sent, [0, 2]);
        assert!(p.forget.is_empty());
        s.answered(42);
        // Partition 1 paused: forgotten.
        let p = s.plan(&wanted(&[(0, 15), (2, 0)]));
        assert_eq!(p.epoch, 2);
        assert!(p.send.is_empty());
        assert_eq!(p.forget, [TopicPartition::new("t", 1)]);
        s.reset();
        let p = s.plan(&wanted(&[(0, 15)]));
        assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 1));
    }

    #[test]
    fn without_support_every_fetch_is_full_and_sessionless() {
        let mut s = FetchSession::new(false);
        let p = s.plan(&wanted(&[(0, 1)]));
        assert_eq!((p.session_id, p.epoch), (0, -1));
        s.answered(0);
        let p = s.plan(&wanted(&[(0, 1)]));
        assert_eq!(p.send.len(), 1);
    }
}
