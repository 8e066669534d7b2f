//! Encoder/decoder round trips, cross-checks against the `kafka-protocol` crate, and the
//! decoder's behaviour on hostile input.

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use proptest::prelude::*;

use super::*;

/// An owned record for generating inputs and comparing outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Owned {
    fn from_record(r: &Record) -> Self {
        Owned {
            timestamp: r.timestamp(),
            key: r.key().map(|k| k.to_vec()),
            value: r.value().map(|v| v.to_vec()),
            headers: r
                .headers()
                .map(|h| (h.key().to_owned(), h.value().map(|v| v.to_vec())))
                .collect(),
        }
    }
}

fn build(options: BatchOptions, records: &[Owned]) -> Bytes {
    let mut builder = RecordBatchBuilder::new(options);
    for (i, r) in records.iter().enumerate() {
        let headers: Vec<HeaderRef<'_>> = r
            .headers
            .iter()
            .map(|(k, v)| HeaderRef::new(k, v.as_deref()))
            .collect();
        let size = builder
            .record_size(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
        let before = builder.estimated_size();
        let delta = builder
            .append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
        assert_eq!(delta as usize, i);
        assert_eq!(
            builder.estimated_size() - before,
            size,
            "record_size is exact"
        );
    }
    assert_eq!(builder.len(), records.len());
    builder.finish().unwrap()
}

fn decode_all(bytes: Bytes) -> Vec<(RecordBatch, Vec<Owned>)> {
    RecordBatches::new(bytes)
        .map(|batch| {
            let batch = batch.unwrap();
            let records = batch
                .records()
                .unwrap()
                .map(|r| Owned::from_record(&r.unwrap()))
                .collect();
            (batch, records)
        })
        .collect()
}

fn sample_records(n: usize) -> Vec<Owned> {
    (0..n)
        .map(|i| Owned {
            timestamp: 1_700_000_000_000 + (i as i64 % 7) * 3 - 5,
            key: (i % 3 != 0).then(|| format!("key-{i}").into_bytes()),
            value: (i % 5 != 0).then(|| vec![i as u8; i % 40]),
            headers: (0..i % 3)
                .map(|h| (format!("h{h}"), (h != 1).then(|| vec![h as u8; 3])))
                .collect(),
        })
        .collect()
}

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Some),
    ]
}

