//! Cluster queries for tests: who leads a partition, who coordinates a group or a
//! transaction, leader elections, topic creation and ISR waits. Spoken in the Kafka
//! protocol directly (no JVM to start, no dependency on the client under test).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ElectLeadersRequest,
    FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::protocol::KafkaConnection;

/// How long the polling helpers sleep between two looks.
const POLL: Duration = Duration::from_millis(100);
/// ELECTION_NOT_NEEDED: the preferred (or an eligible) replica already leads.
const ELECTION_NOT_NEEDED: i16 = 84;
/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: ask again.
const COORDINATOR_RETRIABLE: [i16; 3] = [14, 15, 16];
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE: a topic still being created.
const TOPIC_RETRIABLE: [i16; 2] = [3, 5];

/// One partition as a broker's Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id; `None` while the partition has no leader.
    pub leader: Option<i32>,
    /// The leader epoch (bumped by every election).
    pub leader_epoch: i32,
    /// The assigned replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas on brokers that are down.
    pub offline: Vec<i32>,
    /// The partition's error code in the Metadata response (0, or e.g. 5
    /// LEADER_NOT_AVAILABLE).
    pub error_code: i16,
}

impl PartitionInfo {
    /// Whether every assigned replica is in the ISR.
    pub fn isr_full(&self) -> bool {
        self.replicas.iter().all(|r| self.isr.contains(r))
    }
}

/// Which leader election [`Admin::elect_leaders`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Make the preferred replica (the first assigned) leader, if it is in the ISR
    /// (`kafka-leader-election --election-type preferred`).
    Preferred,
    /// Elect a leader of a partition that has none, from outside the ISR if need be: may
    /// lose acknowledged records (`kafka-leader-election --election-type unclean`).
    Unclean,
}

/// Cluster queries against a bootstrap list; every call opens a connection to the first
/// address that answers, so it keeps working while some brokers are down. Get one with
/// [`crate::admin`] (the test cluster) or [`Admin::new`].
#[derive(Clone, Debug)]
pub struct Admin {
    addrs: Vec<String>,
}

impl Admin {
    /// Queries through the brokers of `bootstrap` (`host:port,...`).
    pub fn new(bootstrap: &str) -> Admin {
        Admin {
            addrs: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// The bootstrap addresses.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// A connection to the first address that accepts one and answers ApiVersions.
    pub fn connect(&self) -> Result<KafkaConnection> {
        let mut errors = Vec::new();
        for addr in &self.addrs {
            match KafkaConnection::connect_timeout(addr, Duration::from_secs(2)) {
                Ok(conn) => return Ok(conn),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        bail!("no broker answers: {}", errors.join("; "))
    }

    /// Connections to every address that answers (brokers that are down are skipped).
    fn connect_all(&self) -> Vec<KafkaConnection> {
        self.addrs
            .iter()
            .filter_map(|a| KafkaConnection::connect_timeout(a, Duration::from_secs(2)).ok())
            .collect()
    }

    /// The Metadata response for `topics` (`None`: every topic; `Some(&[])`: none).
    pub fn metadata(&self, topics: Option<&[&str]>) -> Result<MetadataResponse> {
        let mut conn = self.connect()?;
        metadata_on(&mut conn, topics)
    }

    /// The node ids of the registered (unfenced) brokers, sorted.
    pub fn broker_ids(&self) -> Result<Vec<i32>> {
        let mut ids: Vec<i32> = self
            .metadata(Some(&[]))?
            .brokers
            .iter()
            .map(|b| b.node_id.0)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Every partition of `topic`, by index.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        let mut conn = self.connect()?;
        partitions_on(&mut conn, topic)
    }

    /// One partition of `topic`.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        self.partitions(topic)?
            .into_iter()
            .find(|p| p.partition == partition)
            .with_context(|| format!("{topic} has no partition {partition}"))
    }

    /// The node id of the leader of `topic`-`partition`; `None` while it has none.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Result<Option<i32>> {
        Ok(self.partition(topic, partition)?.leader)
    }

    /// Waits until `topic`-`partition` has a leader other than `not` (any leader when
    /// `None`) and returns it: after killing the leader, the new one.
    pub fn wait_for_leader(
        &self,
        topic: &str,
        partition: i32,
        not: Option<i32>,
        timeout: Duration,
    ) -> Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.partition(topic, partition);
            if let Ok(PartitionInfo {
                leader: Some(leader),
                ..
            }) = last
            {
                if Some(leader) != not {
                    return Ok(leader);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{topic}-{partition} has no leader other than {not:?} after {timeout:?} \
                     (last: {last:?})"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The node id of the group coordinator of `group` (FindCoordinator, key type 0).
    /// Waits (up to 30 s) while the offsets topic is being created or loaded.
    pub fn group_coordinator(&self, group: &str) -> Result<i32> {
        self.coordinator(group, 0)
    }

    /// The node id of the transaction coordinator of `transactional_id`
    /// (FindCoordinator, key type 1). Waits (up to 30 s) while the transaction state
    /// topic is being created or loaded.
    pub fn txn_coordinator(&self, transactional_id: &str) -> Result<i32> {
        self.coordinator(transactional_id, 1)
    }

    fn coordinator(&self, key: &str, key_type: i8) -> Result<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut conn = self.connect()?;
            let version = conn.version::<FindCoordinatorRequest>()?;
            let key_bytes = StrBytes::from_string(key.to_string());
            let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
            if version >= 4 {
                request = request.with_coordinator_keys(vec![key_bytes]);
            } else {
                request = request.with_key(key_bytes);
            }
            let response = conn.request_at(&request, version)?;
            let (error, node) = match response.coordinators.first() {
                Some(c) if version >= 4 => (c.error_code, c.node_id.0),
                _ => (response.error_code, response.node_id.0),
            };
            match error {
                0 => return Ok(node),
                e if COORDINATOR_RETRIABLE.contains(&e) && Instant::now() < deadline => {
                    std::thread::sleep(POLL);
                }
                e => bail!("FindCoordinator({key:?}, type {key_type}): error code {e}"),
            }
        }
    }

    /// Creates `topic` with `partitions` partitions, `replication_factor` replicas each
    /// (-1: the broker's `default.replication.factor`) and topic `configs` (e.g.
    /// `[("min.insync.replicas", "2")]`), then waits until every broker that answers
    /// names a leader for every partition.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let creatable = CreatableTopic::default()
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor);
        self.create(topic, creatable, partitions, configs)
    }

