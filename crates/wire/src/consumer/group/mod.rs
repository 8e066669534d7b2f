//! Group membership with the classic protocol, as Java's `AbstractCoordinator` and
//! `ConsumerCoordinator`: a background task that finds the coordinator, joins
//! (JoinGroup), runs the assignor when it leads, syncs (SyncGroup), heartbeats, and
//! rejoins when the coordinator says so.
//!
//! Errors and what they do:
//! - REBALANCE_IN_PROGRESS (heartbeat, sync): rejoin, keeping the partitions with a
//!   cooperative protocol, revoking them all first with an eager one.
//! - ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID: the partitions are lost (the lost callback,
//!   no commit); rejoin, with an empty member id after UNKNOWN_MEMBER_ID.
//! - FENCED_INSTANCE_ID: another process took our `group.instance.id`; lost, and fatal:
//!   the next `recv` fails.
//! - NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, network errors: look up the coordinator
//!   again (it moved) and retry.
//! - A member that does not call `recv` for `max.poll.interval.ms` leaves the group
//!   (LeaveGroup; static members just stop heartbeating) and rejoins on its next `recv`.
//! - Every `metadata.max.age.ms` (the cluster's `metadata_max_age`) the member looks at
//!   the partition counts of its topics and rejoins when they changed (partitions added,
//!   a subscribed topic created), so the leader assigns the new partitions.

pub(crate) mod assignor;
mod leader;
pub mod listener;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use self::leader::lead;
use self::listener::{RebalanceContext, RebalanceListener};
use super::config::AssignmentStrategy;
use super::state::{Shared, Start, State};
use super::{offsets, OffsetAndMetadata, TopicPartition};
use crate::cluster::consumer_protocol::{self as protocol, Subscription};
use crate::cluster::coordinator::{is_coordinator_error, Coordinator, Lane};
use crate::config::wire_ms;
use crate::error::{Error, KafkaCode, Result};

/// This member's view of the group.
#[derive(Default)]
struct GroupMember {
    /// The application's callbacks around rebalances.
    listener: Option<Arc<dyn RebalanceListener>>,
    member_id: String,
    generation: i32,
    owned: Vec<TopicPartition>,
    joined_topics: Vec<String>,
    need_join: bool,
    /// Left after a poll timeout; rejoins on the next `recv`.
    left: bool,
}

/// How one rebalance attempt ended, when it did not fail.
enum Joined {
    Done,
    /// Try again at once (MEMBER_ID_REQUIRED, a rebalance that restarted).
    Again,
}

