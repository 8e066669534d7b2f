//! Which broker coordinates a consumer group (`kafka-consumer-groups --state`'s
//! COORDINATOR column).

use super::Admin;
use crate::cluster::BrokerInfo;
use crate::error::{Error, Result};

impl Admin {
    /// The broker that coordinates `group` (FindCoordinator). Retriable failures (the
    /// offsets topic still being created, a coordinator moving) are retried for the
    /// [API timeout](Admin::api_timeout).
    pub async fn group_coordinator(&self, group: &str) -> Result<BrokerInfo> {
        let coordinator = self.coordinator(group);
        let (node_id, host, port) = self
            .retrying("finding a group coordinator", || coordinator.locate())
            .await?;
        let rack = self
            .cluster
            .metadata()
            .brokers
            .get(&node_id)
            .and_then(|b| b.rack.clone());
        Ok(BrokerInfo {
            node_id,
            host,
            port: u16::try_from(port)
                .map_err(|_| Error::protocol(format!("coordinator port {port} out of range")))?,
            rack,
        })
    }
}
