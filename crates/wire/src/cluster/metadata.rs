//! A snapshot of cluster metadata: brokers, topics, partitions, leaders and leader
//! epochs. Snapshots are immutable; a refresh builds a new one.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;

use crate::error::KafkaCode;

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: u16,
    /// The rack, when the broker sets `broker.rack`.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, as used to connect.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, or `None` while the partition has no leader.
    pub leader: Option<i32>,
    /// The leader epoch (KIP-320), `-1` when the broker does not say.
    pub leader_epoch: i32,
    /// Node ids of all replicas.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Node ids of replicas that are offline.
    pub offline_replicas: Vec<i32>,
    /// A partition-level error from the broker (LEADER_NOT_AVAILABLE, ...).
    pub error: Option<KafkaCode>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (KIP-516), all zero when the broker does not send one.
    pub topic_id: [u8; 16],
    /// True for Kafka's own topics (`__consumer_offsets`, `__transaction_state`).
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
    /// A topic-level error (UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED, ...).
    pub error: Option<KafkaCode>,
}

impl TopicInfo {
    /// The partition `partition`, if known. Looked up per partition on every fetch and
    /// produce plan, so not a scan: its place when the indexes have no gaps (they never
    /// have in a snapshot of ours), else a binary search.
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        let at = usize::try_from(partition).ok()?;
        match self.partitions.get(at) {
            Some(p) if p.partition == partition => Some(p),
            _ => self
                .partitions
                .binary_search_by_key(&partition, |p| p.partition)
                .ok()
                .and_then(|i| self.partitions.get(i)),
        }
    }
}

/// An immutable snapshot of what the cluster told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The controller's node id, when the broker reports one.
    pub controller_id: Option<i32>,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

impl Metadata {
    /// The topic named `name`, if the snapshot knows it.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// The partition `partition` of `topic`, if known.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topic(topic)?.partition(partition)
    }

    /// The leader of `topic`/`partition`, if the partition is known and has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<&BrokerInfo> {
        let leader = self.partition(topic, partition)?.leader?;
        self.brokers.get(&leader)
    }

    /// Builds a snapshot from a Metadata response. After a refresh of some topics
    /// (`all_topics` false), topics the response does not mention are kept from
    /// `previous`; after a refresh of all topics, only what the response lists remains.
    pub(crate) fn merge(
        previous: &Metadata,
        response: MetadataResponse,
        all_topics: bool,
    ) -> Metadata {
        let brokers = response
            .brokers
            .into_iter()
            .filter_map(|b| {
                let port = u16::try_from(b.port).ok()?;
                Some((
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                ))
            })
            .collect();
        let mut topics = if all_topics {
            BTreeMap::new()
        } else {
            previous.topics.clone()
        };
        for t in response.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                    error: KafkaCode::try_from_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            // A broker that has not caught up may answer with an older leader than we
            // know (KIP-320): never go back to an older leader epoch, for the same topic.
            if let Some(known) = previous.topics.get(&name) {
                if known.topic_id == *t.topic_id.as_bytes() {
                    for p in &mut partitions {
                        if let Some(old) = known.partition(p.partition) {
                            if old.leader_epoch > p.leader_epoch && p.leader_epoch >= 0 {
                                *p = old.clone();
                            }
                        }
                    }
                }
            }
            let error = KafkaCode::try_from_code(t.error_code);
            topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    topic_id: *t.topic_id.as_bytes(),
                    is_internal: t.is_internal,
                    partitions,
                    error,
                },
            );
        }
        Metadata {
            cluster_id: response.cluster_id.map(|c| c.to_string()),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers,
            topics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response(leader: i32, epoch: i32) -> MetadataResponse {
        let partition = MetadataResponsePartition::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch);
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![partition]);
        MetadataResponse::default().with_topics(vec![topic])
    }

    #[test]
    fn an_older_leader_epoch_never_replaces_a_newer_one() {
        let md = Metadata::merge(&Metadata::default(), response(1, 5), false);
        assert_eq!(md.partition("t", 0).and_then(|p| p.leader), Some(1));
        // A lagging broker still names the old leader at epoch 4: ignored.
        let md = Metadata::merge(&md, response(2, 4), false);
        assert_eq!(md.partition("t", 0).map(|p| p.leader_epoch), Some(5));
        assert_eq!(md.partition("t", 0).and_then(|p| p.leader), Some(1));
        // A newer epoch moves the leader.
        let md = Metadata::merge(&md, response(3, 6), false);
        assert_eq!(md.partition("t", 0).and_then(|p| p.leader), Some(3));
    }
}
