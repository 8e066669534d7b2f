//! One request per key at a time: when many callers miss the cache for the same schema
//! at once (every partition's first record after a deploy), one asks the registry and
//! the others wait for its answer in the cache instead of asking too.

use crate::sync;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Per-key async locks, removed when their last holder is done.
#[derive(Debug)]
pub(crate) struct Flights<K> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

/// Held while the caller fetches; dropping it (also by cancelling the caller's future)
/// lets the next waiter in, which finds the cache filled or fetches itself.
pub(crate) struct Flight<'a, K: Hash + Eq + Clone> {
    flights: &'a Flights<K>,
    key: K,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// Wait until no other caller holds `key`, then hold it.
    pub(crate) async fn enter(&self, key: K) -> Flight<'_, K> {
        let lock = {
            let mut locks = sync::lock(&self.locks);
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let guard = Arc::clone(&lock).lock_owned().await;
        Flight {
            flights: self,
            key,
            lock,
            guard: Some(guard),
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Flight<'_, K> {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = sync::lock(&self.flights.locks);
        // Only the map and this flight hold the lock: nobody waits, forget the key.
        if locks
            .get(&self.key)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock) && Arc::strong_count(l) == 2)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_keys_are_forgotten() {
        let flights: Flights<u32> = Flights::default();
        let a = flights.enter(1).await;
        // Another key is not blocked.
        let b = flights.enter(2).await;
        drop(b);
        // The same key waits until the holder is gone.
        let waiting = flights.enter(1);
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(a);
        let again = waiting.await;
        drop(again);
        assert!(flights.locks.lock().unwrap().is_empty());
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::time::timeout(std::time::Duration::from_millis(20), f)
            .await
            .ok()
    }
}
