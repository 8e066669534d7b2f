//! One admitted record's task: await the stack's answer, produce its outputs, mark the
//! record done, or report why not to the run loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use sluice_wire::producer::Producer;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tower::Service;

use super::event::Event;
use super::output::{self, Failure, OutputRejected, RejectedOutput};
use super::producer_record;
use super::state::{Admitted, Shared};
use crate::{ConsumedRecord, Disposition, PipelineError, Processed};

/// Calls the stack with `record`, admitted as `admitted`, and spawns the task that
/// produces its outputs and marks it done. A record whose output is known to be refused
/// (exactly-once, see [`Shared::refused`]) is dead-lettered instead, without calling the
/// stack.
pub(super) fn spawn<S>(
    svc: &mut S,
    record: ConsumedRecord,
    admitted: Admitted,
    shared: &Arc<Shared>,
    producer: &Producer,
    events: &mpsc::UnboundedSender<Event>,
    tasks: &mut JoinSet<()>,
) where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError> + 'static,
    S::Future: Send + 'static,
{
    let (topic, partition, offset) = (Arc::clone(&record.topic), record.partition, record.offset);
    shared.stats.add_admitted();
    let refused = match shared.exactly_once {
        true => shared.refused(&topic, partition, offset),
        false => None,
    };
    // Kept to dead-letter the record if the broker refuses an output.
    let original = (shared.rejected_output == RejectedOutput::DeadLetter).then(|| record.clone());
    let answer = match refused {
        Some(_) => futures::future::Either::Left(std::future::ready(Ok(Vec::new()))),
        None => futures::future::Either::Right(Answer {
            future: svc.call(record),
        }),
    };
    let task = RecordTask {
        topic,
        partition,
        offset,
        admitted,
        original,
        refused,
        shared: Arc::clone(shared),
        producer: producer.clone(),
        events: events.clone(),
    };
    // The stats in scope while the answer is polled: the layers inside count their
    // retries and dead letters into this pipeline's stats.
    // Boxed: tokio moves what it is given into the task, then moves its stage (future,
    // then output) on completion and on join; the box is allocated once and moved as a
    // pointer. The answer has a box of its own: passed by value, the stack's future
    // (0.7-1 KB with the full stack) was held three times over in the task's future
    // and copied on each move.
    tasks.spawn(Box::pin(shared.stats.scope(task.run(Box::pin(answer)))));
}

pin_project! {
    /// The stack's answer with its error converted, polled in place. Not `map_err`: that
    /// combinator drops the stack's future the moment it completes, and the concurrency
    /// layer releases the partition's next record on that drop, before
    /// [`RecordTask::process`] could mark the rewind a retriable failure calls for (the
    /// next record then ran, and was dead-lettered once more when fetched again).
    struct Answer<F> {
        #[pin]
        future: F,
    }
}

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<Processed, E>>,
    E: Into<PipelineError>,
{
    type Output = Result<Processed, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(cx).map_err(Into::into)
    }
}

/// An output the producer did not deliver.
struct FailedOutput {
    /// A copy to send again (at-least-once, refused outputs dead-lettered).
    record: Option<sluice_wire::producer::ProducerRecord>,
    topic: Arc<str>,
    error: sluice_wire::Error,
}

/// How a record's task ended, when it was not superseded.
enum Outcome {
    /// Done, with this many outputs (or dead letters) acknowledged.
    Done(u64),
    /// The stack or the producer failed.
    Failed(PipelineError),
    /// Exactly-once: an output was refused; the transaction must abort.
    Refused(OutputRejected),
}

