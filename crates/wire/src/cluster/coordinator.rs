//! The coordinators of the cluster: a group's (consumer groups, admin, a transaction's
//! offsets) and a transactional id's (the transactional producer). Both are found with
//! FindCoordinator, by a [`CoordinatorKey`], and reached over connections of their own
//! (not the cluster's pool) so heartbeats never queue behind a long-polling fetch.
//!
//! Two connections, one per [`Lane`]: a broker answers the requests of one connection
//! one at a time, and a JoinGroup may be held for the whole rebalance timeout, so
//! commits and offset fetches (which a cooperative member keeps making while it
//! rebalances) travel apart from membership traffic.
//!
//! The connections are dropped and the coordinator looked up again after
//! NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or any network error: that is how a
//! coordinator move is followed. [`Coordinator::call`] is the one retrying call: it
//! follows moves and waits out loads (COORDINATOR_LOAD_IN_PROGRESS) with backoff until a
//! deadline, as [`Retry`] says.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;
use tracing::debug;

use crate::cluster::Cluster;
use crate::error::{Error, ErrorKind, KafkaCode, Result};
use crate::net::{BrokerConnection, ConnectionConfig};
use crate::sync::lock;

/// What a coordinator coordinates: FindCoordinator's key and key type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CoordinatorKey {
    /// A group id (key type 0).
    Group(String),
    /// A transactional id (key type 1).
    Transaction(String),
}

impl CoordinatorKey {
    /// The group or transactional id.
    pub(crate) fn key(&self) -> &str {
        match self {
            CoordinatorKey::Group(id) | CoordinatorKey::Transaction(id) => id,
        }
    }

    /// FindCoordinator's key type: 0 for a group, 1 for a transactional id.
    pub(crate) fn key_type(&self) -> i8 {
        match self {
            CoordinatorKey::Group(_) => 0,
            CoordinatorKey::Transaction(_) => 1,
        }
    }
}

impl std::fmt::Display for CoordinatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoordinatorKey::Group(id) => write!(f, "group {id}"),
            CoordinatorKey::Transaction(id) => write!(f, "transactional id {id}"),
        }
    }
}

/// Which coordinator connection a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// JoinGroup, SyncGroup, Heartbeat, LeaveGroup; the transactional calls.
    Membership = 0,
    /// OffsetCommit, OffsetFetch, DescribeGroups.
    Offsets = 1,
}

/// The coordinator of one [`CoordinatorKey`], with a connection per [`Lane`].
pub(crate) struct Coordinator {
    key: CoordinatorKey,
    cluster: Cluster,
    /// The pool's settings, with a request timeout that covers a JoinGroup, which the
    /// broker may hold for the whole rebalance timeout.
    conn_config: ConnectionConfig,
    conns: [std::sync::Mutex<Option<BrokerConnection>>; 2],
    connecting: AsyncMutex<()>,
    /// The pause between two lookups while the coordinator is not available.
    backoff: Duration,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("key", &self.key)
            .finish()
    }
}

impl Coordinator {
    /// The coordinator of `key`. `hold` is how long the broker may hold a request before
    /// it answers (a JoinGroup: the rebalance timeout; zero for everything else): the
    /// connections' request timeout covers it. `backoff` paces the lookups.
    pub(crate) fn new(
        key: CoordinatorKey,
        cluster: Cluster,
        hold: Duration,
        backoff: Duration,
    ) -> Self {
        let mut conn_config = cluster.config().connection.clone();
        conn_config.request_timeout = conn_config
            .request_timeout
            .max(hold + Duration::from_secs(5));
        Coordinator {
            key,
            cluster,
            conn_config,
            conns: [std::sync::Mutex::new(None), std::sync::Mutex::new(None)],
            connecting: AsyncMutex::new(()),
            backoff,
        }
    }

    /// The group or transactional id this coordinator serves.
    pub(crate) fn id(&self) -> &str {
        self.key.key()
    }

