//! A low-level client of one partition: produce a finished record batch, fetch from an
//! offset. No batching, no groups, no idempotence, one request at a time: a tool for the
//! CLI, for tests and for programs that want the bytes as the broker has them. The
//! [`Producer`](crate::producer::Producer) and the [`Consumer`](crate::consumer::Consumer)
//! do not use it; they keep their own per-broker produce and fetch paths.
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_wire::admin::{Admin, NewTopic};
//! use sluice_wire::cluster::{Cluster, ClusterConfig};
//! use sluice_wire::partition_client::{Acks, FetchOptions, PartitionClient};
//! use sluice_wire::records::{BatchOptions, RecordBatchBuilder, RecordBatches};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let cluster = Cluster::connect(ClusterConfig::new("127.0.0.1:19092")).await?;
//! Admin::new(cluster.clone())
//!     .create_topics(&[NewTopic::new("orders", 3)], Duration::from_secs(30))
//!     .await?;
//! let mut batch = RecordBatchBuilder::new(BatchOptions::default());
//! batch.append(0, Some(b"k"), Some(b"v"), &[])?;
//! let client = PartitionClient::new(cluster, "orders", 0);
//! let ack = client.produce(batch.finish()?, Acks::All, Duration::from_secs(30)).await?;
//! let fetched = client.fetch(ack.base_offset, FetchOptions::default()).await?;
//! for batch in RecordBatches::new(fetched.records) {
//!     let batch = batch?;
//!     println!("{} records from offset {}", batch.record_count(), batch.base_offset());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Requests go to the partition's leader. NOT_LEADER_OR_FOLLOWER and friends refresh the
//! metadata and try again a bounded number of times. A produce is retried only when the
//! broker's answer proves the batch was not appended (a leadership error); after a
//! network error or a timeout the outcome is unknown, and the error is returned rather
//! than risking a duplicate (the idempotent producer removes that risk).

use crate::config::wire_ms;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest};
use tracing::debug;

use crate::cluster::Cluster;
use crate::error::{Error, ErrorKind, KafkaCode, Result};
use crate::types::topic_name;
pub use crate::types::{Acks, IsolationLevel};

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// The most bytes to return for the partition (Java: `max.partition.fetch.bytes`,
    /// default 1 MiB). The broker returns at least one batch even if it is larger.
    pub max_bytes: i32,
    /// How long the broker may wait for `min_bytes` (Java: `fetch.max.wait.ms`, 500 ms).
    pub max_wait: Duration,
    /// The broker answers as soon as this many bytes are there (Java:
    /// `fetch.min.bytes`, 1).
    pub min_bytes: i32,
    /// Read uncommitted (default) or committed.
    pub isolation: IsolationLevel,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_bytes: 1024 * 1024,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }
}

/// What a fetch returned for the partition.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The offset after the last committed-to-all-replicas record.
    pub high_watermark: i64,
    /// The offset below which no transaction is open, `-1` if unknown.
    pub last_stable_offset: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// Record batches as the broker sent them (decode with
    /// [`crate::records::RecordBatches`]); the last one may be cut short.
    pub records: Bytes,
    /// Under read_committed: `(producer id, first offset)` of aborted transactions in
    /// the returned range.
    pub aborted_transactions: Vec<(i64, i64)>,
}

/// The broker's answer to a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Produced {
    /// The offset of the batch's first record; `-1` with [`Acks::None`].
    pub base_offset: i64,
    /// The append time, when the topic uses `LogAppendTime`; else `-1`.
    pub log_append_time: i64,
}

/// One partition of one topic, on whichever broker leads it.
#[derive(Debug, Clone)]
pub struct PartitionClient {
    cluster: Cluster,
    topic: String,
    partition: i32,
}