/// Runs until the consumer closes or the member is fenced.
pub(crate) async fn run(shared: Arc<Shared>, listener: Option<Arc<dyn RebalanceListener>>) {
    let Some(coordinator) = shared.coordinator.as_ref() else {
        return;
    };
    let config = &shared.config;
    let cooperative = config
        .assignment_strategies
        .iter()
        .all(|s| *s == AssignmentStrategy::CooperativeSticky);
    let mut m = GroupMember {
        listener,
        generation: -1,
        need_join: true,
        ..GroupMember::default()
    };
    let mut next_heartbeat = Instant::now();
    let metadata_max_age = shared.cluster.config().metadata_max_age;
    let mut next_metadata_check = Instant::now() + metadata_max_age;
    // Partition counts of the subscribed topics when we last joined.
    let mut known_counts: Option<BTreeMap<String, usize>> = None;
    loop {
        let wake = shared.group_wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let (closed, last_poll, topics) = {
            let s = shared.lock();
            (
                s.closed,
                // A recv waiting for records is polling right now.
                if s.waiting_recvs > 0 {
                    std::time::Instant::now()
                } else {
                    s.last_poll
                },
                s.subscription.clone().unwrap_or_default(),
            )
        };
        if closed {
            return;
        }
        if m.left {
            if last_poll.elapsed() < config.max_poll_interval {
                info!(group = %coordinator.id(), "polled again after a poll timeout, rejoining");
                m.left = false;
                m.need_join = true;
            } else {
                wake.await;
                continue;
            }
        }
        if m.generation >= 0 && last_poll.elapsed() > config.max_poll_interval {
            warn!(
                group = %coordinator.id(),
                "no recv for max.poll.interval.ms ({:?}): leaving the group",
                config.max_poll_interval
            );
            lose(&shared, &mut m).await;
            if let Err(e) = leave(&shared, coordinator, &m.member_id).await {
                debug!(error = %e, "LeaveGroup after poll timeout");
            }
            m.member_id.clear();
            m.left = true;
            continue;
        }
        if topics != m.joined_topics {
            m.need_join = true;
        }
        if m.need_join {
            match join(&shared, coordinator, &mut m, &topics, cooperative).await {
                Ok(Joined::Done) => {
                    next_heartbeat = Instant::now() + config.heartbeat_interval;
                    known_counts = partition_counts(&shared, &topics).await;
                }
                Ok(Joined::Again) => {}
                Err(e) if e.kafka_code() == Some(KafkaCode::FencedInstanceId) || is_fatal(&e) => {
                    warn!(group = %coordinator.id(), error = %e, "fatal group error");
                    lose(&shared, &mut m).await;
                    shared.fail(e);
                    return;
                }
                Err(e) => {
                    debug!(group = %coordinator.id(), error = %e, "join failed, retrying");
                    tokio::time::sleep(config.retry_backoff).await;
                }
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_heartbeat) => {
                next_heartbeat = Instant::now() + config.heartbeat_interval;
                if let Err(e) = heartbeat(&shared, coordinator, &mut m).await {
                    if e.kafka_code() == Some(KafkaCode::FencedInstanceId) {
                        shared.fail(e);
                        return;
                    }
                    debug!(error = %e, "heartbeat failed");
                    next_heartbeat = Instant::now() + config.retry_backoff;
                }
            }
            () = tokio::time::sleep_until(next_metadata_check) => {
                next_metadata_check = Instant::now() + metadata_max_age;
                let now = partition_counts(&shared, &topics).await;
                if now.is_some() && known_counts.is_some() && now != known_counts {
                    info!(group = %coordinator.id(), "subscribed topics changed partitions, rejoining");
                    m.need_join = true;
                }
                if now.is_some() {
                    known_counts = now;
                }
            }
            () = &mut wake => {}
        }
    }
}

/// The partition counts of `topics` (0 for a topic that does not exist), fresh from
/// the cluster; `None` when the refresh failed. As in Java, a change (partitions added,
/// a subscribed topic created) triggers a rebalance.
async fn partition_counts(shared: &Shared, topics: &[String]) -> Option<BTreeMap<String, usize>> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let md = shared.cluster.refresh(&names, false).await.ok()?;
    let mut missing = Vec::new();
    let counts = topics
        .iter()
        .map(|t| {
            let info = md.topic(t);
            let n = info
                .filter(|i| i.error.is_none())
                .map_or(0, |i| i.partitions.len());
            if n == 0 {
                missing.push((t.clone(), info.and_then(|i| i.error)));
            }
            (t.clone(), n)
        })
        .collect();
    if shared.lock().set_missing_topics(missing) {
        shared.wake_recv();
    }
    Some(counts)
}

fn is_fatal(e: &Error) -> bool {
    matches!(
        e.kafka_code(),
        Some(
            KafkaCode::GroupAuthorizationFailed
                | KafkaCode::InconsistentGroupProtocol
                | KafkaCode::GroupMaxSizeReached
                | KafkaCode::InvalidSessionTimeout
                | KafkaCode::UnreleasedInstanceId
                | KafkaCode::InvalidGroupId
        )
    )
}

/// The positions of `partitions`, as offsets to commit.
pub(crate) fn positions(
    shared: &Shared,
    partitions: &[TopicPartition],
) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
    positions_of(&shared.lock(), partitions)
}