fn arb_record() -> impl Strategy<Value = Owned> {
    (
        prop_oneof![
            any::<i64>(),
            -10_000i64..10_000,
            1_600_000_000_000i64..1_800_000_000_000
        ],
        arb_bytes(),
        arb_bytes(),
        proptest::collection::vec(("[a-z\u{e9}\u{1F600}]{0,8}", arb_bytes()), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Owned {
            timestamp,
            key,
            value,
            headers,
        })
}

/// kafka-protocol adds timestamp deltas with overflow checks, so keep timestamps realistic
/// (negative deltas included) when it is on either side.
fn arb_cross_record() -> impl Strategy<Value = Owned> {
    (arb_record(), -1i64..2_000_000_000_000).prop_map(|(mut r, timestamp)| {
        r.timestamp = timestamp;
        dedup_headers(r)
    })
}

pub(super) fn arb_options() -> impl Strategy<Value = BatchOptions> {
    (
        proptest::sample::select(Compression::ALL.to_vec()),
        any::<i64>(),
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        any::<bool>(),
        any::<i32>(),
    )
        .prop_map(
            |(compression, base_offset, producer_id, producer_epoch, base_sequence, txn, epoch)| {
                BatchOptions {
                    compression,
                    base_offset,
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    transactional: txn,
                    is_control: false,
                    partition_leader_epoch: epoch,
                    timestamp_type: TimestampType::CreateTime,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip(options in arb_options(), records in proptest::collection::vec(arb_record(), 1..40)) {
        let bytes = build(options, &records);
        let batches = decode_all(bytes.clone());
        prop_assert_eq!(batches.len(), 1);
        let (batch, decoded) = &batches[0];
        prop_assert_eq!(decoded, &records);
        prop_assert_eq!(batch.base_offset(), options.base_offset);
        prop_assert_eq!(batch.last_offset_delta() as usize, records.len() - 1);
        prop_assert_eq!(batch.record_count() as usize, records.len());
        prop_assert_eq!(batch.producer_id(), options.producer_id);
        prop_assert_eq!(batch.producer_epoch(), options.producer_epoch);
        prop_assert_eq!(batch.base_sequence(), options.base_sequence);
        prop_assert_eq!(batch.partition_leader_epoch(), options.partition_leader_epoch);
        prop_assert_eq!(batch.is_transactional(), options.transactional);
        prop_assert!(!batch.is_control());
        prop_assert_eq!(batch.compression(), options.compression);
        prop_assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        prop_assert_eq!(batch.base_timestamp(), records[0].timestamp);
        prop_assert_eq!(batch.max_timestamp(), records.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(batch.size_in_bytes(), bytes.len());
        let offsets: Vec<i64> = batch.records().unwrap().map(|r| r.unwrap().offset()).collect();
        let expected: Vec<i64> = (0..records.len() as i64).map(|i| options.base_offset.wrapping_add(i)).collect();
        prop_assert_eq!(offsets, expected);
    }

    /// Our encoder -> kafka-protocol's decoder (uncompressed, gzip, snappy: its lz4 and zstd
    /// features need C libraries, so those codecs are only checked against ourselves).
    #[test]
    fn kafka_protocol_reads_what_we_write(
        codec in proptest::sample::select(vec![Compression::None, Compression::Gzip, Compression::Snappy]),
        records in proptest::collection::vec(arb_cross_record(), 1..20),
    ) {
        let options = BatchOptions { compression: codec, base_offset: 100, producer_id: 7, producer_epoch: 2, base_sequence: 40, ..BatchOptions::default() };
        let mut bytes = build(options, &records);
        let sets = kp::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        prop_assert_eq!(sets.len(), 1);
        let theirs = &sets[0].records;
        prop_assert_eq!(theirs.len(), records.len());
        for (i, (t, ours)) in theirs.iter().zip(&records).enumerate() {
            prop_assert_eq!(t.offset, 100 + i as i64);
            prop_assert_eq!(t.sequence, 40 + i as i32);
            prop_assert_eq!(t.producer_id, 7);
            prop_assert_eq!(t.timestamp, ours.timestamp);
            prop_assert_eq!(t.key.as_deref(), ours.key.as_deref());
            prop_assert_eq!(t.value.as_deref(), ours.value.as_deref());
            let headers: Vec<(String, Option<Vec<u8>>)> = t.headers.iter().map(|(k, v)| (k.to_string(), v.as_ref().map(|v| v.to_vec()))).collect();
            prop_assert_eq!(&headers, &ours.headers);
        }
    }

    /// kafka-protocol's encoder -> our decoder.
    #[test]
    fn we_read_what_kafka_protocol_writes(
        codec in proptest::sample::select(vec![kp::Compression::None, kp::Compression::Gzip, kp::Compression::Snappy]),
        records in proptest::collection::vec(arb_cross_record(), 1..20),
    ) {
        let theirs: Vec<kp::Record> = records.iter().enumerate().map(|(i, r)| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: 9,
            producer_epoch: 1,
            timestamp_type: kp::TimestampType::Creation,
            offset: 500 + i as i64,
            sequence: 10 + i as i32,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r.headers.iter().map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from))).collect::<IndexMap<_, _>>(),
        }).collect();
        let mut buf = BytesMut::new();
        kp::RecordBatchEncoder::encode(&mut buf, &theirs, &kp::RecordEncodeOptions { version: 2, compression: codec }).unwrap();
        let batches = decode_all(buf.freeze());
        prop_assert_eq!(batches.len(), 1);
        let (batch, decoded) = &batches[0];
        prop_assert_eq!(decoded, &records);
        prop_assert_eq!(batch.base_offset(), 500);
        prop_assert_eq!(batch.base_sequence(), 10);
        prop_assert_eq!(batch.producer_id(), 9);
        prop_assert_eq!(batch.partition_leader_epoch(), 3);
        prop_assert_eq!(batch.compression().id(), codec as u8);
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        drain(Bytes::from(input));
    }

    #[test]
    fn decoder_never_panics_on_mutated_batches(
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        cut in any::<prop::sample::Index>(),
        fix_crc: bool,
    ) {
        let batch = build(BatchOptions { compression: codec, ..BatchOptions::default() }, &sample_records(12));
        let mut bytes = batch.to_vec();
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        if fix_crc {
            // Reach the record parser instead of stopping at the CRC check.
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len);
        drain(Bytes::from(bytes));
    }
}

/// Iterates everything, including headers, ignoring errors.
fn drain(bytes: Bytes) {
    for batch in RecordBatches::with_max_decompressed_size(bytes, 1 << 20) {
        let Ok(batch) = batch else { continue };
        let _ = format!("{batch:?}");
        let _ = batch.control_record();
        if let Ok(records) = batch.records() {
            for record in records.flatten() {
                for header in record.headers() {
                    let _ = header.key();
                }
            }
        }
    }
}

/// kafka-protocol keeps headers in a map, so it can only carry unique keys.
fn dedup_headers(mut r: Owned) -> Owned {
    let mut seen = std::collections::HashSet::new();
    r.headers.retain(|(k, _)| seen.insert(k.clone()));
    r
}

#[test]
fn many_records_every_codec() {
    let records = sample_records(5000);
    for codec in Compression::ALL {
        let options = BatchOptions {
            compression: codec,
            ..BatchOptions::default()
        };
        let bytes = build(options, &records);
        let batches = decode_all(bytes);
        assert_eq!(batches[0].1, records, "{codec}");
    }
}

/// The decoder reads 1- and 2-byte varints inline and longer ones in a loop: lengths
/// around every varint size boundary (63/64 is 1/2 bytes zigzagged, 8191/8192 is 2/3,
/// 1048575/1048576 is 3/4) must round-trip, with headers after them.
#[test]
fn lengths_at_varint_size_boundaries_round_trip() {
    let sizes = [
        0usize, 1, 63, 64, 127, 128, 8191, 8192, 16384, 1_048_575, 1_048_576,
    ];
    let records: Vec<Owned> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| Owned {
            timestamp: 1_700_000_000_000 + (i as i64) * 1_000_000,
            key: Some(vec![b'k'; n.min(70_000)]),
            value: Some((0..n).map(|j| j as u8).collect()),
            headers: vec![("h".to_owned(), Some(vec![b'v'; n.min(9000)]))],
        })
        .collect();
    let bytes = build(BatchOptions::default(), &records);
    assert_eq!(decode_all(bytes)[0].1, records);
}

