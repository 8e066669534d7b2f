//! The fetcher: one background task that keeps one Fetch request in flight per broker
//! for the assigned, unpaused partitions it leads whose positions are known, and parks
//! the answers in a prefetch buffer bounded in bytes (`sluice.prefetch.max.bytes`).
//! Each partition has a fetch position past what is buffered (read from the batch
//! headers), so the next fetch goes out while `recv` is still working through the last
//! one: a partition that reached its log end and long-polls never holds back the
//! others' next fetch.
//!
//! Fetches go over the cluster's pooled connection to each broker; group traffic
//! (heartbeats, joins, commits) has dedicated connections to the coordinator, so a
//! fetch long-polling for `fetch.max.wait.ms` never delays a heartbeat.
//!
//! Records are decoded lazily, when `recv` asks for them: a [`CompletedFetch`] holds the
//! response's bytes (`completed_fetch.rs`).
//!
//! Before planning fetches it compares each position's leader with the metadata's; a
//! new leader sends the position to validation (`validation.rs`, KIP-320) first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use tracing::{debug, warn};

use super::completed_fetch::{scan_batch_headers, CompletedFetch};
use super::config::OffsetReset;
use super::fetch_session::{FetchAt, FetchSession};
use super::offsets;
use super::state::{Shared, Start};
use super::validation::{self, Validate};
use super::TopicPartition;
use crate::config::wire_ms;
use crate::error::{Error, KafkaCode, Result};
use crate::types::{topic_name, IsolationLevel};

/// A partition to fetch: its offset and current leader epoch, and the (seek) epoch it
/// was planned under.
type Wanted = BTreeMap<TopicPartition, (FetchAt, u64)>;

type Outcome = (
    i32,
    FetchSession,
    Wanted,
    Result<Vec<(TopicPartition, PartitionData)>>,
);

/// Runs until the consumer closes.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut sessions: HashMap<i32, FetchSession> = HashMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut busy: HashSet<i32> = HashSet::new();
    // Offset lookups for partitions without a position run beside the fetches, one at a
    // time: an OffsetFetch that waits out a pending transaction (require_stable) must not
    // hold up partitions that have a position.
    // The partitions (with their seek epochs) the running lookup is for: when they are
    // no longer the ones without a position (a reassignment, a seek), the lookup is
    // dropped and a new one starts, as Java drops a pending OffsetFetch that is not the
    // same request. A stale lookup (up to a request timeout on a slow OffsetFetch) must
    // not hold up the partitions assigned since. Dropping it is safe: it writes
    // positions only at its end.
    let mut resolving: Option<BoxFuture<'_, Result<bool>>> = None;
    let mut resolving_for: Vec<(TopicPartition, Start, u64)> = Vec::new();
    let mut resolve_after: Option<tokio::time::Instant> = None;
    // Positions checked with OffsetForLeaderEpoch after a leader change (KIP-320), one
    // round at a time, beside the fetches of the other partitions.
    let mut validating: Option<BoxFuture<'_, ()>> = None;
    loop {
        let wake = shared.fetcher_wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        if shared.lock().closed {
            return;
        }
        let mut retry_soon = false;
        let may_resolve = resolve_after.is_none_or(|at| at <= tokio::time::Instant::now());
        let unresolved: Vec<(TopicPartition, Start, u64)> = shared
            .lock()
            .assignment
            .iter()
            .filter(|(_, ps)| ps.position.is_none())
            .map(|(tp, ps)| (tp.clone(), ps.start, ps.epoch))
            .collect();
        if resolving.is_some() && unresolved != resolving_for {
            debug!("the partitions without a position changed; restarting their lookup");
            resolving = None;
            resolve_after = None;
        }
        if resolving.is_none() && (may_resolve || unresolved != resolving_for) {
            if !unresolved.is_empty() {
                resolving = Some(offsets::resolve_positions(&shared, unresolved.clone()).boxed());
            }
            resolving_for = unresolved;
        } else if resolving.is_none() {
            retry_soon = true;
        }
        let Planned {
            fetches: plan,
            leaderless,
            backing_off,
            validate,
        } = plan(&shared, &busy);
        if validating.is_none() && !validate.is_empty() {
            validating = Some(validation::validate(&shared, validate).boxed());
        }
        if !leaderless.is_empty() {
            // In the background: partitions with a leader keep fetching meanwhile.
            debug!(topics = ?leaderless, "partitions without a leader; refreshing metadata");
            shared.cluster.request_refresh();
            retry_soon = true;
        }
        retry_soon |= backing_off;
        for (leader, wanted) in plan {
            busy.insert(leader);
            let session = sessions.remove(&leader).unwrap_or_default();
            in_flight.push(fetch(Arc::clone(&shared), leader, session, wanted));
        }
        let backoff = tokio::time::sleep(shared.config.retry_backoff);
        tokio::select! {
            resolved = async {
                match resolving.as_mut() {
                    Some(lookup) => lookup.await,
                    None => std::future::pending().await,
                }
            }, if resolving.is_some() => {
                resolving = None;
                resolve_after = None;
                let again = match resolved {
                    Ok(flagged) => {
                        if flagged {
                            // No committed offset under reset none: `recv` reports it.
                            shared.wake_recv();
                        }
                        flagged
                    }
                    Err(e) => {
                        if e.is_retriable() {
                            debug!(error = %e, "resolving positions, will retry");
                        } else {
                            warn!(error = %e, "resolving positions failed");
                            shared.fail(e);
                        }
                        true
                    }
                };
                if again {
                    resolve_after = Some(tokio::time::Instant::now() + shared.config.retry_backoff);
                }
            }
            () = async {
                match validating.as_mut() {
                    Some(round) => round.await,
                    None => std::future::pending().await,
                }
            }, if validating.is_some() => {
                validating = None;
            }
            Some((leader, session, wanted, outcome)) = in_flight.next() => {
                busy.remove(&leader);
                sessions.insert(leader, session);
                if let Err(e) = handle(&shared, wanted, outcome) {
                    debug!(broker = leader, error = %e, "fetch failed");
                }
            }
            () = &mut wake => {}
            () = backoff, if retry_soon => {}
        }
    }
}

