//! The consumer: group-managed ([`subscribe`](Consumer::subscribe)) or manual
//! ([`assign`](Consumer::assign)) partitions, records as an async stream, offsets
//! committed when the application says it has processed them.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use sluice_wire::consumer::{Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let config = ConsumerConfig::new("127.0.0.1:19092")
//!     .group_id("billing")
//!     .auto_offset_reset(OffsetReset::Earliest);
//! let consumer = Consumer::new(config).await?;
//! consumer.subscribe(["orders"])?;
//! loop {
//!     let record = consumer.recv().await?;
//!     println!("{}-{}@{}: {:?}", record.topic(), record.partition(), record.offset(), record.value());
//!     // Processed: commit the offset of the next record to read.
//!     let mut offsets = BTreeMap::new();
//!     offsets.insert(record.topic_partition(), OffsetAndMetadata::new(record.offset() + 1));
//!     consumer.commit(&offsets).await?;
//! #   break;
//! }
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `config.rs`: [`ConsumerConfig`], typed and from Java keys.
//! - `state.rs`: assignment, positions and the prefetch buffer, shared by the handle and
//!   the background tasks.
//! - `fetcher.rs` + `fetch_session.rs`: one fetch in flight per broker, fetch sessions
//!   (KIP-227); `completed_fetch.rs`: a buffered fetch, decoded lazily and zero-copy,
//!   with `read_committed` filtering.
//! - `offsets.rs`: commit, committed offsets, position resolution and resets
//!   ([`TopicPartition`] and [`OffsetAndMetadata`] live in [`types`](crate::types)).
//! - `validation.rs`: after a leader change, positions are checked against the new
//!   leader's log (KIP-320, OffsetForLeaderEpoch); a truncated log is reported
//!   ([`ErrorKind::LogTruncation`](crate::ErrorKind::LogTruncation)) or, with an
//!   `auto.offset.reset`, the position goes back to where the logs diverge.
//! - `poll.rs`: what one `recv` / `recv_batch` / `keep_alive` does: the poll timer,
//!   auto-commit, waiting errors, taking records from the buffer.
//! - `close.rs`: the last auto-commit, the revoke callback and LeaveGroup on close.
//! - `record.rs`: [`ConsumerRecord`], [`PartitionRecords`]; `event.rs`:
//!   [`ConsumerEvent`] (a record or the end of a partition, for
//!   [`recv_event`](Consumer::recv_event)).
//! - `group/`: membership (coordinator, join / sync / heartbeat / leave), the
//!   `ConsumerProtocol` bytes, the assignors, the [`RebalanceListener`].
//!
//! # Cancellation
//! [`Consumer::recv`] and [`Consumer::recv_batch`] are cancel-safe: a record is taken
//! from the buffer and the position moved in one step without an `.await` between them,
//! so dropping the future never loses or repeats a record. [`Consumer::commit`] may be
//! dropped, but then whether the commit happened is unknown.

mod close;
mod commit_queue;
mod completed_fetch;
pub mod config;
mod event;
mod fetch_session;
mod fetcher;
pub mod group;
mod offsets;
mod poll;
mod record;
mod state;
mod validation;

use crate::sync;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use crate::types::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
pub use config::{AssignmentStrategy, ConsumerConfig, OffsetReset};
pub use event::ConsumerEvent;
pub use group::listener::{RebalanceContext, RebalanceListener};
pub use record::{ConsumerRecord, PartitionRecords};

use self::commit_queue::CommitQueue;
use self::state::{Shared, Start, State};
use crate::cluster::coordinator::{Coordinator, CoordinatorKey};
use crate::cluster::Cluster;
use crate::cluster::OffsetSpec;
use crate::error::{Error, Result};

/// A commit running in the background ([`Consumer::commit_async`]). Await it for the
/// broker's answer, or drop it: the commit goes on either way.
#[derive(Debug)]
pub struct PendingCommit(JoinHandle<Result<()>>);

