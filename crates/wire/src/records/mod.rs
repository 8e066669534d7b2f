//! Kafka record batches, format v2 (magic 2): the bytes of a Produce request's and a Fetch
//! response's `records` field.
//!
//! # Layout
//! - [`RecordBatchBuilder`] (`builder.rs`) appends records in place into one buffer behind a
//!   reserved 61-byte header, then [`finish`](RecordBatchBuilder::finish) compresses (if
//!   asked), fills the header and the CRC-32C.
//! - `layout.rs`: the one place that knows the 61-byte header (field offsets, attribute
//!   bits), how batches are framed one after another, and a scan over batch headers that
//!   decodes no record (the consumer's read-ahead uses it).
//! - [`RecordBatches`] (`decoder.rs`) walks concatenated batches in a [`Bytes`](bytes::Bytes)
//!   without copying and checks each one's CRC-32C; [`Records`] (`record.rs`) decodes a
//!   batch's records: keys, values and header values are [`Bytes`](bytes::Bytes) slices of
//!   the input, or of the one decompressed buffer of a compressed batch.
//! - `compression.rs`: gzip, snappy, lz4 and zstd, all pure Rust by default (no C compiler
//!   needed); the `zstd-native` feature swaps in libzstd.
//! - `varint.rs`: Kafka's zigzag varints, read by one `Cursor` with one fast path.
//!
//! Nothing here does I/O; the connection code hands us bytes and takes bytes back.
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use sluice_wire::records::{
//!     BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches,
//! };
//!
//! # fn main() -> Result<(), sluice_wire::records::RecordsError> {
//! let mut builder = RecordBatchBuilder::new(BatchOptions {
//!     compression: Compression::Lz4,
//!     ..BatchOptions::default()
//! });
//! let headers = [HeaderRef::new("trace-id", Some(&b"abc"[..]))];
//! builder.append(1_700_000_000_000, Some(b"key"), Some(b"hello"), &headers)?;
//! builder.append(1_700_000_000_005, None, Some(b"world"), &[])?;
//! let batch: Bytes = builder.finish()?;
//!
//! // A fetch response carries one or more batches back to back.
//! for batch in RecordBatches::new(batch) {
//!     let batch = batch?;
//!     assert_eq!(batch.record_count(), 2);
//!     for record in batch.records()? {
//!         let record = record?;
//!         println!("{} {:?} {:?}", record.offset(), record.key(), record.value());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Safety against hostile input
//! The decoder never panics on arbitrary bytes, never sizes an allocation from a length read
//! off the wire, checks every batch's CRC-32C, and refuses to decompress a batch to more
//! than [`DEFAULT_MAX_DECOMPRESSED_SIZE`] bytes (configurable with
//! [`RecordBatches::with_max_decompressed_size`]).

mod builder;
mod compression;
mod decoder;
mod layout;
mod lz4;
mod record;
mod varint;

use std::fmt;

pub use builder::{rewrite_producer_state, BatchOptions, RecordBatchBuilder};
pub use decoder::{RecordBatch, RecordBatches};
pub(crate) use layout::BatchHeaders;
pub use layout::BATCH_HEADER_LEN;
pub use record::{HeaderIter, Record, Records};

/// Default cap on the decompressed size of one batch (64 MiB), far above any broker's
/// `max.message.bytes` but small enough to stop a zip bomb.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 64 * 1024 * 1024;

/// `producerId` of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch written without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch written without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` before the broker assigns one (what producers send).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// The codec of a batch's records (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// gzip (1), level 6 like the Java client's default.
    Gzip,
    /// snappy (2); written with xerial framing, as the Java client does.
    Snappy,
    /// lz4 (3), the LZ4 frame format with independent 64 KiB blocks.
    Lz4,
    /// zstd (4); needs brokers >= 2.1 and Produce v7.
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id in the attribute bits.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id, or [`RecordsError::UnknownCompression`] for 5-7.
    pub fn from_id(id: u8) -> Result<Self, RecordsError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordsError::UnknownCompression(other)),
        })
    }

    /// The name Kafka uses in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl Compression {
    /// The codec Kafka's `compression.type` calls `name` (`none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`), or `None` for any other name.
    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer (`CreateTime`, 0).
    #[default]
    CreateTime,
    /// Set by the broker when appending (`LogAppendTime`, 1): every record's timestamp is the
    /// batch's `maxTimestamp`.
    LogAppendTime,
}

/// A record header as [`RecordBatchBuilder::append`] takes it: a UTF-8 key and an
/// optional value, both borrowed. The low-level builder's input only; records to produce
/// and consumed records carry the owned [`Header`](crate::Header), and decoding yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The header key.
    pub key: &'a str,
    /// The header value; `None` is written as length -1.
    pub value: Option<&'a [u8]>,
}

