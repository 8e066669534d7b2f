//! Space-Saving heavy-hitter sketch with epoch decay.
//!
//! Space-Saving (Metwally, Agrawal, El Abbadi 2005) keeps `m` counters. A key already
//! counted is incremented; a new key takes over the smallest counter `c` and starts at
//! `c + 1` with error `c`. Every count overestimates the key's true count by at most its
//! error, and every error is at most `total / m`. So `count - error` is a lower bound of the
//! true count, off by at most `total / m`: a key whose true share exceeds
//! `threshold + 1/m` always has a lower bound above `threshold`.
//!
//! Per record: one probe of an open-addressing index keyed by the murmur2 hash the
//! partitioner computes anyway, and a sift in a min-heap of counters (usually zero or one
//! swap). Every `decay_interval` records all counts, errors and the total are halved, so
//! shares describe recent traffic and a key that cools down loses its place. Halving keeps
//! the heap order (it is monotone), so no re-heapify is needed.

/// Marks an empty slot in the index.
const EMPTY: u16 = u16::MAX;
/// The index is `u16`-addressed with one value reserved.
pub(crate) const MAX_CAPACITY: usize = 16_384;

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: Vec<u8>,
    hash: u32,
    pub(crate) count: u64,
    pub(crate) error: u64,
    heap_pos: u16,
    /// Hot-key state kept by the partitioner: hysteresis flag and round-robin turn.
    pub(crate) hot: bool,
    pub(crate) turn: u32,
}

impl Entry {
    /// Lower bound of the key's (decayed) count.
    pub(crate) fn guaranteed(&self) -> u64 {
        self.count - self.error
    }
}

#[derive(Debug)]
pub(crate) struct SpaceSaving {
    capacity: usize,
    decay_interval: u64,
    entries: Vec<Entry>,
    /// Entry indices, a min-heap by count.
    heap: Vec<u16>,
    /// Open addressing with linear probing: entry index or EMPTY.
    index: Vec<u16>,
    mask: usize,
    total: u64,
    since_decay: u64,
}