impl Future for PendingCommit {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(e)) => Poll::Ready(Err(Error::closed(format!(
                "the commit task ended without an answer: {e}"
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A Kafka consumer. See the [module docs](self).
pub struct Consumer {
    shared: Arc<Shared>,
    /// Handed to the group task when it starts; called on close too.
    listener: Option<Arc<dyn RebalanceListener>>,
    fetcher: JoinHandle<()>,
    group: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.shared.config.group_id)
            .finish()
    }
}

impl Consumer {
    /// Connects to the cluster in `config` and starts the fetcher.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(config.cluster.clone()).await?;
        Consumer::with_cluster(cluster, config)
    }

    /// A consumer on an already connected cluster (its pooled connections carry the
    /// fetches). Must be called within a Tokio runtime.
    pub fn with_cluster(cluster: Cluster, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::build(cluster, config, None)
    }

    /// Like [`with_cluster`](Self::with_cluster), with a listener for rebalances.
    pub fn with_listener(
        cluster: Cluster,
        config: ConsumerConfig,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Consumer> {
        Consumer::build(cluster, config, Some(listener))
    }

    fn build(
        cluster: Cluster,
        config: ConsumerConfig,
        listener: Option<Arc<dyn RebalanceListener>>,
    ) -> Result<Consumer> {
        config.validate()?;
        let coordinator = config.group_id.clone().map(|g| {
            Coordinator::new(
                CoordinatorKey::Group(g),
                cluster.clone(),
                config.max_poll_interval,
                config.retry_backoff,
            )
        });
        let next_auto_commit = Instant::now() + config.auto_commit_interval;
        let shared = Arc::new(Shared {
            config,
            cluster,
            state: Mutex::new(State::new(next_auto_commit)),
            data_ready: Notify::new(),
            fetcher_wake: Notify::new(),
            group_wake: Notify::new(),
            coordinator,
            commits: CommitQueue::default(),
        });
        let watched = Arc::clone(&shared);
        let fetcher = crate::task::spawn_watched(
            "consumer's fetcher",
            fetcher::run(Arc::clone(&shared)),
            move |message| watched.fail(Error::illegal_state(message)),
        );
        Ok(Consumer {
            shared,
            listener,
            fetcher,
            group: Mutex::new(None),
        })
    }

    /// Joins the group (`group.id` required) for `topics`; the coordinator's assignor
    /// decides which partitions this member reads. Calling it again changes the
    /// subscription (a rebalance follows).
    pub fn subscribe<I, S>(&self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if self.shared.coordinator.is_none() {
            return Err(Error::config("subscribe needs a group.id"));
        }
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        {
            let mut state = self.shared.lock();
            if state.subscription.is_none() && !state.assignment.is_empty() {
                return Err(Error::config(
                    "subscribe after assign: a consumer is either group-managed or manual",
                ));
            }
            state.subscription = Some(topics);
        }
        let mut group = sync::lock(&self.group);
        if group.is_none() {
            *group = Some(tokio::spawn(group::run(
                Arc::clone(&self.shared),
                self.listener.clone(),
            )));
        }
        self.shared.group_wake.notify_one();
        Ok(())
    }

    /// Reads exactly `partitions` (no group membership; commits still need a
    /// `group.id`). Partitions kept from the previous assignment keep their positions;
    /// new ones start at the committed offset, else per `auto.offset.reset`.
    pub fn assign<I>(&self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = TopicPartition>,
    {
        let wanted: Vec<TopicPartition> = partitions.into_iter().collect();
        {
            let mut state = self.shared.lock();
            if state.subscription.is_some() {
                return Err(Error::config(
                    "assign after subscribe: a consumer is either group-managed or manual",
                ));
            }
            let gone: Vec<TopicPartition> = state
                .assignment
                .keys()
                .filter(|tp| !wanted.contains(tp))
                .cloned()
                .collect();
            for tp in gone {
                state.remove(&tp);
            }
            for tp in wanted {
                if !state.assignment.contains_key(&tp) {
                    state.add(tp, Start::Committed);
                }
            }
        }
        self.shared.fetcher_wake.notify_one();
        Ok(())
    }

    /// The subscribed topics the cluster does not have, as of the group's last
    /// metadata check (on each join and every `metadata.max.age.ms`): librdkafka's
    /// "Subscribed topic not available". Each is also logged once at WARN when it goes
    /// missing, and reported once by [`recv_event`](Self::recv_event)
    /// ([`ConsumerEvent::TopicNotAvailable`]). A topic created later leaves this list, and the group rebalances to
    /// read it. Empty for a consumer that [`assign`](Self::assign)s.
    pub fn missing_topics(&self) -> Vec<String> {
        self.shared.lock().missing_topics.iter().cloned().collect()
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.lock().assignment.keys().cloned().collect()
    }

    /// The next record. Cancel-safe. Fails with the error of a failed fetch or group
    /// operation (OFFSET_OUT_OF_RANGE under `auto.offset.reset=none`, a fenced static
    /// member, ...).
    pub async fn recv(&self) -> Result<ConsumerRecord> {
        poll::recv(&self.shared).await
    }

    /// The next record, or news of the input: with `enable.partition.eof`, that a
    /// partition has been read to its end ([`ConsumerEvent::PartitionEof`], librdkafka's
    /// `enable.partition.eof`; Java users compare `position` with `endOffsets`); that a
    /// subscribed topic does not exist ([`ConsumerEvent::TopicNotAvailable`]).
    /// Cancel-safe. Fails as [`recv`](Self::recv) does.
    ///
    /// Reading every assigned partition to its end:
    ///
    /// ```no_run
    /// # use std::collections::BTreeSet;
    /// # use sluice_wire::consumer::{Consumer, ConsumerEvent};
    /// # async fn run(consumer: Consumer) -> Result<(), sluice_wire::Error> {
    /// let mut at_end = BTreeSet::new();
    /// while at_end.len() < consumer.assignment().len() {
    ///     match consumer.recv_event().await? {
    ///         ConsumerEvent::Record(r) => {
    ///             at_end.remove(&r.topic_partition());
    ///             println!("{:?}", r.value());
    ///         }
    ///         ConsumerEvent::PartitionEof { partition, .. } => {
    ///             at_end.insert(partition);
    ///         }
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_event(&self) -> Result<ConsumerEvent> {
        poll::recv_event(&self.shared).await
    }

    /// The buffered records of one partition from one fetch (waits for some). Cancel-safe.
    pub async fn recv_batch(&self) -> Result<PartitionRecords> {
        poll::recv_batch(&self.shared).await
    }

    /// Counts as a poll for `max.poll.interval.ms` without taking a record, as Java's
    /// `poll()` does while every partition is paused: for an application that paused its
    /// partitions, or holds a record it cannot process yet, and must stay in the group
    /// meanwhile (a member that neither calls [`recv`](Self::recv) nor this for
    /// `max.poll.interval.ms` leaves the group). Hands out no record. Fails, as `recv`
    /// would, with the error a failed fetch or group operation left for the next poll.
    pub fn keep_alive(&self) -> Result<()> {
        poll::keep_alive(&self.shared)
    }

    /// Records as a [`Stream`]; it never ends on its own (errors are items).
    pub fn stream(&self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        futures::stream::unfold(self, |c| async move { Some((c.recv().await, c)) })
    }

    /// Commits `offsets` for the group and waits for the coordinator's answer, retrying
    /// retriable failures up to the request timeout. It goes after the commits made
    /// before it (see [`commit_async`](Self::commit_async)).
    pub async fn commit(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        offsets::commit(&self.shared, offsets).await
    }

    /// Commits the current position of every assigned partition (everything `recv` has
    /// handed out counts as processed).
    pub async fn commit_positions(&self) -> Result<()> {
        let owned = self.assignment();
        offsets::commit(&self.shared, &group::positions(&self.shared, &owned)).await
    }

    /// Starts a commit and returns at once; await the [`PendingCommit`] for the answer.
    ///
    /// As Java's `commitAsync`: the request is sent once and never retried (a failure is
    /// the answer; the next commit carries newer offsets), and this consumer's commits,
    /// async and not, reach the coordinator one at a time in the order they were made,
    /// so a commit never lands after a later one and the committed offset never goes
    /// back.
    pub fn commit_async(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> PendingCommit {
        let shared = Arc::clone(&self.shared);
        // The place in the queue is taken now, in the caller's order.
        let turn = shared.coordinator.as_ref().map(|_| shared.commits.join());
        PendingCommit(tokio::spawn(async move {
            match turn {
                Some(turn) => {
                    offsets::commit_in_turn(&shared, &offsets, turn, offsets::Attempts::Once).await
                }
                // No group.id: fails saying so.
                None => offsets::commit(&shared, &offsets).await,
            }
        }))
    }

    /// The group's committed offsets of `partitions` (`None` where nothing is committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        offsets::committed(&self.shared, partitions).await
    }

    /// The offset of the next record `recv` returns for `tp`; `None` when `tp` is not
    /// assigned or its position is not resolved yet.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared
            .lock()
            .assignment
            .get(tp)
            .and_then(|p| p.position)
    }

    /// Makes `offset` the next offset read from the assigned partition `tp`.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if self.shared.seek_to(tp, offset) {
            Ok(())
        } else {
            Err(Error::config(format!(
                "seek on {tp}, which is not assigned"
            )))
        }
    }

    /// Seeks each of `partitions` to its log start offset.
    pub fn seek_to_beginning(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_spec(partitions, OffsetSpec::Earliest)
    }

    /// Seeks each of `partitions` to its log end offset.
    pub fn seek_to_end(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_spec(partitions, OffsetSpec::Latest)
    }

    /// Seeks each of `partitions` to the first record with a timestamp at or after
    /// `timestamp_ms` (the end when there is none).
    pub fn seek_to_timestamp(
        &self,
        partitions: &[TopicPartition],
        timestamp_ms: i64,
    ) -> Result<()> {
        self.seek_spec(partitions, OffsetSpec::Timestamp(timestamp_ms))
    }

    fn seek_spec(&self, partitions: &[TopicPartition], spec: OffsetSpec) -> Result<()> {
        {
            let mut state = self.shared.lock();
            for tp in partitions {
                if !state.assignment.contains_key(tp) {
                    return Err(Error::config(format!(
                        "seek on {tp}, which is not assigned"
                    )));
                }
            }
            for tp in partitions {
                let epoch = state.bump();
                state.drop_buffered(tp);
                state.clear_truncation(tp);
                if let Some(ps) = state.assignment.get_mut(tp) {
                    ps.set_position(None, None);
                    ps.start = Start::Spec(spec);
                    ps.epoch = epoch;
                }
            }
        }
        self.shared.fetcher_wake.notify_one();
        Ok(())
    }

    /// Stops fetching and returning records of `partitions`; they stay assigned (and in
    /// the group) and keep their positions.
    pub fn pause(&self, partitions: &[TopicPartition]) {
        let mut state = self.shared.lock();
        for tp in partitions {
            if let Some(ps) = state.assignment.get_mut(tp) {
                ps.paused = true;
            }
        }
    }

    /// Resumes paused `partitions`.
    pub fn resume(&self, partitions: &[TopicPartition]) {
        {
            let mut state = self.shared.lock();
            for tp in partitions {
                if let Some(ps) = state.assignment.get_mut(tp) {
                    ps.paused = false;
                }
            }
        }
        self.shared.fetcher_wake.notify_one();
        self.shared.data_ready.notify_one();
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let state = self.shared.lock();
        state
            .assignment
            .iter()
            .filter(|(_, ps)| ps.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The high watermark of `tp` seen in the last fetch (`None` before one).
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        let state = self.shared.lock();
        state
            .assignment
            .get(tp)
            .map(|p| p.high_watermark)
            .filter(|h| *h >= 0)
    }

    /// The consumer's group membership as a transactional producer's
    /// [`send_offsets_to_transaction`](crate::producer::Producer::send_offsets_to_transaction)
    /// needs it (KIP-447): group id, generation, member id, group instance id. `None`
    /// without a `group.id`. A consumer with manual assignment reports generation -1 and
    /// an empty member id, which the coordinator accepts for a group with no members.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let coordinator = self.shared.coordinator.as_ref()?;
        let state = self.shared.lock();
        let subscribed = state.subscription.is_some();
        Some(ConsumerGroupMetadata {
            group_id: coordinator.id().to_string(),
            generation_id: if subscribed {
                state.membership.generation
            } else {
                -1
            },
            member_id: if subscribed {
                state.membership.member_id.clone()
            } else {
                String::new()
            },
            group_instance_id: self.shared.config.group_instance_id.clone(),
        })
    }

    /// The member id in the group, once joined.
    pub fn member_id(&self) -> Option<String> {
        let state = self.shared.lock();
        (!state.membership.member_id.is_empty()).then(|| state.membership.member_id.clone())
    }

    /// Closes the consumer: commits positions if `enable.auto.commit`, tells the
    /// listener the partitions are revoked, and leaves the group (a static member does
    /// not leave: restarting within the session timeout keeps its partitions without a
    /// rebalance).
    pub async fn close(self) -> Result<()> {
        let group = sync::lock(&self.group).take();
        if let Some(g) = group {
            g.abort();
            let _ = g.await;
        }
        close::close(&self.shared, self.listener.as_ref()).await
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.fetcher_wake.notify_one();
        self.fetcher.abort();
        if let Ok(mut g) = self.group.lock() {
            if let Some(g) = g.take() {
                g.abort();
            }
        }
    }
}
