//! Transactions: the state machine of a transactional producer, and its requests to the
//! transaction coordinator (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn)
//! and to a group coordinator (TxnOffsetCommit), after Java's `TransactionManager`.
//!
//! States: `Uninitialized` → (`init_transactions`) `Ready` → (`begin`) `InTransaction` →
//! (`commit`) `Committing` → `Ready`, or (`abort`) `Aborting` → `Ready`. A failure in a
//! transaction moves it to `AbortableError` (only `abort` is allowed next), a fatal one
//! (fenced, invalid epoch, authorization) to `FatalError` (nothing is allowed any more).
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::idempotence::ProducerIdState;
use super::{completion, Producer, Shared};
use crate::consumer::group::coordinator::{is_coordinator_error, Coordinator, Lane};
use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::config::wire_ms;
use crate::error::{Error, KafkaCode, Result};

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
    pub(crate) phase: Phase,
    /// Partitions the coordinator added to the current transaction.
    pub(crate) added: BTreeSet<(String, i32)>,
    /// Partitions sent to but not yet requested from the coordinator.
    pub(crate) pending: BTreeSet<(String, i32)>,
    /// Partitions in the AddPartitionsToTxn request in flight.
    pub(crate) adding: BTreeSet<(String, i32)>,
    /// Offsets were added to the current transaction (AddOffsetsToTxn).
    pub(crate) offsets_added: bool,
    /// The error of `AbortableError` / `FatalError`.
    pub(crate) error: Option<Error>,
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

    fn reset_transaction(&mut self) {
        self.added.clear();
        self.pending.clear();
        self.offsets_added = false;
        self.error = None;
    }
}

/// What a transactional producer keeps beside its state: the coordinators, and a lock
/// that makes the transactional calls one at a time.
pub(crate) struct TxnContext {
    pub(crate) transactional_id: String,
    pub(crate) coordinator: Coordinator,
    groups: Mutex<HashMap<String, Arc<Coordinator>>>,
    op: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TxnContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnContext")
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

impl TxnContext {
    pub(crate) fn new(
        shared_cluster: &crate::cluster::Cluster,
        id: &str,
        backoff: Duration,
    ) -> Self {
        TxnContext {
            transactional_id: id.to_string(),
            coordinator: Coordinator::for_transaction(
                id.to_string(),
                shared_cluster.clone(),
                backoff,
            ),
            groups: Mutex::new(HashMap::new()),
            op: tokio::sync::Mutex::new(()),
        }
    }

    fn group(&self, shared: &Shared, group_id: &str) -> Arc<Coordinator> {
        let mut groups = match self.groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        Arc::clone(groups.entry(group_id.to_string()).or_insert_with(|| {
            Arc::new(Coordinator::new(
                group_id.to_string(),
                shared.cluster.clone(),
                Duration::ZERO,
                shared.config.retry_backoff,
            ))
        }))
    }
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Codes the client retries by itself inside a transactional call.
fn retriable_in_client(err: &Error) -> bool {
    err.is_retriable()
        || matches!(
            err.kafka_code(),
            Some(KafkaCode::ConcurrentTransactions | KafkaCode::UnknownTopicOrPartition)
        )
}

/// Sends `make()`'s request to `coordinator`, checking the response with `check`, and
/// retries retriable failures (coordinator moves and loads, concurrent transactions,
/// network) with backoff until `deadline`.
async fn call<R, F, C>(
    shared: &Shared,
    coordinator: &Coordinator,
    deadline: Instant,
    what: &str,
    make: F,
    check: C,
) -> Result<R::Response>
where
    R: Request,
    F: Fn() -> R,
    C: Fn(&R::Response) -> Result<()>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let request = make();
        let left = deadline.saturating_duration_since(Instant::now());
        let result = match coordinator
            .send_within(
                Lane::Membership,
                &request,
                left.max(Duration::from_millis(1)),
            )
            .await
        {
            Ok(response) => check(&response).map(|()| response),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => return Ok(r),
            Err(e) if retriable_in_client(&e) && Instant::now() < deadline => {
                if e.kafka_code().is_some_and(is_coordinator_error) {
                    coordinator.invalidate();
                }
                debug!(error = %e, attempt, "{what} retried");
                let config = &shared.config;
                // CONCURRENT_TRANSACTIONS clears fast (the previous transaction's markers
                // are being written): retry it sooner, as Java does.
                let pause = if e.kafka_code() == Some(KafkaCode::ConcurrentTransactions) {
                    Duration::from_millis(20)
                } else {
                    config.retry_backoff_for(attempt)
                };
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e.context(what)),
        }
    }
}

impl Shared {
    fn txn_ctx(&self) -> Result<&TxnContext> {
        self.txn
            .as_ref()
            .ok_or_else(|| Error::illegal_state("the producer has no transactional.id"))
    }

