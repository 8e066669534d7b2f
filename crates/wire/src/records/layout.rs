//! The v2 batch header, the one place that knows it: where each field sits, what the
//! attribute bits mean, how a batch is framed in a buffer of concatenated batches, and a
//! scan over those headers that decodes no record.
//!
//! ```text
//! offset len  field                  offset len  field
//!      0   8  baseOffset                 27   8  baseTimestamp
//!      8   4  batchLength (after it)     35   8  maxTimestamp
//!     12   4  partitionLeaderEpoch       43   8  producerId
//!     16   1  magic (2)                  51   2  producerEpoch
//!     17   4  crc (CRC-32C of 21..)      53   4  baseSequence
//!     21   2  attributes                 57   4  recordCount
//!     23   4  lastOffsetDelta            61      records
//! ```
//!
//! The builder writes the header through [`HeaderFields`], the decoder and the consumer's
//! read-ahead read it through [`BatchHeader`], and both find batch boundaries with
//! [`frame_len`]: a batch the decoder accepts is a batch the scan sees, and the reverse.

use super::{Compression, RecordsError, TimestampType};

/// `baseOffset`, i64.
pub(crate) const BASE_OFFSET: usize = 0;
/// `batchLength`, i32: the bytes after this field.
pub(crate) const BATCH_LENGTH: usize = BASE_OFFSET + 8;
/// baseOffset + batchLength: the framing in front of every batch (Kafka's `LOG_OVERHEAD`).
pub(crate) const LOG_OVERHEAD: usize = BATCH_LENGTH + 4;
/// `partitionLeaderEpoch`, i32.
pub(crate) const PARTITION_LEADER_EPOCH: usize = LOG_OVERHEAD;
/// `magic`, i8.
pub(crate) const MAGIC: usize = PARTITION_LEADER_EPOCH + 4;
/// `crc`, u32: CRC-32C of everything from [`ATTRIBUTES`] to the end of the batch.
pub(crate) const CRC: usize = MAGIC + 1;
/// `attributes`, i16; the CRC covers the batch from here on.
pub(crate) const ATTRIBUTES: usize = CRC + 4;
/// `lastOffsetDelta`, i32.
pub(crate) const LAST_OFFSET_DELTA: usize = ATTRIBUTES + 2;
/// `baseTimestamp`, i64 (the delete horizon when [`DELETE_HORIZON_FLAG`] is set).
pub(crate) const BASE_TIMESTAMP: usize = LAST_OFFSET_DELTA + 4;
/// `maxTimestamp`, i64.
pub(crate) const MAX_TIMESTAMP: usize = BASE_TIMESTAMP + 8;
/// `producerId`, i64.
pub(crate) const PRODUCER_ID: usize = MAX_TIMESTAMP + 8;
/// `producerEpoch`, i16.
pub(crate) const PRODUCER_EPOCH: usize = PRODUCER_ID + 8;
/// `baseSequence`, i32.
pub(crate) const BASE_SEQUENCE: usize = PRODUCER_EPOCH + 2;
/// `recordCount`, i32.
pub(crate) const RECORD_COUNT: usize = BASE_SEQUENCE + 4;

/// Size of the fixed v2 batch header: everything before the first record.
pub const BATCH_HEADER_LEN: usize = RECORD_COUNT + 4;

/// The smallest `batchLength` a v2 batch can declare: its header after the framing.
pub(crate) const MIN_BATCH_LENGTH: usize = BATCH_HEADER_LEN - LOG_OVERHEAD;

/// The `magic` of format v2, the only one we read or write.
pub(crate) const MAGIC_V2: i8 = 2;

const _: () = assert!(BATCH_HEADER_LEN == 61, "the v2 header is 61 bytes");

/// Attribute bits 0-2: the compression codec id.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are log-append time.
pub(crate) const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub(crate) const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit 5: the batch holds control records.
pub(crate) const CONTROL_FLAG: i16 = 0x20;
/// Attribute bit 6 (KIP-534): `baseTimestamp` is the delete horizon set by compaction.
pub(crate) const DELETE_HORIZON_FLAG: i16 = 0x40;

/// A batch's `attributes`, read bit by bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attributes(pub(crate) i16);

impl Attributes {
    /// The attributes a builder writes (the delete horizon is only ever set by brokers).
    pub(crate) fn new(
        compression: Compression,
        timestamp_type: TimestampType,
        transactional: bool,
        control: bool,
    ) -> Self {
        let mut bits = i16::from(compression.id());
        if timestamp_type == TimestampType::LogAppendTime {
            bits |= TIMESTAMP_TYPE_FLAG;
        }
        if transactional {
            bits |= TRANSACTIONAL_FLAG;
        }
        if control {
            bits |= CONTROL_FLAG;
        }
        Attributes(bits)
    }

