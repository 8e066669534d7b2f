//! Where records are produced: any `tower::Service<OutputRecord>`, and an in-memory one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use std::future::Ready;
use tower::Service;

use crate::{BoxError, Delivered, OutputRecord};

/// An in-memory sink for tests and examples: it keeps every record it is sent and assigns
/// offsets per topic-partition from 0. Clones share the records.
///
/// [`ProducerSink`](crate::runner::ProducerSink) is the Kafka sink of the same shape:
/// `Service<OutputRecord, Response = Delivered, Error = BoxError>`.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<OutputRecord>>>,
    failing: Arc<AtomicBool>,
}

/// [`MemorySink`] refused a record because it was told to fail.
#[derive(Debug, thiserror::Error)]
#[error("in-memory sink is failing")]
pub struct SinkFailing;

impl MemorySink {
    /// An empty sink that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record sent so far, in order.
    pub fn records(&self) -> Vec<OutputRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// While `true`, every send fails with [`SinkFailing`].
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Service<OutputRecord> for MemorySink {
    type Response = Delivered;
    type Error = BoxError;
    type Future = Ready<Result<Delivered, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, record: OutputRecord) -> Self::Future {
        if self.failing.load(Ordering::SeqCst) {
            return std::future::ready(Err(SinkFailing.into()));
        }
        let result = match self.records.lock() {
            Ok(mut records) => {
                let offset = records
                    .iter()
                    .filter(|r| r.topic == record.topic && r.partition == record.partition)
                    .count() as i64;
                let delivered = Delivered {
                    topic: record.topic.clone(),
                    partition: record.partition.unwrap_or(0),
                    offset,
                };
                records.push(record);
                Ok(delivered)
            }
            Err(_) => Err("in-memory sink lock poisoned".into()),
        };
        std::future::ready(result)
    }
}
