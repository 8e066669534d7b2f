//! The cluster: bootstrap (`bootstrap.rs`: the bounded retry), a metadata cache
//! refreshed on demand and on a timer, and a pool of one connection per broker.
//!
//! [`Cluster`] is a cheap handle (clones share everything). Metadata snapshots are
//! immutable [`Metadata`] values behind an `Arc`; readers never wait for a refresh.

mod bootstrap;
pub(crate) mod consumer_protocol;
pub(crate) mod coordinator;
mod list_offsets;
mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_fetch;
mod pool;

use crate::sync;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::MetadataRequest;
use tokio::time::Instant;
use tracing::{debug, warn};

use self::pool::{Lookup, Pool};

pub(crate) use list_offsets::{admin_backoff, list_offsets, RETRIES};
pub use list_offsets::{ListedOffset, OffsetSpec};
pub use metadata::{BrokerInfo, Metadata, PartitionInfo, TopicInfo};

use crate::config::ms;
use crate::error::{Error, Result};
use crate::net::{BrokerConnection, ConnectionConfig, SecurityConfig};
use crate::sync::lock;
use crate::types::topic_name;

/// How to reach and watch a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `host:port` addresses to bootstrap from; the first that answers wins.
    pub bootstrap: Vec<String>,
    /// Settings of every broker connection.
    pub connection: ConnectionConfig,
    /// Metadata older than this is refreshed in the background. Default 5 minutes
    /// (Java: `metadata.max.age.ms`).
    pub metadata_max_age: Duration,
    /// After a failed connect, how long before the next one to that broker; doubles per
    /// failure. Default 50 ms (Java: `reconnect.backoff.ms`).
    pub reconnect_backoff: Duration,
    /// The cap of [`reconnect_backoff`](Self::reconnect_backoff). Default 1 s (Java:
    /// `reconnect.backoff.max.ms`).
    pub reconnect_backoff_max: Duration,
    /// How long [`Cluster::connect`] goes on trying the bootstrap addresses while none
    /// can be reached (a connect refused or timed out, a broker not ready), waiting
    /// [`reconnect_backoff`](Self::reconnect_backoff) after the first failure, doubling
    /// up to [`reconnect_backoff_max`](Self::reconnect_backoff_max). Then, or at once
    /// for an error retrying cannot cure (TLS, authentication, a peer that is not
    /// Kafka), it fails with the last error, as a single try does. Default `None`: one
    /// try, so a wrong address fails at once. Sluice only (`sluice.bootstrap.timeout.ms`,
    /// 0 for none): Java and librdkafka never fail at construction and retry in the
    /// background without end instead.
    pub bootstrap_timeout: Option<Duration>,
}

impl ClusterConfig {
    /// A config for the comma-separated bootstrap list `bootstrap`
    /// (`"host1:9092,host2:9092"`), with defaults for everything else.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        let bootstrap: String = bootstrap.into();
        ClusterConfig {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            connection: ConnectionConfig::default(),
            metadata_max_age: Duration::from_secs(300),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            bootstrap_timeout: None,
        }
    }

    /// Sets the client id sent to brokers.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.connection.client_id = id.into();
        self
    }

    /// Sets the request timeout of every connection.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.connection.request_timeout = timeout;
        self
    }

    /// Sets the connect timeout of every connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connection.connect_timeout = timeout;
        self
    }

    /// Sets [`bootstrap_timeout`](Self::bootstrap_timeout): [`Cluster::connect`] retries
    /// an unreachable cluster for up to `timeout`, for a service started before its
    /// brokers.
    pub fn bootstrap_timeout(mut self, timeout: Duration) -> Self {
        self.bootstrap_timeout = Some(timeout);
        self
    }

    /// Sets how connections are secured (TLS, SASL).
    pub fn security(mut self, security: SecurityConfig) -> Self {
        self.connection.security = security;
        self
    }

    /// Sets one Java-style key that applies to every client: `bootstrap.servers`,
    /// `client.id`, `request.timeout.ms`, `socket.connection.setup.timeout.ms`,
    /// `metadata.max.age.ms`, `reconnect.backoff.ms`, `reconnect.backoff.max.ms`,
    /// `sluice.bootstrap.timeout.ms` (0: one try), and the
    /// security keys (`security.protocol`, `ssl.*`, `sasl.*`; see [`SecurityConfig::set`]).
    ///
    /// Every config's `set` has this shape (see the crate docs, *Configuration*).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the key, for a key that is
    /// not one of these or a value that does not parse.
    ///
    /// ```
    /// use sluice_wire::cluster::ClusterConfig;
    /// let mut config = ClusterConfig::new("127.0.0.1:9093");
    /// config
    ///     .set("security.protocol", "SSL")?
    ///     .set("ssl.ca.location", "/etc/kafka/ca.pem")?;
    /// assert!(config.set("linger.ms", "5").is_err());
    ///
    /// // Wait up to 30 s for a cluster that is not up yet; 0 goes back to one try.
    /// config.set("sluice.bootstrap.timeout.ms", "30000")?;
    /// assert_eq!(config.bootstrap_timeout, Some(std::time::Duration::from_secs(30)));
    /// config.set("sluice.bootstrap.timeout.ms", "0")?;
    /// assert_eq!(config.bootstrap_timeout, None);
    /// # Ok::<(), sluice_wire::Error>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        if self.try_set(key, value)? {
            Ok(self)
        } else {
            Err(Error::config(format!("unknown cluster config key {key:?}")))
        }
    }

    /// Like [`ClusterConfig::set`], but a key that is not a cluster key is no error:
    /// `Ok(false)`, so a caller routing a mixed list of properties (a client's own config,
    /// a CLI's `-X`) can pass it on. A bad value of a cluster key is still an error.
    ///
    /// ```
    /// use sluice_wire::cluster::ClusterConfig;
    /// let mut config = ClusterConfig::new("127.0.0.1:9092");
    /// assert!(config.try_set("client.id", "billing")?);
    /// assert!(!config.try_set("linger.ms", "5")?);
    /// # Ok::<(), sluice_wire::Error>(())
    /// ```
    pub fn try_set(&mut self, key: &str, value: &str) -> Result<bool> {
        let value = value.trim();
        match key {
            "bootstrap.servers" => self.bootstrap = ClusterConfig::new(value).bootstrap,
            "client.id" => self.connection.client_id = value.to_string(),
            "request.timeout.ms" => self.connection.request_timeout = ms(key, value)?,
            "socket.connection.setup.timeout.ms" => {
                self.connection.connect_timeout = ms(key, value)?
            }
            "metadata.max.age.ms" => self.metadata_max_age = ms(key, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms(key, value)?,
            "sluice.bootstrap.timeout.ms" => {
                self.bootstrap_timeout = Some(ms(key, value)?).filter(|t| !t.is_zero())
            }
            _ => return self.connection.security.try_set(key, value),
        }
        Ok(true)
    }
}

