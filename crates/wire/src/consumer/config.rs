//! [`ConsumerConfig`]: typed settings with builder methods, also readable from Java-style
//! keys (`group.id`, `auto.offset.reset`, ...) so a Java consumer's properties port over.

use std::time::Duration;

use crate::cluster::ClusterConfig;
use crate::config::{boolean, invalid, ms, number};
use crate::error::{Error, Result};
use crate::types::IsolationLevel;

/// Where to start when a partition has no committed offset, or its position is out of
/// range (Java: `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records written from now on. The Java default.
    #[default]
    Latest,
    /// No reset: [`Consumer::recv`](super::Consumer::recv) fails with an error naming the
    /// partition.
    None,
}

/// A partition assignment strategy (Java: `partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentStrategy {
    /// `range`: per topic, contiguous ranges of partitions to members sorted by id.
    Range,
    /// `roundrobin`: all partitions dealt to members in turn.
    RoundRobin,
    /// `cooperative-sticky` (KIP-429): balanced, keeps partitions where they are, and
    /// revokes only the partitions that move.
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name in JoinGroup, the same as Java's.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Parses a protocol name or a Java class name (`...RangeAssignor`).
    pub fn parse(s: &str) -> Option<Self> {
        let short = s.rsplit('.').next().unwrap_or(s).trim();
        match short {
            "range" | "RangeAssignor" => Some(AssignmentStrategy::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(AssignmentStrategy::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => {
                Some(AssignmentStrategy::CooperativeSticky)
            }
            _ => None,
        }
    }
}

/// Settings of a [`Consumer`](super::Consumer). Every field's doc gives its Java key and
/// default.
///
/// Non-exhaustive, so a new setting is not a breaking change: build one with
/// [`new`](Self::new), then the setters, [`set`](Self::set) or field assignment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// How to reach the cluster (`bootstrap.servers`, `client.id`, `request.timeout.ms`).
    pub cluster: ClusterConfig,
    /// `group.id`: needed by [`subscribe`](super::Consumer::subscribe) and by commits.
    /// Default none.
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345). Default none (dynamic member).
    pub group_instance_id: Option<String>,
    /// `enable.auto.commit`. Default **false** here (Java: true): offsets are committed
    /// when the application says it has processed them. When on, as in Java: a `recv` /
    /// `recv_batch` (or `keep_alive`) called once `auto.commit.interval.ms` has passed
    /// commits, in the background, the positions of what the calls before it handed out
    /// (a record the application still holds is never committed); positions are also
    /// committed before partitions are revoked and on `close`.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`. Default 5 s.
    pub auto_commit_interval: Duration,
    /// `auto.offset.reset`. Default latest.
    pub auto_offset_reset: OffsetReset,
    /// `isolation.level`. Default read_uncommitted.
    pub isolation_level: IsolationLevel,
    /// `session.timeout.ms`: the coordinator drops a member it has not heard from for
    /// this long. Default 45 s.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`. Default 3 s.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: a member that does not call `recv` for this long leaves the
    /// group (and rejoins on its next `recv`). Also the rebalance timeout. Default 300 s.
    pub max_poll_interval: Duration,
    /// `fetch.min.bytes`. Default 1.
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms`. Default 500 ms.
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes`. Default 1 MiB.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.bytes`: per fetch request. Default 50 MiB.
    pub fetch_max_bytes: i32,
    /// `partition.assignment.strategy`, in order of preference. Default
    /// `[range, cooperative-sticky]` as in Java 3.x/4.x.
    pub assignment_strategies: Vec<AssignmentStrategy>,
    /// `retry.backoff.ms`. Default 100 ms.
    pub retry_backoff: Duration,
    /// Bytes of fetched, not yet returned records to hold at most (Sluice only:
    /// `sluice.prefetch.max.bytes`). Default 64 MiB. The broker's answer for one
    /// partition is always taken whole.
    pub prefetch_max_bytes: usize,
    /// `enable.partition.eof` (librdkafka's key; Java has no such event and reads
    /// `endOffsets` instead): [`Consumer::recv_event`](super::Consumer::recv_event)
    /// hands out a [`ConsumerEvent::PartitionEof`](super::ConsumerEvent::PartitionEof)
    /// each time a partition's position reaches its end (the high watermark; the last
    /// stable offset under `read_committed`): once on reaching it, again after more
    /// records arrived and were handed out. Default false.
    pub enable_partition_eof: bool,
}

impl ConsumerConfig {
    /// Defaults for the cluster at `bootstrap` (`"host1:9092,host2:9092"`).
    pub fn new(bootstrap: impl Into<String>) -> Self {
        ConsumerConfig {
            cluster: ClusterConfig::new(bootstrap),
            group_id: None,
            group_instance_id: None,
            enable_auto_commit: false,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: OffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_bytes: 50 * 1024 * 1024,
            assignment_strategies: vec![
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky,
            ],
            retry_backoff: Duration::from_millis(100),
            prefetch_max_bytes: 64 * 1024 * 1024,
            enable_partition_eof: false,
        }
    }

    /// Reads Java-style keys. `bootstrap.servers` is required. An unknown key or a value
    /// that does not parse is an [`ErrorKind::Config`](crate::ErrorKind::Config) error
    /// naming the key.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let props: Vec<(String, String)> = props
            .into_iter()
            .map(|(k, v)| (k.as_ref().trim().to_string(), v.as_ref().trim().to_string()))
            .collect();
        let bootstrap = props
            .iter()
            .find(|(k, _)| k == "bootstrap.servers")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::config("bootstrap.servers is required"))?;
        let mut c = ConsumerConfig::new(&bootstrap);
        for (key, value) in &props {
            c.set(key, value)?;
        }
        Ok(c)
    }

    /// Sets one Java-style key: a consumer key or any key of [`ClusterConfig::set`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the key, for an unknown key
    /// or a value that does not parse.
    ///
    /// ```
    /// use sluice_wire::consumer::ConsumerConfig;
    /// let mut config = ConsumerConfig::new("127.0.0.1:9092");
    /// config
    ///     .set("group.id", "billing")?
    ///     .set("auto.offset.reset", "earliest")?
    ///     .set("client.id", "billing-1")?;
    /// assert_eq!(config.group_id.as_deref(), Some("billing"));
    /// assert!(config.set("linger.ms", "5").is_err());
    /// # Ok::<(), sluice_wire::Error>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        match key {
            "bootstrap.servers" => {
                let client = self.cluster.connection.clone();
                self.cluster = ClusterConfig::new(value);
                self.cluster.connection = client;
            }
            "client.id" => self.cluster.connection.client_id = value.to_string(),
            "request.timeout.ms" => self.cluster.connection.request_timeout = ms(key, value)?,
            "group.id" => self.group_id = non_empty(value),
            "group.instance.id" => self.group_instance_id = non_empty(value),
            "enable.auto.commit" => self.enable_auto_commit = boolean(key, value)?,
            "enable.partition.eof" => self.enable_partition_eof = boolean(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms(key, value)?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(invalid(key, value, "earliest, latest or none")),
                }
            }
            "isolation.level" => {
                self.isolation_level = match value {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => return Err(invalid(key, value, "read_uncommitted or read_committed")),
                }
            }
            "session.timeout.ms" => self.session_timeout = ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = ms(key, value)?,
            "fetch.min.bytes" => self.fetch_min_bytes = int(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = int(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = ms(key, value)?,
            "sluice.prefetch.max.bytes" => {
                self.prefetch_max_bytes = value
                    .parse()
                    .map_err(|_| invalid(key, value, "a byte count"))?
            }
            "partition.assignment.strategy" => {
                let parsed: Option<Vec<_>> = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(AssignmentStrategy::parse)
                    .collect();
                match parsed {
                    Some(v) if !v.is_empty() => self.assignment_strategies = v,
                    _ => {
                        return Err(invalid(
                            key,
                            value,
                            "a list of range, roundrobin, cooperative-sticky",
                        ))
                    }
                }
            }
            // Java 4.x's switch between the classic protocol and KIP-848's; Sluice
            // speaks the classic one.
            "group.protocol" => {
                if !value.eq_ignore_ascii_case("classic") {
                    return Err(invalid(
                        key,
                        value,
                        "classic (the only group protocol Sluice speaks)",
                    ));
                }
            }
            // Accepted for compatibility; Sluice hands out bytes and has no
            // deserializers.
            "key.deserializer" | "value.deserializer" => {}
            _ => {
                if !self.cluster.try_set(key, value)? {
                    return Err(Error::config(format!(
                        "unknown consumer config key {key:?}"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Sets `group.id`.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// Sets `group.instance.id` (static membership).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = on;
        self
    }

    /// Sets `enable.partition.eof`: end-of-partition events from
    /// [`recv_event`](super::Consumer::recv_event).
    pub fn enable_partition_eof(mut self, on: bool) -> Self {
        self.enable_partition_eof = on;
        self
    }

    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// Sets `session.timeout.ms`.
    pub fn session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, t: Duration) -> Self {
        self.heartbeat_interval = t;
        self
    }

    /// Sets `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, t: Duration) -> Self {
        self.max_poll_interval = t;
        self
    }

    /// Sets `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, t: Duration) -> Self {
        self.fetch_max_wait = t;
        self
    }

    /// Sets `partition.assignment.strategy`.
    pub fn assignment_strategies(mut self, s: Vec<AssignmentStrategy>) -> Self {
        self.assignment_strategies = s;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.assignment_strategies.is_empty() {
            return Err(Error::config("partition.assignment.strategy is empty"));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::config(
                "heartbeat.interval.ms must be lower than session.timeout.ms",
            ));
        }
        if self.cluster.connection.request_timeout <= self.fetch_max_wait {
            return Err(Error::config(
                "request.timeout.ms must be greater than fetch.max.wait.ms",
            ));
        }
        Ok(())
    }
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn int(key: &str, value: &str) -> Result<i32> {
    number::<u32>(key, value).and_then(|v| {
        i32::try_from(v).map_err(|_| invalid(key, value, "a non-negative 32-bit integer"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn java_keys_parse() {
        let c = ConsumerConfig::from_properties([
            ("bootstrap.servers", "a:1,b:2"),
            ("group.id", "g"),
            ("enable.auto.commit", "true"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "6000"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor,range",
            ),
        ])
        .unwrap();
        assert_eq!(c.cluster.bootstrap, ["a:1", "b:2"]);
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert!(c.enable_partition_eof);
        assert!(c.enable_auto_commit);
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(
            c.assignment_strategies,
            [
                AssignmentStrategy::CooperativeSticky,
                AssignmentStrategy::Range
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = ConsumerConfig::from_properties([("bootstrap.servers", "a:1"), ("foo.bar", "1")])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("foo.bar"), "{e}");
        let e = ConsumerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("auto.offset.reset", "sometimes"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("auto.offset.reset"), "{e}");
        let e = ConsumerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("group.protocol", "consumer"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("group.protocol"), "{e}");
        let e = ConsumerConfig::from_properties([("group.id", "g")]).unwrap_err();
        assert!(e.to_string().contains("bootstrap.servers"), "{e}");
    }

    #[test]
    fn auto_commit_is_off_by_default() {
        assert!(!ConsumerConfig::new("a:1").enable_auto_commit);
    }
}