/// What the fetch loop does next.
#[derive(Default)]
struct Planned {
    /// The fetchable partitions by leader, leaving out brokers with a fetch in flight.
    fetches: BTreeMap<i32, Wanted>,
    /// Topics with a partition that has no known leader.
    leaderless: BTreeSet<String>,
    /// A partition waits out a backoff after a failed fetch or validation.
    backing_off: bool,
    /// Positions to validate with the new leader before fetching them again.
    validate: Vec<Validate>,
}

/// Plans the next fetches. First compares each position's leader with the metadata's,
/// as Java's `maybeValidatePositionForCurrentLeader`: a new leader (or a new leader
/// epoch) for a position whose leader epoch is known stops the partition until
/// OffsetForLeaderEpoch has checked the position (what is buffered of it is dropped: it
/// came from the old leader and may have been truncated); without an epoch the new
/// leader is just taken.
fn plan(shared: &Shared, busy: &HashSet<i32>) -> Planned {
    let md = shared.cluster.metadata();
    let mut guard = shared.lock();
    let state = &mut *guard;
    let mut out = Planned::default();
    let mut to_validate = Vec::new();
    for (tp, ps) in state.assignment.iter_mut() {
        let Some(position) = ps.position else {
            continue;
        };
        let Some(p) = md.partition(&tp.topic, tp.partition) else {
            continue;
        };
        let Some(leader) = p.leader else {
            continue;
        };
        if ps.current_leader == Some((leader, p.leader_epoch)) {
            continue;
        }
        ps.current_leader = Some((leader, p.leader_epoch));
        if p.leader_epoch >= 0 && ps.offset_epoch.is_some() {
            debug!(%tp, position, leader, leader_epoch = p.leader_epoch, "new leader: validating the position");
            ps.validating = true;
            ps.fetch_position = Some(position);
            ps.retry_at = None;
            to_validate.push(tp.clone());
        }
    }
    for tp in to_validate {
        // A new epoch: fetches in flight and buffered records of the old leader are stale.
        let epoch = state.bump();
        state.drop_buffered(&tp);
        if let Some(ps) = state.assignment.get_mut(&tp) {
            ps.epoch = epoch;
        }
    }
    let now = tokio::time::Instant::now();
    for (tp, ps) in &state.assignment {
        if !ps.validating {
            continue;
        }
        if ps.retry_at.is_some_and(|at| at > now) {
            out.backing_off = true;
            continue;
        }
        if let (Some(position), Some(offset_epoch), Some((leader, leader_epoch))) =
            (ps.position, ps.offset_epoch, ps.current_leader)
        {
            out.validate.push(Validate {
                tp: tp.clone(),
                position,
                offset_epoch,
                leader,
                leader_epoch,
                epoch: ps.epoch,
            });
        }
    }
    if state.buffered_bytes >= shared.config.prefetch_max_bytes || state.membership.rebalancing {
        return out;
    }
    for (tp, ps) in &state.assignment {
        let Some(position) = ps.fetch_position else {
            continue;
        };
        if ps.paused || ps.validating {
            continue;
        }
        if ps.retry_at.is_some_and(|at| at > now) {
            out.backing_off = true;
            continue;
        }
        let partition = md.partition(&tp.topic, tp.partition);
        match partition.and_then(|p| p.leader) {
            Some(leader) if !busy.contains(&leader) => {
                // The epoch the position was checked against (Java sends
                // `position.currentLeader.epoch`), -1 before any.
                let leader_epoch = ps.current_leader.map_or(-1, |(_, e)| e);
                let at = FetchAt {
                    offset: position,
                    leader_epoch,
                };
                out.fetches
                    .entry(leader)
                    .or_default()
                    .insert(tp.clone(), (at, ps.epoch));
            }
            Some(_) => {}
            None => {
                out.leaderless.insert(tp.topic.clone());
            }
        }
    }
    out
}

