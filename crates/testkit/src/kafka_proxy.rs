//! The Kafka-aware fault proxy: [`KafkaProxy`] and its [`Rule`]s (the details are on
//! [`KafkaProxy`]).

use crate::sync;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::protocol::{read_frame, resolve, KafkaConnection};

/// Kafka error codes a test typically injects (`kafka_protocol::ResponseError::X.code()`
/// gives every other one).
pub mod codes {
    /// OFFSET_OUT_OF_RANGE: a fetch offset outside the log.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE: an election is in progress.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// NOT_LEADER_OR_FOLLOWER: the broker no longer leads the partition.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// REQUEST_TIMED_OUT: e.g. acks=all replication did not finish in time.
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// COORDINATOR_LOAD_IN_PROGRESS: the coordinator is still loading its state.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR: the broker is not (any more) the group/transaction coordinator.
    pub const NOT_COORDINATOR: i16 = 16;
    /// NOT_ENOUGH_REPLICAS: fewer in-sync replicas than `min.insync.replicas`.
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: written to the leader, too few replicas acked.
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    /// ILLEGAL_GENERATION: the member's group generation is stale.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// REBALANCE_IN_PROGRESS: the group is rebalancing; rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// CONCURRENT_TRANSACTIONS: the previous transaction is still completing.
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: an idempotent producer's sequence has a gap.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// DUPLICATE_SEQUENCE_NUMBER.
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    /// INVALID_PRODUCER_EPOCH: a newer producer with the same transactional id exists.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// UNKNOWN_PRODUCER_ID: the broker has no state for the producer id.
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    /// FETCH_SESSION_ID_NOT_FOUND (top level of a Fetch response).
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    /// INVALID_FETCH_SESSION_EPOCH (top level of a Fetch response).
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
    /// FENCED_LEADER_EPOCH: the request's leader epoch is older than the broker's.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH: the request's leader epoch is newer than the broker's.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// UNSTABLE_OFFSET_COMMIT: a transaction with pending offsets is still open.
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}

/// What a [`Rule`] does to a response it fires on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the rule only counts ([`RuleHandle::hits`]).
    Observe,
    /// Set the error code of the matching partitions (partition APIs) or the top-level
    /// error (the others); see [`Rule::set_error`].
    SetError(i16),
    /// Set the top-level error code; see [`Rule::set_top_level_error`].
    SetTopLevelError(i16),
    /// Hold the response this long before forwarding it.
    Delay(Duration),
    /// Drop the response and close the client's connection (and the broker's).
    DropAndClose,
    /// Drop the response and keep the connection open but dead: see
    /// [`Rule::drop_and_hang`].
    DropAndHang,
}

/// APIs whose responses list topics and partitions: the topic filter and partition-level
/// errors apply to them.
const PARTITION_APIS: [ApiKey; 7] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::TxnOffsetCommit,
    ApiKey::AddPartitionsToTxn,
];

/// APIs with one top-level error code that [`Rule::set_error`] sets.
const TOP_LEVEL_APIS: [ApiKey; 11] = [
    ApiKey::ApiVersions,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::InitProducerId,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::Metadata,
];

/// Which responses a rule matches and what it does to them. Build one, then add it with
/// [`KafkaProxy::add_rule`] or [`KafkaFaultCluster::add_rule`](crate::KafkaFaultCluster::add_rule).
///
/// A response *matches* when its request had the rule's API key (and client id, if
/// set) and, with a topic filter, the response lists that topic (and partition). The
/// rule *fires* on matches number `skip + 1 ..= skip + times` (all of them by default)
/// and does its [`Action`]. Several rules may fire on one response: delays add up,
/// every error is set, a drop wins.
///
/// ```
/// use kafka_protocol::messages::ApiKey;
/// use sluice_testkit::{codes, Rule};
/// // The 3rd Produce response that carries orders-0: NOT_LEADER_OR_FOLLOWER for orders-0.
/// let rule = Rule::new(ApiKey::Produce)
///     .partition("orders", 0)
///     .nth(3)
///     .set_error(codes::NOT_LEADER_OR_FOLLOWER);
/// # let _ = rule;
/// // Every Heartbeat response, 5 times: REBALANCE_IN_PROGRESS.
/// let rule = Rule::new(ApiKey::Heartbeat)
///     .times(5)
///     .set_error(codes::REBALANCE_IN_PROGRESS);
/// # let _ = rule;
/// ```
#[derive(Clone, Debug)]
pub struct Rule {
    api: ApiKey,
    topic: Option<String>,
    partition: Option<i32>,
    client_id: Option<String>,
    skip: u64,
    times: Option<u64>,
    action: Action,
}

impl Rule {
    /// A rule on every response to requests of `api`; it fires on every one and only
    /// counts until an action is set.
    pub fn new(api: ApiKey) -> Rule {
        Rule {
            api,
            topic: None,
            partition: None,
            client_id: None,
            skip: 0,
            times: None,
            action: Action::Observe,
        }
    }

    fn require_partition_api(&self, what: &str) {
        assert!(
            PARTITION_APIS.contains(&self.api),
            "Rule::{what}: {:?} responses list no partitions (only {PARTITION_APIS:?} do)",
            self.api
        );
    }

    /// Match only responses that list `topic` (any partition); a partition-level error
    /// is set on that topic's partitions only. Partition APIs only (Produce, Fetch,
    /// ListOffsets, OffsetCommit, OffsetFetch, TxnOffsetCommit, AddPartitionsToTxn);
    /// panics for others. Topic ids (Fetch v13+, Produce v13) are resolved from the
    /// Metadata responses the proxies see, or by asking the broker.
    pub fn topic(mut self, topic: &str) -> Rule {
        self.require_partition_api("topic");
        self.topic = Some(topic.to_string());
        self
    }