    /// Creates `topic` with the replicas of partition `i` on the brokers
    /// `assignment[i]` (the first is the preferred leader) and topic `configs`, then
    /// waits as [`create_topic`](Self::create_topic) does.
    ///
    /// ```no_run
    /// let admin = sluice_testkit::admin();
    /// // One partition on nodes 2 and 3, led by 2.
    /// admin.create_topic_on("t", &[vec![2, 3]], &[("min.insync.replicas", "1")]).unwrap();
    /// ```
    pub fn create_topic_on(
        &self,
        topic: &str,
        assignment: &[Vec<i32>],
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let creatable = CreatableTopic::default()
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                assignment
                    .iter()
                    .zip(0..)
                    .map(|(brokers, i)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(i)
                            .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
                    })
                    .collect(),
            );
        let partitions = i32::try_from(assignment.len()).context("too many partitions")?;
        self.create(topic, creatable, partitions, configs)
    }

    fn create(
        &self,
        topic: &str,
        creatable: CreatableTopic,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![creatable.with_name(topic_name(topic)).with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
        let response = self.connect()?.request(&request)?;
        for t in &response.topics {
            if t.error_code != 0 {
                bail!(
                    "CreateTopics {topic}: error code {} ({})",
                    t.error_code,
                    t.error_message.as_deref().unwrap_or("")
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let conns = self.connect_all();
            let mut ready = !conns.is_empty();
            for mut conn in conns {
                let ok = partitions_on(&mut conn, topic).is_ok_and(|ps| {
                    ps.len() == partitions as usize && ps.iter().all(|p| p.leader.is_some())
                });
                ready &= ok;
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{topic} has no leader for every partition on every broker after 30 s");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Deletes `topic`.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let mut conn = self.connect()?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        if version >= 6 {
            request = request.with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(topic)))
            ]);
        } else {
            request = request.with_topic_names(vec![topic_name(topic)]);
        }
        let response = conn.request_at(&request, version)?;
        for r in &response.responses {
            if r.error_code != 0 {
                bail!("DeleteTopics {topic}: error code {}", r.error_code);
            }
        }
        Ok(())
    }

    /// Runs a leader election (the ElectLeaders API, what Kafka's `kafka-leader-election`
    /// tool sends) for every partition of `topic`; returns each partition's error code
    /// (0: elected; 84 ELECTION_NOT_NEEDED; 83 ELIGIBLE_LEADERS_NOT_AVAILABLE; 80
    /// PREFERRED_LEADER_NOT_AVAILABLE), by partition.
    pub fn elect_leaders(&self, topic: &str, election: ElectionType) -> Result<Vec<(i32, i16)>> {
        let partitions: Vec<i32> = self
            .partitions(topic)?
            .iter()
            .map(|p| p.partition)
            .collect();
        let mut conn = self.connect()?;
        let version = conn.version::<ElectLeadersRequest>()?;
        let election_type = match election {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        };
        if version == 0 && election_type != 0 {
            bail!("the broker knows only ElectLeaders v0: preferred elections only");
        }
        let mut request = ElectLeadersRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)]));
        if version >= 1 {
            request = request.with_election_type(election_type);
        }
        let response = conn.request_at(&request, version)?;
        if response.error_code != 0 {
            bail!("ElectLeaders {topic}: error code {}", response.error_code);
        }
        let mut codes: Vec<(i32, i16)> = response
            .replica_election_results
            .iter()
            .flat_map(|t| t.partition_result.iter())
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        codes.sort_unstable();
        Ok(codes)
    }

    /// Moves the leadership of every partition of `topic` back to its preferred replica;
    /// an error if some partition could not be moved (ELECTION_NOT_NEEDED is fine).
    pub fn elect_preferred_leaders(&self, topic: &str) -> Result<()> {
        self.elect_checked(topic, ElectionType::Preferred)
    }

    /// An unclean election for every partition of `topic` without a leader: a replica
    /// outside the ISR may become leader (acknowledged records may be lost). An error if
    /// some partition got none (ELECTION_NOT_NEEDED is fine: it had a leader).
    pub fn elect_unclean_leaders(&self, topic: &str) -> Result<()> {
        self.elect_checked(topic, ElectionType::Unclean)
    }

    fn elect_checked(&self, topic: &str, election: ElectionType) -> Result<()> {
        let failed: Vec<(i32, i16)> = self
            .elect_leaders(topic, election)?
            .into_iter()
            .filter(|&(_, code)| code != 0 && code != ELECTION_NOT_NEEDED)
            .collect();
        if !failed.is_empty() {
            bail!("{election:?} election on {topic}: (partition, error code) {failed:?}");
        }
        Ok(())
    }

    /// The partitions of `topic` whose ISR is smaller than their replica set.
    pub fn under_replicated(&self, topic: &str) -> Result<Vec<i32>> {
        Ok(self
            .partitions(topic)?
            .iter()
            .filter(|p| !p.isr_full())
            .map(|p| p.partition)
            .collect())
    }

    /// Waits until every replica of every partition of `topic` is in the ISR, as every
    /// broker that answers sees it.
    pub fn wait_until_isr_full(&self, topic: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let conns = self.connect_all();
            let mut last = Vec::new();
            let mut full = !conns.is_empty();
            for mut conn in conns {
                match partitions_on(&mut conn, topic) {
                    Ok(ps) => {
                        full &= !ps.is_empty() && ps.iter().all(PartitionInfo::isr_full);
                        last = ps;
                    }
                    Err(_) => full = false,
                }
            }
            if full {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{topic}: ISR not full after {timeout:?} (last: {last:?})");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `node` is in the ISR of `topic`-`partition`.
    pub fn wait_until_in_isr(
        &self,
        topic: &str,
        partition: i32,
        node: i32,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.partition(topic, partition);
            if last.as_ref().is_ok_and(|p| p.isr.contains(&node)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {node} not in the ISR of {topic}-{partition} after {timeout:?} (last: {last:?})");
            }
            std::thread::sleep(POLL);
        }
    }
}

pub(crate) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Metadata on one connection, without creating topics.
pub(crate) fn metadata_on(
    conn: &mut KafkaConnection,
    topics: Option<&[&str]>,
) -> Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        }));
    Ok(conn.request(&request)?)
}

fn partitions_on(conn: &mut KafkaConnection, topic: &str) -> Result<Vec<PartitionInfo>> {
    let response = metadata_on(conn, Some(&[topic]))?;
    let t = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .with_context(|| format!("Metadata names no topic {topic}"))?;
    if t.error_code != 0 {
        let hint = if TOPIC_RETRIABLE.contains(&t.error_code) {
            " (unknown, or still being created)"
        } else {
            ""
        };
        bail!("Metadata for {topic}: error code {}{hint}", t.error_code);
    }
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
    let mut out: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
            leader_epoch: p.leader_epoch,
            replicas: ids(&p.replica_nodes),
            isr: ids(&p.isr_nodes),
            offline: ids(&p.offline_replicas),
            error_code: p.error_code,
        })
        .collect();
    out.sort_by_key(|p| p.partition);
    Ok(out)
}
