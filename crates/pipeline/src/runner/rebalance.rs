//! The rebalance listener: on revoke, stop admitting, drain, commit, release; on lost,
//! release without committing. In exactly-once mode the run loop owns the transaction,
//! so the listener asks it to end the transaction (commit on revoke, abort on lost) and
//! waits for its answer before the partitions are released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sluice_wire::consumer::{
    OffsetAndMetadata, RebalanceContext, RebalanceListener, TopicPartition,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::state::Shared;
use super::transaction::Request;

/// Drains and commits revoked partitions for the runner.
#[derive(Debug)]
pub(crate) struct Rebalance {
    pub(crate) shared: Arc<Shared>,
    /// The longest a revoke waits for its partitions' records in flight.
    pub(crate) drain_timeout: Duration,
    /// Exactly-once mode: the run loop, which ends the transaction on request. Closed
    /// once the run loop has stopped.
    pub(crate) transactions: Option<mpsc::UnboundedSender<Request>>,
    /// The longest to wait for the run loop's answer (its drain, then a commit or an
    /// abort).
    pub(crate) transaction_wait: Duration,
}

impl Rebalance {
    /// Exactly-once: asks the run loop to end the transaction and waits for it. The run
    /// loop never waits for the consumer's group task, which runs this listener, so this
    /// cannot deadlock; a run loop that has stopped answers at once (or not at all, when
    /// the channel is closed).
    async fn end_transaction(
        &self,
        requests: &mpsc::UnboundedSender<Request>,
        make: fn(oneshot::Sender<()>) -> Request,
    ) {
        let (reply, answered) = oneshot::channel();
        if requests.send(make(reply)).is_err() {
            return;
        }
        if tokio::time::timeout(self.transaction_wait, answered)
            .await
            .is_err()
        {
            tracing::warn!(wait = ?self.transaction_wait,
                "rebalance: the transaction did not end in time; releasing the partitions \
                 anyway (their next owner waits for the transaction's outcome)");
        }
    }

    async fn drain(&self, partitions: &[(Arc<str>, i32)]) {
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            // Register for the next wake-up before checking, so none is missed.
            let progress = self.shared.progress.notified();
            let running: usize = partitions
                .iter()
                .map(|(t, p)| self.shared.running(t, *p))
                .sum();
            if running == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                tracing::warn!(
                    running,
                    timeout = ?self.drain_timeout,
                    "revoke: records still in flight after the drain timeout; their offsets are \
                     not committed and the next owner processes them again"
                );
                return;
            }
        }
    }
}

fn keys(partitions: &[TopicPartition]) -> Vec<(Arc<str>, i32)> {
    partitions
        .iter()
        .map(|tp| (Arc::from(tp.topic.as_str()), tp.partition))
        .collect()
}

impl RebalanceListener for Rebalance {
    fn on_partitions_assigned<'a>(
        &'a self,
        _ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            crate::metrics::count_rebalance(&self.shared.group);
            for (topic, partition) in keys(partitions) {
                tracing::debug!(%topic, partition, "assigned");
                self.shared.assign(&topic, partition);
            }
        })
    }

    fn on_partitions_revoked<'a>(
        &'a self,
        ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let keys = keys(partitions);
            for (t, p) in &keys {
                self.shared.stop_admitting(t, *p);
            }
            if let Some(requests) = &self.transactions {
                // The transaction holds records of the revoked partitions: it commits
                // (or aborts) before they go, their offsets inside it.
                self.end_transaction(requests, Request::Revoke).await;
                for (t, p) in &keys {
                    let _ = self.shared.remove(t, *p);
                }
                return;
            }
            self.drain(&keys).await;
            let mut offsets = BTreeMap::new();
            for (t, p) in &keys {
                if let Some(offset) = self.shared.remove(t, *p) {
                    offsets.insert(
                        TopicPartition::new(t.as_ref(), *p),
                        OffsetAndMetadata::new(offset),
                    );
                }
            }
            if offsets.is_empty() {
                return;
            }
            match ctx.commit(&offsets).await {
                Ok(()) => {
                    self.shared.stats.add_commit();
                    tracing::debug!(?offsets, "revoke: committed");
                }
                Err(e) => tracing::warn!(error = %e, "revoke: commit failed; the next owner \
                                                      processes the uncommitted records again"),
            }
        })
    }

    fn on_partitions_lost<'a>(
        &'a self,
        _ctx: &'a RebalanceContext,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let keys = keys(partitions);
            if let Some(requests) = &self.transactions {
                // Another member may own them already: the transaction must not commit.
                for (t, p) in &keys {
                    self.shared.stop_admitting(t, *p);
                }
                self.end_transaction(requests, Request::Lost).await;
            }
            for (t, p) in keys {
                tracing::warn!(topic = %t, partition = p, "lost: dropped without committing");
                let _ = self.shared.remove(&t, p);
            }
        })
    }
}
