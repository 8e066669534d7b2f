//! How a record's outcome reaches its sender: the channel behind a [`Delivery`], or a
//! callback run once the batch is acknowledged (no future, no channel per record).

use std::panic::{catch_unwind, AssertUnwindSafe};

use tokio::sync::oneshot;
use tracing::error;

use super::record::{Delivery, RecordMetadata};
use crate::error::{Error, Result};

/// A callback [`Producer::send_with`](super::Producer::send_with) runs with a record's
/// outcome.
pub(crate) type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;

/// Where one record's outcome goes.
pub(crate) enum Ack {
    /// To the [`Delivery`] the caller holds.
    Channel(oneshot::Sender<Result<RecordMetadata>>),
    /// To the caller's callback, on the task that read the response.
    Callback(Callback),
}

impl Ack {
    /// An ack for a channel, with the [`Delivery`] that receives it.
    pub(crate) fn channel() -> (Ack, Delivery) {
        let (tx, rx) = oneshot::channel();
        (Ack::Channel(tx), Delivery::new(rx))
    }

    /// Hands `outcome` over. A panicking callback is caught and logged: it must not take
    /// down the producer's task with the other records' outcomes.
    pub(crate) fn resolve(self, outcome: Result<RecordMetadata>) {
        match self {
            Ack::Channel(tx) => {
                // The Delivery was dropped: nobody wants the outcome.
                let _ = tx.send(outcome);
            }
            Ack::Callback(callback) => {
                if catch_unwind(AssertUnwindSafe(move || callback(outcome))).is_err() {
                    error!("a send_with callback panicked; the producer goes on");
                }
            }
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ack::Channel(_) => "Ack::Channel",
            Ack::Callback(_) => "Ack::Callback",
        })
    }
}

/// A buffered record's ack, resolved exactly once: by the batch's outcome, or (dropped
/// unresolved, say when the producer's task ends) with
/// [`ErrorKind::ProducerClosed`](crate::ErrorKind::ProducerClosed), so no callback is
/// silently forgotten.
#[derive(Debug)]
pub(crate) struct Pending(Option<Ack>);

impl Pending {
    pub(crate) fn new(ack: Ack) -> Self {
        Pending(Some(ack))
    }

    pub(crate) fn resolve(mut self, outcome: Result<RecordMetadata>) {
        if let Some(ack) = self.0.take() {
            ack.resolve(outcome);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(ack) = self.0.take() {
            ack.resolve(Err(Error::producer_closed(
                "the producer stopped before the record's outcome was known",
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_dropped_pending_ack_reports_the_producer_closed() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&seen);
        let pending = Pending::new(Ack::Callback(Box::new(move |outcome| {
            let e = outcome.expect_err("dropped unresolved");
            assert_eq!(e.kind(), crate::ErrorKind::ProducerClosed);
            counted.fetch_add(1, Ordering::SeqCst);
        })));
        drop(pending);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_callback_is_contained_and_runs_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let pending = Pending::new(Ack::Callback(Box::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("user code");
        })));
        pending.resolve(Err(Error::producer_closed("test")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
