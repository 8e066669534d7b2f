//! Completing a Produce request: each batch of the response is delivered, or handed to
//! its partition queue, which decides to retry, split or fail it
//! ([`PartitionQueue::on_error`](super::partition_queue::PartitionQueue::on_error));
//! the producer-wide state follows (epoch bump wanted, metadata refresh, transaction
//! lost), and the deliveries are resolved outside the lock.

use super::batch::Batch;
use super::partition_queue::OnError;
use super::Shared;
use crate::error::{Error, KafkaCode, Result};
use kafka_protocol::messages::ProduceResponse;
use tokio::time::Instant;

/// Batches for one broker, sent as one Produce request: what the sender hands its
/// broker task, and what [`complete_job`] resolves.
pub(crate) struct Job {
    pub(crate) node: i32,
    pub(crate) batches: Vec<Batch>,
}

/// The outcome of one batch in a response.
fn batch_outcome(response: &Result<Option<ProduceResponse>>, batch: &Batch) -> Result<(i64, i64)> {
    let response = match response {
        Err(e) => return Err(e.clone()),
        Ok(None) => return Ok((-1, -1)),
        Ok(Some(r)) => r,
    };
    let part = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == &*batch.topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == batch.partition)
        .ok_or_else(|| {
            Error::protocol(format!(
                "Produce response has no entry for {}-{}",
                batch.topic, batch.partition
            ))
        })?;
    Error::check_code(part.error_code, || {
        let detail = part
            .error_message
            .as_ref()
            .map(|m| m.as_str())
            .unwrap_or("");
        format!("producing to {}-{}: {detail}", batch.topic, batch.partition)
    })?;
    Ok((part.base_offset, part.log_append_time_ms))
}

/// Resolves, retries or fails every batch of a finished request.
pub(crate) fn complete_job(
    shared: &Shared,
    job: Job,
    response: Result<Option<ProduceResponse>>,
    started: Option<Instant>,
) {
    if let (Some(started), Ok(Some(_))) = (started, &response) {
        shared.metrics.request_latency(started.elapsed());
    }
    let config = &shared.config;
    let now = std::time::Instant::now();
    let mut done: Vec<(Batch, Result<(i64, i64)>)> = Vec::new();
    let resolving = {
        let mut guard = shared.state();
        let st = &mut *guard;
        if let Some(n) = st.broker_in_flight.get_mut(&job.node) {
            *n = n.saturating_sub(1);
        }
        st.total_in_flight = st.total_in_flight.saturating_sub(1);
        for batch in job.batches {
            let outcome = match batch_outcome(&response, &batch) {
                Err(e) if e.kafka_code() == Some(KafkaCode::DuplicateSequenceNumber) => {
                    Ok((-1, -1))
                }
                other => other,
            };
            let queue = st.acc.queue_mut(&batch.topic, batch.partition);
            match outcome {
                Ok(ok) => {
                    queue.on_ack(&batch);
                    st.acc.untrack(batch.id);
                    done.push((batch, Ok(ok)));
                }
                Err(e) => match queue.on_error(batch, e, config, now) {
                    OnError::Split { id, more } => st.acc.track_more(id, more),
                    OnError::Retry { bump } => {
                        shared.metrics.retry();
                        st.refresh_wanted = true;
                        if let (true, Some(idem)) = (bump, st.idem.as_mut()) {
                            idem.bump_required = true;
                        }
                    }
                    OnError::Fail { batch, error, bump } => {
                        if let (true, Some(idem)) = (bump, st.idem.as_mut()) {
                            idem.bump_required = true;
                        }
                        if let Some(txn) = st.txn.as_mut() {
                            txn.record_error(&error);
                        }
                        st.acc.untrack(batch.id);
                        done.push((*batch, Err(error)));
                    }
                },
            }
        }
        shared.resolving(done.len())
    };
    for (batch, outcome) in done {
        match outcome {
            Ok((base_offset, log_append_time)) => {
                shared
                    .metrics
                    .batch_sent(batch.record_count(), batch.size());
                batch.complete(base_offset, log_append_time);
            }
            Err(e) => {
                shared.metrics.errors(batch.record_count());
                batch.fail(&e);
            }
        }
    }
    drop(resolving);
    shared.wake.notify_one();
}

/// Fails every queued (not in-flight) batch with `err`; returns how many records.
pub(crate) fn abort_queued(shared: &Shared, err: &Error) -> usize {
    let mut failed = Vec::new();
    let resolving = {
        let mut st = shared.state();
        let st = &mut *st;
        for queues in st.acc.topics.values_mut() {
            for q in queues.iter_mut() {
                failed.extend(q.take_queued());
            }
        }
        for b in &failed {
            st.acc.untrack(b.id);
        }
        // A stamped batch that is never written leaves a gap in its partition's
        // sequences: a transactional abort then asks the coordinator for a new epoch;
        // an idempotent producer (closing) has no use for the partition any more.
        if failed.iter().any(|b| b.stamp.is_some()) {
            if let (Some(idem), Some(_)) = (st.idem.as_mut(), st.txn.as_ref()) {
                idem.bump_required = true;
            }
        }
        shared.resolving(failed.len())
    };
    let records = failed.iter().map(Batch::record_count).sum();
    for b in failed {
        b.fail(err);
    }
    drop(resolving);
    records
}
