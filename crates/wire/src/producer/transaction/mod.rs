//! Transactions, after Java's `TransactionManager`: the public calls of a transactional
//! producer (this file), the state machine they drive ([`state`], no I/O) and the
//! requests to the transaction and group coordinators ([`requests`]).
//!
//! Each public call holds the context's operation lock for its whole run, so they run
//! one at a time; the state lives in the producer's state (one lock, never held across
//! an `.await`) because the sender reads it while draining.
//!
//! Partitions join the transaction on the first `send` to them: `send` queues the
//! partition, the sender sends one AddPartitionsToTxn for every queued partition at once
//! (one request in flight at a time, so partitions queued meanwhile travel together in
//! the next) and drains no batch of a partition before the coordinator added it.
//!
//! Transaction version: we speak the client side of transaction version 1 (explicit
//! AddPartitionsToTxn, EndTxn ≤ v4, TxnOffsetCommit ≤ v4, transactional Produce ≤ v11),
//! which Kafka 3.9 and 4.x brokers both accept, also where `transaction.version` 2 is
//! finalized (KIP-890's server-side verification still applies to us: the partition
//! leader checks with the coordinator that the partition is in an ongoing
//! transaction before it appends a transactional batch).

mod requests;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

pub(crate) use requests::{add_partitions, TxnContext};
pub(crate) use state::{Phase, TxnState};

use super::{completion, Producer, Shared};
use crate::error::{Error, Result};
use crate::types::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

impl Shared {
    fn txn_ctx(&self) -> Result<&TxnContext> {
        self.txn
            .as_ref()
            .ok_or_else(|| Error::illegal_state("the producer has no transactional.id"))
    }

    /// Runs `f` on the transaction state, under the state lock.
    fn with_txn<R>(&self, f: impl FnOnce(&mut TxnState) -> Result<R>) -> Result<R> {
        let mut st = self.state();
        let txn = st
            .txn
            .as_mut()
            .ok_or_else(|| Error::illegal_state("the producer has no transactional.id"))?;
        f(txn)
    }

    /// Moves from one of `from` to `to`, or explains why not.
    fn transition(&self, from: &[Phase], to: Phase, call: &str) -> Result<()> {
        self.with_txn(|t| t.transition(from, to, call))
    }

    /// Records a failure of a transactional call and returns it.
    fn txn_failed(&self, err: Error) -> Error {
        if let Some(txn) = self.state().txn.as_mut() {
            txn.record_error(&err);
        }
        err
    }

    /// A batch failed: the transaction cannot commit.
    pub(crate) fn txn_batch_failed(&self, err: &Error) {
        if let Some(txn) = self.state().txn.as_mut() {
            txn.record_error(err);
        }
    }

