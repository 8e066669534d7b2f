//! The consumer's embedded protocol: the subscription a member sends in JoinGroup and the
//! assignment the leader hands out in SyncGroup, in Java's `ConsumerProtocol` byte format
//! (a big-endian `int16` version, then the `ConsumerProtocolSubscription` /
//! `ConsumerProtocolAssignment` message at that version), so Sluice and Java consumers can
//! share one group.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// The highest version of both messages we write (Java 3.x and 4.x write 3 too).
const VERSION: i16 = 3;

/// What one member told the group in JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocols; empty for eager ones).
    pub(crate) owned: Vec<TopicPartition>,
    /// The generation in which it got them, `-1` when unknown.
    pub(crate) generation: i32,
    pub(crate) user_data: Option<Bytes>,
}

pub(crate) fn encode_subscription(s: &Subscription) -> Result<Bytes> {
    let msg = ConsumerProtocolSubscription::default()
        .with_topics(
            s.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(s.user_data.clone())
        .with_owned_partitions(
            group(&s.owned)
                .into_iter()
                .map(|(topic, partitions)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(s.generation);
    encode(&msg, "ConsumerProtocolSubscription")
}

pub(crate) fn decode_subscription(bytes: &Bytes) -> Result<Subscription> {
    let (version, mut body) = version(bytes, "subscription")?;
    let msg = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| Error::codec("decoding a ConsumerProtocolSubscription", e))?;
    let mut generation = if version >= 2 { msg.generation_id } else { -1 };
    // Java's cooperative-sticky assignor also puts the generation in the user data, for
    // members that speak version 0 or 1.
    if version < 2 {
        if let Some(mut ud) = msg.user_data.clone().filter(|u| u.len() >= 4) {
            generation = ud.get_i32();
        }
    }
    Ok(Subscription {
        topics: msg.topics.iter().map(|t| t.to_string()).collect(),
        owned: msg
            .owned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |&p| TopicPartition::new(tp.topic.0.to_string(), p))
            })
            .collect(),
        generation,
        user_data: msg.user_data,
    })
}

pub(crate) fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let msg = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    encode(&msg, "ConsumerProtocolAssignment")
}

pub(crate) fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        // The coordinator sends an empty assignment to members left without one.
        return Ok(Vec::new());
    }
    let (version, mut body) = version(bytes, "assignment")?;
    let msg = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| Error::codec("decoding a ConsumerProtocolAssignment", e))?;
    let mut out: Vec<TopicPartition> = msg
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |&p| TopicPartition::new(tp.topic.0.to_string(), p))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn encode<M: Encodable>(msg: &M, what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&VERSION.to_be_bytes());
    msg.encode(&mut buf, VERSION)
        .map_err(|e| Error::codec(format!("encoding a {what}"), e))?;
    Ok(buf.freeze())
}

/// Splits off the version. A newer version than ours is read as ours: later versions
/// only append fields, as Java's reader assumes too.
fn version(bytes: &Bytes, what: &str) -> Result<(i16, Bytes)> {
    if bytes.len() < 2 {
        return Err(Error::protocol(format!(
            "a consumer {what} of {} bytes",
            bytes.len()
        )));
    }
    let mut body = bytes.clone();
    let v = body.get_i16();
    if v < 0 {
        return Err(Error::protocol(format!("consumer {what} version {v}")));
    }
    Ok((v.min(VERSION), body))
}

fn group(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.clone())
            .or_default()
            .push(tp.partition);
    }
    for v in by_topic.values_mut() {
        v.sort_unstable();
    }
    by_topic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![TopicPartition::new("a", 0), TopicPartition::new("a", 2)],
            generation: 7,
            user_data: None,
        };
        let bytes = encode_subscription(&s).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_subscription(&bytes).unwrap(), s);
    }

    #[test]
    fn java_v0_subscription_reads() {
        // Java's ConsumerProtocol v0: version 0, topics ["t"], user data null.
        let bytes = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]);
        let s = decode_subscription(&bytes).unwrap();
        assert_eq!(s.topics, ["t"]);
        assert!(s.owned.is_empty());
        assert_eq!(s.generation, -1);
    }

    #[test]
    fn assignment_round_trips_and_empty_is_none() {
        let parts = vec![TopicPartition::new("a", 1), TopicPartition::new("b", 0)];
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap(), parts);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
    }
}
