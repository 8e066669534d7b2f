//! One admitted record's task: await the stack's answer, produce its outputs, mark the
//! record done, or report why not to the run loop.

use std::future::Future;
use std::sync::Arc;

use sluice_wire::producer::Producer;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tower::Service;

use super::state::{Admitted, Shared};
use super::{producer_record, Event};
use crate::{ConsumedRecord, Disposition, PipelineError, Processed};

/// Calls the stack with `record`, admitted as `admitted`, and spawns the task that
/// produces its outputs and marks it done.
pub(super) fn spawn<S>(
    svc: &mut S,
    record: ConsumedRecord,
    admitted: Admitted,
    shared: &Arc<Shared>,
    producer: &Producer,
    events: &mpsc::UnboundedSender<Event>,
    tasks: &mut JoinSet<()>,
) where
    S: Service<ConsumedRecord, Response = Processed, Error = PipelineError>,
    S::Future: Send + 'static,
{
    let (topic, partition, offset) = (Arc::clone(&record.topic), record.partition, record.offset);
    shared.stats.add_admitted();
    let answer = svc.call(record);
    let task = RecordTask {
        topic,
        partition,
        offset,
        admitted,
        shared: Arc::clone(shared),
        producer: producer.clone(),
        events: events.clone(),
    };
    tasks.spawn(task.run(answer));
}

/// What one record's task needs after the stack answered.
struct RecordTask {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    admitted: Admitted,
    shared: Arc<Shared>,
    producer: Producer,
    events: mpsc::UnboundedSender<Event>,
}

impl RecordTask {
    /// Runs the record to its end. A rewind of its partition at or before its offset
    /// (an earlier record failed retriably, or an exactly-once abort) supersedes it: the
    /// record is fetched and processed again, so this task drops its answer future at
    /// once. With the concurrency layer's per-partition order a record not yet started is
    /// still queued inside that future, so dropping it means its inner service is never
    /// called (no second dead letter), and it releases the records queued behind it, which
    /// are superseded too.
    async fn run<F>(mut self, answer: F)
    where
        F: Future<Output = Result<Processed, PipelineError>>,
    {
        let mut rewinds = self.admitted.rewinds.clone();
        let after = self.admitted.after.take();
        // Kept to the end of the task unless the outputs are handed over: after a
        // failure the next record goes on only once the rewind below is marked.
        let mut handed_over = self.admitted.handed_over.take();
        let outcome = tokio::select! {
            // Checked first on every wake-up, before the answer is polled again.
            biased;
            () = self.superseded(&mut rewinds) => None,
            outcome = self.process(answer, after, &mut handed_over) => outcome,
        };
        let Some(outcome) = outcome else {
            tracing::trace!(topic = %self.topic, partition = self.partition,
                offset = self.offset, "superseded by a rewind: answer dropped");
            self.shared.finish(&self.topic, self.partition);
            return;
        };
        match outcome {
            Ok(n) => {
                self.shared.done(&self.admitted.ticket);
                self.shared.completed(n);
            }
            Err(error) if error.disposition() == Disposition::Retriable => {
                tracing::debug!(topic = %self.topic, partition = self.partition,
                    offset = self.offset, %error, "retriable failure: fetching it again");
                self.shared.rewind(&self.topic, self.partition, self.offset);
                let _ = self.events.send(Event::Redeliver {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                });
            }
            Err(error) => {
                let _ = self.events.send(Event::Fatal {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                    error,
                });
            }
        }
        self.shared.finish(&self.topic, self.partition);
    }

    /// Resolves once a rewind superseded this record; never if the partition is
    /// forgotten (revoked or lost: the record's fate is the revoke's drain).
    async fn superseded(&self, rewinds: &mut watch::Receiver<u64>) {
        loop {
            if rewinds.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self
                .shared
                .superseded(&self.topic, self.partition, &self.admitted)
            {
                return;
            }
        }
    }

    /// The answer, then its outputs produced; `None` when superseded meanwhile.
    async fn process<F>(
        &self,
        answer: F,
        after: Option<oneshot::Receiver<()>>,
        handed_over: &mut Option<oneshot::Sender<()>>,
    ) -> Option<Result<u64, PipelineError>>
    where
        F: Future<Output = Result<Processed, PipelineError>>,
    {
        match answer.await {
            Ok(outputs) => {
                // The concurrency layer let the partition's next record run as soon as
                // this answer was ready; its outputs must still wait for ours, or a
                // worker thread descheduled right here (a busy machine) lets dozens of
                // later records' outputs overtake this one's.
                if let Some(after) = after {
                    let _ = after.await;
                }
                // An earlier record of the partition failed and is fetched again; so is
                // this one. Producing now would produce it twice.
                if self
                    .shared
                    .superseded(&self.topic, self.partition, &self.admitted)
                {
                    return None;
                }
                Some(self.produce(outputs, handed_over).await)
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Sends every output, then waits for every acknowledgement. A failure is retriable:
    /// the record is processed again (at-least-once: its acknowledged outputs are then
    /// duplicated; exactly-once: the transaction is aborted, so they are not).
    async fn produce(
        &self,
        outputs: Processed,
        handed_over: &mut Option<oneshot::Sender<()>>,
    ) -> Result<u64, PipelineError> {
        let mut deliveries = Vec::with_capacity(outputs.len());
        for output in outputs {
            let delivery = self
                .producer
                .send(producer_record(output))
                .await
                .map_err(PipelineError::retriable)?;
            deliveries.push(delivery);
        }
        // In the producer's buffer, in order: the next record's outputs may follow.
        drop(handed_over.take());
        let n = deliveries.len() as u64;
        for delivery in deliveries {
            delivery.await.map_err(PipelineError::retriable)?;
        }
        Ok(n)
    }
}