    fn cached(&self, lane: Lane) -> Option<BrokerConnection> {
        lock(&self.conns[lane as usize])
            .as_ref()
            .filter(|c| !c.is_dead())
            .cloned()
    }

    /// Forgets the coordinator; the next request looks it up again.
    pub(crate) fn invalidate(&self) {
        for conn in &self.conns {
            *lock(conn) = None;
        }
    }

    /// Drops one lane's connection (its pending requests fail), keeping the other.
    pub(crate) fn reset(&self, lane: Lane) {
        *lock(&self.conns[lane as usize]) = None;
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
                    debug!(key = %self.key, coordinator = %addr, "coordinator found");
                    *lock(&self.conns[lane as usize]) = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    debug!(key = %self.key, error = %e, "finding the coordinator, retrying");
                    tokio::time::sleep(self.backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find(&self) -> Result<String> {
        let (_, host, port) = self.locate().await?;
        Ok(format!("{host}:{port}"))
    }

    /// Asks any broker which one coordinates the key: its node id, host and port.
    pub(crate) async fn locate(&self) -> Result<(i32, String, i32)> {
        let conn = self.cluster.any_broker().await?;
        let version = conn.api_versions().version_for(ApiKey::FindCoordinator)?;
        let key = StrBytes::from_string(self.key.key().to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        }
        .with_key_type(self.key.key_type());
        let r = conn.send(&request).await?;
        let (code, node, host, port) = if version >= 4 {
            let c =
                r.coordinators.into_iter().next().ok_or_else(|| {
                    Error::protocol("FindCoordinator response names no coordinator")
                })?;
            (c.error_code, c.node_id.0, c.host, c.port)
        } else {
            (r.error_code, r.node_id.0, r.host, r.port)
        };
        Error::check_code(code, || format!("finding the coordinator of {}", self.key))?;
        Ok((node, host.to_string(), port))
    }

    /// Sends a request to the coordinator, once. A network failure forgets the lane's
    /// connection; an error code naming a coordinator problem (checked by the caller
    /// through [`is_coordinator_error`]) must be followed by [`invalidate`](Self::invalidate).
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
                    format!("coordinator request (api key {}) for {}", R::KEY, self.key),
                    limit,
                ))
            }
        }
    }

    /// The one retrying call: sends `build()`'s request on `lane`, reads the response
    /// with `read` (its error is a failed attempt like a network one), and on a failure does what `retry` decides (see [`Retry::decide`]):
    /// a coordinator that moved or went away is looked up again, a retriable failure is
    /// tried again after a backoff until the deadline. `what` names the call in logs.
    pub(crate) async fn call<R, T, B, C>(
        &self,
        lane: Lane,
        retry: &Retry,
        what: &str,
        build: B,
        read: C,
    ) -> Result<T>
    where
        R: Request,
        B: Fn() -> R,
        C: Fn(R::Response) -> Result<T>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = build();
            let limit = retry.attempt_limit(Instant::now());
            let result = match self.send_within(lane, &request, limit).await {
                Ok(response) => read(response),
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(out) => return Ok(out),
                Err(e) => e,
            };
            let decision = retry.decide(&e, attempt, Instant::now());
            if decision.relookup {
                self.invalidate();
            }
            match decision.retry_after {
                Some(pause) => {
                    debug!(key = %self.key, error = %e, attempt, "{what} retried");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            }
        }
    }

    /// The request timeout of the cluster's connections.
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

/// The pause between two attempts of a [`Coordinator::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    /// The same pause every time (the consumer's `retry.backoff.ms`).
    Fixed(Duration),
    /// [`exponential`](crate::backoff::exponential) from `base` up to `max` (the
    /// producer's `retry.backoff.ms` and `retry.backoff.max.ms`).
    Exponential {
        /// The first pause.
        base: Duration,
        /// The cap.
        max: Duration,
    },
}

