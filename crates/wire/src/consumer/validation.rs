//! Position validation after a leader change (KIP-320), as Java's
//! `OffsetFetcher.validatePositionsAsync` and `SubscriptionState.maybeCompleteValidation`.
//!
//! A partition whose position carries a leader epoch (that of the last batch consumed,
//! or of the committed offset) stops fetching when metadata names a new leader or leader
//! epoch (`fetcher::plan`). This module asks the new leader, with OffsetForLeaderEpoch,
//! for the end offset of the position's epoch in its log:
//! - at or past the position: nothing was lost, fetching resumes where it was;
//! - below it: the log was truncated (an unclean leader election gave leadership to a
//!   replica that never had those records). With `auto.offset.reset` none the next
//!   `recv` fails with [`ErrorKind::LogTruncation`](crate::ErrorKind::LogTruncation)
//!   (and keeps failing until the application seeks); otherwise the position moves back
//!   to the end offset, the first offset known to diverge, with a warning, and the
//!   records written there since are read;
//! - the leader knows nothing of the epoch: reset per `auto.offset.reset`, or the same
//!   typed error.
//!
//! Retriable answers (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER,
//! a lost connection) back the partition off for `retry.backoff.ms` and refresh metadata.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetForLeaderEpochRequest};
use tracing::{debug, info, warn};

use super::config::OffsetReset;
use super::state::{Shared, Start};
use super::TopicPartition;
use crate::error::{Error, KafkaCode, LogTruncation, Result};
use crate::types::topic_name;

/// How soon a truncated position (with `auto.offset.reset` none) is checked again, and
/// so reported again to `recv`, until the application seeks: often enough that every
/// `recv` meets the error, rarely enough not to load the leader.
const TRUNCATION_RECHECK: Duration = Duration::from_secs(1);

/// A position to validate, as it was when the request was planned.
#[derive(Debug, Clone)]
pub(crate) struct Validate {
    pub(crate) tp: TopicPartition,
    pub(crate) position: i64,
    /// The leader epoch of the record before the position.
    pub(crate) offset_epoch: i32,
    pub(crate) leader: i32,
    /// The leader epoch metadata gave for `leader` (sent as `current_leader_epoch`).
    pub(crate) leader_epoch: i32,
    /// The partition's (seek) epoch: a seek meanwhile makes the answer stale.
    pub(crate) epoch: u64,
}

/// What one partition's validation came to.
enum Answer {
    /// The leader's end offset of the position's epoch, and the epoch it belongs to.
    EndOffset { end_offset: i64, leader_epoch: i32 },
    /// The leader cannot answer now (a lost connection, a retriable error code).
    Retry(Error),
    /// The broker does not implement OffsetForLeaderEpoch v3 (Kafka before 2.3): Java
    /// skips validation then.
    Unsupported,
    /// Not retriable (TOPIC_AUTHORIZATION_FAILED): for the next `recv`.
    Fail(Error),
}

/// Validates `pending`, one OffsetForLeaderEpoch request per leader, all at once, and
/// applies the answers that are still current.
pub(crate) async fn validate(shared: &Shared, pending: Vec<Validate>) {
    let mut by_leader: BTreeMap<i32, Vec<Validate>> = BTreeMap::new();
    for v in pending {
        by_leader.entry(v.leader).or_default().push(v);
    }
    let rounds = by_leader.into_iter().map(|(leader, parts)| async move {
        let answers = ask(shared, leader, &parts).await;
        (parts, answers)
    });
    for (parts, answers) in join_all(rounds).await {
        apply(shared, parts, answers);
    }
}

/// Sends one OffsetForLeaderEpoch request to `leader` for `parts`; an answer for each.
async fn ask(shared: &Shared, leader: i32, parts: &[Validate]) -> Vec<Answer> {
    let response = match send(shared, leader, parts).await {
        Ok(Some(r)) => r,
        Ok(None) => return parts.iter().map(|_| Answer::Unsupported).collect(),
        Err(e) => return parts.iter().map(|_| Answer::Retry(e.clone())).collect(),
    };
    let mut by_tp: BTreeMap<TopicPartition, EpochEndOffset> = BTreeMap::new();
    for t in response.topics {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            by_tp.insert(TopicPartition::new(topic.clone(), p.partition), p);
        }
    }
    parts
        .iter()
        .map(|v| {
            let Some(p) = by_tp.remove(&v.tp) else {
                return Answer::Retry(Error::protocol(format!(
                    "OffsetForLeaderEpoch from broker {leader} did not answer for {}",
                    v.tp
                )));
            };
            match KafkaCode::try_from_code(p.error_code) {
                None => Answer::EndOffset {
                    end_offset: p.end_offset,
                    leader_epoch: p.leader_epoch,
                },
                Some(KafkaCode::TopicAuthorizationFailed) => Answer::Fail(Error::kafka(
                    KafkaCode::TopicAuthorizationFailed,
                    format!("validating the position of {}", v.tp),
                )),
                // Java retries every other code (the leader moved, is not ready, does
                // not know the epoch yet) after a metadata refresh.
                Some(code) => Answer::Retry(Error::kafka(
                    code,
                    format!("validating the position of {} with broker {leader}", v.tp),
                )),
            }
        })
        .collect()
}

