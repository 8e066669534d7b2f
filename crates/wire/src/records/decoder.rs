//! Zero-copy decoding of concatenated v2 batches, as found in a Fetch response.
//!
//! [`RecordBatches`] splits the input into [`RecordBatch`]es and checks each CRC-32C;
//! [`RecordBatch::records`] decompresses (if needed) and iterates [`Record`]s whose keys,
//! values and headers are [`Bytes`] slices of the input or of the decompressed buffer.
//! Each record is fully validated when it is yielded, so reading a record's headers later
//! cannot fail.

use std::fmt;

use bytes::{Buf, Bytes};

use super::varint::{read_unsigned_long, read_varlong};
use super::{
    compression, Compression, ControlRecord, RecordsError, TimestampType, BATCH_HEADER_LEN,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
};

/// baseOffset (8) + batchLength (4): the framing in front of every batch.
const LOG_OVERHEAD: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

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
        let input = &self.rest[..];
        if input.is_empty() {
            return Ok(None);
        }
        // Like Kafka's ByteBufferLogInputStream: a partial length prefix or header means a
        // truncated tail; a complete one is checked before the body must be present.
        if input.len() < LOG_OVERHEAD {
            self.truncated = true;
            return Ok(None);
        }
        let batch_length = be_i32(input, 8);
        if input.len() <= MAGIC_OFFSET {
            self.truncated = true;
            return Ok(None);
        }
        let magic = input[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(RecordsError::UnsupportedMagic(magic));
        }
        let body = usize::try_from(batch_length).unwrap_or(0);
        if body < BATCH_HEADER_LEN - LOG_OVERHEAD {
            return Err(RecordsError::InvalidLength {
                field: "batch length",
                value: i64::from(batch_length),
            });
        }
        let total = LOG_OVERHEAD.saturating_add(body);
        if input.len() < total {
            self.truncated = true;
            return Ok(None);
        }
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
    max_decompressed: usize,
    compression: Compression,
}

impl RecordBatch {
    fn parse(data: Bytes, max_decompressed: usize) -> Result<Self, RecordsError> {
        let expected = be_u32(&data, CRC_OFFSET);
        let actual = crc32c::crc32c(&data[ATTRIBUTES_OFFSET..]);
        if expected != actual {
            return Err(RecordsError::CorruptCrc { expected, actual });
        }
        let compression = Compression::from_id((be_i16(&data, ATTRIBUTES_OFFSET) & 0x07) as u8)?;
        let count = be_i32(&data, 57);
        if count < 0 {
            return Err(RecordsError::InvalidLength {
                field: "record count",
                value: i64::from(count),
            });
        }
        Ok(RecordBatch {
            data,
            max_decompressed,
            compression,
        })
    }

    /// Offset of the first record (`baseOffset`).
    pub fn base_offset(&self) -> i64 {
        be_i64(&self.data, 0)
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
        self.last_offset().wrapping_add(1)
    }