    /// The codec id in bits 0-2 (5-7 name no codec).
    pub(crate) fn compression_id(self) -> u8 {
        (self.0 & COMPRESSION_MASK) as u8
    }

    /// Bit 3.
    pub(crate) fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_FLAG != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Bit 4.
    pub(crate) fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_FLAG != 0
    }

    /// Bit 5.
    pub(crate) fn is_control(self) -> bool {
        self.0 & CONTROL_FLAG != 0
    }

    /// Bit 6.
    pub(crate) fn has_delete_horizon(self) -> bool {
        self.0 & DELETE_HORIZON_FLAG != 0
    }
}

/// How the batch at the start of `input` is framed: `Ok(Some(n))` when its `n` bytes are
/// all there, `Ok(None)` when the input ends inside it (a fetch response may cut its last
/// batch short), an error when its magic is not 2 or its length is too small for a v2
/// header. Like Kafka's `ByteBufferLogInputStream`, a partial length prefix or magic is a
/// cut tail, and a complete one is checked before the body must be present.
#[inline]
pub(crate) fn frame_len(input: &[u8]) -> Result<Option<usize>, RecordsError> {
    let (Some(length), Some(&magic)) = (input.get(BATCH_LENGTH..LOG_OVERHEAD), input.get(MAGIC))
    else {
        return Ok(None);
    };
    let magic = magic as i8;
    if magic != MAGIC_V2 {
        return Err(RecordsError::UnsupportedMagic(magic));
    }
    let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
    let body = usize::try_from(length).unwrap_or(0);
    if body < MIN_BATCH_LENGTH {
        return Err(RecordsError::InvalidLength {
            field: "batch length",
            value: i64::from(length),
        });
    }
    let total = LOG_OVERHEAD.saturating_add(body);
    Ok((input.len() >= total).then_some(total))
}

/// A copy of one batch's 61-byte header, read field by field at fixed offsets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader([u8; BATCH_HEADER_LEN]);

impl BatchHeader {
    /// The header at the start of `batch`, or `None` if `batch` is shorter than one.
    #[inline]
    pub(crate) fn new(batch: &[u8]) -> Option<Self> {
        batch.first_chunk().map(|h| BatchHeader(*h))
    }

    /// `N` bytes at `at`; the offsets above lie inside the header, so this never reads
    /// past it (and would return zeros rather than panic if one did not).
    #[inline(always)]
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0; N];
        if let Some(bytes) = self.0.get(at..at + N) {
            out.copy_from_slice(bytes);
        }
        out
    }

    /// `baseOffset`.
    pub(crate) fn base_offset(&self) -> i64 {
        i64::from_be_bytes(self.field(BASE_OFFSET))
    }

    /// `batchLength`.
    pub(crate) fn batch_length(&self) -> i32 {
        i32::from_be_bytes(self.field(BATCH_LENGTH))
    }

    /// `partitionLeaderEpoch`.
    pub(crate) fn partition_leader_epoch(&self) -> i32 {
        i32::from_be_bytes(self.field(PARTITION_LEADER_EPOCH))
    }

    /// `magic`.
    pub(crate) fn magic(&self) -> i8 {
        i8::from_be_bytes(self.field(MAGIC))
    }

    /// `crc`.
    pub(crate) fn crc(&self) -> u32 {
        u32::from_be_bytes(self.field(CRC))
    }

    /// `attributes`.
    pub(crate) fn attributes(&self) -> Attributes {
        Attributes(i16::from_be_bytes(self.field(ATTRIBUTES)))
    }

    /// `lastOffsetDelta`.
    pub(crate) fn last_offset_delta(&self) -> i32 {
        i32::from_be_bytes(self.field(LAST_OFFSET_DELTA))
    }

    /// `baseOffset + lastOffsetDelta + 1` (wrapping, as hostile input may overflow): the
    /// offset to fetch after this batch.
    pub(crate) fn next_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
            .wrapping_add(1)
    }

    /// `baseTimestamp`.
    pub(crate) fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(self.field(BASE_TIMESTAMP))
    }

    /// `maxTimestamp`.
    pub(crate) fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(self.field(MAX_TIMESTAMP))
    }

    /// `producerId`.
    pub(crate) fn producer_id(&self) -> i64 {
        i64::from_be_bytes(self.field(PRODUCER_ID))
    }

    /// `producerEpoch`.
    pub(crate) fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(self.field(PRODUCER_EPOCH))
    }

    /// `baseSequence`.
    pub(crate) fn base_sequence(&self) -> i32 {
        i32::from_be_bytes(self.field(BASE_SEQUENCE))
    }

    /// `recordCount` as declared (hostile input may make it negative).
    pub(crate) fn record_count(&self) -> i32 {
        i32::from_be_bytes(self.field(RECORD_COUNT))
    }
}

