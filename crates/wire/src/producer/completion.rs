//! Completing a Produce request: each batch of the response is delivered, put back
//! for a retry (with backoff, at its place in the partition queue), or failed; and the
//! idempotence state follows (acknowledged sequences, epoch bump when a gap cannot be
//! repaired by resending).

use kafka_protocol::messages::ProduceResponse;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::batch::Batch;
use super::idempotence;
use super::Shared;
use crate::error::{Error, KafkaCode, Result};

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
    {
        let mut guard = shared.state();
        let st = &mut *guard;
        if let Some(n) = st.broker_in_flight.get_mut(&job.node) {
            *n = n.saturating_sub(1);
        }
        st.total_in_flight = st.total_in_flight.saturating_sub(1);
        for mut batch in job.batches {
            let outcome = batch_outcome(&response, &batch);
            let queue = st.acc.queue_mut(&batch.topic, batch.partition);
            queue.on_response();
            let outcome = match outcome {
                Err(e) if e.kafka_code() == Some(KafkaCode::DuplicateSequenceNumber) => {
                    Ok((-1, -1))
                }
                other => other,
            };
            match outcome {
                Ok(ok) => {
                    queue.on_ack(&batch);
                    st.acc.untrack(batch.id);
                    done.push((batch, Ok(ok)));
                }
                Err(e) => {
                    // Too large for the broker: split and resend the parts (Java:
                    // splitAndReenqueue). With idempotence the parts take the refused
                    // batch's sequence range (see `Batch::split`): the batches behind
                    // keep theirs, no epoch bump.
                    let too_large = matches!(
                        e.kafka_code(),
                        Some(KafkaCode::MessageTooLarge | KafkaCode::RecordListTooLarge)
                    );
                    if too_large
                        && batch.record_count() > 1
                        && batch.created + config.delivery_timeout > now
                    {
                        match batch.split(config.batch_size, config.compression) {
                            Ok(parts) => {
                                debug!(topic = %parts[0].topic, partition = parts[0].partition, parts = parts.len(), "batch too large for the broker, split");
                                let (id, more) = (parts[0].id, parts.len() - 1);
                                for mut part in parts {
                                    part.last_error = Some(e.clone());
                                    queue.on_retry(part);
                                }
                                st.acc.track_more(id, more);

                                continue;
                            }
                            Err(unsplit) => batch = *unsplit,
                        }
                    }
                    let queue = st.acc.queue_mut(&batch.topic, batch.partition);
                    let idempotent = st.idem.is_some();
                    let sequence_error = idempotent
                        .then(|| idempotence::sequence_error(&e))
                        .flatten();
                    // At the head, or behind what the broker already acknowledged: resending
                    // cannot fix it, only a new epoch can.
                    let is_head = queue.is_first_unacked(&batch);
                    let bump = match sequence_error {
                        Some(KafkaCode::UnknownProducerId) => true,
                        Some(_) => is_head,
                        None => false,
                    };
                    let retriable = bump || sequence_error.is_some() || e.is_retriable();
                    let expired = batch.created + config.delivery_timeout <= now;
                    let out_of_retries = batch.attempts > config.retries;
                    if retriable && !expired && !out_of_retries {
                        debug!(topic = %batch.topic, partition = batch.partition, attempt = batch.attempts, error = %e, "produce retried");
                        shared.metrics.retry();
                        batch.retry_at = Some(now + config.retry_backoff_for(batch.attempts));
                        batch.last_error = Some(e);
                        queue.on_retry(batch);
                        st.refresh_wanted = true;
                        if bump {
                            if let Some(idem) = st.idem.as_mut() {
                                queue.request_rewrite();
                                idem.bump_required = true;
                            }
                        }
                    } else {
                        let e = if expired {
                            Error::timeout(
                                format!("delivering to {}-{}", batch.topic, batch.partition),
                                config.delivery_timeout,
                            )
                            .context(format!("last error: {e}"))
                        } else {
                            e
                        };
                        warn!(topic = %batch.topic, partition = batch.partition, records = batch.record_count(), error = %e, "produce failed");
                        if batch.stamp.is_some() {
                            if let Some(idem) = st.idem.as_mut() {
                                // Its gap would stall every later batch of the partition.
                                st.acc
                                    .queue_mut(&batch.topic, batch.partition)
                                    .request_rewrite();
                                idem.bump_required = true;
                            }
                        }
                        if let Some(txn) = st.txn.as_mut() {
                            txn.record_error(&e);
                        }
                        st.acc.untrack(batch.id);
                        done.push((batch, Err(e)));
                    }
                }
            }
        }
    }
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
    shared.notify_completed();
    shared.wake.notify_one();
}

/// Fails every queued (not in-flight) batch with `err`; returns how many records.
pub(crate) fn abort_queued(shared: &Shared, err: &Error) -> usize {
    let mut failed = Vec::new();
    {
        let mut st = shared.state();
        let st = &mut *st;
        for queues in st.acc.topics.values_mut() {
            for q in queues.iter_mut() {
                failed.extend(q.batches.drain(..));
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
    }
    let records = failed.iter().map(Batch::record_count).sum();
    for b in failed {
        b.fail(err);
    }
    shared.notify_completed();
    records
}
