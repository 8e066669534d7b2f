//! Exactly-once mode: the transaction the run loop keeps open across many records, and
//! how it ends (commit with the input offsets inside it, or abort and rewind).
//!
//! A transaction begins lazily, just before the first record is admitted. It ends when
//! the commit interval passes, when the in-flight bound is reached, when the rebalance
//! listener asks (a revoke or a loss), when a record fails retriably, and on shutdown.
//! Ending goes in two steps: first admission stops and the records in flight finish
//! (each one's outputs, and any dead letter the stack wrote through the same producer,
//! are sent inside the transaction); then, with nothing running, the run loop either
//! commits (`send_offsets_to_transaction` with the consumer's group metadata, then
//! `commit`) or aborts and seeks every partition back to where the transaction started
//! in it. A drain that outlasts `drain_timeout` becomes an abort: the records still
//! running are superseded (their answers dropped) so the transaction never outlives
//! `transaction.timeout.ms` because of a stuck record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_wire::consumer::{Consumer, ConsumerGroupMetadata, TopicPartition};
use sluice_wire::producer::Producer;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::commit_map;
use super::state::Shared;
use super::RunError;
use crate::ConsumedRecord;

/// What ending a transaction uses of the run loop.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) consumer: &'a Consumer,
    pub(super) producer: &'a Producer,
    pub(super) shared: &'a Shared,
}

/// What the rebalance listener asks of the run loop in exactly-once mode. The reply
/// comes once the open transaction (if any) has ended.
#[derive(Debug)]
pub(crate) enum Request {
    /// Partitions are being revoked: end the transaction, committing it if everything
    /// in it finished within `drain_timeout`, before they are released.
    Revoke(oneshot::Sender<()>),
    /// Partitions were lost (another member may own them): abort the transaction.
    Lost(oneshot::Sender<()>),
}

/// How the open transaction is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Commit once the records in flight finished (abort if one of them did not).
    Commit,
    /// Abort once the records in flight dropped out.
    Abort,
}

/// The run loop's transaction bookkeeping.
#[derive(Debug)]
pub(crate) struct Transaction {
    /// `begin` was called and neither `commit` nor `abort` since.
    open: bool,
    /// The partitions with records in the open transaction, each with the offset of its
    /// first one: where an abort seeks it back to.
    starts: HashMap<(Arc<str>, i32), i64>,
    /// Set once the open transaction must end (admission stops), with the time by which
    /// its records must have finished.
    ending: Option<(Ending, Instant)>,
    /// Listener requests answered when the transaction has ended.
    waiting: Vec<oneshot::Sender<()>>,
    /// From the rebalance listener.
    requests: mpsc::UnboundedReceiver<Request>,
    drain_timeout: Duration,
}

impl Transaction {
    pub(crate) fn new(requests: mpsc::UnboundedReceiver<Request>, drain_timeout: Duration) -> Self {
        Transaction {
            open: false,
            starts: HashMap::new(),
            ending: None,
            waiting: Vec::new(),
            requests,
            drain_timeout,
        }
    }

    /// Whether a transaction is open (begun, not yet committed or aborted).
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether records may be admitted (the transaction is not ending).
    pub(crate) fn admitting(&self) -> bool {
        self.ending.is_none()
    }

