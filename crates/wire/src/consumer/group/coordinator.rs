//! The group coordinator: found with FindCoordinator, reached over connections of its
//! own (not the cluster's pool) so heartbeats never queue behind a long-polling fetch.
//!
//! Two connections, one per [`Lane`]: a broker answers the requests of one connection
//! one at a time, and a JoinGroup may be held for the whole rebalance timeout, so
//! commits and offset fetches (which a cooperative member keeps making while it
//! rebalances) travel apart from membership traffic.
//!
//! The connections are dropped and the coordinator looked up again after
//! NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or any network error: that is how a
//! coordinator move is followed.

use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;
use tracing::debug;

use crate::cluster::Cluster;
use crate::consumer::commit_queue::CommitQueue;
use crate::error::{Error, ErrorKind, KafkaCode, Result};
use crate::net::{BrokerConnection, ConnectionConfig};

/// Which coordinator connection a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
    Membership = 0,
    /// OffsetCommit, OffsetFetch, DescribeGroups.
    Offsets = 1,
}

pub(crate) struct Coordinator {
    /// The coordinator key: a group id, or a transactional id when `key_type` is 1.
    pub(crate) group_id: String,
    /// FindCoordinator key type: 0 for a group, 1 for a transactional id.
    key_type: i8,
    cluster: Cluster,
    /// The pool's settings, with a request timeout that covers a JoinGroup, which the
    /// broker may hold for the whole rebalance timeout.
    conn_config: ConnectionConfig,
    conns: [Mutex<Option<BrokerConnection>>; 2],
    connecting: AsyncMutex<()>,
    backoff: Duration,
    /// The order of the group's offset commits from this client (see
    /// [`CommitQueue`](crate::consumer::commit_queue::CommitQueue)).
    pub(crate) commits: CommitQueue,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("group_id", &self.group_id)
            .finish()
    }
}

impl Coordinator {
    pub(crate) fn new(
        group_id: String,
        cluster: Cluster,
        rebalance_timeout: Duration,
        backoff: Duration,
    ) -> Self {
        let mut conn_config = cluster.config().connection.clone();
        conn_config.request_timeout = conn_config
            .request_timeout
            .max(rebalance_timeout + Duration::from_secs(5));
        Coordinator {
            group_id,
            key_type: 0,
            cluster,
            conn_config,
            conns: [Mutex::new(None), Mutex::new(None)],
            connecting: AsyncMutex::new(()),
            backoff,
            commits: CommitQueue::default(),
        }
    }

    /// A coordinator of the transactional id `transactional_id` (FindCoordinator key
    /// type 1), for the transactional producer.
    pub(crate) fn for_transaction(
        transactional_id: String,
        cluster: Cluster,
        backoff: Duration,
    ) -> Self {
        let mut c = Coordinator::new(transactional_id, cluster, Duration::ZERO, backoff);
        c.key_type = 1;
        c
    }

    fn cached(&self, lane: Lane) -> Option<BrokerConnection> {
        let guard = match self.conns[lane as usize].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.as_ref().filter(|c| !c.is_dead()).cloned()
    }

    /// Forgets the coordinator; the next request looks it up again.
    pub(crate) fn invalidate(&self) {
        for conn in &self.conns {
            let mut guard = match conn.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *guard = None;
        }
    }

    /// Drops one lane's connection (its pending requests fail), keeping the other.
    pub(crate) fn reset(&self, lane: Lane) {
        let mut guard = match self.conns[lane as usize].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = None;
    }

    /// The connection to the coordinator, found and opened if needed, retrying
    /// COORDINATOR_NOT_AVAILABLE (the offsets topic may still be being created) for up to
    /// the request timeout.
    pub(crate) async fn connection(&self, lane: Lane) -> Result<BrokerConnection> {
        if let Some(c) = self.cached(lane) {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.cached(lane) {
            return Ok(c);
        }
        let limit = self.cluster.config().connection.request_timeout;
        let deadline = Instant::now() + limit;
        loop {
            let found = match self.find().await {
                // A coordinator that was just lost may still be named until its broker
                // is fenced: a refused connect is retried (with fresh metadata) like
                // COORDINATOR_NOT_AVAILABLE, within the same deadline.
                Ok(addr) => BrokerConnection::connect(&addr, self.conn_config.clone())
                    .await
                    .map(|conn| (addr, conn))
                    .inspect_err(|_| self.cluster.request_refresh()),
                Err(e) => Err(e),
            };
            match found {
                Ok((addr, conn)) => {
                    debug!(group = %self.group_id, coordinator = %addr, "coordinator found");
                    let mut guard = match self.conns[lane as usize].lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    *guard = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    debug!(group = %self.group_id, error = %e, "finding the coordinator, retrying");
                    tokio::time::sleep(self.backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find(&self) -> Result<String> {
        let conn = self.cluster.any_broker().await?;
        let version = conn.api_versions().version_for(ApiKey::FindCoordinator)?;
        let key = StrBytes::from_string(self.group_id.clone());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        }
        .with_key_type(self.key_type);
        let r = conn.send(&request).await?;
        let (code, host, port) = if version >= 4 {
            let c =
                r.coordinators.into_iter().next().ok_or_else(|| {
                    Error::protocol("FindCoordinator response names no coordinator")
                })?;
            (c.error_code, c.host, c.port)
        } else {
            (r.error_code, r.host, r.port)
        };
        Error::check_code(code, || {
            format!("finding the coordinator of group {}", self.group_id)
        })?;
        Ok(format!("{}:{port}", host.as_str()))
    }

    /// Sends a group request to the coordinator. A network failure or an error code
    /// naming a coordinator problem (checked by the caller through
    /// [`is_coordinator_error`]) forgets the connection.
    pub(crate) async fn send<R: Request>(&self, lane: Lane, request: &R) -> Result<R::Response> {
        let conn = self.connection(lane).await?;
        match conn.send(request).await {
            Ok(r) => Ok(r),
            Err(e) => {
                if matches!(
                    e.kind(),
                    ErrorKind::Io | ErrorKind::Timeout | ErrorKind::ConnectionClosed
                ) {
                    self.reset(lane);
                }
                Err(e)
            }
        }
    }

    /// Sends with a deadline shorter than the connection's (heartbeats, commits); on
    /// timeout the connection is forgotten, since its answer may never come.
    pub(crate) async fn send_within<R: Request>(
        &self,
        lane: Lane,
        request: &R,
        limit: Duration,
    ) -> Result<R::Response> {
        match tokio::time::timeout(limit, self.send(lane, request)).await {
            Ok(r) => r,
            Err(_) => {
                self.reset(lane);
                Err(Error::timeout(
                    format!("group request (api key {}) for {}", R::KEY, self.group_id),
                    limit,
                ))
            }
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.cluster.config().connection.request_timeout
    }
}

/// Codes after which the coordinator must be looked up again.
pub(crate) fn is_coordinator_error(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::NotCoordinator | KafkaCode::CoordinatorNotAvailable
    )
}