    /// Match only responses that list `topic`-`partition`; errors are set on that
    /// partition only. Partition APIs only, as [`Self::topic`].
    pub fn partition(mut self, topic: &str, partition: i32) -> Rule {
        self = self.topic(topic);
        self.partition = Some(partition);
        self
    }

    /// Match only responses to requests with this client id (the request header's).
    pub fn client_id(mut self, client_id: &str) -> Rule {
        self.client_id = Some(client_id.to_string());
        self
    }

    /// Let the first `n` matching responses through untouched.
    pub fn skip(mut self, n: u64) -> Rule {
        self.skip = n;
        self
    }

    /// Fire at most `n` times (after the skipped ones); then the rule lets everything
    /// through (it keeps counting matches).
    pub fn times(mut self, n: u64) -> Rule {
        self.times = Some(n);
        self
    }

    /// Fire on the `n`th matching response only (1-based): `skip(n - 1).times(1)`.
    pub fn nth(self, n: u64) -> Rule {
        assert!(n >= 1, "Rule::nth counts from 1");
        self.skip(n - 1).times(1)
    }

    /// Fire on every matching response (the default): undoes [`Self::times`].
    pub fn always(mut self) -> Rule {
        self.times = None;
        self
    }

    /// Set this error code in the responses the rule fires on:
    ///
    /// - Produce, ListOffsets, OffsetCommit, OffsetFetch, TxnOffsetCommit,
    ///   AddPartitionsToTxn: every partition's (with a topic filter, the matching
    ///   partitions'). Nothing else changes (a Produce partition keeps its base offset).
    /// - Fetch: the matching partitions' error code, and their records are emptied (a
    ///   broker sends none with an error); but FETCH_SESSION_ID_NOT_FOUND (70) and
    ///   INVALID_FETCH_SESSION_EPOCH (71) go to the top level, as
    ///   [`Self::set_top_level_error`] does.
    /// - FindCoordinator (the top level, and every coordinator of v4+), JoinGroup,
    ///   SyncGroup, Heartbeat, LeaveGroup, InitProducerId, AddOffsetsToTxn, EndTxn,
    ///   ConsumerGroupHeartbeat, Metadata (v13+), ApiVersions: the top-level error code.
    ///
    /// Panics for other APIs.
    pub fn set_error(mut self, code: i16) -> Rule {
        if self.api == ApiKey::Fetch && matches!(code, 70 | 71) {
            return self.set_top_level_error(code);
        }
        assert!(
            PARTITION_APIS.contains(&self.api) || TOP_LEVEL_APIS.contains(&self.api),
            "Rule::set_error: setting errors in {:?} responses is not implemented",
            self.api
        );
        self.action = Action::SetError(code);
        self
    }

    /// Set the top-level error code of the responses the rule fires on. Fetch: the
    /// response then lists no partitions and has session id 0, as a broker sends it with
    /// FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH. OffsetFetch: the
    /// top-level code (v2..=v7) and every group's (v8+). AddPartitionsToTxn: v4+. And
    /// the APIs of [`Self::set_error`]'s last item. Panics for other APIs.
    pub fn set_top_level_error(mut self, code: i16) -> Rule {
        assert!(
            matches!(
                self.api,
                ApiKey::Fetch | ApiKey::OffsetFetch | ApiKey::AddPartitionsToTxn
            ) || TOP_LEVEL_APIS.contains(&self.api),
            "Rule::set_top_level_error: {:?} responses have no top-level error the proxy sets",
            self.api
        );
        self.action = Action::SetTopLevelError(code);
        self
    }

    /// Hold the response for `delay` before forwarding it (and the responses behind it
    /// on the connection).
    pub fn delay(mut self, delay: Duration) -> Rule {
        self.action = Action::Delay(delay);
        self
    }

    /// Drop the response and close the connection to the client (and the broker's). The
    /// broker has acted on the request: the client cannot know whether it took effect.
    pub fn drop_and_close(mut self) -> Rule {
        self.action = Action::DropAndClose;
        self
    }

    /// Drop the response and keep the connection open, dead: from then on the proxy
    /// forwards nothing on it in either direction (later requests are read and thrown
    /// away, responses still in flight are dropped), as with a hung broker. The broker
    /// has acted on the request; the client only learns anything by timing out.
    pub fn drop_and_hang(mut self) -> Rule {
        self.action = Action::DropAndHang;
        self
    }

    /// The API key the rule matches.
    pub fn api(&self) -> ApiKey {
        self.api
    }

    /// The action.
    pub fn action(&self) -> &Action {
        &self.action
    }

    fn needs_decoding(&self) -> bool {
        self.topic.is_some()
            || matches!(
                self.action,
                Action::SetError(_) | Action::SetTopLevelError(_)
            )
    }
}

/// A response before and after a rule rewrote it (whole payloads: header and body, no
/// length prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// What the broker sent.
    pub original: Bytes,
    /// What the client got.
    pub forwarded: Bytes,
}

impl Rewrite {
    /// The byte offsets at which `forwarded` differs from `original` (all of them past
    /// the shorter length when the lengths differ).
    pub fn differing_offsets(&self) -> Vec<usize> {
        let (a, b) = (&self.original, &self.forwarded);
        (0..a.len().max(b.len()))
            .filter(|&i| a.get(i) != b.get(i))
            .collect()
    }
}

#[derive(Default)]
struct Counts {
    matched: u64,
    hits: u64,
    last_rewrite: Option<Rewrite>,
}