impl Backoff {
    fn pause(self, attempt: u32) -> Duration {
        match self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { base, max } => crate::backoff::exponential(base, max, attempt),
        }
    }
}

/// How a [`Coordinator::call`] retries: until a deadline or not at all, with which
/// backoff, and which codes it retries beyond the retriable ones.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    deadline: Instant,
    once: bool,
    /// Each attempt's limit; `None`: what is left of the deadline.
    attempt_timeout: Option<Duration>,
    backoff: Backoff,
    /// Codes retried though not retriable in general, each with its own pause if it has
    /// one (else the backoff's).
    also: &'static [(KafkaCode, Option<Duration>)],
}

/// What [`Retry::decide`] says after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Forget the coordinator: the next attempt looks it up again.
    pub(crate) relookup: bool,
    /// Try again after this pause; `None`: the call fails with the error.
    pub(crate) retry_after: Option<Duration>,
}

impl Retry {
    /// Retries retriable failures until `deadline`, each attempt bounded by what is left
    /// of it.
    pub(crate) fn until(deadline: Instant, backoff: Backoff) -> Self {
        Retry {
            deadline,
            once: false,
            attempt_timeout: None,
            backoff,
            also: &[],
        }
    }

    /// One attempt, bounded by `limit`; its failure is the call's (a coordinator error
    /// still forgets the coordinator, for the next call).
    pub(crate) fn once(limit: Duration) -> Self {
        Retry {
            once: true,
            attempt_timeout: Some(limit),
            ..Retry::until(Instant::now() + limit, Backoff::Fixed(Duration::ZERO))
        }
    }

