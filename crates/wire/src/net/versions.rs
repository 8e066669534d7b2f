//! Which versions of each Kafka API this client implements, and the negotiation that
//! picks, per connection, the highest version both sides implement.
//!
//! This table is the one place that says what we speak. Raising a maximum means the code
//! that builds and reads that request handles every field the new version adds.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::error::{Error, Result};

/// The versions we implement per API, inclusive.
///
/// Caps worth knowing: Produce stops at 12 and Fetch at 12 because later versions name
/// topics by id instead of by name (KIP-516); Metadata stops at 12 for the same reason.
/// OffsetFetch stops at 7: version 8 batches groups and 10 names topics by id; one group
/// per request is all the consumer needs.
pub(crate) const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 1, 4),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 7),
    // v3 is the first a consumer may send (replica id -1, current leader epoch); Java
    // skips position validation against older brokers, and so do we.
    (ApiKey::OffsetForLeaderEpoch, 3, 4),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    // Admin: deleting groups and offsets (KIP-496), configs, partitions.
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    // v3+ carry producer id / epoch (KIP-360); we send -1/-1 (a fresh id). v5 only
    // changes transactional semantics (KIP-890) that we do not use.
    (ApiKey::InitProducerId, 0, 4),
    // Transactions, with the client-side semantics of transaction version 1: partitions
    // are added with AddPartitionsToTxn (v4+ is broker-to-broker only), EndTxn stops at
    // 4 and TxnOffsetCommit at 4 because their v5 means transaction version 2
    // (KIP-890), which also needs Produce v12; the transactional producer sends Produce
    // at most v11 for the same reason ([`TV1_PRODUCE_MAX`]).
    // Kafka 3.9 and 4.x accept these from clients that do not use transaction version 2.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    // v1: the mechanism's messages travel in SaslAuthenticate requests (KIP-152).
    (ApiKey::SaslHandshake, 1, 1),
    // v1 adds the session lifetime (KIP-368).
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The highest Produce version a transactional producer sends: v12 tells a broker with
/// transaction version 2 that the client relies on it (partitions added implicitly,
/// epoch bumped on every commit), which is not the protocol we speak.
pub(crate) const TV1_PRODUCE_MAX: i16 = 11;

/// The highest ApiVersions version we send first.
pub(crate) const API_VERSIONS_MAX: i16 = 3;

/// The versions negotiated with one broker.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    /// Per API key: the highest version both sides implement.
    chosen: HashMap<i16, i16>,
    /// Per API key: the range the broker advertised (for error messages).
    broker: HashMap<i16, (i16, i16)>,
}

impl ApiVersions {
    /// Intersects the broker's advertised ranges with [`IMPLEMENTED`].
    pub(crate) fn negotiate(response: &ApiVersionsResponse) -> Self {
        let broker: HashMap<i16, (i16, i16)> = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let chosen = IMPLEMENTED
            .iter()
            .filter_map(|&(key, ours_min, ours_max)| {
                let &(theirs_min, theirs_max) = broker.get(&(key as i16))?;
                let max = ours_max.min(theirs_max);
                (max >= ours_min.max(theirs_min)).then_some((key as i16, max))
            })
            .collect();
        ApiVersions { chosen, broker }
    }

    /// The version to use for `key`, or an [`ErrorKind::UnsupportedVersion`] error that
    /// names both ranges.
    ///
    /// [`ErrorKind::UnsupportedVersion`]: crate::ErrorKind::UnsupportedVersion
    pub fn version_for(&self, key: ApiKey) -> Result<i16> {
        if let Some(&v) = self.chosen.get(&(key as i16)) {
            return Ok(v);
        }
        let ours = IMPLEMENTED
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|&(_, min, max)| format!("{min}..={max}"))
            .unwrap_or_else(|| "none".to_string());
        let theirs = self
            .broker
            .get(&(key as i16))
            .map(|&(min, max)| format!("{min}..={max}"))
            .unwrap_or_else(|| "none".to_string());
        Err(Error::unsupported_version(format!(
            "{key:?}: this client implements versions {ours}, the broker {theirs}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn advertised(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        let mut r = ApiVersionsResponse::default();
        r.api_keys = keys
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        r
    }

    #[test]
    fn picks_the_highest_common_version() {
        let v = ApiVersions::negotiate(&advertised(&[
            (ApiKey::Metadata, 0, 13),
            (ApiKey::Produce, 3, 8),
        ]));
        assert_eq!(v.version_for(ApiKey::Metadata).unwrap(), 12);
        assert_eq!(v.version_for(ApiKey::Produce).unwrap(), 8);
    }

    #[test]
    fn disjoint_ranges_are_an_unsupported_version_error() {
        let v = ApiVersions::negotiate(&advertised(&[(ApiKey::Fetch, 13, 18)]));
        let err = v.version_for(ApiKey::Fetch).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::UnsupportedVersion);
        assert!(err.to_string().contains("13..=18"), "{err}");
        let err = v.version_for(ApiKey::Metadata).unwrap_err();
        assert!(err.to_string().contains("broker none"), "{err}");
    }

    #[test]
    fn every_implemented_range_is_within_what_kafka_protocol_encodes() {
        for &(key, min, max) in IMPLEMENTED {
            let lib = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(
                lib.min <= min && max <= lib.max,
                "{key:?} {min}..={max} vs {lib}"
            );
        }
    }
}