struct RuleState {
    rule: Rule,
    counts: Mutex<Counts>,
    removed: AtomicBool,
}

impl RuleState {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        sync::lock(&self.counts)
    }

    /// Count one match; whether the rule fires on it.
    fn fire(&self) -> bool {
        let mut c = self.counts();
        c.matched += 1;
        let fires = c.matched > self.rule.skip && self.rule.times.is_none_or(|t| c.hits < t);
        if fires {
            c.hits += 1;
        }
        fires
    }
}

/// A rule in force; clones share it. Removing it (or dropping the proxy) stops it.
#[derive(Clone)]
pub struct RuleHandle {
    state: Arc<RuleState>,
    set: Arc<RuleSet>,
}

impl fmt::Debug for RuleHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleHandle")
            .field("rule", &self.state.rule)
            .field("matched", &self.matched())
            .field("hits", &self.hits())
            .finish()
    }
}

impl RuleHandle {
    /// How many responses the rule fired on (did its action on).
    pub fn hits(&self) -> u64 {
        self.state.counts().hits
    }

    /// How many responses matched (fired or not: skipped ones, and those after the
    /// rule's `times` ran out, count too).
    pub fn matched(&self) -> u64 {
        self.state.counts().matched
    }

    /// Whether the rule has fired as often as its `times` allow (never for a rule
    /// without a limit).
    pub fn exhausted(&self) -> bool {
        self.state.rule.times.is_some_and(|t| self.hits() >= t)
    }

    /// The last response this rule rewrote (set-error actions only).
    pub fn last_rewrite(&self) -> Option<Rewrite> {
        self.state.counts().last_rewrite.clone()
    }

    /// Waits until the rule has fired `n` times; false on timeout.
    pub fn wait_for_hits(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.hits() < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Takes the rule out of force (its counts stay readable).
    pub fn remove(&self) {
        self.state.removed.store(true, Ordering::SeqCst);
        self.set.rules().retain(|r| !Arc::ptr_eq(r, &self.state));
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.state.rule
    }
}

/// Rules in force, in the order they were added.
#[derive(Default)]
pub(crate) struct RuleSet {
    rules: Mutex<Vec<Arc<RuleState>>>,
}

impl RuleSet {
    fn rules(&self) -> MutexGuard<'_, Vec<Arc<RuleState>>> {
        sync::lock(&self.rules)
    }

    pub(crate) fn add(self: &Arc<Self>, rule: Rule) -> RuleHandle {
        let state = Arc::new(RuleState {
            rule,
            counts: Mutex::new(Counts::default()),
            removed: AtomicBool::new(false),
        });
        self.rules().push(state.clone());
        RuleHandle {
            state,
            set: self.clone(),
        }
    }

    pub(crate) fn clear(&self) {
        for r in self.rules().drain(..) {
            r.removed.store(true, Ordering::SeqCst);
        }
    }

    fn snapshot(&self) -> Vec<Arc<RuleState>> {
        self.rules().clone()
    }
}

/// Topic id -> name, learned from Metadata responses (shared by a cluster's proxies).
#[derive(Default)]
pub(crate) struct TopicIds {
    names: Mutex<HashMap<[u8; 16], String>>,
    /// When the broker was last asked (at most once a second).
    asked: Mutex<Option<Instant>>,
}

impl TopicIds {
    fn get(&self, id: &[u8; 16]) -> Option<String> {
        sync::lock(&self.names).get(id).cloned()
    }

    fn learn(&self, response: &kafka_protocol::messages::MetadataResponse) {
        let mut names = sync::lock(&self.names);
        for t in &response.topics {
            if let Some(name) = &t.name {
                if !t.topic_id.is_nil() {
                    names.insert(*t.topic_id.as_bytes(), name.0.to_string());
                }
            }
        }
    }
}

/// Counters of one proxy.
#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    requests: AtomicU64,
    responses: AtomicU64,
    rewritten: AtomicU64,
    undecodable: AtomicU64,
    last_error: Mutex<Option<String>>,
}

struct Shared {
    upstream: SocketAddr,
    /// This proxy's own rules, then (in a cluster) the cluster's.
    rules: Arc<RuleSet>,
    cluster_rules: Option<Arc<RuleSet>>,
    topic_ids: Arc<TopicIds>,
    stats: Stats,
    stop: AtomicBool,
    /// Both sockets of every proxied connection, so they can be cut.
    conns: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn note_error(&self, msg: String) {
        self.stats.undecodable.fetch_add(1, Ordering::SeqCst);
        *sync::lock(&self.stats.last_error) = Some(msg);
    }
}

