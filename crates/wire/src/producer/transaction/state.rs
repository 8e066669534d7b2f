//! The transaction state machine: where the transaction stands and which partitions it
//! holds. No I/O: the public methods and the sender drive it under the producer's state
//! lock, the requests report their outcomes to it.
//!
//! States: `Uninitialized` → (`init_transactions`) `Ready` → (`begin`) `InTransaction` →
//! (`commit`) `Committing` → `Ready`, or (`abort`) `Aborting` → `Ready`. A failure in a
//! transaction moves it to `AbortableError` (only `abort` is allowed next), a fatal one
//! (fenced, invalid epoch, authorization) to `FatalError` (nothing is allowed any more).
//!
//! A partition joins on the first `send` to it: pending, then adding (in the one
//! AddPartitionsToTxn in flight), then added; its batches are drained only once added.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// Where the transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Uninitialized,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    AbortableError,
    FatalError,
}

/// The transaction state, kept in the producer's state (under its lock: the sender
/// reads it while draining).
#[derive(Debug)]
pub(crate) struct TxnState {
    phase: Phase,
    /// Partitions the coordinator added to the current transaction.
    added: BTreeSet<(String, i32)>,
    /// Partitions sent to but not yet requested from the coordinator.
    pending: BTreeSet<(String, i32)>,
    /// Partitions in the AddPartitionsToTxn request in flight.
    adding: BTreeSet<(String, i32)>,
    /// Offsets were added to the current transaction (AddOffsetsToTxn).
    offsets_added: bool,
    /// The error of `AbortableError` / `FatalError`.
    error: Option<Error>,
}

impl TxnState {
    pub(crate) fn new() -> Self {
        TxnState {
            phase: Phase::Uninitialized,
            added: BTreeSet::new(),
            pending: BTreeSet::new(),
            adding: BTreeSet::new(),
            offsets_added: false,
            error: None,
        }
    }

    /// Moves from one of `from` to `to`, or explains why not (`call` names the caller).
    pub(crate) fn transition(&mut self, from: &[Phase], to: Phase, call: &str) -> Result<()> {
        if from.contains(&self.phase) {
            self.phase = to;
            return Ok(());
        }
        if let (Phase::FatalError | Phase::AbortableError, Some(e)) = (self.phase, &self.error) {
            return Err(e.context(format!("{call}: the transaction failed earlier")));
        }
        Err(Error::illegal_state(format!(
            "{call} is not allowed in transaction state {:?}",
            self.phase
        )))
    }

    /// A new transaction begins (from `Ready`): nothing of the last one is kept.
    pub(crate) fn begin(&mut self) -> Result<()> {
        self.transition(&[Phase::Ready], Phase::InTransaction, "begin")?;
        self.clear();
        Ok(())
    }

    /// The transaction was committed or aborted: ready for the next one.
    pub(crate) fn finish(&mut self) {
        self.clear();
        self.phase = Phase::Ready;
    }

    /// A send to `topic`-`partition`: allowed in a transaction only; the partition joins
    /// the transaction (queued for the sender's next AddPartitionsToTxn).
    pub(crate) fn on_send(&mut self, topic: &str, partition: i32) -> Result<()> {
        match self.phase {
            Phase::InTransaction => {
                let tp = (topic.to_string(), partition);
                if !self.added.contains(&tp) && !self.adding.contains(&tp) {
                    self.pending.insert(tp);
                }
                Ok(())
            }
            Phase::AbortableError | Phase::FatalError => Err(self.error.clone().map_or_else(
                || Error::illegal_state("the transaction failed"),
                |e| e.context("send: the transaction failed earlier"),
            )),
            phase => Err(Error::illegal_state(format!(
                "send on a transactional producer outside a transaction (state {phase:?}): \
                 call begin() first"
            ))),
        }
    }

