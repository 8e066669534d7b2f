//! One partition's records from one fetch response, as the prefetch buffer holds them:
//! the response's bytes, decoded lazily and without copies, batch by batch, when `recv`
//! takes records. Under `read_committed` it drops batches of aborted transactions (from
//! the response's list of aborted transactions and the abort markers), as Java's
//! `FetchCollector` does; control batches are always skipped. It also remembers the
//! partition leader epoch of the last batch it looked at: the epoch of the position
//! once `recv` moves past it (KIP-320).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::TopicPartition;
use crate::error::Result;
use crate::records::{BatchHeaders, ControlRecordType, Record, RecordBatches, Records};

/// One partition's records from one fetch response, decoded as they are taken.
pub(crate) struct CompletedFetch {
    pub(crate) tp: TopicPartition,
    pub(crate) topic: Arc<str>,
    /// The partition's epoch when the fetch was sent; stale after a seek.
    pub(crate) epoch: u64,
    pub(crate) bytes: usize,
    /// About how many records the fetch holds (from the batch headers, capped by what
    /// the bytes can hold), to size `recv_batch`'s vector once.
    records_hint: usize,
    batches: RecordBatches,
    current: Option<Records>,
    /// The offset after the last batch looked at: where the position goes once this
    /// fetch is used up, so skipped control and aborted batches are not fetched again.
    pub(crate) next_offset: i64,
    /// The partition leader epoch of the last batch looked at (-1 when the batch has
    /// none), `None` before the first: the epoch of the position once this fetch moved
    /// it (Java: `CompletedFetch.lastEpoch`).
    pub(crate) last_epoch: Option<i32>,
    read_committed: bool,
    /// `(first offset, producer id)` of aborted transactions not yet reached.
    aborted: VecDeque<(i64, i64)>,
    aborted_producers: HashSet<i64>,
}

impl std::fmt::Debug for CompletedFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletedFetch")
            .field("tp", &self.tp)
            .field("bytes", &self.bytes)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl CompletedFetch {
    pub(crate) fn new(
        tp: TopicPartition,
        epoch: u64,
        records: Bytes,
        read_committed: bool,
        mut aborted: Vec<(i64, i64)>,
    ) -> Self {
        aborted.sort_unstable();
        // Every record takes at least 7 bytes (length, attributes, timestamp and offset
        // deltas, key and value lengths, header count): a hostile record count cannot
        // size an allocation beyond what the response itself occupies.
        let records_hint = scan_batch_headers(&records).1.min(records.len() / 7);
        CompletedFetch {
            topic: Arc::from(tp.topic.as_str()),
            tp,
            epoch,
            bytes: records.len(),
            records_hint,
            batches: RecordBatches::new(records),
            current: None,
            next_offset: -1,
            last_epoch: None,
            read_committed,
            aborted: aborted.into(),
            aborted_producers: HashSet::new(),
        }
    }

    /// About how many records are left to take (an estimate for sizing buffers).
    pub(crate) fn records_hint(&self) -> usize {
        self.records_hint
    }

    /// The next record at or after `position`, or `None` when this fetch is used up.
    #[inline]
    pub(crate) fn next_record(&mut self, position: i64) -> Result<Option<Record>> {
        loop {
            if let Some(records) = &mut self.current {
                match records.next() {
                    Some(r) => {
                        let r = r?;
                        if r.offset() >= position {
                            return Ok(Some(r));
                        }
                        continue;
                    }
                    None => self.current = None,
                }
            }
            let Some(batch) = self.batches.next() else {
                return Ok(None);
            };
            let batch = batch?;
            self.next_offset = self.next_offset.max(batch.next_offset());
            self.last_epoch = Some(batch.partition_leader_epoch());
            if self.read_committed && batch.is_transactional() {
                while let Some(&(first, pid)) = self.aborted.front() {
                    if first > batch.last_offset() {
                        break;
                    }
                    self.aborted_producers.insert(pid);
                    self.aborted.pop_front();
                }
            }
            if batch.is_control() {
                if self.read_committed {
                    if let Ok(Some(c)) = batch.control_record() {
                        if c.kind == ControlRecordType::Abort {
                            self.aborted_producers.remove(&batch.producer_id());
                        }
                    }
                }
                continue;
            }
            if batch.next_offset() <= position {
                continue;
            }
            if self.read_committed
                && batch.is_transactional()
                && self.aborted_producers.contains(&batch.producer_id())
            {
                continue;
            }
            self.current = Some(batch.records()?);
        }
    }
}

