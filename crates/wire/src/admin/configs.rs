//! Topic and broker configs: describe them (DescribeConfigs) and change them one key at
//! a time (IncrementalAlterConfigs, KIP-339), as Java's `Admin.describeConfigs` and
//! `incrementalAlterConfigs` do.

use std::fmt;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{broker_message, Admin};
use crate::error::{Error, Result};
use crate::net::BrokerConnection;

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic's configs (`retention.ms`, `max.message.bytes`, ...).
    Topic(String),
    /// A broker's configs, by node id.
    Broker(i32),
}

impl ConfigResource {
    fn wire_type(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
        }
    }

    fn wire_name(&self) -> StrBytes {
        match self {
            ConfigResource::Topic(name) => StrBytes::from_string(name.clone()),
            ConfigResource::Broker(id) => StrBytes::from_string(id.to_string()),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Topic(name) => write!(f, "topic {name}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// Where a config's value comes from (Java: `ConfigEntry.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set on this broker at runtime.
    DynamicBroker,
    /// Set at runtime as the default of every broker.
    DynamicDefaultBroker,
    /// From the broker's `server.properties`.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// A broker logger level set at runtime.
    DynamicBrokerLogger,
    /// A source this client does not know, by its wire id.
    Unknown(i8),
}

impl ConfigSource {
    fn from_wire(id: i8) -> Self {
        match id {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            other => ConfigSource::Unknown(other),
        }
    }
}

/// Java's names: `DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`, ...
impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::Unknown(_) => "UNKNOWN",
        })
    }
}

/// One config of a described resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The value; `None` for sensitive values (passwords) and unset keys.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed at runtime.
    pub read_only: bool,
    /// Whether the value is a secret the broker does not return.
    pub sensitive: bool,
}

/// One change of [`Admin::alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterConfigOp {
    /// Sets `key` to `value`.
    Set(String, String),
    /// Removes the resource's own value of `key`: the default applies again.
    Delete(String),
}

impl Admin {
    /// Every config of `resource`, sorted by name. A broker's configs are asked of that
    /// broker (only it knows its static ones); a topic's of any broker. Retriable
    /// failures are retried for the [API timeout](Admin::api_timeout).
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource.wire_type())
                .with_resource_name(resource.wire_name()),
        ]);
        self.retrying("describing configs", || async {
            let response = self.config_broker(resource).await?.send(&request).await?;
            let result = response
                .results
                .into_iter()
                .next()
                .ok_or_else(|| Error::protocol("DescribeConfigs answered no resource"))?;
            Error::check_code(result.error_code, || {
                format!(
                    "describing the configs of {resource}: {}",
                    broker_message(&result.error_message)
                )
            })?;
            let mut entries: Vec<ConfigEntry> = result
                .configs
                .into_iter()
                .map(|c| ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: ConfigSource::from_wire(c.config_source),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                })
                .collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await
    }

    /// Changes configs of `resource` one key at a time; keys not named keep their
    /// values. Fails with the broker's code and message (INVALID_CONFIG,
    /// UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        let configs = ops
            .iter()
            .map(|op| match op {
                AlterConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                AlterConfigOp::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(1),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource.wire_type())
                .with_resource_name(resource.wire_name())
                .with_configs(configs),
        ]);
        self.retrying("altering configs", || async {
            let response = self.config_broker(resource).await?.send(&request).await?;
            for r in &response.responses {
                Error::check_code(r.error_code, || {
                    format!(
                        "altering the configs of {resource}: {}",
                        broker_message(&r.error_message)
                    )
                })?;
            }
            Ok(())
        })
        .await
    }

    /// The broker a config request of `resource` goes to.
    async fn config_broker(&self, resource: &ConfigResource) -> Result<BrokerConnection> {
        match resource {
            ConfigResource::Broker(id) => {
                let md = self.cluster.refresh_all().await?;
                if !md.brokers.contains_key(id) {
                    let known: Vec<String> = md.brokers.keys().map(|b| b.to_string()).collect();
                    return Err(Error::config(format!(
                        "the cluster has no broker {id} (its brokers: {})",
                        known.join(", ")
                    )));
                }
                self.cluster.broker(*id).await
            }
            ConfigResource::Topic(_) => self.cluster.any_broker().await,
        }
    }
}