/// The positions of `partitions` in `state`, as offsets to commit.
pub(crate) fn positions_of<'a>(
    state: &State,
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
    partitions
        .into_iter()
        .filter_map(|tp| {
            let ps = state.assignment.get(tp)?;
            // With the leader epoch of the last record consumed (`committed_leader_epoch`),
            // so whoever resumes from this commit can validate it (KIP-320).
            let om = OffsetAndMetadata {
                leader_epoch: ps.offset_epoch,
                ..OffsetAndMetadata::new(ps.position?)
            };
            Some((tp.clone(), om))
        })
        .collect()
}

/// Revokes `partitions`: auto-commit their positions, tell the listener, drop them.
async fn revoke(
    shared: &Arc<Shared>,
    coordinator: &Coordinator,
    m: &mut GroupMember,
    partitions: Vec<TopicPartition>,
) {
    if partitions.is_empty() {
        return;
    }
    if shared.config.enable_auto_commit {
        if let Err(e) = offsets::commit(shared, &positions(shared, &partitions)).await {
            warn!(error = %e, "commit on revoke failed");
        }
    }
    if let Some(l) = &m.listener {
        let ctx = RebalanceContext {
            shared: Arc::clone(shared),
        };
        let callback = l.on_partitions_revoked(&ctx, &partitions);
        keep_alive(shared, coordinator, &m.member_id, m.generation, callback).await;
    }
    let mut state = shared.lock();
    for tp in &partitions {
        state.remove(tp);
    }
    m.owned.retain(|tp| !partitions.contains(tp));
}

/// Loses every owned partition: the listener hears of it, nothing is committed.
async fn lose(shared: &Arc<Shared>, m: &mut GroupMember) {
    let lost = std::mem::take(&mut m.owned);
    m.generation = -1;
    m.need_join = true;
    {
        let mut state = shared.lock();
        state.membership.generation = -1;
        for tp in &lost {
            state.remove(tp);
        }
    }
    if lost.is_empty() {
        return;
    }
    if let Some(l) = &m.listener {
        let ctx = RebalanceContext {
            shared: Arc::clone(shared),
        };
        l.on_partitions_lost(&ctx, &lost).await;
    }
}

fn group_id(c: &Coordinator) -> GroupId {
    GroupId(StrBytes::from_string(c.id().to_string()))
}

fn instance_id(shared: &Shared) -> Option<StrBytes> {
    shared
        .config
        .group_instance_id
        .clone()
        .map(StrBytes::from_string)
}