/// A Kafka-aware proxy in front of one broker; stops (and cuts its connections) when
/// dropped. It reads the request frames a client sends, forwards them to the broker,
/// matches the broker's response frames to them, and by [`Rule`] rewrites the error codes
/// of responses, delays them, or drops them after the broker has acted on the request
/// (the ambiguous outcome).
///
/// # What goes through untouched
///
/// Requests are always forwarded as they are (only their header is read). A response no
/// rule acts on is forwarded byte for byte, and so is one that a rule only delays or
/// drops. A response whose error codes a rule sets is decoded with `kafka-protocol`'s
/// generated structs at the version of its request, changed, and encoded again at that
/// version: the bytes are the broker's except for the rewritten fields (tagged fields
/// the structs do not know are kept). [`RuleHandle::last_rewrite`] shows both.
///
/// # Threads and order
///
/// Two threads per connection: requests client→broker, responses broker→client. The
/// broker answers the requests of a connection in order, so responses are matched to the
/// requests in flight by order and checked by correlation id; requests may be pipelined.
/// A delay holds the responses behind it too, as a slow broker would. Produce requests
/// with `acks=0` get no response and are not waited for. ApiVersions responses always
/// have a v0 header (no tagged fields), whatever their version, as in Kafka.
///
/// # A whole cluster
///
/// [`kafka_fault_cluster`](crate::kafka_fault_cluster) puts one proxy in front of each
/// broker's FAULTY listener (see [`crate::FaultCluster`] for how the advertised ports
/// keep a client behind the proxies). Rules added to the cluster apply on every proxy
/// and count occurrences across all of them ("the 3rd Produce response for orders-0",
/// whichever broker led it); rules added to one proxy apply to that broker only.
///
/// # Limits
///
/// - PLAINTEXT only: it does not terminate TLS or take part in SASL.
/// - A response a rule needs decoded but that does not decode (a version newer than
///   `kafka-protocol` knows) is forwarded untouched, the rule does not fire, and
///   [`Self::undecodable`] counts it: assert it is 0 in tests that rely on a rule.
/// - Incremental fetch sessions (KIP-227) list only the partitions with news, so a Fetch
///   rule for a partition matches only the responses that carry it.
///
/// ```no_run
/// use kafka_protocol::messages::ApiKey;
/// use sluice_testkit::{codes, KafkaProxy, Rule};
/// // In front of the FAULTY listener of a single broker (base port 19092).
/// let proxy = KafkaProxy::start("127.0.0.1:19094").unwrap();
/// let rule = proxy.add_rule(
///     Rule::new(ApiKey::Produce).partition("orders", 0).nth(1).set_error(codes::NOT_LEADER_OR_FOLLOWER),
/// );
/// // ... a client produces to orders-0 through proxy.addr() ...
/// assert_eq!(rule.hits(), 1);
/// ```
pub struct KafkaProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for KafkaProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl KafkaProxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards every connection to
    /// `upstream` (`host:port` of a broker listener).
    ///
    /// A client bootstrapped here connects to the addresses the broker advertises after
    /// its first Metadata; to keep a client behind proxies, use
    /// [`kafka_fault_cluster`](crate::kafka_fault_cluster).
    pub fn start(upstream: &str) -> io::Result<KafkaProxy> {
        Self::start_on("127.0.0.1:0", upstream)
    }

    /// Listens on `listen` (`host:port`) and forwards every connection to `upstream`.
    pub fn start_on(listen: &str, upstream: &str) -> io::Result<KafkaProxy> {
        Self::start_shared(listen, upstream, None, Arc::default())
    }

    pub(crate) fn start_shared(
        listen: &str,
        upstream: &str,
        cluster_rules: Option<Arc<RuleSet>>,
        topic_ids: Arc<TopicIds>,
    ) -> io::Result<KafkaProxy> {
        let upstream = resolve(upstream)?;
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Arc::default(),
            cluster_rules,
            topic_ids,
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("kafka-proxy-{addr}"))
            .spawn(move || accept_loop(listener, sh))?;
        Ok(KafkaProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker address it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Puts `rule` in force on this proxy (from the next response on).
    pub fn add_rule(&self, rule: Rule) -> RuleHandle {
        self.shared.rules.add(rule)
    }

    /// Takes every rule added with [`Self::add_rule`] out of force.
    pub fn clear_rules(&self) {
        self.shared.rules.clear();
    }

    /// Closes every open proxied connection (both sides); new connections still work.
    pub fn reset_all(&self) {
        let conns = std::mem::take(&mut *sync::lock(&self.shared.conns));
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.stats.accepted.load(Ordering::SeqCst)
    }

    /// Request frames read from clients so far.
    pub fn requests(&self) -> u64 {
        self.shared.stats.requests.load(Ordering::SeqCst)
    }

    /// Response frames read from the broker so far.
    pub fn responses(&self) -> u64 {
        self.shared.stats.responses.load(Ordering::SeqCst)
    }

    /// Responses a rule rewrote.
    pub fn rewritten(&self) -> u64 {
        self.shared.stats.rewritten.load(Ordering::SeqCst)
    }

    /// Responses that a rule needed decoded but that did not decode (or could not be
    /// matched to a request); they were forwarded untouched and the rule did not fire.
    /// [`Self::last_error`] says why.
    pub fn undecodable(&self) -> u64 {
        self.shared.stats.undecodable.load(Ordering::SeqCst)
    }

    /// The last decoding problem (see [`Self::undecodable`]).
    pub fn last_error(&self) -> Option<String> {
        sync::lock(&self.shared.stats.last_error).clone()
    }
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset_all();
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.stats.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5))
        else {
            continue; // the broker is down: the client sees its connection closed
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
            continue;
        };
        {
            let mut conns = sync::lock(&shared.conns);
            // Forget connections that have closed since (a shut-down socket has no peer).
            conns.retain(|s| s.peer_addr().is_ok());
            conns.extend([c3, s3]);
        }
        let conn = Arc::new(Conn {
            in_flight: Mutex::new(VecDeque::new()),
            hung: AtomicBool::new(false),
        });
        let (sh1, sh2, conn2) = (shared.clone(), shared.clone(), conn.clone());
        std::thread::spawn(move || requests(client, s2, &sh1, &conn));
        std::thread::spawn(move || responses(server, c2, &sh2, &conn2));
    }
}

/// What the response thread needs to know about a request in flight.
#[derive(Clone, Debug)]
struct InFlight {
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<String>,
}

/// One proxied connection's state, shared by its two threads.
struct Conn {
    in_flight: Mutex<VecDeque<InFlight>>,
    /// Set by a drop-and-hang: nothing is forwarded any more.
    hung: AtomicBool,
}

