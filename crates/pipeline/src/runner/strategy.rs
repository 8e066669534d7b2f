//! The two commit modes as one type: [`CommitStrategy`] says what the run loop does at
//! each point where at-least-once and exactly-once differ, so the loop itself never asks
//! which mode it runs in.

use std::sync::Arc;

use sluice_wire::consumer::Consumer;
use sluice_wire::producer::Producer;
use tokio::time::Instant;

use super::at_least_once::AtLeastOnce;
use super::state::Shared;
pub(super) use super::transaction::Ctx;
use super::transaction::{Ending, Request, Transaction};
use super::RunError;
use crate::ConsumedRecord;

/// How finished offsets are committed.
#[derive(Debug)]
pub(super) enum CommitStrategy {
    /// The consumer commits the finished offsets on the commit interval (and when the
    /// in-flight bound is reached), after their outputs were acknowledged.
    AtLeastOnce(AtLeastOnce),
    /// The outputs of many records and their input offsets commit in one producer
    /// transaction (KIP-447).
    ExactlyOnce(Transaction),
}

/// Something a strategy waits on besides the record tasks.
pub(super) enum Signal {
    /// At-least-once: the commit in flight was answered.
    Committed(Vec<(Arc<str>, i32, i64)>, sluice_wire::Result<()>),
    /// Exactly-once: the rebalance listener asks for the transaction to end.
    Listener(Request),
}

/// Whether a held record may be admitted now.
pub(super) enum Admission {
    /// Not yet: the open transaction ends first, the record stays held.
    Wait,
    /// Admit it; `alone` if its transaction must end right after it.
    Admit { alone: bool },
}

/// What a retriable record failure does beyond the partition's backoff.
pub(super) enum OnFailure {
    /// Seek the partition back to the record.
    Rewind,
    /// Exactly-once: the transaction aborts, and its abort seeks back.
    Aborting,
}

impl CommitStrategy {
    /// Exactly-once: events of tasks that ended are handled before the transaction's end
    /// is decided, so a retriable failure turns that end into an abort.
    pub(super) fn events_first(&self) -> bool {
        matches!(self, CommitStrategy::ExactlyOnce(_))
    }

    /// Whether a transaction is due to end now: asked to end (or `bound_reached`) and
    /// nothing of it runs any more. Never at-least-once.
    pub(super) fn end_due(&mut self, running: usize, bound_reached: bool, shared: &Shared) -> bool {
        match self {
            CommitStrategy::AtLeastOnce(_) => false,
            CommitStrategy::ExactlyOnce(txn) => {
                if bound_reached {
                    txn.end(Ending::Commit, shared);
                }
                txn.ready_to_end(running)
            }
        }
    }

    /// Ends the due transaction: commits or aborts it (see [`Transaction::finish`]).
    pub(super) async fn end_transaction(
        &mut self,
        ctx: Ctx<'_>,
        held: &mut Option<ConsumedRecord>,
    ) -> Result<(), RunError> {
        match self {
            CommitStrategy::AtLeastOnce(_) => Ok(()),
            CommitStrategy::ExactlyOnce(txn) => txn.finish(ctx, held).await,
        }
    }

    /// Whether records may be admitted (exactly-once: the transaction is not ending).
    pub(super) fn admitting(&self) -> bool {
        match self {
            CommitStrategy::AtLeastOnce(_) => true,
            CommitStrategy::ExactlyOnce(txn) => txn.admitting(),
        }
    }

