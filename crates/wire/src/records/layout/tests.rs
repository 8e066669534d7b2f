//! The header scan against the builder (it reads back the fields written) and against
//! the full decoder (it frames every input the same way), on valid, cut, mutated and
//! arbitrary bytes.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::records::tests as records_tests;
use crate::records::{BatchOptions, RecordBatch, RecordBatchBuilder, RecordBatches};

/// Every header field, as the scan read it.
fn scanned(h: &BatchHeader) -> [i64; 12] {
    [
        h.base_offset(),
        i64::from(h.batch_length()) + LOG_OVERHEAD as i64,
        i64::from(h.partition_leader_epoch()),
        i64::from(h.crc()),
        i64::from(h.attributes().0),
        i64::from(h.last_offset_delta()),
        h.base_timestamp(),
        h.max_timestamp(),
        h.producer_id(),
        i64::from(h.producer_epoch()),
        i64::from(h.base_sequence()),
        i64::from(h.record_count()),
    ]
}

/// The same fields, as the full decoder read them.
fn decoded(b: &RecordBatch) -> [i64; 12] {
    [
        b.base_offset(),
        b.size_in_bytes() as i64,
        i64::from(b.partition_leader_epoch()),
        i64::from(b.crc()),
        i64::from(b.attributes()),
        i64::from(b.last_offset_delta()),
        b.base_timestamp(),
        b.max_timestamp(),
        b.producer_id(),
        i64::from(b.producer_epoch()),
        i64::from(b.base_sequence()),
        i64::from(b.record_count()),
    ]
}

fn build(options: BatchOptions, timestamps: &[i64]) -> Bytes {
    let mut b = RecordBatchBuilder::new(options);
    for (i, &t) in timestamps.iter().enumerate() {
        let value = vec![i as u8; i % 50];
        b.append(t, (i % 2 == 0).then_some(&b"k"[..]), Some(&value), &[])
            .unwrap();
    }
    b.finish().unwrap()
}