/// Client → broker: read each request frame, note it as in flight, forward it as it is.
fn requests(mut client: TcpStream, mut server: TcpStream, shared: &Shared, conn: &Conn) {
    while !shared.stop.load(Ordering::SeqCst) {
        let frame = match read_frame(&mut client) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        shared.stats.requests.fetch_add(1, Ordering::SeqCst);
        if conn.hung.load(Ordering::SeqCst) {
            continue;
        }
        if let Some((info, expects_response)) = parse_request(&frame) {
            if expects_response {
                sync::lock(&conn.in_flight).push_back(info);
            }
        }
        if write_frame(&mut server, &frame).is_err() {
            break;
        }
    }
    // The client went (or the proxy stops): close both sides, hung or not.
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

/// Broker → client: read each response, match it to its request, apply the rules.
fn responses(mut server: TcpStream, mut client: TcpStream, shared: &Shared, conn: &Conn) {
    while !shared.stop.load(Ordering::SeqCst) {
        let payload = match read_frame(&mut server) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        shared.stats.responses.fetch_add(1, Ordering::SeqCst);
        if conn.hung.load(Ordering::SeqCst) {
            continue;
        }
        let request = match_request(&payload, conn);
        let Some(request) = request else {
            shared.note_error(format!(
                "a response (correlation id {:?}) matches no request in flight",
                crate::protocol::response_correlation_id(&payload)
            ));
            if write_frame(&mut client, &payload).is_err() {
                break;
            }
            continue;
        };
        match apply_rules(shared, &request, payload) {
            Verdict::Forward(bytes, delay) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if write_frame(&mut client, &bytes).is_err() {
                    break;
                }
            }
            Verdict::Close => break,
            Verdict::Hang => conn.hung.store(true, Ordering::SeqCst),
        }
    }
    // A hung connection stays open for the client until it closes it (the request
    // thread then closes both sides) or the proxy stops.
    if conn.hung.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
        let _ = server.shutdown(Shutdown::Both);
        return;
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn write_frame(to: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = i32::try_from(payload.len()).map_err(|_| io::ErrorKind::InvalidData)?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    to.write_all(&frame)
}

/// The request in flight that `payload` answers: the oldest one, checked by correlation
/// id (older entries without a response are dropped on the way).
fn match_request(payload: &[u8], conn: &Conn) -> Option<InFlight> {
    let correlation = crate::protocol::response_correlation_id(payload)?;
    let mut q = sync::lock(&conn.in_flight);
    let at = q.iter().position(|r| r.correlation_id == correlation)?;
    q.drain(..at);
    q.pop_front()
}

/// Reads the request header (and a Produce request's acks); whether a response comes.
fn parse_request(frame: &[u8]) -> Option<(InFlight, bool)> {
    let mut r = Reader(frame);
    let api_key = r.i16()?;
    let version = r.i16()?;
    let correlation_id = r.i32()?;
    let client_id = match r.i16()? {
        -1 => None,
        n => Some(String::from_utf8_lossy(r.take(usize::try_from(n).ok()?)?).into_owned()),
    };
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    let mut expects_response = true;
    if api_key == ApiKey::Produce as i16 {
        if header_version >= 2 {
            r.skip_tagged_fields()?;
        }
        if version >= 3 {
            if version >= 9 {
                // compact nullable string: unsigned varint length + 1 (0: null)
                let n = r.uvarint()?;
                r.take(usize::try_from(n.saturating_sub(1)).ok()?)?;
            } else {
                let n = r.i16()?;
                if n > 0 {
                    r.take(n as usize)?;
                }
            }
        }
        expects_response = r.i16()? != 0;
    }
    Some((
        InFlight {
            api_key,
            version,
            correlation_id,
            client_id,
        },
        expects_response,
    ))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn skip_tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(usize::try_from(size).ok()?)?;
        }
        Some(())
    }
}

enum Verdict {
    /// Forward these bytes after this delay.
    Forward(Bytes, Duration),
    Close,
    Hang,
}

/// Declares [`ResponseKind`]: the responses the proxy can decode, change and encode.
/// (kafka-protocol has such an enum behind its `messages_enums` feature, which would
/// compile all 80-odd APIs' dispatch into every crate of the workspace.)
macro_rules! response_kinds {
    ($($api:ident => $ty:ident),* $(,)?) => {
        /// A decoded response body of one of the APIs rules can rewrite.
        enum ResponseKind {
            $($api(kafka_protocol::messages::$ty),)*
        }

        impl ResponseKind {
            fn decode(api: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Self> {
                match api {
                    $(ApiKey::$api => Ok(ResponseKind::$api(
                        kafka_protocol::messages::$ty::decode(buf, version)?,
                    )),)*
                    other => anyhow::bail!("the proxy does not decode {other:?} responses"),
                }
            }

            fn encode(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
                match self {
                    $(ResponseKind::$api(r) => r.encode(buf, version),)*
                }
            }
        }
    };
}

response_kinds! {
    Produce => ProduceResponse,
    Fetch => FetchResponse,
    ListOffsets => ListOffsetsResponse,
    OffsetCommit => OffsetCommitResponse,
    OffsetFetch => OffsetFetchResponse,
    TxnOffsetCommit => TxnOffsetCommitResponse,
    AddPartitionsToTxn => AddPartitionsToTxnResponse,
    FindCoordinator => FindCoordinatorResponse,
    JoinGroup => JoinGroupResponse,
    SyncGroup => SyncGroupResponse,
    Heartbeat => HeartbeatResponse,
    LeaveGroup => LeaveGroupResponse,
    InitProducerId => InitProducerIdResponse,
    AddOffsetsToTxn => AddOffsetsToTxnResponse,
    EndTxn => EndTxnResponse,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
    Metadata => MetadataResponse,
    ApiVersions => ApiVersionsResponse,
}

/// A decoded response: header, body, and the version both were decoded at.
struct Decoded {
    header: ResponseHeader,
    header_version: i16,
    body: ResponseKind,
    version: i16,
}

fn decode(api: ApiKey, version: i16, payload: &Bytes) -> Result<Decoded, String> {
    let mut buf = payload.clone();
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::decode(&mut buf, header_version)
        .map_err(|e| format!("{api:?} v{version} response header: {e:#}"))?;
    let body = ResponseKind::decode(api, &mut buf, version)
        .map_err(|e| format!("{api:?} v{version} response: {e:#}"))?;
    if !buf.is_empty() {
        return Err(format!(
            "{api:?} v{version} response: {} bytes left after decoding",
            buf.len()
        ));
    }
    Ok(Decoded {
        header,
        header_version,
        body,
        version,
    })
}

fn encode(d: &Decoded) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    d.header
        .encode(&mut buf, d.header_version)
        .map_err(|e| format!("encoding a response header: {e:#}"))?;
    d.body
        .encode(&mut buf, d.version)
        .map_err(|e| format!("encoding a v{} response: {e:#}", d.version))?;
    Ok(buf.freeze())
}

