//! At-least-once commits: the consumer commits the tracker's committable offsets, after
//! the outputs below them were acknowledged.

use std::sync::Arc;

use sluice_wire::consumer::{Consumer, PendingCommit};

use super::commit_map;
use super::state::Shared;

/// Offsets to commit, per partition.
type Offsets = Vec<(Arc<str>, i32, i64)>;

/// The consumer's commit in flight, if any: one at a time, so they land in order.
#[derive(Debug, Default)]
pub(super) struct AtLeastOnce {
    /// The offsets being committed and the commit. `commit_async` queues commits in the
    /// order they are made; the run loop polls this one directly (no task of its own, no
    /// channel) and learns the answer on its next turn.
    in_flight: Option<(Offsets, PendingCommit)>,
}

impl AtLeastOnce {
    /// Starts a commit of the committable offsets, unless one is running or there is
    /// nothing new to commit.
    pub(super) fn start_commit(&mut self, consumer: &Consumer, shared: &Shared) {
        if self.in_flight.is_some() {
            return;
        }
        let offsets = shared.commits.committable();
        if offsets.is_empty() {
            return;
        }
        let pending = consumer.commit_async(commit_map(&offsets));
        self.in_flight = Some((offsets, pending));
    }

    /// Resolves when the commit in flight is answered (never when none is), with its
    /// offsets. Cancel-safe: the commit stays in flight until it resolves here.
    pub(super) async fn answered(&mut self) -> (Offsets, sluice_wire::Result<()>) {
        let Some((_, pending)) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let result = pending.await;
        let offsets = self.in_flight.take().map(|(o, _)| o).unwrap_or_default();
        (offsets, result)
    }

    /// The commit's answer: on success the offsets count as committed; a failure is
    /// retried by the next interval's commit, which carries newer offsets.
    pub(super) fn on_answer(
        &mut self,
        offsets: Offsets,
        result: sluice_wire::Result<()>,
        shared: &Shared,
    ) {
        match result {
            Ok(()) => {
                shared.stats.add_commit();
                for (t, p, o) in offsets {
                    shared.committed(&t, p, o);
                }
            }
            Err(e) => tracing::warn!(error = %e, "commit failed; retrying on the next tick"),
        }
    }

    /// Shutdown: commits what finished (the records in flight have been drained), and
    /// waits for the answer.
    pub(super) async fn commit_final(
        &mut self,
        consumer: &Consumer,
        shared: &Shared,
    ) -> sluice_wire::Result<()> {
        let offsets = shared.commits.committable();
        if offsets.is_empty() {
            return Ok(());
        }
        consumer.commit(&commit_map(&offsets)).await?;
        shared.stats.add_commit();
        for (t, p, o) in offsets {
            shared.committed(&t, p, o);
        }
        Ok(())
    }
}
