//! The runner: drives `sluice-wire`'s consumer into a stack and its producer out of it.
//!
//! [`Pipeline::run`] subscribes to the input topics and loops:
//!
//! 1. **Admit.** It takes the next record only while fewer than
//!    [`max_in_flight`](Pipeline::max_in_flight) records are *admitted and not yet
//!    committed*, then waits for the stack's `poll_ready`. While the stack stays not ready
//!    for longer than [`pause_after`](Pipeline::pause_after) (an open breaker, or a full
//!    concurrency bound) it pauses every assigned partition (lag grows visibly) and
//!    resumes them once the stack is ready again. Pausing is polling: while it takes no
//!    record the runner tells the consumer the member is alive
//!    ([`Consumer::keep_alive`](sluice_wire::consumer::Consumer::keep_alive)), so the member stays in the group however long the
//!    stack stays not ready, past `max.poll.interval.ms`.
//! 2. **Process and produce.** Each admitted record runs in its own task: the stack's
//!    answer is produced through the [`Producer`](sluice_wire::producer::Producer), and only when every output is
//!    acknowledged by the broker is the record marked done in the commit tracker. (The
//!    runner does this tracking itself; do not add a [`CommitLayer`](crate::commit::CommitLayer)
//!    to the stack you give it, whose `Ok` comes before the outputs are produced.)
//! 3. **Commit.** Every [`commit_interval`](Pipeline::commit_interval), and at once when
//!    the in-flight bound is reached, it commits the tracker's committable offsets (one
//!    commit in flight at a time). Since admitted-and-uncommitted records are bounded, a
//!    crash redelivers at most `max_in_flight` records. (In exactly-once mode the offsets
//!    commit inside the producer's transaction instead: see [below](#exactly-once).)
//!
//! The stack's error is any `Into<`[`PipelineError`](crate::PipelineError)`>`: your own
//! [`Classify`](crate::Classify) error, a [`BoxError`](crate::BoxError), or a
//! `PipelineError` (every layer of this crate answers with one).
//!
//! Errors out of the stack: a [`Retriable`](crate::Disposition::Retriable) one (retries
//! spent, an output not acknowledged for a retriable reason) is never skipped, and never
//! given up on: the partition is rewound to the record (`seek`) and it is fetched again,
//! after a backoff ([`redelivery_backoff`](Pipeline::redelivery_backoff)) that doubles
//! with each consecutive failure of the partition, during which the partition is paused.
//! There is no limit on redeliveries ([`PipelineStats::redelivered`] counts them). That
//! partition's later records admitted before the rewind are *superseded*: they are
//! fetched again too, so their tasks drop their answers at once (nothing produced,
//! nothing committed). With the concurrency layer's per-partition order such a record is
//! still queued behind the failed one inside its answer future, so dropping that future
//! means its service is never called: a dead letter among them is written once, when it
//! is fetched again, not twice. The concurrency layer starts the next record when the
//! failed record's answer future is *dropped*, and the task marks the rewind before
//! dropping it, so no worker thread can start a queued record in between. What remains:
//! a record whose inner call had already started (per-key or unordered concurrency lets
//! later records overlap the failed one) keeps whatever it did, a dead letter included,
//! and does it again when it is fetched again (the [`dlq`](crate::dlq#duplicate-dead-letters)
//! docs say what readers of the dead-letter topic should do). Exactly-once mode aborts
//! such writes with the transaction.
//! [`Fatal`](crate::Disposition::Fatal), and a dead-letter error no DLQ layer handled,
//! stop the pipeline with [`RunError::Fatal`].
//!
//! **Outputs the broker refuses.** A producer error on an output is classified like any
//! other failure ([`output`] has the table): a retriable one is redelivered with the
//! backoff above; an output the broker will never accept (too large for the topic's
//! `max.message.bytes`, INVALID_RECORD such as a null key on a compacted topic, not
//! authorized) is this record's failure: it is dead-lettered or stops the pipeline, as
//! [`on_rejected_output`](Pipeline::on_rejected_output) says, and never loops.
//!
//! **Outputs that can never be written but are not refused.** An output whose producer
//! error stays *retriable* is redelivered as long as it fails, with no limit: it is never
//! dead-lettered and does not stop the pipeline. The common cases are an output topic
//! that does not exist (and is not auto-created) and a
//! [`partition`](crate::OutputRecord::partition) the topic does not have: each attempt's
//! `send` waits the producer's `max.block.ms` (default 60 s) for metadata, fails with
//! `UnknownTopicOrPartition`, and the record is fetched again after the backoff. Its
//! partition makes no progress from that record on (the other partitions go on); the lag
//! grows and [`PipelineStats::redelivered`] climbs, which is what to alert on. It
//! resumes by itself once the topic or partition exists; otherwise fix the stack and
//! restart (the record was never committed). The same holds for a dead-letter topic that
//! does not exist: the dead letter's write fails retriably and its record is redelivered.
//!
//! **Rebalances.** On revoke the listener stops admitting records of those partitions,
//! waits for their records in flight (at most [`drain_timeout`](Pipeline::drain_timeout)),
//! commits what finished and releases them. On lost it releases them without committing.
//!
//! **End of input.** With [`stop_at_end`](Pipeline::stop_at_end) `run` returns once
//! every assigned partition has been read to its end and every record admitted is done
//! and committed: for batch jobs and tests.
//!
//! **Missing topics.** A subscribed topic the cluster does not have is not an error: the
//! consumer warns once, the others are read, and the topic is read once it is created.
//! [`PipelineStats::missing_topics`] lists such topics and the
//! [`MISSING_TOPICS`](crate::metrics::MISSING_TOPICS) gauge counts them.
//!
//! **Shutdown.** When the [`Shutdown`] token is cancelled (for example by
//! [`Shutdown::on_signals`]: the first SIGINT/SIGTERM) the runner stops fetching, drains
//! (bounded), commits, leaves the group (unless the member is static: see
//! [restarts](#restarts-and-static-membership)) and flushes the producer. When it is *forced*
//! ([`Shutdown::force`]; a second signal) the runner stops at once and `run` returns
//! [`RunError::Interrupted`]: the library never exits the process, the caller decides.
//!
//! **Output order.** A record's outputs are handed to the producer only after those of
//! the record admitted before it in the same partition (or once that one ended without
//! any), whatever the concurrency layer lets overlap; so outputs keep the input order per
//! partition (and, through the producer's partitioner, per key). The concurrency layer
//! alone does not ensure it: it lets the next record run as soon as an answer is
//! dropped, before the task holding that answer has sent its outputs.
//!
//! # Restarts and static membership
//!
//! An instance that crashes (SIGKILL, out of memory, a lost host) does not leave its
//! group: the coordinator gives its partitions to no one until the member's
//! `session.timeout.ms` has passed (45 s by default). A *dynamic* member (the default)
//! that restarts joins as a new member, so its predecessor's partitions sit idle, lag
//! growing, until that session expires and a rebalance hands them out.
//!
//! A *static* member (KIP-345) does not wait. Set `group.instance.id` on the consumer
//! config you pass to [`Pipeline::new`]:
//!
//! ```
//! use std::time::Duration;
//!
//! use sluice_wire::consumer::ConsumerConfig;
//!
//! let consumer = ConsumerConfig::new("127.0.0.1:9092")
//!     .group_id("billing")
//!     // One id per instance, stable across its restarts (a StatefulSet's pod name, a
//!     // host name); two instances running with one id fence each other.
//!     .group_instance_id("billing-1")
//!     // How long a restart may take and keep the partitions.
//!     .session_timeout(Duration::from_secs(30));
//! assert_eq!(consumer.group_instance_id.as_deref(), Some("billing-1"));
//! ```
//!
//! (`ConsumerConfig::set("group.instance.id", ..)` does the same from Java-style
//! properties.) A restart within `session.timeout.ms` takes the old member's place: it
//! gets the same partitions back at once, with no rebalance of the rest of the group,
//! and resumes from the last commit (at-least-once, redelivering at most
//! [`max_in_flight`](Pipeline::max_in_flight) records). The price: a static member does
//! not leave on a clean shutdown either, so an instance stopped for good keeps its
//! partitions idle until its session times out; choose `session.timeout.ms` as the
//! longest restart to ride out, within the broker's `group.min.session.timeout.ms` and
//! `group.max.session.timeout.ms` (6 s and 30 min by default). In exactly-once mode give
//! each instance a stable `group.instance.id` as well as its stable `transactional.id`:
//! the first keeps its partitions across a restart, the second fences its predecessor's
//! producer.
//!
//! # Exactly-once
//!
//! With [`exactly_once(true)`](Pipeline::exactly_once) and a producer with a
//! `transactional.id`, the input offsets commit inside the producer's transaction instead
//! of through the consumer: a `read_committed` reader of the outputs (and of the dead
//! letters) sees every input record's writes exactly once, across crashes, restarts,
//! rebalances and retriable failures. As in Java's consume-transform-produce loop and
//! Spring Kafka's transactional listener containers:
//!
//! - **Setup.** `run` calls `init_transactions` (unless you did), before joining the
//!   group: that fences an older instance with the same `transactional.id` and aborts its
//!   open transaction. It sets the consumer's `isolation.level` to `read_committed`:
//!   input written in transactions is read committed-only, and committed offsets are
//!   fetched with `require_stable`, so a partition's new owner waits for a transaction
//!   still committing its offsets instead of reading around it. Give each instance its
//!   own `transactional.id`, stable across its restarts (a restart then fences its
//!   predecessor); members of one group are told apart by the group generation
//!   (KIP-447), not by the id.
//! - **Many records per transaction.** A transaction begins just before a record is
//!   admitted while none is open. When the [`commit_interval`](Pipeline::commit_interval)
//!   passes or the in-flight bound is reached, admission stops, the records in flight
//!   finish (their outputs are sent inside the transaction), the finished offsets are
//!   added with `send_offsets_to_transaction` and the consumer's group metadata (the
//!   group coordinator refuses a member that lost its partitions), and the transaction
//!   commits; then admission resumes. Each transaction costs that drain and a few
//!   coordinator round trips; `read_committed` readers see outputs at the commit.
//! - **Dead letters** join the transaction when the
//!   [`DeadLetterLayer`](crate::dlq::DeadLetterLayer) writes through a [`ProducerSink`]
//!   of the same producer (another producer would write them outside it, at-least-once).
//! - **Aborts.** A retriable record failure, a failed produce, a failed commit, lost
//!   partitions, or records still running [`drain_timeout`](Pipeline::drain_timeout)
//!   after the transaction began to end abort it: the records still running drop their
//!   answers, and every partition with records in the transaction is sought back to where
//!   the transaction started in it and read again ([`PipelineStats::aborts`]). Keep
//!   `drain_timeout` below the producer's `transaction.timeout.ms`, so a stuck record
//!   (a long-open breaker) aborts the transaction before the coordinator does. Records of
//!   an aborted transaction are processed again: effects of your service outside this
//!   producer's writes are at-least-once.
//! - **Fatal producer errors** (fenced by a newer instance with the same id, and the rest
//!   of [`Error::is_fatal_producer_error`](sluice_wire::Error::is_fatal_producer_error))
//!   stop the pipeline with [`RunError::Transaction`].
//! - **Rebalances.** On revoke the listener asks the run loop to end the transaction and
//!   waits: admission stops, the records in flight finish (bounded by `drain_timeout`),
//!   the transaction commits with their offsets (or aborts), and only then are the
//!   partitions released. On lost the transaction aborts. The listener runs on the
//!   consumer's group task and waits on a channel the run loop answers; the run loop
//!   never waits for the group task, so the two cannot deadlock.
//! - **Shutdown** drains, commits the open transaction, and leaves the group; after a
//!   fatal error the open transaction is aborted instead.
//!
//! # Files
//!
//! `builder.rs` ([`Pipeline`] and its settings; `run` sets up), `run_loop.rs` (admission,
//! events, pause and backoff), `close.rs` (drain, final commit, leave). The commit modes
//! are one `CommitStrategy` (`strategy.rs`): `at_least_once.rs` (consumer commits, polled
//! by the loop) and `transaction.rs` (exactly-once). `state.rs` is what the loop, the
//! record tasks (`task.rs`) and the rebalance listener (`rebalance.rs`) share, with the
//! one offset tracker ([`CommitTracker`](crate::commit::CommitTracker)).

mod at_least_once;
mod builder;
mod close;
mod error;
mod event;
pub mod output;
mod rebalance;
mod run_loop;
mod shutdown;
mod sink;
mod state;
mod stats;
mod strategy;
mod task;
mod transaction;

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_wire::consumer::{OffsetAndMetadata, TopicPartition};

pub use self::builder::Pipeline;
pub use self::error::RunError;
pub use self::output::{OutputRejected, RejectedOutput};
pub use self::shutdown::Shutdown;
pub(crate) use self::sink::producer_record;
pub use self::sink::ProducerSink;
pub use self::stats::PipelineStats;

fn commit_map(offsets: &[(Arc<str>, i32, i64)]) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
    offsets
        .iter()
        .map(|(t, p, o)| {
            (
                TopicPartition::new(t.as_ref(), *p),
                OffsetAndMetadata::new(*o),
            )
        })
        .collect()
}
