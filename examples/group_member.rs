//! A consumer-group member as its own process, for the failover tests that SIGKILL
//! members (`tests/replicated.rs`, R3). Not a demo: it prints what it consumed and what
//! it gave up, so a test can count what was lost and what came twice.
//!
//! It reads `MEMBER_TOPIC` in group `MEMBER_GROUP` from the cluster at
//! `SLUICE_BOOTSTRAP`, at most `MEMBER_BATCH` (default 50) records at a time, and for
//! every batch:
//!
//! 1. prints each record as `R <partition> <offset> <value>` and flushes stdout: from
//!    here on the record counts as processed;
//! 2. commits the offsets after the batch and waits for the answer (`Consumer::commit`
//!    retries retriable failures, such as a coordinator that moved, up to the request
//!    timeout);
//! 3. if the commit fails all the same (the group moved on: the partitions went to
//!    another member), prints `A <records>`: the next owner reads those records again.
//!
//! So at any moment at most one batch is printed and not committed: a SIGKILL re-delivers
//! at most `MEMBER_BATCH` records, and every other re-delivery was announced with `A`.
//! Runs until killed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use sluice::wire::consumer::{Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let bootstrap = var("SLUICE_BOOTSTRAP")?;
    let topic = var("MEMBER_TOPIC")?;
    let group = var("MEMBER_GROUP")?;
    let batch: usize = std::env::var("MEMBER_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(50);
    let consumer = Consumer::new(
        ConsumerConfig::new(&bootstrap)
            .group_id(&group)
            .auto_offset_reset(OffsetReset::Earliest)
            .session_timeout(Duration::from_secs(6))
            .heartbeat_interval(Duration::from_millis(500))
            .fetch_max_wait(Duration::from_millis(100)),
    )
    .await?;
    consumer.subscribe([topic])?;
    let mut out = std::io::stdout().lock();
    loop {
        // The first record of a batch may wait; the rest only take what is at hand.
        let mut records = vec![consumer.recv().await?];
        while records.len() < batch {
            match tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await {
                Ok(r) => records.push(r?),
                Err(_) => break,
            }
        }
        let mut offsets = BTreeMap::new();
        for r in &records {
            let value = String::from_utf8_lossy(r.value().map_or(&b""[..], |v| &v[..]));
            writeln!(out, "R {} {} {value}", r.partition(), r.offset())?;
            offsets.insert(r.topic_partition(), OffsetAndMetadata::new(r.offset() + 1));
        }
        out.flush()?;
        match consumer.commit(&offsets).await {
            Ok(()) => {}
            Err(e) if !e.is_fatal() => {
                writeln!(out, "A {}", records.len())?;
                out.flush()?;
                eprintln!(
                    "group_member: commit failed, {} records given up: {e}",
                    records.len()
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}
