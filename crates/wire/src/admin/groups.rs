//! Consumer groups from the outside: list them, describe one (members and their
//! assignments), read its committed offsets; and change them: set committed offsets as
//! an admin (no member), delete offsets, delete whole groups. Their lag is in
//! `admin/lag.rs`.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::consumer_protocol as protocol;
use crate::cluster::coordinator::{Coordinator, CoordinatorKey, Lane};
use crate::cluster::offset_commit::{self, Committer};
use crate::cluster::offset_fetch;
use crate::error::{Error, Result};
use crate::types::{topic_name, OffsetAndMetadata, TopicPartition};

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`, or empty
    /// for brokers too old to say.
    pub state: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` when static.
    pub group_instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connects from.
    pub host: String,
    /// The partitions assigned to it (decoded from Java's ConsumerProtocol).
    pub assignment: Vec<TopicPartition>,
}

/// What [`Admin::describe_group`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The group state (`Stable`, `Empty`, ...; `Dead` for an unknown group).
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// The chosen assignor (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// The members, sorted by member id.
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// The member that owns `tp`, if any.
    pub fn owner(&self, tp: &TopicPartition) -> Option<&MemberDescription> {
        self.members.iter().find(|m| m.assignment.contains(tp))
    }
}

impl Admin {
    pub(super) fn coordinator(&self, group: &str) -> Coordinator {
        let config = self.cluster.config();
        Coordinator::new(
            CoordinatorKey::Group(group.to_string()),
            self.cluster.clone(),
            config.connection.request_timeout,
            std::time::Duration::from_millis(100),
        )
    }

    /// Lists the groups of every broker (each coordinates some). Retriable failures
    /// (a broker that went away, a coordinator moving) are retried for the
    /// [API timeout](Admin::api_timeout).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.retrying("listing groups", || self.list_groups_once())
            .await
    }

    async fn list_groups_once(&self) -> Result<Vec<GroupListing>> {
        let md = self.cluster.refresh_all().await?;
        let mut out = BTreeMap::new();
        for &id in md.brokers.keys() {
            let response = self
                .cluster
                .broker(id)
                .await?
                .send(&ListGroupsRequest::default())
                .await?;
            Error::check_code(response.error_code, || {
                format!("listing groups on broker {id}")
            })?;
            for g in response.groups {
                out.insert(
                    g.group_id.0.to_string(),
                    GroupListing {
                        group_id: g.group_id.0.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        state: g.group_state.to_string(),
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes `group`: state, assignor, members and what each owns. Retriable
    /// failures are retried for the [API timeout](Admin::api_timeout).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.retrying("describing a group", || self.describe_group_once(group))
            .await
    }

    async fn describe_group_once(&self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.coordinator(group);
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let response = coordinator.send(Lane::Offsets, &request).await?;
        let g = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol("DescribeGroups answered no group"))?;
        Error::check_code(g.error_code, || format!("describing group {group}"))?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let mut members = Vec::with_capacity(g.members.len());
        for m in g.members {
            let assignment = if consumer {
                protocol::decode_assignment(&m.member_assignment)?
            } else {
                Vec::new()
            };
            members.push(MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment,
            });
        }
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Every committed offset of `group`. Retriable failures are retried for the
    /// [API timeout](Admin::api_timeout).
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        self.retrying("reading committed offsets", || {
            self.group_offsets_once(group)
        })
        .await
    }

    async fn group_offsets_once(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let coordinator = self.coordinator(group);
        let request = offset_fetch::request(group, None, false);
        let response = coordinator.send(Lane::Offsets, &request).await?;
        let committed = offset_fetch::read(group, response)?;
        Ok(committed
            .into_iter()
            .filter_map(|(tp, om)| Some((tp, om?)))
            .collect())
    }

    /// Sets committed offsets of `group` as an administrator: an OffsetCommit with no
    /// member and no generation, as Java's `Admin.alterConsumerGroupOffsets` sends. The
    /// coordinator takes it only while the group has no active member (it answers
    /// UNKNOWN_MEMBER_ID otherwise); the first partition it refuses is the error.
    /// Retriable failures are retried for the [API timeout](Admin::api_timeout).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let request = offset_commit::request(group, Committer::admin(), offsets);
        self.retrying("altering committed offsets", || async {
            let response = self
                .coordinator(group)
                .send(Lane::Offsets, &request)
                .await?;
            offset_commit::read(group, &response)
        })
        .await
    }

    /// Deletes the committed offsets of `partitions` from `group` (OffsetDelete, KIP-496).
    /// A group-level refusal (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, ...) is the `Err`;
    /// otherwise each partition's outcome, `Err` where the coordinator refused it
    /// (GROUP_SUBSCRIBED_TO_TOPIC while a member is subscribed to the topic).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            topics
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_id(group))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        self.retrying("deleting committed offsets", || async {
            let response = self
                .coordinator(group)
                .send(Lane::Offsets, &request)
                .await?;
            Error::check_code(response.error_code, || {
                format!("deleting offsets of group {group}")
            })?;
            let mut out = BTreeMap::new();
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let result = Error::check_code(p.error_code, || {
                        format!("deleting the offset of {tp} from group {group}")
                    });
                    out.insert(tp, result);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Deletes `group` with its committed offsets (DeleteGroups). The coordinator refuses
    /// while the group has members (NON_EMPTY_GROUP) and answers GROUP_ID_NOT_FOUND for
    /// a group it does not know. Retriable failures are retried for the
    /// [API timeout](Admin::api_timeout).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        self.retrying("deleting a group", || async {
            let response = self
                .coordinator(group)
                .send(Lane::Offsets, &request)
                .await?;
            let result = response
                .results
                .iter()
                .find(|r| r.group_id.0.as_str() == group)
                .ok_or_else(|| Error::protocol("DeleteGroups answered no result for the group"))?;
            Error::check_code(result.error_code, || format!("deleting group {group}"))
        })
        .await
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}