    /// `lastOffsetDelta`.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.data, 23)
    }

    /// The leader epoch the broker stamped (`-1` in produce requests).
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.data, 12)
    }

    /// The stored CRC-32C (already checked).
    pub fn crc(&self) -> u32 {
        be_u32(&self.data, CRC_OFFSET)
    }

    /// The raw attributes (`i16`).
    pub fn attributes(&self) -> i16 {
        be_i16(&self.data, ATTRIBUTES_OFFSET)
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Create time or log-append time (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }

    /// Holds control records (transaction markers), not data (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }

    /// `baseTimestamp`: the first record's timestamp.
    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.data, 27)
    }

    /// `maxTimestamp`: the largest record timestamp, or the append time for
    /// [`TimestampType::LogAppendTime`].
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.data, 35)
    }

    /// `producerId` (`-1` without idempotence).
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.data, 43)
    }

    /// `producerEpoch` (`-1` without idempotence).
    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.data, 51)
    }

    /// `baseSequence` (`-1` without idempotence).
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.data, 53)
    }

    /// The number of records the header declares.
    pub fn record_count(&self) -> i32 {
        be_i32(&self.data, 57)
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
        Ok(Records {
            data,
            pos: 0,
            remaining: self.record_count(),
            base_offset: self.base_offset(),
            base_timestamp: self.base_timestamp(),
            log_append_time: match self.timestamp_type() {
                TimestampType::LogAppendTime => Some(self.max_timestamp()),
                TimestampType::CreateTime => None,
            },
        })
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

/// Iterator over the records of one batch; yields `Err` once and stops if a record is
/// malformed, and fails if bytes remain after the declared count.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    pos: usize,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl Records {
    /// Decodes the record at `pos` (there is one: `remaining > 0`), validating all of it
    /// (headers included) so that nothing read from it later can fail. One pass over
    /// the record's bytes: a [`Cursor`] bounded by the record's own length reads each
    /// field once, and the `Bytes` for key, value and headers are cut from the validated
    /// positions at the end.
    #[inline(always)]
    fn decode_one(&mut self) -> Result<Record, RecordsError> {
        let data = &self.data;
        let mut r = Cursor::new(data.get(self.pos..).unwrap_or_default());
        let length = r.varint()?;
        let start = self.pos + r.pos();
        // Cut the cursor to the record: every later read is bounded by the record's end.
        r = Cursor::new(
            r.take(length)
                .ok_or_else(|| length_error("record length", length))?,
        );
        let end = start + r.len;
        let _attributes = r.byte()?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_bytes("key length")?;
        let value = r.nullable_bytes("value length")?;
        let header_count = r.varint()?;
        let Ok(header_count) = u32::try_from(header_count) else {
            return Err(invalid_length("header count", header_count));
        };
        let headers_start = start + r.pos();
        for _ in 0..header_count {
            if r.nullable_bytes("header key length")?.is_none() {
                return Err(invalid_length("header key length", -1));
            }
            r.nullable_bytes("header value length")?;
        }
        if !r.rest.is_empty() {
            return Err(RecordsError::Malformed(
                "record fields do not fill its length",
            ));
        }
        let slice =
            |range: Option<(usize, usize)>| range.map(|(s, e)| data.slice(start + s..start + e));
        let record = Record {
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: match self.log_append_time {
                Some(t) => t,
                None => self.base_timestamp.wrapping_add(timestamp_delta),
            },
            key: slice(key),
            value: slice(value),
            // `slice` of an empty range allocates nothing and touches no refcount.
            headers: data.slice(headers_start..end),
            header_count,
        };
        self.pos = end;
        self.remaining -= 1;
        Ok(record)
    }

    /// After the last record: the input must be used up. Ends iteration either way.
    #[cold]
    fn finish(&mut self) -> Option<Result<Record, RecordsError>> {
        let done = self.remaining == 0 && self.pos == self.data.len();
        let was_failed = self.remaining < 0;
        self.remaining = -1;
        if done || was_failed {
            None
        } else {
            Some(Err(RecordsError::Malformed(
                "bytes left after the last record",
            )))
        }
    }
}

/// The error for a length that does not fit: negative, or longer than what is left.
#[cold]
fn length_error(field: &'static str, len: i32) -> RecordsError {
    if len < 0 {
        invalid_length(field, len)
    } else {
        RecordsError::Truncated
    }
}

#[cold]
fn invalid_length(field: &'static str, value: i32) -> RecordsError {
    RecordsError::InvalidLength {
        field,
        value: i64::from(value),
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return self.finish();
        }
        match self.decode_one() {
            Ok(record) => Some(Ok(record)),
            Err(e) => {
                self.remaining = -1;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(0);
        // One extra item may be the trailing-bytes error.
        (0, Some(n.saturating_add(1)))
    }
}

impl std::iter::FusedIterator for Records {}

/// One decoded record. Key, value and headers share the batch's buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Bytes,
    header_count: u32,
}