impl SpaceSaving {
    /// `capacity` is clamped to `1..=MAX_CAPACITY`; a `decay_interval` of 0 means never.
    pub(crate) fn new(capacity: usize, decay_interval: u64) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let slots = (capacity * 2).next_power_of_two();
        Self {
            capacity,
            decay_interval,
            entries: Vec::with_capacity(capacity),
            heap: Vec::with_capacity(capacity),
            index: vec![EMPTY; slots],
            mask: slots - 1,
            total: 0,
            since_decay: 0,
        }
    }

    /// Records seen (decayed), the denominator of shares.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn entry_mut(&mut self, i: usize) -> Option<&mut Entry> {
        self.entries.get_mut(i)
    }

    /// Counts one record of `key` (whose murmur2 hash is `hash`); returns its entry index.
    pub(crate) fn observe(&mut self, key: &[u8], hash: u32) -> usize {
        if self.decay_interval > 0 && self.since_decay >= self.decay_interval {
            self.decay();
        }
        self.total += 1;
        self.since_decay += 1;

        if let Some(i) = self.find(key, hash) {
            let e = &mut self.entries[i];
            e.count += 1;
            let pos = usize::from(e.heap_pos);
            self.sift_down(pos);
            return i;
        }

        if self.entries.len() < self.capacity {
            let i = self.entries.len();
            let pos = self.heap.len();
            self.entries.push(Entry {
                key: key.to_vec(),
                hash,
                count: 1,
                error: 0,
                heap_pos: pos as u16,
                hot: false,
                turn: 0,
            });
            self.heap.push(i as u16);
            self.sift_up(pos);
            self.index_insert(i);
            return i;
        }

        // Replace the smallest counter.
        let i = usize::from(self.heap[0]);
        self.index_remove(i);
        let e = &mut self.entries[i];
        let min = e.count;
        e.key.clear();
        e.key.extend_from_slice(key);
        e.hash = hash;
        e.count = min + 1;
        e.error = min;
        e.hot = false;
        e.turn = 0;
        self.sift_down(0);
        self.index_insert(i);
        i
    }

    fn decay(&mut self) {
        for e in &mut self.entries {
            e.count /= 2;
            e.error /= 2;
        }
        self.total /= 2;
        self.since_decay = 0;
    }

    fn find(&self, key: &[u8], hash: u32) -> Option<usize> {
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                return None;
            }
            let e = &self.entries[usize::from(slot)];
            if e.hash == hash && e.key == key {
                return Some(usize::from(slot));
            }
            pos = (pos + 1) & self.mask;
        }
    }

    fn index_insert(&mut self, i: usize) {
        let mut pos = self.entries[i].hash as usize & self.mask;
        while self.index[pos] != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = i as u16;
    }

    /// Backward-shift deletion keeps every probe chain unbroken without tombstones.
    fn index_remove(&mut self, i: usize) {
        let mut hole = self.entries[i].hash as usize & self.mask;
        while usize::from(self.index[hole]) != i {
            if self.index[hole] == EMPTY {
                return;
            }
            hole = (hole + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let slot = self.index[j];
            if slot == EMPTY {
                return;
            }
            let home = self.entries[usize::from(slot)].hash as usize & self.mask;
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index[hole] = slot;
                self.index[j] = EMPTY;
                hole = j;
            }
        }
    }

    fn count_at(&self, pos: usize) -> u64 {
        self.entries[usize::from(self.heap[pos])].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.entries[usize::from(self.heap[a])].heap_pos = a as u16;
        self.entries[usize::from(self.heap[b])].heap_pos = b as u16;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.count_at(parent) <= self.count_at(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.count_at(right) < self.count_at(left) {
                right
            } else {
                left
            };
            if self.count_at(pos) <= self.count_at(child) {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::murmur2::murmur2;

    fn observe(s: &mut SpaceSaving, key: &[u8]) -> usize {
        s.observe(key, murmur2(key) as u32)
    }

    fn check_invariants(s: &SpaceSaving) {
        for (pos, &i) in s.heap.iter().enumerate() {
            assert_eq!(usize::from(s.entries[usize::from(i)].heap_pos), pos);
            if pos > 0 {
                assert!(s.count_at((pos - 1) / 2) <= s.count_at(pos));
            }
        }
        for (i, e) in s.entries.iter().enumerate() {
            assert_eq!(s.find(&e.key, e.hash), Some(i));
            assert!(e.error <= e.count);
        }
    }

    #[test]
    fn exact_while_below_capacity() {
        let mut s = SpaceSaving::new(8, 0);
        for k in 0u8..5 {
            for _ in 0..=k {
                observe(&mut s, &[k]);
            }
        }
        check_invariants(&s);
        for e in s.entries() {
            assert_eq!(e.error, 0);
            assert_eq!(e.count, u64::from(e.key[0]) + 1);
        }
    }

    #[test]
    fn eviction_keeps_index_and_heap_consistent() {
        // Capacity 4 with index of 8 slots and many colliding keys exercises probing and
        // backward-shift deletion.
        let mut s = SpaceSaving::new(4, 0);
        for i in 0u32..5_000 {
            let k = (i.wrapping_mul(2_654_435_761) % 37).to_le_bytes();
            observe(&mut s, &k);
            observe(&mut s, b"heavy");
            if i % 97 == 0 {
                check_invariants(&s);
            }
        }
        check_invariants(&s);
        let heavy = s
            .entries()
            .iter()
            .find(|e| e.key == b"heavy")
            .map(Entry::guaranteed);
        assert!(heavy.is_some_and(|g| g as f64 >= 0.5 * s.total() as f64 - s.total() as f64 / 4.0));
    }

    #[test]
    fn decay_halves() {
        let mut s = SpaceSaving::new(4, 10);
        for _ in 0..10 {
            observe(&mut s, b"a");
        }
        assert_eq!(s.total(), 10);
        observe(&mut s, b"b");
        assert_eq!(s.total(), 6);
        check_invariants(&s);
    }
}