/// Evaluate every rule in force on one response and do what the firing ones say.
fn apply_rules(shared: &Shared, request: &InFlight, payload: Bytes) -> Verdict {
    let api = ApiKey::try_from(request.api_key).ok();
    // Learn topic ids from every Metadata response that carries them.
    if api == Some(ApiKey::Metadata) && request.version >= 10 {
        if let Ok(Decoded {
            body: ResponseKind::Metadata(m),
            ..
        }) = decode(ApiKey::Metadata, request.version, &payload)
        {
            shared.topic_ids.learn(&m);
        }
    }
    let Some(api) = api else {
        return Verdict::Forward(payload, Duration::ZERO);
    };
    let mut candidates: Vec<Arc<RuleState>> = shared.rules.snapshot();
    if let Some(cluster) = &shared.cluster_rules {
        candidates.extend(cluster.snapshot());
    }
    candidates.retain(|r| {
        r.rule.api == api
            && !r.removed.load(Ordering::SeqCst)
            && r.rule
                .client_id
                .as_ref()
                .is_none_or(|c| request.client_id.as_ref() == Some(c))
    });
    if candidates.is_empty() {
        return Verdict::Forward(payload, Duration::ZERO);
    }
    let mut decoded = None;
    if candidates.iter().any(|r| r.rule.needs_decoding()) {
        match decode(api, request.version, &payload) {
            Ok(d) => decoded = Some(d),
            Err(e) => {
                shared.note_error(e);
                // Rules that need the body cannot match; the others still may.
                candidates.retain(|r| !r.rule.needs_decoding());
            }
        }
    }
    let names = |name: &TopicName, id: &[u8; 16]| -> Option<String> {
        if !name.0.is_empty() {
            return Some(name.0.to_string());
        }
        if id == &[0; 16] {
            return None;
        }
        shared.topic_ids.get(id).or_else(|| {
            refresh_topic_ids(shared);
            shared.topic_ids.get(id)
        })
    };
    let mut delay = Duration::ZERO;
    let mut drop_verdict = None;
    let mut rewriters = Vec::new();
    for rule in candidates {
        if let (Some(topic), Some(d)) = (&rule.rule.topic, decoded.as_mut()) {
            let mut found = false;
            for_each_partition(&mut d.body, &names, &mut |t, p, _| {
                found |= t == topic && rule.rule.partition.is_none_or(|want| want == p);
                false
            });
            if !found {
                continue;
            }
        }
        if !rule.fire() {
            continue;
        }
        match &rule.rule.action {
            Action::Observe => {}
            Action::Delay(d) => delay += *d,
            Action::DropAndClose => drop_verdict = Some(Verdict::Close),
            Action::DropAndHang => {
                if drop_verdict.is_none() {
                    drop_verdict = Some(Verdict::Hang);
                }
            }
            Action::SetError(_) | Action::SetTopLevelError(_) => rewriters.push(rule),
        }
    }
    if let Some(v) = drop_verdict {
        return v;
    }
    if rewriters.is_empty() {
        return Verdict::Forward(payload, delay);
    }
    let Some(mut d) = decoded else {
        return Verdict::Forward(payload, delay);
    };
    for rule in &rewriters {
        let filter = |t: &str, p: i32| {
            rule.rule.topic.as_ref().is_none_or(|want| want == t)
                && rule.rule.partition.is_none_or(|want| want == p)
        };
        match rule.rule.action {
            Action::SetError(code) if PARTITION_APIS.contains(&api) => {
                for_each_partition(&mut d.body, &names, &mut |t, p, error_code| {
                    if filter(t, p) {
                        *error_code = code;
                        true
                    } else {
                        false
                    }
                });
            }
            Action::SetError(code) | Action::SetTopLevelError(code) => {
                set_top_level_error(&mut d.body, d.version, code);
            }
            _ => {}
        }
    }
    match encode(&d) {
        Ok(forwarded) => {
            shared.stats.rewritten.fetch_add(1, Ordering::SeqCst);
            for rule in &rewriters {
                rule.counts().last_rewrite = Some(Rewrite {
                    original: payload.clone(),
                    forwarded: forwarded.clone(),
                });
            }
            Verdict::Forward(forwarded, delay)
        }
        Err(e) => {
            shared.note_error(e);
            Verdict::Forward(payload, delay)
        }
    }
}