async fn fetch(
    shared: Arc<Shared>,
    leader: i32,
    mut session: FetchSession,
    wanted: Wanted,
) -> Outcome {
    let result = fetch_inner(&shared, leader, &mut session, &wanted).await;
    if result.is_err() {
        session.reset();
    }
    (leader, session, wanted, result)
}

async fn fetch_inner(
    shared: &Shared,
    leader: i32,
    session: &mut FetchSession,
    wanted: &Wanted,
) -> Result<Vec<(TopicPartition, PartitionData)>> {
    let conn = shared.cluster.broker(leader).await?;
    let version = conn.api_versions().version_for(ApiKey::Fetch)?;
    if session.supported != (version >= 7) {
        *session = FetchSession::new(version >= 7);
    }
    let offsets: BTreeMap<TopicPartition, FetchAt> = wanted
        .iter()
        .map(|(tp, (at, _))| (tp.clone(), *at))
        .collect();
    let plan = session.plan(&offsets);
    let c = &shared.config;
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, at) in &plan.send {
        topics.entry(tp.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(at.leader_epoch)
                .with_fetch_offset(at.offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(c.max_partition_fetch_bytes),
        );
    }
    let mut forgotten: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &plan.forget {
        forgotten
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wire_ms(c.fetch_max_wait))
        .with_min_bytes(c.fetch_min_bytes)
        .with_max_bytes(c.fetch_max_bytes.max(1))
        .with_isolation_level(c.isolation_level.wire())
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(parts)
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forgotten
                .into_iter()
                .map(|(t, parts)| {
                    ForgottenTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let response = conn.send(&request).await?;
    match KafkaCode::try_from_code(response.error_code) {
        None => {}
        Some(KafkaCode::FetchSessionIdNotFound | KafkaCode::InvalidFetchSessionEpoch) => {
            debug!(broker = leader, "fetch session lost, starting a new one");
            session.reset();
            return Ok(Vec::new());
        }
        Some(code) => return Err(Error::kafka(code, format!("fetch from broker {leader}"))),
    }
    session.answered(response.session_id);
    Ok(response
        .responses
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| (TopicPartition::new(topic.clone(), p.partition_index), p))
        })
        .collect())
}