impl<'a> HeaderRef<'a> {
    /// A header with `key` and `value`.
    pub fn new(key: &'a str, value: Option<&'a [u8]>) -> Self {
        HeaderRef { key, value }
    }
}

impl<'a> From<&'a crate::Header> for HeaderRef<'a> {
    fn from(header: &'a crate::Header) -> Self {
        HeaderRef::new(header.key(), header.value())
    }
}

/// The kind of a control record (the `type` in its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Transaction aborted (0).
    Abort,
    /// Transaction committed (1).
    Commit,
    /// Any other type (KRaft uses several internally); clients skip these.
    Unknown(i16),
}

impl ControlRecordType {
    /// The wire id.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Unknown(id) => id,
        }
    }

    fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Unknown(other),
        }
    }
}

/// A decoded control record: a transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ControlRecord {
    /// Commit, abort, or an unknown type.
    pub kind: ControlRecordType,
    /// The transaction coordinator's epoch; -1 for [`ControlRecordType::Unknown`], whose
    /// value is not a transaction marker.
    pub coordinator_epoch: i32,
}

impl ControlRecord {
    /// Parses a control record's key (`version: i16, type: i16`) and, for commit and abort,
    /// its value (`version: i16, coordinatorEpoch: i32`).
    pub fn parse(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordsError> {
        let (Some(version), Some(kind)) = (be_i16(key, 0), be_i16(key, 2)) else {
            return Err(RecordsError::InvalidControlRecord(
                "key shorter than 4 bytes",
            ));
        };
        if version < 0 {
            return Err(RecordsError::InvalidControlRecord("negative key version"));
        }
        let kind = ControlRecordType::from_id(kind);
        if let ControlRecordType::Unknown(_) = kind {
            return Ok(ControlRecord {
                kind,
                coordinator_epoch: -1,
            });
        }
        let value = value.unwrap_or_default();
        let (Some(version), Some(epoch)) = (be_i16(value, 0), be_i32(value, 2)) else {
            return Err(RecordsError::InvalidControlRecord(
                "transaction marker value shorter than 6 bytes",
            ));
        };
        if version < 0 {
            return Err(RecordsError::InvalidControlRecord("negative value version"));
        }
        Ok(ControlRecord {
            kind,
            coordinator_epoch: epoch,
        })
    }
}

fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Everything that can go wrong encoding or decoding record batches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// Input ended inside a structure that must be complete (a record inside a complete
    /// batch, a varint, a compressed stream).
    #[error("record data truncated")]
    Truncated,
    /// The batch's CRC-32C does not match its contents.
    #[error("corrupt batch: crc32c is {actual:#010x}, header says {expected:#010x}")]
    CorruptCrc {
        /// The CRC stored in the batch header.
        expected: u32,
        /// The CRC computed over the batch.
        actual: u32,
    },
    /// The batch is not format v2 (magic 0 and 1 are pre-0.11 message sets).
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    /// Attribute bits 0-2 name no known codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// A codec failed to compress or decompress.
    #[error("{codec} codec error: {source}")]
    Compression {
        /// The codec that failed.
        codec: Compression,
        /// The codec's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A batch decompresses to more than the configured maximum.
    #[error("batch decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The maximum in force.
        limit: usize,
    },
    /// A varint longer than 5 bytes (varlong: 10).
    #[error("invalid varint")]
    InvalidVarint,
    /// A length field holds an impossible value.
    #[error("invalid {field} {value}")]
    InvalidLength {
        /// Which field.
        field: &'static str,
        /// What it held.
        value: i64,
    },
    /// A batch's records do not fill it exactly (bytes left over after the declared
    /// count, or a record's fields not filling its length).
    #[error("record batch is malformed: {0}")]
    Malformed(&'static str),
    /// A control record's key or value does not parse.
    #[error("invalid control record: {0}")]
    InvalidControlRecord(&'static str),
    /// A record or batch is too large to encode (a length over `i32::MAX`, or more than
    /// `i32::MAX` records).
    #[error("record or batch too large to encode")]
    TooLarge,
    /// [`RecordBatchBuilder::finish`] on a builder with no records.
    #[error("record batch has no records")]
    EmptyBatch,
    /// A data record appended to a control batch, or a control record to a data batch.
    #[error("control and data records cannot share a batch")]
    ControlMismatch,
}

impl RecordsError {
    pub(crate) fn codec(
        codec: Compression,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        RecordsError::Compression {
            codec,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests;
