//! [`ProducerConfig`]: typed settings with builders, also read from Java-style
//! `key = value` properties so existing Kafka configs port over.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_partition::{Murmur2Partitioner, Partitioner, RoundRobinPartitioner};

use crate::config::{boolean, invalid, ms, number};
use crate::error::{Error, Result};
use crate::net::SecurityConfig;
use crate::records::Compression;
use crate::types::Acks;

/// Makes the partitioner of a producer (each producer owns one).
pub type PartitionerFactory = Arc<dyn Fn() -> Box<dyn Partitioner> + Send + Sync>;

/// How records without an explicit partition are placed.
#[derive(Clone, Default)]
pub enum PartitionerChoice {
    /// murmur2 of the key, as the Java client; uniform sticky for keyless records
    /// (KIP-794). Java's default (no `partitioner.class`).
    #[default]
    Default,
    /// Round robin over all partitions, keys ignored (Java: `RoundRobinPartitioner`).
    RoundRobin,
    /// Any [`Partitioner`], made by this factory.
    Custom(PartitionerFactory),
}

impl fmt::Debug for PartitionerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionerChoice::Default => f.write_str("Default"),
            PartitionerChoice::RoundRobin => f.write_str("RoundRobin"),
            PartitionerChoice::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PartitionerChoice {
    pub(crate) fn build(&self) -> Box<dyn Partitioner> {
        match self {
            PartitionerChoice::Default => Box::new(Murmur2Partitioner::new()),
            PartitionerChoice::RoundRobin => Box::new(RoundRobinPartitioner::new()),
            PartitionerChoice::Custom(make) => make(),
        }
    }
}

