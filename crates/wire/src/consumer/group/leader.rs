//! The leader's part of a rebalance: every member's subscription decoded, the
//! partitions of every subscribed topic looked up, the assignor run, its answer encoded
//! for SyncGroup.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::protocol::StrBytes;

use super::assignor::{self, Member};
use crate::cluster::consumer_protocol as protocol;
use crate::consumer::config::AssignmentStrategy;
use crate::consumer::state::Shared;
use crate::error::Result;

/// The leader's part: decode every member's subscription, look up the partitions of
/// every subscribed topic, run the assignor.
pub(super) async fn lead(
    shared: &Shared,
    strategy: AssignmentStrategy,
    members: &[JoinGroupResponseMember],
) -> Result<Vec<SyncGroupRequestAssignment>> {
    let mut decoded = Vec::with_capacity(members.len());
    for jm in members {
        decoded.push(Member {
            member_id: jm.member_id.to_string(),
            group_instance_id: jm.group_instance_id.as_ref().map(|s| s.to_string()),
            subscription: protocol::decode_subscription(&jm.metadata)?,
        });
    }
    let topics: BTreeSet<&str> = decoded
        .iter()
        .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
        .collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let md = shared.cluster.refresh(&topics, false).await?;
    let counts: BTreeMap<String, i32> = topics
        .iter()
        .filter_map(|t| {
            let info = md.topic(t).filter(|i| i.error.is_none())?;
            Some((t.to_string(), i32::try_from(info.partitions.len()).ok()?))
        })
        .collect();
    let assignment = assignor::assign(strategy, &decoded, &counts);
    let mut out = Vec::with_capacity(assignment.len());
    for (member, parts) in assignment {
        out.push(
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member))
                .with_assignment(protocol::encode_assignment(&parts)?),
        );
    }
    Ok(out)
}