impl Record {
    /// The record's absolute offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's absolute timestamp in ms (the batch's `maxTimestamp` for
    /// log-append-time batches, as the Java client reports it).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key; `None` for a null key.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` for a null value (a tombstone).
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers in order (keys may repeat).
    pub fn headers(&self) -> HeaderIter {
        HeaderIter {
            data: self.headers.clone(),
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// Takes the record apart without copying: `(key, value)`.
    pub fn into_key_value(self) -> (Option<Bytes>, Option<Bytes>) {
        (self.key, self.value)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

/// A decoded header; key and value are slices of the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The key bytes (Kafka writes UTF-8; see [`key_str`](Self::key_str)).
    pub key: Bytes,
    /// The value; `None` for a null value.
    pub value: Option<Bytes>,
}

impl RecordHeader {
    /// The key as UTF-8, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// Iterator over a record's headers. The record was validated when decoded, so this
/// cannot fail.
#[derive(Debug, Clone)]
pub struct HeaderIter {
    data: Bytes,
    pos: usize,
    remaining: u32,
}

impl Iterator for HeaderIter {
    type Item = RecordHeader;

    fn next(&mut self) -> Option<RecordHeader> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut r = Cursor::new(self.data.get(self.pos..).unwrap_or_default());
        // Validated in `Records::next_record`; on the impossible error just stop.
        let key = r.nullable_bytes("header key length").ok()??;
        let value = r.nullable_bytes("header value length").ok()?;
        let base = self.pos;
        self.pos += r.pos();
        Some(RecordHeader {
            key: self.data.slice(base + key.0..base + key.1),
            value: value.map(|(s, e)| self.data.slice(base + s..base + e)),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// Bounds-checked reading of record fields from a shrinking slice; ranges (relative to
/// where the cursor started) are returned, not slices, so callers can cut `Bytes` from
/// the same positions.
struct Cursor<'a> {
    rest: &'a [u8],
    /// The length the cursor started with: `len - rest.len()` is the position.
    len: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn new(data: &'a [u8]) -> Self {
        Cursor {
            rest: data,
            len: data.len(),
        }
    }

    #[inline(always)]
    fn pos(&self) -> usize {
        self.len - self.rest.len()
    }

    /// The next `len` bytes, or `None` if `len` is negative or more than what is left.
    #[inline(always)]
    fn take(&mut self, len: i32) -> Option<&'a [u8]> {
        // A negative length turns into a huge one and fails the same check.
        let len = usize::try_from(len).ok()?;
        if len > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(taken)
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, RecordsError> {
        let [b, ref rest @ ..] = *self.rest else {
            return Err(RecordsError::Truncated);
        };
        self.rest = rest;
        Ok(b)
    }

    /// An unsigned varint of at most 5 bytes, not yet zigzag-decoded. The 1- and 2-byte
    /// forms (nearly every length and delta) are read here without a loop.
    #[inline(always)]
    fn raw_varint(&mut self) -> Result<u32, RecordsError> {
        if let [b0, ref rest @ ..] = *self.rest {
            if b0 < 0x80 {
                self.rest = rest;
                return Ok(u32::from(b0));
            }
            if let [b1, ref rest @ ..] = *rest {
                if b1 < 0x80 {
                    self.rest = rest;
                    return Ok(u32::from(b0 & 0x7f) | u32::from(b1) << 7);
                }
            }
        }
        // Out of line and by value, so the cursor can stay in registers on the fast path.
        let (raw, used) = read_unsigned_long(self.rest, 5)?;
        self.rest = self.rest.get(used..).unwrap_or_default();
        // Bits past the 32nd are dropped, as Kafka's ByteUtils.readVarint does.
        Ok(raw as u32)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<i32, RecordsError> {
        self.raw_varint().map(unzigzag)
    }

    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let (v, used) = read_varlong(self.rest)?;
        self.rest = self.rest.get(used..).unwrap_or_default();
        Ok(v)
    }

    /// A varint length (-1 = null) and that many bytes, as a range.
    #[inline(always)]
    fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<(usize, usize)>, RecordsError> {
        let raw = self.raw_varint()?;
        // Zigzag: even raw values are the lengths >= 0, raw 1 is -1 (null).
        if raw & 1 == 0 {
            let len = (raw >> 1) as usize;
            if len > self.rest.len() {
                return Err(RecordsError::Truncated);
            }
            let start = self.pos();
            self.rest = &self.rest[len..];
            return Ok(Some((start, start + len)));
        }
        if raw == 1 {
            return Ok(None);
        }
        Err(invalid_length(field, unzigzag(raw)))
    }
}

fn unzigzag(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

// Fixed-offset header reads; callers have checked the batch is at least 61 bytes long, so
// `Buf`'s getters (which panic when short) cannot fail.
fn be_i64(buf: &[u8], at: usize) -> i64 {
    (&buf[at..]).get_i64()
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    (&buf[at..]).get_i32()
}

fn be_u32(buf: &[u8], at: usize) -> u32 {
    (&buf[at..]).get_u32()
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    (&buf[at..]).get_i16()
}