/// A record whose length varint or field lengths run past the record's end: typed
/// errors from every position a length can be cut at, never a panic.
#[test]
fn every_truncation_of_a_record_is_a_typed_error() {
    let records = vec![Owned {
        timestamp: 1_700_000_000_000,
        key: Some(vec![b'k'; 200]),
        value: Some(vec![b'v'; 9000]),
        headers: vec![("trace".to_owned(), Some(vec![b'x'; 150]))],
    }];
    let good = build(BatchOptions::default(), &records);
    // Shrink the record's own length (bytes 61..) one value at a time; the fields then
    // overrun it.
    let (len, used) = super::varint::read_varint(&good[61..]).unwrap();
    for cut in [1, 2, 150, 200, 5000, len - 1] {
        let mut body = Vec::new();
        super::varint::put_varint(&mut body, len - cut);
        let mut bad = good[..61].to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&good[61 + used..]);
        let batch_len = (bad.len() - 12) as i32;
        bad[8..12].copy_from_slice(&batch_len.to_be_bytes());
        let crc = crc32c::crc32c(&bad[21..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatches::new(Bytes::from(bad))
            .next()
            .unwrap()
            .unwrap();
        let first = batch.records().unwrap().next().unwrap();
        assert!(
            matches!(
                first,
                Err(RecordsError::Truncated | RecordsError::Malformed(_))
            ),
            "cut {cut}: {first:?}"
        );
    }
}

#[test]
fn uncompressed_values_are_slices_of_the_input() {
    let bytes = build(BatchOptions::default(), &sample_records(3));
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let batch = RecordBatches::new(bytes.clone()).next().unwrap().unwrap();
    let record = batch.records().unwrap().nth(1).unwrap().unwrap();
    assert!(range.contains(&(record.key().unwrap().as_ptr() as usize)));
}

#[test]
fn concatenated_batches_and_truncated_tail() {
    let a = build(BatchOptions::default(), &sample_records(3));
    let b = build(
        BatchOptions {
            base_offset: 3,
            compression: Compression::Lz4,
            ..BatchOptions::default()
        },
        &sample_records(4),
    );
    let mut all = BytesMut::new();
    all.put_slice(&a);
    all.put_slice(&b);
    let all = all.freeze();
    let batches = decode_all(all.clone());
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].0.base_offset(), 3);
    assert_eq!(batches[1].0.last_offset(), 6);
    assert_eq!(batches[1].0.next_offset(), 7);

    // Every cut inside the second batch yields the first batch and then stops cleanly.
    for cut in a.len() + 1..all.len() {
        let mut iter = RecordBatches::new(all.slice(..cut));
        assert_eq!(iter.next().unwrap().unwrap().base_offset(), 0);
        assert!(iter.next().is_none(), "cut at {cut}");
        assert!(iter.is_truncated());
        assert_eq!(iter.remaining().len(), cut - a.len());
    }
    let mut whole = RecordBatches::new(all);
    assert_eq!(whole.by_ref().count(), 2);
    assert!(!whole.is_truncated());
}