/// A handle to a Kafka cluster. Clones share the metadata cache and connections.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    metadata: RwLock<Arc<Metadata>>,
    /// Connections by node id. Bootstrap connections are kept apart: a bootstrap address
    /// may not be any broker's advertised address.
    brokers: Pool,
    bootstrap: Mutex<Option<BrokerConnection>>,
    /// A background refresh of all metadata is running (see
    /// [`Cluster::request_refresh`]).
    refreshing: AtomicBool,
    /// When the last background refresh started: they are at least
    /// [`REFRESH_SPACING`] apart.
    last_refresh: Mutex<Option<Instant>>,
}

/// The least time between two background metadata refreshes asked for by failed
/// connections (Java: `retry.backoff.ms`).
const REFRESH_SPACING: Duration = Duration::from_millis(100);

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.config.bootstrap)
            .field("brokers", &self.metadata().brokers.len())
            .finish()
    }
}

impl Cluster {
    /// Connects to the first bootstrap address that answers, fetches the cluster's
    /// brokers, and starts the background metadata refresh.
    ///
    /// Fails with the last address's error when none answers, so a wrong port or a
    /// server that is not Kafka gives a typed error within the connect timeout. With a
    /// [`bootstrap_timeout`](ClusterConfig::bootstrap_timeout), an unreachable cluster
    /// is tried again, with the reconnect backoff, until then.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster> {
        if config.bootstrap.is_empty() {
            return Err(Error::config("no bootstrap address given"));
        }
        config.connection.security.validate()?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                brokers: Pool::new(config.reconnect_backoff, config.reconnect_backoff_max),
                config,
                metadata: RwLock::new(Arc::new(Metadata::default())),
                bootstrap: Mutex::new(None),
                refreshing: AtomicBool::new(false),
                last_refresh: Mutex::new(None),
            }),
        };
        let retry = bootstrap::Retry {
            timeout: cluster.inner.config.bootstrap_timeout,
            backoff: cluster.inner.config.reconnect_backoff,
            backoff_max: cluster.inner.config.reconnect_backoff_max,
        };
        bootstrap::with_retry(retry, || cluster.refresh_all()).await?;
        let weak = Arc::downgrade(&cluster.inner);
        let every = cluster.inner.config.metadata_max_age;
        tokio::spawn(refresh_periodically(weak, every));
        Ok(cluster)
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        Arc::clone(&sync::read(&self.inner.metadata))
    }

    /// The configuration this cluster was connected with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Refreshes metadata for every topic in the cluster.
    pub async fn refresh_all(&self) -> Result<Arc<Metadata>> {
        self.refresh_with(None, false).await
    }

    /// Refreshes metadata for `topics` (keeping what is cached for others). When
    /// `auto_create` is true and the brokers allow it, unknown topics are created.
    pub async fn refresh(&self, topics: &[&str], auto_create: bool) -> Result<Arc<Metadata>> {
        self.refresh_with(Some(topics), auto_create).await
    }

    async fn refresh_with(
        &self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> Result<Arc<Metadata>> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let conn = self.any_broker().await?;
        let response = match conn.send(&request).await {
            Ok(r) => r,
            Err(e) => {
                debug!(broker = conn.addr(), error = %e, "metadata request failed, trying another broker");
                self.any_broker().await?.send(&request).await?
            }
        };
        let mut guard = sync::write(&self.inner.metadata);
        let next = Arc::new(Metadata::merge(&guard, response, topics.is_none()));
        *guard = Arc::clone(&next);
        Ok(next)
    }

    /// A live connection to broker `node_id`, opened if needed.
    ///
    /// Each broker connects on its own: a broker that is slow to answer holds up only
    /// its own callers. After a failed connect the broker is skipped (this fails at once
    /// with the last error) until its reconnect backoff has passed, and a metadata
    /// refresh is started in the background, as after a lost connection: the broker's
    /// partitions likely have new leaders.
    pub async fn broker(&self, node_id: i32) -> Result<BrokerConnection> {
        let gate = match self.inner.brokers.lookup(node_id) {
            Lookup::Live(conn) => return Ok(conn),
            Lookup::BackingOff(e) => {
                self.request_refresh();
                return Err(e);
            }
            Lookup::Connect { gate, lost } => {
                if lost {
                    debug!(broker = node_id, "connection lost; refreshing metadata");
                    self.request_refresh();
                }
                gate
            }
        };
        let _one_connect = gate.lock().await;
        // Another caller may have connected, or failed, while we waited.
        match self.inner.brokers.lookup(node_id) {
            Lookup::Live(conn) => return Ok(conn),
            Lookup::BackingOff(e) => return Err(e),
            Lookup::Connect { .. } => {}
        }
        let addr = self
            .metadata()
            .brokers
            .get(&node_id)
            .map(BrokerInfo::addr)
            .ok_or_else(|| Error::no_broker(format!("broker {node_id} is not in the metadata")))?;
        self.inner.brokers.attempt(node_id);
        match BrokerConnection::connect(&addr, self.inner.config.connection.clone()).await {
            Ok(conn) => {
                self.inner.brokers.connected(node_id, conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let wait = self.inner.brokers.failed(node_id, e.clone());
                debug!(broker = node_id, %addr, error = %e, backoff = ?wait, "connect failed");
                self.request_refresh();
                Err(e)
            }
        }
    }

    /// How many times a connection to broker `node_id` was attempted (a diagnostic:
    /// with the reconnect backoff, about one a second at most for a broker that is down).
    pub fn connect_attempts(&self, node_id: i32) -> u64 {
        self.inner.brokers.attempts(node_id)
    }

    /// Starts a refresh of all metadata in the background, unless one is running or
    /// one started less than [`REFRESH_SPACING`] ago. Never waits.
    pub(crate) fn request_refresh(&self) {
        {
            let mut last = lock(&self.inner.last_refresh);
            if last.is_some_and(|t| t.elapsed() < REFRESH_SPACING) {
                return;
            }
            if self.inner.refreshing.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.inner.refreshing.store(false, Ordering::Release);
            return;
        };
        let cluster = self.clone();
        handle.spawn(async move {
            if let Err(e) = cluster.refresh_all().await {
                debug!(error = %e, "background metadata refresh failed");
            }
            cluster.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// The connection to the leader of `topic`/`partition`, refreshing the topic's
    /// metadata once when the cache has no leader for it.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<BrokerConnection> {
        let leader = match self
            .metadata()
            .partition(topic, partition)
            .and_then(|p| p.leader)
        {
            Some(id) => id,
            None => {
                let md = self.refresh(&[topic], false).await?;
                let t = md
                    .topic(topic)
                    .ok_or_else(|| Error::unknown_topic(format!("topic {topic} is unknown")))?;
                if let Some(code) = t.error {
                    return Err(Error::kafka(code, format!("metadata for topic {topic}")));
                }
                let p = md.partition(topic, partition).ok_or_else(|| {
                    Error::unknown_topic(format!(
                        "topic {topic} has {} partitions, no partition {partition}",
                        t.partitions.len()
                    ))
                })?;
                p.leader.ok_or_else(|| {
                    Error::no_broker(format!("partition {topic}-{partition} has no leader"))
                })?
            }
        };
        self.broker(leader).await
    }

    /// A live connection to some broker: a pooled one, else a known broker, else a
    /// bootstrap address.
    pub async fn any_broker(&self) -> Result<BrokerConnection> {
        if let Some(conn) = self.inner.brokers.any_live() {
            return Ok(conn);
        }
        let known: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let mut last_error = None;
        for id in known {
            match self.broker(id).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(conn) = lock(&self.inner.bootstrap)
            .as_ref()
            .filter(|c| !c.is_dead())
        {
            return Ok(conn.clone());
        }
        for addr in &self.inner.config.bootstrap {
            match BrokerConnection::connect(addr, self.inner.config.connection.clone()).await {
                Ok(conn) => {
                    *lock(&self.inner.bootstrap) = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    warn!(addr = addr.as_str(), error = %e, "bootstrap address failed");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::no_broker("no broker is reachable")))
    }
}

/// Refreshes all metadata every `every` until the cluster is dropped.
async fn refresh_periodically(cluster: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let Some(inner) = cluster.upgrade() else {
            return;
        };
        let cluster = Cluster { inner };
        if let Err(e) = cluster.refresh_all().await {
            warn!(error = %e, "periodic metadata refresh failed");
        }
    }
}
