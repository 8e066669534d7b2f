//! The body of [`Producer::send`] and [`Producer::send_with`]: the checks a record
//! passes before it is buffered, its partition, the append under the state lock, and the
//! wait for `buffer.memory` when the record needs a new batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::accumulator::{Appended, RecordParts};
use super::ack::Ack;
use super::{Producer, ProducerRecord, State};
use crate::error::{Error, Result};
use crate::records::{HeaderRef, BATCH_HEADER_LEN};

impl Producer {
    /// Buffers `record` with its outcome going to `ack` (the body of `send` and
    /// `send_with`).
    pub(super) async fn append(&self, record: ProducerRecord, ack: Ack) -> Result<()> {
        let shared = &self.handle.shared;
        let config = &shared.config;
        if shared.state().closed {
            return Err(Error::producer_closed("send after the producer was closed"));
        }
        // max.block.ms counts from the first wait (no clock read for a send that has none).
        let mut deadline = WaitDeadline::new(config.max_block);
        let headers: Vec<HeaderRef<'_>> = record.headers.iter().map(HeaderRef::from).collect();
        let parts = RecordParts {
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        let size = BATCH_HEADER_LEN + parts.size_bound();
        if size > config.max_request_size || size > config.buffer_memory {
            return Err(Error::record_too_large(format!(
                "a record of about {size} bytes is larger than max.request.size ({}) or \
                 buffer.memory ({})",
                config.max_request_size, config.buffer_memory
            )));
        }
        let partitions = shared
            .partition_counts
            .get(&shared.cluster, config, &record.topic, &mut deadline)
            .await?;
        let partition = shared
            .partitioner()
            .choose(
                record.partition,
                &record.topic,
                parts.key,
                record.sub_key.as_deref(),
                parts.value.map_or(0, <[u8]>::len),
                partitions,
            )
            .map_err(|e| Error::unknown_topic(format!("topic {}: {e}", record.topic)))?;

        let appended = {
            let mut st = shared.state();
            if st.closed {
                return Err(Error::producer_closed("send after the producer was closed"));
            }
            check_transaction(&mut st, &record.topic, partition)?;
            st.acc
                .try_append(&record.topic, partition, &parts, ack)?
                .map(|a| {
                    let wake = st.wakes_sender(&a, config.linger);
                    (a, wake)
                })
        };
        let (appended, wake) = match appended {
            Ok(a) => a,
            Err(ack) => {
                // Never more than the whole buffer (batch.size may exceed it); the
                // record itself fits, checked above.
                let reservation = shared
                    .state()
                    .acc
                    .batch_reservation(&parts)
                    .min(config.buffer_memory);
                let permits = u32::try_from(reservation).unwrap_or(u32::MAX);
                // A guard, not a pair of calls: a send cancelled while it waits must not
                // leave the count raised (the sender would think memory is short for good
                // and stop lingering).
                let blocked = BlockedSender::new(&shared.blocked_senders);
                shared.wake.notify_one();
                // Boxed, like the metadata wait: held inline, this rare wait made every
                // send's future several times larger.
                let acquired = Box::pin(tokio::time::timeout_at(
                    deadline.at(),
                    Arc::clone(&shared.memory).acquire_many_owned(permits),
                ))
                .await;
                drop(blocked);
                let permit = match acquired {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(Error::producer_closed("the producer is closed")),
                    Err(_) => {
                        return Err(Error::buffer_exhausted(format!(
                            "failed to allocate {reservation} bytes within max.block.ms ({} ms); \
                             buffer.memory is {} bytes",
                            config.max_block.as_millis(),
                            config.buffer_memory
                        )))
                    }
                };
                let mut st = shared.state();
                if st.closed {
                    return Err(Error::producer_closed("send after the producer was closed"));
                }
                check_transaction(&mut st, &record.topic, partition)?;
                // Someone may have opened a batch meanwhile: use it, give the memory back.
                let appended = match st.acc.try_append(&record.topic, partition, &parts, ack)? {
                    Ok(a) => a,
                    Err(ack) => st
                        .acc
                        .append_new(&record.topic, partition, &parts, ack, permit)?,
                };
                let wake = st.wakes_sender(&appended, config.linger);
                (appended, wake)
            }
        };
        if appended.batch_closed {
            shared
                .partitioner()
                .on_batch_complete(&record.topic, partition);
        }
        if wake {
            shared.wake.notify_one();
        }
        Ok(())
    }
}

impl State {
    /// Whether an append must wake the sender: a batch closed (ready now), or a new one
    /// ready after `linger` from now, before the sender's next drain. A new batch needs
    /// no wake when the sender drains by then anyway: with many partitions, waking it
    /// for every new batch had it scan every partition per batch.
    fn wakes_sender(&self, appended: &Appended, linger: Duration) -> bool {
        appended.batch_closed
            || (appended.new_batch
                && self
                    .sender_wake
                    .is_none_or(|at| at > Instant::now() + linger))
    }
}

/// For a transactional producer: a send is allowed in a transaction only, and its
/// partition joins the transaction (queued for the sender's next AddPartitionsToTxn).
fn check_transaction(st: &mut State, topic: &str, partition: i32) -> Result<()> {
    st.txn
        .as_mut()
        .map_or(Ok(()), |txn| txn.on_send(topic, partition))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a `send` stops waiting (for metadata, then for buffer memory): `max.block.ms`
/// after its first wait. Read from the clock only when a wait begins.
pub(super) struct WaitDeadline {
    max_block: Duration,
    at: Option<Instant>,
}

impl WaitDeadline {
    fn new(max_block: Duration) -> Self {
        WaitDeadline {
            max_block,
            at: None,
        }
    }

    /// The deadline, set now if no wait has begun before.
    pub(super) fn at(&mut self) -> Instant {
        *self
            .at
            .get_or_insert_with(|| Instant::now() + self.max_block)
    }
}

/// Counts a `send` waiting for buffer memory while it lives (see `blocked_senders`).
struct BlockedSender<'a>(&'a AtomicUsize);

impl<'a> BlockedSender<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        BlockedSender(count)
    }
}

impl Drop for BlockedSender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
