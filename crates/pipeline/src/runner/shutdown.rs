//! When the runner stops: a token anyone can cancel, and optionally SIGINT / SIGTERM.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation token for [`Pipeline`](super::Pipeline): once cancelled, the runner
/// stops fetching, drains the records in flight, commits, leaves the group and flushes
/// the producer. Clones share the token; cancelling is idempotent.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// `true` once cancelled. A `watch` so any number of waiters see it, late ones too.
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Shutdown { tx: Arc::new(tx) }
    }

    /// A token cancelled by the first SIGINT or SIGTERM; a second one exits the process
    /// at once (status 130), without draining. Must be called within a Tokio runtime.
    /// On non-Unix targets only Ctrl-C is watched.
    pub fn on_signals() -> Self {
        let token = Shutdown::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: draining (a second signal exits at once)");
            cancel.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        });
        token
    }

    /// Asks the runner to stop.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once cancelled (at once if it already is). Cancel-safe.
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // `wait_for` only fails when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|c| *c).await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install SIGINT/SIGTERM handlers; falling back to Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_wakes_waiters_early_and_late() {
        let token = Shutdown::new();
        let waiter = token.clone();
        let early = tokio::spawn(async move { waiter.cancelled().await });
        assert!(!token.is_cancelled());
        token.cancel();
        early.await.unwrap();
        token.cancelled().await;
        assert!(token.is_cancelled());
    }
}