/// The header fields a writer chooses; [`write`](Self::write) puts them at their offsets
/// with magic 2 and a zero CRC, which [`seal_crc`] fills once the records are in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub(crate) base_offset: i64,
    pub(crate) batch_length: i32,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) attributes: Attributes,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
}

impl HeaderFields {
    /// Writes the header into the first 61 bytes of `header`.
    pub(crate) fn write(&self, header: &mut [u8; BATCH_HEADER_LEN]) {
        put(header, BASE_OFFSET, self.base_offset.to_be_bytes());
        put(header, BATCH_LENGTH, self.batch_length.to_be_bytes());
        put(
            header,
            PARTITION_LEADER_EPOCH,
            self.partition_leader_epoch.to_be_bytes(),
        );
        put(header, MAGIC, MAGIC_V2.to_be_bytes());
        put(header, CRC, 0u32.to_be_bytes());
        put(header, ATTRIBUTES, self.attributes.0.to_be_bytes());
        put(
            header,
            LAST_OFFSET_DELTA,
            self.last_offset_delta.to_be_bytes(),
        );
        put(header, BASE_TIMESTAMP, self.base_timestamp.to_be_bytes());
        put(header, MAX_TIMESTAMP, self.max_timestamp.to_be_bytes());
        write_producer_state(
            header,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
        );
        put(header, RECORD_COUNT, self.record_count.to_be_bytes());
    }
}

/// Overwrites `producerId`, `producerEpoch` and `baseSequence` (the CRC is stale after).
pub(crate) fn write_producer_state(
    header: &mut [u8; BATCH_HEADER_LEN],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) {
    put(header, PRODUCER_ID, producer_id.to_be_bytes());
    put(header, PRODUCER_EPOCH, producer_epoch.to_be_bytes());
    put(header, BASE_SEQUENCE, base_sequence.to_be_bytes());
}

/// Computes the CRC-32C of a whole batch (from [`ATTRIBUTES`] on) and stores it; a
/// `batch` shorter than a header is left as it is.
pub(crate) fn seal_crc(batch: &mut [u8]) {
    if let Some(covered) = batch.get(ATTRIBUTES..) {
        let crc = crc32c::crc32c(covered).to_be_bytes();
        if let Some(field) = batch.get_mut(CRC..CRC + 4) {
            field.copy_from_slice(&crc);
        }
    }
}

fn put<const N: usize>(header: &mut [u8; BATCH_HEADER_LEN], at: usize, bytes: [u8; N]) {
    if let Some(field) = header.get_mut(at..at + N) {
        field.copy_from_slice(&bytes);
    }
}

/// The headers of the batches in a buffer of concatenated batches, without decoding (or
/// CRC-checking) any record: what the consumer needs to send its next fetch before it has
/// decoded this one. Framing is [`frame_len`], as in the decoder. Ends at the first batch
/// the input cuts short; a framing error is yielded once and ends the scan. Each step
/// moves past at least one header, so the scan ends after `len / 61` steps at most; it
/// allocates nothing and never panics.
#[derive(Debug, Clone)]
pub(crate) struct BatchHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> BatchHeaders<'a> {
    /// Scans the batches in `records`.
    pub(crate) fn new(records: &'a [u8]) -> Self {
        BatchHeaders { rest: records }
    }
}

impl Iterator for BatchHeaders<'_> {
    type Item = Result<BatchHeader, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let input = self.rest;
        let framed = frame_len(input).transpose()?;
        // Stop after this item whatever it is; a complete batch moves us on below.
        self.rest = &[];
        let total = match framed {
            Ok(total) => total,
            Err(e) => return Some(Err(e)),
        };
        let (batch, rest) = input.split_at_checked(total)?;
        self.rest = rest;
        BatchHeader::new(batch).map(Ok)
    }
}

impl std::iter::FusedIterator for BatchHeaders<'_> {}

impl std::fmt::Debug for BatchHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchHeader")
            .field("base_offset", &self.base_offset())
            .field("batch_length", &self.batch_length())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("record_count", &self.record_count())
            .field("attributes", &self.attributes())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
