//! Splits arbitrary bytes into response frames as a broker connection's reader does and
//! decodes each as a response (ApiVersions, Metadata, Produce, Fetch, ListOffsets,
//! CreateTopics, DeleteTopics, DescribeCluster; the first byte picks which). Must never
//! panic.
//!
//! Known finding: `kafka-protocol` sizes a `Vec` from an array length it reads, so a
//! hostile length can make it request a huge allocation; run with `-rss_limit_mb` and
//! `-malloc_limit_mb` to see it reported rather than aborting the host.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    sluice_wire::fuzzing::response_frames(selector, rest);
});
