//! Zero-copy decoding of concatenated v2 batches, as found in a Fetch response: the
//! batch level. [`RecordBatches`] frames the input into [`RecordBatch`]es (with
//! [`layout::frame_len`], as the consumer's header scan does) and checks each CRC-32C;
//! [`RecordBatch::records`] decompresses (if needed) and hands the records section to
//! [`Records`] (`record.rs`).

use std::fmt;

use bytes::Bytes;

use super::layout::{self, BatchHeader, BATCH_HEADER_LEN};
use super::record::Records;
use super::DEFAULT_MAX_DECOMPRESSED_SIZE;
use super::{compression, Compression, ControlRecord, RecordsError, TimestampType};

/// Iterator over the batches in a buffer of concatenated record batches.
///
/// A Fetch response may cut its last batch short when it exceeds the fetch's max bytes;
/// such a partial batch at the end is not an error: iteration ends and
/// [`is_truncated`](Self::is_truncated) turns true. Any error ends iteration after it is
/// yielded, because the position of the next batch can no longer be trusted.
#[derive(Clone)]
pub struct RecordBatches {
    rest: Bytes,
    max_decompressed: usize,
    truncated: bool,
    failed: bool,
}

impl RecordBatches {
    /// Iterates the batches in `records` with the default decompression cap
    /// ([`DEFAULT_MAX_DECOMPRESSED_SIZE`]).
    pub fn new(records: Bytes) -> Self {
        Self::with_max_decompressed_size(records, DEFAULT_MAX_DECOMPRESSED_SIZE)
    }

    /// Iterates the batches in `records`; decompressing any batch to more than `max` bytes
    /// fails with [`RecordsError::DecompressedTooLarge`].
    pub fn with_max_decompressed_size(records: Bytes, max: usize) -> Self {
        RecordBatches {
            rest: records,
            max_decompressed: max,
            truncated: false,
            failed: false,
        }
    }

    /// True once iteration has stopped at a partial batch at the end of the input.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The bytes not consumed yet (after a truncation: the partial batch).
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, RecordsError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let Some(total) = layout::frame_len(&self.rest)? else {
            self.truncated = true;
            return Ok(None);
        };
        let data = self.rest.split_to(total);
        RecordBatch::parse(data, self.max_decompressed).map(Some)
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_batch() {
            Ok(batch) => batch.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for RecordBatches {}

impl fmt::Debug for RecordBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBatches")
            .field("remaining_bytes", &self.rest.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// One complete, CRC-checked v2 batch. Records are decoded by [`records`](Self::records).
#[derive(Clone)]
pub struct RecordBatch {
    data: Bytes,
    header: BatchHeader,
    max_decompressed: usize,
    compression: Compression,
}

impl RecordBatch {
    /// Checks a framed batch (`data` holds exactly one, as [`layout::frame_len`] found
    /// it): its CRC-32C, codec and record count.
    fn parse(data: Bytes, max_decompressed: usize) -> Result<Self, RecordsError> {
        let Some(header) = BatchHeader::new(&data) else {
            return Err(RecordsError::Truncated);
        };
        let expected = header.crc();
        let actual = crc32c::crc32c(data.get(layout::ATTRIBUTES..).unwrap_or_default());
        if expected != actual {
            return Err(RecordsError::CorruptCrc { expected, actual });
        }
        let compression = Compression::from_id(header.attributes().compression_id())?;
        let count = header.record_count();
        if count < 0 {
            return Err(RecordsError::InvalidLength {
                field: "record count",
                value: i64::from(count),
            });
        }
        Ok(RecordBatch {
            data,
            header,
            max_decompressed,
            compression,
        })
    }

    /// Offset of the first record (`baseOffset`).
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset()
    }

    /// Offset of the last record the batch was written with (`baseOffset +
    /// lastOffsetDelta`); compaction may have removed records, but never this offset's
    /// place in the log.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// The offset to fetch after this batch (`last_offset() + 1`).
    pub fn next_offset(&self) -> i64 {
        self.header.next_offset()
    }

    /// `lastOffsetDelta`.
    pub fn last_offset_delta(&self) -> i32 {
        self.header.last_offset_delta()
    }

    /// The leader epoch the broker stamped (`-1` in produce requests).
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch()
    }

    /// The stored CRC-32C (already checked).
    pub fn crc(&self) -> u32 {
        self.header.crc()
    }

    /// The raw attributes (`i16`).
    pub fn attributes(&self) -> i16 {
        self.header.attributes().0
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Create time or log-append time (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.attributes().timestamp_type()
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.header.attributes().is_transactional()
    }

    /// Holds control records (transaction markers), not data (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.header.attributes().is_control()
    }

    /// The delete horizon compaction set on this batch (attribute bit 6, KIP-534): when
    /// its tombstones and transaction markers may be removed. It is stored in
    /// `baseTimestamp`; `None` when the bit is clear.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.header
            .attributes()
            .has_delete_horizon()
            .then(|| self.base_timestamp())
    }

    /// `baseTimestamp`: the first record's timestamp.
    pub fn base_timestamp(&self) -> i64 {
        self.header.base_timestamp()
    }

    /// `maxTimestamp`: the largest record timestamp, or the append time for
    /// [`TimestampType::LogAppendTime`].
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp()
    }

    /// `producerId` (`-1` without idempotence).
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id()
    }

    /// `producerEpoch` (`-1` without idempotence).
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch()
    }

    /// `baseSequence` (`-1` without idempotence).
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence()
    }

    /// The number of records the header declares.
    pub fn record_count(&self) -> i32 {
        self.header.record_count()
    }

    /// The whole batch's size in bytes, framing included.
    pub fn size_in_bytes(&self) -> usize {
        self.data.len()
    }

    /// The whole batch as it was on the wire (cheap clone).
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Decompresses the records section if needed (one buffer for the whole batch) and
    /// returns an iterator over the records.
    pub fn records(&self) -> Result<Records, RecordsError> {
        let section = self.data.slice(BATCH_HEADER_LEN..);
        let data = match self.compression {
            Compression::None => section,
            codec => Bytes::from(compression::decompress(
                codec,
                &section,
                self.max_decompressed,
            )?),
        };
        let log_append_time = match self.timestamp_type() {
            TimestampType::LogAppendTime => Some(self.max_timestamp()),
            TimestampType::CreateTime => None,
        };
        Ok(Records::new(
            data,
            self.record_count(),
            self.base_offset(),
            self.base_timestamp(),
            log_append_time,
        ))
    }

    /// For a control batch, its first control record (brokers write exactly one);
    /// `Ok(None)` for data batches and empty control batches.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordsError> {
        if !self.is_control() {
            return Ok(None);
        }
        match self.records()?.next() {
            None => Ok(None),
            Some(record) => {
                let record = record?;
                let key = record
                    .key()
                    .ok_or(RecordsError::InvalidControlRecord("null key"))?;
                ControlRecord::parse(key, record.value().map(|v| &v[..])).map(Some)
            }
        }
    }
}

impl fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("record_count", &self.record_count())
            .field("compression", &self.compression)
            .field("timestamp_type", &self.timestamp_type())
            .field("transactional", &self.is_transactional())
            .field("control", &self.is_control())
            .field("producer_id", &self.producer_id())
            .field("producer_epoch", &self.producer_epoch())
            .field("base_sequence", &self.base_sequence())
            .field("size_in_bytes", &self.size_in_bytes())
            .finish()
    }
}