    /// The drain deadline of an ending transaction.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.ending.map(|(_, d)| d)
    }

    /// Whether the ending transaction may be ended now (nothing runs any more).
    pub(crate) fn ready_to_end(&self, running: usize) -> bool {
        self.ending.is_some() && running == 0
    }

    /// Begins the transaction if none is open and notes where `record`'s partition
    /// starts in it. Call before the record is admitted to the stack.
    pub(crate) async fn join(
        &mut self,
        producer: &Producer,
        record: &ConsumedRecord,
    ) -> Result<(), RunError> {
        if !self.open {
            producer.begin().await.map_err(RunError::Transaction)?;
            self.open = true;
            self.starts.clear();
        }
        self.starts
            .entry((Arc::clone(&record.topic), record.partition))
            .or_insert(record.offset);
        Ok(())
    }

    /// The next listener request; `None` once the listener is gone.
    pub(crate) async fn request(&mut self) -> Option<Request> {
        self.requests.recv().await
    }

    /// Asks the open transaction to end: an abort wins over a commit, and the records in
    /// flight are superseded at once (nothing they would produce can commit).
    pub(crate) fn end(&mut self, how: Ending, shared: &Shared) {
        if !self.open {
            return;
        }
        let deadline = self
            .ending
            .map_or_else(|| Instant::now() + self.drain_timeout, |(_, d)| d);
        let how = match self.ending {
            Some((Ending::Abort, _)) => Ending::Abort,
            _ => how,
        };
        if how == Ending::Abort {
            self.supersede(shared);
        }
        self.ending = Some((how, deadline));
    }

    /// Supersedes every record of the transaction still running: they drop their answers.
    fn supersede(&self, shared: &Shared) {
        for ((topic, partition), start) in &self.starts {
            shared.rewind(topic, *partition, *start);
        }
    }

    /// The drain deadline passed with records still running: abort instead.
    pub(crate) fn drain_timed_out(&mut self, running: usize, shared: &Shared) {
        if let Some((how, deadline)) = self.ending {
            tracing::warn!(running, timeout = ?self.drain_timeout, ?how,
                "exactly-once: records still in flight after the drain timeout; aborting the \
                 transaction");
            self.supersede(shared);
            // A fresh deadline for the superseded records to drop out; they do at once
            // unless the stack's inner call ignores cancellation.
            self.ending = Some((
                Ending::Abort,
                deadline.max(Instant::now()) + self.drain_timeout,
            ));
        }
    }

    /// A listener request: answered at once when no transaction is open, else once it has
    /// ended.
    pub(crate) fn on_request(&mut self, request: Request, shared: &Shared) {
        let (reply, how) = match request {
            Request::Revoke(reply) => (reply, Ending::Commit),
            Request::Lost(reply) => (reply, Ending::Abort),
        };
        if !self.open {
            let _ = reply.send(());
            return;
        }
        self.waiting.push(reply);
        self.end(how, shared);
    }

    /// Answers every listener request, waiting or queued, and refuses new ones (the run
    /// loop is closing: a revoke from `Consumer::close` must not wait for it).
    pub(crate) fn close_requests(&mut self) {
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            match request {
                Request::Revoke(reply) | Request::Lost(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        for reply in self.waiting.drain(..) {
            let _ = reply.send(());
        }
    }
}

impl Transaction {
    /// Ends the transaction (nothing may be running): commits it with the input offsets
    /// if it was to commit and every record in it finished, else aborts it and seeks its
    /// partitions back. Then answers the listener's waiting requests. `held` (a record
    /// taken from the consumer, not admitted) is dropped if its partition is rewound.
    pub(super) async fn finish(
        &mut self,
        ctx: Ctx<'_>,
        held: &mut Option<ConsumedRecord>,
    ) -> Result<(), RunError> {
        let how = self.ending.take().map(|(how, _)| how);
        if !self.open {
            self.answer_waiting();
            return Ok(());
        }
        let starts: Vec<((Arc<str>, i32), i64)> = self.starts.drain().collect();
        self.open = false;
        let finished = starts.iter().all(|((t, p), _)| ctx.shared.all_done(t, *p));
        let mut result = Ok(());
        let mut abort = true;
        if how == Some(Ending::Commit) && finished {
            // `run` checked that the consumer has a group.id, so `None` is unreachable;
            // it would abort.
            if let Some(group) = ctx.consumer.group_metadata() {
                match commit(ctx, &group).await {
                    Ok(()) => abort = false,
                    Err(e) if e.is_abortable() => {
                        tracing::warn!(error = %e, "exactly-once: the commit failed; aborting \
                                                   and processing the transaction's records again");
                    }
                    Err(e) => result = Err(RunError::Transaction(e)),
                }
            }
        }
        if result.is_ok() && abort {
            result = abort_and_rewind(ctx, &starts, held).await;
        }
        self.answer_waiting();
        result
    }

    fn answer_waiting(&mut self) {
        for reply in self.waiting.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// Sends the committable offsets into the transaction and commits it.
async fn commit(ctx: Ctx<'_>, group: &ConsumerGroupMetadata) -> sluice_wire::Result<()> {
    let offsets = ctx.shared.commits.committable();
    if !offsets.is_empty() {
        ctx.producer
            .send_offsets_to_transaction(&commit_map(&offsets), group)
            .await?;
    }
    ctx.producer.commit().await?;
    for (t, p, o) in offsets {
        ctx.shared.committed(&t, p, o);
    }
    ctx.shared.transaction_ended(true);
    tracing::trace!("exactly-once: transaction committed");
    Ok(())
}

/// Aborts the transaction and seeks its partitions back to where it started in them.
async fn abort_and_rewind(
    ctx: Ctx<'_>,
    starts: &[((Arc<str>, i32), i64)],
    held: &mut Option<ConsumedRecord>,
) -> Result<(), RunError> {
    // An abort that failed short of fatally (a coordinator timeout) may be tried
    // again; the producer says which.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ctx.producer.abort().await {
            Ok(()) => break,
            Err(e) if e.is_abortable() && attempt < 3 => {
                tracing::warn!(error = %e, attempt, "exactly-once: the abort failed; again");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(RunError::Transaction(e)),
        }
    }
    ctx.shared.transaction_ended(false);
    for ((topic, partition), start) in starts {
        ctx.shared.restart_at(topic, *partition, *start);
        let tp = TopicPartition::new(topic.as_ref(), *partition);
        // A partition lost or revoked meanwhile is not ours to seek: its next owner
        // reads from the committed offset.
        if ctx.consumer.seek(&tp, *start).is_ok() {
            tracing::debug!(%topic, partition, offset = start, "exactly-once: aborted; rewound");
        }
        if held
            .as_ref()
            .is_some_and(|h| h.topic == *topic && h.partition == *partition)
        {
            *held = None;
        }
    }
    Ok(())
}
