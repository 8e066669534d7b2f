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
//! swap). The index holds the hashes and the heap holds the counts, so probing and sifting
//! read two small contiguous arrays and touch an entry only on a hash match. Every `decay_interval` records all counts, errors and the total are halved, so
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
    /// Overestimate of the count taken over when the key entered; the count itself lives
    /// in the heap.
    error: u64,
    heap_pos: u16,
    /// Hot-key state kept by the partitioner: hysteresis flag and round-robin turn.
    pub(crate) hot: bool,
    pub(crate) turn: u32,
}

#[derive(Debug, Clone, Copy)]
struct HeapSlot {
    count: u64,
    entry: u16,
}

#[derive(Debug, Clone, Copy)]
struct IndexSlot {
    hash: u32,
    /// Entry index or EMPTY.
    entry: u16,
}

const EMPTY_SLOT: IndexSlot = IndexSlot {
    hash: 0,
    entry: EMPTY,
};

#[derive(Debug)]
pub(crate) struct SpaceSaving {
    capacity: usize,
    decay_interval: u64,
    entries: Vec<Entry>,
    /// Counts with their entry, a min-heap by count.
    heap: Vec<HeapSlot>,
    /// Open addressing with linear probing.
    index: Vec<IndexSlot>,
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
            index: vec![EMPTY_SLOT; slots],
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

    /// Lower bound of the (decayed) count of entry `i`'s key; 0 for an unknown index.
    pub(crate) fn guaranteed(&self, i: usize) -> u64 {
        self.entries
            .get(i)
            .map_or(0, |e| self.count_at(usize::from(e.heap_pos)) - e.error)
    }

    #[cfg(test)]
    fn count(&self, i: usize) -> u64 {
        self.count_at(usize::from(self.entries[i].heap_pos))
    }

    /// Counts one record of `key` (whose murmur2 hash is `hash`); returns its entry index.
    pub(crate) fn observe(&mut self, key: &[u8], hash: u32) -> usize {
        if self.decay_interval > 0 && self.since_decay >= self.decay_interval {
            self.decay();
        }
        self.total += 1;
        self.since_decay += 1;

        if let Some(i) = self.find(key, hash) {
            let pos = usize::from(self.entries[i].heap_pos);
            self.heap[pos].count += 1;
            self.sift_down(pos);
            return i;
        }

        if self.entries.len() < self.capacity {
            let i = self.entries.len();
            let pos = self.heap.len();
            self.entries.push(Entry {
                key: key.to_vec(),
                hash,
                error: 0,
                heap_pos: pos as u16,
                hot: false,
                turn: 0,
            });
            self.heap.push(HeapSlot {
                count: 1,
                entry: i as u16,
            });
            self.sift_up(pos);
            self.index_insert(i);
            return i;
        }

        // Replace the smallest counter.
        let i = usize::from(self.heap[0].entry);
        self.index_remove(i);
        let min = self.heap[0].count;
        self.heap[0].count = min + 1;
        let e = &mut self.entries[i];
        e.key.clear();
        e.key.extend_from_slice(key);
        e.hash = hash;
        e.error = min;
        e.hot = false;
        e.turn = 0;
        self.sift_down(0);
        self.index_insert(i);
        i
    }

    fn decay(&mut self) {
        for slot in &mut self.heap {
            slot.count /= 2;
        }
        for e in &mut self.entries {
            e.error /= 2;
        }
        self.total /= 2;
        self.since_decay = 0;
    }

    fn find(&self, key: &[u8], hash: u32) -> Option<usize> {
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot.entry == EMPTY {
                return None;
            }
            if slot.hash == hash && self.entries[usize::from(slot.entry)].key == key {
                return Some(usize::from(slot.entry));
            }
            pos = (pos + 1) & self.mask;
        }
    }

    fn index_insert(&mut self, i: usize) {
        let hash = self.entries[i].hash;
        let mut pos = hash as usize & self.mask;
        while self.index[pos].entry != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = IndexSlot {
            hash,
            entry: i as u16,
        };
    }

    /// Backward-shift deletion keeps every probe chain unbroken without tombstones.
    fn index_remove(&mut self, i: usize) {
        let mut hole = self.entries[i].hash as usize & self.mask;
        while usize::from(self.index[hole].entry) != i {
            if self.index[hole].entry == EMPTY {
                return;
            }
            hole = (hole + 1) & self.mask;
        }
        self.index[hole] = EMPTY_SLOT;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let slot = self.index[j];
            if slot.entry == EMPTY {
                return;
            }
            let home = slot.hash as usize & self.mask;
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index[hole] = slot;
                self.index[j] = EMPTY_SLOT;
                hole = j;
            }
        }
    }

    fn count_at(&self, pos: usize) -> u64 {
        self.heap[pos].count
    }

    /// Moves slot `from` to `to` in the heap and tells its entry.
    fn place(&mut self, to: usize, slot: HeapSlot) {
        self.heap[to] = slot;
        self.entries[usize::from(slot.entry)].heap_pos = to as u16;
    }

    // Both sifts carry the moving slot down (or up) and shift the others into the hole,
    // writing each entry's position once instead of swapping pairwise.
    fn sift_up(&mut self, mut pos: usize) {
        let moving = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / 2;
            let above = self.heap[parent];
            if above.count <= moving.count {
                break;
            }
            self.place(pos, above);
            pos = parent;
        }
        self.place(pos, moving);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        let moving = self.heap[pos];
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].count < self.heap[left].count {
                right
            } else {
                left
            };
            let below = self.heap[child];
            if moving.count <= below.count {
                break;
            }
            self.place(pos, below);
            pos = child;
        }
        self.place(pos, moving);
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
        for (pos, slot) in s.heap.iter().enumerate() {
            assert_eq!(
                usize::from(s.entries[usize::from(slot.entry)].heap_pos),
                pos
            );
            if pos > 0 {
                assert!(s.count_at((pos - 1) / 2) <= s.count_at(pos));
            }
        }
        for (i, e) in s.entries.iter().enumerate() {
            assert_eq!(s.find(&e.key, e.hash), Some(i));
            assert!(e.error <= s.count(i));
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
        for (i, e) in s.entries().iter().enumerate() {
            assert_eq!(e.error, 0);
            assert_eq!(s.count(i), u64::from(e.key[0]) + 1);
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
            .position(|e| e.key == b"heavy")
            .map(|i| s.guaranteed(i));
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
