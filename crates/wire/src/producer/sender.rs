//! The sender: one loop that drains ready batches (under the state lock, no I/O) into
//! one Produce request per broker, and one task per broker that writes that broker's
//! requests in order on its connection. Responses are handled, in that order, by a
//! completion task per broker, which resolves deliveries, or puts batches back for a
//! retry.
//!
//! Why one writer task per broker: the connection pipelines requests, and with
//! idempotence the requests of a partition must reach the broker in sequence order. A
//! single task that queues them one after the other (the responses are awaited by
//! another) guarantees it; separate tasks racing to the socket would not.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn, Instrument};

use super::batch::Batch;
use super::completion::{complete_job, Job};
use super::idempotence::{self, ProducerIdState};
use super::partition_queue::{DrainRules, Head};
use super::{Shared, State};
use crate::config::wire_ms;
use crate::error::{Error, Result};
use crate::net::versions::TV1_PRODUCE_MAX;
use crate::types::{topic_name, Acks};

/// Longest the sender sleeps without a reason to wake.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// What one drain pass decided, acted on after the lock is released.
#[derive(Default)]
struct Plan {
    jobs: Vec<Job>,
    /// Batches whose delivery timeout passed, or that could not be encoded.
    failed: Vec<(Batch, Error)>,
    next_wake: Option<Instant>,
    init_producer_id: bool,
    /// Send AddPartitionsToTxn for the partitions moved to `adding`.
    add_partitions: bool,
    refresh: bool,
    exit: bool,
}

/// The sender loop; ends when the producer is closed and nothing is left.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut brokers: HashMap<i32, mpsc::UnboundedSender<Job>> = HashMap::new();
    let refreshing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let now = Instant::now();
        let (plan, resolving, wake_at) = {
            let mut st = shared.state();
            let plan = drain(&shared, &mut st, now);
            // Untracked in `drain`: `flush` waits for their outcomes too.
            let resolving = shared.resolving(plan.failed.len());
            let wake_at = plan
                .next_wake
                .unwrap_or(now + IDLE_WAKE)
                .min(now + IDLE_WAKE);
            // Under the lock: a send that opens a batch after this sees it, and one
            // before it was drained (see `State::wakes_sender`).
            st.sender_wake = Some(wake_at);
            (plan, resolving, wake_at)
        };
        if !plan.failed.is_empty() {
            for (batch, err) in plan.failed {
                shared.metrics.errors(batch.record_count());
                shared.txn_batch_failed(&err);
                batch.fail(&err);
            }
        }
        drop(resolving);
        if plan.init_producer_id {
            tokio::spawn(init_producer_id(Arc::clone(&shared)));
        }
        if plan.add_partitions {
            tokio::spawn(super::transaction::add_partitions(Arc::clone(&shared)));
        }
        if plan.refresh && !refreshing.swap(true, Ordering::SeqCst) {
            let shared = Arc::clone(&shared);
            let refreshing = Arc::clone(&refreshing);
            tokio::spawn(async move {
                let topics: Vec<String> = shared.state().acc.topics.keys().cloned().collect();
                let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
                if let Err(e) = shared.cluster.refresh(&refs, false).await {
                    debug!(error = %e, "producer metadata refresh failed");
                }
                // Rate-limit refreshes to one per backoff.
                tokio::time::sleep(shared.config.retry_backoff).await;
                refreshing.store(false, Ordering::SeqCst);
                shared.wake.notify_one();
            });
        }
        for job in plan.jobs {
            let node = job.node;
            let tx = brokers.entry(node).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(broker_task(Arc::clone(&shared), node, rx));
                tx
            });
            if let Err(mpsc::error::SendError(job)) = tx.send(job) {
                // The broker task ended (it never does while we hold the sender).
                complete_job(&shared, job, Err(Error::closed("broker task ended")), None);
            }
        }
        if plan.exit {
            break;
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
    shared.stopped.store(true, Ordering::SeqCst);
    debug!("producer sender stopped");
}