    /// Bounds every attempt by `limit` rather than by what is left of the deadline.
    pub(crate) fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = Some(limit);
        self
    }

    /// Also retries `codes`, each after its own pause when it names one.
    pub(crate) fn also(mut self, codes: &'static [(KafkaCode, Option<Duration>)]) -> Self {
        self.also = codes;
        self
    }

    fn attempt_limit(&self, now: Instant) -> Duration {
        self.attempt_timeout.unwrap_or_else(|| {
            self.deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1))
        })
    }

    /// What to do after attempt number `attempt` (from 1) failed with `err` at `now`: a
    /// coordinator error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) forgets the
    /// coordinator, whatever comes next; a retriable error (those two, a load in
    /// progress, a cut or timed-out connection, and the codes of [`also`](Self::also))
    /// is tried again while the deadline is ahead, unless the call is [`once`](Self::once).
    /// Network failures need no relookup here: [`Coordinator::send`] already dropped the
    /// connection, and the next attempt finds the coordinator again.
    pub(crate) fn decide(&self, err: &Error, attempt: u32, now: Instant) -> Decision {
        let code = err.kafka_code();
        let relookup = code.is_some_and(is_coordinator_error);
        let extra = code.and_then(|c| self.also.iter().find(|(k, _)| *k == c));
        let retriable = err.is_retriable() || extra.is_some();
        let retry_after = (retriable && !self.once && now < self.deadline).then(|| {
            extra
                .and_then(|(_, pause)| *pause)
                .unwrap_or_else(|| self.backoff.pause(attempt))
        });
        Decision {
            relookup,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(code: KafkaCode) -> Error {
        Error::kafka(code, "test")
    }

    const BACKOFF: Backoff = Backoff::Fixed(Duration::from_millis(100));

    #[test]
    fn keys_name_their_coordinator_type() {
        let g = CoordinatorKey::Group("g".into());
        let t = CoordinatorKey::Transaction("t".into());
        assert_eq!((g.key(), g.key_type()), ("g", 0));
        assert_eq!((t.key(), t.key_type()), ("t", 1));
        assert_eq!(t.to_string(), "transactional id t");
    }

    #[test]
    fn a_moved_coordinator_is_looked_up_again_and_retried() {
        let now = Instant::now();
        let retry = Retry::until(now + Duration::from_secs(5), BACKOFF);
        for code in [
            KafkaCode::NotCoordinator,
            KafkaCode::CoordinatorNotAvailable,
        ] {
            let d = retry.decide(&kafka(code), 1, now);
            assert_eq!(
                d,
                Decision {
                    relookup: true,
                    retry_after: Some(Duration::from_millis(100))
                },
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_loading_coordinator_and_a_cut_connection_are_retried_in_place() {
        let now = Instant::now();
        let retry = Retry::until(now + Duration::from_secs(5), BACKOFF);
        let errors = [
            kafka(KafkaCode::CoordinatorLoadInProgress),
            Error::timeout("a request", Duration::from_secs(1)),
            Error::closed("connection closed"),
        ];
        for e in &errors {
            let d = retry.decide(e, 1, now);
            assert!(!d.relookup, "{e}");
            assert_eq!(d.retry_after, Some(Duration::from_millis(100)), "{e}");
        }
    }

    #[test]
    fn fatal_errors_and_a_spent_deadline_fail_the_call() {
        let now = Instant::now();
        let retry = Retry::until(now + Duration::from_secs(5), BACKOFF);
        for code in [
            KafkaCode::GroupAuthorizationFailed,
            KafkaCode::IllegalGeneration,
            KafkaCode::ConcurrentTransactions,
        ] {
            assert_eq!(
                retry.decide(&kafka(code), 1, now).retry_after,
                None,
                "{code:?}"
            );
        }
        let late = now + Duration::from_secs(6);
        let d = retry.decide(&kafka(KafkaCode::NotCoordinator), 3, late);
        assert_eq!(
            d,
            Decision {
                relookup: true,
                retry_after: None
            }
        );
    }

    #[test]
    fn once_never_retries_but_still_forgets_a_moved_coordinator() {
        let now = Instant::now();
        let retry = Retry::once(Duration::from_secs(5));
        let d = retry.decide(&kafka(KafkaCode::NotCoordinator), 1, now);
        assert_eq!(
            d,
            Decision {
                relookup: true,
                retry_after: None
            }
        );
        let d = retry.decide(&kafka(KafkaCode::CoordinatorLoadInProgress), 1, now);
        assert_eq!(
            d,
            Decision {
                relookup: false,
                retry_after: None
            }
        );
    }

    const ALSO: &[(KafkaCode, Option<Duration>)] = &[
        (
            KafkaCode::ConcurrentTransactions,
            Some(Duration::from_millis(20)),
        ),
        (KafkaCode::UnknownTopicOrPartition, None),
    ];

    #[test]
    fn extra_codes_retry_with_their_own_pause_and_backoff_grows() {
        let now = Instant::now();
        let retry = Retry::until(
            now + Duration::from_secs(5),
            Backoff::Exponential {
                base: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
        )
        .also(ALSO);
        let d = retry.decide(&kafka(KafkaCode::ConcurrentTransactions), 7, now);
        assert_eq!(d.retry_after, Some(Duration::from_millis(20)));
        // The backoff's pause, jittered ±20 %: attempt 4 is 800 ms nominal.
        let pause = retry
            .decide(&kafka(KafkaCode::UnknownTopicOrPartition), 4, now)
            .retry_after
            .map(|d| d.as_millis());
        assert!(
            pause.is_some_and(|ms| (640..=960).contains(&ms)),
            "{pause:?}"
        );
    }

    #[test]
    fn attempts_are_bounded_by_what_is_left_or_by_their_own_limit() {
        let now = Instant::now();
        let retry = Retry::until(now + Duration::from_secs(5), BACKOFF);
        assert_eq!(retry.attempt_limit(now), Duration::from_secs(5));
        assert_eq!(
            retry.attempt_limit(now + Duration::from_secs(9)),
            Duration::from_millis(1)
        );
        let retry = retry.attempt_timeout(Duration::from_secs(2));
        assert_eq!(
            retry.attempt_limit(now + Duration::from_secs(9)),
            Duration::from_secs(2)
        );
    }
}
