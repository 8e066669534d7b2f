//! When the runner stops: a token anyone can cancel, and optionally SIGINT / SIGTERM.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation token for [`Pipeline`](super::Pipeline), in two steps.
///
/// - [`cancel`](Self::cancel): the runner stops fetching, drains the records in flight
///   (bounded by the drain timeout), commits, leaves the group and flushes the producer;
///   `run` then returns `Ok(())`.
/// - [`force`](Self::force): the runner stops at once, wherever it is (also in the middle
///   of that drain), and `run` returns [`RunError::Interrupted`](super::RunError::Interrupted):
///   records in flight are abandoned uncommitted, as after a crash.
///
/// The library never ends the process: a caller that wants a second Ctrl-C to exit
/// matches `RunError::Interrupted` and calls `std::process::exit` itself. Clones share
/// the token; both steps are idempotent, and forcing implies cancelling.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// [`State`], as a `watch` so any number of waiters see it, late ones too.
    tx: Arc<watch::Sender<State>>,
}

/// How far the shutdown went; it only ever moves forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Running,
    Cancelled,
    Forced,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(State::Running);
        Shutdown { tx: Arc::new(tx) }
    }

    /// A token cancelled by the first SIGINT or SIGTERM (the runner drains) and forced by
    /// a second one (the runner stops at once and `run` returns
    /// [`RunError::Interrupted`](super::RunError::Interrupted); the process goes on, see
    /// the [type docs](Self)). Must be called within a Tokio runtime. On non-Unix targets
    /// only Ctrl-C is watched.
    pub fn on_signals() -> Self {
        let token = Shutdown::new();
        let signals = token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: draining (a second signal stops at once)");
            signals.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: stopping without draining");
            signals.force();
        });
        token
    }

    /// Asks the runner to stop after draining.
    pub fn cancel(&self) {
        self.advance(State::Cancelled);
    }

    /// Asks the runner to stop at once, without draining or committing.
    pub fn force(&self) {
        self.advance(State::Forced);
    }

    /// Whether [`cancel`](Self::cancel) (or [`force`](Self::force)) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow() >= State::Cancelled
    }

    /// Whether [`force`](Self::force) was called.
    pub fn is_forced(&self) -> bool {
        *self.tx.borrow() == State::Forced
    }

    /// Resolves once cancelled (at once if it already is). Cancel-safe.
    pub async fn cancelled(&self) {
        self.reached(State::Cancelled).await;
    }

    /// Resolves once forced (at once if it already is). Cancel-safe.
    pub async fn forced(&self) {
        self.reached(State::Forced).await;
    }

    fn advance(&self, to: State) {
        self.tx.send_if_modified(|state| {
            let moved = *state < to;
            *state = (*state).max(to);
            moved
        });
    }

    async fn reached(&self, state: State) {
        let mut rx = self.tx.subscribe();
        // `wait_for` only fails when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|s| *s >= state).await;
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

    #[tokio::test]
    async fn forcing_cancels_too_and_a_cancel_does_not_undo_it() {
        let token = Shutdown::new();
        let waiter = token.clone();
        let forced = tokio::spawn(async move { waiter.forced().await });
        token.cancel();
        assert!(token.is_cancelled() && !token.is_forced());
        tokio::task::yield_now().await;
        assert!(!forced.is_finished(), "a cancel does not force");
        token.force();
        forced.await.unwrap();
        token.cancel();
        assert!(token.is_forced() && token.is_cancelled());
        token.cancelled().await;
    }
}
