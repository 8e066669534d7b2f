//! Consumer groups from the outside: list them, describe one (members and their
//! assignments), read its committed offsets. Their lag is in `admin/lag.rs`.

use std::collections::BTreeMap;

use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::consumer_protocol as protocol;
use crate::cluster::coordinator::{Coordinator, CoordinatorKey, Lane};
use crate::cluster::offset_fetch;
use crate::error::{Error, Result};
use crate::types::{OffsetAndMetadata, TopicPartition};

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
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
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
}