/// Asks the broker for every topic's id (a topic filter met an id the proxies have not
/// seen in a Metadata response).
fn refresh_topic_ids(shared: &Shared) {
    {
        let mut asked = sync::lock(&shared.topic_ids.asked);
        if asked.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *asked = Some(Instant::now());
    }
    let addr = shared.upstream.to_string();
    let Ok(mut conn) = KafkaConnection::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    if let Ok(m) = crate::admin::metadata_on(&mut conn, None) {
        shared.topic_ids.learn(&m);
    }
}

/// Calls `f(topic, partition, &mut error_code)` for every partition a response lists;
/// `f` returns whether it set an error (then a Fetch partition's records are emptied).
/// Topics named only by id are resolved with `names`; unresolvable ones are skipped.
fn for_each_partition(
    body: &mut ResponseKind,
    names: &dyn Fn(&TopicName, &[u8; 16]) -> Option<String>,
    f: &mut dyn FnMut(&str, i32, &mut i16) -> bool,
) {
    const NO_ID: [u8; 16] = [0; 16];
    match body {
        ResponseKind::Produce(r) => {
            for t in &mut r.responses {
                let Some(name) = names(&t.name, t.topic_id.as_bytes()) else {
                    continue;
                };
                for p in &mut t.partition_responses {
                    f(&name, p.index, &mut p.error_code);
                }
            }
        }
        ResponseKind::Fetch(r) => {
            for t in &mut r.responses {
                let Some(name) = names(&t.topic, t.topic_id.as_bytes()) else {
                    continue;
                };
                for p in &mut t.partitions {
                    if f(&name, p.partition_index, &mut p.error_code) {
                        p.records = Some(Bytes::new());
                    }
                }
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &mut r.topics {
                let Some(name) = names(&t.name, &NO_ID) else {
                    continue;
                };
                for p in &mut t.partitions {
                    f(&name, p.partition_index, &mut p.error_code);
                }
            }
        }
        ResponseKind::OffsetCommit(r) => {
            for t in &mut r.topics {
                let Some(name) = names(&t.name, t.topic_id.as_bytes()) else {
                    continue;
                };
                for p in &mut t.partitions {
                    f(&name, p.partition_index, &mut p.error_code);
                }
            }
        }
        ResponseKind::OffsetFetch(r) => {
            for t in &mut r.topics {
                let Some(name) = names(&t.name, &NO_ID) else {
                    continue;
                };
                for p in &mut t.partitions {
                    f(&name, p.partition_index, &mut p.error_code);
                }
            }
            for g in &mut r.groups {
                for t in &mut g.topics {
                    let Some(name) = names(&t.name, t.topic_id.as_bytes()) else {
                        continue;
                    };
                    for p in &mut t.partitions {
                        f(&name, p.partition_index, &mut p.error_code);
                    }
                }
            }
        }
        ResponseKind::TxnOffsetCommit(r) => {
            for t in &mut r.topics {
                let Some(name) = names(&t.name, &NO_ID) else {
                    continue;
                };
                for p in &mut t.partitions {
                    f(&name, p.partition_index, &mut p.error_code);
                }
            }
        }
        ResponseKind::AddPartitionsToTxn(r) => {
            let topics = r.results_by_topic_v3_and_below.iter_mut().chain(
                r.results_by_transaction
                    .iter_mut()
                    .flat_map(|x| x.topic_results.iter_mut()),
            );
            for t in topics {
                let Some(name) = names(&t.name, &NO_ID) else {
                    continue;
                };
                for p in &mut t.results_by_partition {
                    f(&name, p.partition_index, &mut p.partition_error_code);
                }
            }
        }
        _ => {}
    }
}

/// Sets the top-level error code (and what a broker sends with it) of a response.
fn set_top_level_error(body: &mut ResponseKind, version: i16, code: i16) {
    match body {
        ResponseKind::Fetch(r) => {
            r.error_code = code;
            r.session_id = 0;
            r.responses.clear();
        }
        ResponseKind::OffsetFetch(r) => {
            if version >= 8 {
                for g in &mut r.groups {
                    g.error_code = code;
                }
            } else {
                r.error_code = code;
            }
        }
        ResponseKind::AddPartitionsToTxn(r) => r.error_code = code,
        ResponseKind::FindCoordinator(r) => {
            if version >= 4 {
                for c in &mut r.coordinators {
                    c.error_code = code;
                }
            } else {
                r.error_code = code;
            }
        }
        ResponseKind::JoinGroup(r) => r.error_code = code,
        ResponseKind::SyncGroup(r) => r.error_code = code,
        ResponseKind::Heartbeat(r) => r.error_code = code,
        ResponseKind::LeaveGroup(r) => r.error_code = code,
        ResponseKind::InitProducerId(r) => r.error_code = code,
        ResponseKind::AddOffsetsToTxn(r) => r.error_code = code,
        ResponseKind::EndTxn(r) => r.error_code = code,
        ResponseKind::ConsumerGroupHeartbeat(r) => r.error_code = code,
        ResponseKind::Metadata(r) => r.error_code = code,
        ResponseKind::ApiVersions(r) => r.error_code = code,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    use kafka_protocol::protocol::StrBytes;

    fn produce_response(version: i16) -> Bytes {
        let response =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_responses(
                    (0..3)
                        .map(|i| {
                            PartitionProduceResponse::default()
                                .with_index(i)
                                .with_base_offset(100 + i64::from(i))
                        })
                        .collect(),
                )]);
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(42)
            .encode(&mut buf, ApiKey::Produce.response_header_version(version))
            .unwrap();
        response.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn shared() -> Shared {
        Shared {
            upstream: "127.0.0.1:9".parse().unwrap(),
            rules: Arc::default(),
            cluster_rules: None,
            topic_ids: Arc::default(),
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        }
    }

    fn produce(version: i16) -> InFlight {
        InFlight {
            api_key: 0,
            version,
            correlation_id: 42,
            client_id: Some("c".into()),
        }
    }

    #[test]
    fn parses_request_headers_and_produce_acks() {
        for version in [3, 8, 9, 12] {
            for acks in [0, 1, -1] {
                let request = ProduceRequest::default()
                    .with_acks(acks)
                    .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
                        StrBytes::from_static_str("tx"),
                    )));
                let frame =
                    crate::protocol::encode_request(7, "client-x", version, &request).unwrap();
                let (info, expects) = parse_request(&frame[4..]).unwrap();
                assert_eq!(
                    (info.api_key, info.version, info.correlation_id),
                    (0, version, 7)
                );
                assert_eq!(info.client_id.as_deref(), Some("client-x"));
                assert_eq!(expects, acks != 0, "v{version} acks={acks}");
            }
        }
    }

    #[test]
    fn set_error_rewrites_only_the_matching_partition() {
        for version in [3, 8, 9, 12, 13] {
            let sh = shared();
            let rule = sh.rules.add(
                Rule::new(ApiKey::Produce)
                    .partition("orders", 1)
                    .set_error(codes::NOT_LEADER_OR_FOLLOWER),
            );
            let payload = produce_response(version);
            let Verdict::Forward(out, delay) = apply_rules(&sh, &produce(version), payload.clone())
            else {
                panic!("forwarded");
            };
            assert_eq!(delay, Duration::ZERO);
            let d = decode(ApiKey::Produce, version, &out).unwrap();
            let ResponseKind::Produce(r) = d.body else {
                panic!()
            };
            let codes: Vec<i16> = r.responses[0]
                .partition_responses
                .iter()
                .map(|p| p.error_code)
                .collect();
            // v13 names topics by id only: the name is not on the wire, and the rule finds
            // no id -> name mapping (there is no broker here), so it does not fire.
            if version >= 13 {
                assert_eq!(codes, [0, 0, 0]);
                assert_eq!(rule.hits(), 0);
                continue;
            }
            assert_eq!(codes, [0, 6, 0], "v{version}");
            assert_eq!(rule.hits(), 1);
            let rewrite = rule.last_rewrite().unwrap();
            assert_eq!(rewrite.original, payload);
            // Only the low byte of one error code changed: the re-encoding is byte-exact.
            assert_eq!(rewrite.differing_offsets().len(), 1, "v{version}");
        }
    }

    #[test]
    fn nth_skip_and_times_count_matches() {
        let sh = shared();
        let third = sh.rules.add(
            Rule::new(ApiKey::Produce)
                .topic("orders")
                .nth(3)
                .delay(Duration::from_millis(5)),
        );
        let other = sh
            .rules
            .add(Rule::new(ApiKey::Produce).topic("other").set_error(1));
        let twice = sh.rules.add(Rule::new(ApiKey::Produce).skip(1).times(2));
        let mut delays = Vec::new();
        for _ in 0..5 {
            let Verdict::Forward(out, delay) = apply_rules(&sh, &produce(9), produce_response(9))
            else {
                panic!()
            };
            assert_eq!(out, produce_response(9), "no rule rewrites");
            delays.push(delay.as_millis());
        }
        assert_eq!(delays, [0, 0, 5, 0, 0]);
        assert_eq!((third.matched(), third.hits()), (5, 1));
        assert_eq!((other.matched(), other.hits()), (0, 0));
        assert_eq!((twice.matched(), twice.hits()), (5, 2));
        assert!(twice.exhausted());
        third.remove();
        let _ = apply_rules(&sh, &produce(9), produce_response(9));
        assert_eq!(third.matched(), 5, "a removed rule no longer counts");
    }

    #[test]
    fn drops_win_and_other_apis_pass() {
        let sh = shared();
        sh.rules
            .add(Rule::new(ApiKey::Produce).delay(Duration::from_millis(1)));
        sh.rules.add(Rule::new(ApiKey::Produce).drop_and_hang());
        sh.rules.add(Rule::new(ApiKey::Produce).drop_and_close());
        assert!(matches!(
            apply_rules(&sh, &produce(9), produce_response(9)),
            Verdict::Close
        ));
        let fetch = InFlight {
            api_key: ApiKey::Fetch as i16,
            ..produce(9)
        };
        let garbage = Bytes::from_static(&[0, 0, 0, 42, 1, 2, 3]);
        let Verdict::Forward(out, _) = apply_rules(&sh, &fetch, garbage.clone()) else {
            panic!()
        };
        assert_eq!(out, garbage, "no Fetch rule: not even decoded");
    }

    #[test]
    #[should_panic(expected = "list no partitions")]
    fn topic_filters_need_a_partition_api() {
        let _ = Rule::new(ApiKey::Heartbeat).topic("t");
    }

    #[test]
    fn fetch_session_errors_go_to_the_top_level() {
        assert_eq!(
            Rule::new(ApiKey::Fetch)
                .set_error(codes::FETCH_SESSION_ID_NOT_FOUND)
                .action(),
            &Action::SetTopLevelError(70)
        );
        assert_eq!(
            Rule::new(ApiKey::Fetch)
                .set_error(codes::OFFSET_OUT_OF_RANGE)
                .action(),
            &Action::SetError(1)
        );
    }
}
