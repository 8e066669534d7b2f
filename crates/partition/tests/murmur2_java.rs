//! Checks murmur2 placement against vectors produced by the real Java client.
//!
//! The fixture `tests/fixtures/murmur2_java.txt` was produced by
//! `tests/java/Murmur2Vectors.java` on kafka-clients 4.1.1. To regenerate it (after
//! `cargo xtask kafka up` cached the jars), from the repository root:
//!
//! ```text
//! java -cp 'target/kafka/4.1.1/libs/*' crates/partition/tests/java/Murmur2Vectors.java \
//!     > crates/partition/tests/fixtures/murmur2_java.txt
//! ```

use sluice_partition::{murmur2, partition_for_key, to_positive, Murmur2Partitioner, Partitioner};

const FIXTURE: &str = include_str!("fixtures/murmur2_java.txt");

fn decode_hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[test]
fn every_java_vector_matches() {
    let partitions: Vec<i32> = FIXTURE
        .lines()
        .find_map(|l| l.strip_prefix("# partitions "))
        .expect("a '# partitions' header")
        .split_whitespace()
        .map(|n| n.parse().expect("partition count"))
        .collect();
    assert!(!partitions.is_empty());

    let mut checked = 0;
    let mut saw_high_byte = false;
    let mut partitioner = Murmur2Partitioner::new();
    for (number, line) in FIXTURE.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields.len(),
            3 + partitions.len(),
            "line {}: {line}",
            number + 1
        );
        let key = decode_hex(fields[0]);
        let java_hash: i32 = fields[1].parse().expect("murmur2");
        let java_positive: i32 = fields[2].parse().expect("toPositive");
        saw_high_byte |= key.iter().any(|&b| b >= 0x80);

        assert_eq!(murmur2(&key), java_hash, "murmur2, line {}", number + 1);
        assert_eq!(
            to_positive(murmur2(&key)),
            java_positive,
            "toPositive, line {}",
            number + 1
        );
        for (&n, expected) in partitions.iter().zip(&fields[3..]) {
            let expected: i32 = expected.parse().expect("partition");
            assert_eq!(
                partition_for_key(&key, n),
                expected,
                "n = {n}, line {}",
                number + 1
            );
            assert_eq!(partitioner.partition("t", Some(&key), 0, n), expected);
        }
        checked += 1;
    }
    assert!(checked > 500, "only {checked} vectors");
    assert!(saw_high_byte);
}