    /// Waits until no AddPartitionsToTxn is in flight (woken by each one that comes
    /// back, no polling).
    async fn adds_settled(&self) {
        let Some(ctx) = self.txn.as_ref() else {
            return;
        };
        // Subscribed before looking: an add that ends after the look wakes us.
        let mut settled = ctx.adds_settled.subscribe();
        loop {
            let busy = self
                .state()
                .txn
                .as_ref()
                .is_some_and(TxnState::adds_in_flight);
            if !busy || settled.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Producer {
    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Gets the producer id and epoch of `transactional.id` from the transaction
    /// coordinator, fencing any older producer with the same id (its open transaction
    /// is aborted, its later writes fail with PRODUCER_FENCED / INVALID_PRODUCER_EPOCH).
    /// Call once, before [`begin`](Self::begin). Retries coordinator moves and loads and
    /// CONCURRENT_TRANSACTIONS for up to `max.block.ms`.
    pub async fn init_transactions(&self) -> Result<()> {
        let shared = self.shared();
        let ctx = shared.txn_ctx()?;
        let _op = ctx.op.lock().await;
        shared.transition(
            &[Phase::Uninitialized],
            Phase::Uninitialized,
            "init_transactions",
        )?;
        match shared.init_producer_id(None).await {
            Ok(()) => shared.transition(&[Phase::Uninitialized], Phase::Ready, "init_transactions"),
            Err(e) => Err(e),
        }
    }

    /// Begins a transaction. Sends are allowed from here until
    /// [`commit`](Self::commit) or [`abort`](Self::abort). No request is sent.
    pub async fn begin(&self) -> Result<()> {
        let shared = self.shared();
        let ctx = shared.txn_ctx()?;
        let _op = ctx.op.lock().await;
        shared.with_txn(TxnState::begin)
    }

    /// Adds consumed offsets to the transaction: they are committed for the consumer
    /// group if and only if the transaction commits. `offsets` are the next offsets to
    /// read; `group` comes from [`Consumer::group_metadata`](crate::consumer::Consumer::group_metadata),
    /// so the group coordinator refuses the commit of a member that lost its
    /// partitions in a rebalance (KIP-447).
    ///
    /// Sends AddOffsetsToTxn to the transaction coordinator, then TxnOffsetCommit to
    /// the group coordinator. On error the transaction is abortable or the producer
    /// dead (see [`Error::is_abortable`]).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let shared = self.shared();
        let ctx = shared.txn_ctx()?;
        let _op = ctx.op.lock().await;
        shared.transition(
            &[Phase::InTransaction],
            Phase::InTransaction,
            "send_offsets_to_transaction",
        )?;
        if offsets.is_empty() {
            return Ok(());
        }
        let producer = shared.producer_id_and_epoch()?;
        let deadline = Instant::now() + shared.config.max_block;
        if let Err(e) = shared.add_offsets_to_txn(producer, group, deadline).await {
            return Err(shared.txn_failed(e));
        }
        if let Some(txn) = shared.state().txn.as_mut() {
            txn.on_offsets_added();
        }
        shared
            .txn_offset_commit(producer, offsets, group, deadline)
            .await
            .map_err(|e| shared.txn_failed(e))
    }

    /// Commits the transaction: sends what is buffered, waits for every delivery, then
    /// EndTxn(commit). If a record of the transaction failed, the transaction is not
    /// committed and this returns that failure (abortable, or fatal when fenced).
    ///
    /// Cancel-safe in Java's sense: when the future is dropped (a timeout around it),
    /// the transaction stays committing and `commit()` may be called again; it picks up
    /// where the first call stopped (EndTxn is idempotent at the coordinator). Waiting
    /// for the records takes at most `max.block.ms`, then this fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and may be called again.
    pub async fn commit(&self) -> Result<()> {
        let shared = self.shared();
        let ctx = shared.txn_ctx()?;
        let _op = ctx.op.lock().await;
        shared.transition(
            &[Phase::InTransaction, Phase::Committing],
            Phase::Committing,
            "commit",
        )?;
        // Bounded like every wait (Java: max.block.ms); on timeout the transaction stays
        // committing and `commit` may be called again.
        let max_block = shared.config.max_block;
        let settled = async {
            self.flush().await;
            shared.adds_settled().await;
        };
        if tokio::time::timeout(max_block, settled).await.is_err() {
            return Err(Error::timeout(
                "commit: waiting for the transaction's records",
                max_block,
            ));
        }
        // A failed batch or add moved us to AbortableError / FatalError.
        shared.transition(&[Phase::Committing], Phase::Committing, "commit")?;
        match shared.end_txn(true).await {
            Ok(()) => shared.with_txn(|t| {
                t.finish();
                Ok(())
            }),
            Err(e) => Err(shared.txn_failed(e)),
        }
    }

    /// Aborts the transaction: buffered records of it fail (with
    /// [`ErrorKind::IllegalState`](crate::ErrorKind::IllegalState) "aborted"), records in
    /// flight are waited for, then EndTxn(abort); read_committed consumers never see the
    /// transaction's records. Allowed in a transaction and after an abortable error; after
    /// a fatal error it returns that error. When a sequence gap made the epoch unusable,
    /// the coordinator bumps it (KIP-360) so the producer can go on. Like
    /// [`commit`](Self::commit), an abort whose future was dropped may be called again.
    /// Records in flight are waited for at most `max.block.ms`; past it this fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), the transaction stays abortable
    /// and `abort` may be called again.
    pub async fn abort(&self) -> Result<()> {
        let shared = self.shared();
        let ctx = shared.txn_ctx()?;
        let _op = ctx.op.lock().await;
        shared.transition(
            &[Phase::InTransaction, Phase::AbortableError, Phase::Aborting],
            Phase::Aborting,
            "abort",
        )?;
        completion::abort_queued(shared, &Error::illegal_state("the transaction was aborted"));
        shared.wake.notify_one();
        // Records in flight come back (those due for a retry fail: nothing is sent while
        // aborting). Bounded like every wait; on timeout the abort may be tried again.
        let max_block = shared.config.max_block;
        let settled = async {
            self.flush().await;
            shared.adds_settled().await;
        };
        if tokio::time::timeout(max_block, settled).await.is_err() {
            return Err(self.fail_fatally_or_keep(Error::timeout(
                "abort: waiting for the transaction's records in flight",
                max_block,
            )));
        }
        if let Err(e) = shared.end_txn(false).await {
            return Err(self.fail_fatally_or_keep(e));
        }
        let bump = shared
            .state()
            .idem
            .as_ref()
            .is_some_and(|i| i.bump_required);
        if bump {
            let current = shared.producer_id_and_epoch().ok();
            if let Err(e) = shared.init_producer_id(current).await {
                return Err(self.fail_fatally_or_keep(e));
            }
        }
        shared.with_txn(|t| {
            t.finish();
            Ok(())
        })
    }

    /// A failed abort: fatal errors kill the producer; otherwise the abort may be tried
    /// again (the state goes back to AbortableError).
    fn fail_fatally_or_keep(&self, e: Error) -> Error {
        if let Some(txn) = self.shared().state().txn.as_mut() {
            txn.abort_failed(&e);
        }
        e
    }
}