#[test]
fn corrupt_crc_is_reported() {
    let bytes = build(BatchOptions::default(), &sample_records(3));
    let mut bad = bytes.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let err = RecordBatches::new(Bytes::from(bad))
        .next()
        .unwrap()
        .unwrap_err();
    let RecordsError::CorruptCrc { expected, actual } = err else {
        panic!("expected CorruptCrc, got {err:?}");
    };
    assert_eq!(
        expected,
        u32::from_be_bytes(bytes[17..21].try_into().unwrap())
    );
    assert_ne!(expected, actual);
}

#[test]
fn old_magic_is_unsupported() {
    for magic in [0u8, 1] {
        // A v0/v1 message set entry: offset, size, crc, magic, ...
        let mut msg = vec![0u8; 8];
        msg.extend_from_slice(&14i32.to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0, magic, 0]);
        msg.extend_from_slice(&[0xff; 8]);
        let mut iter = RecordBatches::new(Bytes::from(msg));
        assert!(matches!(
            iter.next(),
            Some(Err(RecordsError::UnsupportedMagic(m))) if m == magic as i8
        ));
        assert!(iter.next().is_none());
    }
}

#[test]
fn truncated_record_inside_a_complete_batch_is_an_error() {
    let bytes = build(BatchOptions::default(), &sample_records(3));
    let mut bad = bytes.to_vec();
    // Claim one more record than there is.
    bad[57..61].copy_from_slice(&4i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = RecordBatches::new(Bytes::from(bad))
        .next()
        .unwrap()
        .unwrap();
    let results: Vec<_> = batch.records().unwrap().collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    assert!(matches!(results[3], Err(RecordsError::Truncated)));

    // And one fewer: bytes left over.
    let mut bad = bytes.to_vec();
    bad[57..61].copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = RecordBatches::new(Bytes::from(bad))
        .next()
        .unwrap()
        .unwrap();
    let last = batch.records().unwrap().last().unwrap();
    assert!(matches!(last, Err(RecordsError::Malformed(_))));
}

#[test]
fn decompression_is_capped() {
    let records = vec![
        Owned {
            timestamp: 0,
            key: None,
            value: Some(vec![0; 200_000]),
            headers: vec![],
        };
        1
    ];
    for codec in &Compression::ALL[1..] {
        let bytes = build(
            BatchOptions {
                compression: *codec,
                ..BatchOptions::default()
            },
            &records,
        );
        let batch = RecordBatches::with_max_decompressed_size(bytes, 100_000)
            .next()
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                batch.records(),
                Err(RecordsError::DecompressedTooLarge { limit: 100_000 })
            ),
            "{codec}"
        );
    }
}