    /// The deadline of an ending transaction's drain.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        match self {
            CommitStrategy::AtLeastOnce(_) => None,
            CommitStrategy::ExactlyOnce(txn) => txn.deadline(),
        }
    }

    /// The drain deadline passed: the transaction aborts.
    pub(super) fn drain_timed_out(&mut self, running: usize, shared: &Shared) {
        if let CommitStrategy::ExactlyOnce(txn) = self {
            txn.drain_timed_out(running, shared);
        }
    }

    /// The next [`Signal`]; pending while there is none. Cancel-safe.
    pub(super) async fn signal(&mut self) -> Signal {
        match self {
            CommitStrategy::AtLeastOnce(alo) => {
                let (offsets, result) = alo.answered().await;
                Signal::Committed(offsets, result)
            }
            CommitStrategy::ExactlyOnce(txn) => match txn.request().await {
                Some(request) => Signal::Listener(request),
                // The listener is gone: nothing more to wait for.
                None => std::future::pending().await,
            },
        }
    }

    /// Handles a [`Signal`].
    pub(super) fn on_signal(&mut self, signal: Signal, shared: &Shared) {
        match (self, signal) {
            (CommitStrategy::AtLeastOnce(alo), Signal::Committed(offsets, result)) => {
                alo.on_answer(offsets, result, shared)
            }
            (CommitStrategy::ExactlyOnce(txn), Signal::Listener(request)) => {
                txn.on_request(request, shared)
            }
            // Each strategy only yields its own signals.
            _ => {}
        }
    }

    /// The commit interval passed: commit through the consumer, or end the transaction.
    pub(super) fn on_interval(&mut self, consumer: &Consumer, shared: &Shared) {
        match self {
            CommitStrategy::AtLeastOnce(alo) => alo.start_commit(consumer, shared),
            CommitStrategy::ExactlyOnce(txn) => txn.end(Ending::Commit, shared),
        }
    }

    /// At-least-once: while admission is held up (the in-flight bound), every finished
    /// record may free room, so the run loop commits on progress too.
    pub(super) fn commits_on_progress(&self) -> bool {
        matches!(self, CommitStrategy::AtLeastOnce(_))
    }

    /// A record task ended while admission is held up: commit what finished.
    pub(super) fn on_progress(&mut self, consumer: &Consumer, shared: &Shared) {
        if let CommitStrategy::AtLeastOnce(alo) = self {
            alo.start_commit(consumer, shared);
        }
    }

    /// Before `record` is admitted. Exactly-once, a record that saw a refused output runs
    /// in a transaction of its own, to tell whether the refused output is its own: an open
    /// transaction ends first.
    pub(super) fn admission(&mut self, record: &ConsumedRecord, shared: &Shared) -> Admission {
        let CommitStrategy::ExactlyOnce(txn) = self else {
            return Admission::Admit { alone: false };
        };
        let alone = shared.is_suspect(&record.topic, record.partition, record.offset);
        if alone && txn.is_open() {
            txn.end(Ending::Commit, shared);
            return Admission::Wait;
        }
        Admission::Admit { alone }
    }

    /// `record` is admitted: exactly-once, it joins the transaction (begun if none is
    /// open).
    pub(super) async fn join(
        &mut self,
        producer: &Producer,
        record: &ConsumedRecord,
    ) -> Result<(), RunError> {
        match self {
            CommitStrategy::AtLeastOnce(_) => Ok(()),
            CommitStrategy::ExactlyOnce(txn) => txn.join(producer, record).await,
        }
    }

    /// A record admitted `alone` is in flight: its transaction ends once it finished.
    pub(super) fn after_admit(&mut self, alone: bool, shared: &Shared) {
        if let (true, CommitStrategy::ExactlyOnce(txn)) = (alone, self) {
            txn.end(Ending::Commit, shared);
        }
    }

    /// A record failed retriably. Exactly-once the whole transaction is redone: its other
    /// records' outputs and offsets cannot commit without this one's.
    pub(super) fn on_failure(&mut self, shared: &Shared) -> OnFailure {
        match self {
            CommitStrategy::AtLeastOnce(_) => OnFailure::Rewind,
            CommitStrategy::ExactlyOnce(txn) => {
                txn.end(Ending::Abort, shared);
                OnFailure::Aborting
            }
        }
    }

    /// Whether a producer that cannot go on (fenced, ...) stops the pipeline as
    /// [`RunError::Transaction`]: exactly-once only.
    pub(super) fn transactional(&self) -> bool {
        matches!(self, CommitStrategy::ExactlyOnce(_))
    }

    /// Exactly-once: asks the open transaction to end (see [`Transaction::end`]).
    pub(super) fn end(&mut self, how: Ending, shared: &Shared) {
        if let CommitStrategy::ExactlyOnce(txn) = self {
            txn.end(how, shared);
        }
    }

    /// The run loop is closing: answers the listener's requests and refuses new ones.
    pub(super) fn close_requests(&mut self) {
        if let CommitStrategy::ExactlyOnce(txn) = self {
            txn.close_requests();
        }
    }
}