async fn send(
    shared: &Shared,
    leader: i32,
    parts: &[Validate],
) -> Result<Option<kafka_protocol::messages::OffsetForLeaderEpochResponse>> {
    let conn = shared.cluster.broker(leader).await?;
    if conn
        .api_versions()
        .version_for(ApiKey::OffsetForLeaderEpoch)
        .is_err()
    {
        return Ok(None);
    }
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for v in parts {
        topics.entry(v.tp.topic.as_str()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(v.tp.partition)
                .with_current_leader_epoch(v.leader_epoch)
                .with_leader_epoch(v.offset_epoch),
        );
    }
    let request = OffsetForLeaderEpochRequest::default()
        // A consumer (Java: `OffsetsForLeaderEpochRequest.CONSUMER_REPLICA_ID`).
        .with_replica_id(BrokerId(-1))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(parts)
                })
                .collect(),
        );
    Ok(Some(conn.send(&request).await?))
}

/// Applies the answers to the partitions they are still current for: same seek epoch,
/// still validating, same position, same leader epoch.
fn apply(shared: &Shared, parts: Vec<Validate>, answers: Vec<Answer>) {
    let now = tokio::time::Instant::now();
    let retry_at = now + shared.config.retry_backoff;
    let recheck_at = now + TRUNCATION_RECHECK.max(shared.config.retry_backoff);
    let reset = shared.config.auto_offset_reset;
    let mut refresh = false;
    let mut failed = None;
    {
        let mut guard = shared.lock();
        let state = &mut *guard;
        for (v, answer) in parts.into_iter().zip(answers) {
            let Some(ps) = state.assignment.get_mut(&v.tp) else {
                continue;
            };
            let current = ps.epoch == v.epoch
                && ps.validating
                && ps.position == Some(v.position)
                && ps.current_leader.map(|(_, e)| e) == Some(v.leader_epoch);
            if !current {
                debug!(tp = %v.tp, "validation answer is stale");
                continue;
            }
            match answer {
                Answer::Unsupported => {
                    debug!(tp = %v.tp, "the broker cannot validate positions; skipping");
                    ps.validating = false;
                }
                Answer::Retry(e) => {
                    debug!(tp = %v.tp, error = %e, "validation retried after the backoff");
                    ps.retry_at = Some(retry_at);
                    refresh = true;
                }
                Answer::Fail(e) => {
                    ps.retry_at = Some(retry_at);
                    failed = Some(e);
                }
                Answer::EndOffset {
                    end_offset,
                    leader_epoch,
                } if end_offset < 0 || leader_epoch < 0 => {
                    // The leader knows no epoch at or below ours.
                    if reset == OffsetReset::None {
                        warn!(tp = %v.tp, position = v.position, "log truncation detected and auto.offset.reset is none");
                        ps.retry_at = Some(recheck_at);
                        failed = Some(truncation(&v, None));
                    } else {
                        info!(tp = %v.tp, position = v.position, "log truncation detected, resetting the offset");
                        ps.set_position(None, None);
                        ps.start = Start::Reset;
                    }
                }
                Answer::EndOffset {
                    end_offset,
                    leader_epoch,
                } if end_offset < v.position => {
                    if reset == OffsetReset::None {
                        warn!(
                            tp = %v.tp,
                            position = v.position,
                            divergent_offset = end_offset,
                            "log truncation detected and auto.offset.reset is none"
                        );
                        ps.retry_at = Some(recheck_at);
                        failed = Some(truncation(&v, Some(end_offset)));
                    } else {
                        warn!(
                            tp = %v.tp,
                            position = v.position,
                            divergent_offset = end_offset,
                            "log truncation detected: resetting the position to the first offset known to diverge"
                        );
                        ps.set_position(Some(end_offset), Some(leader_epoch));
                    }
                }
                Answer::EndOffset { .. } => {
                    debug!(tp = %v.tp, position = v.position, "position validated");
                    ps.validating = false;
                }
            }
        }
        if let Some(e) = &failed {
            state.error = Some(e.clone());
        }
    }
    if failed.is_some() {
        shared.data_ready.notify_waiters();
        shared.data_ready.notify_one();
    }
    if refresh {
        shared.cluster.request_refresh();
    }
    shared.fetcher_wake.notify_one();
}

fn truncation(v: &Validate, divergent_offset: Option<i64>) -> Error {
    Error::log_truncation(LogTruncation {
        topic: v.tp.topic.clone(),
        partition: v.tp.partition,
        position: v.position,
        position_epoch: v.offset_epoch,
        divergent_offset,
    })
}
