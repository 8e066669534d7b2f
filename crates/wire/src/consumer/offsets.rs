//! Committed offsets (OffsetCommit, OffsetFetch through the group coordinator) and
//! position resolution: a partition without a position starts at its committed offset,
//! else where `auto.offset.reset` says (ListOffsets through the partition leaders).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::commit_queue::CommitTurn;
use tokio::time::Instant;
use tracing::debug;

use super::config::OffsetReset;
use super::state::{Shared, Start};
use crate::cluster::coordinator::{Backoff, Coordinator, Lane, Retry};
use crate::cluster::offset_commit::{self, Committer};
use crate::cluster::offset_fetch;
use crate::cluster::{list_offsets, OffsetSpec};
use crate::error::{Error, Result};
use crate::types::{IsolationLevel, OffsetAndMetadata, TopicPartition};

fn coordinator(shared: &Shared) -> Result<&Coordinator> {
    shared
        .coordinator
        .as_ref()
        .ok_or_else(|| Error::config("committed offsets need a group.id"))
}

/// The retries of the consumer's offset calls: every attempt and all of them together
/// bounded by the request timeout, `retry.backoff.ms` apart.
fn until_timeout(shared: &Shared, coordinator: &Coordinator) -> Retry {
    let limit = coordinator.request_timeout();
    Retry::until(
        Instant::now() + limit,
        Backoff::Fixed(shared.config.retry_backoff),
    )
    .attempt_timeout(limit)
}

/// How often a commit is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempts {
    /// `commit`, `commitSync`: retriable failures (a coordinator move or load, a cut
    /// connection) are retried up to the request timeout.
    UntilTimeout,
    /// `commit_async` (Java: `commitAsync` never retries): one request; its failure is
    /// returned, and the next commit carries newer offsets anyway.
    Once,
}

/// Commits `offsets` for the group and waits for the coordinator's answer, after every
/// commit asked for before it (see [`CommitQueue`](super::commit_queue::CommitQueue)). Coordinator moves and loads are
/// retried up to the request timeout; REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION and
/// UNKNOWN_MEMBER_ID are returned: the partitions may have moved and the commit would
/// overwrite their new owner's progress.
pub(crate) async fn commit(
    shared: &Shared,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    coordinator(shared)?;
    let turn = shared.commits.join();
    commit_in_turn(shared, offsets, turn, Attempts::UntilTimeout).await
}

/// Commits `offsets` once its `turn` comes (taken from the consumer's
/// [`CommitQueue`](super::commit_queue::CommitQueue) when the commit was asked for),
/// sending it as `attempts` says.
pub(crate) async fn commit_in_turn(
    shared: &Shared,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    mut turn: CommitTurn,
    attempts: Attempts,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let coordinator = coordinator(shared)?;
    turn.wait().await;
    let (member_id, generation) = {
        let state = shared.lock();
        if state.subscription.is_some() {
            (
                state.membership.member_id.clone(),
                state.membership.generation,
            )
        } else {
            (String::new(), -1)
        }
    };
    let committer = Committer {
        member_id,
        generation,
        group_instance_id: shared.config.group_instance_id.clone(),
    };
    let request = offset_commit::request(coordinator.id(), committer, offsets);
    let retry = match attempts {
        Attempts::UntilTimeout => until_timeout(shared, coordinator),
        Attempts::Once => Retry::once(coordinator.request_timeout()),
    };
    coordinator
        .call(
            Lane::Offsets,
            &retry,
            "commit",
            || request.clone(),
            |response| offset_commit::read(coordinator.id(), &response),
        )
        .await
}

/// The group's committed offsets of `partitions` (`None` where nothing is committed).
pub(crate) async fn committed(
    shared: &Shared,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
    let coordinator = coordinator(shared)?;
    let request = offset_fetch::request(
        coordinator.id(),
        Some(partitions),
        shared.config.isolation_level == IsolationLevel::ReadCommitted,
    );
    coordinator
        .call(
            Lane::Offsets,
            &until_timeout(shared, coordinator),
            "offset fetch",
            || request.clone(),
            |response| offset_fetch::read(coordinator.id(), response),
        )
        .await
}

