use tower::Layer;

use super::{Commit, CommitHandle};

/// Applies [`Commit`] to a service, marking records in `handle`'s tracker.
#[derive(Debug, Clone)]
pub struct CommitLayer {
    handle: CommitHandle,
}

impl CommitLayer {
    /// Tracks records in `handle` (keep a clone to read the committable offsets).
    pub fn new(handle: CommitHandle) -> Self {
        CommitLayer { handle }
    }
}

impl<S> Layer<S> for CommitLayer {
    type Service = Commit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Commit {
            inner,
            handle: self.handle.clone(),
        }
    }
}