/// Settings of a [`Producer`](super::Producer). Defaults are those of the Java client
/// 4.x; each field names its Java key.
///
/// Non-exhaustive, so a new setting is not a breaking change: build one with
/// [`new`](Self::new) or [`Default`], then the setters, [`set`](Self::set) or field
/// assignment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// `bootstrap.servers`: `host:port[,host:port...]`. Only used by
    /// [`Producer::new`](super::Producer::new). Default empty.
    pub bootstrap_servers: String,
    /// `client.id`. Default `"sluice-producer"`.
    pub client_id: String,
    /// `acks`: `0`, `1` or `all` (`-1`). Default `all`.
    pub acks: Acks,
    /// `enable.idempotence`. Default `None`, which means on unless `acks` is not `all`
    /// (as in Java, where an explicit `true` with other acks is a config error).
    pub enable_idempotence: Option<bool>,
    /// `linger.ms`: how long a batch waits for more records. Default 5 ms.
    pub linger: Duration,
    /// `batch.size`: bytes per partition batch (before compression). Default 16384.
    pub batch_size: usize,
    /// `compression.type`: `none`, `gzip`, `snappy`, `lz4`, `zstd`. Default `none`.
    pub compression: Compression,
    /// `buffer.memory`: bytes of records buffered, at most. Default 32 MiB.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` waits for buffer space or topic metadata.
    /// Default 60 s.
    pub max_block: Duration,
    /// `request.timeout.ms`: how long to wait for a response. Default 30 s.
    pub request_timeout: Duration,
    /// `delivery.timeout.ms`: from `send` to the outcome, retries included; must be at
    /// least `linger.ms + request.timeout.ms`. Default 120 s.
    pub delivery_timeout: Duration,
    /// `retries`: resends of a batch after retriable errors. Default `i32::MAX` (let
    /// `delivery.timeout.ms` decide).
    pub retries: u32,
    /// `retry.backoff.ms`: first backoff. Default 100 ms.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: backoff cap (KIP-580). Default 1000 ms.
    pub retry_backoff_max: Duration,
    /// `max.in.flight.requests.per.connection`. Default 5; at most 5 with idempotence.
    pub max_in_flight: usize,
    /// `max.request.size`: largest record and Produce request. Default 1 MiB.
    pub max_request_size: usize,
    /// `partitioner.class` (`default`, `round_robin`, or the Java class names of
    /// those), or any [`Partitioner`] through [`ProducerConfig::partitioner`].
    pub partitioner: PartitionerChoice,
    /// `allow.auto.create.topics`: ask brokers to create unknown topics (if they allow
    /// it). Default true.
    pub allow_auto_create_topics: bool,
    /// `metadata.max.age.ms`. Default 5 minutes.
    pub metadata_max_age: Duration,
    /// `transactional.id`: makes the producer transactional (see the
    /// [Transactions](super#transactions) section); implies idempotence. Default none.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay open
    /// before aborting it. Default 60 s.
    pub transaction_timeout: Duration,
    /// `security.protocol`, `ssl.*`, `sasl.*`: TLS and SASL. Default PLAINTEXT.
    pub security: SecurityConfig,
    /// `reconnect.backoff.ms`: the first wait before reconnecting to a broker that could
    /// not be reached; doubles per failure. Default 50 ms.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: the cap of that wait. Default 1 s.
    pub reconnect_backoff_max: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap_servers: String::new(),
            client_id: "sluice-producer".to_string(),
            acks: Acks::All,
            enable_idempotence: None,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1000),
            max_in_flight: 5,
            max_request_size: 1024 * 1024,
            partitioner: PartitionerChoice::Default,
            allow_auto_create_topics: true,
            metadata_max_age: Duration::from_secs(300),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            security: SecurityConfig::default(),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl ProducerConfig {
    /// Defaults, bootstrapping from `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ProducerConfig {
            bootstrap_servers: bootstrap_servers.into(),
            ..ProducerConfig::default()
        }
    }

    setter!(/// Sets `acks`.
        acks: Acks);
    setter!(/// Sets `linger.ms`.
        linger: Duration);
    setter!(/// Sets `batch.size`.
        batch_size: usize);
    setter!(/// Sets `compression.type`.
        compression: Compression);
    setter!(/// Sets `buffer.memory`.
        buffer_memory: usize);
    setter!(/// Sets `max.block.ms`.
        max_block: Duration);
    setter!(/// Sets `request.timeout.ms`.
        request_timeout: Duration);
    setter!(/// Sets `delivery.timeout.ms`.
        delivery_timeout: Duration);
    setter!(/// Sets `retries`.
        retries: u32);
    setter!(/// Sets `retry.backoff.ms`.
        retry_backoff: Duration);
    setter!(/// Sets `retry.backoff.max.ms`.
        retry_backoff_max: Duration);
    setter!(/// Sets `max.in.flight.requests.per.connection`.
        max_in_flight: usize);
    setter!(/// Sets `max.request.size`.
        max_request_size: usize);
    setter!(/// Sets `allow.auto.create.topics`.
        allow_auto_create_topics: bool);
    setter!(/// Sets `transaction.timeout.ms`.
        transaction_timeout: Duration);

    /// Sets `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets how connections are secured (TLS, SASL).
    pub fn security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }

    /// Sets `transactional.id` (which makes the producer transactional).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// Sets `enable.idempotence`.
    pub fn enable_idempotence(mut self, on: bool) -> Self {
        self.enable_idempotence = Some(on);
        self
    }

    /// Uses a custom [`Partitioner`], made once per producer by `make`.
    pub fn partitioner(
        mut self,
        make: impl Fn() -> Box<dyn Partitioner> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = PartitionerChoice::Custom(Arc::new(make));
        self
    }

    /// Reads Java-style properties over the defaults. Unknown keys and bad values are
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) errors naming the key.
    ///
    /// ```
    /// use sluice_wire::producer::ProducerConfig;
    /// let config = ProducerConfig::from_properties([
    ///     ("bootstrap.servers", "127.0.0.1:9092"),
    ///     ("linger.ms", "20"),
    ///     ("compression.type", "zstd"),
    /// ])?;
    /// assert_eq!(config.linger.as_millis(), 20);
    /// assert!(ProducerConfig::from_properties([("lingr.ms", "5")]).is_err());
    /// # Ok::<(), sluice_wire::Error>(())
    /// ```
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = ProducerConfig::default();
        for (k, v) in properties {
            config.set(k.as_ref(), v.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one Java-style property: a producer key or a security key
    /// ([`SecurityConfig::set`](crate::net::SecurityConfig::set)).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the key, for an unknown key
    /// or a value that does not parse.
    ///
    /// ```
    /// use sluice_wire::producer::ProducerConfig;
    /// let mut config = ProducerConfig::new("127.0.0.1:9092");
    /// config.set("linger.ms", "20")?.set("acks", "all")?;
    /// assert_eq!(config.linger.as_millis(), 20);
    /// assert!(config.set("group.id", "billing").is_err());
    /// # Ok::<(), sluice_wire::Error>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let value = value.trim();
        match key {
            "bootstrap.servers" => self.bootstrap_servers = value.to_string(),
            "client.id" => self.client_id = value.to_string(),
            "acks" => {
                self.acks = match value {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => return Err(invalid(key, value, "0, 1, all or -1")),
                }
            }
            "enable.idempotence" => self.enable_idempotence = Some(boolean(key, value)?),
            "linger.ms" => self.linger = ms(key, value)?,
            "batch.size" => self.batch_size = number(key, value)?,
            "compression.type" => {
                self.compression = Compression::from_name(value)
                    .ok_or_else(|| invalid(key, value, "none, gzip, snappy, lz4 or zstd"))?;
            }
            "buffer.memory" => self.buffer_memory = number(key, value)?,
            "max.block.ms" => self.max_block = ms(key, value)?,
            "request.timeout.ms" => self.request_timeout = ms(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = ms(key, value)?,
            "retries" => self.retries = number(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = ms(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = ms(key, value)?,
            "max.in.flight.requests.per.connection" => self.max_in_flight = number(key, value)?,
            "max.request.size" => self.max_request_size = number(key, value)?,
            "allow.auto.create.topics" => {
                self.allow_auto_create_topics = boolean(key, value)?;
            }
            "metadata.max.age.ms" => self.metadata_max_age = ms(key, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms(key, value)?,
            "transactional.id" => {
                self.transactional_id = (!value.is_empty()).then(|| value.to_string());
            }
            "transaction.timeout.ms" => self.transaction_timeout = ms(key, value)?,
            "partitioner" | "partitioner.class" => {
                self.partitioner = match value {
                    "" | "default" | "murmur2" => PartitionerChoice::Default,
                    "round_robin" | "org.apache.kafka.clients.producer.RoundRobinPartitioner" => {
                        PartitionerChoice::RoundRobin
                    }
                    _ => return Err(invalid(key, value, "default, murmur2 or round_robin")),
                }
            }
            _ => {
                if !self.security.try_set(key, value)? {
                    return Err(Error::config(format!(
                        "unknown producer config key {key:?}"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Whether this config produces idempotently (always when transactional).
    pub fn idempotent(&self) -> bool {
        self.transactional_id.is_some() || self.enable_idempotence.unwrap_or(self.acks == Acks::All)
    }

    /// Whether this config is transactional (`transactional.id` is set).
    pub fn transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Checks the combination of values, as the Java client does at construction.
    pub fn validate(&self) -> Result<()> {
        if self.transactional_id.is_some() {
            if self.enable_idempotence == Some(false) {
                return Err(Error::config(
                    "transactional.id requires enable.idempotence (not false)",
                ));
            }
            if self.acks != Acks::All {
                return Err(Error::config("transactional.id requires acks=all"));
            }
            if self.max_in_flight > 5 || self.retries == 0 {
                return Err(Error::config(
                    "transactional.id requires max.in.flight.requests.per.connection <= 5 \
                     and retries > 0",
                ));
            }
        }
        if self.enable_idempotence == Some(true) {
            if self.acks != Acks::All {
                return Err(Error::config("enable.idempotence=true requires acks=all"));
            }
            if self.max_in_flight > 5 {
                return Err(Error::config(
                    "enable.idempotence=true requires max.in.flight.requests.per.connection <= 5",
                ));
            }
            if self.retries == 0 {
                return Err(Error::config(
                    "enable.idempotence=true requires retries > 0",
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err(Error::config(
                "max.in.flight.requests.per.connection must be at least 1",
            ));
        }
        if self.batch_size == 0 || self.buffer_memory == 0 || self.max_request_size == 0 {
            return Err(Error::config(
                "batch.size, buffer.memory and max.request.size must be positive",
            ));
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return Err(Error::config(format!(
                "delivery.timeout.ms ({}) must be at least linger.ms + request.timeout.ms ({})",
                self.delivery_timeout.as_millis(),
                (self.linger + self.request_timeout).as_millis()
            )));
        }
        Ok(())
    }

    /// The pause before retry number `attempt` (from 1) of a produce or a producer
    /// request: `retry.backoff.ms` doubling up to `retry.backoff.max.ms`, ±20 % jitter.
    pub(crate) fn retry_backoff_for(&self, attempt: u32) -> Duration {
        crate::backoff::exponential(self.retry_backoff, self.retry_backoff_max, attempt)
    }

    /// The effective per-connection in-flight bound (5 at most with idempotence,
    /// otherwise as configured).
    pub(crate) fn effective_max_in_flight(&self) -> usize {
        if self.idempotent() {
            self.max_in_flight.clamp(1, 5)
        } else {
            self.max_in_flight.max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_are_kafka_4() {
        let c = ProducerConfig::default();
        assert_eq!(c.acks, Acks::All);
        assert!(c.idempotent());
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        c.validate().unwrap();
    }

    #[test]
    fn java_keys_and_clear_errors() {
        let c = ProducerConfig::from_properties([
            ("acks", "1"),
            ("linger.ms", "10"),
            ("batch.size", "65536"),
            ("compression.type", "lz4"),
            ("max.in.flight.requests.per.connection", "1"),
            ("partitioner.class", "round_robin"),
        ])
        .unwrap();
        assert_eq!(c.acks, Acks::Leader);
        assert!(!c.idempotent(), "idempotence defaults off with acks=1");
        assert_eq!(c.compression, Compression::Lz4);

        let e = ProducerConfig::from_properties([("lingr.ms", "5")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("lingr.ms"), "{e}");
        let e = ProducerConfig::from_properties([("acks", "2")]).unwrap_err();
        assert!(e.to_string().contains("\"acks\""), "{e}");
        let e = ProducerConfig::from_properties([("acks", "1"), ("enable.idempotence", "true")])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("acks=all"), "{e}");

        let c = ProducerConfig::from_properties([
            ("transactional.id", "tx-1"),
            ("transaction.timeout.ms", "10000"),
        ])
        .unwrap();
        assert!(c.transactional() && c.idempotent());
        assert_eq!(c.transaction_timeout, Duration::from_secs(10));
        c.validate().unwrap();
        let e = ProducerConfig::from_properties([("transactional.id", "t"), ("acks", "1")])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("acks=all"), "{e}");
    }
}
