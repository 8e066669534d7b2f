use crate::sync;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CommitTracker, Ticket};

/// A shared [`CommitTracker`]: the commit layer marks records through it, the runner
/// reads the offsets to commit on its interval and on revoke. Clones share the tracker.
#[derive(Debug, Clone, Default)]
pub struct CommitHandle {
    tracker: Arc<Mutex<CommitTracker>>,
}

impl CommitHandle {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`CommitTracker::counting`].
    pub(crate) fn counting() -> Self {
        CommitHandle {
            tracker: Arc::new(Mutex::new(CommitTracker::counting())),
        }
    }

    /// Runs `f` with the tracker locked (keep it short: every record takes this lock twice).
    pub fn with<T>(&self, f: impl FnOnce(&mut CommitTracker) -> T) -> T {
        f(&mut self.lock())
    }

    /// See [`CommitTracker::assign`].
    pub fn assign(&self, topic: &Arc<str>, partition: i32) {
        self.lock().assign(topic, partition);
    }

    /// See [`CommitTracker::revoke`].
    pub fn revoke(&self, topic: &Arc<str>, partition: i32) -> Option<i64> {
        self.lock().revoke(topic, partition)
    }

    /// See [`CommitTracker::committable`].
    pub fn committable(&self) -> Vec<(Arc<str>, i32, i64)> {
        self.lock().committable()
    }

    /// See [`CommitTracker::committed`].
    pub fn committed(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.lock().committed(topic, partition, offset);
    }

    /// See [`CommitTracker::committed_offset`].
    pub(crate) fn committed_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock().committed_offset(topic, partition)
    }

    /// See [`CommitTracker::rewind`].
    pub(crate) fn rewind(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.lock().rewind(topic, partition, offset);
    }

    /// See [`CommitTracker::restart`].
    pub(crate) fn restart(&self, topic: &Arc<str>, partition: i32) {
        self.lock().restart(topic, partition);
    }

    /// See [`CommitTracker::uncommitted`].
    pub(crate) fn uncommitted(&self) -> usize {
        self.lock().uncommitted()
    }

    pub(crate) fn start(&self, topic: &Arc<str>, partition: i32, offset: i64) -> Ticket {
        self.lock().mark_started(topic, partition, offset)
    }

    pub(crate) fn done(&self, ticket: &Ticket) {
        self.lock().mark_done(ticket);
    }

    fn lock(&self) -> MutexGuard<'_, CommitTracker> {
        // Every tracker method leaves it consistent before it could panic.
        sync::lock(&self.tracker)
    }
}