async fn join(
    shared: &Arc<Shared>,
    coordinator: &Coordinator,
    m: &mut GroupMember,
    topics: &[String],
    cooperative: bool,
) -> Result<Joined> {
    let config = &shared.config;
    // Eager: nothing more is handed out from the moment the revoke starts (Java calls
    // onPartitionsRevoked inside poll), so the positions committed on revoke are the
    // last records the application got.
    shared.lock().membership.rebalancing = !cooperative;
    if !cooperative {
        let all = m.owned.clone();
        revoke(shared, coordinator, m, all).await;
    }
    let subscription = Subscription {
        topics: topics.to_vec(),
        owned: m.owned.clone(),
        generation: m.generation,
        user_data: None,
    };
    let mut protocols = Vec::new();
    for s in &config.assignment_strategies {
        let mut sub = subscription.clone();
        if *s == AssignmentStrategy::CooperativeSticky {
            // Java's cooperative-sticky also carries the generation in its user data.
            sub.user_data = Some(bytes::Bytes::copy_from_slice(&m.generation.to_be_bytes()));
        }
        protocols.push(
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(s.name()))
                .with_metadata(protocol::encode_subscription(&sub)?),
        );
    }
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(coordinator))
        .with_session_timeout_ms(wire_ms(config.session_timeout))
        .with_rebalance_timeout_ms(wire_ms(config.max_poll_interval))
        .with_member_id(StrBytes::from_string(m.member_id.clone()))
        .with_group_instance_id(instance_id(shared))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(protocols)
        .with_reason(Some(StrBytes::from_static_str("sluice consumer joining")));
    let response = coordinator.send(Lane::Membership, &request).await?;
    if let Some(code) = KafkaCode::try_from_code(response.error_code) {
        if code == KafkaCode::MemberIdRequired {
            // KIP-394: the coordinator names our member id; join again with it.
            m.member_id = response.member_id.to_string();
        }
        return handle_group_error(coordinator, m, code, "JoinGroup").map(|()| Joined::Again);
    }
    m.member_id = response.member_id.to_string();
    let generation = response.generation_id;
    let protocol_name = response.protocol_name.clone().unwrap_or_default();
    let strategy = AssignmentStrategy::parse(protocol_name.as_str()).ok_or_else(|| {
        Error::protocol(format!(
            "the group chose an unknown assignor {protocol_name:?}"
        ))
    })?;
    let is_leader = response.leader.as_str() == m.member_id;
    debug!(
        group = %coordinator.id(), member = %m.member_id, generation,
        leader = is_leader, protocol = %protocol_name, "joined"
    );
    let assignments = if is_leader && !response.skip_assignment {
        lead(shared, strategy, &response.members).await?
    } else {
        Vec::new()
    };
    let sync = SyncGroupRequest::default()
        .with_group_id(group_id(coordinator))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(m.member_id.clone()))
        .with_group_instance_id(instance_id(shared))
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(Some(protocol_name.clone()))
        .with_assignments(assignments);
    let response = coordinator.send(Lane::Membership, &sync).await?;
    if let Some(code) = KafkaCode::try_from_code(response.error_code) {
        return handle_group_error(coordinator, m, code, "SyncGroup").map(|()| Joined::Again);
    }
    let assigned = protocol::decode_assignment(&response.assignment)?;
    info!(
        group = %coordinator.id(), member = %m.member_id, generation,
        partitions = assigned.len(), "assignment received"
    );
    m.generation = generation;
    m.joined_topics = topics.to_vec();
    m.need_join = false;
    {
        let mut state = shared.lock();
        state.membership.member_id = m.member_id.clone();
        state.membership.generation = generation;
        state.membership.rebalancing = false;
    }
    let owned: BTreeSet<&TopicPartition> = m.owned.iter().collect();
    let new: BTreeSet<&TopicPartition> = assigned.iter().collect();
    let revoked: Vec<TopicPartition> = owned.difference(&new).map(|tp| (*tp).clone()).collect();
    let added: Vec<TopicPartition> = new.difference(&owned).map(|tp| (*tp).clone()).collect();
    if !revoked.is_empty() {
        // Cooperative: give these up, then rejoin so they can move (KIP-429).
        revoke(shared, coordinator, m, revoked).await;
        m.need_join = true;
    }
    {
        let mut state = shared.lock();
        for tp in &added {
            state.add(tp.clone(), Start::Committed);
        }
    }
    m.owned = assigned;
    if let Some(l) = &m.listener {
        let ctx = RebalanceContext {
            shared: Arc::clone(shared),
        };
        let callback = l.on_partitions_assigned(&ctx, &added);
        if keep_alive(shared, coordinator, &m.member_id, generation, callback).await {
            m.need_join = true;
        }
    }
    shared.fetcher_wake.notify_one();
    Ok(Joined::Done)
}

/// What a JoinGroup or SyncGroup error code means for the next attempt.
fn handle_group_error(
    coordinator: &Coordinator,
    m: &mut GroupMember,
    code: KafkaCode,
    what: &str,
) -> Result<()> {
    match code {
        KafkaCode::MemberIdRequired => Ok(()),
        KafkaCode::RebalanceInProgress => Ok(()),
        KafkaCode::UnknownMemberId => {
            m.member_id.clear();
            m.generation = -1;
            Ok(())
        }
        KafkaCode::IllegalGeneration => {
            m.generation = -1;
            Ok(())
        }
        c if is_coordinator_error(c) => {
            coordinator.invalidate();
            Err(Error::kafka(
                c,
                format!("{what} for group {}", coordinator.id()),
            ))
        }
        c => Err(Error::kafka(
            c,
            format!("{what} for group {}", coordinator.id()),
        )),
    }
}

