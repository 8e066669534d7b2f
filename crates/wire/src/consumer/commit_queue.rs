//! The order of a consumer's commits (see [`CommitQueue`]). A leaf: the consumer's
//! shared state holds the queue, the offset calls take their turns in it; the
//! coordinator knows nothing of it.

use tokio::sync::oneshot;

use crate::sync::lock;

/// The order of one consumer's commits: each one goes to the coordinator only once the
/// commit asked for before it has its answer, so the broker applies them in the order
/// they were asked for, and an older commit never lands after a newer one (the committed
/// offset of a partition never goes back). Java gets the same from sending every commit
/// on one connection and never retrying `commitAsync`.
///
/// A place in the queue is taken synchronously, when the commit is asked for (not when
/// its task first runs), and given up when its [`CommitTurn`] is dropped, answered or
/// cancelled.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    /// Closes when the last commit asked for has its answer.
    last: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl CommitQueue {
    /// A place at the back of the queue.
    pub(crate) fn join(&self) -> CommitTurn {
        let (done, next) = oneshot::channel();
        let mut last = lock(&self.last);
        CommitTurn {
            ahead: last.replace(next),
            _done: done,
        }
    }
}

/// A commit's place in its consumer's [`CommitQueue`].
#[derive(Debug)]
pub(crate) struct CommitTurn {
    /// The commit before this one; closed once it has its answer.
    ahead: Option<oneshot::Receiver<()>>,
    /// Dropped with the turn: lets the next commit go.
    _done: oneshot::Sender<()>,
}

impl CommitTurn {
    /// Waits until the commit ahead has its answer.
    pub(crate) async fn wait(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            let _ = ahead.await;
        }
    }
}
