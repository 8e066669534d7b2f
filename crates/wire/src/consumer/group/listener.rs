//! The rebalance listener: async callbacks the group task awaits when partitions are
//! assigned, revoked (before they move: the place to commit what was processed) and lost
//! (they may already belong to someone else: committing would overwrite their progress).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::consumer::state::Shared;
use crate::consumer::{offsets, OffsetAndMetadata, TopicPartition};
use crate::error::Result;

/// Callbacks around rebalances. Every method has a default that does nothing.
///
/// The group task awaits each callback before it goes on (a revoke completes before the
/// next JoinGroup); heartbeats continue meanwhile, so a callback may take longer than
/// the session timeout, but the rest of the group waits for it (up to
/// `max.poll.interval.ms`, the rebalance timeout).
pub trait RebalanceListener: Send + Sync + 'static {
    /// `partitions` now belong to this member; their positions are resolved after this
    /// returns (a [`seek`](RebalanceContext::seek) here wins over the committed offset).
    /// With cooperative-sticky this lists only the newly added partitions.
    fn on_partitions_assigned<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }

    /// `partitions` are about to move; the member still owns them, so this is where to
    /// [`commit`](RebalanceContext::commit) what was processed.
    fn on_partitions_revoked<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }

    /// `partitions` were lost (session expired, fenced, generation gone): another member
    /// may already own them. Do not commit.
    fn on_partitions_lost<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }
}

/// What a [`RebalanceListener`] may do with the consumer during a callback.
#[derive(Debug, Clone)]
pub struct RebalanceContext {
    pub(crate) shared: Arc<Shared>,
}

impl RebalanceContext {
    /// Commits `offsets` and waits for the coordinator's answer.
    pub async fn commit(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        offsets::commit(&self.shared, offsets).await
    }

    /// The position (next offset to hand out) of `tp`, if assigned and known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared
            .lock()
            .assignment
            .get(tp)
            .and_then(|p| p.position)
    }

    /// Sets the position of an assigned partition.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) {
        self.shared.seek_to(tp, offset);
    }
}