/// Applies a fetch's answers to the shared state, unless a seek or a reassignment made
/// them stale. A failed fetch (the broker went away) or a partition error that says the
/// leader moved backs those partitions off for `retry.backoff.ms` and refreshes metadata
/// in the background; nothing here waits.
fn handle(
    shared: &Shared,
    wanted: Wanted,
    outcome: Result<Vec<(TopicPartition, PartitionData)>>,
) -> Result<()> {
    let retry_at = tokio::time::Instant::now() + shared.config.retry_backoff;
    let parts = match outcome {
        Ok(parts) => parts,
        Err(e) => {
            // Java requests a metadata update on every disconnect: the leaders this
            // broker had are likely elsewhere by now.
            let mut state = shared.lock();
            for (tp, &(_, epoch)) in &wanted {
                if let Some(ps) = state.assignment.get_mut(tp).filter(|ps| ps.epoch == epoch) {
                    ps.retry_at = Some(retry_at);
                }
            }
            drop(state);
            shared.cluster.request_refresh();
            return Err(e);
        }
    };
    let mut refresh = false;
    let mut arrived = false;
    {
        let mut state = shared.lock();
        for (tp, data) in parts {
            let Some(&(FetchAt { offset, .. }, epoch)) = wanted.get(&tp) else {
                continue;
            };
            let Some(ps) = state.assignment.get_mut(&tp) else {
                continue;
            };
            if ps.fetch_position != Some(offset) || ps.epoch != epoch {
                continue;
            }
            match KafkaCode::try_from_code(data.error_code) {
                None => {
                    ps.high_watermark = data.high_watermark;
                    ps.last_stable_offset = data.last_stable_offset;
                    let records = data.records.unwrap_or_default();
                    if records.is_empty() {
                        // Nothing new: with `enable.partition.eof`, `recv_event` may
                        // have an end to report.
                        arrived |= shared.config.enable_partition_eof
                            && ps
                                .eof_due(
                                    shared.config.isolation_level == IsolationLevel::ReadCommitted,
                                )
                                .is_some();
                        continue;
                    }
                    ps.fetch_position = Some(scan_batch_headers(&records).0.max(offset));
                    let aborted = data
                        .aborted_transactions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| (a.first_offset, a.producer_id.0))
                        .collect();
                    let f = CompletedFetch::new(
                        tp,
                        epoch,
                        records,
                        shared.config.isolation_level == IsolationLevel::ReadCommitted,
                        aborted,
                    );
                    state.buffered_bytes += f.bytes;
                    state.buffer.push_back(f);
                    arrived = true;
                }
                Some(KafkaCode::OffsetOutOfRange) if ps.position != Some(offset) => {
                    // A read-ahead fetch: the records buffered before `offset` are valid
                    // and still to be handed out. Decide when `recv` gets there (as Java
                    // does, an out-of-range answer for an offset other than the position
                    // resets nothing).
                    debug!(%tp, offset, "read-ahead offset out of range; keeping the buffer");
                    ps.retry_at = Some(retry_at);
                }
                Some(KafkaCode::OffsetOutOfRange) => {
                    if shared.config.auto_offset_reset == OffsetReset::None {
                        state.error = Some(Error::kafka(
                            KafkaCode::OffsetOutOfRange,
                            format!(
                                "offset {offset} of {tp} is out of range and auto.offset.reset is none"
                            ),
                        ));
                        arrived = true;
                    } else {
                        debug!(%tp, offset, "offset out of range, resetting");
                        ps.set_position(None, None);
                        ps.start = Start::Reset;
                    }
                }
                Some(KafkaCode::UnknownLeaderEpoch) => {
                    // The broker has not caught up with the leader epoch we know: it
                    // will; retry after the backoff (metadata is newer than the broker).
                    debug!(%tp, "UNKNOWN_LEADER_EPOCH: the broker lags our metadata, retrying");
                    ps.retry_at = Some(retry_at);
                }
                Some(code) if code.is_retriable() || code == KafkaCode::FencedLeaderEpoch => {
                    // FENCED_LEADER_EPOCH: our metadata is older than the broker's; the
                    // refresh brings the new leader, which validates the position.
                    debug!(%tp, ?code, "fetch error, refreshing metadata");
                    ps.retry_at = Some(retry_at);
                    refresh = true;
                }
                Some(code) => {
                    state.error = Some(Error::kafka(code, format!("fetching {tp} at {offset}")));
                    arrived = true;
                }
            }
        }
    }
    if arrived {
        shared.data_ready.notify_waiters();
        shared.data_ready.notify_one();
    }
    if refresh {
        shared.cluster.request_refresh();
    }
    Ok(())
}
