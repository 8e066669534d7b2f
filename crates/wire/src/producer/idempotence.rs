//! Idempotence: the producer id and epoch (InitProducerId), and the epoch bump of
//! KIP-360 that lets an idempotent producer carry on after OUT_OF_ORDER_SEQUENCE_NUMBER
//! or UNKNOWN_PRODUCER_ID instead of failing for good.
//!
//! Sequence numbers are per partition ([`PartitionQueue`]): assigned when a batch is
//! first drained, kept (with the producer id and epoch) on every resend of that batch,
//! so the broker drops a resent batch it already has (it answers with the first write's
//! offset, or DUPLICATE_SEQUENCE_NUMBER, which counts as delivered).
//!
//! Epoch bump (as Java's `TransactionManager.bumpIdempotentEpochAndResetIdIfNeeded`):
//! when the first unacknowledged batch of a partition gets OUT_OF_ORDER_SEQUENCE_NUMBER,
//! or any gets UNKNOWN_PRODUCER_ID, or a batch that had a sequence fails for good (its
//! gap would stall every later batch), that partition asks for a rewrite and the sender
//! stops draining, waits for every request in flight to come back, then raises the
//! epoch locally (a new producer id when the epoch would overflow) and rewrites the
//! sequences of the partitions that asked, from 0 under the new epoch. Every other
//! partition keeps the epoch of its stamped batches (a batch waiting out a retry backoff
//! may be in the log already: restamped, the broker would write it again) and moves to
//! the new epoch once they are done (see [`PartitionQueue`]).
//!
//! [`PartitionQueue`]: super::partition_queue::PartitionQueue

use std::time::Duration;

use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};

use super::accumulator::Accumulator;
use super::batch::ProducerIdEpoch;
use crate::cluster::Cluster;
use crate::config::wire_ms;
use crate::error::{Error, Result};

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
    pub(crate) fn ready(&self) -> Option<ProducerIdEpoch> {
        match self.state {
            ProducerIdState::Ready { id, epoch } if !self.bump_required => {
                Some(ProducerIdEpoch { id, epoch })
            }
            _ => None,
        }
    }

    /// Raises the epoch (or drops the id when the epoch is exhausted, so a new one is
    /// fetched) and rewrites the sequences of the partitions that asked for it; the
    /// others move to the new epoch when their stamped batches are done. Call with
    /// nothing in flight.
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
            for q in queues.iter_mut().filter(|q| q.rewrite_requested()) {
                q.rewrite_sequences();
            }
        }
    }

    /// Takes the id and epoch a transaction coordinator gave (InitProducerId) and starts
    /// every partition's sequences again at 0, as Java's `resetSequenceNumbers`: a
    /// transactional producer gets a new epoch only between transactions, with nothing
    /// buffered or in flight.
    pub(crate) fn reset(&mut self, acc: &mut Accumulator, id: i64, epoch: i16) {
        self.state = ProducerIdState::Ready { id, epoch };
        self.bump_required = false;
        for queues in acc.topics.values_mut() {
            for q in queues.iter_mut() {
                q.rewrite_sequences();
            }
        }
    }
}