#[test]
fn control_batches_round_trip() {
    for (kind, epoch) in [
        (ControlRecordType::Commit, 5),
        (ControlRecordType::Abort, 0),
    ] {
        let mut builder = RecordBatchBuilder::new(BatchOptions {
            is_control: true,
            transactional: true,
            producer_id: 42,
            producer_epoch: 3,
            ..BatchOptions::default()
        });
        assert!(matches!(
            builder.append(0, None, Some(b"x"), &[]),
            Err(RecordsError::ControlMismatch)
        ));
        builder.append_control(1234, kind, epoch).unwrap();
        let batch = RecordBatches::new(builder.finish().unwrap())
            .next()
            .unwrap()
            .unwrap();
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(
            batch.control_record().unwrap(),
            Some(ControlRecord {
                kind,
                coordinator_epoch: epoch
            })
        );
        let record = batch.records().unwrap().next().unwrap().unwrap();
        assert_eq!(record.timestamp(), 1234);
        // Java's EndTransactionMarker layout.
        assert_eq!(&record.key().unwrap()[..], &[0, 0, 0, kind.id() as u8]);
    }
    let mut data = RecordBatchBuilder::new(BatchOptions::default());
    assert!(matches!(
        data.append_control(0, ControlRecordType::Commit, 1),
        Err(RecordsError::ControlMismatch)
    ));
    assert!(matches!(data.finish(), Err(RecordsError::EmptyBatch)));
}

#[test]
fn control_record_parsing() {
    assert_eq!(
        ControlRecord::parse(&[0, 0, 0, 7], None).unwrap().kind,
        ControlRecordType::Unknown(7)
    );
    assert!(ControlRecord::parse(&[0, 0, 0], None).is_err());
    assert!(ControlRecord::parse(&[0, 0, 0, 1], Some(&[0, 0, 0])).is_err());
}

#[test]
fn log_append_time_uses_max_timestamp() {
    let records = sample_records(4);
    let bytes = build(
        BatchOptions {
            timestamp_type: TimestampType::LogAppendTime,
            ..BatchOptions::default()
        },
        &records,
    );
    let (batch, decoded) = decode_all(bytes).remove(0);
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    let max = records.iter().map(|r| r.timestamp).max().unwrap();
    assert!(decoded.iter().all(|r| r.timestamp == max));
}

#[test]
fn producer_state_rewrite_keeps_records_and_crc_valid() {
    let records = sample_records(6);
    let original = build(
        BatchOptions {
            compression: Compression::Snappy,
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 100,
            ..BatchOptions::default()
        },
        &records,
    );
    let rewritten = rewrite_producer_state(&original, 77, 5, 200).unwrap();
    let (batch, decoded) = decode_all(rewritten.clone()).remove(0);
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (77, 5, 200)
    );
    assert_eq!(decoded, records);
    assert_eq!(rewritten[61..], original[61..]);

    assert!(matches!(
        rewrite_producer_state(&original[..original.len() - 1], 1, 1, 1),
        Err(RecordsError::InvalidLength { .. })
    ));
    assert!(matches!(
        rewrite_producer_state(&original[..40], 1, 1, 1),
        Err(RecordsError::Truncated)
    ));
}

#[test]
fn compression_names_round_trip() {
    for c in Compression::ALL {
        assert_eq!(Compression::from_name(c.name()), Some(c));
    }
    assert_eq!(Compression::from_name("brotli"), None);
    assert_eq!(Compression::from_name("GZIP"), None);
}