/// Picks the batches to send now. Runs under the state lock: no I/O, no await.
fn drain(shared: &Shared, st: &mut State, now: Instant) -> Plan {
    let config = &shared.config;
    let mut plan = Plan::default();
    let State {
        acc,
        idem,
        broker_in_flight,
        total_in_flight,
        closed,
        refresh_wanted,
        txn,
        sender_wake: _,
    } = st;
    plan.refresh = std::mem::take(refresh_wanted);
    let wake = |plan: &mut Plan, at: Instant| {
        plan.next_wake = Some(plan.next_wake.map_or(at, |w| w.min(at)));
    };

    // Expire what waited longer than delivery.timeout.ms (queued batches only; a
    // batch in flight is judged when its response comes).
    let std_now = now.into_std();
    let mut expired_sequenced = false;
    for (topic, queues) in acc.topics.iter_mut() {
        for queue in queues.iter_mut() {
            let (expired, next) = queue.expire(std_now, config.delivery_timeout);
            if let Some(at) = next {
                wake(&mut plan, Instant::from_std(at));
            }
            for b in expired {
                // Its gap would stall every later batch of the partition.
                expired_sequenced |= b.stamp.is_some();
                let err = expired_error(topic, &b, config.delivery_timeout);
                plan.failed.push((b, err));
            }
        }
    }

    // Transactions: a sequence gap or a failed batch loses the transaction (the
    // coordinator bumps the epoch when it is aborted, never we); a lost transaction's
    // queued batches fail with its error; new partitions are added in one request.
    if let Some(txn) = txn.as_mut() {
        if let Some(err) = plan.failed.first().map(|(_, e)| e.clone()) {
            txn.record_error(&err);
        }
        if idem
            .as_ref()
            .is_some_and(|i| i.bump_required || expired_sequenced)
        {
            if let Some(i) = idem.as_mut() {
                i.bump_required = true;
            }
            txn.record_error(&Error::kafka(
                crate::error::KafkaCode::OutOfOrderSequenceNumber,
                "a batch of the transaction failed or left a sequence gap",
            ));
        }
        if let Some(err) = txn.failing() {
            let mut stamped = false;
            for queues in acc.topics.values_mut() {
                for q in queues.iter_mut() {
                    let queued = q.take_queued();
                    stamped |= queued.iter().any(|b| b.stamp.is_some());
                    plan.failed
                        .extend(queued.into_iter().map(|b| (b, err.clone())));
                }
            }
            // A stamped batch that is never written leaves a gap in its partition's
            // sequences: the abort asks the coordinator for a new epoch.
            if stamped {
                if let Some(i) = idem.as_mut() {
                    i.bump_required = true;
                }
            }
            txn.drop_pending();
        } else if txn.start_adding() {
            plan.add_partitions = true;
        }
    }

    for (b, _) in &plan.failed {
        acc.untrack(b.id);
    }
    let failed_before_drain = plan.failed.len();

    // Idempotence: a producer id first; an epoch bump once nothing is in flight.
    let mut stamp = None;
    if let Some(idem) = idem.as_mut() {
        if expired_sequenced {
            idem.bump_required = true;
        }
        if idem.bump_required && *total_in_flight == 0 && txn.is_none() {
            idem.bump_epoch(acc);
        }
        if idem.state == ProducerIdState::Missing && !acc.is_empty() && txn.is_none() {
            idem.state = ProducerIdState::Initializing;
            plan.init_producer_id = true;
        }
        match idem.ready() {
            Some(s) => stamp = Some(s),
            None => {
                plan.exit = *closed && acc.is_empty() && *total_in_flight == 0;
                return plan;
            }
        }
    }

    let metadata = shared.cluster.metadata();
    let rules = DrainRules {
        now: std_now,
        linger: config.linger,
        urgent: *closed || shared.blocked_senders.load(Ordering::SeqCst) > 0,
        flush_upto: acc.flush_upto,
        producer: stamp,
        one_in_flight: config.effective_max_in_flight() == 1,
    };
    let max_in_flight = config.effective_max_in_flight();
    loop {
        // One round: at most one batch per partition, one request per broker.
        let mut round: HashMap<i32, (Vec<Batch>, usize)> = HashMap::new();
        for (topic, queues) in acc.topics.iter_mut() {
            for (index, queue) in queues.iter_mut().enumerate() {
                let size = match queue.head(&rules) {
                    Head::Ready { size } => size,
                    Head::Until(at) => {
                        wake(&mut plan, Instant::from_std(at));
                        continue;
                    }
                    Head::Empty | Head::Blocked => continue,
                };
                let partition = i32::try_from(index).unwrap_or(i32::MAX);
                if txn.as_ref().is_some_and(|t| !t.may_send(topic, partition)) {
                    continue;
                }
                let Some(node) = metadata.partition(topic, partition).and_then(|p| p.leader) else {
                    plan.refresh = true;
                    continue;
                };
                match round.get(&node) {
                    Some((_, bytes)) if bytes + size > config.max_request_size => continue,
                    Some(_) => {}
                    None if broker_in_flight.get(&node).copied().unwrap_or(0) >= max_in_flight => {
                        continue
                    }
                    None => {}
                }
                let batch = match queue.drain_ready(stamp) {
                    Some(Ok(batch)) => batch,
                    Some(Err(failed)) => {
                        plan.failed.push(failed);
                        continue;
                    }
                    None => continue,
                };
                let entry = round.entry(node).or_default();
                entry.1 += batch.size();
                entry.0.push(batch);
            }
        }
        if round.is_empty() {
            break;
        }
        for (node, (batches, _)) in round {
            *broker_in_flight.entry(node).or_default() += 1;
            *total_in_flight += 1;
            plan.jobs.push(Job { node, batches });
        }
    }
    for (b, _) in &plan.failed[failed_before_drain..] {
        acc.untrack(b.id);
    }
    plan.exit = *closed && acc.is_empty() && *total_in_flight == 0;
    plan
}