/// Awaits a listener callback while heartbeating every `heartbeat.interval.ms`, as
/// Java's heartbeat thread keeps a member alive while its callbacks run: a slow
/// callback must not cost the membership. True when a heartbeat said a rebalance is
/// under way; other errors are left for the next regular heartbeat to find again.
async fn keep_alive(
    shared: &Shared,
    coordinator: &Coordinator,
    member_id: &str,
    generation: i32,
    callback: impl std::future::Future<Output = ()>,
) -> bool {
    if member_id.is_empty() || generation < 0 {
        callback.await;
        return false;
    }
    tokio::pin!(callback);
    let mut rebalancing = false;
    loop {
        tokio::select! {
            () = &mut callback => return rebalancing,
            () = tokio::time::sleep(shared.config.heartbeat_interval) => {
                let request = HeartbeatRequest::default()
                    .with_group_id(group_id(coordinator))
                    .with_generation_id(generation)
                    .with_member_id(StrBytes::from_string(member_id.to_string()))
                    .with_group_instance_id(instance_id(shared));
                let limit = coordinator.request_timeout();
                if let Ok(r) = coordinator.send_within(Lane::Membership, &request, limit).await {
                    rebalancing |= r.error_code == KafkaCode::RebalanceInProgress.code();
                }
            }
        }
    }
}

async fn heartbeat(
    shared: &Arc<Shared>,
    coordinator: &Coordinator,
    m: &mut GroupMember,
) -> Result<()> {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(coordinator))
        .with_generation_id(m.generation)
        .with_member_id(StrBytes::from_string(m.member_id.clone()))
        .with_group_instance_id(instance_id(shared));
    let response = coordinator
        .send_within(Lane::Membership, &request, coordinator.request_timeout())
        .await?;
    match KafkaCode::try_from_code(response.error_code) {
        None => Ok(()),
        Some(KafkaCode::RebalanceInProgress) => {
            debug!(group = %coordinator.id(), "rebalance in progress, rejoining");
            m.need_join = true;
            Ok(())
        }
        Some(code @ (KafkaCode::IllegalGeneration | KafkaCode::UnknownMemberId)) => {
            info!(group = %coordinator.id(), ?code, "membership lost, rejoining");
            if code == KafkaCode::UnknownMemberId {
                m.member_id.clear();
            }
            lose(shared, m).await;
            Ok(())
        }
        Some(KafkaCode::FencedInstanceId) => {
            lose(shared, m).await;
            Err(Error::kafka(
                KafkaCode::FencedInstanceId,
                format!(
                    "group.instance.id {:?} of group {} was taken by another member",
                    shared.config.group_instance_id,
                    coordinator.id()
                ),
            ))
        }
        Some(code) => {
            if is_coordinator_error(code) {
                coordinator.invalidate();
            }
            Err(Error::kafka(
                code,
                format!("heartbeat to group {}", coordinator.id()),
            ))
        }
    }
}

/// Sends LeaveGroup for a dynamic member; a static member (KIP-345) does not leave, so
/// that restarting within the session timeout causes no rebalance.
pub(crate) async fn leave(
    shared: &Shared,
    coordinator: &Coordinator,
    member_id: &str,
) -> Result<()> {
    if member_id.is_empty() || shared.config.group_instance_id.is_some() {
        return Ok(());
    }
    let conn = coordinator.connection(Lane::Membership).await?;
    let version = conn.api_versions().version_for(ApiKey::LeaveGroup)?;
    let member = StrBytes::from_string(member_id.to_string());
    let request = if version >= 3 {
        LeaveGroupRequest::default().with_members(vec![MemberIdentity::default()
            .with_member_id(member)
            .with_reason(Some(StrBytes::from_static_str("the consumer is closing")))])
    } else {
        LeaveGroupRequest::default().with_member_id(member)
    }
    .with_group_id(group_id(coordinator));
    let response = coordinator
        .send_within(Lane::Membership, &request, coordinator.request_timeout())
        .await?;
    Error::check_code(response.error_code, || {
        format!("leaving group {}", coordinator.id())
    })?;
    for member in &response.members {
        Error::check_code(member.error_code, || {
            format!("leaving group {}", coordinator.id())
        })?;
    }
    Ok(())
}
