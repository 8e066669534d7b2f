//! Cluster administration: create and delete topics, add partitions, list offsets,
//! describe the cluster; consumer groups (`admin/groups.rs`) and their lag
//! (`admin/lag.rs`); topic and broker configs (`admin/configs.rs`).

use crate::config::wire_ms;
use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

pub use crate::cluster::{ListedOffset, OffsetSpec};

use crate::cluster::{BrokerInfo, Cluster};
use crate::error::{Error, KafkaCode, Result};
use crate::types::{topic_name, IsolationLevel};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// Number of partitions; `-1` takes the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor; `-1` takes the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, factor: i16) -> Self {
        self.replication_factor = factor;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What [`Admin::describe_cluster`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's node id, when known.
    pub controller_id: Option<i32>,
    /// The brokers.
    pub brokers: Vec<BrokerInfo>,
}

/// Administrative operations on a cluster.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
    api_timeout: Duration,
}

impl Admin {
    /// Administers `cluster`.
    pub fn new(cluster: Cluster) -> Self {
        Admin {
            cluster,
            api_timeout: DEFAULT_API_TIMEOUT,
        }
    }

    /// How long a call keeps retrying retriable failures (a broker killed, a
    /// coordinator moving) before it gives up with the last error. Default 60 s (Java:
    /// `default.api.timeout.ms`).
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Runs `op` until it succeeds, fails for good, or the API timeout would pass.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.api_timeout;
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    attempt += 1;
                    let wait = backoff(attempt);
                    if !e.is_retriable() || tokio::time::Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "{what}: retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The cluster this admin works on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Creates topics and waits, up to `timeout`, until the metadata shows a leader for
    /// every partition, so the topics can be produced to when this returns.
    ///
    /// Fails on the first topic the broker refuses, with its Kafka code
    /// (`TOPIC_ALREADY_EXISTS`, `INVALID_REPLICATION_FACTOR`, ...) and message.
    pub async fn create_topics(&self, topics: &[NewTopic], timeout: Duration) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(wire_ms(timeout))
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self.controller().await?.send(&request).await?;
        for result in &response.topics {
            Error::check_code(result.error_code, || {
                format!(
                    "creating topic {}: {}",
                    result.name.0.as_str(),
                    broker_message(&result.error_message)
                )
            })?;
        }
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        self.wait_for_leaders(&names, timeout).await
    }

    /// Raises the partition count of `topic` to `total` and waits, up to `timeout`,
    /// until the metadata shows a leader for each. Fails with INVALID_PARTITIONS when
    /// `total` is not above the current count (Kafka never removes partitions).
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        timeout: Duration,
    ) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(wire_ms(timeout))
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                .with_assignments(None)]);
        let response = self.controller().await?.send(&request).await?;
        for result in &response.results {
            Error::check_code(result.error_code, || {
                format!(
                    "adding partitions to {topic}: {}",
                    broker_message(&result.error_message)
                )
            })?;
        }
        self.wait_for_partitions(&[topic], Some(total), timeout)
            .await
    }

    /// Waits until the metadata lists every topic in `names` with a leader for each
    /// partition.
    async fn wait_for_leaders(&self, names: &[&str], timeout: Duration) -> Result<()> {
        self.wait_for_partitions(names, None, timeout).await
    }

    /// Waits until the metadata lists every topic in `names` with `count` partitions
    /// (any number, when `None`), each with a leader.
    async fn wait_for_partitions(
        &self,
        names: &[&str],
        count: Option<i32>,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let md = self.cluster.refresh(names, false).await?;
            let ready = names.iter().all(|name| {
                md.topic(name).is_some_and(|t| {
                    t.error.is_none()
                        && !t.partitions.is_empty()
                        && count.is_none_or(|n| usize::try_from(n) == Ok(t.partitions.len()))
                        && t.partitions.iter().all(|p| p.leader.is_some())
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(
                    format!("waiting for leaders of {names:?}"),
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes topics and waits, up to `timeout`, until the metadata no longer lists
    /// them. A topic that does not exist fails with `UNKNOWN_TOPIC_OR_PARTITION`.
    pub async fn delete_topics(&self, names: &[&str], timeout: Duration) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(wire_ms(timeout))
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let response = self.controller().await?.send(&request).await?;
        for result in &response.responses {
            let name = result.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?");
            Error::check_code(result.error_code, || format!("deleting topic {name}"))?;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let md = self.cluster.refresh_all().await?;
            if names.iter().all(|n| md.topic(n).is_none()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(
                    format!("waiting for {names:?} to leave the metadata"),
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Looks up an offset of each partition in `partitions` of `topic`, asking each
    /// partition's leader.
    ///
    /// Retriable errors (a leader that moved or has not taken over yet, a dropped
    /// connection) refresh the metadata and try again, up to [`RETRIES`] times with a
    /// growing backoff, as the Java admin client does.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        self.list_offsets_with_isolation(topic, partitions, spec, IsolationLevel::ReadUncommitted)
            .await
    }

    /// Like [`list_offsets`](Self::list_offsets); under
    /// [`IsolationLevel::ReadCommitted`], [`OffsetSpec::Latest`] is the last stable offset
    /// (no open transaction below it) rather than the high watermark.
    pub async fn list_offsets_with_isolation(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        crate::cluster::list_offsets(&self.cluster, topic, partitions, spec, isolation).await
    }

    /// Describes the cluster: id, controller and brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let response = self
            .cluster
            .any_broker()
            .await?
            .send(&DescribeClusterRequest::default())
            .await?;
        Error::check_code(response.error_code, || {
            format!(
                "describing the cluster: {}",
                broker_message(&response.error_message)
            )
        })?;
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers: response
                .brokers
                .into_iter()
                .filter_map(|b| {
                    Some(BrokerInfo {
                        node_id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: u16::try_from(b.port).ok()?,
                        rack: b.rack.map(|r| r.to_string()),
                    })
                })
                .collect(),
        })
    }

    /// Where topic changes go. In KRaft clusters any broker forwards them to the
    /// controller; we ask the one the metadata names, else any.
    async fn controller(&self) -> Result<crate::net::BrokerConnection> {
        match self.cluster.metadata().controller_id {
            Some(id) => match self.cluster.broker(id).await {
                Ok(conn) => Ok(conn),
                Err(_) => self.cluster.any_broker().await,
            },
            None => self.cluster.any_broker().await,
        }
    }
}

/// The message a broker sent with an error code; empty when it sent none (the error
/// then reads the code's description, see `Error::kafka`).
fn broker_message(message: &Option<StrBytes>) -> &str {
    message.as_deref().unwrap_or("")
}

/// How many times admin calls retry a retriable error.
pub const RETRIES: u32 = crate::cluster::RETRIES;

/// Java's `default.api.timeout.ms`.
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);

use crate::cluster::admin_backoff as backoff;

/// True when `err` is the broker saying the topic already exists.
pub fn is_topic_already_exists(err: &Error) -> bool {
    err.kafka_code() == Some(KafkaCode::TopicAlreadyExists)
}

mod configs;
mod coordinator;
mod groups;
pub mod lag;

pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use groups::{GroupDescription, GroupListing, MemberDescription};
pub use lag::{GroupLag, PartitionLag, UncommittedFrom};
