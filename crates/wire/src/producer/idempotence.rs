//! Idempotence: the producer id and epoch (InitProducerId), and the epoch bump of
//! KIP-360 that lets an idempotent producer carry on after OUT_OF_ORDER_SEQUENCE_NUMBER
//! or UNKNOWN_PRODUCER_ID instead of failing for good.
//!
//! Sequence numbers are per partition ([`PartitionQueue`]): assigned when a batch is
//! first drained, kept on every resend of that batch, so the broker drops a resent batch
//! it already has (it answers with the first write's offset, or
//! DUPLICATE_SEQUENCE_NUMBER, which counts as delivered).
//!
//! Epoch bump (as Java's `TransactionManager.bumpIdempotentEpochAndResetIdIfNeeded`):
//! when the first unacknowledged batch of a partition gets OUT_OF_ORDER_SEQUENCE_NUMBER,
//! or any gets UNKNOWN_PRODUCER_ID, or a batch that had a sequence fails for good (its
//! gap would stall every later batch), the sender stops draining, waits for every
//! request in flight to come back, then raises the epoch locally (a new producer id
//! when the epoch would overflow), resets every partition's sequences to 0 and
//! restamps the queued batches with the new epoch and fresh sequences as they are sent.

use std::time::Duration;

use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};

use super::accumulator::Accumulator;
use crate::cluster::Cluster;
use crate::error::{Error, KafkaCode, Result};

/// The producer id state of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProducerIdState {
    /// No id yet: ask for one.
    Missing,
    /// An InitProducerId request is out.
    Initializing,
    /// Batches may be sent with this id and epoch.
    Ready { id: i64, epoch: i16 },
}

/// Idempotence bookkeeping shared by the send path and the sender.
#[derive(Debug)]
pub(crate) struct Idempotence {
    pub(crate) state: ProducerIdState,
    /// Set when sequences are out of step: drain nothing until in-flight requests are
    /// back, then [`bump_epoch`](Self::bump_epoch).
    pub(crate) bump_required: bool,
}

impl Idempotence {
    pub(crate) fn new() -> Self {
        Idempotence {
            state: ProducerIdState::Missing,
            bump_required: false,
        }
    }

    /// Id and epoch when batches may be stamped.
    pub(crate) fn ready(&self) -> Option<(i64, i16)> {
        match self.state {
            ProducerIdState::Ready { id, epoch } if !self.bump_required => Some((id, epoch)),
            _ => None,
        }
    }

    /// Raises the epoch (or drops the id when the epoch is exhausted, so a new one is
    /// fetched) and resets every partition's sequences. Call with nothing in flight.
    pub(crate) fn bump_epoch(&mut self, acc: &mut Accumulator) {
        self.state = match self.state {
            ProducerIdState::Ready { id, epoch } if epoch < i16::MAX => {
                tracing::info!(
                    producer_id = id,
                    epoch = epoch + 1,
                    "bumping producer epoch"
                );
                ProducerIdState::Ready {
                    id,
                    epoch: epoch + 1,
                }
            }
            _ => ProducerIdState::Missing,
        };
        self.bump_required = false;
        for queues in acc.topics.values_mut() {
            for q in queues.iter_mut() {
                q.next_sequence = 0;
                q.acked_sequence = 0;
                q.retrying = false;
                q.confirmed = false;
                for b in q.batches.iter_mut() {
                    b.sequence = None;
                }
            }
        }
    }
}

/// Errors that call for an epoch bump when the batch is the first unacknowledged one of
/// its partition (OUT_OF_ORDER_SEQUENCE_NUMBER), or always (UNKNOWN_PRODUCER_ID).
pub(crate) fn sequence_error(err: &Error) -> Option<KafkaCode> {
    match err.kafka_code() {
        Some(c @ (KafkaCode::OutOfOrderSequenceNumber | KafkaCode::UnknownProducerId)) => Some(c),
        _ => None,
    }
}

/// Asks any broker for a fresh producer id (no transactional id).
pub(crate) async fn init_producer_id(cluster: &Cluster, timeout: Duration) -> Result<(i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let conn = cluster.any_broker().await?;
    let response = conn.send(&request).await?;
    Error::check_code(response.error_code, || "InitProducerId".to_string())?;
    Ok((response.producer_id.0, response.producer_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Compression;

    #[test]
    fn epoch_bump_resets_sequences_and_fetches_a_new_id_on_overflow() {
        let mut acc = Accumulator::new(1024, Compression::None);
        let q = acc.queue_mut("t", 2);
        q.next_sequence = 500;
        q.acked_sequence = 400;
        q.retrying = true;
        q.confirmed = true;
        let mut idem = Idempotence::new();
        idem.state = ProducerIdState::Ready { id: 7, epoch: 3 };
        idem.bump_required = true;
        assert_eq!(
            idem.ready(),
            None,
            "nothing is stamped while a bump is pending"
        );
        idem.bump_epoch(&mut acc);
        assert_eq!(idem.ready(), Some((7, 4)));
        let q = acc.queue_mut("t", 2);
        assert_eq!(
            (q.next_sequence, q.acked_sequence, q.retrying, q.confirmed),
            (0, 0, false, false)
        );

        idem.state = ProducerIdState::Ready {
            id: 7,
            epoch: i16::MAX,
        };
        idem.bump_epoch(&mut acc);
        assert_eq!(idem.state, ProducerIdState::Missing);
    }
}
