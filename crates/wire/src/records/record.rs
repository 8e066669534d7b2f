//! The records of one batch: [`Records`] decodes them one by one from the (decompressed)
//! records section with the varint [`Cursor`]; keys, values and headers are [`Bytes`]
//! slices of that section. Each record is fully validated when it is yielded, so reading
//! a record's headers later cannot fail.

use std::fmt;

use bytes::Bytes;

use super::varint::{invalid_length, Cursor};
use super::{RecordsError, TimestampType};
use crate::header::Header;

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
    /// The `count` records in `data` (a batch's records section, decompressed); offsets
    /// and timestamps are deltas from `base_offset` and `base_timestamp`, unless the batch
    /// uses log-append time, which every record then reports.
    pub(crate) fn new(
        data: Bytes,
        count: i32,
        base_offset: i64,
        base_timestamp: i64,
        log_append_time: Option<i64>,
    ) -> Self {
        Records {
            data,
            pos: 0,
            remaining: count,
            base_offset,
            base_timestamp,
            log_append_time,
        }
    }

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
        let end = start + r.len();
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
        if !r.is_empty() {
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
            timestamp_type: match self.log_append_time {
                Some(_) => TimestampType::LogAppendTime,
                None => TimestampType::CreateTime,
            },
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
    timestamp_type: TimestampType,
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

    /// Who set the timestamp: the producer (`CreateTime`) or the broker
    /// (`LogAppendTime`, the topic's `message.timestamp.type`), from the batch.
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
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
            .field("timestamp_type", &self.timestamp_type)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

/// Iterator over a record's headers, decoded on demand: each key and value is a slice of
/// the batch's buffer (see [`Header`] for keys that are not UTF-8). The record was
/// validated when decoded, so this cannot fail.
#[derive(Debug, Clone)]
pub struct HeaderIter {
    data: Bytes,
    pos: usize,
    remaining: u32,
}

impl Iterator for HeaderIter {
    type Item = Header;

    fn next(&mut self) -> Option<Header> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut r = Cursor::new(self.data.get(self.pos..).unwrap_or_default());
        // Validated in `Records::decode_one`; on the impossible error just stop.
        let key = r.nullable_bytes("header key length").ok()??;
        let value = r.nullable_bytes("header value length").ok()?;
        let base = self.pos;
        self.pos += r.pos();
        Some(Header::decoded(
            self.data.slice(base + key.0..base + key.1),
            value.map(|(s, e)| self.data.slice(base + s..base + e)),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}
