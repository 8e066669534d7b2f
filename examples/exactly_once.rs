//! Exactly-once consume-transform-produce: read an input topic in a consumer group,
//! upper-case each value, write it to an output topic, and commit the input offsets in
//! the same transaction as the output records. Kill it at any moment and start it again:
//! a `read_committed` reader of the output sees every input record transformed exactly
//! once.
//!
//! ```text
//! SLUICE_BOOTSTRAP=127.0.0.1:19092 cargo run --example exactly_once -- <input> <output> <group> <transactional-id>
//! ```
//!
//! Environment: `EOS_BATCH` records per transaction (default 500), `EOS_IDLE_MS` exit
//! after this long without input (default 5000). On exit it prints one line of figures
//! to stderr: records, transactions, seconds, transactions/s and records/s.
//!
//! Why it survives SIGKILL at any point:
//! - `init_transactions` runs before the consumer joins: it fences a previous instance
//!   with the same transactional id and aborts its open transaction, output and offsets
//!   together.
//! - The consumer reads committed offsets with `require_stable` (read_committed), so it
//!   resumes exactly after the last committed transaction.
//! - The group instance id is static, so a restarted instance takes its predecessor's
//!   place without waiting for the session timeout, and the group coordinator fences the
//!   predecessor's offset commits (KIP-447).
//! - Output records keep their input partition, so order per input partition holds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice::wire::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata, OffsetReset, TopicPartition,
};
use sluice::wire::partition_client::IsolationLevel;
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env_number(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse()
            .map_err(|_| format!("{name}={v} is not a number"))?),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bootstrap =
        std::env::var("SLUICE_BOOTSTRAP").map_err(|_| "set SLUICE_BOOTSTRAP=host:port")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, group, txn_id] = <[String; 4]>::try_from(args)
        .map_err(|_| "usage: exactly_once <input> <output> <group> <transactional-id>")?;
    let batch = usize::try_from(env_number("EOS_BATCH", 500)?)?.max(1);
    let idle = Duration::from_millis(env_number("EOS_IDLE_MS", 5000)?);

    // The producer first: fencing the previous instance aborts its open transaction, so
    // its pending offsets stop blocking the consumer's OffsetFetch.
    let producer = Producer::new(
        ProducerConfig::new(&bootstrap)
            .transactional_id(txn_id.clone())
            .transaction_timeout(Duration::from_secs(30)),
    )
    .await?;
    producer.init_transactions().await?;

    let consumer = Consumer::new(
        ConsumerConfig::new(&bootstrap)
            .group_id(group)
            .group_instance_id(format!("{txn_id}-member"))
            .isolation_level(IsolationLevel::ReadCommitted)
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .session_timeout(Duration::from_secs(10))
            .heartbeat_interval(Duration::from_millis(500))
            .fetch_max_wait(Duration::from_millis(50)),
    )
    .await?;
    consumer.subscribe([input])?;

    let (mut records, mut transactions) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    let mut last_commit = Instant::now();
    loop {
        // A batch: wait up to `idle` for the first record, then take what arrives
        // within a short lull, up to `batch` records.
        let first = match tokio::time::timeout(idle, consumer.recv()).await {
            Ok(r) => r?,
            Err(_) => break,
        };
        started.get_or_insert_with(Instant::now);
        let mut input = vec![first];
        while input.len() < batch {
            match tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await {
                Ok(r) => input.push(r?),
                Err(_) => break,
            }
        }
        match transform(&producer, &consumer, &output, &input).await {
            Ok(()) => {
                records += input.len() as u64;
                transactions += 1;
                last_commit = Instant::now();
            }
            Err(e) if e.is_abortable() => {
                eprintln!("exactly_once: transaction failed ({e}); aborting and retrying");
                producer.abort().await?;
                rewind(&consumer, &input)?;
            }
            // Fenced by a newer instance, or otherwise dead: stop.
            Err(e) => return Err(e.into()),
        }
    }
    let secs = started.map_or(0.0, |s| (last_commit - s).as_secs_f64());
    eprintln!(
        "exactly_once: {records} records in {transactions} transactions in {secs:.2} s \
         ({:.1} transactions/s, {:.0} records/s)",
        transactions as f64 / secs.max(1e-9),
        records as f64 / secs.max(1e-9)
    );
    producer.close(Duration::from_secs(30)).await?;
    consumer.close().await?;
    Ok(())
}

/// One transaction: the transformed records and the input offsets after them.
async fn transform(
    producer: &Producer,
    consumer: &Consumer,
    output: &str,
    input: &[ConsumerRecord],
) -> sluice::wire::Result<()> {
    producer.begin().await?;
    let mut next: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    for r in input {
        let value = r
            .value()
            .map(|v| String::from_utf8_lossy(v).to_uppercase())
            .unwrap_or_default();
        let mut out = ProducerRecord::new(output, value)
            .partition(r.partition())
            .header(
                "source-offset",
                Some(format!("{}-{}-{}", r.topic(), r.partition(), r.offset()).into()),
            );
        if let Some(k) = r.key() {
            out = out.key(k.clone());
        }
        // The delivery is checked by commit(), which fails if any record failed.
        let _delivery = producer.send(out).await?;
        next.insert(r.topic_partition(), OffsetAndMetadata::new(r.offset() + 1));
    }
    let Some(group) = consumer.group_metadata() else {
        unreachable!("the consumer was built with a group.id")
    };
    producer.send_offsets_to_transaction(&next, &group).await?;
    producer.commit().await
}

/// After an abort: read the batch again from its first record in each partition.
fn rewind(consumer: &Consumer, input: &[ConsumerRecord]) -> sluice::wire::Result<()> {
    let mut first: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in input {
        first.entry(r.topic_partition()).or_insert(r.offset());
    }
    for (tp, offset) in first {
        consumer.seek(&tp, offset)?;
    }
    Ok(())
}
