//! Per-key ordering: each record waits for the one called before it with the same key.

use crate::sync;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::ConsumedRecord;

/// How records may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// One record at a time per partition, in call order (offset order, as the runner
    /// calls). Partitions run concurrently. The default: Kafka's own guarantee.
    #[default]
    PerPartition,
    /// One record at a time per key within a partition; different keys overlap. Keyless
    /// records are ordered per partition.
    PerKey,
    /// No ordering: only the in-flight bound applies.
    Unordered,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OrderKey {
    Partition(Arc<str>, i32),
    Key(Arc<str>, i32, Bytes),
}

impl OrderKey {
    pub(crate) fn of(record: &ConsumedRecord, ordering: Ordering) -> Option<Self> {
        match (ordering, &record.key) {
            (Ordering::Unordered, _) => None,
            (Ordering::PerKey, Some(key)) => Some(OrderKey::Key(
                record.topic.clone(),
                record.partition,
                key.clone(),
            )),
            (Ordering::PerKey, None) | (Ordering::PerPartition, _) => {
                Some(OrderKey::Partition(record.topic.clone(), record.partition))
            }
        }
    }
}

/// The tail of each key's chain: the receiver the next record with that key will wait on.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    tails: Mutex<HashMap<OrderKey, (u64, oneshot::Receiver<()>)>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Chains {
    /// Appends a record to its key's chain. Returns what to wait for (the predecessor's
    /// completion, if any) and the guard whose drop releases the successor.
    pub(crate) fn join(
        self: &Arc<Self>,
        key: OrderKey,
    ) -> (Option<oneshot::Receiver<()>>, ChainGuard) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut tails = sync::lock(&self.tails);
        let prev = tails.insert(key.clone(), (id, rx)).map(|(_, rx)| rx);
        drop(tails);
        (
            prev,
            ChainGuard {
                chains: self.clone(),
                key,
                id,
                _done: tx,
            },
        )
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tails.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// Held by a record's future until the future is dropped (not merely completed);
/// dropping it lets the next record with the same key proceed (the sender closes) and
/// forgets the key if no record joined after this one.
#[derive(Debug)]
pub(crate) struct ChainGuard {
    chains: Arc<Chains>,
    key: OrderKey,
    id: u64,
    _done: oneshot::Sender<()>,
}

impl Drop for ChainGuard {
    fn drop(&mut self) {
        let mut tails = sync::lock(&self.chains.tails);
        if tails.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            tails.remove(&self.key);
        }
    }
}