    fn producer_id_and_epoch(&self) -> Result<(i64, i16)> {
        match self.state().idem.as_ref().map(|i| i.state) {
            Some(ProducerIdState::Ready { id, epoch }) => Ok((id, epoch)),
            _ => Err(Error::illegal_state(
                "the transactional producer has no producer id: call init_transactions()",
            )),
        }
    }

    /// Moves from one of `from` to `to`, or explains why not.
    fn transition(&self, from: &[Phase], to: Phase, call: &str) -> Result<()> {
        let mut st = self.state();
        let txn = st
            .txn
            .as_mut()
            .ok_or_else(|| Error::illegal_state("the producer has no transactional.id"))?;
        if from.contains(&txn.phase) {
            txn.phase = to;
            return Ok(());
        }
        if let (Phase::FatalError | Phase::AbortableError, Some(e)) = (txn.phase, &txn.error) {
            return Err(e.context(format!("{call}: the transaction failed earlier")));
        }
        Err(Error::illegal_state(format!(
            "{call} is not allowed in transaction state {:?}",
            txn.phase
        )))
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

    /// Waits until no AddPartitionsToTxn is in flight.
    async fn adds_settled(&self) {
        loop {
            let busy = self
                .state()
                .txn
                .as_ref()
                .is_some_and(|t| !t.adding.is_empty());
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// EndTxn, when the coordinator knows of a transaction.
    async fn end_txn(&self, commit: bool) -> Result<()> {
        let ctx = self.txn_ctx()?;
        let involved = self
            .state()
            .txn
            .as_ref()
            .is_some_and(|t| !t.added.is_empty() || t.offsets_added);
        if !involved {
            return Ok(());
        }
        let (id, epoch) = self.producer_id_and_epoch()?;
        let deadline = Instant::now() + self.config.max_block;
        call(
            self,
            &ctx.coordinator,
            deadline,
            if commit {
                "EndTxn(commit)"
            } else {
                "EndTxn(abort)"
            },
            || {
                EndTxnRequest::default()
                    .with_transactional_id(txn_id(&ctx.transactional_id))
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
                    .with_committed(commit)
            },
            |r| Error::check_code(r.error_code, || "EndTxn".to_string()),
        )
        .await
        .map(|_| ())
    }

    /// InitProducerId for our transactional id: a new epoch (fencing older instances,
    /// aborting their open transaction) or, with `current`, the KIP-360 bump of our own
    /// epoch after a sequence gap.
    async fn init_producer_id(&self, current: Option<(i64, i16)>) -> Result<()> {
        let ctx = self.txn_ctx()?;
        let (pid, epoch) = current.unwrap_or((-1, -1));
        let timeout_ms = wire_ms(self.config.transaction_timeout);
        let deadline = Instant::now() + self.config.max_block;
        let response = call(
            self,
            &ctx.coordinator,
            deadline,
            "InitProducerId",
            || {
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(txn_id(&ctx.transactional_id)))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
            },
            |r| Error::check_code(r.error_code, || "InitProducerId".to_string()),
        )
        .await?;
        let (id, epoch) = (response.producer_id.0, response.producer_epoch);
        debug!(transactional_id = %ctx.transactional_id, producer_id = id, epoch, "transactional producer id");
        let mut st = self.state();
        let st = &mut *st;
        if let Some(idem) = st.idem.as_mut() {
            // The coordinator's id and epoch; every partition's sequences from 0.
            idem.reset(&mut st.acc, id, epoch);
        }
        Ok(())
    }
}

/// Sends one AddPartitionsToTxn for every pending partition (run by the sender, one at a
/// time).
pub(crate) async fn add_partitions(shared: Arc<Shared>) {
    let Some(ctx) = shared.txn.as_ref() else {
        return;
    };
    let (partitions, stamp) = {
        let st = shared.state();
        let stamp = match st.idem.as_ref().map(|i| i.state) {
            Some(ProducerIdState::Ready { id, epoch }) => Some((id, epoch)),
            _ => None,
        };
        (
            st.txn
                .as_ref()
                .map(|t| t.adding.clone())
                .unwrap_or_default(),
            stamp,
        )
    };
    let result = match stamp {
        None => Err(Error::illegal_state("no producer id")),
        Some(_) if partitions.is_empty() => Ok(()),
        Some((id, epoch)) => {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &partitions {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            let deadline = Instant::now() + shared.config.max_block;
            call(
                &shared,
                &ctx.coordinator,
                deadline,
                "AddPartitionsToTxn",
                || {
                    AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(txn_id(&ctx.transactional_id))
                        .with_v3_and_below_producer_id(ProducerId(id))
                        .with_v3_and_below_producer_epoch(epoch)
                        .with_v3_and_below_topics(
                            by_topic
                                .iter()
                                .map(|(t, ps)| {
                                    AddPartitionsToTxnTopic::default()
                                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        )
                },
                |r| {
                    Error::check_code(r.error_code, || "AddPartitionsToTxn".to_string())?;
                    // The first real error wins; OPERATION_NOT_ATTEMPTED (55) only says
                    // another partition failed.
                    let mut first: Option<Error> = None;
                    for t in &r.results_by_topic_v3_and_below {
                        for p in &t.results_by_partition {
                            if let Err(e) = Error::check_code(p.partition_error_code, || {
                                format!(
                                    "adding {}-{} to the transaction",
                                    t.name.0.as_str(),
                                    p.partition_index
                                )
                            }) {
                                if e.kafka_code() != Some(KafkaCode::OperationNotAttempted)
                                    || first.is_none()
                                {
                                    first = Some(e);
                                }
                            }
                        }
                    }
                    first.map_or(Ok(()), Err)
                },
            )
            .await
            .map(|_| ())
        }
    };
    {
        let mut st = shared.state();
        if let Some(txn) = st.txn.as_mut() {
            txn.adding.clear();
            match &result {
                Ok(()) => {
                    debug!(
                        partitions = partitions.len(),
                        "partitions added to the transaction"
                    );
                    txn.added.extend(partitions);
                }
                Err(e) => {
                    warn!(error = %e, "adding partitions to the transaction failed");
                    txn.record_error(e);
                }
            }
        }
    }
    shared.wake.notify_one();
}

/// The group a consumer belongs to, as `send_offsets_to_transaction` needs it: the
/// coordinator fences commits from members of an older generation (KIP-447).
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
        shared.transition(&[Phase::Ready], Phase::InTransaction, "begin")?;
        if let Some(txn) = shared.state().txn.as_mut() {
            txn.reset_transaction();
        }
        Ok(())
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
        let (id, epoch) = shared.producer_id_and_epoch()?;
        let deadline = Instant::now() + shared.config.max_block;
        let added = call(
            shared,
            &ctx.coordinator,
            deadline,
            "AddOffsetsToTxn",
            || {
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(txn_id(&ctx.transactional_id))
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
            },
            |r| Error::check_code(r.error_code, || "AddOffsetsToTxn".to_string()),
        )
        .await;
        if let Err(e) = added {
            return Err(shared.txn_failed(e));
        }
        if let Some(txn) = shared.state().txn.as_mut() {
            txn.offsets_added = true;
        }
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, om) in offsets {
            topics.entry(tp.topic.as_str()).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(om.offset)
                    .with_committed_leader_epoch(om.leader_epoch.unwrap_or(-1))
                    .with_committed_metadata(Some(StrBytes::from_string(
                        om.metadata.clone().unwrap_or_default(),
                    ))),
            );
        }
        let coordinator = ctx.group(shared, &group.group_id);
        let committed = call(
            shared,
            &coordinator,
            deadline,
            "TxnOffsetCommit",
            || {
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(txn_id(&ctx.transactional_id))
                    .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
                    .with_generation_id(group.generation_id)
                    .with_member_id(StrBytes::from_string(group.member_id.clone()))
                    .with_group_instance_id(
                        group.group_instance_id.clone().map(StrBytes::from_string),
                    )
                    .with_topics(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                TxnOffsetCommitRequestTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                    .with_partitions(ps.clone())
                            })
                            .collect(),
                    )
            },
            |r| {
                for t in &r.topics {
                    for p in &t.partitions {
                        Error::check_code(p.error_code, || {
                            format!(
                                "committing the offset of {}-{} in the transaction",
                                t.name.0.as_str(),
                                p.partition_index
                            )
                        })?;
                    }
                }
                Ok(())
            },
        )
        .await;
        committed.map(|_| ()).map_err(|e| shared.txn_failed(e))
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
            Ok(()) => {
                let mut st = shared.state();
                if let Some(txn) = st.txn.as_mut() {
                    txn.reset_transaction();
                    txn.phase = Phase::Ready;
                }
                Ok(())
            }
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
        let mut st = shared.state();
        if let Some(txn) = st.txn.as_mut() {
            txn.reset_transaction();
            txn.phase = Phase::Ready;
        }
        Ok(())
    }

    /// A failed abort: fatal errors kill the producer; otherwise the abort may be tried
    /// again (the state goes back to AbortableError).
    fn fail_fatally_or_keep(&self, e: Error) -> Error {
        let mut st = self.shared().state();
        if let Some(txn) = st.txn.as_mut() {
            if e.is_fatal_producer_error() {
                txn.phase = Phase::FatalError;
            } else {
                txn.phase = Phase::AbortableError;
            }
            txn.error = Some(e.clone());
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_make_the_transaction_abortable_and_fencing_makes_it_fatal_for_good() {
        let mut t = TxnState::new();
        t.phase = Phase::InTransaction;
        t.added.insert(("t".to_string(), 0));
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
}