/// Gives positions to partitions that have none, unless a seek or reassignment made
/// the request stale by the time the answers come. A partition with no committed
/// offset under `auto.offset.reset=none` gets no position: it is flagged for the next
/// `recv` to report, if no seek came meanwhile (see `PartitionState::no_offset`); the
/// others are resolved all the same. Returns whether any partition was flagged, so the
/// caller looks again after a backoff (someone may commit an offset meanwhile).
pub(crate) async fn resolve_positions(
    shared: &Arc<Shared>,
    pending: Vec<(TopicPartition, Start, u64)>,
) -> Result<bool> {
    // Offsets found, with the leader epoch of a committed offset.
    let mut found: BTreeMap<TopicPartition, (i64, Option<i32>)> = BTreeMap::new();
    let mut by_spec: BTreeMap<(String, SpecKey), Vec<i32>> = BTreeMap::new();
    let mut no_offset: Vec<&TopicPartition> = Vec::new();
    let want_committed: Vec<TopicPartition> = pending
        .iter()
        .filter(|(_, s, _)| *s == Start::Committed)
        .map(|(tp, _, _)| tp.clone())
        .collect();
    let committed = if !want_committed.is_empty() && shared.coordinator.is_some() {
        committed(shared, &want_committed).await?
    } else {
        BTreeMap::new()
    };
    for (tp, start, _) in &pending {
        let spec = match start {
            Start::Committed => match committed.get(tp).cloned().flatten() {
                Some(om) => {
                    // The committed leader epoch seeds the position's epoch: validated
                    // against the current leader before the first fetch (KIP-320).
                    found.insert(tp.clone(), (om.offset, om.leader_epoch));
                    continue;
                }
                None => reset_spec(shared),
            },
            Start::Reset => reset_spec(shared),
            Start::Spec(s) => Some(*s),
        };
        let Some(spec) = spec else {
            no_offset.push(tp);
            continue;
        };
        by_spec
            .entry((tp.topic.clone(), SpecKey(spec)))
            .or_default()
            .push(tp.partition);
    }
    // Read uncommitted, as before (Java lists with the consumer's isolation level).
    let cluster = &shared.cluster;
    for ((topic, SpecKey(spec)), parts) in by_spec {
        let listed = list_offsets(
            cluster,
            &topic,
            &parts,
            spec,
            IsolationLevel::ReadUncommitted,
        )
        .await?;
        let mut latest = None;
        for (p, lo) in listed {
            let offset = if lo.offset >= 0 {
                lo.offset
            } else {
                // No record at or after the timestamp: go to the end, as Java's
                // offsetsForTimes + seekToEnd would.
                if latest.is_none() {
                    latest = Some(
                        list_offsets(
                            cluster,
                            &topic,
                            &parts,
                            OffsetSpec::Latest,
                            IsolationLevel::ReadUncommitted,
                        )
                        .await?,
                    );
                }
                latest
                    .as_ref()
                    .and_then(|l| l.get(&p))
                    .map_or(0, |l| l.offset)
            };
            found.insert(TopicPartition::new(topic.clone(), p), (offset, None));
        }
    }
    let mut flagged = false;
    let mut state = shared.lock();
    for (tp, _, epoch) in &pending {
        let Some(ps) = state.assignment.get_mut(tp) else {
            continue;
        };
        if ps.epoch != *epoch || ps.position.is_some() {
            // A seek or a reassignment since the lookup started: it wins.
            continue;
        }
        if let Some(&(offset, offset_epoch)) = found.get(tp) {
            debug!(%tp, offset, ?offset_epoch, "position resolved");
            ps.set_position(Some(offset), offset_epoch);
        } else if no_offset.contains(&tp) {
            ps.no_offset = true;
            flagged = true;
        }
    }
    Ok(flagged)
}

/// Where `auto.offset.reset` starts a partition; `None` for `none`.
fn reset_spec(shared: &Shared) -> Option<OffsetSpec> {
    match shared.config.auto_offset_reset {
        OffsetReset::Earliest => Some(OffsetSpec::Earliest),
        OffsetReset::Latest => Some(OffsetSpec::Latest),
        OffsetReset::None => None,
    }
}

/// `OffsetSpec` as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpecKey(OffsetSpec);

impl SpecKey {
    fn rank(self) -> (u8, i64) {
        match self.0 {
            OffsetSpec::Earliest => (0, 0),
            OffsetSpec::Latest => (1, 0),
            OffsetSpec::Timestamp(t) => (2, t),
        }
    }
}

impl PartialOrd for SpecKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpecKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}
