//! The negative cache: schema ids the registry said it does not have (40403), remembered
//! for a short time so a stream of records that all carry one bad id makes one request,
//! not one per record.
//!
//! Only for a while: an id can become known (a registry replica that had not caught up,
//! a schema restored from a backup), so the answer expires after the TTL.

use crate::sync;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many ids are remembered; a flood of distinct bad ids is not cached past
/// it (each costs its request), so memory stays bounded whatever the records carry.
const CAPACITY: usize = 4096;

/// Ids answered 40403, each with when that answer expires.
#[derive(Debug)]
pub(crate) struct UnknownIds {
    ttl: Duration,
    expiries: Mutex<HashMap<u32, Instant>>,
}

impl UnknownIds {
    /// Remember answers for `ttl` (zero: never).
    pub(crate) fn new(ttl: Duration) -> Self {
        UnknownIds {
            ttl,
            expiries: Mutex::new(HashMap::new()),
        }
    }

    /// Did the registry say, less than the TTL ago, that it has no schema `id`?
    pub(crate) fn contains(&self, id: u32) -> bool {
        let mut map = sync::lock(&self.expiries);
        match map.get(&id) {
            Some(&expiry) if Instant::now() < expiry => true,
            Some(_) => {
                map.remove(&id);
                false
            }
            None => false,
        }
    }

    /// The registry just said it has no schema `id`.
    pub(crate) fn insert(&self, id: u32) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = sync::lock(&self.expiries);
        if map.len() >= CAPACITY {
            map.retain(|_, &mut expiry| now < expiry);
            if map.len() >= CAPACITY {
                return;
            }
        }
        map.insert(id, now + self.ttl);
    }

    /// The id is known after all (a schema fetched by it).
    pub(crate) fn remove(&self, id: u32) {
        sync::lock(&self.expiries).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_a_zero_ttl_remembers_nothing() {
        let ids = UnknownIds::new(Duration::from_millis(30));
        assert!(!ids.contains(7));
        ids.insert(7);
        assert!(ids.contains(7));
        assert!(!ids.contains(8));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!ids.contains(7));
        ids.insert(7);
        ids.remove(7);
        assert!(!ids.contains(7));
        let never = UnknownIds::new(Duration::ZERO);
        never.insert(7);
        assert!(!never.contains(7));
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let ids = UnknownIds::new(Duration::from_secs(60));
        for id in 0..(CAPACITY as u32 + 100) {
            ids.insert(id);
        }
        assert_eq!(ids.expiries.lock().unwrap().len(), CAPACITY);
        assert!(ids.contains(0));
        assert!(!ids.contains(CAPACITY as u32 + 50));
    }
}