/// The offset after the last complete batch in `records` and the number of records the
/// complete batches declare, read from the batch headers alone (the records layer's
/// header scan, which frames batches as the decoder does), so the next fetch can be sent
/// before these records are decoded. The scan stops at a cut tail and at a batch the
/// decoder would refuse (not v2, or too short); decoding reports that one.
pub(crate) fn scan_batch_headers(records: &Bytes) -> (i64, usize) {
    let mut next = -1;
    let mut count = 0usize;
    for header in BatchHeaders::new(records).map_while(|h| h.ok()) {
        next = next.max(header.next_offset());
        count = count.saturating_add(usize::try_from(header.record_count()).unwrap_or(0));
    }
    (next, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, RecordBatchBuilder};

    fn batch(base: i64, pid: i64, n: usize, transactional: bool) -> Bytes {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            base_offset: base,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            transactional,
            ..BatchOptions::default()
        });
        for i in 0..n {
            b.append(0, None, Some(format!("v{i}").as_bytes()), &[])
                .unwrap();
        }
        b.finish().unwrap()
    }

    fn marker(offset: i64, pid: i64, kind: ControlRecordType) -> Bytes {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            base_offset: offset,
            producer_id: pid,
            producer_epoch: 0,
            transactional: true,
            is_control: true,
            ..BatchOptions::default()
        });
        b.append_control(0, kind, 0).unwrap();
        b.finish().unwrap()
    }

    /// pid 1 writes 0-1 and aborts (marker 2); pid 2 writes 3-4 and commits (marker
    /// 5); a plain batch follows at 6.
    fn log() -> Bytes {
        let mut all = Vec::new();
        for part in [
            batch(0, 1, 2, true),
            marker(2, 1, ControlRecordType::Abort),
            batch(3, 2, 2, true),
            marker(5, 2, ControlRecordType::Commit),
            batch(6, -1, 1, false),
        ] {
            all.extend_from_slice(&part);
        }
        Bytes::from(all)
    }

    #[test]
    fn batch_header_scan_ignores_a_cut_batch() {
        let all = log();
        // Records 0-1, marker 2, records 3-4, marker 5, record 6.
        assert_eq!(scan_batch_headers(&all), (7, 7));
        let cut = all.slice(..all.len() - 3);
        assert_eq!(scan_batch_headers(&cut), (6, 6));
        assert_eq!(scan_batch_headers(&Bytes::new()), (-1, 0));
    }

    fn offsets(mut f: CompletedFetch, from: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(r) = f.next_record(from).unwrap() {
            out.push(r.offset());
        }
        assert_eq!(f.next_offset, 7, "the position moves past markers");
        out
    }

    #[test]
    fn read_committed_drops_aborted_transactions_and_markers() {
        let tp = TopicPartition::new("t", 0);
        let f = CompletedFetch::new(tp, 0, log(), true, vec![(0, 1)]);
        assert_eq!(offsets(f, 0), [3, 4, 6]);
    }

    #[test]
    fn read_uncommitted_skips_only_markers() {
        let tp = TopicPartition::new("t", 0);
        let f = CompletedFetch::new(tp.clone(), 0, log(), false, vec![]);
        assert_eq!(offsets(f, 0), [0, 1, 3, 4, 6]);
        // A fetch that starts inside a batch skips the records before the position.
        let f = CompletedFetch::new(tp, 0, log(), false, vec![]);
        assert_eq!(offsets(f, 4), [4, 6]);
    }
}