/// The round-trip tests' options, with either timestamp type.
fn arb_options() -> impl Strategy<Value = BatchOptions> {
    (records_tests::arb_options(), any::<bool>()).prop_map(|(options, log_append)| BatchOptions {
        timestamp_type: if log_append {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        ..options
    })
}

fn arb_batch() -> impl Strategy<Value = (BatchOptions, Vec<i64>)> {
    (
        arb_options(),
        proptest::collection::vec(-1000i64..1_800_000_000_000, 1..30),
    )
}

/// Concatenated batches, as a fetch response carries them.
fn arb_log() -> impl Strategy<Value = (Vec<(BatchOptions, Vec<i64>)>, Bytes)> {
    proptest::collection::vec(arb_batch(), 0..5).prop_map(|batches| {
        let mut log = Vec::new();
        for (options, timestamps) in &batches {
            log.extend_from_slice(&build(*options, timestamps));
        }
        (batches, Bytes::from(log))
    })
}

/// Rewrites each framed batch's CRC-32C so mutations reach past the checksum.
fn fix_crcs(data: &mut [u8]) {
    let mut pos = 0;
    while let Ok(Some(total)) = frame_len(&data[pos..]) {
        seal_crc(&mut data[pos..pos + total]);
        pos += total;
    }
}

/// The decoder sees the batches the scan sees: on any input, each batch the decoder
/// accepts is the scan's batch at the same place with the same fields, a framing
/// error ends both at the same batch, and the decoder ends early only on what the scan
/// does not check (CRC, codec, record count).
fn assert_scan_agrees_with_decoder(input: Bytes) -> Result<(), TestCaseError> {
    let mut scan = BatchHeaders::new(&input);
    let mut batches = RecordBatches::new(input.clone());
    loop {
        match (scan.next(), batches.next()) {
            (None, None) => return Ok(()),
            (Some(Ok(h)), Some(Ok(b))) => prop_assert_eq!(scanned(&h), decoded(&b)),
            (Some(Err(s)), Some(Err(d))) => {
                prop_assert_eq!(s.to_string(), d.to_string());
                prop_assert!(scan.next().is_none());
                return Ok(());
            }
            (Some(Ok(_)), Some(Err(d))) => {
                prop_assert!(
                    matches!(
                        d,
                        RecordsError::CorruptCrc { .. }
                            | RecordsError::UnknownCompression(_)
                            | RecordsError::InvalidLength {
                                field: "record count",
                                ..
                            }
                    ),
                    "the decoder refused a framed batch for {d}"
                );
                return Ok(());
            }
            (s, d) => prop_assert!(false, "scan gave {s:?}, decoder {d:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn builder_output_scans_to_the_fields_it_was_built_with(
        (options, timestamps) in arb_batch(),
    ) {
        let batch = build(options, &timestamps);
        let headers: Vec<_> = BatchHeaders::new(&batch).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(headers.len(), 1);
        let h = headers[0];
        let n = timestamps.len() as i32;
        prop_assert_eq!(h.base_offset(), options.base_offset);
        prop_assert_eq!(h.batch_length() as usize, batch.len() - LOG_OVERHEAD);
        prop_assert_eq!(h.partition_leader_epoch(), options.partition_leader_epoch);
        prop_assert_eq!(h.magic(), MAGIC_V2);
        prop_assert_eq!(h.crc(), crc32c::crc32c(&batch[ATTRIBUTES..]));
        let attributes = h.attributes();
        prop_assert_eq!(attributes.compression_id(), options.compression.id());
        prop_assert_eq!(attributes.timestamp_type(), options.timestamp_type);
        prop_assert_eq!(attributes.is_transactional(), options.transactional);
        prop_assert!(!attributes.is_control());
        prop_assert!(!attributes.has_delete_horizon());
        prop_assert_eq!(h.last_offset_delta(), n - 1);
        prop_assert_eq!(h.next_offset(), options.base_offset.wrapping_add(i64::from(n)));
        prop_assert_eq!(h.base_timestamp(), timestamps[0]);
        prop_assert_eq!(h.max_timestamp(), *timestamps.iter().max().unwrap());
        prop_assert_eq!(h.producer_id(), options.producer_id);
        prop_assert_eq!(h.producer_epoch(), options.producer_epoch);
        prop_assert_eq!(h.base_sequence(), options.base_sequence);
        prop_assert_eq!(h.record_count(), n);
    }

    #[test]
    fn scan_agrees_with_the_decoder_on_valid_batches((batches, log) in arb_log()) {
        let headers: Vec<_> = BatchHeaders::new(&log).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(headers.len(), batches.len());
        assert_scan_agrees_with_decoder(log)?;
    }

    #[test]
    fn scan_agrees_with_the_decoder_on_a_cut_tail((_, log) in arb_log(), cut: prop::sample::Index) {
        let cut = log.slice(..cut.index(log.len() + 1));
        assert_scan_agrees_with_decoder(cut)?;
    }

    #[test]
    fn scan_never_panics_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        // Ends, and never yields more batches than headers fit.
        prop_assert!(BatchHeaders::new(&input).count() <= input.len() / BATCH_HEADER_LEN + 1);
        assert_scan_agrees_with_decoder(Bytes::from(input))?;
    }

    #[test]
    fn scan_agrees_with_the_decoder_on_mutated_batches(
        (_, log) in arb_log(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        fix_crc: bool,
    ) {
        let mut input = log.to_vec();
        if !input.is_empty() {
            for (at, byte) in flips {
                let at = at.index(input.len());
                input[at] ^= byte;
            }
        }
        if fix_crc {
            fix_crcs(&mut input);
        }
        assert_scan_agrees_with_decoder(Bytes::from(input))?;
    }
}

#[test]
fn framing_errors_and_cut_tails() {
    let batch = build(BatchOptions::default(), &[1, 2, 3]);
    // Every cut of a batch is a tail to wait for, never an error.
    for len in 1..batch.len() {
        assert!(matches!(frame_len(&batch[..len]), Ok(None)), "cut at {len}");
    }
    assert_eq!(frame_len(&batch).unwrap(), Some(batch.len()));
    let mut old = batch.to_vec();
    old[MAGIC] = 1;
    assert!(matches!(
        frame_len(&old),
        Err(RecordsError::UnsupportedMagic(1))
    ));
    let mut short = batch.to_vec();
    short[BATCH_LENGTH..LOG_OVERHEAD].copy_from_slice(&48i32.to_be_bytes());
    assert!(matches!(
        frame_len(&short),
        Err(RecordsError::InvalidLength { value: 48, .. })
    ));
    // The scan yields the framing error once, then ends.
    let mut scan = BatchHeaders::new(&short);
    assert!(matches!(scan.next(), Some(Err(_))));
    assert!(scan.next().is_none());
}

#[test]
fn attribute_bits() {
    let all = Attributes::new(Compression::Zstd, TimestampType::LogAppendTime, true, true);
    assert_eq!(all.0, 0x04 | 0x08 | 0x10 | 0x20);
    assert_eq!(all.compression_id(), 4);
    assert!(all.is_transactional() && all.is_control() && !all.has_delete_horizon());
    assert_eq!(all.timestamp_type(), TimestampType::LogAppendTime);
    assert!(Attributes(0x40).has_delete_horizon());
    assert_eq!(Attributes(0x47).compression_id(), 7);
}
