//! Building one v2 batch: records are encoded in place behind a reserved header, and the
//! header is filled in by [`RecordBatchBuilder::finish`].

use bytes::{BufMut, Bytes, BytesMut};

use super::layout::{
    self, Attributes, BatchHeader, HeaderFields, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{
    compression, Compression, ControlRecordType, HeaderRef, RecordsError, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Header fields of a batch being built. [`Default`] is what a plain (non-idempotent)
/// producer sends: no compression, base offset 0, no producer id, epoch or sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Codec for the records section.
    pub compression: Compression,
    /// `baseOffset`; producers send 0 and the broker assigns offsets.
    pub base_offset: i64,
    /// `producerId` (idempotent / transactional producers), default -1.
    pub producer_id: i64,
    /// `producerEpoch`, default -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, default -1.
    pub base_sequence: i32,
    /// Set the transactional attribute (bit 4).
    pub transactional: bool,
    /// Build a control batch (bit 5); only [`RecordBatchBuilder::append_control`] may be used.
    pub is_control: bool,
    /// `partitionLeaderEpoch`, default -1 (brokers overwrite it).
    pub partition_leader_epoch: i32,
    /// Timestamp type attribute (bit 3); producers use [`TimestampType::CreateTime`].
    pub timestamp_type: TimestampType,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            compression: Compression::None,
            base_offset: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            is_control: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// Encodes records into one v2 batch without allocating per record.
///
/// Records are written uncompressed right behind a reserved 61-byte header; `finish`
/// compresses the records section (if asked), writes the header and the CRC-32C.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    options: BatchOptions,
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl RecordBatchBuilder {
    /// An empty batch with the given header fields.
    pub fn new(options: BatchOptions) -> Self {
        Self::with_capacity(options, 16 * 1024)
    }

    /// Like [`new`](Self::new), reserving `capacity` bytes up front (use `batch.size`).
    pub fn with_capacity(options: BatchOptions, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity.max(BATCH_HEADER_LEN));
        buf.put_bytes(0, BATCH_HEADER_LEN);
        RecordBatchBuilder {
            options,
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Makes room for `total` bytes of batch in all (header included) without
    /// reallocating again; nothing when there is room already.
    pub fn reserve_total(&mut self, total: usize) {
        self.buf.reserve(total.saturating_sub(self.buf.len()));
    }

    /// The options this batch was started with.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// Number of records appended.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first append.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch so far: exact for uncompressed batches, an upper bound (the
    /// uncompressed size) for compressed ones.
    pub fn estimated_size(&self) -> usize {
        self.buf.len()
    }

    /// Bytes [`append`](Self::append) would add for this record (before compression), for
    /// deciding whether it still fits in a batch.
    pub fn record_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> Result<usize, RecordsError> {
        let body = self.body_size(timestamp_ms, key, value, headers)?;
        Ok(varint_len(to_i32(body)?) + body)
    }

    /// Appends a data record and returns its offset delta (its index in the batch).
    ///
    /// Timestamps may go backwards; deltas are signed.
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> Result<u32, RecordsError> {
        if self.options.is_control {
            return Err(RecordsError::ControlMismatch);
        }
        self.append_record(timestamp_ms, key, value, headers)
    }

    /// Appends a transaction marker to a control batch (`options.is_control` must be set;
    /// brokers write exactly one per batch).
    pub fn append_control(
        &mut self,
        timestamp_ms: i64,
        kind: ControlRecordType,
        coordinator_epoch: i32,
    ) -> Result<u32, RecordsError> {
        if !self.options.is_control {
            return Err(RecordsError::ControlMismatch);
        }
        // key: version 0, type; value: version 0, coordinator epoch.
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&kind.id().to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
        self.append_record(timestamp_ms, Some(&key), Some(&value), &[])
    }

    fn append_record(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> Result<u32, RecordsError> {
        let offset_delta = self.count;
        if offset_delta == i32::MAX {
            return Err(RecordsError::TooLarge);
        }
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
        }
        let body = to_i32(self.body_size(timestamp_ms, key, value, headers)?)?;
        let buf = &mut self.buf;
        buf.reserve(varint_len(body) + body as usize);
        put_varint(buf, body);
        buf.put_i8(0); // record attributes: unused
        put_varlong(buf, timestamp_ms.wrapping_sub(self.base_timestamp));
        put_varint(buf, offset_delta);
        put_nullable(buf, key);
        put_nullable(buf, value);
        put_varint(buf, headers.len() as i32); // checked in body_size
        for header in headers {
            put_nullable(buf, Some(header.key.as_bytes()));
            put_nullable(buf, header.value);
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        Ok(offset_delta as u32)
    }

    /// Size of a record without its length prefix.
    fn body_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> Result<usize, RecordsError> {
        let base = if self.count == 0 {
            timestamp_ms
        } else {
            self.base_timestamp
        };
        let mut size = 1
            + varlong_len(timestamp_ms.wrapping_sub(base))
            + varint_len(self.count)
            + nullable_size(key)?
            + nullable_size(value)?
            + varint_len(to_i32(headers.len())?);
        for header in headers {
            size = size
                .checked_add(nullable_size(Some(header.key.as_bytes()))?)
                .and_then(|s| s.checked_add(nullable_size(header.value).ok()?))
                .ok_or(RecordsError::TooLarge)?;
        }
        Ok(size)
    }

    /// Compresses if needed, fills in the header and CRC-32C, and returns the batch.
    pub fn finish(self) -> Result<Bytes, RecordsError> {
        if self.count == 0 {
            return Err(RecordsError::EmptyBatch);
        }
        let codec = self.options.compression;
        let mut out = match codec {
            Compression::None => self.buf,
            codec => {
                let records = &self.buf[BATCH_HEADER_LEN..];
                let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len() / 2 + 64);
                out.put_bytes(0, BATCH_HEADER_LEN);
                compression::compress(codec, records, &mut out)?;
                out
            }
        };
        let o = &self.options;
        let fields = HeaderFields {
            base_offset: o.base_offset,
            batch_length: to_i32(out.len() - LOG_OVERHEAD)?,
            partition_leader_epoch: o.partition_leader_epoch,
            attributes: Attributes::new(codec, o.timestamp_type, o.transactional, o.is_control),
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: o.producer_id,
            producer_epoch: o.producer_epoch,
            base_sequence: o.base_sequence,
            record_count: self.count,
        };
        // `out` starts with the reserved header in both arms above.
        if let Some(header) = out.first_chunk_mut() {
            fields.write(header);
        }
        layout::seal_crc(&mut out);
        Ok(out.freeze())
    }
}

/// Copies a finished batch with new producer id, epoch and base sequence and a recomputed
/// CRC-32C, as the Java producer does when it bumps its epoch and re-sends a batch that was
/// already built (`MemoryRecordsBuilder.reopenAndRewriteProducerState`). The records, even
/// compressed ones, are not touched.
///
/// Fails with [`RecordsError::UnsupportedMagic`] or [`RecordsError::Truncated`] if `batch` is
/// not one complete v2 batch.
pub fn rewrite_producer_state(
    batch: &[u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes, RecordsError> {
    let Some(header) = BatchHeader::new(batch) else {
        return Err(RecordsError::Truncated);
    };
    if header.magic() != MAGIC_V2 {
        return Err(RecordsError::UnsupportedMagic(header.magic()));
    }
    let declared = header.batch_length();
    if usize::try_from(declared).ok() != Some(batch.len() - LOG_OVERHEAD) {
        return Err(RecordsError::InvalidLength {
            field: "batch length",
            value: i64::from(declared),
        });
    }
    let mut out = BytesMut::from(batch);
    if let Some(header) = out.first_chunk_mut() {
        layout::write_producer_state(header, producer_id, producer_epoch, base_sequence);
    }
    layout::seal_crc(&mut out);
    Ok(out.freeze())
}

fn to_i32(n: usize) -> Result<i32, RecordsError> {
    i32::try_from(n).map_err(|_| RecordsError::TooLarge)
}

fn nullable_size(bytes: Option<&[u8]>) -> Result<usize, RecordsError> {
    Ok(match bytes {
        None => 1,
        Some(b) => varint_len(to_i32(b.len())?) + b.len(),
    })
}

/// Writes a varint length (-1 for null) and the bytes; lengths were checked by `body_size`.
fn put_nullable(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}