/// What one record's task needs after the stack answered.
struct RecordTask {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    admitted: Admitted,
    /// The record, to dead-letter it if an output is refused.
    original: Option<ConsumedRecord>,
    /// Exactly-once: the record's output was refused in a transaction of its own; it is
    /// dead-lettered, not produced.
    refused: Option<OutputRejected>,
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
    async fn run<F>(mut self, answer: Pin<Box<F>>)
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
            self.shared.finish(&self.topic, self.partition, true);
            return;
        };
        let succeeded = matches!(outcome, Outcome::Done(_));
        match outcome {
            Outcome::Done(n) => {
                self.shared.done(&self.admitted.ticket);
                self.shared.completed(n);
            }
            Outcome::Refused(error) => {
                let _ = self.events.send(Event::Refused {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                    error,
                });
            }
            Outcome::Failed(error) if error.disposition() == Disposition::Retriable => {
                tracing::debug!(topic = %self.topic, partition = self.partition,
                    offset = self.offset, %error, "retriable failure: fetching it again");
                // Marked rewound in `process`, before the answer was dropped.
                let _ = self.events.send(Event::Redeliver {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                });
            }
            Outcome::Failed(error) => {
                let _ = self.events.send(Event::Fatal {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                    error,
                });
            }
        }
        self.shared.finish(&self.topic, self.partition, succeeded);
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
        answer: Pin<Box<F>>,
        after: Option<oneshot::Receiver<()>>,
        handed_over: &mut Option<oneshot::Sender<()>>,
    ) -> Option<Outcome>
    where
        F: Future<Output = Result<Processed, PipelineError>>,
    {
        // In an `Option` so it can be dropped at a chosen point: the concurrency layer
        // starts the partition's next record when this answer is dropped, so after a
        // retriable failure the rewind is marked first and the records queued behind
        // find themselves superseded before their inner service is called.
        let mut answer = Some(answer);
        let result = std::future::poll_fn(|cx| match answer.as_mut() {
            Some(future) => future.as_mut().poll(cx),
            None => std::task::Poll::Ready(Err(PipelineError::fatal(
                "record answer polled after completion",
            ))),
        })
        .await;
        match result {
            Ok(outputs) => {
                drop(answer.take());
                // The concurrency layer let the partition's next record run as soon as
                // this answer was dropped; its outputs must still wait for ours, or a
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
                // The paths after a refusal or a failure are boxed: held inline, their
                // futures (a resend, a dead letter, each with a send of its own) were
                // part of every record's task future, which is copied when spawned.
                let outcome = match self.refused.clone() {
                    Some(refused) => Box::pin(self.dead_letter(refused)).await,
                    None => match self.produce(outputs, handed_over).await {
                        (n, failures) if failures.is_empty() => Outcome::Done(n),
                        (n, failures) => Box::pin(self.settle(n, failures)).await,
                    },
                };
                if let Outcome::Failed(e) = &outcome {
                    if e.disposition() == Disposition::Retriable {
                        self.rewind();
                    }
                }
                Some(outcome)
            }
            Err(e) => {
                if e.disposition() == Disposition::Retriable {
                    self.rewind();
                }
                drop(answer.take());
                Some(Outcome::Failed(e))
            }
        }
    }

    /// The outcome of a record `n` of whose outputs were acknowledged and the others
    /// failed: each producer error classified as any failure is (see [`output`]), the
    /// worst deciding. A refused output stops the pipeline or is dead-lettered, as the
    /// pipeline says; exactly-once it aborts the transaction first.
    async fn settle(&self, n: u64, failures: Vec<FailedOutput>) -> Outcome {
        let worst = failures.iter().map(|f| output::classify(&f.error)).max();
        let Some(worst) = worst else {
            return Outcome::Done(n);
        };
        let first = |kind: Failure| {
            failures
                .iter()
                .find(|f| output::classify(&f.error) == kind)
                .map(|f| f.error.clone())
        };
        match worst {
            Failure::Fatal => Outcome::Failed(PipelineError::fatal(
                first(Failure::Fatal).unwrap_or_else(|| failures[0].error.clone()),
            )),
            Failure::Retriable => Outcome::Failed(PipelineError::retriable(
                first(Failure::Retriable).unwrap_or_else(|| failures[0].error.clone()),
            )),
            Failure::Rejected => {
                let rejected = OutputRejected {
                    topic: failures[0].topic.to_string(),
                    source: failures[0].error.clone(),
                };
                tracing::warn!(topic = %self.topic, partition = self.partition,
                    offset = self.offset, error = %rejected, "an output was refused");
                match self.shared.rejected_output {
                    RejectedOutput::Fatal => Outcome::Failed(PipelineError::fatal(rejected)),
                    // The producer fails every batch of a failed transaction, whose
                    // records all see the error: the transaction aborts, and each of them
                    // runs again in a transaction of its own to tell.
                    RejectedOutput::DeadLetter if self.shared.exactly_once => {
                        self.rewind();
                        Outcome::Refused(rejected)
                    }
                    RejectedOutput::DeadLetter => self.alone(n, failures).await,
                }
            }
        }
    }

    /// At-least-once: sends the refused outputs again while no other output is in the
    /// producer. The producer fails every record of a refused batch, so another record's
    /// output may have been refused in this one's stead; alone, a refusal is this
    /// record's own, and it is dead-lettered. (An output accepted on its own lands after
    /// outputs of later records of the partition.)
    async fn alone(&self, mut n: u64, failures: Vec<FailedOutput>) -> Outcome {
        let only = self.shared.producing.write().await;
        for failed in failures {
            let Some(record) = failed.record else {
                return Outcome::Failed(PipelineError::fatal(failed.error));
            };
            let written = match self.producer.send(record).await {
                Ok(delivery) => delivery.await,
                Err(e) => Err(e),
            };
            match written {
                Ok(_) => n += 1,
                Err(e) => {
                    return match output::classify(&e) {
                        Failure::Rejected => {
                            drop(only);
                            self.dead_letter(OutputRejected {
                                topic: failed.topic.to_string(),
                                source: e,
                            })
                            .await
                        }
                        Failure::Retriable => Outcome::Failed(PipelineError::retriable(e)),
                        Failure::Fatal => Outcome::Failed(PipelineError::fatal(e)),
                    };
                }
            }
        }
        tracing::debug!(topic = %self.topic, partition = self.partition, offset = self.offset,
            "refused outputs accepted on their own: another record's output was refused");
        Outcome::Done(n)
    }

    /// Writes the record's dead letter through the pipeline's producer (inside the
    /// transaction, exactly-once) and waits for the acknowledgement. A dead letter that
    /// is refused too stops the pipeline.
    async fn dead_letter(&self, rejected: OutputRejected) -> Outcome {
        let Some(record) = self.original.as_ref() else {
            return Outcome::Failed(PipelineError::fatal(rejected));
        };
        let letter = output::dead_letter(record, &rejected, &self.shared.group);
        let dlq = letter.topic.to_string();
        let written = match self.producer.send(letter).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        match written {
            Ok(at) => {
                tracing::warn!(topic = %self.topic, partition = self.partition,
                    offset = self.offset, dlq.topic = %at.topic, dlq.partition = at.partition,
                    dlq.offset = at.offset, error = %rejected, "record dead-lettered");
                crate::metrics::count_dead_letter(&self.topic);
                Outcome::Done(0)
            }
            Err(e) => match output::classify(&e) {
                Failure::Retriable => Outcome::Failed(PipelineError::retriable(e)),
                Failure::Rejected | Failure::Fatal => {
                    Outcome::Failed(PipelineError::fatal(OutputRejected {
                        topic: dlq,
                        source: e,
                    }))
                }
            },
        }
    }

    /// Marks the partition rewound to this record (the run loop seeks when it gets the
    /// `Redeliver` event).
    fn rewind(&self) {
        self.shared
            .rewind_for_redelivery(&self.topic, self.partition, self.offset);
    }

    /// Sends every output, then waits for every acknowledgement: how many were
    /// acknowledged, and the outputs that failed.
    async fn produce(
        &self,
        outputs: Processed,
        handed_over: &mut Option<oneshot::Sender<()>>,
    ) -> (u64, Vec<FailedOutput>) {
        // At-least-once a refused output is sent again alone: keep a copy (cheap: shared
        // bytes) and let that resend wait for the outputs in flight.
        let again =
            !self.shared.exactly_once && self.shared.rejected_output == RejectedOutput::DeadLetter;
        let _producing = match again {
            true => Some(self.shared.producing.read().await),
            false => None,
        };
        let mut deliveries = Vec::with_capacity(outputs.len());
        let mut failures = Vec::new();
        for output in outputs {
            let record = producer_record(output);
            let topic = Arc::clone(&record.topic);
            let copy = again.then(|| record.clone());
            match self.producer.send(record).await {
                Ok(delivery) => deliveries.push((topic, copy, delivery)),
                Err(error) => failures.push(FailedOutput {
                    record: copy,
                    topic,
                    error,
                }),
            }
        }
        // In the producer's buffer, in order: the next record's outputs may follow.
        drop(handed_over.take());
        let mut n = 0;
        for (topic, copy, delivery) in deliveries {
            match delivery.await {
                Ok(_) => n += 1,
                Err(error) => failures.push(FailedOutput {
                    record: copy,
                    topic,
                    error,
                }),
            }
        }
        (n, failures)
    }
}