/// Asks any broker for a fresh producer id (no transactional id).
pub(crate) async fn init_producer_id(cluster: &Cluster, timeout: Duration) -> Result<(i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(wire_ms(timeout))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let conn = cluster.any_broker().await?;
    let response = conn.send(&request).await?;
    Error::check_code(response.error_code, || "InitProducerId".to_string())?;
    Ok((response.producer_id.0, response.producer_epoch))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::error::KafkaCode;
    use crate::producer::accumulator::RecordParts;
    use crate::producer::ack::Ack;
    use crate::producer::batch::{Batch, Stamp};
    use crate::producer::partition_queue::{OnError, PartitionQueue};
    use crate::producer::ProducerConfig;
    use crate::records::Compression;

    /// Opens a new one-record batch on `t`-`p` (closing the open one).
    fn new_batch(acc: &mut Accumulator, memory: &Arc<Semaphore>, p: i32) {
        let record = RecordParts {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(b"v"),
            headers: &[],
        };
        let permit = Arc::clone(memory).try_acquire_many_owned(1024).unwrap();
        acc.append_new("t", p, &record, Ack::channel().0, permit)
            .unwrap();
    }

    /// Drains the head batch as the sender does, stamped with `producer`.
    fn drain(q: &mut PartitionQueue, producer: ProducerIdEpoch) -> Batch {
        q.drain_ready(Some(producer)).unwrap().unwrap()
    }

    /// The request with `batch` failed with `code`; returns what the queue decided.
    fn fail(q: &mut PartitionQueue, batch: Batch, code: KafkaCode) -> OnError {
        let config = ProducerConfig::new("127.0.0.1:9092");
        q.on_error(
            batch,
            Error::kafka(code, "test"),
            &config,
            std::time::Instant::now(),
        )
    }

    #[test]
    fn a_bump_rewrites_only_the_partitions_that_caused_it() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(1024, Compression::None);
        let old = ProducerIdEpoch { id: 7, epoch: 3 };
        let new = ProducerIdEpoch { id: 7, epoch: 4 };
        // Partitions 0 and 1 each send a batch under epoch 3; both requests fail (both
        // batches may be in the log) and both wait to be resent.
        for p in 0..2 {
            new_batch(&mut acc, &memory, p);
            let q = acc.queue_mut("t", p);
            let b = drain(q, old);
            assert!(matches!(
                fail(q, b, KafkaCode::NotLeaderOrFollower),
                OnError::Retry { bump: false }
            ));
        }
        // A newer batch behind partition 0's retry; partition 1's resend gets a sequence
        // error at its head: the partition asks for the rewrite.
        new_batch(&mut acc, &memory, 0);
        let q1 = acc.queue_mut("t", 1);
        let b = drain(q1, old);
        assert!(matches!(
            fail(q1, b, KafkaCode::OutOfOrderSequenceNumber),
            OnError::Retry { bump: true }
        ));
        assert!(q1.rewrite_requested());

        let mut idem = Idempotence::new();
        idem.state = ProducerIdState::Ready { id: 7, epoch: 3 };
        idem.bump_required = true;
        assert_eq!(
            idem.ready(),
            None,
            "nothing is stamped while a bump is pending"
        );
        idem.bump_epoch(&mut acc);
        assert_eq!(idem.ready(), Some(new));

        // Partition 1: its batch is stamped again, from 0 under the new epoch.
        let q1 = acc.queue_mut("t", 1);
        assert!(!q1.rewrite_requested());
        assert!(q1.may_send_head(new));
        let b = drain(q1, new);
        assert_eq!(
            b.stamp,
            Some(Stamp {
                producer: new,
                sequence: 0
            })
        );

        // Partition 0: the retried batch keeps epoch 3 and sequence 0 (the broker knows
        // it if it was written); the new batch waits until it is done.
        let q0 = acc.queue_mut("t", 0);
        assert!(q0.may_send_head(new));
        let retried = drain(q0, new);
        assert_eq!(
            retried.stamp,
            Some(Stamp {
                producer: old,
                sequence: 0
            })
        );
        assert!(
            !q0.may_send_head(new),
            "no new batch while a batch of the old epoch is in flight"
        );
        q0.on_ack(&retried);
        assert!(q0.may_send_head(new));
        let next = drain(q0, new);
        assert_eq!(
            next.stamp,
            Some(Stamp {
                producer: new,
                sequence: 0
            })
        );

        idem.state = ProducerIdState::Ready {
            id: 7,
            epoch: i16::MAX,
        };
        idem.bump_epoch(&mut acc);
        assert_eq!(
            idem.state,
            ProducerIdState::Missing,
            "a new id past the last epoch"
        );
    }

    #[test]
    fn a_stale_partition_with_a_retry_queued_does_not_start_a_new_batch() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(1024, Compression::None);
        let old = ProducerIdEpoch { id: 7, epoch: 3 };
        let new = ProducerIdEpoch { id: 7, epoch: 4 };
        new_batch(&mut acc, &memory, 0);
        new_batch(&mut acc, &memory, 0);
        let q = acc.queue_mut("t", 0);
        let first = drain(q, old);
        assert!(
            !q.may_send_head(old),
            "one at a time until a first batch is confirmed"
        );
        // Drained anyway (as after a confirmation), so that two are in flight.
        let second = drain(q, old);
        assert_eq!(
            second.stamp,
            Some(Stamp {
                producer: old,
                sequence: 1
            })
        );
        // The first fails and is queued for a resend, the second is acknowledged: the
        // partition still has a stamped batch of epoch 3 and must send it first.
        assert!(matches!(
            fail(q, first, KafkaCode::NotLeaderOrFollower),
            OnError::Retry { bump: false }
        ));
        q.on_ack(&second);
        new_batch(&mut acc, &memory, 0);
        let q = acc.queue_mut("t", 0);
        let head = drain(q, new);
        assert_eq!(
            head.stamp,
            Some(Stamp {
                producer: old,
                sequence: 0
            })
        );
        assert!(!q.may_send_head(new));
        q.on_ack(&head);
        let fresh = drain(q, new);
        assert_eq!(
            fresh.stamp,
            Some(Stamp {
                producer: new,
                sequence: 0
            })
        );
    }

    #[test]
    fn the_parts_of_a_split_batch_take_its_producer_state_and_sequence_range() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(64 * 1024, Compression::None);
        let producer = ProducerIdEpoch { id: 9, epoch: 2 };
        // One batch of one record first: the big batch starts at sequence 1.
        new_batch(&mut acc, &memory, 0);
        let value = [b'x'; 300];
        let record = RecordParts {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(&value),
            headers: &[],
        };
        let permit = Arc::clone(&memory)
            .try_acquire_many_owned(64 * 1024)
            .unwrap();
        acc.append_new("t", 0, &record, Ack::channel().0, permit)
            .unwrap();
        for _ in 0..5 {
            assert!(acc
                .try_append("t", 0, &record, Ack::channel().0)
                .unwrap()
                .is_ok());
        }
        let q = acc.queue_mut("t", 0);
        let _first = drain(q, producer);
        let big = drain(q, producer);
        assert_eq!(big.stamp.map(|s| s.sequence), Some(1));

        let parts = big.split(700, Compression::None).unwrap();
        assert!(parts.len() >= 2, "{} parts", parts.len());
        let mut sequence = 1;
        for part in &parts {
            assert_eq!(part.stamp, Some(Stamp { producer, sequence }));
            let header = crate::records::RecordBatches::new(part.payload.clone().unwrap())
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    header.producer_id(),
                    header.producer_epoch(),
                    header.base_sequence()
                ),
                (9, 2, sequence)
            );
            sequence += i32::try_from(part.record_count()).unwrap();
        }
        assert_eq!(sequence, 7, "the parts fill the big batch's range exactly");
    }
}