fn expired_error(topic: &str, batch: &Batch, timeout: Duration) -> Error {
    let base = Error::timeout(
        format!(
            "delivering {} records to {topic}-{}",
            batch.record_count(),
            batch.partition
        ),
        timeout,
    );
    match &batch.last_error {
        Some(last) => base.context(format!("last error: {last}")),
        None => base,
    }
}

/// A request's outcome, awaited by the broker's [`completion_task`].
type Outcome = Pin<Box<dyn Future<Output = Result<Option<ProduceResponse>>> + Send>>;

/// Writes this broker's requests in drain order and hands each one's response, in the
/// same order, to the broker's [`completion_task`].
async fn broker_task(shared: Arc<Shared>, node: i32, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let (completions, rx) = mpsc::unbounded_channel();
    tokio::spawn(completion_task(Arc::clone(&shared), rx));
    while let Some(job) = jobs.recv().await {
        let request = build_request(&shared, &job.batches);
        let started = Instant::now();
        let records: usize = job.batches.iter().map(Batch::record_count).sum();
        let span = tracing::debug_span!(
            "produce",
            broker = node,
            batches = job.batches.len(),
            records
        );
        let payloads: Vec<Bytes> = job
            .batches
            .iter()
            .filter_map(|b| b.payload.clone())
            .collect();
        let outcome = write_request(&shared, node, &request, &payloads)
            .instrument(span.clone())
            .await;
        // The completion task outlives this loop: it ends when `completions` is dropped.
        let _ = completions.send((job, started, outcome, span));
    }
}

/// Writes one request; its outcome is the response still to come (or already known).
async fn write_request(
    shared: &Shared,
    node: i32,
    request: &ProduceRequest,
    payloads: &[Bytes],
) -> Outcome {
    let conn = match shared.cluster.broker(node).await {
        Ok(c) => c,
        Err(e) => return Box::pin(std::future::ready(Err(e))),
    };
    if shared.config.acks == Acks::None {
        let sent = conn.send_no_response(request).await.map(|()| None);
        return Box::pin(std::future::ready(sent));
    }
    // Transaction version 1 on the wire: a transactional Produce v12+ would ask a
    // broker with transaction version 2 to add partitions implicitly (KIP-890).
    let cap = if shared.txn.is_some() {
        TV1_PRODUCE_MAX
    } else {
        i16::MAX
    };
    let version = match conn.api_versions().version_for(ApiKey::Produce) {
        Ok(v) => v.min(cap),
        Err(e) => return Box::pin(std::future::ready(Err(e))),
    };
    match conn.dispatch_versioned(request, version, payloads).await {
        Ok(response) => Box::pin(async move { response.await.map(Some) }),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}

/// Completes one broker's requests in the order they were written. The connection
/// answers in that order anyway, so awaiting one response at a time costs nothing, and
/// it keeps the promise `send_with` makes: the callbacks of a partition run in order.
async fn completion_task(
    shared: Arc<Shared>,
    mut outcomes: mpsc::UnboundedReceiver<(Job, Instant, Outcome, tracing::Span)>,
) {
    while let Some((job, started, outcome, span)) = outcomes.recv().await {
        let result = outcome.instrument(span.clone()).await;
        let _entered = span.enter();
        complete_job(&shared, job, result, Some(started));
    }
}

fn build_request(shared: &Shared, batches: &[Batch]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for b in batches {
        let data = PartitionProduceData::default()
            .with_index(b.partition)
            .with_records(b.payload.clone());
        match topics.iter_mut().find(|t| t.name.0.as_str() == &*b.topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(topic_name(&b.topic))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_transactional_id(
            shared
                .config
                .transactional_id
                .as_ref()
                .map(|id| TransactionalId(StrBytes::from_string(id.clone()))),
        )
        .with_acks(shared.config.acks.wire())
        .with_timeout_ms(wire_ms(shared.config.request_timeout))
        .with_topic_data(topics)
}

/// Gets a producer id, retrying with backoff until it works or the producer stops.
async fn init_producer_id(shared: Arc<Shared>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match idempotence::init_producer_id(&shared.cluster, shared.config.delivery_timeout).await {
            Ok((id, epoch)) => {
                debug!(producer_id = id, epoch, "producer id assigned");
                if let Some(idem) = shared.state().idem.as_mut() {
                    idem.state = ProducerIdState::Ready { id, epoch };
                }
                shared.wake.notify_one();
                return;
            }
            Err(e) => {
                warn!(error = %e, attempt, "InitProducerId failed; retrying");
                if shared.stopped.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(shared.config.retry_backoff_for(attempt)).await;
            }
        }
    }
}