/// Tries per call. With [`BACKOFF`] growing to [`BACKOFF_MAX`] (Java's `retry.backoff.ms`
/// and `retry.backoff.max.ms`), 10 tries wait about 6.5 s in all: long enough for a
/// just-created topic on a busy broker to get its leader, which 5 tries of 100 ms
/// (0.4 s) were not on a loaded CI machine.
const ATTEMPTS: u32 = 10;
const BACKOFF: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl PartitionClient {
    /// A client for `topic`/`partition` of `cluster`.
    pub fn new(cluster: Cluster, topic: impl Into<String>, partition: i32) -> Self {
        PartitionClient {
            cluster,
            topic: topic.into(),
            partition,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Produces one finished record batch (from
    /// [`crate::records::RecordBatchBuilder`]) and returns its base offset.
    pub async fn produce(&self, batch: Bytes, acks: Acks, timeout: Duration) -> Result<Produced> {
        let request = ProduceRequest::default()
            .with_acks(acks.wire())
            .with_timeout_ms(wire_ms(timeout))
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&self.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(self.partition)
                    .with_records(Some(batch))])]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.cluster.leader(&self.topic, self.partition).await?;
            if acks == Acks::None {
                conn.send_no_response(&request).await?;
                return Ok(Produced {
                    base_offset: -1,
                    log_append_time: -1,
                });
            }
            let response = conn.send(&request).await?;
            let part = response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == self.partition)
                .ok_or_else(|| {
                    Error::protocol(format!("Produce response has no entry for {}", self.name()))
                })?;
            match Error::check_code(part.error_code, || {
                let detail = part
                    .error_message
                    .as_ref()
                    .map(|m| m.as_str())
                    .unwrap_or("");
                format!("producing to {}: {detail}", self.name())
            }) {
                Ok(()) => {
                    return Ok(Produced {
                        base_offset: part.base_offset,
                        log_append_time: part.log_append_time_ms,
                    })
                }
                Err(e) if attempt < ATTEMPTS && not_appended(&e) => {
                    debug!(topic = %self.topic, partition = self.partition, error = %e, "produce retried");
                    self.backoff(attempt).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches records from `offset`.
    pub async fn fetch(&self, offset: i64, options: FetchOptions) -> Result<Fetched> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wire_ms(options.max_wait))
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.max_bytes.max(1))
            .with_isolation_level(options.isolation.wire())
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&self.topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(self.partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(options.max_bytes)])]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<Fetched> = async {
                let conn = self.cluster.leader(&self.topic, self.partition).await?;
                let response = conn.send(&request).await?;
                Error::check_code(response.error_code, || format!("fetching {}", self.name()))?;
                let part = response
                    .responses
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .find(|p| p.partition_index == self.partition)
                    .ok_or_else(|| {
                        Error::protocol(format!("Fetch response has no entry for {}", self.name()))
                    })?;
                Error::check_code(part.error_code, || {
                    format!("fetching {} at offset {offset}", self.name())
                })?;
                Ok(Fetched {
                    high_watermark: part.high_watermark,
                    last_stable_offset: part.last_stable_offset,
                    log_start_offset: part.log_start_offset,
                    records: part.records.unwrap_or_default(),
                    aborted_transactions: part
                        .aborted_transactions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect(),
                })
            }
            .await;
            match result {
                Ok(f) => return Ok(f),
                Err(e) if attempt < ATTEMPTS && e.is_retriable() => {
                    debug!(topic = %self.topic, partition = self.partition, error = %e, "fetch retried");
                    self.backoff(attempt).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn backoff(&self, attempt: u32) -> Result<()> {
        tokio::time::sleep(crate::backoff::exponential(BACKOFF, BACKOFF_MAX, attempt)).await;
        self.cluster.refresh(&[&self.topic], false).await.map(drop)
    }

    fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// Errors with which the broker says the batch was not appended, so resending it cannot
/// duplicate it.
fn not_appended(e: &Error) -> bool {
    e.kind() == ErrorKind::Kafka
        && matches!(
            e.kafka_code(),
            Some(
                KafkaCode::NotLeaderOrFollower
                    | KafkaCode::LeaderNotAvailable
                    | KafkaCode::UnknownTopicOrPartition
                    | KafkaCode::NotEnoughReplicas
            )
        )
}
