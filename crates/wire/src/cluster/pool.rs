//! One connection per broker, each opened on its own: a broker that is down or
//! blackholed never holds up connects to the others, and after a failed connect it is
//! skipped until its reconnect backoff has passed (Java: `reconnect.backoff.ms`, doubling
//! per failure up to `reconnect.backoff.max.ms`, with 20 % jitter), so callers fail at
//! once instead of re-dialling a dead broker in a loop.
//!
//! The pool only keeps state; [`Cluster::broker`](super::Cluster::broker) drives it and
//! asks for a metadata refresh whenever a broker was lost or could not be reached (the
//! leaders it had are likely elsewhere now).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use crate::error::Error;
use crate::net::BrokerConnection;
use crate::sync::lock;

/// What the pool knows about one broker.
#[derive(Default)]
struct Slot {
    conn: Option<BrokerConnection>,
    /// Held across one connect, so concurrent callers share its outcome.
    gate: Arc<AsyncMutex<()>>,
    /// Connects that failed in a row.
    failures: u32,
    /// No new connect before this, after a failure.
    retry_at: Option<Instant>,
    last_error: Option<Error>,
    attempts: u64,
}

/// What [`Pool::lookup`] found.
pub(super) enum Lookup {
    /// A live connection.
    Live(BrokerConnection),
    /// The broker failed recently; this is why. Do not dial it yet.
    BackingOff(Error),
    /// No connection: connect (holding the gate). `lost` is true when a connection had
    /// just died (a disconnect: metadata should be refreshed).
    Connect {
        gate: Arc<AsyncMutex<()>>,
        lost: bool,
    },
}

/// The per-broker connections of a cluster.
pub(super) struct Pool {
    slots: Mutex<HashMap<i32, Slot>>,
    backoff: Duration,
    backoff_max: Duration,
}

impl Pool {
    pub(super) fn new(backoff: Duration, backoff_max: Duration) -> Self {
        Pool {
            slots: Mutex::new(HashMap::new()),
            backoff,
            backoff_max: backoff_max.max(backoff),
        }
    }

    pub(super) fn lookup(&self, node: i32) -> Lookup {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(node).or_default();
        let mut lost = false;
        if let Some(conn) = &slot.conn {
            if !conn.is_dead() {
                return Lookup::Live(conn.clone());
            }
            slot.conn = None;
            lost = true;
        }
        if let (Some(at), Some(e)) = (slot.retry_at, &slot.last_error) {
            if Instant::now() < at {
                return Lookup::BackingOff(e.clone());
            }
        }
        Lookup::Connect {
            gate: Arc::clone(&slot.gate),
            lost,
        }
    }

    /// Any live pooled connection.
    pub(super) fn any_live(&self) -> Option<BrokerConnection> {
        lock(&self.slots)
            .values()
            .filter_map(|s| s.conn.as_ref())
            .find(|c| !c.is_dead())
            .cloned()
    }

    pub(super) fn attempt(&self, node: i32) {
        lock(&self.slots).entry(node).or_default().attempts += 1;
    }

    pub(super) fn connected(&self, node: i32, conn: BrokerConnection) {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(node).or_default();
        slot.conn = Some(conn);
        slot.failures = 0;
        slot.retry_at = None;
        slot.last_error = None;
    }

    /// Records a failed connect; returns the backoff before the next one.
    pub(super) fn failed(&self, node: i32, error: Error) -> Duration {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(node).or_default();
        slot.failures = slot.failures.saturating_add(1);
        let wait = self.backoff_after(slot.failures);
        slot.retry_at = Some(Instant::now() + wait);
        slot.last_error = Some(error);
        wait
    }

    /// `backoff * 2^(failures-1)`, capped, with ±20 % jitter.
    fn backoff_after(&self, failures: u32) -> Duration {
        crate::backoff::exponential(self.backoff, self.backoff_max, failures)
    }

    /// Connect attempts made to `node` so far.
    pub(super) fn attempts(&self, node: i32) -> u64 {
        lock(&self.slots).get(&node).map_or(0, |s| s.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_to_the_cap_and_resets_on_success() {
        let pool = Pool::new(Duration::from_millis(50), Duration::from_secs(1));
        let e = Error::no_broker("down");
        let waits: Vec<Duration> = (0..8).map(|_| pool.failed(7, e.clone())).collect();
        assert!(waits[0] >= Duration::from_millis(40) && waits[0] <= Duration::from_millis(60));
        assert!(waits[1] >= Duration::from_millis(80) && waits[1] <= Duration::from_millis(120));
        for w in &waits[5..] {
            assert!(
                *w >= Duration::from_millis(800) && *w <= Duration::from_millis(1200),
                "{w:?}"
            );
        }
        assert!(matches!(pool.lookup(7), Lookup::BackingOff(_)));
        // Another broker is not affected.
        assert!(matches!(
            pool.lookup(8),
            Lookup::Connect { lost: false, .. }
        ));
    }
}
