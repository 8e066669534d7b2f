//! Decodes arbitrary bytes as the `records` field of a Fetch response and walks every
//! record and header. The decoder must never panic, hang, or allocate from a length it read.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_wire::records::RecordBatches;

fuzz_target!(|data: &[u8]| {
    // A small decompression cap keeps a fuzzer-made zip bomb from exhausting memory
    // while still exercising the "too large" path.
    let batches = RecordBatches::with_max_decompressed_size(Bytes::copy_from_slice(data), 1 << 20);
    for batch in batches {
        let Ok(batch) = batch else { continue };
        let _ = batch.control_record();
        let Ok(records) = batch.records() else { continue };
        for record in records {
            let Ok(record) = record else { break };
            let _ = (record.offset(), record.timestamp(), record.key(), record.value());
            for header in record.headers() {
                let _ = header.key_str();
            }
        }
    }
});
