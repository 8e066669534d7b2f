//! What [`recv_event`](super::Consumer::recv_event) hands out: a record, the news that
//! a partition has been read to its end (librdkafka's `RD_KAFKA_RESP_ERR__PARTITION_EOF`
//! with `enable.partition.eof`), or that a subscribed topic does not exist.

use super::record::ConsumerRecord;
use super::TopicPartition;

/// One step of a consumer's input: a record, the end of a partition reached, or a
/// subscribed topic missing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// The next record, as [`recv`](super::Consumer::recv) hands it out.
    Record(ConsumerRecord),
    /// `partition` has been read to its end: its position, `offset`, is the high
    /// watermark (the last stable offset under `read_committed`) of its latest fetch.
    /// Needs `enable.partition.eof`. Handed out once each time the position reaches the
    /// end: again only after more records arrived and were handed out (or after a
    /// seek). It comes after every record of `partition` below `offset`.
    PartitionEof {
        /// The partition read to its end.
        partition: TopicPartition,
        /// Its position: the offset the next record written to it will have.
        offset: i64,
    },
    /// A subscribed topic the cluster does not have (librdkafka: "Subscribed topic not
    /// available: T: Broker: Unknown topic or partition"). Handed out once when the
    /// group's metadata check finds it missing (again only if it comes back and goes
    /// again); [`missing_topics`](super::Consumer::missing_topics) lists those missing
    /// now. Not an error: the consumer goes on, and reads the topic once it is created.
    TopicNotAvailable {
        /// The subscribed topic.
        topic: String,
    },
}

impl ConsumerEvent {
    /// The record, if this is one.
    pub fn record(&self) -> Option<&ConsumerRecord> {
        match self {
            ConsumerEvent::Record(r) => Some(r),
            ConsumerEvent::PartitionEof { .. } | ConsumerEvent::TopicNotAvailable { .. } => None,
        }
    }

    /// The record, if this is one, by value.
    pub fn into_record(self) -> Option<ConsumerRecord> {
        match self {
            ConsumerEvent::Record(r) => Some(r),
            ConsumerEvent::PartitionEof { .. } | ConsumerEvent::TopicNotAvailable { .. } => None,
        }
    }
}
