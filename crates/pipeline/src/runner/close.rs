//! Closing: stop fetching, drain (bounded), commit or end the transaction, leave the
//! group, flush the producer.

use std::time::Duration;

use tower::Service;

use super::event::Event;
use super::run_loop::Runner;
use super::strategy::{CommitStrategy, Ctx};
use super::transaction::Ending;
use super::RunError;
use crate::{ConsumedRecord, PipelineError, Processed};

impl<S> Runner<S>
where
    S: Service<ConsumedRecord, Response = Processed> + Send + 'static,
    S::Error: Into<PipelineError> + 'static,
    S::Future: Send + 'static,
{
    /// Stops fetching, drains (bounded), commits (exactly-once: ends the transaction,
    /// committing it only if the run loop stopped cleanly), leaves the group, flushes the
    /// producer.
    pub(super) async fn close(
        mut self,
        drain_timeout: Duration,
        clean: bool,
    ) -> Result<(), RunError> {
        self.consumer.pause(&self.consumer.assignment());
        let mut result = match &self.strategy {
            CommitStrategy::AtLeastOnce(_) => self.drain_and_commit(drain_timeout).await,
            CommitStrategy::ExactlyOnce(_) => self.close_transaction(clean).await,
        };
        // Revokes through the listener (nothing left to drain) and leaves the group.
        let closed = self.consumer.close().await;
        self.producer.flush().await;
        if result.is_ok() {
            result = closed.map_err(RunError::Kafka);
        }
        result
    }

    /// At-least-once shutdown: waits for the records in flight (bounded), commits what
    /// finished through the consumer.
    async fn drain_and_commit(&mut self, drain_timeout: Duration) -> Result<(), RunError> {
        let drained = tokio::time::timeout(drain_timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = self.tasks.len(),
                "shutdown: records still in flight after the drain timeout are abandoned \
                 uncommitted"
            );
            self.tasks.abort_all();
        }
        if let CommitStrategy::AtLeastOnce(alo) = &mut self.strategy {
            alo.commit_final(&self.consumer, &self.shared).await?;
        }
        Ok(())
    }

    /// Exactly-once shutdown: ends the open transaction (commits it after a clean stop
    /// once its records finished within the drain timeout, aborts it otherwise), then
    /// answers the listener so `Consumer::close`'s revoke does not wait for a run loop
    /// that is gone.
    async fn close_transaction(&mut self, clean: bool) -> Result<(), RunError> {
        let mut held = None;
        let result = async {
            let how = if clean { Ending::Commit } else { Ending::Abort };
            self.strategy.end(how, &self.shared);
            loop {
                let Some(deadline) = self.strategy.drain_deadline() else {
                    return Ok(());
                };
                if self.strategy.end_due(self.tasks.len(), false, &self.shared) {
                    let ctx = Ctx {
                        consumer: &self.consumer,
                        producer: &self.producer,
                        shared: &self.shared,
                    };
                    return self.strategy.end_transaction(ctx, &mut held).await;
                }
                let timed_out = tokio::select! {
                    _ = self.tasks.join_next() => false,
                    Some(event) = self.events.1.recv() => {
                        // Retriable failures abort; a fatal one changes nothing more.
                        if let Event::Redeliver { .. } = event {
                            self.on_event(event, &mut held)?;
                        }
                        false
                    }
                    _ = tokio::time::sleep_until(deadline) => true,
                };
                if timed_out {
                    self.strategy
                        .drain_timed_out(self.tasks.len(), &self.shared);
                }
            }
        }
        .await;
        self.strategy.close_requests();
        if result.is_err() {
            // Whatever still runs cannot commit; let it go.
            self.tasks.abort_all();
        }
        result
    }
}
