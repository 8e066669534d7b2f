//! Decodes arbitrary bytes as the `records` field of a Fetch response and walks every
//! record and header. The decoder must never panic, hang, or allocate from a length it read.
//!
//! The first byte picks a mode: odd means "fix every batch's CRC-32C first", so the fuzzer
//! gets past the checksum and into the record and codec parsers; even decodes as is.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_wire::records::RecordBatches;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut input);
    }
    // A small decompression cap keeps a fuzzer-made zip bomb from exhausting memory
    // while still exercising the "too large" path.
    let batches = RecordBatches::with_max_decompressed_size(Bytes::from(input), 1 << 20);
    for batch in batches {
        let Ok(batch) = batch else { continue };
        let _ = batch.control_record();
        let Ok(records) = batch.records() else { continue };
        for record in records {
            let Ok(record) = record else { break };
            let _ = (record.offset(), record.timestamp(), record.key(), record.value());
            for header in record.headers() {
                let _ = (header.key(), header.value());
            }
        }
    }
});

/// Walks the batch framing (baseOffset i64, batchLength i32) and rewrites each complete
/// batch's CRC-32C (bytes 17..21, over bytes 21..).
fn fix_crcs(data: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(len_bytes) = data.get(pos + 8..pos + 12) {
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let Ok(len) = usize::try_from(len) else { return };
        let end = pos + 12 + len;
        if len < 49 || end > data.len() {
            return;
        }
        let crc = crc32c::crc32c(&data[pos + 21..end]);
        data[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}
