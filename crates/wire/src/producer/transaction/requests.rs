//! The requests of a transactional producer: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn to the transaction coordinator, TxnOffsetCommit to a group
//! coordinator, each through one retrying call. They report their outcomes to the state
//! machine ([`TxnState`]) and change nothing else of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::state::TxnState;
use crate::cluster::coordinator::{Backoff, Coordinator, CoordinatorKey, Lane, Retry};
use crate::config::wire_ms;
use crate::error::{Error, KafkaCode, Result};
use crate::producer::idempotence::ProducerIdState;
use crate::producer::Shared;
use crate::types::{topic_name, ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

/// What a transactional producer keeps beside its state: the coordinators, and a lock
/// that makes the transactional calls one at a time.
pub(crate) struct TxnContext {
    transactional_id: String,
    coordinator: Coordinator,
    groups: Mutex<HashMap<String, Arc<Coordinator>>>,
    /// Held by each public transactional call for its whole run.
    pub(super) op: tokio::sync::Mutex<()>,
    /// Bumped when an AddPartitionsToTxn comes back: `commit` and `abort` wait on it.
    pub(super) adds_settled: watch::Sender<u64>,
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
            coordinator: Coordinator::new(
                CoordinatorKey::Transaction(id.to_string()),
                shared_cluster.clone(),
                Duration::ZERO,
                backoff,
            ),
            groups: Mutex::new(HashMap::new()),
            op: tokio::sync::Mutex::new(()),
            adds_settled: watch::channel(0).0,
        }
    }

    fn group(&self, shared: &Shared, group_id: &str) -> Arc<Coordinator> {
        let mut groups = crate::sync::lock(&self.groups);
        Arc::clone(groups.entry(group_id.to_string()).or_insert_with(|| {
            Arc::new(Coordinator::new(
                CoordinatorKey::Group(group_id.to_string()),
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

/// Codes the client retries by itself inside a transactional call, beyond the
/// retriable ones. CONCURRENT_TRANSACTIONS clears fast (the previous transaction's
/// markers are being written): it is retried sooner, as Java does.
const RETRIED_IN_CLIENT: &[(KafkaCode, Option<Duration>)] = &[
    (
        KafkaCode::ConcurrentTransactions,
        Some(Duration::from_millis(20)),
    ),
    (KafkaCode::UnknownTopicOrPartition, None),
];

/// Sends `make()`'s request to `coordinator` through its retrying call, reading the
/// response with `read`: retriable failures (coordinator moves and loads, concurrent
/// transactions, network) are retried with the producer's backoff until `deadline`.
async fn call<R, T, F, C>(
    shared: &Shared,
    coordinator: &Coordinator,
    deadline: Instant,
    what: &str,
    make: F,
    read: C,
) -> Result<T>
where
    R: Request,
    F: Fn() -> R,
    C: Fn(R::Response) -> Result<T>,
{
    let backoff = Backoff::Exponential {
        base: shared.config.retry_backoff,
        max: shared.config.retry_backoff_max,
    };
    let retry = Retry::until(deadline, backoff).also(RETRIED_IN_CLIENT);
    coordinator
        .call(Lane::Membership, &retry, what, make, read)
        .await
        .map_err(|e| e.context(what))
}

impl Shared {
    pub(super) fn producer_id_and_epoch(&self) -> Result<(i64, i16)> {
        match self.state().idem.as_ref().map(|i| i.state) {
            Some(ProducerIdState::Ready { id, epoch }) => Ok((id, epoch)),
            _ => Err(Error::illegal_state(
                "the transactional producer has no producer id: call init_transactions()",
            )),
        }
    }

    /// EndTxn, when the coordinator knows of a transaction.
    pub(super) async fn end_txn(&self, commit: bool) -> Result<()> {
        let ctx = self.txn_ctx()?;
        let involved = self
            .state()
            .txn
            .as_ref()
            .is_some_and(TxnState::involves_coordinator);
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
    }

    /// InitProducerId for our transactional id: a new epoch (fencing older instances,
    /// aborting their open transaction) or, with `current`, the KIP-360 bump of our own
    /// epoch after a sequence gap.
    pub(super) async fn init_producer_id(&self, current: Option<(i64, i16)>) -> Result<()> {
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
            |r| Error::check_code(r.error_code, || "InitProducerId".to_string()).map(|()| r),
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

    /// AddOffsetsToTxn: the transaction will hold offsets of `group`.
    pub(super) async fn add_offsets_to_txn(
        &self,
        (id, epoch): (i64, i16),
        group: &ConsumerGroupMetadata,
        deadline: Instant,
    ) -> Result<()> {
        let ctx = self.txn_ctx()?;
        call(
            self,
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
        .await
    }

    /// TxnOffsetCommit to the group coordinator: `offsets` of `group`, committed if
    /// and only if the transaction commits.
    pub(super) async fn txn_offset_commit(
        &self,
        (id, epoch): (i64, i16),
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
        deadline: Instant,
    ) -> Result<()> {
        let ctx = self.txn_ctx()?;
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
        let coordinator = ctx.group(self, &group.group_id);
        call(
            self,
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
                                    .with_name(topic_name(t))
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
        .await
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
                .map(|t| t.adding().clone())
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
                                        .with_name(topic_name(t))
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
        }
    };
    {
        let mut st = shared.state();
        if let Some(txn) = st.txn.as_mut() {
            match &result {
                Ok(()) => debug!(
                    partitions = partitions.len(),
                    "partitions added to the transaction"
                ),
                Err(e) => warn!(error = %e, "adding partitions to the transaction failed"),
            }
            txn.on_added(&result);
        }
    }
    ctx.adds_settled.send_modify(|n| *n = n.wrapping_add(1));
    shared.wake.notify_one();
}