    /// Whether batches of `topic`-`partition` may be sent now.
    pub(crate) fn may_send(&self, topic: &str, partition: i32) -> bool {
        matches!(
            self.phase,
            Phase::InTransaction | Phase::Committing | Phase::Aborting
        ) && self.added.contains(&(topic.to_string(), partition))
    }

    /// Whether queued batches must be failed, and with what: the transaction is lost, or
    /// being aborted (Java's `abortUndrainedBatches`). While aborting, a batch that comes
    /// back for a retry after `abort` failed the queue must fail too, or `abort` would
    /// wait for it: nothing is sent any more.
    pub(crate) fn failing(&self) -> Option<Error> {
        match self.phase {
            Phase::AbortableError | Phase::FatalError => self.error.clone(),
            Phase::Aborting => Some(Error::illegal_state("the transaction was aborted")),
            _ => None,
        }
    }

    /// A failure inside the transaction: fatal errors kill the producer, others make the
    /// transaction abortable. A fatal state is never left.
    pub(crate) fn record_error(&mut self, err: &Error) {
        if self.phase == Phase::FatalError {
            return;
        }
        if err.is_fatal_producer_error() {
            self.phase = Phase::FatalError;
            self.error = Some(err.clone());
        } else if matches!(self.phase, Phase::InTransaction | Phase::Committing) {
            self.phase = Phase::AbortableError;
            self.error = Some(err.clone());
        }
    }

    /// An abort failed with `err`: a fatal error kills the producer; otherwise the
    /// transaction stays abortable and the abort may be tried again.
    pub(crate) fn abort_failed(&mut self, err: &Error) {
        self.phase = if err.is_fatal_producer_error() {
            Phase::FatalError
        } else {
            Phase::AbortableError
        };
        self.error = Some(err.clone());
    }

    /// The queued batches failed (the transaction is lost): partitions not yet asked for
    /// are not asked for.
    pub(crate) fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// With no AddPartitionsToTxn in flight, moves the pending partitions into one;
    /// whether there is one to send.
    pub(crate) fn start_adding(&mut self) -> bool {
        if self.pending.is_empty() || !self.adding.is_empty() {
            return false;
        }
        self.adding = std::mem::take(&mut self.pending);
        true
    }

    /// The partitions of the AddPartitionsToTxn in flight.
    pub(crate) fn adding(&self) -> &BTreeSet<(String, i32)> {
        &self.adding
    }

    /// Whether an AddPartitionsToTxn is in flight.
    pub(crate) fn adds_in_flight(&self) -> bool {
        !self.adding.is_empty()
    }

    /// The AddPartitionsToTxn in flight came back: its partitions are in the
    /// transaction, or the transaction failed.
    pub(crate) fn on_added(&mut self, result: &Result<()>) {
        let adding = std::mem::take(&mut self.adding);
        match result {
            Ok(()) => self.added.extend(adding),
            Err(e) => self.record_error(e),
        }
    }

    /// The coordinator added the consumer offsets (AddOffsetsToTxn).
    pub(crate) fn on_offsets_added(&mut self) {
        self.offsets_added = true;
    }

    /// Whether the coordinator knows of this transaction (a partition or offsets were
    /// added), so EndTxn is needed.
    pub(crate) fn involves_coordinator(&self) -> bool {
        !self.added.is_empty() || self.offsets_added
    }

    fn clear(&mut self) {
        self.added.clear();
        self.pending.clear();
        self.offsets_added = false;
        self.error = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::KafkaCode;

    fn in_transaction() -> TxnState {
        let mut t = TxnState::new();
        t.transition(&[Phase::Uninitialized], Phase::Ready, "init")
            .unwrap();
        t.begin().unwrap();
        t
    }

    #[test]
    fn failures_make_the_transaction_abortable_and_fencing_makes_it_fatal_for_good() {
        let mut t = in_transaction();
        t.on_send("t", 0).unwrap();
        assert!(t.start_adding());
        t.on_added(&Ok(()));
        assert!(t.may_send("t", 0));
        assert!(!t.may_send("t", 1), "not added to the transaction yet");
        assert!(t.failing().is_none());

        let timeout = Error::timeout("produce", Duration::from_secs(1));
        t.record_error(&timeout);
        assert_eq!(t.phase, Phase::AbortableError);
        assert!(t.failing().is_some(), "queued batches fail");
        assert!(!t.may_send("t", 0));

        let fenced = Error::kafka(KafkaCode::ProducerFenced, "EndTxn");
        t.record_error(&fenced);
        assert_eq!(t.phase, Phase::FatalError);
        t.record_error(&timeout);
        assert_eq!(t.phase, Phase::FatalError, "a fatal state is never left");
        assert_eq!(
            t.error.as_ref().and_then(Error::kafka_code),
            Some(KafkaCode::ProducerFenced)
        );

        // Outside a transaction a failure changes nothing (an abort is under way).
        let mut t = TxnState::new();
        t.phase = Phase::Aborting;
        t.record_error(&timeout);
        assert_eq!(t.phase, Phase::Aborting);
    }

    #[test]
    fn partitions_join_pending_then_adding_then_added_one_request_at_a_time() {
        let mut t = in_transaction();
        t.on_send("t", 0).unwrap();
        t.on_send("t", 1).unwrap();
        t.on_send("t", 0).unwrap();
        assert!(t.start_adding());
        assert_eq!(t.adding().len(), 2, "queued partitions travel together");
        assert!(t.adds_in_flight());
        // Sent to while the request is out: waits for the next request.
        t.on_send("t", 2).unwrap();
        t.on_send("t", 1).unwrap();
        assert!(
            !t.start_adding(),
            "one AddPartitionsToTxn in flight at a time"
        );
        assert!(
            !t.may_send("t", 0),
            "not added before the coordinator answers"
        );
        t.on_added(&Ok(()));
        assert!(!t.adds_in_flight());
        assert!(t.may_send("t", 0) && t.may_send("t", 1));
        assert!(t.start_adding());
        assert_eq!(
            t.adding().iter().cloned().collect::<Vec<_>>(),
            vec![("t".to_string(), 2)],
            "an added partition is not asked for again"
        );
        assert!(t.involves_coordinator());

        // A failed add loses the transaction; the next one starts empty.
        t.on_added(&Err(Error::kafka(
            KafkaCode::TopicAuthorizationFailed,
            "add",
        )));
        assert_eq!(t.phase, Phase::AbortableError);
        assert!(t.on_send("t", 3).is_err());
        let mut t = in_transaction();
        t.on_send("t", 0).unwrap();
        t.transition(&[Phase::InTransaction], Phase::Committing, "commit")
            .unwrap();
        t.finish();
        assert_eq!(t.phase, Phase::Ready);
        assert!(!t.involves_coordinator() && !t.start_adding());
    }

    #[test]
    fn sends_and_calls_outside_their_states_are_refused_with_the_reason() {
        let mut t = TxnState::new();
        let e = t.on_send("t", 0).unwrap_err();
        assert!(e.to_string().contains("call begin() first"), "{e}");
        let e = t.begin().unwrap_err();
        assert!(e.to_string().contains("Uninitialized"), "{e}");

        let mut t = in_transaction();
        let timeout = Error::timeout("produce", Duration::from_secs(1));
        t.record_error(&timeout);
        let e = t
            .transition(&[Phase::InTransaction], Phase::Committing, "commit")
            .unwrap_err();
        assert!(e.to_string().contains("failed earlier"), "{e}");
        assert!(t
            .transition(&[Phase::AbortableError], Phase::Aborting, "abort")
            .is_ok());
        // A failed abort may be tried again, unless it was fatal.
        t.abort_failed(&timeout);
        assert_eq!(t.phase, Phase::AbortableError);
        t.abort_failed(&Error::kafka(KafkaCode::ProducerFenced, "EndTxn"));
        assert_eq!(t.phase, Phase::FatalError);
    }
}
